"""Evaluation of frozen representations: features, NCM, kNN, linear probe, collapse report.

Pure functions of arrays (docs/math.md §12): no config objects, no I/O. The caller jits the
model's feature function; the classifiers below are jitted here and run on the default
device in chunks, so CIFAR-sized sets (50k train x 10k test) fit in memory.

* `extract_features` — `(h, z)` of a whole dataset in fixed-size (padded) batches.
* `ncm_accuracy` — nearest class mean, Euclidean (the classifier of the HN code).
* `knn_accuracy` — k nearest neighbours: plain majority vote with Euclidean distance
  (k = 5, as in CLOP's synthetic test), or cosine similarity with exp(s/τ) weights
  (k = 200, τ = 0.07, the weighted kNN of InstDisc, used by SimCLR-style papers).
* `linear_probe` — multinomial logistic regression on standardized features, AdamW with
  a cosine schedule, the whole training one jitted `lax.scan`; top-1 and top-5.
* `collapse_report` — NC metrics, DC spectrum and DC rank (docs/math.md §10) as flat floats.
* `collapse_extras` — beside those: Papyan et al.'s NC1-NC4, RankMe, the smallest of
  the C − 1 leading DC values, and (for few classes) per-class values and the spectrum.
* `evaluate_representations` — all of the above on the backbone output `h` and the
  normalized embedding `z`.

Metric keys of `evaluate_representations` (`{split}` is train or test, `{rep}` h or z):

    nc/{split}/z/zero_sum, .../unit_norm, .../equal_inner_product,
    nc/{split}/z/within_class_variance       NC metrics (meaningful for normalized z only)
    nc/{split}/{rep}/dc_rank                 # DC spectrum values > 1e-3
    eval/{split}/{rep}/ncm_acc               NCM fit on train, scored on {split}
    eval/test/{rep}/knn{k}_acc               kNN fit on train, one key per k in knn_k
    eval/test/{rep}/probe_top1, probe_top5   linear probe (only with linear_probe=True)

and with `extended=True` (`collapse_extras`):

    nc/{split}/z/nc1, nc2_equinorm, nc2_equiangular, nc2_maxangle, nc3, nc4
    nc/{split}/{rep}/rankme                  RankMe effective rank
    nc/{split}/z/dc_sv_min                   (C−1)-th normalized DC value (1 at NC)
    nc/{split}/z/class{c}/within_class_variance, .../class{c}/mean_norm,
    nc/{split}/z/dc_spectrum/{i}             only for C <= per_class_limit

and the DC spectra are returned separately under `"{split}/{rep}"` (for plotting).

References:
  [HN] Jiang et al., hard-negative sampling, §5.2-5.3 (NC metrics, NCM accuracy).
  [CLOP] orthonormal prototypes, §5 (kNN k = 5; linear probe top-1/top-5).
  Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination", CVPR 2018 (weighted kNN, k = 200, τ = 0.07).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from hncl_jax import geometry

NC_METRICS = ("zero_sum", "unit_norm", "equal_inner_product", "within_class_variance")
DC_RANK_TOL = 1e-3
_HIGHEST = jax.lax.Precision.HIGHEST

__all__ = [
    "DC_RANK_TOL",
    "NC_METRICS",
    "collapse_extras",
    "collapse_report",
    "evaluate_representations",
    "extract_features",
    "knn_accuracy",
    "linear_probe",
    "ncm_accuracy",
]


def extract_features(
    features_fn: Callable[[Any], tuple[jax.Array, jax.Array]],
    images: ArrayLike,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of every example, in batches of one fixed size.

    The last batch is padded with zeros up to `batch_size` so `features_fn` compiles
    once; padded rows are dropped. `features_fn` must therefore treat rows
    independently (eval mode: BatchNorm with running averages). Batch i+1 is dispatched
    before batch i is copied to the host, so device work and transfers overlap.

    Args:
      features_fn: `batch (B, ...) -> (h (B, dh), z (B, dz))`, jitted by the caller
        (e.g. model.apply in eval mode followed by `geometry.normalize`).
      images: (N, ...) numpy or jax array (already preprocessed as the model expects).
      batch_size: B >= 1.

    Returns:
      `(h, z)` numpy arrays of shapes (N, dh) and (N, dz).
    """
    if batch_size < 1:
        raise ValueError(f"extract_features: batch_size must be >= 1; got {batch_size}.")
    n = int(np.shape(images)[0])
    if n == 0:
        raise ValueError("extract_features: images is empty (N = 0); pass at least one example.")
    xp = jnp if isinstance(images, jax.Array) else np
    hs: list[np.ndarray] = []
    zs: list[np.ndarray] = []
    pending: tuple[Any, Any, int] | None = None
    for start in range(0, n, batch_size):
        batch = images[start : start + batch_size]
        valid = int(batch.shape[0])
        if valid < batch_size:
            pad = xp.zeros((batch_size - valid, *batch.shape[1:]), dtype=batch.dtype)
            batch = xp.concatenate([batch, pad], axis=0)
        h, z = features_fn(batch)
        if pending is not None:
            hs.append(np.asarray(pending[0])[: pending[2]])
            zs.append(np.asarray(pending[1])[: pending[2]])
        pending = (h, z, valid)
    assert pending is not None
    hs.append(np.asarray(pending[0])[: pending[2]])
    zs.append(np.asarray(pending[1])[: pending[2]])
    return np.concatenate(hs, axis=0), np.concatenate(zs, axis=0)


def _check_xy(fn: str, x: jax.Array, y: jax.Array, name: str) -> None:
    if x.ndim != 2:
        raise ValueError(f"{fn}: {name}_x must be (N, d); got shape {x.shape}.")
    if y.shape != (x.shape[0],):
        raise ValueError(
            f"{fn}: {name}_y must be (N,) = ({x.shape[0]},) to match {name}_x; got {y.shape}."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{fn}: {name}_x is empty; pass at least one example.")


def _check_pair(
    fn: str,
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    num_classes: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    if num_classes < 2:
        raise ValueError(f"{fn}: num_classes must be >= 2; got {num_classes}.")
    train_x, test_x = jnp.asarray(train_x, jnp.float32), jnp.asarray(test_x, jnp.float32)
    train_y, test_y = jnp.asarray(train_y, jnp.int32), jnp.asarray(test_y, jnp.int32)
    _check_xy(fn, train_x, train_y, "train")
    _check_xy(fn, test_x, test_y, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"{fn}: train_x and test_x must have the same feature dimension; got "
            f"{train_x.shape[1]} and {test_x.shape[1]}."
        )
    return train_x, train_y, test_x, test_y


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _ncm_predict(
    train_x: jax.Array, train_y: jax.Array, test_x: jax.Array, *, num_classes: int
) -> jax.Array:
    means = geometry.class_means(train_x, train_y, num_classes)
    counts = jax.ops.segment_sum(jnp.ones_like(train_y), train_y, num_segments=num_classes)
    # ‖q - μ‖² up to the per-query constant ‖q‖²; empty classes are never predicted.
    dist = jnp.sum(jnp.square(means), axis=-1) - 2.0 * jnp.matmul(
        test_x, means.T, precision=_HIGHEST
    )
    dist = jnp.where(counts > 0, dist, jnp.inf)
    return jnp.argmin(dist, axis=-1)


def ncm_accuracy(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    num_classes: int,
) -> float:
    """Nearest-class-mean accuracy (Euclidean).

    Class means are those of `train_x` (classes absent from train are never predicted;
    train labels outside [0, C) are ignored); each test row gets the class of its
    nearest mean (ties: the lowest class index).

    Args:
      train_x: (N, d) features the means are computed from.
      train_y: (N,) int labels.
      test_x: (M, d) features to classify.
      test_y: (M,) int labels.
      num_classes: C >= 2.

    Returns:
      Fraction of test rows classified correctly, a Python float in [0, 1].

    References:
      [HN §5] (the classifier of the paper's code); docs/math.md §12.
    """
    train_x, train_y, test_x, test_y = _check_pair(
        "ncm_accuracy", train_x, train_y, test_x, test_y, num_classes
    )
    pred = _ncm_predict(train_x, train_y, test_x, num_classes=num_classes)
    return float(jnp.mean(pred == test_y))


def _unit(x: jax.Array) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("k", "num_classes", "weighted"))
def _knn_predict(
    train_x: jax.Array,
    train_y: jax.Array,
    queries: jax.Array,
    temperature: jax.Array,
    *,
    k: int,
    num_classes: int,
    weighted: bool,
) -> jax.Array:
    if weighted:
        scores = jnp.matmul(queries, train_x.T, precision=_HIGHEST)  # cosine (unit rows)
    else:
        sq = jnp.sum(jnp.square(train_x), axis=-1)
        scores = 2.0 * jnp.matmul(queries, train_x.T, precision=_HIGHEST) - sq[None, :]
    # Larger score = nearer. top_k sorts descending, equal scores by lower train index.
    top, idx = jax.lax.top_k(scores, k)
    # XLA:CPU fuses elementwise consumers of top_k's values into the sort and then runs
    # it ~30x slower (k = 200 over 60,000 rows: 64 s against 2 s a chunk); the barrier
    # keeps them apart and changes no value.
    top, idx = jax.lax.optimization_barrier((top, idx))
    labels = train_y[idx]  # (B, k)
    if weighted:
        # exp(s/τ), shifted by the row maximum (a common factor, so votes keep their order).
        weights = jnp.exp((top - top[:, :1]) / temperature)
    else:
        weights = jnp.ones_like(top)
    rows = jnp.arange(queries.shape[0])[:, None]
    votes = jnp.zeros((queries.shape[0], num_classes), jnp.float32).at[rows, labels].add(weights)
    ranks = jnp.broadcast_to(jnp.arange(k), labels.shape)
    first = jnp.full((queries.shape[0], num_classes), k).at[rows, labels].min(ranks)
    # Tie-break: among the classes with the most votes, the one holding the nearest
    # neighbour (for integer votes this is exact; weighted ties are exact float ties).
    best = jnp.max(votes, axis=-1, keepdims=True)
    return jnp.argmin(jnp.where(votes >= best, first, k + 1), axis=-1)


def knn_accuracy(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    num_classes: int,
    k: int = 5,
    weighted: bool = False,
    temperature: float = 0.07,
    *,
    chunk_size: int = 1024,
) -> float:
    """k-nearest-neighbour accuracy.

    * `weighted=False`: Euclidean distance, one vote per neighbour.
    * `weighted=True`: cosine similarity s (rows L2-normalized), vote exp(s/τ) [InstDisc].

    Ties between classes with equal votes go to the class of the nearest neighbour among
    them (so plain k = 2 falls back to 1-NN). Test rows are processed `chunk_size` at a
    time (a (chunk, N) score matrix), the last chunk padded, so one compiled shape runs.

    Args:
      train_x: (N, d) reference features.
      train_y: (N,) int labels in [0, C).
      test_x: (M, d) features to classify.
      test_y: (M,) int labels.
      num_classes: C >= 2.
      k: neighbours, >= 1; min(k, N) are used.
      weighted: cosine + exp(s/τ) weights instead of Euclidean majority.
      temperature: τ > 0 of the weights.
      chunk_size: test rows per jitted call.

    Returns:
      Fraction of test rows classified correctly, a Python float.

    References:
      Wu et al. 2018 (InstDisc), weighted kNN k = 200, τ = 0.07; [CLOP §5] k = 5.
    """
    train_x, train_y, test_x, test_y = _check_pair(
        "knn_accuracy", train_x, train_y, test_x, test_y, num_classes
    )
    if k < 1:
        raise ValueError(f"knn_accuracy: k must be >= 1; got {k}.")
    if weighted and not temperature > 0:
        raise ValueError(f"knn_accuracy: temperature must be > 0; got {temperature}.")
    if chunk_size < 1:
        raise ValueError(f"knn_accuracy: chunk_size must be >= 1; got {chunk_size}.")
    k = min(int(k), int(train_x.shape[0]))
    if weighted:
        train_x, test_x = _unit(train_x), _unit(test_x)
    m = int(test_x.shape[0])
    chunk = min(chunk_size, m)
    predict = functools.partial(_knn_predict, k=k, num_classes=num_classes, weighted=bool(weighted))
    temperature = jnp.float32(temperature)
    correct = 0
    for start in range(0, m, chunk):
        queries = test_x[start : start + chunk]
        valid = int(queries.shape[0])
        if valid < chunk:
            queries = jnp.pad(queries, ((0, chunk - valid), (0, 0)))
        pred = predict(train_x, train_y, queries, temperature)[:valid]
        correct += int(jnp.sum(pred == test_y[start : start + valid]))
    return correct / m


@functools.partial(
    jax.jit, static_argnames=("num_classes", "epochs", "batch_size", "steps_per_epoch")
)
def _train_probe(
    x: jax.Array,
    y: jax.Array,
    key: jax.Array,
    learning_rate: jax.Array,
    weight_decay: jax.Array,
    *,
    num_classes: int,
    epochs: int,
    batch_size: int,
    steps_per_epoch: int,
) -> tuple[dict[str, jax.Array], jax.Array]:
    d = x.shape[1]
    params = {"w": jnp.zeros((d, num_classes), jnp.float32), "b": jnp.zeros((num_classes,))}
    schedule = optax.cosine_decay_schedule(learning_rate, epochs * steps_per_epoch)
    tx = optax.adamw(
        schedule, weight_decay=weight_decay, mask={"w": True, "b": False}
    )  # no decay on the bias

    def loss_fn(p, xb, yb):
        logits = jnp.matmul(xb, p["w"], precision=_HIGHEST) + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def step(carry, idx):
        p, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(p, x[idx], y[idx])
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), loss

    def epoch(carry, epoch_key):
        perm = jax.random.permutation(epoch_key, x.shape[0])
        batches = perm[: steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size)
        carry, losses = jax.lax.scan(step, carry, batches)
        return carry, jnp.mean(losses)

    (params, _), losses = jax.lax.scan(
        epoch, (params, tx.init(params)), jax.random.split(key, epochs)
    )
    return params, losses


@functools.partial(jax.jit, static_argnames=("top",))
def _probe_accuracy(
    params: dict[str, jax.Array], x: jax.Array, y: jax.Array, *, top: int
) -> tuple[jax.Array, jax.Array]:
    logits = jnp.matmul(x, params["w"], precision=_HIGHEST) + params["b"]
    top1 = jnp.mean(jnp.argmax(logits, axis=-1) == y)
    _, idx = jax.lax.top_k(logits, top)
    topk = jnp.mean(jnp.any(idx == y[:, None], axis=-1))
    return top1, topk


def linear_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    num_classes: int,
    *,
    epochs: int = 100,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> dict[str, float]:
    """Linear-probe accuracy of frozen features.

    Features are standardized with the train mean and standard deviation; a linear
    softmax classifier (zero init) is trained with AdamW (decoupled weight decay on the
    weights, not the bias) and a cosine learning-rate decay, on shuffled mini-batches
    (the remainder of each epoch is dropped; batch_size is capped at N). The whole
    training is one jitted `lax.scan` over epochs.

    Args:
      train_x: (N, d) features.
      train_y: (N,) int labels in [0, C).
      test_x: (M, d) features.
      test_y: (M,) int labels.
      num_classes: C >= 2.
      epochs: passes over the train set, >= 1.
      batch_size: mini-batch size, >= 1.
      learning_rate: peak AdamW learning rate, > 0.
      weight_decay: decoupled weight decay, >= 0.
      seed: shuffling seed.

    Returns:
      `{"top1": float, "top5": float}` test accuracies; "top5" is top-min(5, C).

    References:
      [CLOP §5, App. B] linear evaluation (top-1 / top-5) on frozen features; docs/math.md §12.
    """
    train_x, train_y, test_x, test_y = _check_pair(
        "linear_probe", train_x, train_y, test_x, test_y, num_classes
    )
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"linear_probe: {name} must be >= 1; got {value}.")
    if not learning_rate > 0:
        raise ValueError(f"linear_probe: learning_rate must be > 0; got {learning_rate}.")
    if weight_decay < 0:
        raise ValueError(f"linear_probe: weight_decay must be >= 0; got {weight_decay}.")
    mean = jnp.mean(train_x, axis=0)
    std = jnp.maximum(jnp.std(train_x, axis=0), 1e-6)
    train_s, test_s = (train_x - mean) / std, (test_x - mean) / std
    n = int(train_x.shape[0])
    batch_size = min(int(batch_size), n)
    params, _ = _train_probe(
        train_s,
        train_y,
        jax.random.key(seed),
        jnp.float32(learning_rate),
        jnp.float32(weight_decay),
        num_classes=num_classes,
        epochs=int(epochs),
        batch_size=batch_size,
        steps_per_epoch=n // batch_size,
    )
    top1, top5 = _probe_accuracy(params, test_s, test_y, top=min(5, num_classes))
    return {"top1": float(top1), "top5": float(top5)}


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _collapse(
    z: jax.Array, labels: jax.Array, *, num_classes: int
) -> tuple[dict[str, jax.Array], jax.Array]:
    return geometry.nc_metrics(z, labels, num_classes), geometry.dc_spectrum(z, labels, num_classes)


def collapse_report(
    z: ArrayLike, labels: ArrayLike, num_classes: int, prefix: str = ""
) -> tuple[dict[str, float], np.ndarray]:
    """Neural- and Dimensional-Collapse diagnostics as flat floats.

    Args:
      z: (N, d) normalized representations.
      labels: (N,) int labels (outside [0, C) ignored).
      num_classes: C >= 2.
      prefix: prepended to every key, e.g. "nc/train/z/".

    Returns:
      `(metrics, spectrum)`: metrics has `{prefix}zero_sum`, `{prefix}unit_norm`,
      `{prefix}equal_inner_product`, `{prefix}within_class_variance` (all 0 at NC) and
      `{prefix}dc_rank` (number of normalized DC spectrum values > 1e-3, C - 1 at NC
      when d >= C - 1); spectrum is the (min(C, d),) numpy array of
      `geometry.dc_spectrum`.

    References:
      [HN §5.2-5.3]; docs/math.md §10.
    """
    if num_classes < 2:
        raise ValueError(f"collapse_report: num_classes must be >= 2; got {num_classes}.")
    z = jnp.asarray(z, jnp.float32)
    labels = jnp.asarray(labels, jnp.int32)
    if z.ndim != 2 or labels.shape != (z.shape[0],):
        raise ValueError(
            f"collapse_report: z must be (N, d) and labels (N,); got {z.shape} and {labels.shape}."
        )
    metrics, spectrum = _collapse(z, labels, num_classes=num_classes)
    spectrum = np.asarray(spectrum)
    report = {f"{prefix}{name}": float(metrics[name]) for name in NC_METRICS}
    report[f"{prefix}dc_rank"] = float(np.sum(spectrum > DC_RANK_TOL))
    return report, spectrum


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _extras(
    z: jax.Array, labels: jax.Array, *, num_classes: int
) -> tuple[dict[str, jax.Array], dict[str, jax.Array], jax.Array]:
    return (
        geometry.papyan_nc(z, labels, num_classes),
        geometry.per_class_stats(z, labels, num_classes),
        geometry.rankme(z),
    )


_rankme = jax.jit(geometry.rankme)


def collapse_extras(
    z: ArrayLike,
    labels: ArrayLike,
    num_classes: int,
    spectrum: ArrayLike,
    prefix: str = "",
    *,
    per_class_limit: int = 20,
) -> dict[str, float]:
    """Collapse metrics beside the paper's: NC1-NC4, RankMe, DC values, per class.

    Args:
      z: (N, d) normalized representations.
      labels: (N,) int labels (outside [0, C) ignored).
      num_classes: C >= 2.
      spectrum: the DC spectrum of (z, labels) (`geometry.dc_spectrum`).
      prefix: prepended to every key, e.g. "nc/train/z/".
      per_class_limit: per-class values and the spectrum's entries are reported only
        for C <= this (C = 100 would add 300 keys per split).

    Returns:
      Flat dict of floats: `{prefix}nc1` ... `{prefix}nc4` (`geometry.papyan_nc`),
      `{prefix}rankme`, `{prefix}dc_sv_min` (the (C−1)-th value of the normalized DC
      spectrum: 1 at NC when d >= C − 1, near 0 under Dimensional Collapse), and for
      C <= per_class_limit `{prefix}class{c}/within_class_variance`,
      `{prefix}class{c}/mean_norm` and `{prefix}dc_spectrum/{i}`.

    References:
      Papyan, Han, Donoho, PNAS 2020 (arXiv:2008.08186); Garrido et al., RankMe,
      ICML 2023 (arXiv:2210.02885); [HN §5.2-5.3].
    """
    if num_classes < 2:
        raise ValueError(f"collapse_extras: num_classes must be >= 2; got {num_classes}.")
    z = jnp.asarray(z, jnp.float32)
    labels = jnp.asarray(labels, jnp.int32)
    papyan, per_class, rank = _extras(z, labels, num_classes=num_classes)
    out = {f"{prefix}{k}": float(v) for k, v in papyan.items()}
    out[f"{prefix}rankme"] = float(rank)
    spectrum = np.asarray(spectrum)
    if spectrum.size:
        out[f"{prefix}dc_sv_min"] = float(spectrum[min(num_classes - 1, spectrum.size) - 1])
    if num_classes <= per_class_limit:
        wcv = np.asarray(per_class["within_class_variance"])
        norm = np.asarray(per_class["mean_norm"])
        for c in range(num_classes):
            out[f"{prefix}class{c}/within_class_variance"] = float(wcv[c])
            out[f"{prefix}class{c}/mean_norm"] = float(norm[c])
        for i, value in enumerate(spectrum):
            out[f"{prefix}dc_spectrum/{i}"] = float(value)
    return out


def evaluate_representations(
    train_h: ArrayLike | None,
    train_z: ArrayLike,
    train_y: ArrayLike,
    test_h: ArrayLike | None,
    test_z: ArrayLike,
    test_y: ArrayLike,
    num_classes: int,
    *,
    knn_k: Sequence[int] = (5, 200),
    knn_weighted: Sequence[bool] = (False, True),
    linear_probe: bool = False,
    probe_kwargs: Mapping[str, Any] | None = None,
    extended: bool = False,
    per_class_limit: int = 20,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every evaluation of docs/math.md §10 and §12 on h and z, as one flat dict.

    See the module docstring for the key scheme. Classifiers are fit on train and
    scored on test (NCM also on train); NC metrics are computed for z on both splits,
    DC spectra and ranks for h and z on both splits.

    Args:
      train_h: (N, dh) backbone features, or None to evaluate z only.
      train_z: (N, dz) normalized embeddings.
      train_y: (N,) int labels.
      test_h: (M, dh) or None (must be None iff train_h is).
      test_z: (M, dz).
      test_y: (M,) int labels.
      num_classes: C >= 2.
      knn_k: neighbour counts; key `knn{k}_acc` each.
      knn_weighted: per entry of knn_k, cosine exp(s/τ)-weighted (True) or Euclidean
        majority (False); default: k = 5 plain, k = 200 weighted.
      linear_probe: also train a linear probe per representation (slower).
      probe_kwargs: keyword arguments of `linear_probe` (epochs, batch_size, ...).
      extended: also `collapse_extras` for z and RankMe for h (the trainer's default).
      per_class_limit: see `collapse_extras`.

    Returns:
      `(scalars, spectra)`: flat dict of floats, and dict `"{split}/{rep}"` -> DC
      spectrum (numpy) for plotting.
    """
    if (train_h is None) != (test_h is None):
        raise ValueError(
            "evaluate_representations: train_h and test_h must both be arrays or both None; "
            f"got train_h {'None' if train_h is None else 'array'} and test_h "
            f"{'None' if test_h is None else 'array'}."
        )
    if len(knn_k) != len(knn_weighted):
        raise ValueError(
            f"evaluate_representations: knn_weighted {tuple(knn_weighted)} must have one entry "
            f"per knn_k {tuple(knn_k)}."
        )
    if len(set(knn_k)) != len(knn_k):
        raise ValueError(
            f"evaluate_representations: knn_k {tuple(knn_k)} repeats a k; keys knn{{k}}_acc "
            "would collide."
        )
    reps = {"z": (train_z, test_z)}
    if train_h is not None:
        reps = {"h": (train_h, test_h), "z": (train_z, test_z)}
    splits = {"train": train_y, "test": test_y}
    scalars: dict[str, float] = {}
    spectra: dict[str, np.ndarray] = {}
    for rep, (tr_x, te_x) in reps.items():
        xs = {"train": tr_x, "test": te_x}
        for split, y in splits.items():
            report, spectrum = collapse_report(xs[split], y, num_classes, f"nc/{split}/{rep}/")
            spectra[f"{split}/{rep}"] = spectrum
            if rep == "z":
                scalars.update(report)
                if extended:
                    scalars.update(
                        collapse_extras(
                            xs[split],
                            y,
                            num_classes,
                            spectrum,
                            f"nc/{split}/z/",
                            per_class_limit=per_class_limit,
                        )
                    )
            else:  # NC metrics assume the unit ball; h keeps only its DC rank.
                scalars[f"nc/{split}/{rep}/dc_rank"] = report[f"nc/{split}/{rep}/dc_rank"]
                if extended:
                    scalars[f"nc/{split}/{rep}/rankme"] = float(
                        _rankme(jnp.asarray(xs[split], jnp.float32))
                    )
            scalars[f"eval/{split}/{rep}/ncm_acc"] = ncm_accuracy(
                tr_x, train_y, xs[split], y, num_classes
            )
        for k, weighted in zip(knn_k, knn_weighted, strict=True):
            scalars[f"eval/test/{rep}/knn{k}_acc"] = knn_accuracy(
                tr_x, train_y, te_x, test_y, num_classes, k=k, weighted=weighted
            )
        if linear_probe:
            probe = _linear_probe(tr_x, train_y, te_x, test_y, num_classes, **(probe_kwargs or {}))
            scalars[f"eval/test/{rep}/probe_top1"] = probe["top1"]
            scalars[f"eval/test/{rep}/probe_top5"] = probe["top5"]
    return scalars, spectra


# `evaluate_representations` has a keyword argument named `linear_probe`.
_linear_probe = linear_probe
