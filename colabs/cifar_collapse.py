# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     name: cifar_collapse.ipynb
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
# # Neural and Dimensional Collapse on CIFAR-100, CIFAR-10, Tiny-ImageNet
#
# [HN §5.2-5.4, Figs. 3-13, Table 1]
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hncl-jax/hncl_jax/blob/main/colabs/cifar_collapse.ipynb)
#
# The real-data experiments of the hard-negative paper: ResNet-50 (CIFAR stem), d = C − 1,
# InfoNCE with k = 256, batch 512, Adam 1e-3, 400 epochs, SCL/HSCL and UCL/HUCL with
# β ∈ {0, 2, 5, 10, 30} (β = 0 is SCL / UCL). The notebook prepares the data, launches
# (or resumes) every run of the chosen experiments with `hncl_jax.sweep.run_grid`, and
# plots test accuracy and the NC metrics over epochs (Fig. 3), the DC spectra (Fig. 4)
# and the observed SCL/HSCL losses against Theorem 2 (Table 1).
#
# **Cost.** One run is 400 epochs of ResNet-50 on 50k images (hours on an A100/H100);
# an experiment is 10 runs. Set `EPOCHS` to shorten them; runs resume where they
# stopped, so a Colab session can be reconnected and the cell rerun.
#
# QUICK: the same code path on scikit-learn's digits with the `:smoke` config (tiny CNN,
# two epochs), no download. `HNCL_DATASET=digits` runs the full digits config (CPU).

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
from hncl_jax.train import plots, reporting

DATASET = os.environ.get("HNCL_DATASET", "cifar100")  # cifar100 | cifar10 | tinyimagenet | digits
DATA_DIR = os.environ.get("TFDS_DATA_DIR")  # None: ~/tensorflow_datasets
EPOCHS = None  # None: the config's (400); e.g. 100 to shorten
ACC_KEY = "eval/test/z/ncm_acc"  # the accuracy plotted (nearest class mean)


if QUICK:
    DATASET = "digits"

# %% [markdown]
# ## Data
#
# CIFAR is read with `tfds.data_source` (array_record; no TensorFlow needed to read);
# preparing it once needs TensorFlow, which Colab has. Tiny-ImageNet is built by the
# project's own TFDS builder from `tiny-imagenet-200.zip` in `MANUAL_DIR`.

# %%
MANUAL_DIR = os.path.expanduser("~/tiny_imagenet_manual")
if DATASET in ("cifar10", "cifar100"):
    import tensorflow_datasets as tfds

    tfds.builder(DATASET, data_dir=DATA_DIR, file_format="array_record").download_and_prepare()
elif DATASET == "tinyimagenet":
    os.makedirs(MANUAL_DIR, exist_ok=True)
    if not os.path.exists(f"{MANUAL_DIR}/tiny-imagenet-200.zip"):
        url = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
        subprocess.run(["wget", "-q", "-P", MANUAL_DIR, url], check=True)
print("data ready:", DATASET)

# %% [markdown]
# ## The experiments
#
# Each entry is a base config, overrides and a grid; `RUN` picks the ones to train.
# Fig. 4's near-NC row is in `near_nc_warm_start.ipynb`. Figs. 5-6 (CIFAR-10) and 7
# (Tiny-ImageNet) are these experiments with `HNCL_DATASET=cifar10` / `tinyimagenet`.

# %%
HN_GRID = {
    "loss.name": ["hscl", "hucl"],
    "loss.beta": [0.0, 2.0, 5.0, 10.0, 30.0],
}  # β = 0: SCL, UCL
base_spec = DATASET + (":smoke" if QUICK else "")
EXPERIMENTS = {
    "fig3_fig4_unit_ball": dict(grid=HN_GRID, overrides={}),
    "fig4_unit_sphere": dict(grid=HN_GRID, overrides={"normalization": "unit_sphere"}),
    "fig4_no_normalization": dict(grid=HN_GRID, overrides={"normalization": "none"}),
    "fig8_batch64": dict(grid=HN_GRID, overrides={"batch_size": 64}),
    "fig9_batch32": dict(grid=HN_GRID, overrides={"batch_size": 32}),
    "fig10_fig11_polynomial": dict(
        grid={"loss.name": ["hscl", "hucl"], "loss.epsilon": [3.0, 5.0, 10.0, 20.0]},
        overrides={"loss.hardening": "polynomial"},
    ),
    # SimCLR sampling [App. B.5]: two augmented views; eq. 42's loss (unsupervised) or
    # InfoNCE, k = 256.
    "fig12_simclr_loss": dict(
        grid={"loss.beta": [0.0, 2.0, 5.0, 10.0, 30.0]},
        overrides={"loss.name": "simclr_form", "positives": "views", "views": "simclr"},
    ),
    "fig13_simclr_infonce": dict(grid=HN_GRID, overrides={"positives": "views", "views": "simclr"}),
}
# The experiments to train (comma-separated names in HNCL_RUN also work).
RUN = [r for r in os.environ.get("HNCL_RUN", "fig3_fig4_unit_ball").split(",") if r]
if QUICK:
    RUN = ["fig3_fig4_unit_ball"]
    EXPERIMENTS["fig3_fig4_unit_ball"]["grid"] = {
        "loss.name": ["hscl", "hucl"],
        "loss.beta": [0.0, 10.0],
    }


def experiment_config(name):
    base = sweep.apply_assignments(configs.load(base_spec), EXPERIMENTS[name]["overrides"])
    if DATASET == "tinyimagenet":
        base.manual_dir = MANUAL_DIR
    if DATA_DIR:
        base.data_dir = DATA_DIR
    if EPOCHS:
        base.num_epochs = EPOCHS
    return base


results = {}
for name in RUN:
    root = f"{WORKDIR}/hn_real/{DATASET}{'_quick' if QUICK else ''}/{name}"
    results[name] = sweep.run_grid(
        experiment_config(name), EXPERIMENTS[name]["grid"], root, verbose=True
    )
    display(
        Markdown(
            f"**{name}**\n\n"
            + sweep.markdown_table(
                results[name],
                [
                    "run",
                    "epoch",
                    "train/epoch_loss",
                    "train/theorem_bound",
                    ACC_KEY,
                    "nc/train/z/zero_sum",
                    "nc/train/z/unit_norm",
                    "nc/train/z/equal_inner_product",
                    "nc/test/z/dc_rank",
                ],
            )
        )
    )

# %% [markdown]
# ## Fig. 3: test accuracy and NC metrics over epochs

# %%
PANELS = [ACC_KEY, "nc/train/z/zero_sum", "nc/train/z/unit_norm", "nc/train/z/equal_inner_product"]


def label(row):
    beta = row.get("loss.beta", row.get("loss.epsilon"))
    base = {"hscl": "SCL", "hucl": "UCL"}.get(row.get("loss.name"), row.get("loss.name", ""))
    return base if beta in (0, 0.0) else f"H{base} {'ε' if 'loss.epsilon' in row else 'β'}={beta:g}"


def family(row):
    return "unsupervised" if row.get("loss.name") == "hucl" else "supervised"


for name, rows in results.items():
    runs = {}
    for r in rows:
        hist = [h for h in reporting.read_metrics(r["workdir"]) if reporting.is_evaluation_row(h)]
        runs.setdefault(family(r), {})[label(r)] = hist
    display(plots.runs_figure(runs, PANELS, title=f"{DATASET}: {name}"))

# %% [markdown]
# ## Fig. 4: DC spectra of the final class means
#
# Each finished run's last checkpoint is restored (`sweep.restore_representations`)
# and the normalised singular values of the class-mean covariance are plotted
# (log scale): Dimensional Collapse shows as values orders of magnitude below 1.

# %%
for name, rows in results.items():
    plan = sweep.plan_grid(
        experiment_config(name),
        EXPERIMENTS[name]["grid"],
        f"{WORKDIR}/hn_real/{DATASET}{'_quick' if QUICK else ''}/{name}",
    )
    spectra = {}
    for (_, cfg, wd), r in zip(plan, rows, strict=True):
        _, z, y = sweep.restore_representations(cfg, wd, "train")
        spectrum = np.asarray(geometry.dc_spectrum(z, y, int(y.max()) + 1))
        spectra.setdefault(f"{name}: {family(r)}", {})[label(r)] = spectrum
    display(plots.spectra_figure(spectra, title=f"{DATASET}: DC spectra of the train class means"))

# %% [markdown]
# ## Table 1: observed SCL/HSCL loss against the Theorem 2 minimum
#
# Paper (CIFAR-100, 400 epochs): theory 0.3105; SCL 0.3384; HSCL β = 2, 5, 10, 30:
# 0.3603, 0.3106, 0.3107, 0.3222.

# %%
PAPER_TABLE1 = {0.0: 0.3384, 2.0: 0.3603, 5.0: 0.3106, 10.0: 0.3107, 30.0: 0.3222}
rows = [r for r in results.get("fig3_fig4_unit_ball", []) if r.get("loss.name") == "hscl"]
table = [
    {
        "setting": label(r),
        "theory": r.get("train/theorem_bound"),
        "observed": r.get("train/epoch_loss"),
        "paper (CIFAR-100)": PAPER_TABLE1.get(r.get("loss.beta"))
        if DATASET == "cifar100"
        else None,
    }
    for r in rows
]
display(
    Markdown(sweep.markdown_table(table, ["setting", "theory", "observed", "paper (CIFAR-100)"]))
)
