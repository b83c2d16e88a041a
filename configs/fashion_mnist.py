"""HSCL on Fashion-MNIST (real 28×28 grayscale images) with the small CNN, on a CPU.

    python -m hncl_jax.main --config=configs/fashion_mnist.py --workdir=/tmp/hncl_fashion

The small CNN with two convolutions per stage (width 32, depth 2: 287 k backbone
parameters, 29 M multiply-adds per image), label positives (supervised), hard negatives
with β = 5, k = 256, d = C − 1 = 9 on the unit ball, one view of each image per step (a
random shift of up to 2 pixels and a horizontal flip), Adam with a cosine schedule, 15
epochs.
Reports nearest-class-mean, kNN and linear-probe accuracy on the 10,000 test images.
The data come from TFDS when `fashion_mnist` is prepared there, else from the IDX files
of `apt-get install dataset-fashion-mnist` (or `--config.data_dir=<folder>`).
Measured on a 2-core CPU (BENCHMARKS.md, "Time to accuracy"): linear-probe top-1 (h)
0.931 in 23 min.
"""

import ml_collections

from hncl_jax.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config()
    c.dataset = "fashion_mnist"
    c.model = "small_cnn"
    c.model_kwargs.width = 32
    c.model_kwargs.depth = 2
    c.augment = True
    c.views = "translate"
    c.view_kwargs.max_shift = 2
    c.view_kwargs.flip_prob = 0.5
    c.loss.name = "hscl"
    c.loss.beta = 5.0
    c.loss.k = 256
    c.batch_size = 256
    c.num_epochs = 15
    c.optimizer.learning_rate = 2e-3
    c.optimizer.schedule = "cosine"
    c.eval_every_epochs = 5
    c.checkpoint_every_epochs = 2
    c.log_every_steps = 50
    c.knn_k = (5, 200)
    c.probe_epochs = 30
    if arg:
        default.apply_args(c, arg)
    return c
