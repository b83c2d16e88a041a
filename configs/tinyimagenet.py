"""HSCL on Tiny-ImageNet (200 classes) with ResNet-50, images resized to 32×32 (HN App. B).

Tiny-ImageNet is not in the TFDS catalog: download http://cs231n.stanford.edu/tiny-imagenet-200.zip
by hand into a folder, then

    python -m hncl_jax.main --config=configs/tinyimagenet.py --workdir=/tmp/hncl_tin \\
        --config.manual_dir=/path/to/folder/with/zip

The first run builds the dataset (Pillow decoding, no TensorFlow) into config.data_dir.
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config()
    c.dataset = "tinyimagenet"
    c.image_size = 32
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
    if arg:
        default.apply_args(c, arg)
    return c
