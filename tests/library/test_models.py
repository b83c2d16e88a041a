"""Tests for hncl_jax.models: shapes, dtypes, BatchNorm state, architecture, MACs.

Model initialisation uses "rbg" keys: XLA compiles threefry-based initialisers of a
ResNet slowly on CPU (seconds per model), and the key implementation is irrelevant to
what is tested here.
"""

import math
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from hncl_jax import layers, models

TINY = {
    "resnet18": ((8, 8, 3), {"num_filters": 4}, 32),
    "resnet50": ((8, 8, 3), {"num_filters": 4}, 128),
    "mlp": ((12,), {"hidden_sizes": (16, 8)}, 8),
    "tiny_cnn": ((8, 8, 1), {}, 16),
    "small_cnn": ((8, 8, 1), {"width": 4}, 16),
    "tiny_mlp": ((3,), {}, 32),
}
EMBED = 5


def _key(seed=0):
    return jax.random.key(seed, impl="rbg")


def _all_eqns(jaxpr):
    """Equations of a jaxpr and of the jaxprs nested in its equations (pjit, ...)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                yield from _all_eqns(inner)


def _init(name, dtype=jnp.float32, batch=2, **extra):
    shape, kw, _ = TINY[name]
    model = models.create_model(name, embed_dim=EMBED, dtype=dtype, **{**kw, **extra})
    x = jax.random.normal(_key(1), (batch, *shape))
    variables = jax.jit(lambda x: model.init(_key(), x, train=False))(x)
    return model, variables, x


class ModelTest(parameterized.TestCase):
    @parameterized.parameters("resnet18", "mlp", "tiny_cnn", "tiny_mlp")
    def test_shapes_dtypes_and_collections(self, name):
        # resnet50 runs for real in test_resnet50_full_size_forward (slow) and abstractly
        # in test_full_size_parameter_count_and_head.
        model, variables, x = _init(name)
        (h, f), updates = jax.jit(
            lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])
        )(variables, x)
        h_eval, f_eval = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
        width = TINY[name][2]
        for a, b in ((h, h_eval), (f, f_eval)):
            chex.assert_equal_shape([a, b])
            chex.assert_type([a, b], jnp.float32)
            chex.assert_tree_all_finite([a, b])
        chex.assert_shape(h, (2, width))
        chex.assert_shape(f, (2, EMBED))
        has_bn = name in ("resnet18", "resnet50", "tiny_cnn", "small_cnn")
        self.assertEqual("batch_stats" in variables, has_bn)
        self.assertEqual("batch_stats" in updates, has_bn)
        if has_bn:  # train mode moved the running statistics
            old = jax.tree_util.tree_leaves(variables["batch_stats"])
            new = jax.tree_util.tree_leaves(updates["batch_stats"])
            self.assertTrue(any(not np.allclose(a, b) for a, b in zip(old, new, strict=True)))

    @parameterized.parameters(*models.MODELS)
    def test_bf16_compute_keeps_float32_params(self, name):
        # Traced only (no compilation): parameter dtypes and the dtypes of every matmul
        # and convolution of the forward pass.
        shape, kw, _ = TINY[name]
        model = models.create_model(name, embed_dim=EMBED, dtype=jnp.bfloat16, **kw)
        x = jnp.zeros((2, *shape))
        variables = jax.eval_shape(lambda: model.init(_key(), x, train=False))
        for leaf in jax.tree_util.tree_leaves(variables):
            self.assertEqual(leaf.dtype, jnp.float32)
        closed = jax.make_jaxpr(lambda v: model.apply(v, x, train=False))(variables)
        self.assertEqual([v.aval.dtype for v in closed.jaxpr.outvars], [jnp.float32] * 2)
        heavy = [
            e
            for e in _all_eqns(closed.jaxpr)
            if e.primitive.name in ("conv_general_dilated", "dot_general")
        ]
        self.assertNotEmpty(heavy)
        for eqn in heavy:
            self.assertEqual([v.aval.dtype for v in eqn.invars], [jnp.bfloat16] * 2)

    def test_bf16_outputs_match_float32(self):
        model, variables, x = _init("tiny_cnn", dtype=jnp.bfloat16)
        h, f = model.apply(variables, x, train=False)
        chex.assert_type([h, f], jnp.float32)
        model32 = models.create_model("tiny_cnn", embed_dim=EMBED)
        h32, f32 = model32.apply(variables, x, train=False)
        np.testing.assert_allclose(f, f32, rtol=0.1, atol=0.1)
        self.assertGreater(float(jnp.abs(f - f32).max()), 0.0)  # it did compute in bf16

    def test_batch_stats_update_only_in_train_mode(self):
        name = "tiny_cnn"
        model, variables, x = _init(name, batch=4)
        x = x * 3.0 + 1.0  # batch statistics far from the initial (0, 1)
        (_, f_train), updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        old = jax.tree_util.tree_leaves(variables["batch_stats"])
        new = jax.tree_util.tree_leaves(updates["batch_stats"])
        self.assertTrue(any(not np.allclose(a, b) for a, b in zip(old, new, strict=True)))
        # First BatchNorm: new running mean = 0.9 · 0 + 0.1 · batch mean of its input.
        conv_out = jax.lax.conv_general_dilated(
            x,
            variables["params"]["Conv_0"]["kernel"],
            (1, 1),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        np.testing.assert_allclose(
            updates["batch_stats"]["BatchNorm_0"]["mean"],
            0.1 * conv_out.mean(axis=(0, 1, 2)),
            rtol=1e-4,
            atol=1e-5,
        )
        # Eval mode uses running statistics: an example's output does not depend on the
        # rest of the batch; train mode does.
        _, f_alone = model.apply(variables, x[:1], train=False)
        _, f_batch = model.apply(variables, x, train=False)
        np.testing.assert_allclose(f_alone[0], f_batch[0], rtol=1e-5, atol=1e-5)
        (_, f_train_alone), _ = model.apply(variables, x[:2], train=True, mutable=["batch_stats"])
        self.assertFalse(np.allclose(f_train_alone[0], f_train[0], atol=1e-4))

    @parameterized.parameters(("resnet18", 8), ("resnet50", 16))
    def test_cifar_stem_keeps_resolution(self, name, size):
        # CIFAR stem: stride-1 3×3 conv and no max-pool, so only the 3 strided stages
        # downsample (size / 8); the ImageNet stem would give size / 32.
        shape, kw, _ = TINY[name]
        model = models.create_model(name, embed_dim=EMBED, **kw)
        x = jnp.zeros((1, size, size, 3))
        variables = jax.eval_shape(lambda: model.init(_key(), x, train=False))
        _, state = jax.eval_shape(
            lambda v: model.apply(v, x, train=False, capture_intermediates=True), variables
        )
        inter = state["intermediates"]
        blocks = sorted((k for k in inter if "Block" in k), key=lambda s: int(s.rsplit("_", 1)[1]))
        block_outputs = [inter[k]["__call__"][0] for k in blocks]
        self.assertLen(block_outputs, sum(models._RESNET_STAGES[name]))
        self.assertEqual(block_outputs[0].shape[1:3], (size, size))
        self.assertEqual(block_outputs[-1].shape[1:3], (size // 8, size // 8))
        kernel = variables["params"]["conv_init"]["kernel"]
        self.assertEqual(kernel.shape[:2], (3, 3))

    @parameterized.parameters(
        # torchvision's parameter counts without fc (25 557 032 − 2 049 000 for ResNet-50,
        # 11 689 512 − 513 000 for ResNet-18), with the 7×7 stem (9408) replaced by 3×3 (1728).
        ("resnet50", 25_557_032 - 2_049_000 - 9408 + 1728, 2048),
        ("resnet18", 11_689_512 - 513_000 - 9408 + 1728, 512),
    )
    def test_full_size_parameter_count_and_head(self, name, backbone, width):
        d = 99
        model = models.create_model(name, embed_dim=d)
        x = jnp.zeros((2, 32, 32, 3))
        variables = jax.eval_shape(lambda: model.init(_key(), x, train=False))
        head = variables["params"]["ProjectionHead_0"]
        self.assertEqual(head["dense_hidden"]["kernel"].shape, (width, 512))
        self.assertNotIn("bias", head["dense_hidden"])
        self.assertEqual(head["dense_out"]["kernel"].shape, (512, d))
        self.assertIn("bias", head["dense_out"])
        self.assertIn("BatchNorm_0", head)
        head_params = width * 512 + 2 * 512 + 512 * d + d
        self.assertEqual(models.num_params(variables), backbone + head_params)
        h, f = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
        self.assertEqual((h.shape, f.shape), ((2, width), (2, d)))

    def test_heads(self):
        x = jnp.ones((2, 3))
        for head, names in (("linear", {"dense_out"}), ("mlp", {"dense_hidden", "dense_out"})):
            model = models.create_model("tiny_mlp", embed_dim=4, head=head)
            params = model.init(_key(), x, train=False)["params"]["ProjectionHead_0"]
            self.assertTrue(names <= set(params), (head, params.keys()))
        model = models.create_model("tiny_mlp", embed_dim=32, head="identity")
        variables = model.init(_key(), x, train=False)
        h, f = model.apply(variables, x, train=False)
        np.testing.assert_array_equal(h, f)
        bad = models.create_model("tiny_mlp", embed_dim=4, head="identity")
        with self.assertRaisesRegex(ValueError, "identity"):
            bad.init(_key(), x, train=False)

    def test_mlp_default_hidden_sizes(self):
        for dim, sizes in ((3, (64, 64)), (3072, (1024, 512))):
            model = models.create_model("mlp", embed_dim=2)
            x = jnp.zeros((1, dim))
            params = jax.eval_shape(lambda m=model, x=x: m.init(_key(), x, train=False))["params"]
            mlp = params["mlp"]
            self.assertEqual(mlp["dense_0"]["kernel"].shape, (dim, sizes[0]))
            self.assertEqual(mlp["dense_1"]["kernel"].shape, sizes)
            self.assertEqual(mlp["ProjectionHead_0"]["dense_out"]["kernel"].shape, (sizes[1], 2))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "resnet18.*resnet50.*mlp.*tiny_cnn.*tiny_mlp"):
            models.create_model("vgg", embed_dim=2)
        with self.assertRaisesRegex(ValueError, "embed_dim"):
            models.create_model("mlp", embed_dim=0)
        with self.assertRaisesRegex(ValueError, "head"):
            models.create_model("mlp", embed_dim=2, head="deep")
        with self.assertRaisesRegex(ValueError, "num_filter"):
            models.create_model("resnet18", embed_dim=2, num_filter=8)
        with self.assertRaisesRegex(ValueError, "dtype"):
            models.create_model("mlp", embed_dim=2, dtype=jnp.int32)
        with self.assertRaisesRegex(ValueError, "MODELS|resnet18"):
            models.model_macs("vgg", (32, 32, 3), 2)
        with self.assertRaisesRegex(ValueError, "input_shape"):
            models.model_macs("resnet50", (3072,), 2)


class MacsTest(parameterized.TestCase):
    def test_literature_values(self):
        # CIFAR ResNet-50 ≈ 1.30 GMAC and ResNet-18 ≈ 0.56 GMAC (backbone) at 32×32.
        self.assertAlmostEqual(
            models.model_macs("resnet50", (32, 32, 3), 99) / 1e9, 1.30, delta=0.01
        )
        self.assertAlmostEqual(
            models.model_macs("resnet18", (32, 32, 3), 9) / 1e9, 0.56, delta=0.01
        )
        self.assertEqual(
            models.model_flops("resnet18", (32, 32, 3), 9),
            2 * models.model_macs("resnet18", (32, 32, 3), 9),
        )

    @parameterized.parameters(("mlp", (12,), {"hidden_sizes": (16, 8)}), ("tiny_mlp", (3,), {}))
    def test_dense_macs_equal_kernel_sizes(self, name, shape, kw):
        model = models.create_model(name, embed_dim=EMBED, **kw)
        params = jax.eval_shape(lambda: model.init(_key(), jnp.zeros((1, *shape)), train=False))
        kernels = [
            math.prod(p.shape)
            for path, p in jax.tree_util.tree_leaves_with_path(params)
            if "kernel" in jax.tree_util.keystr(path)
        ]
        self.assertEqual(models.model_macs(name, shape, EMBED, **kw), sum(kernels))

    @parameterized.parameters(("resnet18", {"num_filters": 8}), ("tiny_cnn", {}))
    def test_conv_macs_close_to_xla_count(self, name, kw):
        # XLA skips the zero padding of border pixels, so its count is a little lower. The
        # count is of lax's convolutions: the CPU's im2col lowering of few-channel layers
        # (layers.conv_general_dilated) multiplies the padding too, and on a model as small
        # as tiny_cnn XLA's count of the BatchNorm and ReLU work then tips it over ours.
        self.enter_context(mock.patch.object(layers, "IM2COL_MAX_FEATURES", 0))
        shape = (16, 16, 3)
        model = models.create_model(name, embed_dim=EMBED, **kw)
        x = jnp.zeros((1, *shape))
        variables = jax.eval_shape(lambda: model.init(_key(), x, train=False))
        cost = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x)
        xla_macs = cost.cost_analysis()["flops"] / 2
        ours = models.model_macs(name, shape, EMBED, **kw)
        self.assertBetween(xla_macs / ours, 0.6, 1.05)


@pytest.mark.slow
def test_resnet50_full_size_forward():
    model = models.create_model("resnet50", embed_dim=99, dtype=jnp.bfloat16)
    x = jax.random.uniform(_key(1), (2, 32, 32, 3))
    variables = jax.jit(lambda x: model.init(_key(), x, train=False))(x)
    (h, f), updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, x
    )
    chex.assert_shape([h, f], [(2, 2048), (2, 99)])
    chex.assert_type([h, f], jnp.float32)
    chex.assert_tree_all_finite((h, f, updates))
