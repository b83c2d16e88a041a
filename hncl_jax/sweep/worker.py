"""`python -m hncl_jax.sweep.worker SPEC`: trains the one run pickled in SPEC
(`launchers.write_spec`), as `launchers.run_parallel` starts it in its own process."""

import sys

from hncl_jax.sweep import launchers

if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m hncl_jax.sweep.worker <workdir>/sweep_spec.pkl")
    launchers.run_spec(sys.argv[1])
