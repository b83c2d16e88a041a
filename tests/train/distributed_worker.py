"""One process of the two-process `jax.distributed` test (run by test_parallel.py).

Usage: python tests/train/distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_JSON
Each process owns one CPU device; the global mesh spans both, the batch is sharded
over them, and every process prints the loss of the same global step.
"""

import json
import os
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.train.parallel_common import one_step  # noqa: E402


def main():
    pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid
    )
    assert jax.process_count() == nproc and jax.device_count() == nproc
    loss, checksum = one_step(jax.devices())
    with open(out, "w") as fh:
        json.dump({"process": pid, "loss": loss, "param_checksum": checksum}, fh)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
