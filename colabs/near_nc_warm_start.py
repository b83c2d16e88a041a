# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     name: near_nc_warm_start.ipynb
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
# # Near-NC warm start [HN §5.4, Table 2, Fig. 4 row 2]
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hncl-jax/hncl_jax/blob/main/colabs/near_nc_warm_start.ipynb)
#
# Train HSCL with β = 10 until it nearly attains Neural Collapse (the "near-NC" model),
# then continue from that checkpoint for as many epochs again under ten settings:
# SCL, HSCL β ∈ {2, 5, 10, 30}, UCL, HUCL β ∈ {2, 5, 10, 30}. The paper (CIFAR-100,
# ResNet-50, 400 + 400 epochs) finds the supervised settings stay at NC while HUCL with
# β = 10, 30 leaves it (larger zero-sum and equal inner-product metrics, and DC).
#
# The warm start is the trainer's `config.init_from` (parameters and batch statistics,
# fresh optimizer at step 0); both stages are `sweep.run_grid` calls, so they resume.
# QUICK: the same code path on a small synthetic set. `HNCL_DATASET=digits` runs it on
# scikit-learn's digits on a CPU.

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
import os

import numpy as np
from IPython.display import Markdown, display

from hncl_jax import configs, geometry, sweep
from hncl_jax.train import plots

DATASET = os.environ.get(
    "HNCL_DATASET", "cifar100"
)  # cifar100 | cifar10 | tinyimagenet | digits | hn_synthetic
EPOCHS = None  # per stage; None: the config's (400 for the CIFAR configs)


if QUICK:
    DATASET = "hn_synthetic"
    base = configs.load("synthetic:hscl")
    base.dataset_kwargs.dim, base.dataset_kwargs.per_class = 128, 40
    base.model_kwargs.hidden_sizes = (32,)
    base.loss.k, base.num_epochs = 32, 40
elif DATASET == "hn_synthetic":
    base = configs.load("synthetic:hscl")
else:
    base = configs.load(DATASET)
    if DATASET in ("cifar10", "cifar100"):
        import tensorflow_datasets as tfds

        tfds.builder(DATASET, file_format="array_record").download_and_prepare()
base.loss.name, base.loss.beta = "hscl", 10.0
if EPOCHS:
    base.num_epochs = EPOCHS
base.eval_every_epochs = base.checkpoint_every_epochs = max(base.num_epochs // 4, 1)
base.linear_probe, base.plots = "off", False
ROOT_NC = f"{WORKDIR}/near_nc/{DATASET}{'_quick' if QUICK else ''}"

# %% [markdown]
# ## Stage 1: the near-NC model (HSCL, β = 10)

# %%
near = sweep.run_grid(base, {}, f"{ROOT_NC}/stage1")[0]
NC_KEYS = ["nc/train/z/zero_sum", "nc/train/z/unit_norm", "nc/train/z/equal_inner_product"]
print({k.rsplit("/", 1)[1]: round(near[k], 6) for k in NC_KEYS})

# %% [markdown]
# ## Stage 2: ten settings from the near-NC checkpoint

# %%
STAGE2_EPOCHS = 20 if QUICK else base.num_epochs
warm = sweep.apply_assignments(base, {"init_from": near["workdir"], "num_epochs": STAGE2_EPOCHS})
warm.eval_every_epochs = warm.checkpoint_every_epochs = max(STAGE2_EPOCHS // 4, 1)
GRID = {"loss.name": ["hscl", "hucl"], "loss.beta": [0.0, 2.0, 5.0, 10.0, 30.0]}  # β = 0: SCL, UCL
rows = sweep.run_grid(warm, GRID, f"{ROOT_NC}/stage2")

# %% [markdown]
# ## Table 2: NC metrics after the second stage (paper: CIFAR-100)

# %%
PAPER = {  # zero-sum, unit-norm, equal inner-product [HN Table 2]
    "near-NC model": (0.012, 1.8e-8, 0.004),
    "SCL": (0.006, 2.0e-8, 0.007),
    "HSCL β=2": (0.005, 2.2e-8, 0.004),
    "HSCL β=5": (0.007, 1.9e-8, 0.002),
    "HSCL β=10": (0.007, 2.0e-8, 0.002),
    "HSCL β=30": (0.004, 1.7e-8, 0.001),
    "UCL": (0.005, 3.9e-4, 0.005),
    "HUCL β=2": (0.005, 6.1e-4, 0.003),
    "HUCL β=5": (0.004, 1.4e-3, 0.002),
    "HUCL β=10": (0.093, 1.5e-3, 0.047),
    "HUCL β=30": (0.761, 7.9e-4, 0.586),
}


def setting(r):
    base_name = {"hscl": "SCL", "hucl": "UCL"}[r["loss.name"]]
    return base_name if r["loss.beta"] == 0 else f"H{base_name} β={r['loss.beta']:g}"


table = [{"setting": "near-NC model", **{k.rsplit("/", 1)[1]: near[k] for k in NC_KEYS}}]
table += [{"setting": setting(r), **{k.rsplit("/", 1)[1]: r[k] for k in NC_KEYS}} for r in rows]
for t in table:
    t["paper (zs, un, eip)"] = ", ".join(f"{v:.2g}" for v in PAPER[t["setting"]])
display(
    Markdown(
        sweep.markdown_table(
            table,
            ["setting", "zero_sum", "unit_norm", "equal_inner_product", "paper (zs, un, eip)"],
        )
    )
)

# %% [markdown]
# ## Fig. 4, second row: DC spectra after the warm-started training

# %%
plan = sweep.plan_grid(warm, GRID, f"{ROOT_NC}/stage2")
spectra = {f"near-NC initialisation: {fam}": {} for fam in ("supervised", "unsupervised")}
for (assign, cfg, wd), r in zip(plan, rows, strict=True):
    _, z, y = sweep.restore_representations(cfg, wd, "train")
    fam = "unsupervised" if assign["loss.name"] == "hucl" else "supervised"
    spectra[f"near-NC initialisation: {fam}"][setting(r)] = np.asarray(
        geometry.dc_spectrum(z, y, int(y.max()) + 1)
    )
fig = plots.spectra_figure(spectra, title=f"{DATASET}: DC spectra of the train class means")
display(fig)
