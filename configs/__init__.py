"""Experiment configs: each module's `get_config(arg)` returns an ml_collections.ConfigDict.

This folder is installed as the subpackage `hncl_jax.configs` (pyproject's `package-dir`),
so a config is named on the command line as `--config=digits:smoke` from any folder, and a
config of one's own starts from the shipped defaults with
`from hncl_jax.configs import default`. From Python, `load("digits:smoke")` is the same
config as `--config=digits:smoke`.
"""

import importlib


def load(spec: str):
    """The shipped config `<name>[:<arg>]`, e.g. load("synthetic:hscl").

    Args:
      spec: a module name of this package (`digits`, `digits.py`), optionally followed by
        `:<arg>`, the string passed to its `get_config`.

    Returns:
      the `ml_collections.ConfigDict` of `get_config(arg or None)`.

    Raises:
      ValueError: when no shipped config has that name.
    """
    name, _, arg = spec.partition(":")
    name = name.removesuffix(".py")
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise ValueError(f"no shipped config {name!r} (spec {spec!r})") from None
    return module.get_config(arg or None)
