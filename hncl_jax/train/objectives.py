"""The training objective of a config, one factory per loss family.

`make_objective(config, num_classes)` returns the function the train step
differentiates, `objective(z, f, labels, positive_ids, visible_labels, key, prototypes)`
→ (loss, aux). It combines:

* the loss of `config.loss.name`, from the factory of its family: `hn_loss` (the
  hard-negative settings scl/hscl/ucl/hucl, `losses.contrastive_loss`),
  `simclr_form_loss` (the SimCLR-form loss), `baseline_loss` (NT-Xent, SupCon, SINCERE,
  DCL(W), VICReg, Barlow Twins, `baselines.baseline_loss`);
* the β schedule (`config.loss.beta_schedule`), read from the traced step;
* CLOP's prototype term (`config.clop.weight` > 0, `clop_term`).

`theorem_bound` gives the Theorem 2/3 minimum the training loss is compared with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import ml_collections

from hncl_jax import baselines, geometry, hardening, losses
from hncl_jax.train import validation

# A loss family's factory returns `loss_fn(z, f, labels, positive_ids, key, beta)` →
# (loss, aux): `z` the normalized embeddings, `f` the raw ones, `beta` the hardening
# parameter of the step (a traced value under a β schedule).
LossFn = Callable[..., tuple[jax.Array, dict]]


def make_objective(config: ml_collections.ConfigDict, num_classes: int) -> Callable:
    """Returns `objective(z, f, labels, positive_ids, visible_labels, key, prototypes)`.

    `z` are the normalized embeddings, `f` the raw ones (VICReg and Barlow Twins work
    on raw embeddings), `labels` the class labels (latent in unsupervised settings),
    `positive_ids` decide positives, `visible_labels` are the labels with -1 where the
    label is hidden (semi-supervised CLOP). Returns (loss, aux dict of scalars).

    With a β schedule (`config.loss.beta_schedule` other than "constant") the objective
    also takes `step=` (the traced step: β changes without recompiling) and has the
    attribute `takes_step = True`, which `train_step` reads; aux then holds "beta".
    With `config.loss.diagnostics` the hard-negative losses add the "hn_*" diagnostics
    of `losses.contrastive_loss` (no gradient; the loss is unchanged).
    """
    lc = config.loss
    schedule = validation.loss_option(config, "beta_schedule")
    loss_fn = family_loss(config)
    beta_at = make_beta_fn(config)
    clop_weight = float(config.clop.weight)

    def objective(z, f, labels, positive_ids, visible_labels, key, prototypes, step=None):
        aux = {}
        beta = lc.beta if schedule == "constant" else beta_at(step)
        if schedule != "constant":
            aux["beta"] = beta
        loss, extra = loss_fn(z, f, labels, positive_ids, key, beta)
        aux.update(extra)
        aux["contrastive_loss"] = loss
        if clop_weight > 0:
            clop = clop_term(z, visible_labels, prototypes, weight=clop_weight)
            aux["clop_loss"] = clop
            loss = loss + clop
        return loss, aux

    objective.takes_step = schedule != "constant"
    return objective


def family_loss(config: ml_collections.ConfigDict) -> LossFn:
    """The loss of `config.loss.name`, from the factory of its family."""
    name = config.loss.name
    if name in losses.SETTINGS:
        return hn_loss(config)
    if name == "simclr_form":
        return simclr_form_loss(config)
    return baseline_loss(config)


def make_beta_fn(config: ml_collections.ConfigDict) -> Callable:
    """β as a function of the (traced) step, from `config.loss.beta_schedule`."""
    lc = config.loss
    opt = functools.partial(validation.loss_option, config)
    schedule = opt("beta_schedule")

    def beta_at(step):
        return hardening.beta_schedule(
            step,
            schedule,
            beta=lc.beta,
            beta_start=opt("beta_start"),
            num_steps=opt("beta_schedule_steps"),
        )

    return beta_at


def _hn_options(config: ml_collections.ConfigDict) -> dict:
    """The options the hard-negative losses and the SimCLR-form loss share."""
    opt = functools.partial(validation.loss_option, config)
    return {
        "temperature": opt("hn_temperature"),
        "reduction": opt("reduction"),
        "grad_through_weights": opt("grad_through_weights"),
    }


def _split_aux(extra: dict) -> dict:
    """The losses' extra outputs as metric names: diagnostics hn_*, counts loss_*."""
    return {(f"hn_{k[4:]}" if k.startswith("neg_") else f"loss_{k}"): v for k, v in extra.items()}


def hn_loss(config: ml_collections.ConfigDict) -> LossFn:
    """The hard-negative settings scl/hscl/ucl/hucl (`losses.contrastive_loss_with_aux`)."""
    lc = config.loss
    opt = functools.partial(validation.loss_option, config)
    self_positive = config.positives == "labels"
    hn_kw = _hn_options(config)

    def loss_fn(z, f, labels, positive_ids, key, beta):
        eta_fn = None
        if opt("eta"):
            eta_fn = hardening.make_eta(
                opt("eta"), beta=beta, epsilon=lc.epsilon, threshold=opt("eta_threshold")
            )
        loss, extra = losses.contrastive_loss_with_aux(
            z,
            labels,
            key,
            setting=lc.name,
            psi=lc.psi,
            alpha=lc.alpha,
            hardening=lc.hardening,
            beta=beta,
            epsilon=lc.epsilon,
            k=lc.k,
            estimator=lc.estimator,
            draw=lc.draw,
            positive_ids=positive_ids,
            self_positive=self_positive,
            exclude_anchor=lc.exclude_anchor,
            tau_plus=opt("tau_plus"),
            eta_fn=eta_fn,
            num_proposals=opt("num_proposals"),
            diagnostics=opt("diagnostics"),
            **hn_kw,
        )
        return loss, _split_aux(extra)

    return loss_fn


def simclr_form_loss(config: ml_collections.ConfigDict) -> LossFn:
    """The SimCLR-form loss (`losses.simclr_form_loss_with_aux`); aux: its diagnostics."""
    lc = config.loss
    opt = functools.partial(validation.loss_option, config)
    diagnostics = opt("diagnostics")
    hn_kw = _hn_options(config)

    def loss_fn(z, f, labels, positive_ids, key, beta):
        loss, extra = losses.simclr_form_loss_with_aux(
            z,
            positive_ids,
            key,
            beta=beta,
            hardening=lc.hardening,
            epsilon=lc.epsilon,
            labels=labels if opt("supervised_negatives") else None,
            q=opt("simclr_q"),
            diagnostics=diagnostics,
            **hn_kw,
        )
        if not diagnostics:
            return loss, {}
        return loss, {k: v for k, v in _split_aux(extra).items() if k.startswith("hn_")}

    return loss_fn


def baseline_loss(config: ml_collections.ConfigDict) -> LossFn:
    """NT-Xent, SupCon, SINCERE, DCL(W), VICReg, Barlow Twins (`baselines.baseline_loss`).

    VICReg and Barlow Twins work on the raw embeddings `f`, the others on `z`.
    """
    name = config.loss.name
    kw = _baseline_kwargs(config)

    def loss_fn(z, f, labels, positive_ids, key, beta):
        emb = f if name in ("vicreg", "barlow_twins") else z
        return baselines.baseline_loss(name, emb, labels, positive_ids, **kw), {}

    return loss_fn


def clop_term(z, visible_labels, prototypes, *, weight: float):
    """CLOP's prototype term, added to the loss when `config.clop.weight` > 0."""
    return baselines.clop_loss(z, visible_labels, prototypes, weight=weight)


def _baseline_kwargs(config: ml_collections.ConfigDict) -> dict:
    """The keyword options of `baselines.baseline_loss` for `config.loss.name`."""
    lc = config.loss
    opt = functools.partial(validation.loss_option, config)
    return {
        "vicreg": {
            "sim_weight": opt("vicreg_sim_weight"),
            "var_weight": opt("vicreg_var_weight"),
            "cov_weight": opt("vicreg_cov_weight"),
        },
        "barlow_twins": {"off_diagonal_weight": opt("barlow_off_diagonal_weight")},
        "dclw": {"temperature": lc.temperature, "sigma": opt("sigma")},
        "supcon": {
            "temperature": lc.temperature,
            "contrast_mode": opt("contrast_mode"),
            "num_views": 2 if config.positives == "views" else 1,
        },
    }.get(lc.name, {"temperature": lc.temperature})


def theorem_bound(config: ml_collections.ConfigDict, num_classes: int) -> float | None:
    """The Theorem 2/3 minimum the training loss is compared with, where it applies.

    The theorems hold for label positives, the HN settings with a ψ of Definition 1,
    embeddings in the unit ball (the sphere is inside it) and no CLOP term.
    """
    lc = config.loss
    if (
        lc.name not in losses.SETTINGS
        or config.positives != "labels"
        or config.normalization == "none"
        or config.clop.weight > 0
        # A temperature rescales ψ's arguments and τ⁺ debiasing changes the loss: the
        # Theorem 2/3 values are not their minima.
        or validation.loss_option(config, "hn_temperature") != 1.0
        or validation.loss_option(config, "tau_plus") > 0
    ):
        return None
    if lc.name in ("scl", "hscl"):
        return geometry.scl_lower_bound(num_classes, lc.k, psi=lc.psi, alpha=lc.alpha)
    if lc.estimator == "reweighted":
        return geometry.ucl_reweighted_limit(num_classes)
    return geometry.ucl_lower_bound(num_classes, lc.k, psi=lc.psi, alpha=lc.alpha)
