# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     name: clop.ipynb
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
# # CLOP: orthonormal prototypes against collapse [CLOP §4-5, Table 3, Figs. 5-7, Table 1]
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hncl-jax/hncl_jax/blob/main/colabs/clop.ipynb)
#
# 1. **Synthetic** [CLOP §4, Fig. 5, App. B Table 3]: 500 points in R³ on three lines
#    through the origin plus noise; a 3-layer MLP to R³; views = noise + random sign
#    flip; InfoNCE (NT-Xent), DCL, VICReg and Barlow Twins, each without and with the
#    CLOP term on the 10 % labelled points; kNN (k = 5) fit on the labelled 10 % predicts
#    the other 90 %; the embeddings in 3-D.
# 2. **CIFAR-100** [CLOP §5]: SimCLR framework, ResNet-50, LARS with lr = 0.3·B/256,
#    200 epochs; batch sizes 32 … 2048 (Fig. 6), learning rates 0.1 … 10 at B = 1024
#    (Fig. 7), λ ∈ {0.1, 0.5, 1, 1.5} with SupCon (Table 1); 10 %, 50 % (InfoNCE +
#    linear classifier baseline) and 100 % labels (SupCon baseline); linear-probe
#    top-1 / top-5.
#
# QUICK: a few synthetic epochs and the CIFAR code path on scikit-learn's digits with
# the `:smoke` config.

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

from IPython.display import Markdown, display

from hncl_jax import configs, data, evaluation, sweep
from hncl_jax.train import plots

# %% [markdown]
# ## 1. The synthetic experiment

# %%
syn = configs.load("clop_synthetic")
LOSSES = ["nt_xent", "dcl", "vicreg", "barlow_twins"]
if QUICK:
    LOSSES, syn.num_epochs = ["nt_xent"], 10
syn.eval_every_epochs = syn.checkpoint_every_epochs = syn.num_epochs
syn.linear_probe, syn.plots = "off", False
SYN_GRID = {"loss.name": LOSSES, "clop.weight": [0.0, 1.0]}
SYN_ROOT = f"{WORKDIR}/clop_synthetic{'_quick' if QUICK else ''}"
syn_rows = sweep.run_grid(syn, SYN_GRID, SYN_ROOT)

# %%
PAPER = {
    "nt_xent": (68.91, 99.89),
    "dcl": (88.56, 100.0),
    "vicreg": (98.64, 99.96),
    "barlow_twins": (82.50, 100.0),
}
embeddings, table = {}, []
for (assign, cfg, wd), r in zip(sweep.plan_grid(syn, SYN_GRID, SYN_ROOT), syn_rows, strict=False):
    _, z, y = sweep.restore_representations(cfg, wd, "train")
    labelled = data.labelled_mask(len(y), cfg.label_fraction, cfg.seed)
    # The paper's protocol: kNN (k = 5) fit on the labelled 10 %, scored on the other 90 %.
    acc = evaluation.knn_accuracy(
        z[labelled], y[labelled], z[~labelled], y[~labelled], 3, k=5, weighted=False
    )
    name, clop = assign["loss.name"], assign["clop.weight"] > 0
    embeddings[(name, clop)] = (z, y)
    table.append(
        {
            "loss": name,
            "CLOP": clop,
            "kNN acc (unlabelled 90 %)": 100 * acc,
            "kNN acc (test split)": 100 * r["eval/test/z/knn5_acc"],
            "paper": PAPER[name][int(clop)],
        }
    )
display(
    Markdown(
        sweep.markdown_table(
            table,
            ["loss", "CLOP", "kNN acc (unlabelled 90 %)", "kNN acc (test split)", "paper"],
            digits=2,
        )
    )
)
fig = plots.embeddings_grid_figure(
    [
        [(f"{name}{' + CLOP' if clop else ''}", embeddings[(name, clop)][0]) for name in LOSSES]
        for clop in (False, True)
    ],
    embeddings[(LOSSES[0], False)][1],  # the train labels, the same in every run
    row_labels=["baseline", "with CLOP"],
    title="CLOP §5: train embeddings after training",
)
display(fig)

# %% [markdown]
# ## 2. CIFAR-100 in the SimCLR framework
#
# Baselines: InfoNCE (NT-Xent) with a linear classifier trained on the labelled
# fraction (10 %, 50 %), and SupCon with all labels; CLOP adds λ·mean(1 − cos(z, c_y))
# over the labelled examples (λ = 1). The linear probe (top-1 / top-5 on the backbone
# features) is fit on the labelled examples only. `RUN` picks the sweeps to train.

# %%
DATASET = os.environ.get("HNCL_CLOP_DATASET", "cifar100")  # cifar100 | tinyimagenet
MANUAL_DIR = os.path.expanduser("~/tiny_imagenet_manual")  # holds tiny-imagenet-200.zip
BATCHES = [32, 64, 128, 256, 512, 1024, 2048]
LRS = [0.1, 0.3, 1.0, 3.0, 10.0]
SEMI, FULL = {"loss.name": "nt_xent"}, {"loss.name": "supcon", "label_fraction": 1.0}
SWEEPS = {
    "fig6_batch_semi": (
        SEMI,
        {"batch_size": BATCHES, "label_fraction": [0.1, 0.5], "clop.weight": [0.0, 1.0]},
    ),
    "fig6_batch_full": (FULL, {"batch_size": BATCHES, "clop.weight": [0.0, 1.0]}),
    "fig7_lr_semi": (
        {**SEMI, "batch_size": 1024, "optimizer.scale_lr_by_batch": False},
        {"optimizer.learning_rate": LRS, "label_fraction": [0.1, 0.5], "clop.weight": [0.0, 1.0]},
    ),
    "fig7_lr_full": (
        {**FULL, "batch_size": 1024, "optimizer.scale_lr_by_batch": False},
        {"optimizer.learning_rate": LRS, "clop.weight": [0.0, 1.0]},
    ),
    "table1_lambda": ({**FULL, "batch_size": 1024}, {"clop.weight": [0.1, 0.5, 1.0, 1.5]}),
}
# The sweeps to train (comma-separated names in HNCL_RUN also work; empty: none).
RUN = [r for r in os.environ.get("HNCL_RUN", "fig6_batch_semi").split(",") if r]
spec = "clop_cifar100"
if QUICK:
    DATASET, spec, RUN = "digits", "clop_cifar100:smoke", ["fig6_batch_semi"]
    SWEEPS["fig6_batch_semi"] = (
        SEMI,
        {"batch_size": [32], "label_fraction": [0.1], "clop.weight": [1.0]},
    )
elif RUN and DATASET == "tinyimagenet":
    os.makedirs(MANUAL_DIR, exist_ok=True)
    if not os.path.exists(f"{MANUAL_DIR}/tiny-imagenet-200.zip"):
        url = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
        subprocess.run(["wget", "-q", "-P", MANUAL_DIR, url], check=True)
elif RUN:
    import tensorflow_datasets as tfds

    tfds.builder(DATASET, file_format="array_record").download_and_prepare()


def sweep_config(name):
    c = configs.load(spec)
    c.dataset = DATASET
    if DATASET == "tinyimagenet":  # CLOP App. B: 100 epochs, 32 x 32; d >= C = 200 prototypes
        c.num_epochs, c.image_size, c.embed_dim, c.manual_dir = 100, 32, 256, MANUAL_DIR
    return sweep.apply_assignments(c, SWEEPS[name][0])


clop_results = {}
for name in RUN:
    clop_results[name] = sweep.run_grid(
        sweep_config(name),
        SWEEPS[name][1],
        f"{WORKDIR}/clop_{DATASET}{'_quick' if QUICK else ''}/{name}",
    )
    display(
        Markdown(
            f"**{name}**\n\n"
            + sweep.markdown_table(
                clop_results[name],
                ["run", "eval/test/h/probe_top1", "eval/test/h/probe_top5", "nc/test/z/dc_rank"],
            )
        )
    )

# %%
# Figs. 6-7: top-1 / top-5 against the swept value, one line per (labels, CLOP).
for name, rows in clop_results.items():
    xkey = next(
        k for k in SWEEPS[name][1] if k in ("batch_size", "optimizer.learning_rate", "clop.weight")
    )
    base_fraction = SWEEPS[name][0].get("label_fraction", 1.0)

    def group(r, base_fraction=base_fraction):
        frac, clop = r.get("label_fraction", base_fraction), r.get("clop.weight", 1.0) > 0
        return f"{100 * frac:.0f} % labels, {'CLOP' if clop else 'baseline'}"

    fig = plots.sweep_figure(
        sorted(rows, key=lambda r: (r.get("label_fraction", 1.0), r.get("clop.weight", 1.0))),
        xkey,
        ["eval/test/h/probe_top1", "eval/test/h/probe_top5"],
        group_by=group,
        logx=True,
        title=f"{DATASET}: {name}",
    )
    display(fig)
