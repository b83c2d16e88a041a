"""HSCL on CIFAR-10 with ResNet-50 (HN §5, App. B): d = C - 1 = 9, k = 256, batch 512.

Prepare the data once (needs TensorFlow: `pip install .[prepare]`, or run on Colab):

    python -c "import tensorflow_datasets as tfds; tfds.builder('cifar10', file_format='array_record').download_and_prepare()"
    python -m hncl_jax.main --config=configs/cifar10.py --workdir=/tmp/hncl_cifar10

Sweep β with --config.loss.beta, the setting with --config.loss.name (scl/hscl/ucl/hucl).

Compute dtype: bfloat16 (parameters, BatchNorm statistics, loss and metrics float32),
chosen from BENCHMARKS.md "bfloat16 against float32": on the real-data sets measured
there it moves a test accuracy by at most one image on digits and lowers none of the
table's on Fashion-MNIST, and shifts the within-class variance (and on digits the loss gap) up a
little; docs/architecture.md ("Numerical precision") gives the reasons. Compare NC
metrics between runs of one dtype, and pass --config.dtype=float32 where their absolute
values matter.
"""

import ml_collections

from hncl_jax.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return default.hn_real_data("cifar10", arg)
