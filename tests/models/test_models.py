"""Encoders, heads, registry and feature extraction."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import (
    ENCODERS,
    ConvNet,
    MLPHead,
    ResNet,
    ResNet18,
    ResNet50,
    build_encoder,
    encoder_layer_names,
    extract_features,
    spatial_pool,
)
from ssljax.models.resnet import BasicBlock, BottleneckBlock

KEY = jax.random.key(0)


def _abstract_init(module, shape):
    """Variable shapes of ``module.init`` (nothing is computed)."""
    return jax.eval_shape(lambda: module.init(KEY, jnp.zeros(shape), train=False))


def _abstract_apply(module, shape):
    """Output and intermediates shapes of an eval-mode forward pass."""
    variables = _abstract_init(module, shape)
    return jax.eval_shape(
        lambda v: module.apply(v, jnp.zeros(shape), train=False, mutable=["intermediates"]),
        variables,
    )


def _num_params(variables):
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))


@functools.lru_cache(maxsize=None)
def _convnet_init_and_output():
    """Real init + forward of the default ConvNet on a tiny MNIST-sized batch."""
    module = ConvNet()
    x = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
    y, variables = jax.jit(lambda x: module.init_with_output(KEY, x, train=False))(x)
    return module, variables, x, y


# ---------------------------------------------------------------- shapes


def test_convnet_output_shape_and_finite():
    _, _, _, y = _convnet_init_and_output()
    assert y.shape == (2, 256)
    assert np.all(np.isfinite(y))


def test_convnet_downsamples_with_strided_convs():
    _, state = _abstract_apply(ConvNet(), (2, 28, 28, 1))
    shapes = {k: v[-1].shape for k, v in state["intermediates"].items()}
    assert shapes == {
        "block1": (2, 28, 28, 32),
        "block2": (2, 14, 14, 64),
        "block3": (2, 7, 7, 128),
        "block4": (2, 4, 4, 256),
        "pooled": (2, 256),
    }


def test_resnet18_cifar_output_shape():
    module = ResNet18(stem="cifar")
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    y, variables = jax.jit(lambda x: module.init_with_output(KEY, x, train=False))(x)
    assert y.shape == (2, 512)
    assert np.all(np.isfinite(y))
    # The cifar stem keeps full resolution: conv kernel is 3x3, no max-pool.
    assert variables["params"]["stem_conv"]["kernel"].shape == (3, 3, 3, 64)


def test_resnet50_imagenet_output_shape():
    y, state = _abstract_apply(ResNet50(stem="imagenet"), (2, 64, 64, 3))
    assert y.shape == (2, 2048)
    shapes = {k: v[-1].shape for k, v in state["intermediates"].items()}
    assert shapes["stem"] == (2, 16, 16, 64)  # stride-2 conv then stride-2 max-pool
    assert shapes["block1"] == (2, 16, 16, 256)
    assert shapes["block4"] == (2, 2, 2, 2048)


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_width_multiplier_doubles_output_dim(stem):
    y1, _ = _abstract_apply(ResNet18(stem=stem), (2, 32, 32, 3))
    y2, _ = _abstract_apply(ResNet18(stem=stem, width_multiplier=2), (2, 32, 32, 3))
    assert y1.shape == (2, 512)
    assert y2.shape == (2, 1024)
    assert ResNet18(width_multiplier=2).output_dim == 1024
    assert ResNet50().output_dim == 2048


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    "constructor,expected",
    [(ResNet18, 11_176_512), (ResNet50, 23_508_032)],
    ids=["resnet18", "resnet50"],
)
def test_param_count_matches_torchvision_without_fc(constructor, expected):
    variables = _abstract_init(constructor(stem="imagenet"), (1, 64, 64, 3))
    assert _num_params(variables) == expected
    assert "batch_stats" in variables  # counted separately, not as params


def test_params_are_float32_with_bf16_compute():
    module = ConvNet(widths=(4, 8), strides=(1, 2), dtype=jnp.bfloat16)
    y, variables = jax.eval_shape(
        lambda: module.init_with_output(KEY, jnp.zeros((2, 8, 8, 1)), train=False)
    )
    assert y.dtype == jnp.bfloat16
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}


# ---------------------------------------------------------------- ResNet structure


def test_projection_shortcut_only_when_shape_changes():
    params = _abstract_init(ResNet18(), (1, 32, 32, 3))["params"]
    assert "shortcut" not in params["stage1_block1"]  # 64 -> 64, stride 1: identity
    assert "shortcut" not in params["stage2_block2"]
    assert params["stage2_block1"]["shortcut"]["conv"]["kernel"].shape == (1, 1, 64, 128)
    assert "bn" in params["stage2_block1"]["shortcut"]

    params = _abstract_init(ResNet50(), (1, 32, 32, 3))["params"]
    # Bottleneck expands 64 -> 256 in the first block even without a stride.
    assert params["stage1_block1"]["shortcut"]["conv"]["kernel"].shape == (1, 1, 64, 256)
    assert "shortcut" not in params["stage1_block2"]


def test_bottleneck_stride_is_on_the_3x3_conv():
    """v1.5 placement: the first 1x1 conv sees full resolution, the 3x3 conv downsamples."""
    seen = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, nn.Conv) and context.method_name == "__call__":
            seen[context.module.scope.path] = (args[0].shape[1], out.shape[1])
        return out

    module = ResNet(stage_sizes=(1, 1), block="bottleneck", stem="cifar")
    with nn.intercept_methods(record):
        _abstract_init(module, (1, 8, 8, 3))
    block = ("stage2_block1",)
    assert seen[block + ("conv1",)] == (8, 8)
    assert seen[block + ("conv2",)] == (8, 4)
    assert seen[block + ("conv3",)] == (4, 4)
    assert seen[block + ("shortcut", "conv")] == (8, 4)


@pytest.mark.parametrize(
    "block_cls,features,last_bn", [(BasicBlock, 4, "bn2"), (BottleneckBlock, 1, "bn3")]
)
def test_zero_init_residual_block_starts_as_identity(block_cls, features, last_bn):
    """With an identity shortcut and zero last-BN scale, a block computes relu(x) at init."""
    x = jax.random.normal(jax.random.key(1), (1, 3, 3, 4))  # 4 channels in and out
    for zero_init in (True, False):
        block = block_cls(features=features, zero_init_residual=zero_init)
        variables = block.init(KEY, x, train=False)
        scale = variables["params"][last_bn]["scale"]
        y = block.apply(variables, x, train=False)
        assert "shortcut" not in variables["params"]
        if zero_init:
            np.testing.assert_array_equal(scale, np.zeros(4))
            np.testing.assert_allclose(y, jax.nn.relu(x), rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(scale, np.ones(4))
            assert not np.allclose(y, jax.nn.relu(x), atol=1e-3)


@pytest.mark.parametrize("block,last_bn", [("basic", "bn2"), ("bottleneck", "bn3")])
def test_resnet_passes_zero_init_residual_to_every_block(block, last_bn):
    zero_scale_bns = set()

    def record(next_fun, args, kwargs, context):
        module = context.module
        if isinstance(module, nn.BatchNorm) and module.scale_init is nn.initializers.zeros:
            zero_scale_bns.add(module.scope.path)
        return next_fun(*args, **kwargs)

    for zero_init in (False, True):
        module = ResNet(stage_sizes=(2, 1), block=block, stem="cifar", zero_init_residual=zero_init)
        with nn.intercept_methods(record):
            _abstract_init(module, (1, 4, 4, 3))
        expected = {(b, last_bn) for b in ("stage1_block1", "stage1_block2", "stage2_block1")}
        assert zero_scale_bns == (expected if zero_init else set())


@pytest.mark.parametrize("field,value", [("stem", "tiny"), ("block", "wide")])
def test_resnet_rejects_unknown_choices(field, value):
    with pytest.raises(ValueError) as err:
        ResNet18(**{field: value})
    message = str(err.value)
    assert repr(value) in message
    expected_choices = ["cifar", "imagenet"] if field == "stem" else ["basic", "bottleneck"]
    assert all(c in message for c in expected_choices)


# ---------------------------------------------------------------- MLP head


def test_mlp_head_shapes_and_default_output_has_no_bn():
    head = MLPHead()
    y, variables = jax.eval_shape(
        lambda: head.init_with_output(KEY, jnp.zeros((4, 32)), train=False)
    )
    assert y.shape == (4, 128)
    params = variables["params"]
    assert set(params) == {"hidden1", "hidden1_bn", "output"}
    assert "bias" not in params["hidden1"]  # followed by BN
    assert params["hidden1"]["kernel"].shape == (32, 2048)
    assert params["output"]["kernel"].shape == (2048, 128)
    assert "bias" in params["output"]  # no BN after the output layer
    assert set(variables["batch_stats"]) == {"hidden1_bn"}


def test_mlp_head_bn_on_output_and_no_bn():
    head = MLPHead(hidden_dims=(16, 8), output_dim=4, bn_on_output=True)
    params = _abstract_init(head, (2, 5))["params"]
    assert set(params) == {"hidden1", "hidden1_bn", "hidden2", "hidden2_bn", "output", "output_bn"}
    assert "bias" not in params["output"]

    head = MLPHead(hidden_dims=(16,), output_dim=4, use_bn=False)
    variables = _abstract_init(head, (2, 5))
    assert set(variables["params"]) == {"hidden1", "output"}
    assert "bias" in variables["params"]["hidden1"]
    assert "batch_stats" not in variables


def test_mlp_head_without_output_bias():
    # BYOL's reference MLP: no bias on the output layer, so the output is hidden @ W exactly.
    head = MLPHead(hidden_dims=(16,), output_dim=4, use_bn=False, output_bias=False)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 5))
    variables = head.init(jax.random.PRNGKey(0), x, train=False)
    p = variables["params"]
    assert set(p["output"]) == {"kernel"}
    want = jax.nn.relu(x @ p["hidden1"]["kernel"] + p["hidden1"]["bias"]) @ p["output"]["kernel"]
    np.testing.assert_allclose(head.apply(variables, x, train=False), want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- registry and features


def test_build_encoder_registry():
    assert set(ENCODERS) == {"convnet", "resnet18", "resnet50", "vae_conv", "pixel_transformer"}
    enc = build_encoder("resnet18", axis_name="batch", dtype=jnp.bfloat16, stem="cifar")
    assert isinstance(enc, ResNet)
    assert (enc.axis_name, enc.dtype, enc.stem, enc.block) == (
        "batch",
        jnp.bfloat16,
        "cifar",
        "basic",
    )
    assert isinstance(build_encoder("convnet"), ConvNet)


def test_build_encoder_unknown_name_lists_known():
    with pytest.raises(ValueError) as err:
        build_encoder("vit_tiny")
    message = str(err.value)
    assert "vit_tiny" in message
    assert all(name in message for name in ("convnet", "resnet18", "resnet50"))


def test_encoder_layer_names_in_forward_order():
    module, variables, x, _ = _convnet_init_and_output()
    assert encoder_layer_names(module, variables, x) == [
        "block1",
        "block2",
        "block3",
        "block4",
        "pooled",
    ]
    resnet = ResNet(stage_sizes=(1, 1), stem="cifar")
    resnet_vars = _abstract_init(resnet, (1, 8, 8, 3))
    sample = jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32)
    assert encoder_layer_names(resnet, resnet_vars, sample) == [
        "stem",
        "block1",
        "block2",
        "pooled",
    ]


def test_extract_features_pooled_equals_call():
    module, variables, x, y = _convnet_init_and_output()
    feats = extract_features(module, variables, x)
    np.testing.assert_allclose(feats, y, rtol=1e-6, atol=1e-6)
    # A stale intermediates collection in the variables does not change the result.
    _, state = module.apply(variables, 2.0 * x, train=False, mutable=["intermediates"])
    feats_stale = extract_features(module, {**variables, **state}, x)
    np.testing.assert_allclose(feats_stale, y, rtol=1e-6, atol=1e-6)


def test_extract_features_intermediate_layer_with_grid():
    module, variables, x, _ = _convnet_init_and_output()
    _, state = module.apply(variables, x, train=False, mutable=["intermediates"])
    block3 = state["intermediates"]["block3"][-1]  # [2, 7, 7, 128]
    feats = extract_features(module, variables, x, layer="block3", grid=2)
    assert feats.shape == (2, 2 * 2 * 128)
    np.testing.assert_allclose(feats, spatial_pool(block3, 2), rtol=1e-6, atol=1e-6)
    feats1 = extract_features(module, variables, x, layer="block3")
    np.testing.assert_allclose(feats1, block3.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_extract_layers_is_each_layer_from_one_pass_in_order():
    from ssljax.evaluation.checkpoint_eval import layer_columns
    from ssljax.models import extract_layers

    module, variables, x, _ = _convnet_init_and_output()
    layers = ("block3", "block1", "pooled")
    both = extract_layers(module, variables, x, layers=layers, grid=2)
    singles = [extract_features(module, variables, x, layer=n, grid=2) for n in layers]
    assert both.shape == (2, sum(f.shape[1] for f in singles))
    columns = layer_columns([f.shape[1] for f in singles])
    assert columns[0] == (0, singles[0].shape[1]) and columns[-1][1] == both.shape[1]
    for (lo, hi), single in zip(columns, singles):
        np.testing.assert_allclose(both[:, lo:hi], single, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"Unknown layer 'block9'; available layers are"):
        extract_layers(module, variables, x, layers=("block1", "block9"))


def test_extract_features_unknown_layer_lists_names():
    module, variables, x, _ = _convnet_init_and_output()
    with pytest.raises(ValueError) as err:
        extract_features(module, variables, x, layer="block9")
    message = str(err.value)
    assert "block9" in message
    assert "['block1', 'block2', 'block3', 'block4', 'pooled']" in message
