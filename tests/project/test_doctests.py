"""The docstring examples of the loss floor run as tests (`doctest`).

Every module listed must hold examples, and every function of `REQUIRED` must hold at
least one, so an example cannot silently disappear.
"""

import doctest
import importlib
import io

import pytest

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# module -> the functions that must carry at least one example.
REQUIRED = {
    "hncl_jax._loss_utils": (
        "check_choice",
        "check_scalar",
        "masked_logsumexp",
        "mean_over_positives",
    ),
    "hncl_jax.geometry": (
        "normalize",
        "simplex_etf",
        "nc_metrics",
        "scl_lower_bound",
        "ucl_lower_bound",
    ),
    "hncl_jax.hardening": ("psi", "log_hardening", "tilted_probs", "sample_negatives"),
    "hncl_jax.layers": ("conv_general_dilated", "max_pool_2x2"),
    "hncl_jax.losses": (
        "contrastive_loss",
        "contrastive_loss_with_aux",
        "simclr_form_loss",
        "simclr_form_loss_with_aux",
    ),
    "hncl_jax.baselines": (
        "nt_xent",
        "supcon",
        "sincere",
        "dcl",
        "dclw",
        "vicreg",
        "barlow_twins",
        "orthonormal_prototypes",
        "simplex_prototypes",
        "clop_loss",
        "baseline_loss",
    ),
}


@pytest.mark.slow  # about 35 s each for losses and baselines (eager examples)
@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    assert tests, f"{name} has no docstring examples."
    with_examples = {t.name.rsplit(".", 1)[-1] for t in tests}
    missing = [fn for fn in REQUIRED[name] if fn not in with_examples]
    assert not missing, f"{name}: these functions have no docstring example: {missing}."
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    for test in tests:
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} failing example(s):\n{out.getvalue()}"
