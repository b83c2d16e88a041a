"""Experiment configs: each module's `get_config(arg)` returns an ml_collections.ConfigDict.

This folder is installed as the subpackage `hncl_jax.configs` (pyproject's `package-dir`),
so a config is named on the command line as `--config=digits:smoke` from any folder, and a
config of one's own starts from the shipped defaults with
`from hncl_jax.configs import default`.
"""
