"""hncl_jax.layers: the im2col convolution and the 2×2 max-pool equal the operations
they replace (values and gradients), and the CPU lowering is the one chosen."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from hncl_jax import layers, models

NHWC = ("NHWC", "HWIO", "NHWC")


def _conv_pair(x, k, strides, padding):
    def ours(x, k):
        return layers.conv_general_dilated(x, k, strides, padding, dimension_numbers=NHWC)

    def ref(x, k):
        return lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=NHWC)

    return ours, ref


def _loss(conv, x, k):
    # A non-linear readout, so that the gradients see every output position differently.
    return jnp.sum(jnp.sin(conv(x, k)) * jnp.arange(k.shape[-1]))


@pytest.mark.parametrize(
    "c_in, kernel, strides, padding",
    [
        (1, 3, (1, 1), "SAME"),
        (3, 3, (1, 1), "SAME"),
        (3, 3, (2, 2), "SAME"),
        (8, 3, (2, 2), "SAME"),
        (3, 3, (1, 1), "VALID"),
        (3, 3, (1, 1), [(1, 1), (1, 1)]),  # the ResNet stem's explicit padding
        (2, 5, (2, 1), [(2, 1), (0, 3)]),
        (16, 1, (2, 2), "SAME"),  # a 1×1 projection shortcut
        (32, 3, (1, 1), "SAME"),  # above the threshold: lax's convolution
    ],
)
def test_conv_values_and_gradients_equal_lax(c_in, kernel, strides, padding):
    kx, kk = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (4, 9, 10, c_in))
    k = jax.random.normal(kk, (kernel, kernel, c_in, 6)) / kernel
    ours, ref = _conv_pair(x, k, strides, padding)
    np.testing.assert_allclose(jax.jit(ours)(x, k), ref(x, k), rtol=1e-5, atol=1e-5)
    g_ours = jax.jit(jax.grad(lambda x, k: _loss(ours, x, k), argnums=(0, 1)))(x, k)
    g_ref = jax.grad(lambda x, k: _loss(ref, x, k), argnums=(0, 1))(x, k)
    for a, b in zip(g_ours, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _compiled(fn, *args) -> str:
    return jax.jit(fn).lower(*args).compile().as_text()


def test_the_cpu_lowering_is_a_matrix_product_below_the_threshold_only():
    assert jax.default_backend() == "cpu"
    x1, k1 = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
    ours, _ = _conv_pair(x1, k1, (1, 1), "SAME")
    hlo = _compiled(ours, x1, k1)
    assert "convolution(" not in hlo and "dot(" in hlo
    assert 3 * 3 * 3 <= layers.IM2COL_MAX_FEATURES < 3 * 3 * 16
    x2, k2 = jnp.ones((2, 8, 8, 16)), jnp.ones((3, 3, 16, 4))
    ours, _ = _conv_pair(x2, k2, (1, 1), "SAME")
    assert "convolution(" in _compiled(ours, x2, k2)


def test_dilated_grouped_or_nchw_convolutions_are_lax_itself():
    x, k = jnp.ones((2, 8, 8, 2)), jnp.ones((3, 3, 1, 4))
    grouped = lambda x, k: layers.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=2
    )
    dilated = lambda x, k: layers.conv_general_dilated(
        x, jnp.ones((3, 3, 2, 4)), (1, 1), "SAME", rhs_dilation=(2, 2), dimension_numbers=NHWC
    )
    nchw = lambda x, k: layers.conv_general_dilated(
        jnp.transpose(x, (0, 3, 1, 2)), jnp.ones((4, 2, 3, 3)), (1, 1), "SAME"
    )
    for fn in (grouped, dilated, nchw):
        assert "convolution(" in _compiled(fn, x, k)


def test_flax_conv_keeps_its_parameters_and_output():
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
    plain = nn.Conv(5, (3, 3), use_bias=False)
    ours = nn.Conv(5, (3, 3), use_bias=False, conv_general_dilated=layers.conv_general_dilated)
    variables = plain.init(jax.random.key(2), x)
    assert jax.tree.structure(ours.init(jax.random.key(2), x)) == jax.tree.structure(variables)
    np.testing.assert_allclose(
        ours.apply(variables, x), plain.apply(variables, x), rtol=1e-5, atol=1e-6
    )


def _reshape_max(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def test_max_pool_values_and_gradient_without_ties():
    x = jax.random.normal(jax.random.key(3), (3, 6, 8, 5))
    np.testing.assert_array_equal(layers.max_pool_2x2(x), _reshape_max(x))
    np.testing.assert_array_equal(
        layers.max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2), padding="VALID")
    )
    readout = lambda pool: lambda x: jnp.sum(jnp.sin(pool(x)) * jnp.arange(1.0, 6.0))
    g = jax.jit(jax.grad(readout(layers.max_pool_2x2)))(x)
    np.testing.assert_array_equal(g, jax.grad(readout(_reshape_max))(x))
    # One nonzero per window, at its maximum.
    assert int(jnp.sum(g != 0)) == g.size // 4


def test_max_pool_gradient_at_ties_goes_to_the_first_maximum():
    window = jnp.array([[3.0, 1.0], [3.0, 3.0]]).reshape(1, 2, 2, 1)
    g = jax.grad(lambda x: layers.max_pool_2x2(x).sum())(window)
    np.testing.assert_array_equal(g[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])
    # After a ReLU, tied zeros get no gradient either way: the pool then equals the
    # reshape-max in gradient too (how the models use it).
    x = jax.random.normal(jax.random.key(4), (4, 6, 6, 3))
    after_relu = lambda pool: lambda x: jnp.sum(jnp.cos(pool(nn.relu(x))))
    np.testing.assert_array_equal(
        jax.grad(after_relu(layers.max_pool_2x2))(x), jax.grad(after_relu(_reshape_max))(x)
    )


def test_max_pool_in_bfloat16():
    x = jax.random.normal(jax.random.key(5), (2, 4, 4, 3)).astype(jnp.bfloat16)
    y, g = jax.value_and_grad(lambda x: layers.max_pool_2x2(x).astype(jnp.float32).sum())(x)
    assert g.dtype == jnp.bfloat16 and float(y) == float(_reshape_max(x).astype(jnp.float32).sum())


@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (2, 4, 4), (4, 4, 3)])
def test_max_pool_rejects_odd_sizes_with_the_fix(shape):
    with pytest.raises(ValueError, match="even height and width"):
        layers.max_pool_2x2(jnp.ones(shape))


def test_small_cnn_uses_both_and_pools_odd_sizes_with_padding():
    model = models.create_model("small_cnn", embed_dim=3, width=2)

    @jax.jit
    def forward(x):
        variables = model.init(jax.random.key(7), x, train=False)
        return model.apply(variables, x, train=True, mutable=["batch_stats"])[0]

    for size in (8, 7):  # 7×7 → 4×4 → 2×2 ('SAME' pooling of odd sizes)
        h, f = forward(jax.random.normal(jax.random.key(6), (2, size, size, 1)))
        assert h.shape == (2, 8) and f.shape == (2, 3)
    x = jnp.ones((2, 8, 8, 1))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(7), x, train=False))
    grad = jax.jit(
        jax.grad(lambda p, v, x: model.apply({**v, "params": p}, x, train=False)[1].sum())
    )
    hlo = grad.lower(variables["params"], variables, x).as_text()
    # The pools' gradients come from their one-byte argmax (layers.max_pool_2x2), not from
    # flax's select-and-scatter.
    assert "xi8>" in hlo and "select_and_scatter" not in hlo


def test_benchmarks_md_states_the_threshold_the_code_uses():
    import pathlib

    doc = (pathlib.Path(__file__).resolve().parents[2] / "BENCHMARKS.md").read_text()
    assert f"at most {layers.IM2COL_MAX_FEATURES} values per output position" in doc
    assert f"up to\n  {layers.IM2COL_MAX_FEATURES // 9} channels" in doc
