"""CLOP's synthetic experiment (CLOP §5): 3 lines through the origin in R^3, 10 % labels.

    python -m hncl_jax.main --config=configs/clop_synthetic.py --workdir=/tmp/hncl_clop_syn

InfoNCE (NT-Xent) on noise + sign-flip views plus the CLOP term on the labelled 10 %;
compare --config.clop.weight=0 and --config.loss.name=dcl|vicreg|barlow_twins.

Arguments after a colon (comma separated): `variance` gives the noise by its variance
(`dataset_kwargs.noise_variance`, 0.05 when unset) instead of its standard deviation,
`smoke`. The generator of the earlier default: `--config=configs/clop_synthetic.py:variance
--config.dataset_kwargs.radius=3 --config.dataset_kwargs.directions=random`.
"""

import ml_collections
from ml_collections import config_dict

from hncl_jax.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config()
    c.dataset = "clop_synthetic"
    # The generator's free choices (the paper states none but the noise's "variance 0.05";
    # REPRODUCTION.md's CLOP synthetic section explores them): points span t ∈ [−r, r]
    # along their lines; `directions` is random | orthogonal | axes | planar
    # (data.synthetic.clop_directions); the noise is set by its variance or by its
    # standard deviation (at most one of the two; both unset: variance 0.05). The values
    # are the explored setting chosen there (the closest to the paper's InfoNCE pair among
    # those whose data can hold its 99.89 % with CLOP); none reproduces the paper's gap.
    # The earlier default: radius=3.0, directions="random", the argument `variance`.
    c.dataset_kwargs.radius = 30.0
    c.dataset_kwargs.directions = "orthogonal"
    c.dataset_kwargs.noise_variance = config_dict.placeholder(float)
    c.dataset_kwargs.noise_std = config_dict.placeholder(float)
    c.dataset_kwargs.noise_std = 0.05  # unset by the argument `variance`
    c.model = "mlp"
    c.embed_dim = 3  # CLOP's prototypes need d ≥ C = 3.
    c.normalization = "unit_sphere"
    c.positives = "views"
    c.views = "clop"
    c.loss.name = "nt_xent"
    c.loss.temperature = 0.5
    c.clop.weight = 1.0
    c.label_fraction = 0.1
    c.batch_size = 128
    c.num_epochs = 100
    c.eval_every_epochs = 20
    c.checkpoint_every_epochs = 50
    c.log_every_steps = 20
    c.knn_k = (5,)
    c.probe_epochs = 50
    rest = []
    for a in filter(None, (s.strip() for s in (arg or "").split(","))):
        if a == "variance":
            c.dataset_kwargs.noise_std = None
        else:
            rest.append(a)
    if rest:
        default.apply_args(c, ",".join(rest), known=("variance",))
    return c
