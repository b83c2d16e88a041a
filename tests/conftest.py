"""Test set-up: `configs` importable, JAX on the CPU, a compilation cache, shared fixtures.

JAX's persistent compilation cache is on for the session, in a temporary folder that the
pytest-xdist workers and the command-line runs the tests start share (through the
environment variable JAX_COMPILATION_CACHE_DIR): the many small train steps that several
tests compile identically are compiled once. Set HNCL_TEST_COMPILATION_CACHE=0 to test
without it, or JAX_COMPILATION_CACHE_DIR to keep the cache in a folder of your own.

Fixtures:
  tiny_config: a factory of seconds-long configs (`tiny_config(**overrides)`).
  fast_compile: compiles with most XLA optimizations off, for tests of plumbing only.
  no_compile / fails_before_compiling: a trainer run must fail before compiling.
  fashion_mnist_files: skips without Debian's Fashion-MNIST IDX files (fails under CI=true).
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The fast tier (`-m "not slow"`) compiles at XLA's backend optimization level 0: its
# programs are tiny, so compiling them is most of their time (two model tests: 52 s at
# the default level, 18 s at 0, on a 2-core CPU). The slow tier (real-data runs, kill
# tests, notebooks) compiles as users do. The level is read when JAX's CPU backend starts,
# so it is set here, before anything imports JAX; CLI runs started by the tests inherit it.
FAST_TIER_XLA_FLAG = "--xla_backend_optimization_level=0"


def _fast_tier(argv) -> bool:
    for i, arg in enumerate(argv):
        expr = argv[i + 1] if arg == "-m" and i + 1 < len(argv) else None
        if arg.startswith("-m") and arg != "-m":
            expr = arg[2:]
        if expr is not None and expr.strip().strip("'\"") == "not slow":
            return True
    return False


if _fast_tier(sys.argv) or os.environ.get("HNCL_TEST_FAST_TIER") == "1":
    os.environ["HNCL_TEST_FAST_TIER"] = "1"  # xdist workers have their own argv
    if FAST_TIER_XLA_FLAG not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_TIER_XLA_FLAG}".strip()
# The package sets XLA:CPU's flags on import; JAX reads them when its backend starts, so
# import it before anything (a test module, a fixture) runs a JAX computation.
import hncl_jax  # noqa: E402, F401

CACHE_OPT_OUT = "HNCL_TEST_COMPILATION_CACHE"
_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_CREATED_CACHE = None  # the folder this process made (and removes at the end)


def _cache_enabled() -> bool:
    return os.environ.get(CACHE_OPT_OUT, "1") not in ("0", "")


def _set_cache_env() -> None:
    """Points this process and its children (xdist workers, CLI runs) at one cache."""
    global _CREATED_CACHE
    if not _cache_enabled():
        return
    if not os.environ.get(_CACHE_ENV):
        _CREATED_CACHE = tempfile.mkdtemp(prefix="hncl_jax_test_xla_cache_")
        os.environ[_CACHE_ENV] = _CREATED_CACHE
    # Cache every compilation, however short (the tests' steps compile in well under 1 s).
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_configure(config):
    # The xdist controller (or a run without xdist) makes the folder before the workers
    # start, so they inherit it; a worker finds the variable already set.
    _set_cache_env()
    if not _cache_enabled():
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    try:  # a size limit makes JAX lock the folder, so parallel writers cannot tear entries
        import filelock  # noqa: F401
    except ImportError:
        pass
    else:
        jax.config.update("jax_compilation_cache_max_size", 8 * 2**30)


def pytest_unconfigure(config):
    if _CREATED_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(_CREATED_CACHE, ignore_errors=True)


# ------------------------------------------------------------------------------ configs
NUM_EPOCHS = 6  # tiny_config's epochs (5 steps each, a checkpoint every 2 epochs)


def make_tiny_config(*, strict: bool = True, **overrides):
    """HSCL on a 16-dimensional synthetic set: 5 steps per epoch, 6 epochs, 3 checkpoints.

    Args:
      strict: every override must name a field the config has (a misspelt name raises
        KeyError naming the closest field); False lets an override add a field (e.g. an
        option of a data set or model that the tiny config does not set).
      **overrides: dotted field paths to values, e.g. `**{"loss.k": 4}`, `num_epochs=2`.
    """
    from configs import synthetic

    c = synthetic.get_config("hscl")
    c.model_kwargs.hidden_sizes = (16,)
    c.dataset_kwargs.dim = 16
    c.dataset_kwargs.per_class = 20
    c.loss.k = 8
    c.batch_size = 12
    c.num_epochs = NUM_EPOCHS
    c.eval_every_epochs = 1
    c.checkpoint_every_epochs = 2
    c.log_every_steps = 2
    c.knn_k = (5,)
    c.plots = False
    c.linear_probe = "off"
    for key, value in overrides.items():
        node = c
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        if strict and last not in node:
            close = difflib.get_close_matches(last, list(node.keys()), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"tiny_config: no field {key!r}{hint} (strict=False adds one)")
        node[last] = value
    return c


@pytest.fixture
def tiny_config():
    """`tiny_config(*, strict=True, **overrides)`: a seconds-long config (make_tiny_config)."""
    return make_tiny_config


@pytest.fixture
def fast_compile(monkeypatch):
    """Compiles with most XLA optimizations off while the test runs (plumbing, not numbers)."""
    import jax

    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")  # and for CLI subprocesses
    yield
    jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture
def no_compile(monkeypatch):
    """Makes building the train step or the feature extractor fail the test."""
    from hncl_jax.train import loop, step

    def fail(*args, **kwargs):
        raise AssertionError("the trainer got as far as compiling")

    monkeypatch.setattr(step, "make_step_fn", fail)
    monkeypatch.setattr(loop, "make_features_fn", fail)


def assert_fails_before_compiling(config, workdir, error, match):
    """Runs the trainer, checks the error and its message, and that nothing was written."""
    from hncl_jax import train

    existed = os.path.exists(workdir)
    before = sorted(os.listdir(workdir)) if existed else None
    with pytest.raises(error, match=match):
        train.train_and_evaluate(config, str(workdir))
    if existed:
        assert sorted(os.listdir(workdir)) == before
    else:
        assert not os.path.exists(workdir)


@pytest.fixture
def fails_before_compiling():
    """`fails_before_compiling(config, workdir, error, match)` (use with no_compile)."""
    return assert_fails_before_compiling


@pytest.fixture
def fashion_mnist_files():
    """Skips the test without Debian's Fashion-MNIST IDX files; under CI=true it fails."""
    from hncl_jax.data import fashion_mnist

    paths = [
        p
        for split in ("train", "test")
        for p in fashion_mnist.idx_paths(split, fashion_mnist.DEBIAN_DIR)
    ]
    if all(os.path.exists(p) for p in paths):
        return
    msg = (
        f"Fashion-MNIST IDX files are not in {fashion_mnist.DEBIAN_DIR}; install them with "
        "`apt-get install dataset-fashion-mnist`."
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " CI must install them (.ci/run does).")
    pytest.skip(msg)


# --------------------------------------------------------------------------- shared builders
# Used by several test modules (imported as `from tests.conftest import ...`), so that no
# test module imports from another.


def tiny_synthetic(**overrides):
    """The synthetic smoke config made smaller: 48-dimensional inputs, 4 epochs of batch 60."""
    from configs import synthetic

    c = synthetic.get_config("smoke")
    c.model_kwargs.hidden_sizes = (32,)
    c.dataset_kwargs.dim = 48
    c.batch_size = 60
    c.num_epochs = 4
    c.eval_every_epochs = 2
    c.checkpoint_every_epochs = 2
    c.plots = False
    c.linear_probe = "off"
    for k, v in overrides.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


def params_of(state):
    """The parameters of a train state as host numpy arrays."""
    import jax
    import numpy as np

    return jax.tree.map(np.asarray, jax.device_get(state.params))


def assert_trees_equal(a, b):
    """Every leaf of two pytrees bit-identical."""
    import jax
    import numpy as np

    jax.tree.map(np.testing.assert_array_equal, a, b)


# A miniature Tiny-ImageNet archive in the official layout.
WNIDS = ("n03", "n01", "n02")  # deliberately unsorted, as in the real wnids.txt
TRAIN_PER_CLASS, VAL_PER_CLASS = 4, 2


def _jpeg(value: int, mode: str = "RGB") -> bytes:
    """A 64×64 JPEG of constant colour `value` (decodes back to about value)."""
    import io

    from PIL import Image

    img = Image.new("RGB", (64, 64), (value, value // 2, 255 - value))
    if mode != "RGB":
        img = img.convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def make_archive(
    folder: str,
    *,
    corrupt: str | None = None,
    drop: str | None = None,
    gray: str | None = None,
    extracted: bool = False,
) -> dict[str, int]:
    """Writes tiny-imagenet-200.zip (or the extracted folder) with the official layout.

    Returns {file name: colour value} so tests can check images and labels; the colour
    of class index c (in sorted wnid order) is 40 + 60 c.
    """
    import zipfile

    from hncl_jax.data import tinyimagenet

    members: dict[str, bytes] = {}
    colours: dict[str, int] = {}
    root = tinyimagenet.ROOT
    members[f"{root}/wnids.txt"] = ("\n".join(WNIDS) + "\n").encode()
    members[f"{root}/words.txt"] = "".join(f"{w}\tthing {w}\n" for w in WNIDS).encode()
    annotations = []
    k = 0
    for wnid in WNIDS:
        value = 40 + 60 * sorted(WNIDS).index(wnid)
        members[f"{root}/train/{wnid}/{wnid}_boxes.txt"] = b""
        for i in range(TRAIN_PER_CLASS):
            name = f"{wnid}_{i}.JPEG"
            mode = "L" if name == gray else "RGB"
            members[f"{root}/train/{wnid}/images/{name}"] = _jpeg(value, mode)
            colours[name] = value
        for _ in range(VAL_PER_CLASS):
            name = f"val_{k}.JPEG"
            members[f"{root}/val/images/{name}"] = _jpeg(value)
            annotations.append(f"{name}\t{wnid}\t0\t0\t63\t63")
            colours[name] = value
            k += 1
    members[f"{root}/val/val_annotations.txt"] = ("\n".join(annotations) + "\n").encode()
    members[f"{root}/test/images/test_0.JPEG"] = _jpeg(0)
    for name in list(members):
        if corrupt and name.endswith("/" + corrupt):
            members[name] = members[name][:200]
        if drop and name.endswith(drop):
            del members[name]
    if extracted:
        for name, content in members.items():
            path = os.path.join(folder, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
    else:
        with zipfile.ZipFile(os.path.join(folder, tinyimagenet.ARCHIVE), "w") as z:
            for name, content in members.items():
                z.writestr(name, content)
    return colours
