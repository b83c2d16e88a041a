"""HSCL on Tiny-ImageNet (200 classes) with ResNet-50, images resized to 32×32 (HN App. B).

Tiny-ImageNet is not in the TFDS catalog: download http://cs231n.stanford.edu/tiny-imagenet-200.zip
by hand into a folder, then

    python -m hncl_jax.main --config=configs/tinyimagenet.py --workdir=/tmp/hncl_tin \\
        --config.manual_dir=/path/to/folder/with/zip

The first run builds the dataset (Pillow decoding, no TensorFlow) into config.data_dir.

Compute dtype: bfloat16 (parameters, BatchNorm statistics, loss and metrics float32),
chosen from the measurement that docs/architecture.md ("Numerical precision") describes;
pass --config.dtype=float32 where the NC metrics' absolute values matter.
"""

import ml_collections

from hncl_jax.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return default.hn_real_data("tinyimagenet", arg)
