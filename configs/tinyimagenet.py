"""HSCL on Tiny-ImageNet (200 classes) with ResNet-50, images resized to 32×32 (HN App. B).

Tiny-ImageNet is not in the TFDS catalog: download http://cs231n.stanford.edu/tiny-imagenet-200.zip
by hand into a folder, then

    python -m hncl_jax.main --config=configs/tinyimagenet.py --workdir=/tmp/hncl_tin \\
        --config.manual_dir=/path/to/folder/with/zip

The first run builds the dataset (Pillow decoding, no TensorFlow) into config.data_dir.

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
    return default.hn_real_data("tinyimagenet", arg)
