"""Bad configs, data and workdirs fail fast, with a message naming the field, value and fix.

The cases go through `train.train_and_evaluate` with the train step's and the feature
extractor's builders replaced by functions that fail the test: the error must come
before anything is compiled, and before the workdir is created (or, for a workdir of
another run, changed). A few checks that need no trainer (device count, the collapse
warning, the shipped configs) call `hncl_jax.train.validation` directly.
"""

from __future__ import annotations

import functools
import logging
import os
import re

import jax.numpy as jnp
import pytest

from configs import cifar10 as cifar10_config
from configs import tinyimagenet as tinyimagenet_config
from hncl_jax import data, models, train
from hncl_jax.data import augment
from hncl_jax.train import checkpointing, validation
from hncl_jax.train import workdir as workdir_lib
from tests.conftest import assert_fails_before_compiling as fails_before_compiling
from tests.conftest import make_tiny_config

# Not strict: some tests add fields on purpose (a misspelt option must be refused).
tiny_config = functools.partial(make_tiny_config, strict=False)


E = re.escape
CASES = {
    "unknown dataset": (
        {"dataset": "cifar11"},
        E("config.dataset='cifar11' is not one of") + ".*" + E("Did you mean 'cifar10'?"),
    ),
    "unknown model": (
        {"model": "resnet19"},
        E("config.model='resnet19'") + ".*" + E("Did you mean 'resnet18'?"),
    ),
    "unknown loss": (
        {"loss.name": "hscll"},
        E("config.loss.name='hscll'") + ".*" + E("Did you mean 'hscl'? Set --config.loss.name"),
    ),
    "unknown normalization": (
        {"normalization": "unit_sphre"},
        E("config.normalization='unit_sphre'") + ".*" + E("Did you mean 'unit_sphere'?"),
    ),
    "unknown hardening": (
        {"loss.hardening": "expo"},
        E("config.loss.hardening='expo' is not one of 'none', 'exponential', 'polynomial'."),
    ),
    "unknown estimator": (
        {"loss.estimator": "reweight"},
        E("config.loss.estimator='reweight'") + ".*" + E("Did you mean 'reweighted'?"),
    ),
    "unknown psi": (
        {"loss.psi": "infonse"},
        E("config.loss.psi='infonse'") + ".*" + E("Did you mean 'infonce'?"),
    ),
    "negative beta": (
        {"loss.beta": -1.0},
        E("config.loss.beta=-1.0 must be a non-negative finite number; set --config.loss.beta."),
    ),
    "infinite beta": ({"loss.beta": float("inf")}, E("config.loss.beta=inf must be")),
    "zero epsilon": (
        {"loss.epsilon": 0.0},
        E("config.loss.epsilon=0.0 must be a positive finite number"),
    ),
    "k < 1": ({"loss.k": 0}, E("config.loss.k=0 must be a positive integer; set --config.loss.k")),
    "negative noise std": (
        {"positives": "views", "views": "noise", "loss.name": "hucl", "noise_std": -0.1},
        E("config.noise_std=-0.1 must be a non-negative finite number"),
    ),
    "label fraction 0": (
        {"label_fraction": 0.0},
        E("config.label_fraction=0.0 must lie in (0, 1]") + ".*" + E("label_fraction=0.1"),
    ),
    "label fraction > 1": ({"label_fraction": 1.5}, E("config.label_fraction=1.5 must lie in")),
    "hidden labels with a supervised loss": (
        {"label_fraction": 0.1},
        E("config.label_fraction=0.1 hides labels, but config.loss.name='hscl' is supervised"),
    ),
    "VICReg without views": (
        {"loss.name": "vicreg"},
        E("config.loss.name='vicreg' needs two views per example, but config.positives='labels'")
        + ".*"
        + E("--config.positives=views"),
    ),
    "reweighted triplet": (
        {"loss.estimator": "reweighted", "loss.psi": "triplet"},
        E("config.loss.psi='triplet'; use --config.loss.estimator=sampled"),
    ),
    "SimCLR crops of vectors": (
        {"positives": "views", "views": "simclr", "loss.name": "hucl"},
        E("config.views='simclr' crops") + ".*" + E("--config.views=noise"),
    ),
    "image_size of vectors": (
        {"image_size": 32},
        E("config.image_size=32 resizes images, but config.dataset='hn_synthetic' holds vectors"),
    ),
    "manual_dir of another data set": (
        {"manual_dir": "/data/tiny"},
        E("config.manual_dir='/data/tiny' is the Tiny-ImageNet archive folder"),
    ),
    "misspelt dataset option": (
        {"dataset_kwargs.per_klass": 5},
        E("config.dataset_kwargs has option(s) ['per_klass'] that dataset 'hn_synthetic'"),
    ),
    "misspelt model option": (
        {"model_kwargs.hidden": (8,)},
        E("config.model_kwargs={'hidden': (8,), 'hidden_sizes': (16,)} does not fit")
        + ".*"
        + E("unknown option(s) ['hidden']"),
    ),
    "repeated knn k": ({"knn_k": (5, 5)}, E("config.knn_k=(5, 5) must be a non-empty tuple")),
    "unknown optimizer": (
        {"optimizer.name": "adamm"},
        E("config.optimizer.name='adamm'") + ".*" + E("Did you mean 'adam'?"),
    ),
    "momentum 1": (
        {"optimizer.name": "sgd", "optimizer.momentum": 1.0},
        E("config.optimizer.momentum=1.0 must lie in [0, 1) for config.optimizer.name='sgd'"),
    ),
    "zero learning rate": (
        {"optimizer.learning_rate": 0.0},
        E("config.optimizer.learning_rate=0.0 must be a positive"),
    ),
    "no checkpoints kept": ({"max_checkpoints": 0}, E("config.max_checkpoints=0 must be")),
    "probe of zero epochs": (
        {"linear_probe": "end", "probe_epochs": 0},
        E("config.probe_epochs=0 must be a positive integer"),
    ),
    "negative seed": ({"seed": -1}, E("config.seed=-1 must be a non-negative integer")),
    "missing init_from": (
        {"init_from": "/nonexistent/run"},
        E("config.init_from='/nonexistent/run' does not exist"),
    ),
    # The following need the data (C = 3 classes): checked after loading, before compiling.
    "CLOP, orthonormal prototypes, dim < C": (
        {"clop.weight": 1.0, "embed_dim": 2},
        E("config.embed_dim=2 < 3: CLOP's orthonormal prototypes for 3 classes need embed_dim ≥ 3")
        + ".*"
        + E("--config.embed_dim=3"),
    ),
    "CLOP, orthonormal prototypes, default dim C - 1": (
        {"clop.weight": 1.0},
        E("config.embed_dim=-1 (C - 1 = 2) < 3: CLOP's orthonormal prototypes"),
    ),
    "CLOP, simplex prototypes, dim < C - 1": (
        {"clop.weight": 1.0, "clop.prototypes": "simplex", "embed_dim": 1},
        E("config.embed_dim=1 < 2: CLOP's simplex prototypes for 3 classes need embed_dim ≥ 2"),
    ),
    "one class": (
        {"dataset_kwargs.num_classes": 1},
        E("has 1 class; contrastive learning and the evaluation need at least 2"),
    ),
}


@pytest.mark.parametrize("overrides,match", list(CASES.values()), ids=list(CASES))
def test_bad_config_fails_before_compiling(tmp_path, no_compile, overrides, match):
    fails_before_compiling(
        tiny_config(**overrides), tmp_path / "run", validation.ConfigError, match
    )


def test_batch_not_divisible_by_the_devices():
    with pytest.raises(
        validation.ConfigError,
        match=E("config.batch_size=12 is not divisible by the 8 devices")
        + ".*"
        + E("--config.batch_size=8"),
    ):
        validation.validate_config(tiny_config(), num_devices=8)
    validation.validate_config(tiny_config(batch_size=16), num_devices=8)


def test_embed_dim_below_c_minus_1_warns_that_collapse_is_unattainable():
    with pytest.warns(UserWarning, match=E("config.embed_dim=1 < C - 1 = 2: Neural-Collapse")):
        validation.validate_against_data(tiny_config(embed_dim=1), num_classes=3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validation.validate_against_data(tiny_config(embed_dim=2), num_classes=3)


def test_cifar_not_prepared_says_how_to_prepare(tmp_path, no_compile):
    c = cifar10_config.get_config("smoke")
    c.data_dir = str(tmp_path / "tfds")
    fails_before_compiling(
        c,
        tmp_path / "run",
        data.DatasetNotPreparedError,
        E("cifar10 is not prepared in data_dir=") + "(.|\n)*" + E("download_and_prepare()"),
    )


def test_tinyimagenet_not_prepared_says_where_to_download(tmp_path, no_compile):
    c = tinyimagenet_config.get_config("smoke")
    c.data_dir = str(tmp_path / "tfds")
    fails_before_compiling(
        c,
        tmp_path / "run",
        data.DatasetNotPreparedError,
        E("tinyimagenet is not prepared")
        + "(.|\n)*"
        + E("http://cs231n.stanford.edu/tiny-imagenet-200.zip")
        + "(.|\n)*"
        + E("manual_dir"),
    )


def test_corrupt_tinyimagenet_file_is_named_and_a_fixed_archive_builds(tmp_path, no_compile):
    from hncl_jax.data import tinyimagenet
    from tests.conftest import TRAIN_PER_CLASS, WNIDS, make_archive

    manual = tmp_path / "manual"
    manual.mkdir()
    make_archive(str(manual), corrupt="n02_3.JPEG")
    c = tinyimagenet_config.get_config("smoke")
    c.data_dir = str(tmp_path / "tfds")
    c.manual_dir = str(manual)
    c.dataset_kwargs.config = tinyimagenet.TinyImagenetConfig(
        name="mini", num_classes=len(WNIDS), train_per_class=TRAIN_PER_CLASS, val_per_class=2
    )
    fails_before_compiling(
        c,
        tmp_path / "run",
        ValueError,
        E("corrupt or unexpected image tiny-imagenet-200/train/n02/images/n02_3.JPEG"),
    )
    # The failed build left nothing that counts as prepared: a repaired archive builds.
    os.remove(manual / tinyimagenet.ARCHIVE)
    make_archive(str(manual))
    ds = data.load_dataset(
        "tinyimagenet",
        "train",
        data_dir=c.data_dir,
        manual_dir=c.manual_dir,
        config=c.dataset_kwargs.config,
    )
    assert ds.images.shape == (len(WNIDS) * TRAIN_PER_CLASS, 64, 64, 3)


def _save_state(config, directory) -> None:
    """Writes a checkpoint of a freshly initialised state of `config` (no training)."""
    train_ds, _ = train.load_data(config)
    c = train_ds.num_classes
    model = models.create_model(
        config.model, embed_dim=validation.embed_dim(config, c), **dict(config.model_kwargs)
    )
    state = train.create_train_state(
        config, model, augment.preprocess(jnp.asarray(train_ds.images[:2])), c, 5
    )
    with checkpointing.Checkpointer(directory) as ckpt:
        ckpt.save(5, state, {"epoch": 1})


def test_warm_start_of_another_architecture_names_the_leaves(tmp_path, no_compile):
    _save_state(
        tiny_config(**{"model_kwargs.hidden_sizes": (8,)}), str(tmp_path / "src/checkpoints")
    )
    c = tiny_config(init_from=str(tmp_path / "src"))
    fails_before_compiling(
        c,
        tmp_path / "run",
        ValueError,
        E("do not match the model")
        + "(.|\n)*"
        + E("params/mlp/dense_0/kernel: expected (16, 16) float32, found (16, 8) float32"),
    )


def test_workdir_of_another_config_is_refused_unless_allowed(tmp_path, no_compile, caplog):
    w = tmp_path / "run"
    w.mkdir()
    workdir_lib.save_fingerprint(str(w), validation.config_fingerprint(tiny_config()))
    c = tiny_config(**{"loss.beta": 5.0, "model_kwargs.hidden_sizes": (8,)})
    fails_before_compiling(
        c,
        w,
        validation.ConfigError,
        E(f"workdir {w} holds a run of a different config (")
        + ".*"
        + E("loss.beta: 10.0 → 5.0")
        + ".*"
        + E("model_kwargs.hidden_sizes: [16] → [8]")
        + ".*"
        + E("--config.allow_config_change=True"),
    )
    # Run-length and logging fields may change on resume.
    fp = validation.config_fingerprint(tiny_config(num_epochs=100, log_every_steps=7))
    workdir_lib.check_workdir(str(w), fp, allow_change=False)
    with caplog.at_level(logging.WARNING):
        workdir_lib.check_workdir(str(w), validation.config_fingerprint(c), allow_change=True)
    assert "allowed by config.allow_config_change" in caplog.text


def test_config_json_is_the_one_record_and_replaces_the_old_fingerprint(tmp_path, caplog):
    w = tmp_path / "run"
    w.mkdir()
    workdir_lib.save_fingerprint(str(w), validation.config_fingerprint(tiny_config()))
    path = workdir_lib.save_config_record(str(w), tiny_config())
    assert path == str(w / workdir_lib.CONFIG_FILE)
    assert sorted(os.listdir(w)) == [workdir_lib.CONFIG_FILE]  # the old record is gone
    fp = validation.config_fingerprint(tiny_config(num_epochs=100, log_every_steps=7))
    workdir_lib.check_workdir(str(w), fp, allow_change=False, has_checkpoint=True)
    changed = validation.config_fingerprint(tiny_config(**{"loss.beta": 5.0}))
    with pytest.raises(validation.ConfigError, match=E("loss.beta: 10.0 → 5.0")):
        workdir_lib.check_workdir(str(w), changed, allow_change=False, has_checkpoint=True)
    # Either record missing: the other (or the checkpoint's) still refuses the change.
    os.remove(w / workdir_lib.CONFIG_FILE)
    with pytest.raises(validation.ConfigError, match=E("recorded in its latest checkpoint")):
        workdir_lib.check_workdir(
            str(w),
            changed,
            allow_change=False,
            has_checkpoint=True,
            checkpoint_fingerprint=validation.config_fingerprint(tiny_config()),
        )
    with pytest.raises(validation.ConfigError, match="no record of their config"):
        workdir_lib.check_workdir(str(w), changed, allow_change=False, has_checkpoint=True)
    (w / workdir_lib.CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(validation.ConfigError, match="cannot be read"):
        workdir_lib.check_workdir(str(w), changed, allow_change=True)


def test_unreadable_fingerprint_and_file_workdir(tmp_path, no_compile):
    w = tmp_path / "run"
    w.mkdir()
    (w / workdir_lib.FINGERPRINT_FILE).write_text("{half")
    fails_before_compiling(
        tiny_config(),
        w,
        validation.ConfigError,
        E(f"{w / workdir_lib.FINGERPRINT_FILE}") + ".*" + E("cannot be read"),
    )
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(validation.ConfigError, match=E(f"workdir {f} is a file")):
        train.train_and_evaluate(tiny_config(), str(f))


NUM_CLASSES = {
    "hn_synthetic": 3,
    "clop_synthetic": 3,
    "digits": 10,
    "cifar10": 10,
    "cifar100": 100,
    "tinyimagenet": 200,
}


@pytest.mark.parametrize(
    "name",
    ["default", "synthetic", "clop_synthetic", "clop_cifar100", "cifar10", "cifar100", "digits"]
    + ["tinyimagenet"],
)
def test_every_shipped_config_is_valid(name):
    import importlib
    import warnings

    module = importlib.import_module(f"configs.{name}")
    for arg in (None, "smoke"):
        c = module.get_config(arg)
        validation.validate_config(c)
        num_classes = c.dataset_kwargs.get("num_classes", NUM_CLASSES[c.dataset])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no config of ours gives up on collapse
            validation.validate_against_data(c, num_classes)


def test_vocabularies_are_the_deciding_modules_own():
    """The names validation accepts are those the trainer and the lower floors decide on."""
    assert validation.UNSUPERVISED_LOSSES == (
        "ucl",
        "hucl",
        "simclr_form",
        "nt_xent",
        "dcl",
        "dclw",
        "vicreg",
        "barlow_twins",
    )
    assert validation.VECTOR_DATASETS == ("hn_synthetic", "clop_synthetic")
    for field, table in (("name", train.OPTIMIZERS), ("schedule", train.SCHEDULES)):
        for name in table:
            validation.validate_config(tiny_config(**{f"optimizer.{field}": name}))
        with pytest.raises(validation.ConfigError, match=f"config.optimizer.{field}='nope'"):
            validation.validate_config(tiny_config(**{f"optimizer.{field}": "nope"}))
