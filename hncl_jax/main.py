"""Command-line entry point: absl flags → `train.train_and_evaluate`.

    python -m hncl_jax.main --config=configs/synthetic.py --workdir=/tmp/hncl_synthetic
    python -m hncl_jax.main --config=configs/cifar100.py:smoke --workdir=/tmp/smoke \\
        --config.loss.beta=5

Several hosts: run the same command on every host with `--multihost` (JAX's own
distributed runtime; on Cloud TPU/GPU clusters the coordinator is found automatically,
elsewhere set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID).
"""

import logging as pylogging

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from hncl_jax import train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and plots.")
flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first.")
config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, e.g. configs/synthetic.py[:smoke].", lock_config=True
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
    if FLAGS.multihost:
        jax.distributed.initialize()
    pylogging.getLogger("absl").setLevel(pylogging.INFO)
    # Orbax logs every save step at INFO through absl; keep its warnings only.
    pylogging.getLogger("absl").addFilter(
        lambda r: r.levelno >= pylogging.WARNING or "orbax" not in r.pathname
    )
    logging.info(
        "JAX process %d/%d, local devices %s",
        jax.process_index(),
        jax.process_count(),
        jax.local_devices(),
    )
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
