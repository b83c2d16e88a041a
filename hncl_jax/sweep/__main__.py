"""`python -m hncl_jax.sweep`: see `hncl_jax.sweep.cli.main`."""

from hncl_jax.sweep import cli

if __name__ == "__main__":
    cli.main()
