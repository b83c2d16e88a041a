"""Command-line entry point: absl flags → `train.train_and_evaluate`.

    python -m hncl_jax.main --config=synthetic
    python -m hncl_jax.main --config=cifar100:smoke --workdir=/tmp/smoke --config.loss.beta=5
    python -m hncl_jax.main --config=path/to/my_config.py --workdir=/tmp/mine

`--config` is the name of a shipped config (`hncl_jax.configs`, the checkout's configs/)
or the path of a config file, with an optional `:<arg>`; `--config.<field>=<value>`
overrides a field. `--workdir` defaults to `runs/<config name>[_<arg>]`, so rerunning
the same command resumes the run. Errors are one line; `--verbose` (or HNCL_VERBOSE=1)
shows their traceback. `--print_config` checks the config and prints it as the run would
record it in config.json, then exits (no data is loaded, nothing is compiled).

Several hosts: run the same command on every host with `--multihost` (JAX's own
distributed runtime; under SLURM's `srun`, on Cloud TPU and with Open MPI the coordinator is
found automatically, elsewhere set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID), e.g. `srun -n 2 python -m hncl_jax.main --config=... --multihost`.
"""

import json
import os
import sys

from hncl_jax.train import cli

cli.exit_on_interrupt()  # before the slow imports: Ctrl-C is one line at any moment

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from hncl_jax import runtime  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "workdir",
    None,
    "Folder for checkpoints, metrics and plots (default: runs/<config name>); "
    "rerunning on it resumes.",
)
flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first.")
flags.DEFINE_bool("verbose", False, "Show the full traceback of an error (or HNCL_VERBOSE=1).")
flags.DEFINE_bool(
    "print_config",
    False,
    "Check the config (every rule that needs no data) and print it as config.json would "
    "record it, then exit without loading data or compiling.",
)
config_flags.DEFINE_config_file(
    "config",
    None,
    "A shipped config by name (digits, synthetic, cifar100, ...) or a config file's path, "
    "with an optional :<arg>, e.g. digits:smoke or configs/synthetic.py:hscl.",
    lock_config=True,
)
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
    # Huge-page malloc for XLA:CPU; re-executes once (Ctrl-C held over the restart).
    cli.with_interrupts_held(runtime.tune_process)
    cli.one_line_warnings()
    import jax

    from hncl_jax import train

    if FLAGS.multihost:
        initialize_distributed()
    runtime.quiet_logs()
    spec = cli.flag_value(sys.argv, "config") or ""
    workdir = FLAGS.workdir or cli.default_workdir(spec)
    cli.set_interrupt_message(
        f"{workdir} keeps its last one, if any: rerun the same command to resume."
    )
    if "name" in FLAGS.config and not FLAGS.config.name:
        # The run's name in summary.txt, plot titles, TensorBoard and W&B: "digits:smoke".
        path, sep, arg = spec.partition(":")
        FLAGS.config.name = os.path.basename(path).removesuffix(".py") + sep + arg
    if FLAGS.config.get("init_from"):
        # Recorded in config.json as an absolute path: the record names the source run
        # wherever it is read from.
        FLAGS.config.init_from = os.path.abspath(os.path.expanduser(FLAGS.config.init_from))
    cli.warn_ignored_overrides(sys.argv, FLAGS.config)
    if FLAGS.print_config:
        from hncl_jax.train import validation

        config = FLAGS.config
        cli.run_main(lambda: validation.validate_config(config, num_devices=jax.device_count()))
        print(json.dumps(json.loads(config.to_json_best_effort()), sort_keys=True, indent=2))
        return
    logging.info(
        "JAX process %d/%d, local devices %s; workdir %s",
        jax.process_index(),
        jax.process_count(),
        jax.local_devices(),
        workdir,
    )
    cli.run_main(lambda: train.train_and_evaluate(FLAGS.config, workdir))


def initialize_distributed() -> None:
    """`jax.distributed.initialize()` for `--multihost`, with CPU collectives (gloo).

    Under SLURM (`srun`), on Cloud TPU and with Open MPI, JAX finds the coordinator, the
    process count and this process's index by itself. Elsewhere set
    JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and
    JAX_PROCESS_ID on every process.
    """
    import jax

    # CPU processes exchange their gradients through gloo (the default from jax 0.5 on).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {}
    for name, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if os.environ.get(name):
            try:
                kwargs[key] = int(os.environ[name])
            except ValueError:
                raise app.UsageError(f"{name}={os.environ[name]!r} must be an integer") from None
    jax.distributed.initialize(**kwargs)


def run() -> None:
    """The `python -m hncl_jax.main` entry point."""
    app.run(main, flags_parser=cli.flags_parser(FLAGS))


if __name__ == "__main__":
    run()
