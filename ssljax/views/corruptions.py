"""Corruptions and colour transforms for the reconstruction pretext tasks, as pure JAX functions.

Everything here is a function of arrays (and, for the random ones, a PRNG key): deterministic
from the key, jit/vmap/shard_map friendly, run on device like ``ssljax.views.augment``. Images
are NHWC ``float32`` in ``[0, 1]``; masks are ``float32`` with 1 where a pixel is hidden
(Pathak et al. 2016's ``M``: "1 wherever a pixel was dropped").

Masks for context-encoder inpainting (Pathak et al. 2016, section 3.3):

* ``central``: one ``hole x hole`` square in the middle (the paper: the central quarter of the
  area, a 64x64 hole in 128x128 images).
* ``random_block``: ``num_blocks`` squares of side ``block_size`` at uniform positions, which
  may overlap (the paper: "a number of smaller possibly overlapping masks, covering up to 1/4
  of the image").
* ``random_region``: the paper pastes object silhouettes from PASCAL VOC; here (our choice,
  no segmentation data needed) the region is the top ``fraction`` of a smooth random field:
  Gaussian noise on a coarse grid (one value per ``scale`` pixels) bilinearly upsampled, then
  the ``round(fraction * H * W)`` highest pixels are hidden, so the area is exact and forms
  blobs rather than scattered pixels.

Corruptions for denoising autoencoders (Vincent et al. 2008, 2010): additive Gaussian noise
and masking noise (a random fraction of pixels set to 0 in every channel).

Colour (Zhang et al. 2016, "Colorful Image Colorization"; Larsson et al. 2017): sRGB <-> CIE
L*a*b* with the sRGB transfer curve (IEC 61966-2-1) and the sRGB-to-XYZ matrix; the reference
white is the XYZ of sRGB white ``(1, 1, 1)`` under that matrix, i.e. D65 as the matrix realises
it (0.950456, 1, 1.088754), so white maps to exactly ``L = 100, a = b = 0``. ab space is
quantised on Zhang et al.'s grid of 10 units, keeping the "in-gamut" bins: the 261 grid cells
that 8-bit sRGB colours reach (Zhang et al. report 313 for their gamut estimate; ours is
computed exactly here, see ``ab_bin_centers``). Soft encoding follows Zhang et al.: the 5
nearest bins weighted by a Gaussian of sigma 5 in ab units; decoding is the (annealed) mean.
"""

from __future__ import annotations

import functools
from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "AB_GRID",
    "D65_WHITE",
    "MASK_KINDS",
    "NOISE_KINDS",
    "SRGB_TO_XYZ",
    "ab_bin_centers",
    "apply_mask",
    "block_mask",
    "central_mask",
    "decode_ab",
    "downsample_mean",
    "encode_ab_hard",
    "encode_ab_soft",
    "gaussian_noise",
    "lab_to_rgb",
    "masking_noise",
    "random_block_corners",
    "random_block_mask",
    "random_region_mask",
    "rgb_to_lab",
    "sample_masks",
    "smooth_noise",
]

MASK_KINDS = ("central", "random_block", "random_region")
NOISE_KINDS = ("gaussian", "masking")


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``value`` as ``(h, w)`` from an int or a pair of ints."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is invalid; valid: an int or a pair of ints") from None
    return h, w


# ---------------------------------------------------------------------------
# Inpainting masks ([H, W] float32, 1 = hidden)
# ---------------------------------------------------------------------------


def central_mask(height: int, width: int, *, hole_size: int | Sequence[int]) -> jax.Array:
    """The centred ``hole_h x hole_w`` rectangle of an ``height x width`` image.

    The hole starts at row ``(height - hole_h) // 2`` and column ``(width - hole_w) // 2``.
    """
    hole_h, hole_w = _pair(hole_size, "hole_size")
    if not (0 < hole_h <= height and 0 < hole_w <= width):
        raise ValueError(
            f"hole_size={hole_size!r} is invalid for {height}x{width} images; valid: "
            f"1..{height} by 1..{width}"
        )
    top, left = (height - hole_h) // 2, (width - hole_w) // 2
    mask = np.zeros((height, width), np.float32)
    mask[top : top + hole_h, left : left + hole_w] = 1.0
    return jnp.asarray(mask)


def block_mask(corners: jax.Array, height: int, width: int, *, block_size: int) -> jax.Array:
    """Union of ``block_size`` squares with top-left ``corners [K, 2]`` (row, col): ``[H, W]``."""
    chex.assert_rank(corners, 2)
    rows, cols = jnp.arange(height), jnp.arange(width)
    top, left = corners[:, 0:1], corners[:, 1:2]
    in_rows = ((rows >= top) & (rows < top + block_size)).astype(jnp.float32)  # [K, H]
    in_cols = ((cols >= left) & (cols < left + block_size)).astype(jnp.float32)  # [K, W]
    covered = jnp.einsum("kh,kw->hw", in_rows, in_cols, precision=jax.lax.Precision.HIGHEST)
    return (covered > 0).astype(jnp.float32)


def random_block_corners(
    rng: chex.PRNGKey, height: int, width: int, *, num_blocks: int, block_size: int
) -> jax.Array:
    """``[num_blocks, 2]`` uniform top-left corners of squares that lie inside the image."""
    if not (0 < block_size <= min(height, width)):
        raise ValueError(
            f"block_size={block_size} is invalid for {height}x{width} images; valid: "
            f"1..{min(height, width)}"
        )
    if num_blocks < 1:
        raise ValueError(f"num_blocks={num_blocks} is invalid; valid: an int >= 1")
    maxval = jnp.array([height - block_size + 1, width - block_size + 1])
    return jax.random.randint(rng, (num_blocks, 2), 0, maxval)


def random_block_mask(
    rng: chex.PRNGKey, height: int, width: int, *, num_blocks: int, block_size: int
) -> jax.Array:
    """``num_blocks`` possibly overlapping ``block_size`` squares at random positions."""
    corners = random_block_corners(rng, height, width, num_blocks=num_blocks, block_size=block_size)
    return block_mask(corners, height, width, block_size=block_size)


def smooth_noise(rng: chex.PRNGKey, height: int, width: int, *, scale: float) -> jax.Array:
    """Standard normal values on a grid of one cell per ``scale`` pixels, bilinearly upsampled."""
    if not scale >= 1:
        raise ValueError(f"scale={scale} is invalid; valid: a number >= 1 (pixels per cell)")
    grid_h = max(2, int(round(height / scale)) + 1)
    grid_w = max(2, int(round(width / scale)) + 1)
    coarse = jax.random.normal(rng, (grid_h, grid_w), jnp.float32)
    return jax.image.resize(coarse, (height, width), method="linear")


def random_region_mask(
    rng: chex.PRNGKey, height: int, width: int, *, fraction: float, scale: float = 4.0
) -> jax.Array:
    """The ``round(fraction * H * W)`` pixels where a smooth random field is highest."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction={fraction} is invalid; valid: a number in (0, 1)")
    count = max(1, int(round(fraction * height * width)))
    field = smooth_noise(rng, height, width, scale=scale)
    # top_k rather than a threshold: equal values (the upsampling clamps at the borders)
    # would otherwise add pixels; ties go to the lower flat index.
    _, index = jax.lax.top_k(field.reshape(-1), count)
    return jnp.zeros((height * width,), jnp.float32).at[index].set(1.0).reshape(height, width)


def sample_masks(
    rng: chex.PRNGKey,
    batch: int,
    height: int,
    width: int,
    *,
    kind: str,
    hole_size: int | Sequence[int] | None = None,
    num_blocks: int = 4,
    block_size: int | None = None,
    fraction: float = 0.25,
    scale: float = 4.0,
) -> jax.Array:
    """One mask per image, ``[batch, H, W, 1]`` float32 (1 = hidden); independent per image.

    Args:
      rng: key; split into one key per image (unused for ``central``).
      batch, height, width: output size.
      kind: one of ``MASK_KINDS``.
      hole_size: side of the central hole (default ``H // 2 x W // 2``, a quarter of the area).
      num_blocks, block_size: random blocks (default size ``min(H, W) // 4``).
      fraction, scale: random region's hidden area fraction and smoothness (pixels per cell).
    """
    if kind == "central":
        hole = hole_size if hole_size is not None else (height // 2, width // 2)
        mask = central_mask(height, width, hole_size=hole)
        return jnp.broadcast_to(mask[None, :, :, None], (batch, height, width, 1))
    keys = jax.random.split(rng, batch)
    if kind == "random_block":
        size = int(block_size) if block_size is not None else min(height, width) // 4
        one = functools.partial(
            random_block_mask,
            height=height,
            width=width,
            num_blocks=int(num_blocks),
            block_size=size,
        )
    elif kind == "random_region":
        one = functools.partial(
            random_region_mask,
            height=height,
            width=width,
            fraction=float(fraction),
            scale=float(scale),
        )
    else:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {MASK_KINDS}")
    return jax.vmap(lambda k: one(k))(keys)[..., None]


def apply_mask(images: jax.Array, mask: jax.Array, fill_value=0.0) -> jax.Array:
    """``(1 - M) * x + M * fill``: hidden pixels replaced by ``fill_value`` (scalar or [C])."""
    chex.assert_rank(images, 4)
    chex.assert_rank(mask, 4)
    fill = jnp.asarray(fill_value, images.dtype).reshape(-1)
    if fill.shape[0] not in (1, images.shape[-1]):
        raise ValueError(
            f"fill_value={fill_value!r} is invalid for {images.shape[-1]}-channel images; "
            f"valid: one number or {images.shape[-1]}"
        )
    return images * (1.0 - mask) + mask * fill


# ---------------------------------------------------------------------------
# Denoising corruptions
# ---------------------------------------------------------------------------


def gaussian_noise(
    rng: chex.PRNGKey, images: jax.Array, *, stddev: float, clip: bool = True
) -> jax.Array:
    """``x + stddev * N(0, 1)`` per value, optionally clipped to ``[0, 1]``."""
    if not stddev >= 0:
        raise ValueError(f"stddev={stddev} is invalid; valid: a number >= 0")
    noisy = images + stddev * jax.random.normal(rng, images.shape, images.dtype)
    return jnp.clip(noisy, 0.0, 1.0) if clip else noisy


def masking_noise(
    rng: chex.PRNGKey, images: jax.Array, *, drop_prob: float
) -> tuple[jax.Array, jax.Array]:
    """Each pixel independently set to 0 (all channels) with ``drop_prob``.

    Returns ``(corrupted, mask)`` with ``mask [B, H, W, 1]`` 1 at the dropped pixels.
    """
    chex.assert_rank(images, 4)
    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f"drop_prob={drop_prob} is invalid; valid: a probability in [0, 1]")
    mask = jax.random.bernoulli(rng, drop_prob, images.shape[:3] + (1,)).astype(images.dtype)
    return images * (1.0 - mask), mask


# ---------------------------------------------------------------------------
# sRGB <-> CIE L*a*b*
# ---------------------------------------------------------------------------

# Linear sRGB -> XYZ (IEC 61966-2-1 primaries, D65), the digits scikit-image uses.
SRGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    np.float64,
)
XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ)
D65_WHITE = SRGB_TO_XYZ.sum(axis=1)  # XYZ of sRGB (1, 1, 1): (0.950456, 1.0, 1.088754)
_DELTA = 6.0 / 29.0


def srgb_to_linear(c: jax.Array) -> jax.Array:
    """The sRGB decoding curve: ``c / 12.92`` up to 0.04045, else ``((c + .055) / 1.055)^2.4``."""
    safe = jnp.maximum(c, 0.04045)
    return jnp.where(c <= 0.04045, c / 12.92, ((safe + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: jax.Array) -> jax.Array:
    """Inverse of ``srgb_to_linear`` (negative inputs follow the linear segment)."""
    safe = jnp.maximum(c, 0.0031308)
    return jnp.where(c <= 0.0031308, 12.92 * c, 1.055 * safe ** (1.0 / 2.4) - 0.055)


def _lab_f(t: jax.Array) -> jax.Array:
    safe = jnp.maximum(t, _DELTA**3)
    return jnp.where(t > _DELTA**3, jnp.cbrt(safe), t / (3 * _DELTA**2) + 4.0 / 29.0)


def _lab_f_inv(t: jax.Array) -> jax.Array:
    return jnp.where(t > _DELTA, t**3, 3 * _DELTA**2 * (t - 4.0 / 29.0))


def _mix3(m: np.ndarray, x: jax.Array) -> jax.Array:
    """``x @ m.T`` over the last axis of size 3, written as explicit channel sums."""
    chans = [x[..., i] for i in range(3)]
    return jnp.stack([sum(float(m[r, i]) * chans[i] for i in range(3)) for r in range(3)], axis=-1)


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
    """sRGB in ``[0, 1]`` ``[..., 3]`` -> CIE L*a*b* ``[..., 3]`` (L in [0, 100])."""
    if rgb.shape[-1] != 3:
        raise ValueError(f"rgb_to_lab needs 3 channels, got shape {rgb.shape}; valid: [..., 3]")
    xyz = _mix3(SRGB_TO_XYZ / D65_WHITE[:, None], srgb_to_linear(rgb.astype(jnp.float32)))
    fx, fy, fz = (_lab_f(xyz[..., i]) for i in range(3))
    return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: jax.Array, *, clip: bool = True) -> jax.Array:
    """CIE L*a*b* ``[..., 3]`` -> sRGB ``[..., 3]``, clipped to ``[0, 1]`` unless ``clip=False``."""
    if lab.shape[-1] != 3:
        raise ValueError(f"lab_to_rgb needs 3 channels, got shape {lab.shape}; valid: [..., 3]")
    lab = lab.astype(jnp.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    xyz = jnp.stack([_lab_f_inv(fx), _lab_f_inv(fy), _lab_f_inv(fz)], axis=-1)
    rgb = linear_to_srgb(_mix3(XYZ_TO_SRGB * D65_WHITE[None, :], xyz))
    return jnp.clip(rgb, 0.0, 1.0) if clip else rgb


# ---------------------------------------------------------------------------
# ab quantisation
# ---------------------------------------------------------------------------

AB_GRID = 10.0


def _lab_numpy(rgb: np.ndarray) -> np.ndarray:
    """float64 numpy twin of ``rgb_to_lab`` (used once to find the in-gamut bins)."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ SRGB_TO_XYZ.T / D65_WHITE
    f = np.where(xyz > _DELTA**3, np.cbrt(xyz), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], -1)


@functools.lru_cache(maxsize=4)
def ab_bin_centers(grid: float = AB_GRID) -> np.ndarray:
    """Centres ``[Q, 2]`` (a, b) of the grid cells that 8-bit sRGB colours fall into.

    Cells are the squares of side ``grid`` centred on multiples of ``grid`` (a colour belongs
    to the nearest centre). The set is computed from the 86^3 colours ``k / 85``, a subset of
    the 8-bit colours ``k / 255`` that reaches the same 261 cells as all 256^3 of them at
    ``grid = 10`` (checked once; the full cube takes 20 s). Sorted by (a, b).
    """
    levels = np.linspace(0.0, 1.0, 86)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    ab = _lab_numpy(rgb)[:, 1:]
    cells = np.unique(np.round(ab / grid).astype(np.int64), axis=0)
    return (cells * grid).astype(np.float32)


def _squared_distances(ab: jax.Array, centers: jax.Array) -> jax.Array:
    """``[..., Q]`` squared ab distances of every pixel to every bin centre."""
    diff = ab[..., None, :] - centers
    return diff[..., 0] ** 2 + diff[..., 1] ** 2


def encode_ab_hard(ab: jax.Array, centers) -> jax.Array:
    """Index ``[...]`` (int32) of the nearest bin centre to each ``ab [..., 2]``."""
    centers = jnp.asarray(centers, jnp.float32)
    return jnp.argmin(_squared_distances(ab.astype(jnp.float32), centers), axis=-1).astype(
        jnp.int32
    )


def encode_ab_soft(
    ab: jax.Array, centers, *, num_neighbors: int = 5, sigma: float = 5.0
) -> jax.Array:
    """Zhang et al.'s soft encoding: ``[..., Q]`` weights on the ``num_neighbors`` nearest bins.

    Weights are ``exp(-d^2 / (2 sigma^2))`` over the nearest bins, normalised to sum to 1;
    every other bin gets 0. ``num_neighbors=1`` is the hard one-hot encoding.
    """
    centers = jnp.asarray(centers, jnp.float32)
    q = centers.shape[0]
    if not 1 <= num_neighbors <= q:
        raise ValueError(f"num_neighbors={num_neighbors} is invalid; valid: 1..{q}")
    d2 = _squared_distances(ab.astype(jnp.float32), centers)
    neg_d2, index = jax.lax.top_k(-d2, num_neighbors)
    # Shift by the nearest distance before exponentiating: the same normalised weights.
    logits = (neg_d2 - neg_d2[..., :1]) / (2.0 * sigma**2)
    weights = jax.nn.softmax(logits, axis=-1)
    one_hot = jax.nn.one_hot(index, q, dtype=jnp.float32)  # [..., k, Q]
    return jnp.einsum("...k,...kq->...q", weights, one_hot)


def decode_ab(probs: jax.Array, centers, *, temperature: float = 1.0) -> jax.Array:
    """ab ``[..., 2]`` from bin probabilities ``[..., Q]``: the (annealed) mean of the centres.

    ``temperature=1`` is the plain mean; Zhang et al.'s annealed mean uses 0.38, re-weighting
    ``p^(1/T)`` before taking the mean (T -> 0 gives the mode).
    """
    if not temperature > 0:
        raise ValueError(f"temperature={temperature} is invalid; valid: a number > 0")
    centers = jnp.asarray(centers, jnp.float32)
    logp = jnp.log(jnp.maximum(probs, 1e-30)) / temperature
    weights = jax.nn.softmax(logp, axis=-1)
    return weights @ centers


def downsample_mean(x: jax.Array, factor: int) -> jax.Array:
    """Non-overlapping ``factor x factor`` mean pooling of ``[B, H, W, C]`` (H, W divisible)."""
    chex.assert_rank(x, 4)
    if factor == 1:
        return x
    b, h, w, c = x.shape
    if h % factor or w % factor:
        raise ValueError(f"factor={factor} does not divide the {h}x{w} image size")
    return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
