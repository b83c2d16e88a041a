"""HSCL on CIFAR-10 with ResNet-50 (HN §5, App. B): d = C - 1 = 9, k = 256, batch 512.

Prepare the data once (needs TensorFlow: `pip install .[prepare]`, or run on Colab):

    python -c "import tensorflow_datasets as tfds; tfds.builder('cifar10', file_format='array_record').download_and_prepare()"
    python -m hncl_jax.main --config=configs/cifar10.py --workdir=/tmp/hncl_cifar10

Sweep β with --config.loss.beta, the setting with --config.loss.name (scl/hscl/ucl/hucl).

Compute dtype: bfloat16 (parameters, BatchNorm statistics, loss and metrics float32),
chosen from the measurement that docs/architecture.md ("Numerical precision") describes;
pass --config.dtype=float32 where the NC metrics' absolute values matter.
"""

import ml_collections

from hncl_jax.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return default.hn_real_data("cifar10", arg)
