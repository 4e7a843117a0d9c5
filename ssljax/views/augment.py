"""SimCLR-style image augmentations as pure JAX functions.

Every random op has the signature ``op(rng, images, *, **params)`` where
``images`` is an NHWC batch ``[B, H, W, C]`` with ``C`` in ``{1, 3}``.  Inputs
may be ``uint8`` (scaled by 1/255) or floating point (cast to ``float32``);
outputs are ``float32`` clipped to ``[0, 1]``.  Randomness is per image: the
key is split into ``B`` keys and the per-image logic is vmapped, so the ops are
jit-, vmap- and shard_map-friendly.  All parameters are plain Python values
read at trace time (they are static under ``jax.jit``).

Under ``jax.shard_map`` every shard sees the same ``rng`` unless the caller
folds in the shard index, e.g. ``jax.random.fold_in(rng,
jax.lax.axis_index("data"))``; otherwise shards holding identical images get
identical augmentations.

Design choices (documented here once):

* Resizing is bilinear with half-pixel centres and no anti-aliasing; sample
  positions are clamped to the crop box, so a crop never bleeds pixels from
  outside its box.  It is computed with per-image interpolation matrices and
  two batched matmuls at ``Precision.HIGHEST`` (no TF32), so a full-image box
  at the input size reproduces the input.
* Colour jitter uses the multiplicative brightness of SimCLR v2 / torchvision
  (``x * f`` with ``f ~ U[max(0, 1 - b), 1 + b]``), torchvision-style contrast
  (blend with the mean luma of the image) and saturation (blend with the
  per-pixel luma), and hue rotation in HSV space (``h <- (h + d) mod 1`` with
  ``d ~ U[-hue, hue]``).  The active ops are applied in an independent random
  order per image, clipping to ``[0, 1]`` after each op.  Single-channel
  images only get brightness and contrast.
* Gaussian blur is separable with reflect padding (applied, like the resize,
  as per-image ``[H, H]`` / ``[W, W]`` matrices and two matmuls); the kernel
  size is ``2 * floor(fraction * min(H, W) / 2) + 1`` (at least 3).

What comes from DeepMind's ``dm_pix`` (Babuschkin et al. 2020, "The DeepMind
JAX Ecosystem") and what is kept by hand, measured with
``experiments/benchmark_augment.py`` under ``jax.jit`` on a shared 2-core AMD
EPYC CPU (medians; table and command in ``experiments/augment_ops.md``):

* From dm_pix, same results up to float32 rounding and the same speed within
  the machine's noise: :func:`rgb_to_hsv` / :func:`hsv_to_rgb` (max |diff|
  1.2e-7 / 4.9e-7; 1.2 vs 0.8 ms and 0.9 vs 1.0 ms on 256x32x32x3),
  :func:`adjust_hue` (1.1e-6; 2.5 vs 2.5 ms) and :func:`random_flip_left_right`
  (bit-identical, the same per-image draw ``U < prob``; 0.19 vs 0.20 ms on
  512x28x28x1).  These change float results of RGB colour jitter by <= 2e-6;
  the single-channel (Fashion-MNIST) pipeline is bit-identical.
* Kept, dm_pix defines the op differently: brightness (dm_pix's
  ``adjust_brightness`` is additive, tf.image style; the same multiplicative op
  is only reachable as ``adjust_gamma(x, 1, gain=f)``, one multiply either
  way), contrast (dm_pix blends each channel with its own mean; equal for
  one channel) and saturation (dm_pix scales HSV saturation: a different
  grey point, and 5.4x slower, 3.2 vs 0.6 ms).  Contrast and saturation stay
  luma blends so that :func:`apply_color_ops` fuses them into one blend per
  stage.
* Kept, dm_pix much slower: :func:`rgb_to_grayscale` (same weights;
  dm_pix's ``tensordot`` over the 3-channel axis is 6.2x slower, 0.55 vs
  0.09 ms), :func:`gaussian_blur_fixed` (dm_pix takes one ``sigma`` per call,
  so per-image sigmas need a vmapped convolution: 13-18x slower, 302 vs 23 ms
  on 64x96x96x3; it also zero-pads, our reflect padding equals dm_pix on a
  reflect-padded input with ``'VALID'`` padding) and :func:`crop_and_resize`
  (dm_pix has no per-box crop+resize; ``affine_transform`` does it 70x slower
  and clamps samples to the image rather than the box).
* dm_pix has no Inception-style box sampling (:func:`sample_crop_boxes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import chex
import dm_pix as pix
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax.data.host_views import HOST_AUGMENT_DEFAULTS

__all__ = [
    "LUMA_WEIGHTS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_color_ops",
    "augment_config",
    "blur_kernel_size",
    "color_jitter",
    "crop_and_resize",
    "gaussian_blur",
    "gaussian_blur_fixed",
    "hsv_to_rgb",
    "make_views",
    "post_crop_augment",
    "random_flip_left_right",
    "random_grayscale",
    "random_resized_crop",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "sample_crop_boxes",
    "simclr_augment",
    "to_float",
]

LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)
_NUM_CROP_ATTEMPTS = 10
_HIGHEST = jax.lax.Precision.HIGHEST


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------


def _check_images(images: jax.Array) -> None:
    """Asserts ``images`` is a ``[B, H, W, C]`` batch with ``C`` in {1, 3}."""
    chex.assert_rank(images, 4)
    channels = images.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got C={channels}; valid: 1, 3")


def _check_rgb(name: str, array: jax.Array) -> None:
    """Raises unless ``array`` has 3 channels on its last axis."""
    if array.ndim < 1 or array.shape[-1] != 3:
        raise ValueError(f"{name} must have 3 channels on its last axis, got shape {array.shape}")


def _check_prob(name: str, prob: float) -> float:
    """Returns ``prob`` as float after checking it lies in [0, 1]."""
    prob = float(prob)
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"{name}={prob} is invalid; valid: a probability in [0, 1]")
    return prob


def _check_nonneg(name: str, value: float) -> float:
    """Returns ``value`` as float after checking it is >= 0."""
    value = float(value)
    if not value >= 0.0:
        raise ValueError(f"{name}={value} is invalid; valid: a number >= 0")
    return value


def _check_range(name: str, bounds: Sequence[float]) -> tuple[float, float]:
    """Returns ``bounds`` as ``(lo, hi)`` after checking ``0 < lo <= hi``."""
    message = f"{name}={bounds!r} is invalid; valid: a pair (lo, hi) with 0 < lo <= hi"
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not 0.0 < lo <= hi:
        raise ValueError(message)
    return lo, hi


def _per_image_uniform(rng: chex.PRNGKey, batch: int) -> jax.Array:
    """Draws one ``U[0, 1)`` value per image from per-image keys; ``[batch]``."""
    keys = jax.random.split(rng, batch)
    return jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(keys)


def _select(mask: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """Per-image select: ``mask [B]`` picks ``a[i]`` else ``b[i]`` (``[B, H, W, C]``)."""
    return jnp.where(mask[:, None, None, None], a, b)


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------


def to_float(images: jax.Array) -> jax.Array:
    """Converts images to float32 in [0, 1].

    Args:
      images: any-shape array; ``uint8`` is divided by 255, floating dtypes are
        cast to ``float32`` unchanged in value.

    Returns:
      ``float32`` array of the same shape.
    """
    images = jnp.asarray(images)
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    if jnp.issubdtype(images.dtype, jnp.floating):
        return images.astype(jnp.float32)
    raise ValueError(
        f"images dtype {images.dtype} is unsupported; valid: uint8 or a floating dtype"
    )


def rgb_to_grayscale(images: jax.Array) -> jax.Array:
    """Luma of RGB images.

    Args:
      images: ``[..., 3]`` RGB array.

    Returns:
      ``[..., 1]`` luma ``0.2989 R + 0.5870 G + 0.1140 B``.
    """
    # Explicit channel sum: a reduction over a size-3 minor axis is slow on CPU.
    wr, wg, wb = LUMA_WEIGHTS
    return wr * images[..., 0:1] + wg * images[..., 1:2] + wb * images[..., 2:3]


def rgb_to_hsv(rgb: jax.Array) -> jax.Array:
    """RGB -> HSV, all components in [0, 1] (hue as a fraction of a full turn).

    Computed by ``dm_pix.rgb_to_hsv`` (which first zeroes components below float32
    epsilon).

    Args:
      rgb: ``[..., 3]`` array with values in [0, 1].

    Returns:
      ``[..., 3]`` array ``(h, s, v)``; hue is 0 where the pixel is grey.
    """
    _check_rgb("rgb", rgb)
    return pix.rgb_to_hsv(rgb)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
    """HSV -> RGB, inverse of :func:`rgb_to_hsv` (``dm_pix.hsv_to_rgb``; hue wraps mod 1).

    Args:
      hsv: ``[..., 3]`` array ``(h, s, v)`` with values in [0, 1].

    Returns:
      ``[..., 3]`` RGB array.
    """
    _check_rgb("hsv", hsv)
    return pix.hsv_to_rgb(hsv)


# ---------------------------------------------------------------------------
# Random resized crop
# ---------------------------------------------------------------------------


def _fallback_box(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """Central crop with aspect ratio clamped to ``ratio``; ``(top, left, h, w)``."""
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w = width
        h = int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        h = height
        w = int(round(h * ratio[1]))
    else:
        w, h = width, height
    h = min(max(h, 1), height)
    w = min(max(w, 1), width)
    return (height - h) // 2, (width - w) // 2, h, w


def _sample_one_box(
    rng: chex.PRNGKey,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> jax.Array:
    """Samples one crop box ``[4] int32 = (top, left, h, w)`` for one image."""
    n = _NUM_CROP_ATTEMPTS
    # One draw for all attempts keeps the traced graph (and compile time) small.
    u_area, u_ratio, u_top, u_left = jax.random.uniform(rng, (4, n), jnp.float32)
    area = float(height * width)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = jnp.exp(log_lo + (log_hi - log_lo) * u_ratio)
    w = jnp.round(jnp.sqrt(target_area * aspect)).astype(jnp.int32)
    h = jnp.round(jnp.sqrt(target_area / aspect)).astype(jnp.int32)
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    # Uniform integer offsets in [0, size - crop]; clamp guards u -> 1 rounding.
    top = jnp.floor(u_top * (height - h + 1).astype(jnp.float32))
    left = jnp.floor(u_left * (width - w + 1).astype(jnp.float32))
    top = jnp.clip(top.astype(jnp.int32), 0, jnp.maximum(height - h, 0))
    left = jnp.clip(left.astype(jnp.int32), 0, jnp.maximum(width - w, 0))
    candidates = jnp.stack([top, left, h, w], axis=-1)  # [n, 4]
    first = jnp.argmax(valid)  # index of the first valid attempt (0 if none)
    fallback = jnp.asarray(_fallback_box(height, width, ratio), jnp.int32)
    return jnp.where(jnp.any(valid), candidates[first], fallback)


def sample_crop_boxes(
    rng: chex.PRNGKey,
    batch: int,
    height: int,
    width: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
) -> jax.Array:
    """Samples Inception-style crop boxes, one per image.

    Per image, up to 10 candidates are drawn with area fraction ``U[scale]`` and
    aspect ratio (w / h) log-uniform in ``ratio``; the first that fits inside
    the image is used, at a uniformly random integer position.  If none fits,
    the central crop with aspect ratio clamped to ``ratio`` is used.

    Args:
      rng: PRNG key.
      batch: number of boxes ``B``.
      height: image height ``H`` (static).
      width: image width ``W`` (static).
      scale: ``(lo, hi)`` area-fraction range, ``0 < lo <= hi``.
      ratio: ``(lo, hi)`` aspect-ratio range, ``0 < lo <= hi``.

    Returns:
      ``[B, 4] int32`` boxes ``(top, left, box_h, box_w)`` in pixels.
    """
    scale = _check_range("scale", scale)
    ratio = _check_range("ratio", ratio)
    if int(batch) < 0 or int(height) < 1 or int(width) < 1:
        raise ValueError(
            f"batch={batch}, height={height}, width={width} invalid; valid: batch >= 0, sizes >= 1"
        )
    keys = jax.random.split(rng, int(batch))
    boxes = jax.vmap(lambda k: _sample_one_box(k, int(height), int(width), scale, ratio))(keys)
    chex.assert_shape(boxes, (int(batch), 4))
    return boxes


def _interp_matrix(start: jax.Array, length: jax.Array, out_size: int, in_size: int) -> jax.Array:
    """Bilinear resampling matrices for one axis.

    Output index ``i`` samples input coordinate ``start + (i + 0.5) * length /
    out_size - 0.5`` (half-pixel centres), clamped to ``[start, start + length
    - 1]``; the weights are the tent function ``max(0, 1 - |coord - j|)``.

    Args:
      start: ``[B]`` first pixel of the box along this axis.
      length: ``[B]`` box length in pixels (>= 1).
      out_size: output length (static).
      in_size: input length (static).

    Returns:
      ``[B, out_size, in_size] float32`` matrices whose rows sum to 1.
    """
    start = start.astype(jnp.float32)[:, None]
    length = length.astype(jnp.float32)[:, None]
    i = jnp.arange(out_size, dtype=jnp.float32)[None, :]
    coord = start + (i + 0.5) * (length / out_size) - 0.5
    coord = jnp.clip(coord, start, start + length - 1.0)  # [B, out]
    j = jnp.arange(in_size, dtype=jnp.float32)
    return jnp.maximum(0.0, 1.0 - jnp.abs(coord[:, :, None] - j[None, None, :]))


def _separable_map(rows: jax.Array, cols: jax.Array, images: jax.Array) -> jax.Array:
    """Per-image separable linear map ``rows[b] @ images[b, ..., c] @ cols[b].T``.

    Args:
      rows: ``[B, out_h, H]`` row weights.
      cols: ``[B, out_w, W]`` column weights.
      images: ``[B, H, W, C]`` float images.

    Returns:
      ``[B, out_h, out_w, C] float32`` clipped to [0, 1].
    """
    out = jnp.einsum("boh,bhwc->bowc", rows, images, precision=_HIGHEST)
    out = jnp.einsum("bpw,bowc->bopc", cols, out, precision=_HIGHEST)
    return jnp.clip(out, 0.0, 1.0)


def _resolve_output_size(output_size: Any, height: int, width: int) -> tuple[int, int]:
    """Normalises ``output_size`` (None, int or (h, w)) to ``(out_h, out_w)``."""
    if output_size is None:
        return height, width
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    try:
        out_h, out_w = (int(s) for s in output_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"output_size={output_size!r} is invalid; valid: None, an int or (height, width)"
        ) from None
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output_size={output_size!r} is invalid; valid: positive sizes")
    return out_h, out_w


def crop_and_resize(images: jax.Array, boxes: jax.Array, output_size: Any = None) -> jax.Array:
    """Crops a box from each image and resizes it bilinearly.

    Args:
      images: ``[B, H, W, C]`` images.
      boxes: ``[B, 4]`` boxes ``(top, left, box_h, box_w)`` in pixels.
      output_size: ``None`` (keep ``H, W``), an int, or ``(out_h, out_w)``.

    Returns:
      ``[B, out_h, out_w, C] float32`` clipped to [0, 1].
    """
    images = to_float(images)
    _check_images(images)
    batch, height, width, _ = images.shape
    chex.assert_shape(boxes, (batch, 4))
    out_h, out_w = _resolve_output_size(output_size, height, width)
    rows = _interp_matrix(boxes[:, 0], boxes[:, 2], out_h, height)  # [B, out_h, H]
    cols = _interp_matrix(boxes[:, 1], boxes[:, 3], out_w, width)  # [B, out_w, W]
    return _separable_map(rows, cols, images)


def random_resized_crop(
    rng: chex.PRNGKey,
    images: jax.Array,
    *,
    output_size: Any = None,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
) -> jax.Array:
    """Inception-style random resized crop (see :func:`sample_crop_boxes`).

    Args:
      rng: PRNG key.
      images: ``[B, H, W, C]`` images.
      output_size: ``None`` (keep ``H, W``), an int, or ``(out_h, out_w)``.
      scale: area-fraction range of the box.
      ratio: aspect-ratio (w / h) range of the box.

    Returns:
      ``[B, out_h, out_w, C] float32`` in [0, 1].
    """
    images = to_float(images)
    _check_images(images)
    batch, height, width, _ = images.shape
    output_size = _resolve_output_size(output_size, height, width)
    boxes = sample_crop_boxes(rng, batch, height, width, scale, ratio)
    return crop_and_resize(images, boxes, output_size)


# ---------------------------------------------------------------------------
# Flip and grayscale
# ---------------------------------------------------------------------------


def random_flip_left_right(rng: chex.PRNGKey, images: jax.Array, *, prob: float = 0.5) -> jax.Array:
    """Mirrors each image horizontally with probability ``prob`` (``dm_pix``, per image).

    Args:
      rng: PRNG key.
      images: ``[B, H, W, C]`` images.
      prob: per-image flip probability.

    Returns:
      ``[B, H, W, C] float32``.
    """
    prob = _check_prob("prob", prob)
    images = to_float(images)
    _check_images(images)
    keys = jax.random.split(rng, images.shape[0])
    # Per image: flip iff U[0, 1) < prob (the draw of ``jax.random.bernoulli``).
    flip = jax.vmap(lambda k, x: pix.random_flip_left_right(k, x, probability=prob))
    return jnp.clip(flip(keys, images), 0.0, 1.0)


def random_grayscale(rng: chex.PRNGKey, images: jax.Array, *, prob: float = 0.2) -> jax.Array:
    """Replaces each RGB image by its luma (on 3 channels) with probability ``prob``.

    Single-channel images are returned unchanged.

    Args:
      rng: PRNG key.
      images: ``[B, H, W, C]`` images.
      prob: per-image probability.

    Returns:
      ``[B, H, W, C] float32``.
    """
    prob = _check_prob("prob", prob)
    images = to_float(images)
    _check_images(images)
    if images.shape[-1] == 1:
        return jnp.clip(images, 0.0, 1.0)
    gray = jnp.broadcast_to(rgb_to_grayscale(images), images.shape)
    apply = _per_image_uniform(rng, images.shape[0]) < prob
    return jnp.clip(_select(apply, gray, images), 0.0, 1.0)


# ---------------------------------------------------------------------------
# Colour jitter
# ---------------------------------------------------------------------------


def _luma(images: jax.Array) -> jax.Array:
    """Per-pixel luma ``[..., H, W, 1]`` (identity for one channel)."""
    return images if images.shape[-1] == 1 else rgb_to_grayscale(images)


def _mean_luma(images: jax.Array) -> jax.Array:
    """Mean luma per image, ``[..., 1, 1, 1]``.

    Luma is linear, so the mean luma is the luma of the channel means; reducing the
    channels first is 5x faster on CPU than averaging a luma image (256 x 32 x 32 x 3).
    """
    return _luma(jnp.mean(images, axis=(-3, -2), keepdims=True))


def _expand(factor: jax.Array, images: jax.Array) -> jax.Array:
    """Broadcasts a per-image factor ``[...]`` against images ``[..., H, W, C]``."""
    return jnp.asarray(factor, images.dtype)[..., None, None, None]


def adjust_brightness(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Multiplicative brightness ``x * factor``, clipped.

    Args:
      images: ``[..., H, W, C]`` float images.
      factor: per-image factor, shape ``[...]`` (scalar for a single image).

    Returns:
      Array shaped like ``images``.
    """
    return jnp.clip(images * _expand(factor, images), 0.0, 1.0)


def adjust_contrast(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Contrast: blend with the image's mean luma, ``m + factor * (x - m)``, clipped.

    Args:
      images: ``[..., H, W, C]`` float images.
      factor: per-image factor, shape ``[...]``.

    Returns:
      Array shaped like ``images``.
    """
    mean = _mean_luma(images)
    return jnp.clip(mean + _expand(factor, images) * (images - mean), 0.0, 1.0)


def adjust_saturation(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Saturation: blend with per-pixel luma, ``g + factor * (x - g)``, clipped.

    Args:
      images: ``[..., H, W, 3]`` float images (identity for 1 channel).
      factor: per-image factor, shape ``[...]``.

    Returns:
      Array shaped like ``images``.
    """
    gray = _luma(images)
    return jnp.clip(gray + _expand(factor, images) * (images - gray), 0.0, 1.0)


def adjust_hue(images: jax.Array, delta: jax.Array) -> jax.Array:
    """Hue rotation in HSV space, ``h <- (h + delta) mod 1``, clipped (``dm_pix.adjust_hue``).

    Args:
      images: ``[..., H, W, 3]`` float images (identity for 1 channel).
      delta: per-image hue shift as a fraction of a full turn, shape ``[...]``.

    Returns:
      Array shaped like ``images``.
    """
    if images.shape[-1] == 1:
        return images
    # dm_pix works on [..., H, W] colour planes: the per-image delta broadcasts over H, W.
    rgb = pix.adjust_hue(images, jnp.asarray(delta, images.dtype)[..., None, None])
    return jnp.clip(rgb, 0.0, 1.0)


_COLOR_OPS = ("brightness", "contrast", "saturation", "hue")


def apply_color_ops(
    images: jax.Array,
    order: jax.Array,
    params: jax.Array,
    ops: Sequence[str],
) -> jax.Array:
    """Applies colour ops to each image in a per-image order (deterministic).

    Equivalent to applying, for each image ``b`` and stage ``s = 0..n-1``, the
    op ``ops[order[b, s]]`` with parameter ``params[b, order[b, s]]`` via
    :func:`adjust_brightness`, :func:`adjust_contrast`,
    :func:`adjust_saturation` or :func:`adjust_hue`.  Brightness, contrast and
    saturation are all blends ``a + f * (x - a)`` with anchor ``a`` = 0, mean
    luma or pixel luma, so each stage is one blend; the hue rotation (the
    expensive op) is evaluated once, between the stages before and after it.

    Args:
      images: ``[B, H, W, C]`` float images.
      order: ``[B, n] int`` permutation of ``range(n)`` per image (stage -> op).
      params: ``[B, n]`` parameter of each op (indexed like ``ops``).
      ops: ``n`` distinct names from brightness, contrast, saturation, hue.

    Returns:
      ``[B, H, W, C] float32`` in [0, 1].
    """
    ops = tuple(ops)
    for name in ops:
        if name not in _COLOR_OPS:
            raise ValueError(f"colour op {name!r} is unknown; valid: {', '.join(_COLOR_OPS)}")
    if len(set(ops)) != len(ops):
        raise ValueError(
            f"colour ops {ops!r} contain duplicates; valid: distinct names from {', '.join(_COLOR_OPS)}"
        )
    images = to_float(images)
    _check_images(images)
    batch, n = images.shape[0], len(ops)
    chex.assert_shape([order, params], (batch, n))
    if n == 0:
        return images
    params = params.astype(jnp.float32)
    index = {name: i for i, name in enumerate(ops)}
    hue_idx = index.get("hue")
    if hue_idx is not None and images.shape[-1] == 1:
        raise ValueError("colour op 'hue' needs RGB images; valid for C=1: brightness, contrast")
    if hue_idx is None:
        hue_stage = jnp.full((batch,), n, jnp.int32)
    else:
        hue_stage = jnp.argmax(order == hue_idx, axis=1)

    def blend_stage(x: jax.Array, stage: int, active: jax.Array) -> jax.Array:
        op = order[:, stage]
        factor = jnp.take_along_axis(params, op[:, None], axis=1)[:, 0]
        gray = _luma(x)
        zero = jnp.zeros_like(gray)
        anchor = zero
        if "contrast" in index:
            mean = _mean_luma(x)
            anchor = jnp.where((op == index["contrast"])[:, None, None, None], mean + zero, anchor)
        if "saturation" in index:
            anchor = jnp.where((op == index["saturation"])[:, None, None, None], gray, anchor)
        new = jnp.clip(anchor + factor[:, None, None, None] * (x - anchor), 0.0, 1.0)
        if hue_idx is not None:
            active = active & (op != hue_idx)
        return _select(active, new, x)

    out = images
    for stage in range(n):
        out = blend_stage(out, stage, stage < hue_stage)
    if hue_idx is not None:
        out = adjust_hue(out, params[:, hue_idx])
        for stage in range(n):
            out = blend_stage(out, stage, stage > hue_stage)
    return out


def _sample_jitter(
    rng: chex.PRNGKey, ops: tuple[tuple[str, float], ...]
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-image jitter draws: order ``[n]``, params ``[n]``, apply-uniform ``[]``.

    The order is the argsort of ``n`` uniforms (a uniform random permutation).
    """
    n = len(ops)
    u = jax.random.uniform(rng, (2 * n + 1,), jnp.float32)
    params = []
    for i, (name, mag) in enumerate(ops):
        lo, hi = (-mag, mag) if name == "hue" else (max(0.0, 1.0 - mag), 1.0 + mag)
        params.append(lo + (hi - lo) * u[i])
    order = jnp.argsort(u[n : 2 * n]).astype(jnp.int32)
    return order, jnp.stack(params), u[2 * n]


def color_jitter(
    rng: chex.PRNGKey,
    images: jax.Array,
    *,
    strength: float = 1.0,
    prob: float = 0.8,
    brightness: float = 0.8,
    contrast: float = 0.8,
    saturation: float = 0.8,
    hue: float = 0.2,
) -> jax.Array:
    """SimCLR colour distortion, applied per image with probability ``prob``.

    Magnitudes are scaled by ``strength``.  Factors are drawn per image:
    brightness/contrast/saturation ``U[max(0, 1 - m), 1 + m]`` (multiplicative
    brightness), hue shift ``U[-m, m]`` turns in HSV.  The ops with non-zero
    magnitude are applied in a random order drawn independently per image,
    clipping after each.  For ``C == 1`` only brightness and contrast apply.
    ``strength == 0`` or ``prob == 0`` returns the input unchanged.

    Args:
      rng: PRNG key.
      images: ``[B, H, W, C]`` images.
      strength: global multiplier on the four magnitudes.
      prob: per-image probability of applying the distortion.
      brightness: brightness magnitude.
      contrast: contrast magnitude.
      saturation: saturation magnitude.
      hue: hue magnitude (fraction of a full turn).

    Returns:
      ``[B, H, W, C] float32`` in [0, 1].
    """
    strength = _check_nonneg("strength", strength)
    prob = _check_prob("prob", prob)
    mags = {
        "brightness": _check_nonneg("brightness", brightness) * strength,
        "contrast": _check_nonneg("contrast", contrast) * strength,
        "saturation": _check_nonneg("saturation", saturation) * strength,
        "hue": _check_nonneg("hue", hue) * strength,
    }
    images = to_float(images)
    _check_images(images)
    names = ("brightness", "contrast") if images.shape[-1] == 1 else tuple(mags)
    ops = tuple((name, mags[name]) for name in names if mags[name] > 0.0)
    if not ops or prob == 0.0:
        return images
    keys = jax.random.split(rng, images.shape[0])
    order, params, u = jax.vmap(lambda k: _sample_jitter(k, ops))(keys)
    jittered = apply_color_ops(images, order, params, tuple(name for name, _ in ops))
    return _select(u < prob, jittered, images)


# ---------------------------------------------------------------------------
# Gaussian blur
# ---------------------------------------------------------------------------


def blur_kernel_size(height: int, width: int, fraction: float = 0.1) -> int:
    """Odd kernel size about ``fraction`` of the shorter side, at least 3."""
    fraction = _check_nonneg("kernel_size_fraction", fraction)
    return max(3, 2 * (int(fraction * min(height, width)) // 2) + 1)


def _blur_matrix(weights: jax.Array, size: int) -> jax.Array:
    """Per-image 1-D blur matrices with reflect padding folded in.

    Row ``i`` holds tap ``k`` at source pixel ``reflect(i + k - K // 2)``, so
    ``M @ x`` equals correlating the reflect-padded signal with the taps.

    Args:
      weights: ``[B, K]`` taps (``K`` odd, ``K // 2 < size``).
      size: signal length ``n`` (static).

    Returns:
      ``[B, n, n] float32``.
    """
    ksize = weights.shape[1]
    src = np.arange(size)[:, None] + np.arange(ksize)[None, :] - ksize // 2
    src = np.abs(src)
    src = np.where(src > size - 1, 2 * (size - 1) - src, src)  # [n, K]
    one_hot = (jnp.asarray(src, jnp.int32)[:, :, None] == jnp.arange(size)[None, None, :]).astype(
        jnp.float32
    )
    return jnp.einsum("bk,iks->bis", weights, one_hot, precision=_HIGHEST)


def gaussian_blur_fixed(images: jax.Array, sigma: jax.Array, kernel_size: int) -> jax.Array:
    """Separable Gaussian blur with per-image ``sigma``, reflect padding.

    Args:
      images: ``[B, H, W, C]`` float images.
      sigma: ``[B]`` standard deviations in pixels (> 0).
      kernel_size: odd tap count ``K`` (``K // 2 < min(H, W)``).

    Returns:
      ``[B, H, W, C] float32`` (normalised kernel: constants stay constant).
    """
    images = to_float(images)
    _check_images(images)
    kernel_size = int(kernel_size)
    height, width = images.shape[1:3]
    if kernel_size < 1 or kernel_size % 2 == 0 or kernel_size // 2 >= min(height, width):
        side = min(height, width)
        raise ValueError(
            f"kernel_size={kernel_size} is invalid; valid: odd, >= 1, kernel_size // 2 < min(H, W)={side}"
        )
    chex.assert_shape(sigma, (images.shape[0],))
    offsets = jnp.arange(kernel_size, dtype=jnp.float32) - kernel_size // 2
    sigma = jnp.maximum(jnp.asarray(sigma, jnp.float32), 1e-6)[:, None]
    weights = jnp.exp(-0.5 * (offsets[None, :] / sigma) ** 2)
    weights = weights / jnp.sum(weights, axis=1, keepdims=True)  # [B, K]
    # Matmuls rather than shifted sums: XLA would otherwise fuse (and recompute)
    # the producers of ``images`` into every tap.
    rows = _blur_matrix(weights, height)  # [B, H, H]
    cols = _blur_matrix(weights, width)  # [B, W, W]
    return _separable_map(rows, cols, images)


def gaussian_blur(
    rng: chex.PRNGKey,
    images: jax.Array,
    *,
    prob: float = 0.5,
    sigma: Sequence[float] = (0.1, 2.0),
    kernel_size_fraction: float = 0.1,
) -> jax.Array:
    """Random Gaussian blur with probability ``prob``, ``sigma ~ U[sigma]`` per image.

    Args:
      rng: PRNG key.
      images: ``[B, H, W, C]`` images.
      prob: per-image probability of blurring.
      sigma: ``(lo, hi)`` range of the standard deviation in pixels.
      kernel_size_fraction: kernel size as a fraction of ``min(H, W)``
        (see :func:`blur_kernel_size`).

    Returns:
      ``[B, H, W, C] float32`` in [0, 1].
    """
    prob = _check_prob("prob", prob)
    sig_lo, sig_hi = _check_range("sigma", sigma)
    images = to_float(images)
    _check_images(images)
    if prob == 0.0:
        return images
    batch, height, width, _ = images.shape
    k_apply, k_sigma = jax.random.split(rng)
    sigmas = sig_lo + (sig_hi - sig_lo) * _per_image_uniform(k_sigma, batch)
    blurred = gaussian_blur_fixed(
        images, sigmas, blur_kernel_size(height, width, kernel_size_fraction)
    )
    apply = _per_image_uniform(k_apply, batch) < prob
    return _select(apply, blurred, images)


# ---------------------------------------------------------------------------
# Pipeline
# ---------------------------------------------------------------------------


def augment_config(image_size: int, **overrides: Any) -> ml_collections.ConfigDict:
    """SimCLR augmentation defaults for square images of side ``image_size``.

    Keys: ``crop_scale, crop_ratio, flip, color_jitter_strength,
    color_jitter_prob, grayscale_prob, blur_prob, blur_sigma, output_size``, and
    where the crop is taken: ``crop_on`` (``'auto'``, ``'host'`` or ``'device'``),
    ``host_resize``, ``host_resize_backend``, ``local_crops``, ``local_crop_size``, ``local_crop_scale`` (read by
    :func:`ssljax.data.host_views.host_views_from_config`).
    Blur is on (``0.5``) only for ``image_size >= 96``.  SimCLR uses
    ``color_jitter_strength=0.5`` on CIFAR.

    Args:
      image_size: image side in pixels.
      **overrides: replacements for any of the keys above.

    Returns:
      A ``ConfigDict``; read its values in Python (they are static under jit).
    """
    image_size = int(image_size)
    if image_size < 1:
        raise ValueError(f"image_size={image_size} is invalid; valid: a positive int")
    defaults: dict[str, Any] = {
        "crop_scale": (0.08, 1.0),
        "crop_ratio": (3.0 / 4.0, 4.0 / 3.0),
        "flip": True,
        "color_jitter_strength": 1.0,
        "color_jitter_prob": 0.8,
        "grayscale_prob": 0.2,
        "blur_prob": 0.5 if image_size >= 96 else 0.0,
        "blur_sigma": (0.1, 2.0),
        "output_size": None,
        # Where the random resized crop is taken (ssljax.data.host_views): 'auto', 'host',
        # 'device'; and the local crops of multi-crop (host crops only).
        **HOST_AUGMENT_DEFAULTS,
    }
    for key, value in overrides.items():
        if key not in defaults:
            raise ValueError(
                f"unknown augment_config key {key!r}; valid keys: {', '.join(sorted(defaults))}"
            )
        defaults[key] = tuple(value) if isinstance(value, list) else value
    return ml_collections.ConfigDict(defaults)


def _cfg(cfg: Mapping[str, Any] | ml_collections.ConfigDict, key: str) -> Any:
    """Reads ``cfg[key]`` with a clear error when the key is missing."""
    try:
        return cfg[key]
    except KeyError:
        raise ValueError(
            f"augmentation config lacks key {key!r}; build it with augment_config()"
        ) from None


def simclr_augment(
    rng: chex.PRNGKey,
    images: jax.Array,
    cfg: Mapping[str, Any] | ml_collections.ConfigDict,
) -> jax.Array:
    """One SimCLR view: crop -> flip -> colour jitter -> grayscale -> blur.

    The random resized crop (key ``split(rng, 5)[0]``) is followed by
    :func:`post_crop_augment` with the same ``rng``.  Ops whose
    probability/strength is 0 (or ``flip=False``) are skipped at trace time.
    ``cfg`` is read in Python, so close over it under ``jax.jit``.

    Args:
      rng: PRNG key.
      images: ``[B, H, W, C]`` uint8 or float images.
      cfg: config from :func:`augment_config` (or a mapping with its keys).

    Returns:
      ``[B, out_h, out_w, C] float32`` in [0, 1].
    """
    images = to_float(images)
    _check_images(images)
    k_crop = jax.random.split(rng, 5)[0]
    out = random_resized_crop(
        k_crop,
        images,
        output_size=_cfg(cfg, "output_size"),
        scale=_cfg(cfg, "crop_scale"),
        ratio=_cfg(cfg, "crop_ratio"),
    )
    return post_crop_augment(rng, out, cfg)


def post_crop_augment(
    rng: chex.PRNGKey,
    images: jax.Array,
    cfg: Mapping[str, Any] | ml_collections.ConfigDict,
) -> jax.Array:
    """Everything of :func:`simclr_augment` after the crop: flip -> colour jitter ->
    grayscale -> blur, on images already cropped (on the device, or on the host by
    :mod:`ssljax.data.host_views`).

    Uses the keys ``split(rng, 5)[1:]`` (the first one is the crop's), so
    ``simclr_augment(rng, x, cfg) == post_crop_augment(rng, crop(split(rng, 5)[0], x),
    cfg)``.

    Args:
      rng: PRNG key (the view's key).
      images: ``[B, H, W, C]`` uint8 or float cropped images.
      cfg: augmentation config.

    Returns:
      ``[B, H, W, C] float32`` in [0, 1].
    """
    out = to_float(images)
    _check_images(out)
    _, k_flip, k_color, k_gray, k_blur = jax.random.split(rng, 5)
    if _cfg(cfg, "flip"):
        out = random_flip_left_right(k_flip, out, prob=0.5)
    strength = float(_cfg(cfg, "color_jitter_strength"))
    jitter_prob = float(_cfg(cfg, "color_jitter_prob"))
    if strength > 0.0 and jitter_prob > 0.0:
        out = color_jitter(k_color, out, strength=strength, prob=jitter_prob)
    gray_prob = float(_cfg(cfg, "grayscale_prob"))
    if gray_prob > 0.0 and out.shape[-1] == 3:
        out = random_grayscale(k_gray, out, prob=gray_prob)
    blur_prob = float(_cfg(cfg, "blur_prob"))
    if blur_prob > 0.0:
        out = gaussian_blur(k_blur, out, prob=blur_prob, sigma=_cfg(cfg, "blur_sigma"))
    chex.assert_type(out, jnp.float32)
    return out


def make_views(
    rng: chex.PRNGKey,
    images: jax.Array,
    cfg: Mapping[str, Any] | ml_collections.ConfigDict,
    num_views: int = 2,
) -> tuple[jax.Array, ...]:
    """``num_views`` independently augmented copies of a batch.

    ``images`` of rank 4 ``[B, H, W, C]``: the views are computed as one program
    vmapped over the view keys, so ``make_views(rng, x, cfg)[i]`` equals
    ``simclr_augment(split(rng, num_views)[i], x, cfg)`` up to float rounding.

    ``images`` of rank 5 ``[B, V, S, S, C]``: the crops were already taken on the
    host (:mod:`ssljax.data.host_views`), one per view, so view ``i`` is
    ``post_crop_augment(split(rng, V)[i], images[:, i], cfg)`` (up to float
    rounding): flip, colour, grayscale and blur, without a second crop.

    Args:
      rng: PRNG key (split into one key per view).
      images: ``[B, H, W, C]`` images, or ``[B, V, S, S, C]`` host crops.
      cfg: augmentation config.
      num_views: number of views (>= 1); must equal ``V`` for host crops.

    Returns:
      Tuple of ``num_views`` arrays ``[B, out_h, out_w, C] float32``
      (``[B, S, S, C]`` for host crops).
    """
    if not isinstance(num_views, int) or num_views < 1:
        raise ValueError(f"num_views={num_views} is invalid; valid: an int >= 1")
    num_views = int(num_views)
    keys = jax.random.split(rng, num_views)
    if jnp.ndim(images) == 5:
        if images.shape[1] != num_views:
            raise ValueError(
                f"num_views={num_views} but the host crops hold {images.shape[1]} views "
                f"(images of shape {tuple(images.shape)}); valid: num_views={images.shape[1]}"
            )
        views = jax.vmap(lambda key, x: post_crop_augment(key, x, cfg), in_axes=(0, 1))(
            keys, images
        )
    else:
        views = jax.vmap(lambda key: simclr_augment(key, images, cfg))(keys)
    return tuple(views[i] for i in range(num_views))
