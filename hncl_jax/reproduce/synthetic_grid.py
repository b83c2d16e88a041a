"""The hard-negative paper's synthetic grid [HN §5, Fig. 2] trained in one compiled program.

`train_grid(config)` trains every run of the grid that `config.grid` spans: for each
seed, positive strategy, setting and β, the trainer's run on the config
`run_config(config, run)` (the same fields with that seed, `loss.name`, `loss.beta` and
positives). The runs are built from the trainer's own pieces (`train.create_model`,
`train.create_train_state` with `train.make_optimizer`, `train.make_objective`,
`train.make_batch_fn`, `train.train_step`, `train.theorem_bound`), so every run equals
`train.train_and_evaluate` on its run config: the same initialisation, batches, views
and negative draws. The runs of one (seed, positives, supervised?) group are vmapped
with β traced ("scl"/"ucl" run as "hscl"/"hucl" at β = 0, which the loss makes
identical), the steps are scanned, and the groups of one seed are compiled into one
program.

    from hncl_jax.reproduce import synthetic_grid

    config = synthetic_grid.get_config()  # configs/synthetic.py plus config.grid
    config.grid.betas = (10.0, 30.0)
    result = synthetic_grid.train_grid(config)
    result.rows[0]  # {"seed": 0, "setting": "scl", "beta": 0.0, "final_loss": ..., ...}

`config` is a trainer config (every field as in `configs/default.py`) plus the section
`grid`:

* `grid.betas`: the hardness levels of "hscl"/"hucl" (β = 0 alone for "scl", "ucl");
* `grid.settings`: a subset of `losses.SETTINGS`;
* `grid.positives`: a subset of `POSITIVES`: "labels" (`config.positives = "labels"`) or
  "noise_views" (`config.positives = "views"`, `config.views = "noise"`,
  std `config.noise_std`), docs/math.md §3;
* `grid.seeds`: the seeds (empty: `config.seed` alone); each seed is one program;
* `grid.average_last`: `final_loss` averages the last this many epochs (the sampled UCL
  loss is noisy around its minimum).

`config.loss.name`, `config.loss.beta` and `config.positives` are set by the grid for
each run; `config.eval_every_epochs` records NC metrics every so many epochs (0: only
at the end) and must divide `config.num_epochs`.

References:
  [HN] Jiang et al., "Hard-Negative Sampling for Contrastive Learning" (earlier version:
  arXiv:2209.00078), §5.1, Fig. 2; docs/math.md §11, §13.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hncl_jax import evaluation, geometry, losses, train
from hncl_jax.configs import synthetic
from hncl_jax.data import augment
from hncl_jax.train import validation

POSITIVES = ("labels", "noise_views")
SUPERVISED = ("scl", "hscl")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """`configs/synthetic.py` (the paper's sizes; `arg` as there) plus the `grid` section.

    The defaults are the paper's grid: β ∈ {10, 30, 50} beside β = 0, the four settings,
    label and noise-view positives (16 runs), seed `config.seed`, NC metrics at the end.
    """
    c = synthetic.get_config(arg)
    c.eval_every_epochs = 0  # NC metrics of the final representations only
    c.grid = ml_collections.ConfigDict()
    c.grid.betas = (10.0, 30.0, 50.0)
    c.grid.settings = ("scl", "hscl", "ucl", "hucl")
    c.grid.positives = POSITIVES
    c.grid.seeds = ()  # empty: config.seed alone
    c.grid.average_last = 10
    return c


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of the grid."""

    seed: int
    positives: str
    setting: str
    beta: float

    @property
    def supervised(self) -> bool:
        return self.setting in SUPERVISED


@dataclasses.dataclass
class SyntheticGridResult:
    """What `train_grid` returns (numpy arrays, R runs in `grid_runs` order).

    Attributes:
      rows: one dict per run: seed, setting, beta, positives, final_loss (mean of the last
        `grid.average_last` epochs' losses), bound (`train.theorem_bound`: the Theorem 2
        minimum for SCL/HSCL; the Theorem 3 minimum for UCL, a lower bound for HUCL; with
        noise views the latent classes of UCL/HUCL are the N reference examples,
        docs/math.md §0; None where the theorems do not apply), gap = final_loss - bound,
        the NC metrics of the final train representations, dc_rank and ncm_acc (test
        nearest-class-mean accuracy).
      loss_curves: (R, num_epochs) mean training loss of each epoch.
      nc_curves: metric -> (R, num_epochs // eval_every) NC metrics of the train
        representations after every `eval_every_epochs` epochs.
      z: (R, N, d) final train representations; z_test (R, M, d) test ones.
      z_init: (N, d) the representations at initialisation of the first seed's runs
        (the runs of one seed share them); `z_init_by_seed` holds every seed's.
      labels, test_labels: (N,), (M,) class labels of the first seed's data.
      seconds: wall time of the compiled programs (compilation included).
      z_init_by_seed: seed -> (N, d) representations at initialisation.
    """

    rows: list[dict[str, Any]]
    loss_curves: np.ndarray
    nc_curves: dict[str, np.ndarray]
    z: np.ndarray
    z_test: np.ndarray
    z_init: np.ndarray
    labels: np.ndarray
    test_labels: np.ndarray
    seconds: float
    z_init_by_seed: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- the grid
def grid_seeds(config: ml_collections.ConfigDict) -> list[int]:
    """`config.grid.seeds`, or `[config.seed]` when it is empty."""
    seeds = [int(s) for s in (config.grid.get("seeds") or ())]
    return seeds or [int(config.seed)]


def grid_runs(config: ml_collections.ConfigDict) -> list[Run]:
    """Every run: for each seed, each positive strategy, each setting, each β (β = 0 only
    for "scl" and "ucl"), in this order (β varying fastest)."""
    g = config.grid
    return [
        Run(seed, p, s, float(b))
        for seed in grid_seeds(config)
        for p in g.positives
        for s in g.settings
        for b in ([0.0] if s in ("scl", "ucl") else g.betas)
    ]


def run_config(config: ml_collections.ConfigDict, run: Run) -> ml_collections.ConfigDict:
    """The trainer config of one run (without `grid`): `train.train_and_evaluate` on it
    trains the same run as `train_grid`."""
    c = copy.deepcopy(config)
    if "grid" in c:
        del c["grid"]
    c.seed = run.seed
    c.loss.name = run.setting
    c.loss.beta = float(run.beta)
    if run.positives == "labels":
        c.positives = "labels"
    else:
        c.positives, c.views = "views", "noise"
    return c


def check_config(config: ml_collections.ConfigDict) -> list[Run]:
    """Checks the grid and every run's config; returns `grid_runs(config)`.

    Raises:
      ValueError: an unknown setting or positive strategy, a negative β, no runs, an
        `eval_every_epochs` that does not divide `num_epochs`, or a run config that
        `validation.validate_config` refuses (`validation.ConfigError`).
    """
    if "grid" not in config:
        raise ValueError(
            "synthetic_grid: the config has no `grid` section; start from "
            "synthetic_grid.get_config()."
        )
    g = config.grid
    for s in g.settings:
        if s not in losses.SETTINGS:
            raise ValueError(f"synthetic_grid: setting {s!r} not in {losses.SETTINGS}.")
    for p in g.positives:
        if p not in POSITIVES:
            raise ValueError(f"synthetic_grid: positives {p!r} not in {POSITIVES}.")
    if any(float(b) < 0 for b in g.betas):
        raise ValueError(f"synthetic_grid: grid.betas={tuple(g.betas)} must all be >= 0.")
    runs = grid_runs(config)
    if not runs:
        raise ValueError("synthetic_grid: no runs (set grid.settings, grid.positives, grid.betas).")
    every = config.eval_every_epochs or config.num_epochs
    if config.num_epochs < 1 or config.num_epochs % every:
        raise ValueError(
            f"synthetic_grid: eval_every_epochs={config.eval_every_epochs} must divide "
            f"num_epochs={config.num_epochs}."
        )
    if int(g.average_last) < 1:
        raise ValueError(f"synthetic_grid: grid.average_last={g.average_last} must be >= 1.")
    for run in dict.fromkeys(dataclasses.replace(r, beta=0.0) for r in runs):
        validation.validate_config(run_config(config, run), num_devices=1)
    return runs


# --------------------------------------------------------------------------- one seed
def _traced_beta_config(config: ml_collections.ConfigDict, beta: jax.Array):
    """A copy of `config` whose `loss.beta` is the traced β of one vmapped run.

    A ConfigDict is type safe (a float field refuses a tracer), so the copy is not.
    `train.make_objective` reads `loss.beta` while the objective is traced.
    """
    c = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
    c.loss.beta = beta
    return c


@dataclasses.dataclass
class _Setup:
    """What the programs of one seed share: data, model, initial state, sizes."""

    config: ml_collections.ConfigDict  # a run config of the seed (any setting)
    train_ds: Any
    test_ds: Any
    model: Any
    state0: train.TrainState
    batch_size: int
    steps_per_epoch: int
    num_classes: int


def _setup(config: ml_collections.ConfigDict, seed: int) -> _Setup:
    """Data, model and the initial state (`train.create_train_state`) of one seed."""
    c = run_config(config, Run(seed, "labels", "hscl", 0.0))
    train_ds, test_ds = train.load_data(c)
    num_classes = train_ds.num_classes
    n = len(train_ds.labels)
    validation.validate_against_data(c, num_classes, num_examples=n, num_devices=1)
    batch_size = min(c.batch_size, n)
    steps_per_epoch = n // batch_size
    model = train.create_model(c, num_classes)
    sample_x = augment.preprocess(jnp.asarray(train_ds.images[:2]))
    state0 = train.create_train_state(c, model, sample_x, num_classes, steps_per_epoch)
    return _Setup(c, train_ds, test_ds, model, state0, batch_size, steps_per_epoch, num_classes)


def _group_fn(config, setup: _Setup, positive: str, supervised: bool):
    """The vmapped training of one group's runs: (betas, data) -> per-run outputs."""
    setting = "hscl" if supervised else "hucl"
    c = run_config(config, Run(setup.config.seed, positive, setting, 0.0))
    num_classes = setup.num_classes
    every = c.eval_every_epochs or c.num_epochs
    steps_per_eval = every * setup.steps_per_epoch
    batch_fn = train.make_batch_fn(
        c, batch_size=setup.batch_size, steps_per_epoch=setup.steps_per_epoch
    )
    features = functools.partial(_features, setup.model, c.normalization)

    def one_run(beta, images, labels, visible, test_images):
        objective = train.make_objective(_traced_beta_config(c, beta), num_classes)
        step = functools.partial(
            train.train_step,
            seed=c.seed,
            objective=objective,
            normalization=c.normalization,
            batch_fn=batch_fn,
            batch_sharding=None,
        )

        def body(state, _):
            state, metrics = step(state, images, labels, visible)
            return state, metrics["loss"]

        def chunk(state, _):
            state, step_losses = jax.lax.scan(body, state, None, length=steps_per_eval)
            nc = geometry.nc_metrics(features(state, images), labels, num_classes)
            return state, (step_losses, nc)

        state, (step_losses, nc) = jax.lax.scan(
            chunk, setup.state0, None, length=c.num_epochs // every
        )
        z = features(state, images)
        return step_losses.reshape(-1), nc, z, features(state, test_images)

    return jax.vmap(one_run, in_axes=(0, None, None, None, None))


def _features(model, normalization: str, state: train.TrainState, x: jax.Array) -> jax.Array:
    """Normalized embeddings of `x` in inference mode (BN uses the running statistics)."""
    variables = {"params": state.params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
    _, f = model.apply(variables, augment.preprocess(x), train=False)
    return geometry.normalize(f, normalization)


def _train_seed(config, runs: Sequence[Run], seed: int):
    """Trains the runs of one seed in one program; returns (setup, outputs, seconds).

    outputs: (positives, supervised) -> (indices into `runs`, step losses (r, steps),
    NC metrics, z (r, N, d), z_test (r, M, d)), and "z_init" -> (N, d).
    """
    setup = _setup(config, seed)
    groups: dict[tuple[str, bool], list[int]] = {}
    for i, run in enumerate(runs):
        if run.seed == seed:
            groups.setdefault((run.positives, run.supervised), []).append(i)
    fns = {g: _group_fn(config, setup, *g) for g in groups}
    init_features = functools.partial(_features, setup.model, setup.config.normalization)

    @jax.jit
    def program(group_betas, images, labels, test_images):
        out = {g: fns[g](group_betas[g], images, labels, labels, test_images) for g in fns}
        return out, init_features(setup.state0, images)

    group_betas = {
        g: jnp.asarray([runs[i].beta for i in idx], jnp.float32) for g, idx in groups.items()
    }
    start = time.perf_counter()
    out, z_init = jax.block_until_ready(
        program(
            group_betas,
            jnp.asarray(setup.train_ds.images),
            jnp.asarray(setup.train_ds.labels),
            jnp.asarray(setup.test_ds.images),
        )
    )
    seconds = time.perf_counter() - start
    out = jax.device_get(out)
    return setup, {g: (groups[g], *out[g]) for g in groups}, np.asarray(z_init), seconds


# --------------------------------------------------------------------------- results
def _bound(config, run: Run, num_classes: int, num_examples: int) -> float | None:
    """`train.theorem_bound` of the run; with noise views the latent classes of UCL/HUCL
    are the N reference examples (a negative shares the anchor's with probability 1/N),
    those of SCL/HSCL the C classes."""
    c = run_config(config, run)
    if run.positives == "labels":
        return train.theorem_bound(c, num_classes)
    c.positives = "labels"
    return train.theorem_bound(c, num_classes if run.supervised else num_examples)


def _row(config, run: Run, setup: _Setup, curve: np.ndarray, z, z_test) -> dict[str, Any]:
    """The result row of one run (see `SyntheticGridResult.rows`)."""
    labels, num_classes = setup.train_ds.labels, setup.num_classes
    average_last = int(config.grid.average_last)
    final = float(curve[-min(average_last, len(curve)) :].mean())
    bound = _bound(config, run, num_classes, len(labels))
    row = {"seed": run.seed, "setting": run.setting, "beta": run.beta}
    row.update(positives=run.positives, final_loss=final, bound=bound)
    row["gap"] = None if bound is None else final - bound
    row.update(evaluation.collapse_report(z, labels, num_classes)[0])
    row["ncm_acc"] = evaluation.ncm_accuracy(z, labels, z_test, setup.test_ds.labels, num_classes)
    return row


def train_grid(config: ml_collections.ConfigDict) -> SyntheticGridResult:
    """Trains every run of `config.grid` (see the module docstring); one program a seed.

    Args:
      config: a trainer config with a `grid` section, as `get_config` returns.

    Returns:
      A `SyntheticGridResult`, the runs in `grid_runs(config)` order.

    Raises:
      ValueError: see `check_config`.
    """
    runs = check_config(config)
    num_epochs = config.num_epochs
    num_evals = num_epochs // (config.eval_every_epochs or num_epochs)
    loss_curves = np.zeros((len(runs), num_epochs))
    nc_curves = {m: np.zeros((len(runs), num_evals)) for m in evaluation.NC_METRICS}
    z, z_test, rows = [None] * len(runs), [None] * len(runs), [None] * len(runs)
    z_inits, first, seconds = {}, None, 0.0
    for seed in grid_seeds(config):
        setup, out, z_inits[seed], secs = _train_seed(config, runs, seed)
        first, seconds = first or setup, seconds + secs
        for idx, step_losses, nc, zg, ztg in out.values():
            per_epoch = np.asarray(step_losses).reshape(len(idx), num_epochs, -1)
            loss_curves[idx] = per_epoch.mean(-1)
            for m in nc_curves:
                nc_curves[m][idx] = np.asarray(nc[m])
            for j, i in enumerate(idx):
                z[i], z_test[i] = np.asarray(zg[j]), np.asarray(ztg[j])
                rows[i] = _row(config, runs[i], setup, loss_curves[i], z[i], z_test[i])
    return SyntheticGridResult(
        rows=rows,
        loss_curves=loss_curves,
        nc_curves=nc_curves,
        z=np.stack(z).astype(np.float32),
        z_test=np.stack(z_test).astype(np.float32),
        z_init=z_inits[grid_seeds(config)[0]],
        labels=np.asarray(first.train_ds.labels),
        test_labels=np.asarray(first.test_ds.labels),
        seconds=seconds,
        z_init_by_seed=z_inits,
    )
