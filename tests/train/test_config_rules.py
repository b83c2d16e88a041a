"""Every field of configs/default.py has a range or type rule; the data and memory checks.

`test_every_field_has_a_rule` walks the default config: each field must appear in
`BAD` with a value its rule refuses (and the other fields it needs), so a field added
without a check fails here. The remaining tests cover the checks that need the data
(batch and kNN sizes, step counters) or the device (the memory estimate), and that the
optional data fields can be set from the command line.
"""

from __future__ import annotations

import os
import re

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from configs import default
from hncl_jax.train import memory, validation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
E = re.escape

# field -> (bad value, other fields the rule needs). Bools are type-checked (a value of
# another type comes from Python code; flags keep the type).
BAD = {
    "seed": (2**40, {}),
    "dataset": ("cifar11", {}),
    "data_dir": (5, {}),
    "manual_dir": (5, {}),
    "image_size": (0, {"dataset": "digits"}),
    "dataset_kwargs.max_examples": (0, {}),
    "dataset_kwargs.test_fraction": (1.5, {"dataset": "digits"}),
    "label_fraction": (0.0, {}),
    "positives": ("pairs", {}),
    "views": ("crop", {}),
    "noise_std": (-1.0, {}),
    "augment": ("yes", {}),
    "model": ("resnet19", {}),
    "model_kwargs": ({"bogus": 1}, {}),
    "embed_dim": (0, {}),
    "normalization": ("sphere", {}),
    "dtype": ("float16", {}),
    "loss.name": ("hscll", {}),
    "loss.psi": ("infonse", {}),
    "loss.alpha": (0.0, {}),
    "loss.hardening": ("expo", {}),
    "loss.beta": (-1.0, {}),
    "loss.epsilon": (0.0, {}),
    "loss.k": (0, {}),
    "loss.estimator": ("reweight", {}),
    "loss.draw": ("both", {}),
    "loss.exclude_anchor": ("yes", {}),
    "loss.temperature": (0.0, {}),
    "loss.hn_temperature": (0.0, {}),
    "loss.reduction": ("sum", {}),
    "loss.tau_plus": (1.0, {"loss.estimator": "reweighted"}),
    "loss.grad_through_weights": ("yes", {}),
    "loss.eta": (3, {}),
    "loss.eta_threshold": (float("nan"), {"loss.eta": "truncated"}),
    "loss.num_proposals": (0, {"loss.eta": "truncated"}),
    "loss.beta_schedule": ("step", {}),
    "loss.beta_start": (-1.0, {"loss.beta_schedule": "linear"}),
    "loss.beta_schedule_steps": (0, {"loss.beta_schedule": "linear"}),
    "loss.simclr_q": ("all", {}),
    "loss.supervised_negatives": ("yes", {}),
    "loss.diagnostics": ("yes", {}),
    "loss.sigma": (0.0, {"loss.name": "dclw"}),
    "loss.vicreg_sim_weight": (
        -1.0,
        {"loss.name": "vicreg", "positives": "views", "views": "noise"},
    ),
    "loss.vicreg_var_weight": (
        -1.0,
        {"loss.name": "vicreg", "positives": "views", "views": "noise"},
    ),
    "loss.vicreg_cov_weight": (
        -1.0,
        {"loss.name": "vicreg", "positives": "views", "views": "noise"},
    ),
    "loss.barlow_off_diagonal_weight": (
        -1.0,
        {"loss.name": "barlow_twins", "positives": "views", "views": "noise"},
    ),
    "loss.contrast_mode": ("some", {"loss.name": "supcon"}),
    "clop.weight": (-1.0, {}),
    "clop.prototypes": ("random", {}),
    "optimizer.name": ("adamm", {}),
    "optimizer.learning_rate": (0.0, {}),
    "optimizer.weight_decay": (-1.0, {}),
    "optimizer.momentum": (1.0, {}),
    "optimizer.schedule": ("linear", {}),
    "optimizer.warmup_epochs": (-1.0, {}),
    "optimizer.scale_lr_by_batch": ("yes", {}),
    "batch_size": (1, {}),
    "num_epochs": (0, {}),
    "steps_per_dispatch": (0, {}),
    "eval_every_epochs": (-1, {}),
    "eval_batch_size": (0, {}),
    "linear_probe": ("always", {}),
    "probe_epochs": (0, {}),
    "knn_k": ((5, 5), {}),
    "log_every_steps": (0, {}),
    "checkpoint_every_epochs": (-1, {}),
    "max_checkpoints": (0, {}),
    "plots": ("yes", {}),
    "name": (5, {}),
    "wandb": ("yes", {}),
    "init_from": (5, {}),
    "allow_config_change": ("yes", {}),
}


def _fields(c: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Dotted names of the leaves; model_kwargs (free-form, checked as a whole) is a leaf."""
    out = []
    for key, value in c.items():
        name = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict) and name != "model_kwargs":
            out += _fields(value, name + ".")
        else:
            out.append(name)
    return out


def _untyped(**assignments) -> ml_collections.ConfigDict:
    """The default config without type safety, with `assignments` (dotted names)."""
    c = ml_collections.ConfigDict(default.get_config().to_dict(), type_safe=False)
    for key, value in assignments.items():
        node = c
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return c


def test_every_field_has_a_rule():
    fields = _fields(default.get_config())
    missing = sorted(set(fields) - set(BAD))
    assert not missing, f"fields of configs/default.py without a bad-value case: {missing}"
    for field in fields:
        bad, context = BAD[field]
        good = _untyped(**context)
        validation.validate_config(good)  # the context alone is valid
        c = _untyped(**context, **{field: bad})
        with pytest.raises(validation.ConfigError, match=E(f"config.{field}")):
            validation.validate_config(c)


CASES = {
    "seed beyond uint32": ({"seed": 2**40}, E(f"config.seed={2**40} is too large")),
    "batch of one": ({"batch_size": 1}, E("config.batch_size=1 leaves no negatives")),
    "a batch of one after clamping to the data": (
        {"dataset_kwargs.max_examples": 1},
        E("config.batch_size=12 with 1 training examples and 1 device(s) gives batches of 1"),
    ),
    "more kNN neighbours than examples": (
        {"knn_k": (100000,)},
        E("config.knn_k=(100000,) asks for 100000 neighbours, but the kNN classifier is fit on"),
    ),
    "warmup beyond the step counter": (
        {"optimizer.warmup_epochs": 10**9},
        E("config.optimizer.warmup_epochs=1000000000 is 5e+09 warmup steps"),
    ),
    "epochs beyond the step counter": (
        {"num_epochs": 10**9},
        E("config.num_epochs=1000000000 × 5 steps per epoch"),
    ),
    "loss.k that cannot fit in memory": (
        {"loss.k": 10**10},
        E("one train step needs about")
        + ".*"
        + E("config.loss.k=10000000000")
        + ".*"
        + E("it cannot fit. Lower --config.loss.k"),
    ),
    "test_fraction of a data set without one": (
        {"dataset_kwargs.test_fraction": 0.5},
        E("config.dataset_kwargs has option(s) ['test_fraction'] that dataset 'hn_synthetic'"),
    ),
}


@pytest.mark.parametrize("overrides,match", list(CASES.values()), ids=list(CASES))
def test_bad_config_fails_before_compiling(
    tmp_path, tiny_config, no_compile, fails_before_compiling, overrides, match
):
    fails_before_compiling(
        tiny_config(**overrides), tmp_path / "run", validation.ConfigError, match
    )


def test_memory_estimate_warns_near_the_limit_and_scales_with_k(tiny_config):
    c = tiny_config()
    small = memory.estimate_step_memory(c, batch_size=12, input_shape=(16,), num_params=100)
    c.loss.k = 80
    big = memory.estimate_step_memory(c, batch_size=12, input_shape=(16,), num_params=100)
    assert big["loss"] - small["loss"] == pytest.approx(4 * 4 * 12 * (80 - 8))  # O(N k) floats
    c.loss.draw = "pair"
    pair = memory.estimate_step_memory(c, batch_size=12, input_shape=(16,), num_params=100)
    assert pair["loss"] == pytest.approx(4 * (8 * 12**2 + 3 * 12**2 * 80))  # O(N² k)
    kw = dict(batch_size=12, input_shape=(16,), num_params=100)
    with pytest.warns(UserWarning, match="close to the limit"):
        memory.check_memory(c, limit=1.5 * pair["total"], **kw)
    with pytest.raises(validation.ConfigError, match="the given limit is"):
        memory.check_memory(c, limit=0.5 * pair["total"], **kw)
    limit, source = memory.available_memory()
    assert limit > 2**20 and source


def _parse(config_file: str, *args: str) -> ml_collections.ConfigDict:
    # The config flag finds its `--config.<field>` overrides in `sys_argv` (sys.argv when
    # unset, which under pytest holds pytest's own arguments), so it gets the same argv.
    argv = ["prog", f"--config={os.path.join(ROOT, config_file)}", *args]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", None, "", flag_values=fv, lock_config=True, sys_argv=argv
    )
    fv(argv)
    return fv.config


def test_optional_data_fields_can_be_set_from_the_command_line(tmp_path):
    c = _parse(
        "configs/digits.py",
        "--config.dataset_kwargs.max_examples=5",
        "--config.dataset_kwargs.test_fraction=0.5",
        f"--config.data_dir={tmp_path}",
        "--config.image_size=16",
    )
    assert c.dataset_kwargs.max_examples == 5 and c.dataset_kwargs.test_fraction == 0.5
    assert c.data_dir == str(tmp_path) and c.image_size == 16
    validation.validate_config(c)
    c = _parse("configs/tinyimagenet.py", f"--config.manual_dir={tmp_path}")
    assert c.manual_dir == str(tmp_path)
    validation.validate_config(c)
    # Unset again from the command line: an empty value (or the text None) means unset.
    c = _parse("configs/digits.py", "--config.manual_dir=", "--config.data_dir=None")
    assert validation.optional_path(c.manual_dir) is None
    assert validation.optional_path(c.data_dir) is None
    validation.validate_config(c)


def test_test_fraction_and_max_examples_reach_the_data(tmp_path):
    from hncl_jax import train

    c = _parse(
        "configs/digits.py",
        "--config.dataset_kwargs.test_fraction=0.5",
        "--config.dataset_kwargs.max_examples=40",
    )
    train_ds, test_ds = train.load_data(c)
    assert len(train_ds.labels) == len(test_ds.labels) == 40
    full_train, full_test = train.load_data(_parse("configs/digits.py"))
    assert len(full_test.labels) / (len(full_train.labels) + len(full_test.labels)) < 0.25


def test_synthetic_images_for_a_resnet_from_the_command_line():
    """HN §5 feeds a ResNet the synthetic vectors reshaped to 32×32×3: the flags of
    `python -m hncl_jax.main --config=configs/synthetic.py --config.model=resnet18
    --config.dataset_kwargs.image_shape="(32,32,3)"` give a valid config whose data and
    model fit together (model shapes only; nothing compiles)."""
    import jax
    import jax.numpy as jnp

    from hncl_jax import train

    c = _parse(
        "configs/synthetic.py",
        "--config.model=resnet18",
        "--config.dataset_kwargs.image_shape=(32,32,3)",
    )
    assert c.dataset_kwargs.image_shape == (32, 32, 3) and c.model == "resnet18"
    validation.validate_config(c)
    train_ds, test_ds = train.load_data(c)
    assert train_ds.images.shape == test_ds.images.shape == (300, 32, 32, 3)
    model = train.create_model(c, train_ds.num_classes)
    sample = jnp.asarray(train_ds.images[:2])
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), sample, train=False))
    _, f = jax.eval_shape(lambda v: model.apply(v, sample, train=False), variables)
    assert f.shape == (2, 2)  # d = C - 1
    # Unset (the default), the vectors stay flat for the MLP.
    flat = _parse("configs/synthetic.py")
    assert flat.dataset_kwargs.image_shape is None
    validation.validate_config(flat)
