"""hncl_jax: hard negatives and collapse in contrastive learning, in JAX/Flax.

Floors (see ARCHITECTURE): `geometry` and `hardening` (pure jax), `losses`,
`baselines`, `models` and `data` (pure functions / modules), then `evaluation`,
`checkpointing`, `reporting`, then `train` and the `main` / `benchmark` entry points.
"""

__version__ = "0.1.0"
