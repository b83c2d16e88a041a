# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     name: theory.ipynb
#     provenance: []
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: accelerator,colab
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Theory: the minima of Theorems 2-3, Theorem 1, and CLOP's learning-rate bound
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hncl-jax/hncl_jax/blob/main/colabs/theory.ipynb)
#
# Closed forms and small exact computations, no training:
#
# 1. **[HN Thm 2]** the minimum of the SCL/HSCL loss, `ψ_k(−C/(C−1), …)`, over C;
# 2. **[HN Thm 3]** the minimum of the UCL loss (an exact binomial expectation) over k,
#    and why the paper prints 0.3935 where the exact value is 0.39333;
# 3. the library's batched losses at Neural Collapse equal these minima;
# 4. **[HN Thm 1]** HSCL ≥ SCL and HUCL ≥ UCL, by exact enumeration of every negative
#    k-tuple on a small set, and the library's sampled loss is an unbiased estimate;
# 5. **[CLOP Thm 1, §3.1, Fig. 3]** the learning-rate bound over k, the gradient-descent
#    experiment (η = 2.0 keeps rank k − 1, η = 2.1 collapses to rank one), and the
#    largest non-collapsing η found by bisection;
# 6. **[CLOP §3.2, Fig. 4]** minimising cosine similarity collapses k vectors to a
#    rank-(k − 1) zero-sum set that is not equiangular.

# %% [markdown]
# ## Set-up
#
# On Colab the next cell installs hncl_jax alone (`--no-deps`), from a wheel or zip of
# hncl_jax uploaded to `/content` or set in `SOURCE` (for example on a mounted Drive), else
# from the repository; if that cannot be reached, it stops with one message saying how to
# upload the wheel instead. Elsewhere it does nothing: run the notebook where hncl_jax is
# installed (`pip install -e .` in a checkout, or the wheel). The cell after it is one call,
# `colab.setup`: on Colab it installs only the dependencies the runtime lacks, so its
# CUDA-enabled jax and jaxlib stay as they are; everywhere it reads the size (`HNCL_QUICK`),
# picks the run folder and names the accelerator.

# %%
import glob
import importlib
import subprocess
import sys

REPOSITORY = "https://github.com/hncl-jax/hncl_jax"  # pyproject.toml [project.urls]
SOURCE = ""  # optional: the path of an hncl_jax wheel or zip, e.g. on /content/drive/MyDrive
if "google.colab" in sys.modules:  # hncl_jax alone; colab.setup adds the rest
    found = sorted(glob.glob("/content/hncl_jax*.whl") + glob.glob("/content/hncl_jax*.zip"))
    source = SOURCE or (found[-1] if found else f"git+{REPOSITORY}")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", source]
    proc = subprocess.run(pip, capture_output=True, text=True)
    if proc.returncode:  # e.g. the repository cannot be reached: say what works instead
        pip_said = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        sys.exit(
            f"hncl_jax could not be installed from {source} (pip: {pip_said}). Upload an "
            "hncl_jax wheel to /content with the Files pane (`python -m build` in a checkout "
            "makes one) or set SOURCE to its path, e.g. on Drive, then run this cell again."
        )
    importlib.invalidate_caches()

# %%
from hncl_jax import colab

# HNCL_QUICK=1: every run shrunk to run top to bottom on a CPU (1-2 CPU-minutes: README).
# WORKDIR holds the runs; rerunning a cell skips finished runs and resumes the others.
# USE_DRIVE = True keeps them on Google Drive, so a later Colab session resumes them too.
USE_DRIVE = False
QUICK, WORKDIR = colab.setup(use_drive=USE_DRIVE)

# %matplotlib inline

# %% [markdown]
# ## 1. Theorem 2: the SCL / HSCL minimum over the number of classes C

# %%
import jax
import jax.numpy as jnp
import numpy as np
from IPython.display import Markdown, display

from hncl_jax import geometry, losses
from hncl_jax.train import plots

Cs = np.arange(2, 201)
print(f"InfoNCE, C = 3:   {geometry.scl_lower_bound(3, 256):.5f}   (paper §5.1: 0.2014)")
print(f"InfoNCE, C = 100: {geometry.scl_lower_bound(100, 256):.5f}   (paper Table 1: 0.3105)")
minima = {"InfoNCE (mean form, any k)": [geometry.scl_lower_bound(int(c), 256) for c in Cs]}
for k in (1, 16, 256):
    minima[f"InfoNCE sum form, α = 1, k = {k}"] = [
        geometry.scl_lower_bound(int(c), k, psi="infonce_sum") for c in Cs
    ]
fig = plots.curves_figure(
    Cs,
    minima,
    xlabel="C (classes)",
    ylabel="minimum loss",
    panel_title="Theorem 2: ψ_k(−C/(C−1), …, −C/(C−1))",
    logx=True,
    logy=True,
)
display(fig)

# %% [markdown]
# ## 2. Theorem 3: the UCL minimum over k
#
# With C equiprobable latent classes each negative is of another class with
# probability p = (C − 1)/C, so the minimum is `E_{B∼Bin(k,p)} ψ_k(B × −C/(C−1), (k−B) × 0)`.
# For InfoNCE, C = 3, k = 256 it is **0.39333**; the paper prints 0.3935, the value with
# the expectation taken inside the log, which is also the k → ∞ limit (0.39345).

# %%
p = 2 / 3
inside_log = np.log(1 + p * np.exp(-1.5) + (1 - p))
print(
    f"C = 3, k = 256: exact {geometry.ucl_lower_bound(3, 256):.5f}; paper 0.3935; "
    f"expectation inside the log {inside_log:.5f}; "
    f"k → ∞ limit {geometry.ucl_reweighted_limit(3):.5f}"
)
ks = np.unique(np.logspace(0, 3.3, 60).astype(int))
fig = plots.curves_figure(
    ks,
    {f"C = {C}": [geometry.ucl_lower_bound(C, int(k)) for k in ks] for C in (3, 10, 100)},
    limits={f"C = {C}": geometry.ucl_reweighted_limit(C) for C in (3, 10, 100)},
    xlabel="k (negatives)",
    ylabel="minimum UCL loss",
    panel_title="Theorem 3 (dotted: k → ∞ limit)",
    logx=True,
)
display(fig)

# %% [markdown]
# ## 3. The library's losses at Neural Collapse
#
# Class means on a simplex ETF, every example at its class mean, a class-balanced batch:
# the batched SCL and HSCL losses equal the Theorem 2 minimum for *every* draw; the
# sampled UCL loss equals the Theorem 3 minimum in expectation over the draws; the
# deterministic `reweighted` estimator gives the k → ∞ limit. HUCL at NC is *above*
# UCL (tilting favours same-class negatives: latent-class collisions), which is why the
# paper has no tight HUCL bound.

# %%
C, per, k = 3, 100, 256
labels = jnp.repeat(jnp.arange(C), per)
z_nc = geometry.simplex_etf(C)[labels]
key = jax.random.key(0)
for setting, beta in [("scl", 0.0), ("hscl", 10.0), ("hscl", 50.0)]:
    value = float(losses.contrastive_loss(z_nc, labels, key, setting=setting, beta=beta, k=k))
    print(
        f"{setting:5s} β = {beta:4.0f}: {value:.6f}   "
        f"Theorem 2: {geometry.scl_lower_bound(C, k):.6f}"
    )
keys = jax.random.split(key, 16 if QUICK else 1000)
for setting, beta in [("ucl", 0.0), ("hucl", 10.0)]:
    draws = jax.vmap(
        # The lambda is called at once, inside this iteration.
        lambda kk: losses.contrastive_loss(z_nc, labels, kk, setting=setting, beta=beta, k=k)  # noqa: B023
    )(keys)
    print(
        f"{setting:5s} β = {beta:4.0f}: mean over {len(keys)} draws {float(draws.mean()):.5f} "
        f"± {float(draws.std() / np.sqrt(len(keys))):.5f}   "
        f"Theorem 3: {geometry.ucl_lower_bound(C, k):.5f}"
    )
rw = float(losses.contrastive_loss(z_nc, labels, setting="ucl", estimator="reweighted"))
print(f"ucl reweighted (k → ∞): {rw:.5f}   limit: {geometry.ucl_reweighted_limit(C):.5f}")

# %% [markdown]
# ## 4. Theorem 1 by exact enumeration: HSCL ≥ SCL and HUCL ≥ UCL
#
# On a set of n = 9 points (3 classes) with representations drawn at random in the
# unit ball, the exact expected losses are sums over every k-tuple of negatives
# (k = 3: up to 9³ tuples per anchor), weighted by the uniform (SCL/UCL) or tilted
# q(m) ∝ exp(β s) (HSCL/HUCL) probabilities. Theorem 1 says the hard loss is never
# below the plain one, for every representation.

# %%
# The exact expectation over every k-tuple of negatives (the library's own enumeration).
from hncl_jax.reproduce.theory import exact_expected_loss as exact_loss

rng = np.random.default_rng(0)
y9 = np.repeat(np.arange(3), 3)
gaps = {"HSCL − SCL": [], "HUCL − UCL": []}
for _trial in range(5 if QUICK else 100):
    f = rng.normal(size=(9, 2)) * rng.uniform(0.2, 2.0)
    z9 = np.asarray(geometry.normalize(f, "unit_ball"), dtype=np.float64)
    for beta in (1.0, 5.0):
        gaps["HSCL − SCL"].append(
            exact_loss(z9, y9, 3, beta, True) - exact_loss(z9, y9, 3, 0.0, True)
        )
        gaps["HUCL − UCL"].append(
            exact_loss(z9, y9, 3, beta, False) - exact_loss(z9, y9, 3, 0.0, False)
        )
for name, g in gaps.items():
    print(
        f"{name}: {len(g)} cases, min {min(g):.3e}, max {max(g):.3e}, all ≥ 0: {min(g) >= -1e-12}"
    )

# %%
# The library's sampled estimator is unbiased: its mean over many draws matches the exact value.
z9j, y9j = jnp.asarray(z9, jnp.float32), jnp.asarray(y9)
keys = jax.random.split(jax.random.key(1), 500 if QUICK else 20000)
for setting, beta in [("hscl", 5.0), ("hucl", 5.0)]:
    mc = jax.vmap(
        lambda kk: losses.contrastive_loss(z9j, y9j, kk, setting=setting, beta=beta, k=3)  # noqa: B023
    )(keys)
    exact = exact_loss(z9, y9, 3, beta, setting == "hscl")
    print(
        f"{setting} β = 5: exact {exact:.5f}, library mean {float(mc.mean()):.5f} "
        f"± {float(mc.std() / np.sqrt(len(keys))):.5f} (standard error)"
    )

# %% [markdown]
# ## 5. CLOP's learning-rate bound and its gradient-descent experiment
#
# `geometry.clop_lr_bound(k)` is the closed form printed in [CLOP App. D]
# (2.0333 for k = 30). Two notes (see the `geometry` docstrings): the printed closed
# form has an algebra slip, the exact root of the paper's own inequality is
# (k−1)(2k²−3k+2)/((k−2)(k²−k+1)) (2.0358 for k = 30); and for the experiment's
# dynamics (normalised gradient descent on the total cosine similarity) complete
# collapse sets in exactly above η* = 2(k−1)/(k−2) (2.0714 for k = 30), where the
# mean direction starts to grow relative to the others.

# %%
ks = np.arange(3, 101)
printed = np.array([geometry.clop_lr_bound(int(k)) for k in ks])
root = (ks - 1) * (2 * ks**2 - 3 * ks + 2) / ((ks - 2) * (ks**2 - ks + 1))
threshold = 2 * (ks - 1) / (ks - 2)
i30 = list(ks).index(30)
print(
    f"k = 30: printed bound {printed[i30]:.4f}, exact root {root[i30]:.4f}, "
    f"collapse threshold 2(k−1)/(k−2) = {threshold[i30]:.4f}"
)


def unit_columns(key, m, k):
    x = jax.random.normal(key, (m, k))
    return x / jnp.linalg.norm(x, axis=0)


gd = jax.jit(geometry.clop_gradient_descent)
x0 = unit_columns(jax.random.key(0), 100, 30)
marks = (
    [0, 5, 20, 50, 100, 200, 400, 1000]
    if QUICK
    else [0, 5, 20, 50, 100, 200, 400, 1000, 2000, 4000]
)
panels = {}
for lr in (2.0, 2.1):
    x, done, spectra = x0, 0, {}
    for step in marks:
        x, done = gd(x, lr, step - done), step
        spectra[f"step {step}"] = np.linalg.svd(np.asarray(x), compute_uv=False)
    panels[f"η = {lr}: effective rank {int(geometry.effective_rank(x))}"] = spectra
    print(
        f"η = {lr}: effective rank after {marks[-1]} steps: "
        f"{int(geometry.effective_rank(x))} (k = 30)"
    )
fig = plots.spectra_figure(
    panels, ylabel="singular value of X (100 × 30)", gradient=True, floor=1e-16
)
display(fig)


# %%
# Largest η that does not collapse (rank 1) in any of 5 random trials, by bisection.
def collapses(lr, k, steps, trials=5, m=100):
    xs = jax.vmap(lambda kk: unit_columns(kk, m, k))(jax.random.split(jax.random.key(k), trials))
    out = jax.vmap(lambda x: gd(x, lr, steps))(xs)
    return bool(jnp.any(jax.vmap(geometry.effective_rank)(out) == 1))


def largest_safe_lr(k, steps, iters):
    lo, hi = 1.0, 6.0  # 1.0 never collapses, 6.0 always does
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if collapses(mid, k, steps) else (mid, hi)
    return lo


k_grid = [3, 10, 30] if QUICK else [3, 5, 10, 20, 30, 50, 100]
steps, iters = (3000, 10) if QUICK else (20000, 16)
found = {k: largest_safe_lr(k, steps, iters) for k in k_grid}
display(
    Markdown(
        "| k | printed bound | exact root | 2(k−1)/(k−2) | largest non-collapsing η (bisection) |\n"
        "| --- | --- | --- | --- | --- |\n"
        + "\n".join(
            f"| {k} | {geometry.clop_lr_bound(k):.4f} | "
            f"{(k - 1) * (2 * k * k - 3 * k + 2) / ((k - 2) * (k * k - k + 1)):.4f} | "
            f"{2 * (k - 1) / (k - 2):.4f} | {v:.4f} |"
            for k, v in found.items()
        )
    )
)
fig = plots.curves_figure(
    ks,
    {"printed bound [CLOP Thm 1]": printed, "exact root of eq. 2": root, "2(k−1)/(k−2)": threshold},
    points={"bisection (5 trials)": (list(found), list(found.values()))},
    xlabel="k (vectors)",
    ylabel="learning rate η",
    panel_title="CLOP's learning-rate bound against k",
    logx=True,
)
display(fig)

# %% [markdown]
# ## 6. Dimensional collapse of plain cosine minimisation [CLOP §3.2, Fig. 4]
#
# With a learning rate below the threshold the k vectors converge to a zero-sum set:
# rank k − 1, optimal total similarity, but not the equiangular simplex (the pairwise
# cosines spread around −1/(k−1)).

# %%
k = 30
x = gd(unit_columns(jax.random.key(3), 100, k), 0.5, 300 if QUICK else 2000)
sv = np.linalg.svd(np.asarray(x), compute_uv=False)
cos = np.asarray(x.T @ x)[~np.eye(k, dtype=bool)]
print(
    f"effective rank {int(geometry.effective_rank(x))} (k − 1 = {k - 1}); "
    f"‖mean‖ = {float(jnp.linalg.norm(x.mean(1))):.2e}; "
    f"pairwise cosines {cos.min():.3f} … {cos.max():.3f} (ETF: {-1 / (k - 1):.4f})"
)
fig = plots.cosine_spread_figure(sv, cos, reference=-1 / (k - 1), reference_label="ETF −1/(k−1)")
display(fig)
