# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     name: synthetic_collapse.ipynb
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
# # Synthetic collapse: SCL, HSCL, UCL, HUCL over β [HN §5.1, Fig. 2]
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hncl-jax/hncl_jax/blob/main/colabs/synthetic_collapse.ipynb)
#
# Three Gaussian classes in R^3072 (100 points each, means i.i.d. U[−1, 1]), an MLP to
# d = C − 1 = 2, unit-ball normalisation, InfoNCE with k = 256 negatives, Adam 1e-3,
# the whole set as one batch, 400 epochs; β ∈ {0, 10, 30, 50}; positives by **labels**
# (same class, the anchor included) or by **Gaussian-noise views** (variance 0.01).
#
# All 16 runs are trained by `hncl_jax.reproduce.synthetic_grid.train_grid` in **one compiled
# program** (`jax.vmap` over the runs, `lax.scan` over the steps) with the trainer's own
# train step: each run equals `train_and_evaluate` with `configs/synthetic.py` (checked
# at the end). Seconds on a GPU; QUICK shrinks the data and the network for a CPU.

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

# %%
import numpy as np
from IPython.display import Markdown, display

from hncl_jax import sweep
from hncl_jax.reproduce import synthetic_grid
from hncl_jax.train import plots

if QUICK:
    SIZE = dict(num_epochs=150, k=64, dim=256, per_class=50, hidden_sizes=(64,), eval_every=10)
else:  # the paper's sizes
    SIZE = dict(num_epochs=400, k=256, dim=3072, per_class=100, hidden_sizes=None, eval_every=20)
BETAS = (10.0, 30.0, 50.0)  # with β = 0 (SCL, UCL)
cfg = synthetic_grid.get_config()  # configs/synthetic.py plus the grid's axes
cfg.grid.betas, cfg.grid.positives = BETAS, ("labels", "noise_views")
cfg.grid.settings = ("scl", "hscl", "ucl", "hucl")
cfg.num_epochs, cfg.loss.k = SIZE["num_epochs"], SIZE["k"]
cfg.eval_every_epochs = SIZE["eval_every"]
cfg.dataset_kwargs.dim, cfg.dataset_kwargs.per_class = SIZE["dim"], SIZE["per_class"]
if SIZE["hidden_sizes"]:
    cfg.model_kwargs.hidden_sizes = SIZE["hidden_sizes"]
res = synthetic_grid.train_grid(cfg)
print(f"{len(res.rows)} runs in {res.seconds:.1f} s (one compiled program, compilation included)")
display(
    Markdown(
        sweep.markdown_table(
            res.rows,
            [
                "positives",
                "setting",
                "beta",
                "final_loss",
                "bound",
                "gap",
                "zero_sum",
                "unit_norm",
                "equal_inner_product",
                "within_class_variance",
                "dc_rank",
                "ncm_acc",
            ],
        )
    )
)


# %% [markdown]
# **Reading the table.** `bound` is the Theorem 2 minimum (SCL/HSCL) or the Theorem 3
# minimum (UCL; for HUCL it is only a lower bound, since HUCL ≥ UCL by Theorem 1).
# `final_loss` averages the last 10 epochs (the sampled UCL loss fluctuates around its
# expectation). The paper: with label positives SCL, HSCL (every β) and UCL reach their
# minima and Neural Collapse; HUCL does not. With noise views SCL/HSCL still collapse
# to the simplex; UCL/HUCL do not, more so as β grows.


# %%
def title(r):
    name = r["setting"].upper() + (f" β={r['beta']:g}" if r["setting"] in ("hscl", "hucl") else "")
    return f"{name}\nloss {r['final_loss']:.4f} (min {r['bound']:.4f})"


order = {
    p: [i for i, r in enumerate(res.rows) if r["positives"] == p] for p in ("labels", "noise_views")
}
fig = plots.embeddings_grid_figure(
    [
        [("initial", res.z_init)] + [(title(res.rows[i]), res.z[i]) for i in idx]
        for idx in order.values()
    ],
    res.labels,
    row_labels=list(order),
    title="HN Fig. 2: representations after training (top: label positives, bottom: noise views)",
)
display(fig)

# %%
run_label = {i: title(r).split("\n")[0] for i, r in enumerate(res.rows)}
epochs = np.arange(1, res.loss_curves.shape[1] + 1)
fig = plots.epoch_curves_figure(
    {
        f"training loss ({p})": {run_label[i]: res.loss_curves[i] for i in idx}
        for p, idx in order.items()
    },
    epochs,
    ylabel="loss",
    logy=True,
    hlines={
        f"training loss ({p})": sorted({res.rows[i]["bound"] for i in idx} - {None})
        for p, idx in order.items()
    },
    hline_label="minimum (Theorems 2-3)",
    title="training loss of every run; dashed: the minima",
)
display(fig)
evals = np.arange(1, res.nc_curves["zero_sum"].shape[1] + 1) * SIZE["eval_every"]
fig = plots.epoch_curves_figure(
    {
        m.replace("_", " ") + " (label positives)": {
            run_label[i]: curves[i] for i in order["labels"]
        }
        for m, curves in res.nc_curves.items()
    },
    evals,
    ylabel="value (0 at NC)",
    logy=True,
    ncols=4,
    title="NC metrics of the train representations (label positives)",
)
display(fig)

# %% [markdown]
# ### Cross-check: one run of the grid against the trainer
#
# The same HSCL β = 10 run through `train.train_and_evaluate` (`configs/synthetic.py`,
# the command-line trainer) gives the same final loss.

# %%
from hncl_jax import train
from hncl_jax.configs import synthetic
from hncl_jax.train import reporting

c = synthetic.get_config("hscl")
c.loss.beta, c.loss.k, c.num_epochs = 10.0, SIZE["k"], SIZE["num_epochs"]
c.dataset_kwargs.dim, c.dataset_kwargs.per_class = SIZE["dim"], SIZE["per_class"]
if SIZE["hidden_sizes"]:
    c.model_kwargs.hidden_sizes = SIZE["hidden_sizes"]
c.eval_every_epochs = c.checkpoint_every_epochs = c.num_epochs
c.plots, c.linear_probe = False, "off"
wd = f"{WORKDIR}/synthetic_single/hscl_beta10_{'quick' if QUICK else 'full'}"
train.train_and_evaluate(c, wd)
single = reporting.last_evaluation(reporting.read_metrics(wd))
i = next(
    i
    for i, r in enumerate(res.rows)
    if (r["setting"], r["beta"], r["positives"]) == ("hscl", 10.0, "labels")
)
print(
    f"last-epoch loss: trainer {single['train/epoch_loss']:.6f}, "
    f"vmapped grid {res.loss_curves[i, -1]:.6f}"
)
# Same initialisation, batches and draws: only float reassociation under vmap may differ.
np.testing.assert_allclose(res.loss_curves[i, -1], single["train/epoch_loss"], rtol=1e-4)
