"""Label-making transforms of the classification pretext tasks, as pure JAX functions.

Each task turns a batch of unlabelled images into inputs and the labels the network must
predict; everything random is drawn from the ``rng`` argument, so the same key gives the same
inputs and labels, and every function runs on device inside ``jit`` / ``shard_map``.

* **Rotation** (Gidaris et al. 2018, RotNet): every image in each of the rotations
  0/90/180/270 degrees (``all_rotations``), label = index of the rotation. Rotations are
  counter-clockwise (``jnp.rot90``), as ``rotate_img`` of the RotNet reference code; the
  output is rotation-major: ``x[r * B + b] = rot(images[b], degrees[r])``. RotNet's CIFAR
  augmentation (zero-pad 4, random 32x32 crop, horizontal flip) is ``random_pad_crop`` +
  ``ssljax.views.augment.random_flip_left_right``.
* **Jigsaw puzzles** (Noroozi & Favaro 2016): a ``g x g`` grid of ``t x t`` tiles separated
  by ``gap`` pixels; the grid sits at a random position and each tile is moved by an
  independent integer jitter in ``[-jitter, jitter]`` per axis (``sample_grid_positions``).
  The tiles are shuffled by a permutation drawn from a fixed set chosen greedily for large
  Hamming distance (``hamming_permutation_set``, computed once on the host with numpy and
  embedded as a constant); label = index of the permutation in the set. Convention:
  ``shuffled[:, s] = tiles[:, perm[s]]`` (slot ``s`` shows the tile from grid cell
  ``perm[s]``, cells numbered row-major).
* **Relative patch location** (Doersch et al. 2015): a centre patch and one of its 8
  neighbours in a 3x3 arrangement with ``gap`` pixels between patches, the neighbour moved by
  a jitter in ``[-jitter, jitter]`` per axis (``sample_patch_pairs``); label = index of the
  neighbour in ``NEIGHBOURS`` (row-major around the centre, as in the paper's figure).

Shortcut countermeasures (from the two papers, Noroozi & Favaro 2016 and Doersch et al. 2015):
gaps between crops against boundary-texture continuity, jitter against straight lines running
across crops, and per-crop colour handling against chromatic aberration
(``color_countermeasure``): ``'drop'`` keeps one random colour channel and replaces the other
two by Gaussian noise of ``noise_fraction`` times the kept channel's standard deviation
(Doersch et al.: noise ~1/100 of that std; zero-centred here, 0 gives CPC v2's zeroing),
``'gray'`` replaces the crop by its luma on every channel, ``'project'`` removes the
green-magenta component of every pixel (Doersch et al.'s projection, onto the plane orthogonal
to ``(-1, 2, -1) / sqrt(6)``). Noroozi & Favaro also normalise every tile to zero mean and unit
variance (``normalize_crops``; optional here, because the linear probe then reads unnormalised
whole images).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.views.augment import LUMA_WEIGHTS, to_float

ROTATION_DEGREES = (0, 90, 180, 270)

# Neighbour k of the centre patch as (row offset, column offset), row-major around the centre.
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

COLOR_MODES = ("none", "drop", "gray", "project")

# The largest grid whose permutations are enumerated (3x3: 9! = 362,880 candidates).
MAX_PERMUTED_TILES = 9

_GREEN_MAGENTA = np.array([-1.0, 2.0, -1.0]) / math.sqrt(6.0)


# ---------------------------------------------------------------------------------------------
# Rotation.


def check_rotation_degrees(degrees: Sequence[int]) -> tuple[int, ...]:
    """The rotation set as a tuple; at least two distinct angles from ``ROTATION_DEGREES``."""
    try:
        degrees = tuple(int(d) for d in degrees)
    except (TypeError, ValueError):
        raise ValueError(
            f"rotations={degrees!r} is invalid; choose a subset of {ROTATION_DEGREES}"
        ) from None
    if (
        len(degrees) < 2
        or len(set(degrees)) != len(degrees)
        or any(d not in ROTATION_DEGREES for d in degrees)
    ):
        raise ValueError(
            f"rotations={degrees!r} is invalid; choose at least two distinct "
            f"angles from {ROTATION_DEGREES}"
        )
    return degrees


def rotate(images: chex.Array, degrees: int) -> chex.Array:
    """Rotates ``[B, H, W, C]`` images counter-clockwise by ``degrees`` (a multiple of 90)."""
    chex.assert_rank(images, 4)
    if degrees not in ROTATION_DEGREES:
        raise ValueError(f"degrees={degrees!r} is invalid; choose one of {ROTATION_DEGREES}")
    return jnp.rot90(images, k=degrees // 90, axes=(1, 2))


def all_rotations(
    images: chex.Array, degrees: Sequence[int] = ROTATION_DEGREES
) -> tuple[chex.Array, chex.Array]:
    """Every image in every rotation of ``degrees``, and the rotation labels.

    Args:
      images: ``[B, H, W, C]``; square when the set holds 90 or 270 degrees.
      degrees: distinct angles from ``ROTATION_DEGREES``.

    Returns:
      ``rotated [R * B, H, W, C]`` with ``rotated[r * B + b] = rotate(images[b], degrees[r])``
      and ``labels [R * B] int32`` with ``labels[r * B + b] = r``.
    """
    chex.assert_rank(images, 4)
    degrees = check_rotation_degrees(degrees)
    if images.shape[1] != images.shape[2] and any(d % 180 for d in degrees):
        raise ValueError(
            f"rotations by 90/270 degrees need square images, got "
            f"{images.shape[1]}x{images.shape[2]}"
        )
    rotated = jnp.concatenate([rotate(images, d) for d in degrees], axis=0)
    labels = jnp.repeat(jnp.arange(len(degrees), dtype=jnp.int32), images.shape[0])
    return rotated, labels


def pad_crop(images: chex.Array, offsets: chex.Array, padding: int) -> chex.Array:
    """Zero-pads ``[B, H, W, C]`` by ``padding`` and crops ``H x W`` at ``offsets [B, 2]``.

    ``out[b] = padded[b, dy : dy + H, dx : dx + W]`` with ``(dy, dx) = offsets[b]`` in
    ``[0, 2 * padding]``; ``offsets == padding`` returns the input.
    """
    chex.assert_rank(images, 4)
    chex.assert_shape(offsets, (images.shape[0], 2))
    _, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    crop = lambda img, off: jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))  # noqa: E731
    return jax.vmap(crop)(padded, offsets.astype(jnp.int32))


def random_pad_crop(rng: chex.PRNGKey, images: chex.Array, padding: int) -> chex.Array:
    """RotNet's CIFAR translation: zero-pad by ``padding``, random crop back to ``H x W``."""
    if padding <= 0:
        return images
    offsets = jax.random.randint(rng, (images.shape[0], 2), 0, 2 * padding + 1)
    return pad_crop(images, offsets, padding)


# ---------------------------------------------------------------------------------------------
# Crops at integer positions, and per-crop colour handling.


def crop_at(images: chex.Array, tops: chex.Array, lefts: chex.Array, size: int) -> chex.Array:
    """Square crops at per-example integer positions.

    Args:
      images: ``[B, H, W, C]``.
      tops, lefts: ``[B, K]`` int top-left corners; every crop must lie inside the image.
      size: crop side.

    Returns:
      ``[B, K, size, size, C]`` with ``out[b, k] = images[b, t : t + size, l : l + size]``.
    """
    chex.assert_rank(images, 4)
    chex.assert_equal_shape([tops, lefts])
    chex.assert_rank(tops, 2)
    c = images.shape[-1]

    def one(img, t, l):
        return jax.lax.dynamic_slice(img, (t, l, 0), (size, size, c))

    per_image = jax.vmap(one, in_axes=(None, 0, 0))
    return jax.vmap(per_image)(images, tops.astype(jnp.int32), lefts.astype(jnp.int32))


def check_color_mode(mode: str) -> str:
    if mode not in COLOR_MODES:
        raise ValueError(f"unknown colour countermeasure {mode!r}; choose one of {COLOR_MODES}")
    return mode


def drop_channels(
    crops: chex.Array, keep: chex.Array, apply: chex.Array, noise: chex.Array | None = None
) -> chex.Array:
    """Keeps channel ``keep`` of the crops where ``apply``; the others become ``noise`` (or 0).

    Args:
      crops: ``[..., h, w, C]`` with leading shape ``L``.
      keep: ``[*L]`` int channel to keep.
      apply: ``[*L]`` bool; crops where it is False are returned unchanged.
      noise: ``[..., h, w, C]`` values written into the dropped channels (None: zeros).
    """
    channels = crops.shape[-1]
    keep_mask = jax.nn.one_hot(keep, channels, dtype=crops.dtype)[..., None, None, :]
    fill = jnp.zeros_like(crops) if noise is None else noise.astype(crops.dtype)
    dropped = keep_mask * crops + (1.0 - keep_mask) * fill
    return jnp.where(apply[..., None, None, None], dropped, crops)


def project_out_green_magenta(crops: chex.Array) -> chex.Array:
    """Removes every pixel's component along ``(-1, 2, -1) / sqrt(6)`` (Doersch et al.)."""
    axis = jnp.asarray(_GREEN_MAGENTA, crops.dtype)
    return crops - jnp.einsum("...c,c->...", crops, axis)[..., None] * axis


def color_countermeasure(
    rng: chex.PRNGKey, crops: chex.Array, *, mode: str, prob: float, noise_fraction: float = 0.0
) -> chex.Array:
    """Applies ``mode`` to each crop of ``[B, K, h, w, C]`` independently with ``prob``.

    Single-channel crops and ``mode='none'`` are returned unchanged. See the module docstring
    for the modes; ``noise_fraction`` is the dropped channels' noise std relative to the std
    of the kept channel (per crop).
    """
    check_color_mode(mode)
    chex.assert_rank(crops, 5)
    if mode == "none" or prob <= 0.0 or crops.shape[-1] == 1:
        return crops
    if crops.shape[-1] != 3:
        raise ValueError(f"colour countermeasures need 1 or 3 channels, got {crops.shape[-1]}")
    apply_rng, keep_rng, noise_rng = jax.random.split(rng, 3)
    lead = crops.shape[:2]
    apply = jax.random.bernoulli(apply_rng, prob, lead)
    if mode == "gray":
        luma = jnp.einsum("...c,c->...", crops, jnp.asarray(LUMA_WEIGHTS, crops.dtype))
        return jnp.where(
            apply[..., None, None, None], jnp.broadcast_to(luma[..., None], crops.shape), crops
        )
    if mode == "project":
        return jnp.where(apply[..., None, None, None], project_out_green_magenta(crops), crops)
    keep = jax.random.randint(keep_rng, lead, 0, 3)
    noise = None
    if noise_fraction > 0.0:
        kept = jnp.take_along_axis(crops, keep[..., None, None, None], axis=-1)
        scale = noise_fraction * jnp.std(kept, axis=(2, 3, 4), keepdims=True)
        noise = scale * jax.random.normal(noise_rng, crops.shape, crops.dtype)
    return drop_channels(crops, keep, apply, noise)


def normalize_crops(crops: chex.Array, eps: float = 1e-5) -> chex.Array:
    """Each crop of ``[B, K, h, w, C]`` to zero mean, unit variance (Noroozi & Favaro)."""
    mean = jnp.mean(crops, axis=(2, 3, 4), keepdims=True)
    var = jnp.var(crops, axis=(2, 3, 4), keepdims=True)
    return (crops - mean) * jax.lax.rsqrt(var + eps)


# ---------------------------------------------------------------------------------------------
# Jigsaw: permutation sets and tile grids.


@functools.lru_cache(maxsize=4)
def _all_permutations(num_tiles: int) -> np.ndarray:
    """Every permutation of ``range(num_tiles)`` in lexicographic order, ``[n!, n] int8``."""
    perms = np.fromiter(
        itertools.chain.from_iterable(itertools.permutations(range(num_tiles))),
        dtype=np.int8,
        count=math.factorial(num_tiles) * num_tiles,
    )
    perms = perms.reshape(-1, num_tiles)
    perms.setflags(write=False)
    return perms


def hamming_distances(perms: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances (positions that differ) of ``[N, n]`` permutations."""
    perms = np.asarray(perms)
    return (perms[:, None, :] != perms[None, :, :]).sum(-1)


def _pack(perms: np.ndarray) -> np.ndarray:
    """Each permutation as 4 bits per position in a uint64 (values < 16)."""
    shifts = 4 * np.arange(perms.shape[1], dtype=np.uint64)
    return np.bitwise_or.reduce(perms.astype(np.uint64) << shifts, axis=1)


def _packed_distances(packed: np.ndarray, one: np.uint64, num_tiles: int) -> np.ndarray:
    """Hamming distances of packed permutations to ``one``: nibbles that differ, counted."""
    x = packed ^ one
    x = x | (x >> np.uint64(1)) | (x >> np.uint64(2)) | (x >> np.uint64(3))
    mask = np.uint64(int("1" * num_tiles, 16))
    return np.bitwise_count(x & mask)


@functools.lru_cache(maxsize=16)
def _greedy_permutations(
    num_permutations: int, num_tiles: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    candidates = _all_permutations(num_tiles)
    packed = _pack(candidates)
    total = candidates.shape[0]
    chosen = np.empty(num_permutations, np.int64)
    reached = np.empty(num_permutations, np.int64)  # the set's minimum distance after each pick
    min_dist = np.full(total, num_tiles, np.int64)  # distance to the nearest chosen permutation
    sum_dist = np.zeros(total, np.int64)  # summed distance to the chosen permutations
    index = int(np.random.default_rng(seed).integers(total))
    reached[0] = num_tiles
    for i in range(num_permutations):
        chosen[i] = index
        if i > 0:
            reached[i] = min(reached[i - 1], min_dist[index])
        d = _packed_distances(packed, packed[index], num_tiles)
        np.minimum(min_dist, d, out=min_dist)
        sum_dist += d
        # Farthest point: the largest distance to the nearest chosen permutation; ties go to
        # the largest summed distance (Noroozi & Favaro's criterion), then the lowest index.
        # Chosen permutations have min_dist 0 and are never picked again.
        index = int(np.argmax((min_dist << 40) + sum_dist))
    out = candidates[chosen].astype(np.int32)
    out.setflags(write=False)
    reached.setflags(write=False)
    return out, reached


def hamming_permutation_set(
    num_permutations: int, num_tiles: int = 9, seed: int = 0, min_distance: int = 1
) -> np.ndarray:
    """A set of permutations of ``num_tiles`` tiles chosen greedily for large Hamming distance.

    Greedy farthest-point selection over all ``num_tiles!`` permutations (host numpy, cached):
    the first permutation is drawn with ``seed``; each next one is the permutation whose
    Hamming distance to its nearest already chosen permutation is largest (ties: the largest
    summed distance to the chosen set, as Noroozi & Favaro's Algorithm 1 maximises the
    average, then the lowest lexicographic index). So the set's minimum pairwise distance is
    as large as the greedy construction can make it, and ``min_distance`` is checked.

    Args:
      num_permutations: set size, ``2 <= N <= num_tiles!``.
      num_tiles: tiles per puzzle, ``2 <= num_tiles <= 9``.
      seed: chooses the first permutation.
      min_distance: required minimum pairwise Hamming distance.

    Returns:
      ``[N, num_tiles] int32`` read-only array; row ``i`` is permutation ``i``.
    """
    perms, reached = _checked_permutations(num_permutations, num_tiles, seed, min_distance)
    del reached
    return perms


def greedy_reach(num_permutations: int, num_tiles: int = 9, seed: int = 0) -> np.ndarray:
    """``[N]``: the minimum pairwise Hamming distance of the greedy set's first ``i + 1`` rows."""
    return _checked_permutations(num_permutations, num_tiles, seed, 1)[1]


def _checked_permutations(num_permutations, num_tiles, seed, min_distance):
    num_tiles, num_permutations = int(num_tiles), int(num_permutations)
    if not 2 <= num_tiles <= MAX_PERMUTED_TILES:
        raise ValueError(
            f"num_tiles={num_tiles} is invalid; permutation sets are enumerated "
            f"for 2..{MAX_PERMUTED_TILES} tiles (grids 2x2 and 3x3)"
        )
    limit = math.factorial(num_tiles)
    if not 2 <= num_permutations <= limit:
        raise ValueError(
            f"num_permutations={num_permutations} is invalid; {num_tiles} tiles "
            f"have {limit} permutations, choose 2..{limit}"
        )
    if not 1 <= int(min_distance) <= num_tiles:
        raise ValueError(
            f"min_hamming_distance={min_distance} is invalid; choose 1.."
            f"{num_tiles} for {num_tiles} tiles"
        )
    perms, reached = _greedy_permutations(num_permutations, num_tiles, int(seed))
    if reached[-1] < min_distance:
        largest = int(np.sum(reached >= min_distance))
        raise ValueError(
            f"num_permutations={num_permutations} with min_hamming_distance={min_distance} is "
            f"not attainable: the greedy set of {num_tiles}-tile permutations reaches minimum "
            f"distance {int(reached[-1])}; at most {largest} permutations keep distance >= "
            f"{min_distance}"
        )
    return perms, reached


def grid_extent(grid: int, tile: int, gap: int) -> int:
    """Side of a ``grid x grid`` arrangement of ``tile`` pixel tiles with ``gap`` between."""
    return grid * tile + (grid - 1) * gap


def check_grid_fits(
    height: int, width: int, *, grid: int, tile: int, gap: int, jitter: int
) -> None:
    """One-line ValueError when the jittered tile grid does not fit the image."""
    if grid < 2 or tile < 1 or gap < 0 or jitter < 0:
        raise ValueError(
            f"need grid >= 2, tile_size >= 1, gap >= 0, jitter >= 0; got grid="
            f"{grid}, tile_size={tile}, gap={gap}, jitter={jitter}"
        )
    need = grid_extent(grid, tile, gap) + 2 * jitter
    if need > min(height, width):
        raise ValueError(
            f"a {grid}x{grid} grid of {tile}px tiles with gap {gap} and jitter {jitter} spans "
            f"{need}px (grid*tile + (grid-1)*gap + 2*jitter) > the {height}x{width} images"
        )


def grid_positions(
    origin_tops: chex.Array,
    origin_lefts: chex.Array,
    jitter_rows: chex.Array,
    jitter_cols: chex.Array,
    *,
    grid: int,
    tile: int,
    gap: int,
) -> tuple[chex.Array, chex.Array]:
    """Top-left corners of the tiles of a grid: ``[B]`` origins, ``[B, T]`` jitters.

    Tile ``k = i * grid + j`` (row ``i``, column ``j``) of example ``b`` starts at row
    ``origin_tops[b] + i * (tile + gap) + jitter_rows[b, k]`` and the analogous column.
    """
    step = tile + gap
    cells = np.arange(grid * grid)
    rows = jnp.asarray(cells // grid * step, jnp.int32)
    cols = jnp.asarray(cells % grid * step, jnp.int32)
    tops = origin_tops[:, None].astype(jnp.int32) + rows + jitter_rows.astype(jnp.int32)
    lefts = origin_lefts[:, None].astype(jnp.int32) + cols + jitter_cols.astype(jnp.int32)
    return tops, lefts


def sample_grid_positions(
    rng: chex.PRNGKey,
    batch: int,
    *,
    height: int,
    width: int,
    grid: int,
    tile: int,
    gap: int,
    jitter: int,
) -> tuple[chex.Array, chex.Array]:
    """Random tile positions ``(tops, lefts)``, each ``[B, grid**2]``, all inside the image.

    The grid's origin is uniform over the positions that leave ``jitter`` pixels of room on
    every side, then every tile moves by an independent uniform integer in
    ``[-jitter, jitter]`` per axis.
    """
    check_grid_fits(height, width, grid=grid, tile=tile, gap=gap, jitter=jitter)
    extent = grid_extent(grid, tile, gap)
    origin_rng, jitter_rng = jax.random.split(rng)
    origin = jax.random.randint(
        origin_rng, (2, batch), jitter, jnp.asarray([height, width])[:, None] - extent - jitter + 1
    )
    shifts = jax.random.randint(jitter_rng, (2, batch, grid * grid), -jitter, jitter + 1)
    return grid_positions(origin[0], origin[1], shifts[0], shifts[1], grid=grid, tile=tile, gap=gap)


def shuffle_tiles(tiles: chex.Array, permutations: chex.Array) -> chex.Array:
    """``out[b, s] = tiles[b, permutations[b, s]]`` for ``[B, T, ...]`` tiles, ``[B, T]`` perms."""
    chex.assert_rank(permutations, 2)
    index = permutations.astype(jnp.int32).reshape(permutations.shape + (1,) * (tiles.ndim - 2))
    return jnp.take_along_axis(tiles, index, axis=1)


def jigsaw_puzzles(
    rng: chex.PRNGKey,
    images: chex.Array,
    permutation_set: np.ndarray,
    *,
    grid: int,
    tile: int,
    gap: int,
    jitter: int,
    color_mode: str = "none",
    color_prob: float = 0.0,
    noise_fraction: float = 0.0,
    normalize: bool = False,
) -> tuple[chex.Array, chex.Array]:
    """Shuffled tiles and permutation labels: ``([B, grid**2, t, t, C] float32, [B] int32)``.

    Args:
      rng: key for positions, permutation choice and colour handling.
      images: ``[B, H, W, C]`` uint8 or float images.
      permutation_set: ``[N, grid**2]`` (``hamming_permutation_set``).
      grid, tile, gap, jitter: tile layout (see ``sample_grid_positions``).
      color_mode, color_prob, noise_fraction: per-tile ``color_countermeasure``.
      normalize: per-tile zero mean / unit variance.
    """
    x = to_float(images)
    chex.assert_rank(x, 4)
    perms = np.asarray(permutation_set)
    if perms.ndim != 2 or perms.shape[1] != grid * grid:
        raise ValueError(
            f"permutation_set of shape {perms.shape} does not match a {grid}x{grid}"
            f" grid ({grid * grid} tiles)"
        )
    b, h, w, _ = x.shape
    pos_rng, label_rng, color_rng = jax.random.split(rng, 3)
    tops, lefts = sample_grid_positions(
        pos_rng, b, height=h, width=w, grid=grid, tile=tile, gap=gap, jitter=jitter
    )
    tiles = crop_at(x, tops, lefts, tile)
    tiles = color_countermeasure(
        color_rng, tiles, mode=color_mode, prob=color_prob, noise_fraction=noise_fraction
    )
    if normalize:
        tiles = normalize_crops(tiles)
    labels = jax.random.randint(label_rng, (b,), 0, perms.shape[0])
    shuffled = shuffle_tiles(tiles, jnp.asarray(perms, jnp.int32)[labels])
    return shuffled, labels.astype(jnp.int32)


# ---------------------------------------------------------------------------------------------
# Relative patch location.


def check_pair_fits(height: int, width: int, *, size: int, gap: int, jitter: int) -> None:
    """One-line ValueError when a centre patch and a jittered neighbour cannot fit."""
    if size < 1 or gap < 0 or jitter < 0:
        raise ValueError(
            f"need patch_size >= 1, gap >= 0, jitter >= 0; got patch_size={size}, "
            f"gap={gap}, jitter={jitter}"
        )
    need = 2 * size + gap + jitter
    if need > min(height, width):
        raise ValueError(
            f"patches of {size}px with gap {gap} and jitter {jitter} need {need}px "
            f"(2*patch_size + gap + jitter) > the {height}x{width} images"
        )


def pair_positions(
    centre_tops: chex.Array,
    centre_lefts: chex.Array,
    labels: chex.Array,
    jitter_rows: chex.Array,
    jitter_cols: chex.Array,
    *,
    size: int,
    gap: int,
) -> tuple[chex.Array, chex.Array]:
    """``(tops, lefts)`` ``[B, 2]`` of the centre patch (column 0) and neighbour ``labels``.

    The neighbour starts at ``centre + offset * (size + gap) + jitter`` per axis, where
    ``offset = NEIGHBOURS[label]``.
    """
    offsets = jnp.asarray(NEIGHBOURS, jnp.int32)[labels] * (size + gap)
    n_top = centre_tops + offsets[:, 0] + jitter_rows
    n_left = centre_lefts + offsets[:, 1] + jitter_cols
    return (
        jnp.stack([centre_tops, n_top], 1).astype(jnp.int32),
        jnp.stack([centre_lefts, n_left], 1).astype(jnp.int32),
    )


def sample_patch_pairs(
    rng: chex.PRNGKey, batch: int, *, height: int, width: int, size: int, gap: int, jitter: int
) -> tuple[chex.Array, chex.Array, chex.Array]:
    """Random neighbour labels and positions: ``(labels [B], tops [B, 2], lefts [B, 2])``.

    The label is uniform over the 8 neighbours, the jitter uniform in ``[-jitter, jitter]``
    per axis, and then the centre uniform over the positions that keep both patches inside
    the image.
    """
    check_pair_fits(height, width, size=size, gap=gap, jitter=jitter)
    label_rng, jitter_rng, centre_rng = jax.random.split(rng, 3)
    labels = jax.random.randint(label_rng, (batch,), 0, len(NEIGHBOURS))
    shifts = jax.random.randint(jitter_rng, (2, batch), -jitter, jitter + 1)
    delta = jnp.asarray(NEIGHBOURS, jnp.int32)[labels].T * (size + gap) + shifts  # [2, B]
    extent = jnp.asarray([height, width], jnp.int32)[:, None]
    low = jnp.maximum(0, -delta)
    high = extent - size - jnp.maximum(0, delta)  # inclusive
    centre = jax.random.randint(centre_rng, (2, batch), low, high + 1)
    tops, lefts = pair_positions(
        centre[0], centre[1], labels, shifts[0], shifts[1], size=size, gap=gap
    )
    return labels.astype(jnp.int32), tops, lefts


def patch_pairs(
    rng: chex.PRNGKey,
    images: chex.Array,
    *,
    size: int,
    gap: int,
    jitter: int,
    color_mode: str = "none",
    color_prob: float = 0.0,
    noise_fraction: float = 0.0,
    normalize: bool = False,
) -> tuple[chex.Array, chex.Array]:
    """Centre and neighbour patches and their labels: ``([B, 2, p, p, C], [B] int32)``."""
    x = to_float(images)
    chex.assert_rank(x, 4)
    b, h, w, _ = x.shape
    pos_rng, color_rng = jax.random.split(rng)
    labels, tops, lefts = sample_patch_pairs(
        pos_rng, b, height=h, width=w, size=size, gap=gap, jitter=jitter
    )
    patches = crop_at(x, tops, lefts, size)
    patches = color_countermeasure(
        color_rng, patches, mode=color_mode, prob=color_prob, noise_fraction=noise_fraction
    )
    if normalize:
        patches = normalize_crops(patches)
    return patches, labels
