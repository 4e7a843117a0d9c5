"""Tests for batch-sliced convolutions (``ssljax.models.layers.batch_chunked_conv``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ssljax.models import ConvNet, ResNet
from ssljax.models.layers import (
    CPU_CONV_BATCH_CHUNK,
    batch_chunked_conv,
    conv_fn,
    resolve_conv_batch_chunk,
)
from tests.tolerances import assert_close, f32_reorder_rtol, f32_sum_tol

DN = ("NHWC", "HWIO", "NHWC")


def _conv_and_grads(conv, x, w, r, stride):
    def loss(x, w):
        y = conv(x, w, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=DN)
        return jnp.sum(y * r), y

    (_, y), (gx, gw) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, w)
    return y, gx, gw


@pytest.mark.parametrize("chunk", [1, 3, 4])
@pytest.mark.parametrize("stride", [1, 2])
def test_values_and_gradients_equal_one_call(chunk, stride):
    # 7 images: chunk 3 leaves a last slice of one image, chunk 4 one of three.
    kx, kw, kr = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (7, 6, 6, 3))
    w = jax.random.normal(kw, (3, 3, 3, 5))
    out_size = -(-6 // stride)
    r = jax.random.normal(kr, (7, out_size, out_size, 5))
    reference = _conv_and_grads(lax.conv_general_dilated, x, w, r, stride)
    chunked = _conv_and_grads(
        lambda *a, **k: batch_chunked_conv(*a, chunk=chunk, **k), x, w, r, stride
    )
    # Each element is a sum whose terms' magnitudes are the same sums on |x|, |w|, |r|: a
    # reordered sum of n terms is within n * eps * sum|terms| (y: 3*3*3 terms per output,
    # dx: 3*3*5, dw: 7 images x out_size^2 positions).
    sizes = _conv_and_grads(lax.conv_general_dilated, jnp.abs(x), jnp.abs(w), jnp.abs(r), stride)
    for ref, got, size, n in zip(reference, chunked, sizes, (27, 45, 7 * out_size**2)):
        np.testing.assert_allclose(
            np.asarray(got),
            np.asarray(ref),
            rtol=0,
            atol=f32_sum_tol(n, magnitude=float(jnp.max(size))),
        )


def test_slices_are_separate_convolutions():
    x = jnp.ones((8, 4, 4, 2))
    w = jnp.ones((3, 3, 2, 2))
    hlo = (
        jax.jit(
            lambda x, w: batch_chunked_conv(x, w, (1, 1), "SAME", chunk=2, dimension_numbers=DN)
        )
        .lower(x, w)
        .as_text()
    )
    assert hlo.count("stablehlo.convolution") == 4


def test_small_batch_or_zero_chunk_is_one_call():
    x = jnp.ones((4, 4, 4, 2))
    w = jnp.ones((3, 3, 2, 2))
    for chunk in (0, 4, 16):
        hlo = (
            jax.jit(
                lambda x, w, c=chunk: batch_chunked_conv(
                    x, w, (1, 1), "SAME", chunk=c, dimension_numbers=DN
                )
            )
            .lower(x, w)
            .as_text()
        )
        assert hlo.count("stablehlo.convolution") == 1
    assert conv_fn(0) is lax.conv_general_dilated


def test_batch_not_on_axis_0_is_refused():
    x = jnp.ones((2, 4, 4, 3))
    w = jnp.ones((3, 3, 2, 2))
    with pytest.raises(ValueError, match="batch on axis 0"):
        batch_chunked_conv(
            x, w, (1, 1), "SAME", chunk=1, dimension_numbers=("CHWN", "HWIO", "NHWC")
        )


def test_resolve_auto_and_explicit_values():
    assert resolve_conv_batch_chunk(-1, backend="cpu") == CPU_CONV_BATCH_CHUNK
    assert resolve_conv_batch_chunk(-1, backend="gpu") == 0
    assert resolve_conv_batch_chunk(-1, backend="tpu") == 0
    assert resolve_conv_batch_chunk(0, backend="cpu") == 0
    assert resolve_conv_batch_chunk(8, backend="gpu") == 8
    with pytest.raises(ValueError, match=r"conv_batch_chunk must be -1 \(auto\).*got -3"):
        resolve_conv_batch_chunk(-3)


@pytest.mark.parametrize(
    "module",
    [
        lambda chunk: ConvNet(widths=(4, 8), strides=(2, 1), conv_batch_chunk=chunk),
        lambda chunk: ResNet(stage_sizes=(1, 1), stem="cifar", conv_batch_chunk=chunk),
    ],
    ids=["convnet", "resnet"],
)
def test_encoders_do_not_depend_on_the_chunk(module):
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 8, 8, 3))
    plain = module(0)
    variables = plain.init(jax.random.PRNGKey(0), x, train=False)
    chunked = module(2)
    # Same parameter tree: checkpoints do not depend on the setting.
    assert jax.tree.structure(chunked.init(jax.random.PRNGKey(0), x, train=False)) == (
        jax.tree.structure(variables)
    )
    want, _ = plain.apply(variables, x, train=True, mutable=["batch_stats"])
    got, _ = chunked.apply(variables, x, train=True, mutable=["batch_stats"])
    # Longest reduction: BatchNorm statistics over the 5 images' 8 x 8 positions.
    assert_close(got, want, rtol=f32_reorder_rtol(5 * 8 * 8))
