"""A single train step on a given set of devices, shared by the parallel tests."""

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from configs import synthetic
from hncl_jax import models, train
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
    """Runs one train step with the batch sharded over `devices`; (loss, param checksum)."""
    c = tiny_config()
    train_ds, _ = train.load_data(c)
    num_classes = train_ds.num_classes
    steps_per_epoch = len(train_ds.labels) // c.batch_size
    mesh = Mesh(np.array(devices), ("data",))
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P("data")) if len(devices) > 1 else None
    model = models.create_model(c.model, embed_dim=num_classes - 1, **dict(c.model_kwargs))
    sample = augment.preprocess(train_ds.images[:2])
    state = train.create_train_state(c, model, sample, num_classes, steps_per_epoch)

    def put(a):
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, replicated, lambda i: a[i])

    state = jax.tree.map(lambda a: put(a) if hasattr(a, "shape") else a, state)
    batch_fn = functools.partial(
        train.make_batch,
        batch_size=c.batch_size,
        steps_per_epoch=steps_per_epoch,
        positives=c.positives,
        views=c.views,
        view_kwargs={},
    )
    step_fn = train.make_step_fn(
        c, num_classes, batch_fn=batch_fn, batch_sharding=batch_sharding, replicated=replicated
    )
    images, labels = put(train_ds.images), put(train_ds.labels)
    state, metrics = step_fn(state, images, labels, labels)
    loss = float(np.asarray(jax.device_get(metrics["loss"].addressable_data(0))))
    leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(state.params)]
    return loss, float(sum(np.abs(x).sum() for x in leaves))
