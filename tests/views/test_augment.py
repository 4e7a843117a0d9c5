"""Tests for ssljax.views.augment."""

import colorsys
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssljax.views import augment as aug
from tests.tolerances import f32_sum_tol

# A vmapped or shard_mapped pipeline may reorder the per-image means of the colour ops over
# 28 x 28 pixels in [0, 1] (tolerances: tests/tolerances.py).
AUGMENT_ATOL = f32_sum_tol(28 * 28)


def _key(seed):
    """Key for op-level tests.

    The ops are agnostic to the PRNG implementation; "rbg" keys compile much
    faster on CPU than threefry, which keeps this file quick.  Pipeline tests
    use default (threefry) keys.
    """
    return jax.random.key(seed, impl="rbg")


# Jitted once per distinct static argument set (eager vmapped sampling is slow).
_sample_boxes = jax.jit(aug.sample_crop_boxes, static_argnums=(1, 2, 3, 4, 5))


def _images(shape, seed=0):
    return jnp.asarray(np.random.RandomState(seed).rand(*shape).astype(np.float32))


@functools.lru_cache(maxsize=None)
def _jitted_augment(image_size, **overrides):
    cfg = aug.augment_config(image_size, **overrides)
    return jax.jit(lambda rng, x: aug.simclr_augment(rng, x, cfg))


# ---------------------------------------------------------------------------
# Pipeline: shapes, dtype, determinism
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, overrides, key_fn, out_hw",
    [
        ((4, 28, 28, 1), {}, jax.random.key, (28, 28)),
        # Raw uint32 keys, an explicit output size and blur in the pipeline.
        ((4, 32, 32, 3), {"output_size": 24, "blur_prob": 0.5}, jax.random.PRNGKey, (24, 24)),
    ],
)
def test_simclr_augment_shape_dtype_range_and_keys(shape, overrides, key_fn, out_hw):
    x = _images(shape)
    fn = _jitted_augment(shape[1], **overrides)
    out = fn(key_fn(0), x)
    assert out.shape == (shape[0],) + out_hw + shape[3:] and out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    np.testing.assert_array_equal(out, fn(key_fn(0), x))
    assert not np.allclose(out, fn(key_fn(1), x))
    assert not np.allclose(out[:, :24, :24], x[:, :24, :24])


def test_uint8_input_matches_float_input():
    x8 = jnp.asarray(np.random.RandomState(1).randint(0, 256, (4, 32, 32, 3)).astype(np.uint8))
    xf = aug.to_float(x8)
    assert xf.dtype == jnp.float32
    np.testing.assert_allclose(xf, np.asarray(x8, np.float32) / 255.0, rtol=1e-6)
    # Every op converts with to_float first; check two of them end to end.
    ops = (functools.partial(aug.random_resized_crop, output_size=(16, 20)), aug.random_grayscale)

    @jax.jit
    def run_all(rng, x8, xf):
        return [(op(rng, x8), op(rng, xf)) for op in ops]

    outs = run_all(_key(3), x8, xf)
    assert outs[0][0].shape == (4, 16, 20, 3)
    for out8, outf in outs:
        assert out8.dtype == jnp.float32
        np.testing.assert_allclose(out8, outf, atol=1e-6)
    with pytest.raises(ValueError, match="int32"):
        aug.to_float(jnp.zeros((1, 4, 4, 1), jnp.int32))


def test_make_views_are_independent_and_match_single_calls():
    cfg = aug.augment_config(28)
    x = _images((4, 28, 28, 1))
    views = jax.jit(lambda r, x: aug.make_views(r, x, cfg, num_views=3))(jax.random.key(5), x)
    assert isinstance(views, tuple) and len(views) == 3
    assert all(v.shape == x.shape and v.dtype == jnp.float32 for v in views)
    assert not np.allclose(views[0], views[1]) and not np.allclose(views[1], views[2])
    # The views are vmapped over keys; each equals a plain call with its key.
    fn = _jitted_augment(28)  # same shapes as the pipeline test: cache hit
    keys = jax.random.split(jax.random.key(5), 3)
    for i in range(3):
        np.testing.assert_allclose(views[i], fn(keys[i], x), atol=AUGMENT_ATOL)
    with pytest.raises(ValueError, match="num_views"):
        aug.make_views(jax.random.key(0), x, cfg, num_views=0)


def test_inside_shard_map_matches_per_shard_calls():
    devices = np.array(jax.devices()[:8])
    mesh = Mesh(devices, ("data",))
    cfg = aug.augment_config(28)
    x = _images((4 * len(devices), 28, 28, 1))

    def per_shard(rng, images):
        rng = jax.random.fold_in(rng, jax.lax.axis_index("data"))
        return aug.simclr_augment(rng, images, cfg)

    fn = jax.jit(
        jax.shard_map(per_shard, mesh=mesh, in_specs=(P(), P("data")), out_specs=P("data"))
    )
    out = fn(jax.random.key(11), x)
    assert out.shape == x.shape
    single = _jitted_augment(28)  # same per-shard shape as the pipeline test: cache hit
    for i in (0, 5):
        expected = single(jax.random.fold_in(jax.random.key(11), i), x[4 * i : 4 * (i + 1)])
        np.testing.assert_allclose(out[4 * i : 4 * (i + 1)], expected, atol=AUGMENT_ATOL)
    assert not np.allclose(out[:4], out[20:24])


# ---------------------------------------------------------------------------
# Crop
# ---------------------------------------------------------------------------


def test_full_box_crop_is_identity():
    x = _images((2, 5, 7, 3))
    boxes = jnp.asarray([[0, 0, 5, 7]] * 2, jnp.int32)
    direct, sampled = jax.jit(
        lambda r, x: (
            aug.crop_and_resize(x, boxes),
            aug.random_resized_crop(r, x, scale=(1.0, 1.0), ratio=(7 / 5, 7 / 5)),
        )
    )(_key(0), x)
    np.testing.assert_allclose(direct, x, atol=1e-6)
    np.testing.assert_allclose(sampled, x, atol=1e-6)


def _numpy_bilinear(crop, out_h, out_w):
    """Reference bilinear resize (half-pixel centres, edge clamp), loop-based."""
    in_h, in_w = crop.shape[:2]
    out = np.zeros((out_h, out_w) + crop.shape[2:], np.float64)
    for i in range(out_h):
        y = min(max((i + 0.5) * in_h / out_h - 0.5, 0.0), in_h - 1)
        y0 = int(math.floor(y))
        y1, fy = min(y0 + 1, in_h - 1), y - y0
        for j in range(out_w):
            xx = min(max((j + 0.5) * in_w / out_w - 0.5, 0.0), in_w - 1)
            x0 = int(math.floor(xx))
            x1, fx = min(x0 + 1, in_w - 1), xx - x0
            top = (1 - fx) * crop[y0, x0] + fx * crop[y0, x1]
            bottom = (1 - fx) * crop[y1, x0] + fx * crop[y1, x1]
            out[i, j] = (1 - fy) * top + fy * bottom
    return out


def test_crop_of_left_half_matches_hand_computed_bilinear():
    ramp = (np.arange(16, dtype=np.float32) / 15.0).reshape(1, 4, 4, 1)
    boxes = jnp.asarray([[0, 0, 4, 2]], jnp.int32)  # rows 0..3, columns 0..1
    out = np.asarray(aug.crop_and_resize(jnp.asarray(ramp), boxes, output_size=(4, 4)))[0, ..., 0]
    c0, c1 = ramp[0, :, 0, 0], ramp[0, :, 1, 0]
    hand = np.stack([c0, 0.75 * c0 + 0.25 * c1, 0.25 * c0 + 0.75 * c1, c1], axis=1)
    np.testing.assert_allclose(out, hand, atol=1e-6)
    np.testing.assert_allclose(out, _numpy_bilinear(ramp[0, :, :2], 4, 4)[..., 0], atol=1e-6)


def test_random_boxes_match_reference_resize():
    rng = np.random.RandomState(3)
    x = _images((6, 12, 10, 3), seed=4)
    boxes = []
    for _ in range(6):
        h, w = rng.randint(1, 13), rng.randint(1, 11)
        boxes.append([rng.randint(0, 12 - h + 1), rng.randint(0, 10 - w + 1), h, w])
    out = np.asarray(aug.crop_and_resize(x, jnp.asarray(boxes, jnp.int32), output_size=(7, 9)))
    xn = np.asarray(x)
    for b, (t, l, h, w) in enumerate(boxes):
        expected = _numpy_bilinear(xn[b, t : t + h, l : l + w], 7, 9)
        np.testing.assert_allclose(out[b], expected, atol=1e-5, err_msg=f"box {boxes[b]}")


def _check_box_bounds(boxes, height, width, scale, ratio):
    top, left, h, w = (boxes[:, i].astype(np.float64) for i in range(4))
    assert np.all(top >= 0) and np.all(left >= 0) and np.all(h >= 1) and np.all(w >= 1)
    assert np.all(top + h <= height) and np.all(left + w <= width)
    area = height * width
    # w and h are rounded to integers, so allow half a pixel on each side.
    assert np.all((w + 0.5) * (h + 0.5) >= scale[0] * area)
    assert np.all((w - 0.5) * (h - 0.5) <= scale[1] * area)
    assert np.all((w + 0.5) / (h - 0.5) >= ratio[0])
    assert np.all((w - 0.5) / (h + 0.5) <= ratio[1])


def test_sample_crop_boxes_respect_scale_and_ratio():
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    boxes = np.asarray(_sample_boxes(_key(0), 4000, 200, 200, scale, ratio))
    assert boxes.shape == (4000, 4) and boxes.dtype == np.int32
    _check_box_bounds(boxes, 200, 200, scale, ratio)
    frac = boxes[:, 2] * boxes[:, 3] / 200.0**2
    log_aspect = np.log(boxes[:, 3] / boxes[:, 2])
    # Spread over the whole allowed range, roughly uniform area fraction.
    assert frac.min() < 0.1 and frac.max() > 0.95
    assert 0.45 < frac.mean() < 0.6
    assert log_aspect.min() < math.log(3 / 4) + 0.03 and log_aspect.max() > math.log(4 / 3) - 0.03
    assert 0.4 < np.mean(log_aspect > 0) < 0.6
    # Offsets cover the valid positions.
    fixed = np.asarray(_sample_boxes(_key(1), 2000, 64, 64, (0.25, 0.25), (1.0, 1.0)))
    np.testing.assert_array_equal(fixed[:, 2:], 32)
    assert fixed[:, 0].min() == 0 and fixed[:, 0].max() == 32 and abs(fixed[:, 1].mean() - 16) < 1.5


def test_sample_crop_boxes_fallback():
    # No candidate can fit: central crop with ratio clamped to 3.
    boxes = np.asarray(_sample_boxes(_key(0), 50, 32, 32, (0.9, 1.0), (3.0, 4.0)))
    np.testing.assert_array_equal(boxes, np.tile([[10, 0, 11, 32]], (50, 1)))
    # Wide image, square boxes of the full area never fit: centred square.
    boxes = np.asarray(_sample_boxes(_key(0), 20, 20, 40, (1.0, 1.0), (1.0, 1.0)))
    np.testing.assert_array_equal(boxes, np.tile([[0, 10, 20, 20]], (20, 1)))
    # Mixed: candidates often fail; every box either fits the bounds or is the fallback.
    scale, ratio = (0.9, 1.0), (0.5, 2.0)
    boxes = np.asarray(_sample_boxes(_key(2), 3000, 32, 32, scale, ratio))
    is_fallback = np.all(boxes == np.array([0, 0, 32, 32]), axis=1)
    _check_box_bounds(boxes[~is_fallback], 32, 32, scale, ratio)
    assert 0 < is_fallback.sum() < len(boxes)


def test_crop_argument_errors():
    with pytest.raises(ValueError, match="scale"):
        _sample_boxes(_key(0), 2, 8, 8, (0.5, 0.1), (1.0, 1.0))
    with pytest.raises(ValueError, match="ratio"):
        aug.random_resized_crop(_key(0), _images((1, 8, 8, 1)), ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="output_size"):
        aug.random_resized_crop(_key(0), _images((1, 8, 8, 1)), output_size=(0, 4))
    with pytest.raises(ValueError, match="C=2"):
        aug.random_resized_crop(_key(0), _images((1, 8, 8, 2)))


# ---------------------------------------------------------------------------
# Flip, grayscale
# ---------------------------------------------------------------------------


def test_flip():
    x = _images((8, 5, 6, 3))
    ref = _images((64, 5, 6, 1))
    always, never, half = jax.jit(
        lambda r, x, ref: (
            aug.random_flip_left_right(r, x, prob=1.0),
            aug.random_flip_left_right(r, x, prob=0.0),
            aug.random_flip_left_right(r, ref, prob=0.5),
        )
    )(_key(1), x, ref)
    np.testing.assert_array_equal(always, x[:, :, ::-1])
    np.testing.assert_array_equal(never, x)
    out, ref = np.asarray(half), np.asarray(ref)
    flipped = np.array([np.array_equal(o, r[:, ::-1]) for o, r in zip(out, ref)])
    same = np.array([np.array_equal(o, r) for o, r in zip(out, ref)])
    assert np.all(flipped ^ same) and 10 < flipped.sum() < 54
    with pytest.raises(ValueError, match="prob"):
        aug.random_flip_left_right(_key(0), x, prob=1.5)


def test_grayscale():
    x = _images((3, 4, 5, 3))
    mono = _images((2, 4, 5, 1))
    out, unchanged, mono_out = jax.jit(
        lambda r, x, mono: (
            aug.random_grayscale(r, x, prob=1.0),
            aug.random_grayscale(r, x, prob=0.0),
            aug.random_grayscale(r, mono, prob=1.0),
        )
    )(_key(0), x, mono)
    out = np.asarray(out)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    xn = np.asarray(x)
    expected = 0.2989 * xn[..., 0] + 0.5870 * xn[..., 1] + 0.1140 * xn[..., 2]
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-6)
    np.testing.assert_array_equal(unchanged, x)
    np.testing.assert_array_equal(mono_out, mono)


# ---------------------------------------------------------------------------
# Colour
# ---------------------------------------------------------------------------


def test_color_jitter_identity_cases_and_single_channel():
    rgb, mono = _images((4, 6, 6, 3)), _images((4, 6, 6, 1))
    for x in (rgb, mono):
        np.testing.assert_array_equal(aug.color_jitter(_key(0), x, strength=0.0, prob=1.0), x)
        np.testing.assert_array_equal(aug.color_jitter(_key(0), x, prob=0.0), x)
    out = jax.jit(lambda r, x: aug.color_jitter(r, x, prob=1.0))(_key(0), mono)
    assert out.shape == mono.shape and out.dtype == jnp.float32
    assert not np.allclose(out, mono)
    with pytest.raises(ValueError, match="strength"):
        aug.color_jitter(_key(0), rgb, strength=-1.0)


def test_color_jitter_brightness_only_is_scaling():
    x = 0.2 + 0.5 * _images((16, 4, 4, 3))  # values in [0.2, 0.7]
    jitter = jax.jit(
        lambda r, x: aug.color_jitter(
            r, x, prob=1.0, strength=0.25, contrast=0.0, saturation=0.0, hue=0.0
        )
    )
    out = np.asarray(jitter(_key(1), x))
    ratio = out / np.asarray(x)
    per_image = ratio.reshape(16, -1)
    # One factor per image.
    np.testing.assert_allclose(
        per_image, np.broadcast_to(per_image[:, :1], per_image.shape), rtol=1e-5
    )
    factors = per_image[:, 0]
    assert np.all(factors >= 0.8 - 1e-6) and np.all(factors <= 1.2 + 1e-6)
    assert np.std(factors) > 0.02


_LUMA = np.array([0.2989, 0.5870, 0.1140])


def _numpy_color_op(name, image, param):
    """Independent reference for one colour op on one image [H, W, 3] (float64)."""
    gray = (image @ _LUMA)[..., None]
    if name == "brightness":
        out = image * param
    elif name == "contrast":
        out = gray.mean() + param * (image - gray.mean())
    elif name == "saturation":
        out = gray + param * (image - gray)
    else:
        flat = [colorsys.rgb_to_hsv(*px) for px in image.reshape(-1, 3)]
        flat = [colorsys.hsv_to_rgb((h + param) % 1.0, s, v) for h, s, v in flat]
        out = np.asarray(flat).reshape(image.shape)
    return np.clip(out, 0.0, 1.0)


def test_apply_color_ops_matches_sequential_ops_in_every_order():
    ops = ("brightness", "contrast", "saturation", "hue")
    perms = np.array(list(itertools.permutations(range(4))), np.int32)  # [24, 4]
    x = _images((len(perms), 4, 4, 3), seed=2)
    rng = np.random.RandomState(0)
    params = np.stack(
        [
            rng.uniform(0.4, 1.6, 24),
            rng.uniform(0.4, 1.6, 24),
            rng.uniform(0.4, 1.6, 24),
            rng.uniform(-0.3, 0.3, 24),
        ],
        axis=1,
    ).astype(np.float32)
    out = np.asarray(
        jax.jit(aug.apply_color_ops, static_argnums=3)(
            x, jnp.asarray(perms), jnp.asarray(params), ops
        )
    )
    xn = np.asarray(x, np.float64)
    for b in range(len(perms)):
        y = xn[b]
        for op in perms[b]:
            y = _numpy_color_op(ops[op], y, float(params[b, op]))
        np.testing.assert_allclose(out[b], y, atol=3e-5, err_msg=f"order {perms[b]}")


def test_adjust_ops_match_reference_on_batches():
    x = _images((3, 4, 5, 3), seed=6)
    factors = jnp.asarray([0.5, 1.0, 1.7])
    fns = {
        "brightness": aug.adjust_brightness,
        "contrast": aug.adjust_contrast,
        "saturation": aug.adjust_saturation,
        "hue": aug.adjust_hue,
    }
    outs = jax.jit(lambda x, f: {k: fn(x, f - 1.0 if k == "hue" else f) for k, fn in fns.items()})(
        x, factors
    )
    for name, out in outs.items():
        for b in range(3):
            param = float(factors[b]) - (1.0 if name == "hue" else 0.0)
            expected = _numpy_color_op(name, np.asarray(x[b], np.float64), param)
            np.testing.assert_allclose(out[b], expected, atol=3e-5, err_msg=name)


def test_hue_rotation_properties():
    x = _images((2, 6, 6, 3))
    gray = jnp.broadcast_to(_images((2, 6, 6, 1)), (2, 6, 6, 3))
    red = jnp.asarray([[[[1.0, 0.0, 0.0]]]])

    @jax.jit
    def run(x, gray, red):
        return (
            aug.adjust_hue(x, jnp.zeros(2)),
            aug.adjust_hue(x, jnp.ones(2)),
            aug.hsv_to_rgb(aug.rgb_to_hsv(x)),
            aug.adjust_hue(gray, jnp.asarray([0.13, -0.4])),
            aug.adjust_hue(red, jnp.asarray([1 / 3])),
            aug.adjust_hue(x, jnp.full(2, 0.25)),
        )

    zero, full_turn, roundtrip, gray_out, red_out, quarter = run(x, gray, red)
    np.testing.assert_allclose(zero, x, atol=1e-5)
    np.testing.assert_allclose(full_turn, x, atol=1e-5)
    np.testing.assert_allclose(roundtrip, x, atol=1e-5)
    np.testing.assert_allclose(gray_out, gray, atol=1e-6)
    np.testing.assert_allclose(red_out[0, 0, 0], [0.0, 1.0, 0.0], atol=1e-5)
    assert not np.allclose(quarter, x, atol=1e-2)
    mono = _images((1, 2, 2, 1))
    np.testing.assert_array_equal(aug.adjust_hue(mono, 0.3), mono)


# ---------------------------------------------------------------------------
# Blur
# ---------------------------------------------------------------------------


def test_blur_kernel_size():
    assert [aug.blur_kernel_size(s, s) for s in (8, 28, 32, 96, 224)] == [3, 3, 3, 9, 23]


def _numpy_blur(image, sigma, ksize):
    radius = ksize // 2
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = image.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect")
        n = out.shape[axis]
        out = sum(taps[k] * np.take(padded, np.arange(k, k + n), axis=axis) for k in range(ksize))
    return out


def test_gaussian_blur_matches_reference_and_preserves_constants():
    x = _images((2, 9, 11, 3))
    sigmas = jnp.asarray([0.7, 1.9])
    const = jnp.full((2, 16, 16, 1), 0.37, jnp.float32)
    noise = _images((4, 32, 32, 3))

    @jax.jit
    def run(rng, x, sigmas, const, noise):
        return (
            aug.gaussian_blur_fixed(x, sigmas, 5),
            aug.gaussian_blur(rng, const, prob=1.0),
            aug.gaussian_blur(rng, noise, prob=1.0, sigma=(1.0, 2.0)),
            aug.gaussian_blur(rng, noise, prob=0.0),
        )

    fixed, const_out, blurred, unblurred = run(_key(1), x, sigmas, const, noise)
    for b in range(2):
        np.testing.assert_allclose(
            fixed[b], _numpy_blur(np.asarray(x[b]), float(sigmas[b]), 5), atol=1e-5
        )
    np.testing.assert_allclose(const_out, const, atol=1e-6)
    blurred = np.asarray(blurred)
    np.testing.assert_allclose(
        blurred.mean(axis=(1, 2, 3)), np.asarray(noise).mean(axis=(1, 2, 3)), atol=5e-3
    )
    assert blurred.std() < 0.7 * float(noise.std())
    np.testing.assert_array_equal(unblurred, noise)
    with pytest.raises(ValueError, match="kernel_size"):
        aug.gaussian_blur_fixed(x, sigmas, 4)


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------


def test_augment_config_defaults_overrides_and_errors():
    small, large = aug.augment_config(32), aug.augment_config(224)
    assert small.blur_prob == 0.0 and large.blur_prob == 0.5
    assert (
        tuple(small.crop_scale) == (0.08, 1.0) and small.flip is True and small.output_size is None
    )
    assert (
        small.color_jitter_strength == 1.0
        and small.color_jitter_prob == 0.8
        and small.grayscale_prob == 0.2
    )
    cifar = aug.augment_config(32, color_jitter_strength=0.5, crop_scale=[0.2, 1.0])
    assert cifar.color_jitter_strength == 0.5 and cifar.crop_scale == (0.2, 1.0)
    with pytest.raises(ValueError, match="'blur_pro'.*blur_prob"):
        aug.augment_config(32, blur_pro=0.1)
