"""The hard-negative paper's synthetic experiment (HN §5, Fig. 2): 3 Gaussian classes in R^3072.

SCL with label positives (the default) reaches the Theorem 2 minimum 0.20141 and
Neural-Collapse in a couple of minutes on a laptop CPU:

    python -m hncl_jax.main --config=configs/synthetic.py --workdir=/tmp/hncl_synthetic

Arguments after a colon (comma separated): a setting `scl|hscl|ucl|hucl`, `views` for the
Gaussian-noise views of HN §5 instead of label positives, `smoke`; e.g.
`--config=configs/synthetic.py:hucl,views --config.loss.beta=30`.
"""

import ml_collections
from ml_collections import config_dict

from hncl_jax.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config()
    c.dataset = "hn_synthetic"
    # Unset: flat vectors for the MLP. The paper feeds a ResNet-50 the vectors reshaped to
    # 32×32×3: --config.model=resnet18 --config.dataset_kwargs.image_shape="(32,32,3)".
    c.dataset_kwargs.image_shape = config_dict.placeholder(tuple)
    c.model = "mlp"
    c.loss.name = "scl"
    c.loss.beta = 0.0
    c.loss.k = 256
    c.batch_size = 512  # the paper's batch; the 300 examples make it the whole set.
    c.num_epochs = 400
    c.eval_every_epochs = 20
    c.checkpoint_every_epochs = 100
    c.log_every_steps = 20
    c.knn_k = (5,)
    c.probe_epochs = 50
    rest = []
    for a in filter(None, (s.strip() for s in (arg or "").split(","))):
        if a in ("scl", "hscl", "ucl", "hucl"):
            c.loss.name = a
            if a in ("hscl", "hucl") and c.loss.beta == 0:
                c.loss.beta = 10.0
        elif a == "views":
            c.positives, c.views = "views", "noise"
        else:
            rest.append(a)
    if rest:
        default.apply_args(c, ",".join(rest), known=("scl", "hscl", "ucl", "hucl", "views"))
    return c
