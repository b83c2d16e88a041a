"""Default hyper-parameters shared by every config (the hard-negative paper's recipe).

Every other config imports this module and overrides fields. Run it as

    python -m hncl_jax.main --config=configs/default.py --workdir=/tmp/hncl_default

A config argument after a colon selects variants; `:smoke` shrinks any config to a
short check of a set-up (tiny model, 2 epochs of at most 256 examples; about a minute of
CPU time, much of it compiling: README, "Quick check"), e.g.

    python -m hncl_jax.main --config=configs/cifar100.py:smoke --workdir=/tmp/smoke
"""

import difflib

import ml_collections
from ml_collections import config_dict


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the default config (HSCL on the hard-negative synthetic set)."""
    c = ml_collections.ConfigDict()
    c.seed = 0

    # Data. `dataset` is one of hncl_jax.data.DATASETS; `data_dir` is the TFDS data dir
    # (unset: TFDS default, ~/tensorflow_datasets); `image_size` resizes images (unset:
    # native). Optional fields are typed placeholders (value None) so that a flag such as
    # --config.data_dir=/data can set them; a plain None could not be overridden.
    c.dataset = "hn_synthetic"
    c.data_dir = config_dict.placeholder(str)
    c.manual_dir = config_dict.placeholder(str)  # Tiny-ImageNet: folder holding the zip.
    c.image_size = config_dict.placeholder(int)
    c.dataset_kwargs = ml_collections.ConfigDict()
    # Options read by the trainer or by one data set (None: not set). `max_examples` keeps a
    # random subset of each split; `test_fraction` is the held-out share of `digits`.
    c.dataset_kwargs.max_examples = config_dict.placeholder(int)
    c.dataset_kwargs.test_fraction = config_dict.placeholder(float)
    # Fraction of the training set whose labels are visible (CLOP's semi-supervised runs).
    c.label_fraction = 1.0

    # Positive pairs (docs/math.md §3): "labels" (same class, anchor included) or "views" (two
    # augmented views of each reference example; `views` names the augmentation:
    # "simclr", "noise" (HN §5 Gaussian noise) or "clop" (noise + sign flip)).
    c.positives = "labels"
    c.views = "simclr"
    c.noise_std = 0.1  # views="noise": std of the Gaussian noise (variance 0.01, HN §5).
    # Options of the view kind (e.g. crop_scale, flip_prob, max_shift; see data.augment).
    c.view_kwargs = ml_collections.ConfigDict()
    # positives="labels": train on one augmented view (kind `views`) of each example
    # instead of the example itself (views positives always use two views).
    c.augment = False

    # Model. `embed_dim` -1 means C - 1 (the dimension at which Neural-Collapse is a simplex).
    c.model = "mlp"
    c.model_kwargs = ml_collections.ConfigDict()
    c.embed_dim = -1
    c.normalization = "unit_ball"  # unit_ball | unit_sphere | none (docs/math.md §1).
    # Compute dtype of the encoder: float32 | bfloat16 (parameters, BatchNorm statistics,
    # loss and metrics stay float32). float32 here, hence for the synthetic, theory and
    # CPU configs: in BENCHMARKS.md "bfloat16 against float32" bfloat16 leaves larger NC
    # metrics on the synthetic set and saves no CPU time (docs/architecture.md).
    c.dtype = "float32"

    # Loss: `name` is a setting (scl, hscl, ucl, hucl), "simclr_form" (eq. 42) or a baseline
    # (nt_xent, supcon, sincere, dcl, dclw, vicreg, barlow_twins).
    c.loss = ml_collections.ConfigDict()
    c.loss.name = "hscl"
    c.loss.psi = "infonce"  # infonce | infonce_sum | triplet (docs/math.md §2).
    c.loss.alpha = 1.0  # infonce_sum's α and the triplet margin.
    c.loss.hardening = "exponential"  # none | exponential | polynomial (docs/math.md §5).
    c.loss.beta = 10.0  # exponential tilting parameter (β ≥ 0).
    c.loss.epsilon = 3.0  # polynomial exponent (ε > 0).
    c.loss.k = 256  # negatives per anchor.
    c.loss.estimator = "sampled"  # sampled (Algorithm 1) | reweighted (k → ∞).
    c.loss.draw = "anchor"  # anchor (k draws shared by the anchor's positives) | pair.
    c.loss.exclude_anchor = False  # UCL/HUCL: drop the anchor from its own candidates.
    c.loss.temperature = 0.5  # baselines only (the HN family has unit temperature).
    # Options of the hard-negative family (scl, hscl, ucl, hucl, simclr_form); the defaults
    # are the papers' choices and change nothing.
    c.loss.hn_temperature = 1.0  # τ dividing the ψ arguments (1 = the papers' unit τ).
    c.loss.reduction = "anchor_mean"  # anchor_mean (Algorithm 1) | pair_mean (HN code).
    c.loss.tau_plus = 0.0  # reweighted: Robinson et al.'s class-prior debiasing τ⁺ ∈ [0, 1).
    # reweighted / simclr_form: let the gradient flow through the tilted weights q_i, as
    # Robinson et al.'s code does (False: detached, as the HN sampled code).
    c.loss.grad_through_weights = False
    # A hardening η(t_1..t_k) sampled by SIR instead of `hardening` (hscl/hucl, sampled):
    # "" (off), exponential | polynomial | truncated (uses beta, epsilon, eta_threshold),
    # or a hook "package.module:function" returning log η of (..., k) similarities.
    c.loss.eta = ""
    c.loss.eta_threshold = 0.0  # truncated: the hardest negative's similarity must reach it.
    c.loss.num_proposals = 64  # SIR proposals per drawn k-tuple.
    # β schedule: constant (β = beta), or linear | cosine from beta_start to beta over the
    # first beta_schedule_steps steps, then beta (beta_start > beta anneals down).
    c.loss.beta_schedule = "constant"
    c.loss.beta_start = 0.0
    c.loss.beta_schedule_steps = 1000
    # simclr_form: Q of eq. 42, "batch" (N - 2, the paper) or "negatives" (each anchor's
    # count); supervised_negatives draws negatives from other classes only (Fig. 12 left).
    c.loss.simclr_q = "batch"
    c.loss.supervised_negatives = False
    c.loss.diagnostics = True  # log train/hn_* hard-negative diagnostics (no gradient).
    # Baselines' hyper-parameters (the authors' defaults).
    c.loss.sigma = 0.5  # dclw: the vMF weighting scale σ.
    c.loss.vicreg_sim_weight = 25.0  # λ
    c.loss.vicreg_var_weight = 25.0  # μ
    c.loss.vicreg_cov_weight = 1.0  # ν
    c.loss.barlow_off_diagonal_weight = 5e-3  # λ of Barlow Twins.
    c.loss.contrast_mode = "all"  # supcon: all rows are anchors | one (first view only).

    # CLOP (docs/math.md §9): weight λ of the prototype term (0 disables it).
    c.clop = ml_collections.ConfigDict()
    c.clop.weight = 0.0
    c.clop.prototypes = "orthonormal"  # orthonormal | simplex

    # Optimisation.
    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adam"  # adam | adamw | sgd | lars
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.momentum = 0.9
    c.optimizer.schedule = "constant"  # constant | cosine | warmup_cosine
    c.optimizer.warmup_epochs = 0
    c.optimizer.scale_lr_by_batch = False  # lr · B / 256 (CLOP's recipe).
    c.batch_size = 512  # global batch; clamped to the training-set size.
    c.num_epochs = 400
    # Train steps per jitted dispatch (lax.scan); > 1 hides the host's dispatch cost for
    # small models on a GPU. Reduced to a divisor of the steps per epoch. Keep 1 on the
    # CPU: XLA:CPU runs convolutions 13× slower inside a scan (BENCHMARKS.md).
    c.steps_per_dispatch = 1

    # Evaluation, logging and checkpoints (periods in epochs; 0 disables).
    c.eval_every_epochs = 50
    c.eval_batch_size = 1024
    c.linear_probe = "end"  # end | periodic | off
    c.probe_epochs = 100
    c.knn_k = (5, 200)  # k ≤ 5: majority vote; larger k: cosine-weighted vote (τ = 0.07).
    c.log_every_steps = 50
    c.checkpoint_every_epochs = 50
    c.max_checkpoints = 3
    c.plots = True
    # The run's name in summary.txt, figure titles, TensorBoard and W&B. Empty: the name
    # of --config (e.g. "digits:smoke") under hncl_jax.main, else the workdir's folder name.
    c.name = ""
    # Mirror metrics and plots to Weights & Biases (pip install wandb); the
    # project is $WANDB_PROJECT, and WANDB_MODE=offline writes the run under <workdir>/wandb/.
    c.wandb = False
    # Warm start: a workdir or checkpoint of another run; its parameters and batch statistics
    # are loaded, the optimizer starts fresh at step 0 (the near-NC protocol, HN Table 2).
    c.init_from = ""
    # Allow reusing a workdir that holds a run of a different config.
    c.allow_config_change = False
    if arg:
        apply_args(c, arg)
    return c


def hn_real_data(dataset: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """The hard-negative paper's real-data recipe (HN §5, App. B) on `dataset`.

    ResNet-50 (CIFAR stem, bf16 compute), HSCL β = 10, k = 256, batch 512, Adam 1e-3,
    400 epochs, d = C - 1; `arg` as for every config ("smoke").

    bfloat16 compute is kept from the measurement in BENCHMARKS.md ("bfloat16 against
    float32"): on real data it moves a test accuracy by at most one image on digits and
    lowers none of the table's on Fashion-MNIST, and shifts the within-class variance (and on digits the
    loss gap) up a little (docs/architecture.md, "Numerical precision");
    `--config.dtype=float32` where NC metrics' absolute values matter.
    """
    c = get_config()
    c.dataset = dataset
    c.model = "resnet50"
    c.dtype = "bfloat16"
    c.loss.name = "hscl"
    c.loss.beta = 10.0
    c.loss.k = 256
    c.batch_size = 512
    c.num_epochs = 400
    c.eval_every_epochs = 20
    c.checkpoint_every_epochs = 10
    c.log_every_steps = 100
    if dataset == "tinyimagenet":
        c.image_size = 32
    if arg:
        apply_args(c, arg)
    return c


def apply_args(
    c: ml_collections.ConfigDict, arg: str, known: tuple[str, ...] = ()
) -> ml_collections.ConfigDict:
    """Applies comma-separated config arguments (currently `smoke`) to `c` in place.

    Args:
      c: the config.
      arg: the arguments a config file did not take itself.
      known: the arguments that config file takes, for the error message.

    Raises:
      ValueError: an unknown argument; the message lists the config's arguments and
        the closest one.
    """
    for a in filter(None, (s.strip() for s in arg.split(","))):
        if a == "smoke":
            shrink_for_smoke(c)
        else:
            options = [*known, "smoke"]
            names = [o for o in options if " " not in o]
            close = difflib.get_close_matches(a, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown config argument {a!r}; this config takes: {', '.join(options)} "
                f"(comma separated).{hint}"
            )
    return c


def shrink_for_smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks a config to a short check: tiny model, 2 epochs of 256 examples, small k."""
    if c.model in ("resnet18", "resnet50", "small_cnn"):
        c.model = "tiny_cnn"
    c.model_kwargs = ml_collections.ConfigDict()
    c.batch_size = min(c.batch_size, 64)
    c.num_epochs = 2
    # A warm-up as long as the run would leave the learning rate below its peak throughout.
    c.optimizer.warmup_epochs = min(c.optimizer.warmup_epochs, 1)
    c.dataset_kwargs.max_examples = 256
    if c.loss.name in ("scl", "hscl", "ucl", "hucl"):  # the losses that draw k negatives
        c.loss.k = min(c.loss.k, 16)
    c.eval_every_epochs = 1
    c.checkpoint_every_epochs = 1
    c.probe_epochs = 5
    c.log_every_steps = 1
    return c
