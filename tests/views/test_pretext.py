"""Label-making transforms of the pretext tasks, pinned against hand values and numpy slicing."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.views import pretext as pt
from tests.tolerances import f32_sum_tol


def position_image(batch, height, width):
    """``[B, H, W, 1]`` float images whose pixel value encodes (image, row, column)."""
    b, r, c = np.meshgrid(np.arange(batch), np.arange(height), np.arange(width), indexing="ij")
    return (b * 10_000 + r * 100 + c).astype(np.float32)[..., None]


def decode(value):
    """(image, row, column) of a ``position_image`` pixel value."""
    value = int(round(float(value)))
    return value // 10_000, value % 10_000 // 100, value % 100


# ---------------------------------------------------------------------------------------------
# Rotation.


def test_rotations_of_a_known_image_and_their_labels():
    img = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)  # [[0 1 2] [3 4 5] [6 7 8]]
    expected = {  # counter-clockwise
        0: [[0, 1, 2], [3, 4, 5], [6, 7, 8]],
        90: [[2, 5, 8], [1, 4, 7], [0, 3, 6]],
        180: [[8, 7, 6], [5, 4, 3], [2, 1, 0]],
        270: [[6, 3, 0], [7, 4, 1], [8, 5, 2]],
    }
    for degrees, want in expected.items():
        np.testing.assert_array_equal(pt.rotate(jnp.asarray(img), degrees)[0, ..., 0], want)
    batch = np.stack([img[0], img[0] + 10])  # two images
    rotated, labels = pt.all_rotations(jnp.asarray(batch))
    assert rotated.shape == (8, 3, 3, 1)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2, 3, 3])
    for r, degrees in enumerate(pt.ROTATION_DEGREES):
        np.testing.assert_array_equal(rotated[2 * r, ..., 0], expected[degrees])
        np.testing.assert_array_equal(
            rotated[2 * r + 1, ..., 0], np.asarray(expected[degrees]) + 10
        )
    # A subset: labels index the given tuple.
    rotated, labels = pt.all_rotations(jnp.asarray(img), (180, 0))
    np.testing.assert_array_equal(labels, [0, 1])
    np.testing.assert_array_equal(rotated[0, ..., 0], expected[180])


@pytest.mark.parametrize(
    "degrees, message",
    [
        ((0,), "at least two distinct"),
        ((0, 0, 90), "at least two distinct"),
        ((0, 45), "at least two distinct"),
        ("abc", "invalid"),
    ],
)
def test_bad_rotation_sets(degrees, message):
    with pytest.raises(ValueError, match=message):
        pt.check_rotation_degrees(degrees)


def test_quarter_turns_need_square_images():
    with pytest.raises(ValueError, match="need square images, got 3x4"):
        pt.all_rotations(jnp.zeros((1, 3, 4, 1)))
    _, labels = pt.all_rotations(jnp.zeros((1, 3, 4, 1)), (0, 180))
    assert labels.shape == (2,)


def test_pad_crop_is_a_window_of_the_zero_padded_image():
    x = np.random.default_rng(0).uniform(size=(3, 5, 5, 2)).astype(np.float32)
    offsets = np.array([[0, 0], [2, 1], [4, 3]])
    out = np.asarray(pt.pad_crop(jnp.asarray(x), jnp.asarray(offsets), 2))
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for b, (dy, dx) in enumerate(offsets):
        np.testing.assert_array_equal(out[b], padded[b, dy : dy + 5, dx : dx + 5])
    np.testing.assert_array_equal(pt.pad_crop(jnp.asarray(x), jnp.full((3, 2), 2), 2), x)
    shifted = np.asarray(pt.random_pad_crop(jax.random.PRNGKey(0), jnp.asarray(x), 2))
    assert any(
        np.array_equal(shifted[0], padded[0, dy : dy + 5, dx : dx + 5])
        for dy in range(5)
        for dx in range(5)
    )


# ---------------------------------------------------------------------------------------------
# Permutation sets.


def reference_greedy(num_permutations, num_tiles, seed):
    """Farthest-point selection recomputed from scratch at every step (slow, plain numpy)."""
    candidates = np.array(list(itertools.permutations(range(num_tiles))))
    chosen = [int(np.random.default_rng(seed).integers(len(candidates)))]
    while len(chosen) < num_permutations:
        dist = (candidates[:, None, :] != candidates[chosen][None, :, :]).sum(-1)  # [n!, i]
        nearest, total = dist.min(1), dist.sum(1)
        # max nearest distance, then max total, then lowest index
        order = np.lexsort((np.arange(len(candidates)), -total, -nearest))
        chosen.append(int(order[0]))
    return candidates[chosen]


def min_pairwise(perms):
    d = pt.hamming_distances(perms)
    return d[np.triu_indices(len(perms), 1)].min()


def test_permutation_set_is_the_greedy_max_min_hamming_set():
    for tiles, n, seed in ((4, 24, 0), (4, 10, 3), (9, 12, 0)):
        perms = pt.hamming_permutation_set(n, tiles, seed=seed)
        np.testing.assert_array_equal(perms, reference_greedy(n, tiles, seed))
    np.testing.assert_array_equal(
        pt.hamming_permutation_set(12, 9, seed=5)[0],
        list(itertools.permutations(range(9)))[
            np.random.default_rng(5).integers(math.factorial(9))
        ],
    )


def test_permutation_set_has_the_requested_minimum_distance():
    perms = pt.hamming_permutation_set(100, 9, seed=0, min_distance=6)
    assert perms.shape == (100, 9) and perms.dtype == np.int32
    assert all(sorted(p) == list(range(9)) for p in perms)
    assert len({tuple(p) for p in perms}) == 100
    assert min_pairwise(perms) == 6
    reach = pt.greedy_reach(100, 9, seed=0)
    assert reach[-1] == 6 and np.all(np.diff(reach) <= 0)
    # Ten permutations of 9 tiles pairwise differing in every position do not exist
    # beyond 9 rows (a Latin square); the greedy set finds the 9.
    assert min_pairwise(pt.hamming_permutation_set(9, 9, seed=0, min_distance=9)) == 9
    assert pt.greedy_reach(10, 9, seed=0)[-1] < 9


@pytest.mark.parametrize(
    "args, message",
    [
        (
            dict(num_permutations=363_000, num_tiles=9),
            r"num_permutations=363000 is invalid; 9 tiles have 362880 permutations",
        ),
        (dict(num_permutations=1, num_tiles=9), r"num_permutations=1 is invalid"),
        (dict(num_permutations=25, num_tiles=4), r"4 tiles have 24 permutations, choose 2..24"),
        (dict(num_permutations=10, num_tiles=16), r"num_tiles=16 is invalid"),
        (
            dict(num_permutations=10, num_tiles=9, min_distance=10),
            r"min_hamming_distance=10 is invalid; choose 1..9",
        ),
        (
            dict(num_permutations=10, num_tiles=9, min_distance=9),
            r"num_permutations=10 with min_hamming_distance=9 is not attainable: .* reaches minimum distance 8; at most 9 permutations keep distance >= 9",
        ),
    ],
)
def test_impossible_permutation_sets_fail_with_one_line(args, message):
    with pytest.raises(ValueError, match=message) as err:
        pt.hamming_permutation_set(**args)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# Crops at positions, jigsaw grids.


def test_grid_positions_and_crops_are_exact():
    tops, lefts = pt.grid_positions(
        jnp.array([1, 2]),
        jnp.array([0, 3]),
        jnp.array([[0, 1, -1, 0], [1, 1, 0, 0]]),
        jnp.array([[0, 0, 1, -1], [0, -1, 0, 1]]),
        grid=2,
        tile=3,
        gap=2,
    )
    # cell (i, j) at origin + (i, j) * (tile + gap) + jitter
    np.testing.assert_array_equal(tops, [[1, 2, 5, 6], [3, 3, 7, 7]])
    np.testing.assert_array_equal(lefts, [[0, 5, 1, 4], [3, 7, 3, 9]])
    images = position_image(2, 12, 13)
    crops = np.asarray(pt.crop_at(jnp.asarray(images), tops, lefts, 3))
    assert crops.shape == (2, 4, 3, 3, 1)
    for b in range(2):
        for k in range(4):
            t, l = int(tops[b, k]), int(lefts[b, k])
            np.testing.assert_array_equal(crops[b, k], images[b, t : t + 3, l : l + 3])


def test_sampled_grids_stay_inside_with_bounded_jitter():
    sample = jax.jit(
        lambda key: pt.sample_grid_positions(
            key, 256, height=28, width=30, grid=3, tile=7, gap=2, jitter=1
        )
    )
    tops, lefts = sample(jax.random.PRNGKey(0))
    tops2, _ = sample(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(tops, tops2)  # deterministic from the key
    tops, lefts = np.asarray(tops), np.asarray(lefts)
    assert tops.min() >= 0 and tops.max() + 7 <= 28 and lefts.max() + 7 <= 30
    cells = np.arange(9)
    for pos, step_axis in ((tops, cells // 3), (lefts, cells % 3)):
        # pos - nominal offset = origin + jitter: within 2 * jitter of each other per image
        rest = pos - step_axis * 9
        assert (rest.max(1) - rest.min(1)).max() == 2
    # Jitter takes every value in [-1, 1]; neighbouring tiles never overlap (gap 2 >= 2 * 1).
    assert set(np.unique(tops[:, 1] - tops[:, 0])) == {-2, -1, 0, 1, 2}
    assert (lefts[:, 1] - lefts[:, 0]).min() >= 7


def test_grid_that_does_not_fit_fails_with_one_line():
    with pytest.raises(
        ValueError,
        match=r"3x3 grid of 8px tiles with gap 2 and jitter 1 spans "
        r"30px .* > the 28x28 images",
    ):
        pt.check_grid_fits(28, 28, grid=3, tile=8, gap=2, jitter=1)
    pt.check_grid_fits(28, 28, grid=3, tile=8, gap=2, jitter=0)


def test_jigsaw_puzzle_tiles_follow_their_permutation_label():
    perms = pt.hamming_permutation_set(20, 9, seed=1)
    images = position_image(16, 28, 28)
    fn = jax.jit(lambda r, x: pt.jigsaw_puzzles(r, x, perms, grid=3, tile=7, gap=2, jitter=1))
    tiles, labels = fn(jax.random.PRNGKey(3), jnp.asarray(images))
    tiles, labels = np.asarray(tiles), np.asarray(labels)
    assert tiles.shape == (16, 9, 7, 7, 1) and labels.dtype == np.int32
    assert len(np.unique(labels)) > 5
    for b in range(16):
        perm = perms[labels[b]]
        corners = np.zeros((9, 2), int)
        for s in range(9):
            img, top, left = decode(tiles[b, s, 0, 0, 0])
            assert img == b
            np.testing.assert_array_equal(tiles[b, s], images[b, top : top + 7, left : left + 7])
            corners[perm[s]] = top, left  # slot s shows grid cell perm[s]
        nominal = np.stack([np.arange(9) // 3, np.arange(9) % 3], 1) * 9
        rest = corners - nominal  # origin + jitter in [-1, 1]
        assert (rest.max(0) - rest.min(0)).max() <= 2
    again = fn(jax.random.PRNGKey(3), jnp.asarray(images))
    np.testing.assert_array_equal(again[1], labels)


def test_shuffle_tiles_convention():
    tiles = jnp.arange(2 * 4).reshape(2, 4, 1, 1, 1).astype(jnp.float32)
    out = pt.shuffle_tiles(tiles, jnp.array([[3, 0, 2, 1], [0, 1, 2, 3]]))
    np.testing.assert_array_equal(out[..., 0, 0, 0], [[3, 0, 2, 1], [4, 5, 6, 7]])


# ---------------------------------------------------------------------------------------------
# Colour handling.


def test_channel_dropping_keeps_one_channel_exactly():
    crops = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 3, 4, 4, 3)), jnp.float32)
    keep = jnp.array([[0, 1, 2], [2, 2, 0]])
    apply = jnp.array([[True, True, False], [True, False, True]])
    out = np.asarray(pt.drop_channels(crops, keep, apply))
    for b in range(2):
        for k in range(3):
            if not apply[b, k]:
                np.testing.assert_array_equal(out[b, k], crops[b, k])
                continue
            for ch in range(3):
                want = crops[b, k, ..., ch] if ch == keep[b, k] else 0.0
                np.testing.assert_array_equal(out[b, k, ..., ch], want)
    noise = jnp.full(crops.shape, 0.5)
    out = np.asarray(pt.drop_channels(crops, keep, apply, noise))
    np.testing.assert_array_equal(out[0, 0, ..., 1], 0.5)


@jax.jit
def all_countermeasures(key, crops):
    """Every mode on the same crops, in one compiled call."""

    def cm(x, mode, prob, noise_fraction=0.0):
        return pt.color_countermeasure(key, x, mode=mode, prob=prob, noise_fraction=noise_fraction)

    return dict(
        gray=cm(crops, "gray", 1.0),
        project=cm(crops, "project", 1.0),
        drop=cm(crops, "drop", 1.0, 0.01),
        never=cm(crops, "drop", 0.0),
        half=cm(jnp.tile(crops, (50, 1, 1, 1, 1)), "gray", 0.5),
        one_channel=cm(crops[..., :1], "drop", 1.0),
        grey_pixels=pt.project_out_green_magenta(jnp.broadcast_to(crops[..., :1], crops.shape)),
    )


def test_color_countermeasures():
    x = np.random.default_rng(1).uniform(size=(4, 2, 5, 5, 3)).astype(np.float32)
    out = jax.tree.map(np.asarray, all_countermeasures(jax.random.PRNGKey(0), jnp.asarray(x)))
    luma = np.einsum("...c,c->...", x, pt.LUMA_WEIGHTS)
    for ch in range(3):
        np.testing.assert_allclose(out["gray"][..., ch], luma, rtol=1e-6)
    axis = np.array([-1.0, 2.0, -1.0]) / np.sqrt(6)
    np.testing.assert_allclose(out["project"] @ axis, 0.0, atol=1e-6)  # no green-magenta left
    moved = out["project"] - x  # only along the green-magenta axis
    np.testing.assert_allclose(moved, (moved @ axis)[..., None] * axis, atol=1e-6)
    np.testing.assert_allclose(
        out["grey_pixels"], np.broadcast_to(x[..., :1], x.shape), atol=1e-6
    )  # R = G = B: unchanged
    for b in range(4):
        for k in range(2):
            same = [np.array_equal(out["drop"][b, k, ..., c], x[b, k, ..., c]) for c in range(3)]
            assert sum(same) == 1  # one channel kept exactly, the others small noise
            kept_std = np.std(x[b, k, ..., same.index(True)])
            others = out["drop"][b, k][..., [c for c in range(3) if not same[c]]]
            assert 0 < np.std(others) < 0.05 * kept_std
    changed = np.abs(out["half"] - np.tile(x, (50, 1, 1, 1, 1))).max((2, 3, 4)) > 0
    assert 0.4 < changed.mean() < 0.6
    np.testing.assert_array_equal(out["never"], x)
    np.testing.assert_array_equal(out["one_channel"], x[..., :1])
    with pytest.raises(ValueError, match=r"unknown colour countermeasure 'red'; choose one of"):
        pt.color_countermeasure(jax.random.PRNGKey(0), jnp.asarray(x), mode="red", prob=1.0)


def test_normalize_crops():
    crops = jnp.asarray(np.random.default_rng(2).uniform(size=(2, 3, 4, 4, 3)) * 5 + 2)
    out = np.asarray(pt.normalize_crops(crops, eps=0.0))
    # Each crop's mean is a reduction of 4 x 4 x 3 values up to 7, in units of its std ~1.4.
    np.testing.assert_allclose(out.mean((2, 3, 4)), 0.0, atol=f32_sum_tol(48, magnitude=7 / 1.4))
    np.testing.assert_allclose(out.std((2, 3, 4)), 1.0, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Relative patch location.


def test_pair_positions_follow_the_neighbour_table():
    labels = jnp.arange(8)
    tops, lefts = pt.pair_positions(
        jnp.full((8,), 10),
        jnp.full((8,), 20),
        labels,
        jnp.zeros(8, jnp.int32),
        jnp.array([0, 0, 0, 0, 0, 0, 0, 1]),
        size=5,
        gap=2,
    )
    np.testing.assert_array_equal(tops[:, 0], 10)
    np.testing.assert_array_equal(lefts[:, 0], 20)
    np.testing.assert_array_equal(tops[:, 1], [3, 3, 3, 10, 10, 17, 17, 17])
    np.testing.assert_array_equal(lefts[:, 1], [13, 20, 27, 13, 27, 13, 20, 28])


def test_patch_pairs_labels_match_the_chosen_neighbour():
    images = position_image(256, 28, 28)
    patches, labels = jax.jit(lambda r, x: pt.patch_pairs(r, x, size=10, gap=4, jitter=2))(
        jax.random.PRNGKey(0), jnp.asarray(images)
    )
    patches, labels = np.asarray(patches), np.asarray(labels)
    assert patches.shape == (256, 2, 10, 10, 1)
    assert set(labels) == set(range(8))
    offsets = np.asarray(pt.NEIGHBOURS)
    jitters = []
    for b in range(256):
        corners = []
        for slot in range(2):
            img, top, left = decode(patches[b, slot, 0, 0, 0])
            assert img == b
            np.testing.assert_array_equal(
                patches[b, slot], images[b, top : top + 10, left : left + 10]
            )
            corners.append((top, left))
        jitters.append(np.subtract(corners[1], corners[0]) - offsets[labels[b]] * 14)
    jitters = np.array(jitters)
    assert jitters.min() == -2 and jitters.max() == 2


def test_pair_that_does_not_fit_fails_with_one_line():
    with pytest.raises(
        ValueError,
        match=r"patches of 12px with gap 4 and jitter 2 need 30px "
        r"\(2\*patch_size \+ gap \+ jitter\) > the 28x28 images",
    ):
        pt.check_pair_fits(28, 28, size=12, gap=4, jitter=2)
