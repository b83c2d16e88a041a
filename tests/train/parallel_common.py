"""A single train step on a given set of devices, shared by the parallel tests."""

import jax
import numpy as np

from configs import synthetic
from hncl_jax import train
from hncl_jax.data import augment


def tiny_config():
    c = synthetic.get_config("hscl,smoke")
    c.model_kwargs.hidden_sizes = (16,)
    c.dataset_kwargs.dim = 32
    c.loss.beta = 5.0
    c.loss.k = 8
    c.batch_size = 64
    return c


def one_step(devices) -> tuple[float, float]:
    """Runs one train step with the batch sharded over `devices`; (loss, param checksum).

    The step is wired by the trainer's own factories (`train.build`), so the equality
    of one and several devices is a property of the trainer's wiring.
    """
    c = tiny_config()
    train_ds, _ = train.load_data(c)
    built = train.build(
        c,
        train_ds.num_classes,
        batch_size=c.batch_size,
        steps_per_epoch=len(train_ds.labels) // c.batch_size,
        devices=devices,
        steps_per_dispatch=1,
    )
    state = built.init_state(augment.preprocess(train_ds.images[:2]))
    state = train.put_replicated(state, built.replicated)
    images, labels = (
        train.put_replicated(a, built.replicated) for a in (train_ds.images, train_ds.labels)
    )
    state, metrics = built.step_fn(state, images, labels, labels)
    loss = float(np.asarray(jax.device_get(metrics["loss"].addressable_data(0))))
    leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(state.params)]
    return loss, float(sum(np.abs(x).sum() for x in leaves))
