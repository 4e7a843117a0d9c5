"""Bring images of any size and channel count to the input shape an encoder was trained on.

:func:`adapt_images` takes ``uint8`` images, or float images with values in ``[0, 1]``, of
shape ``[N, h, w, c]`` or ``[N, h, w]`` (grey), and returns ``uint8 [N, H, W, C]`` for the
encoder's ``image_shape = (H, W, C)``:

* **Channels.** An alpha channel is dropped (``c = 4`` RGBA -> RGB, ``c = 2`` grey+alpha ->
  grey); grey -> RGB repeats the channel; RGB -> grey is the ITU-R BT.601 luma
  ``0.299 R + 0.587 G + 0.114 B``. Any other mismatch is an error.
* **Size.** The image is scaled, aspect ratio kept, by the smallest factor that makes it cover
  ``H x W`` (for a square target: the shorter side becomes the target) and then centre-cropped.
  Downscaling averages the pixel areas each output pixel covers (the box / "area" filter, as
  ``tf.image.resize(method='area')``), so it is antialiased and a 2x downscale is exactly the
  mean of each 2x2 block; upscaling interpolates linearly between pixel centres (as
  ``jax.image.resize(method='linear')``). Each axis is one small matrix, so the work is two
  matrix products per image, in float32 NumPy.
* **Values.** Floats are scaled by 255; resampled values are rounded to the nearest integer
  (half to even) and clipped to ``[0, 255]``.

Images already at ``(H, W, C)`` pass through unchanged (``uint8`` input is returned as is).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# ITU-R BT.601 luma weights for R, G, B.
BT601_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# Images resampled per NumPy call, to bound the float32 working set.
_CHUNK = 256


def _check_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"image_shape must be (height, width, channels) of positive ints, got {image_shape!r}"
        )
    return shape


def as_nhwc(images) -> np.ndarray:
    """``images`` as a ``uint8`` or float array ``[N, h, w, c]`` (a grey ``[N, h, w]`` gains
    a channel axis), checked: one-line ``ValueError`` for another rank, dtype or range."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape [N, h, w, c] or [N, h, w] (grey), got {images.shape}"
        )
    if min(images.shape[1:]) < 1:
        raise ValueError(
            f"images must have positive height, width and channels, got {images.shape}"
        )
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"images must be uint8 in [0, 255] or float in [0, 1], got dtype {images.dtype}"
        )
    if images.size and not np.isfinite(images).all():
        raise ValueError("float images must have finite values in [0, 1], got NaN or inf")
    if images.size and not (images.min() >= 0 and images.max() <= 1):
        raise ValueError(
            "float images must have finite values in [0, 1], got values in "
            f"[{images.min()}, {images.max()}] (uint8 images are read as [0, 255])"
        )
    return images


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """``[N, h, w, c] -> [N, h, w, channels]`` float32: an alpha channel dropped (``c`` of 2
    or 4), then grey -> RGB by repetition or RGB -> grey by the BT.601 luma."""
    given = images.shape[-1]
    x = images.astype(np.float32)
    if given == channels:
        return x
    if given in (2, 4):  # grey+alpha or RGBA: drop the alpha channel
        x = x[..., :-1]
    c = x.shape[-1]
    if c == channels:
        return x
    if (c, channels) == (1, 3):
        return np.repeat(x, 3, axis=-1)
    if (c, channels) == (3, 1):
        return (x @ BT601_LUMA)[..., None]
    raise ValueError(
        f"cannot convert images with {given} channels to {channels}; supported: equal counts, "
        "1 <-> 3, and 2 -> 1 or 4 -> 3 / 4 -> 1 (alpha dropped)"
    )


def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """``[size_out, size_in]`` weights resampling one axis: the area (box) filter when
    shrinking, linear interpolation between pixel centres when enlarging, identity if equal."""
    if size_out == size_in:
        return np.eye(size_in, dtype=np.float32)
    scale = size_in / size_out
    if size_out < size_in:
        # Output pixel i covers input [i * scale, (i + 1) * scale]; weight = overlap / scale.
        lo = np.arange(size_out)[:, None] * scale
        hi = lo + scale
        j = np.arange(size_in)[None, :]
        overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
        return (overlap / scale).astype(np.float32)
    x = np.clip((np.arange(size_out) + 0.5) * scale - 0.5, 0.0, size_in - 1)
    j0 = np.floor(x).astype(int)
    j1 = np.minimum(j0 + 1, size_in - 1)
    frac = x - j0
    weights = np.zeros((size_out, size_in), np.float64)
    rows = np.arange(size_out)
    np.add.at(weights, (rows, j0), 1.0 - frac)
    np.add.at(weights, (rows, j1), frac)
    return weights.astype(np.float32)


def resize_and_crop_matrices(
    size: tuple[int, int], target: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column matrices ``[H, h]`` and ``[W, w]``: scale ``size = (h, w)`` by the
    smallest factor covering ``target = (H, W)`` (aspect kept), then centre-crop."""
    (h, w), (height, width) = size, target
    factor = max(height / h, width / w)
    mats = []
    for n, want in ((h, height), (w, width)):
        scaled = max(want, int(round(n * factor)))
        top = (scaled - want) // 2
        mats.append(resize_matrix(n, scaled)[top : top + want])
    return mats[0], mats[1]


def adapt_images(images, image_shape: Sequence[int]) -> np.ndarray:
    """``images`` (``uint8`` in [0, 255] or float in [0, 1]; ``[N, h, w, c]`` or ``[N, h, w]``)
    as ``uint8 [N, H, W, C]`` for ``image_shape = (H, W, C)``: alpha dropped, grey <-> RGB
    (BT.601 luma), scaled to cover ``H x W`` with the aspect kept and centre-cropped
    (area-averaged when shrinking, linear when enlarging). See the module docstring."""
    height, width, channels = _check_shape(image_shape)
    images = as_nhwc(images)
    if images.shape[1:] == (height, width, channels) and images.dtype == np.uint8:
        return images
    rows, cols = resize_and_crop_matrices(images.shape[1:3], (height, width))
    identity = images.shape[1:3] == (height, width)
    scale = np.float32(255.0 if images.dtype != np.uint8 else 1.0)
    out = np.empty((images.shape[0], height, width, channels), np.uint8)
    for start in range(0, images.shape[0], _CHUNK):
        chunk = convert_channels(images[start : start + _CHUNK], channels) * scale
        if not identity:
            # [H, h] x [n, h, w, c] -> [n, H, w, c], then the columns the same way.
            chunk = np.einsum("ih,nhwc->niwc", rows, chunk, optimize=True)
            chunk = np.einsum("jw,niwc->nijc", cols, chunk, optimize=True)
        out[start : start + _CHUNK] = np.clip(np.rint(chunk), 0, 255)
    return out
