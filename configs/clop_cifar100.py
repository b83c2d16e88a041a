"""CLOP on CIFAR-100 in the SimCLR framework (CLOP §5, App. B): ResNet-50, LARS, 200 epochs.

    python -m hncl_jax.main --config=configs/clop_cifar100.py --workdir=/tmp/hncl_clop_c100

lr = 0.3 · B / 256; sweep --config.batch_size, --config.optimizer.learning_rate,
--config.clop.weight (λ) and --config.label_fraction (0.1, 0.5, 1.0). Arguments:
`10pct`, `50pct`, `smoke`.
"""

import ml_collections

from hncl_jax.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config()
    c.dataset = "cifar100"
    c.model = "resnet50"
    c.dtype = "bfloat16"
    c.embed_dim = 128  # ≥ C = 100 for orthonormal prototypes.
    c.normalization = "unit_sphere"
    c.positives = "views"
    c.views = "simclr"
    c.loss.name = "nt_xent"
    c.loss.temperature = 0.5
    c.clop.weight = 1.0
    c.optimizer.name = "lars"
    c.optimizer.learning_rate = 0.3
    c.optimizer.scale_lr_by_batch = True
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_epochs = 10
    c.optimizer.weight_decay = 1e-6
    c.batch_size = 1024
    c.num_epochs = 200
    c.eval_every_epochs = 20
    c.checkpoint_every_epochs = 10
    c.log_every_steps = 100
    rest = []
    for a in filter(None, (s.strip() for s in (arg or "").split(","))):
        if a.endswith("pct"):
            c.label_fraction = float(a[:-3]) / 100
        else:
            rest.append(a)
    if rest:
        default.apply_args(c, ",".join(rest), known=("<N>pct (labelled share, e.g. 10pct)",))
    return c
