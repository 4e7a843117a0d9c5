"""Tests for dSprites rendered from its factor grid (ssljax.data.dsprites)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssljax.data import datasets, dsprites, input_pipeline

N = 737_280


@pytest.fixture(scope="module")
def renderer():
    return dsprites.Renderer()


@pytest.fixture(scope="module")
def windows(renderer):
    return renderer.windows.reshape(3, 6, 40, 32, 32)


# ------------------------------------------------------------------ factor grid


def test_grid_constants():
    assert dsprites.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert dsprites.NUM_IMAGES == N == 3 * 6 * 40 * 32 * 32
    assert dsprites.FACTOR_BASES == (6 * 40 * 32 * 32, 40 * 32 * 32, 32 * 32, 32, 1)
    values = dsprites.factor_values()
    np.testing.assert_allclose(values["scale"], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    orientation = values["orientation"]
    assert len(np.unique(orientation)) == 40 and orientation[0] == 0.0
    assert orientation[-1] < 2 * np.pi
    np.testing.assert_allclose(np.diff(orientation), 2 * np.pi / 40)
    for name in ("x_position", "y_position"):
        assert len(values[name]) == 32 and values[name][0] == 0.0 and values[name][-1] == 1.0


def test_index_formula_round_trip_and_uniqueness():
    index = np.arange(N)
    factors = dsprites.index_to_factors(index)
    # Independent enumeration: the grid in C order (y position fastest).
    grid = np.indices(dsprites.FACTOR_SIZES).reshape(5, -1).T
    np.testing.assert_array_equal(factors, grid)
    np.testing.assert_array_equal(dsprites.factors_to_index(factors), index)
    assert len(np.unique(factors, axis=0)) == N
    assert dsprites.factors_to_index(np.array([2, 5, 39, 31, 31])) == N - 1
    assert dsprites.factors_to_index(np.array([1, 0, 0, 0, 1])) == 245_761
    values = dsprites.factor_values_of(np.array([[2, 5, 10, 31, 0]]))[0]
    np.testing.assert_allclose(values, [3.0, 1.0, np.pi / 2, 1.0, 0.0])


def test_bad_factor_indices():
    with pytest.raises(ValueError, match=r"orientation index 40 .* 0\.\.39") as info:
        dsprites.factors_to_index(np.array([0, 0, 40, 0, 0]))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="integers"):
        dsprites.factors_to_index(np.array([0.0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="out of range"):
        dsprites.index_to_factors(np.array([N]))


# ------------------------------------------------------------------ rendering


def test_every_image_rendered_once_inside_the_frame(renderer):
    """All 737,280 images, each once, in index order; every image holds its whole
    sprite (area of its window mask, > 0) and leaves the outer pixel frame empty."""
    window_area = renderer.windows.reshape(720, -1).sum(axis=1)
    seen = 0
    for indices, images in dsprites.iter_all_images(chunk_size=32 * 1024, renderer=renderer):
        np.testing.assert_array_equal(indices, np.arange(seen, seen + len(indices)))
        assert images.shape == (len(indices), 64, 64, 1) and images.dtype == np.uint8
        area = np.count_nonzero(images.reshape(len(indices), -1), axis=1)
        np.testing.assert_array_equal(area, window_area[indices // 1024])
        assert not (images[:, [0, -1]].any() or images[:, :, [0, -1]].any())
        seen += len(indices)
    assert seen == N
    assert window_area.min() > 0 and renderer.windows.max() == 1


def test_window_renderer_matches_direct_rasteriser(renderer):
    rng = np.random.default_rng(0)
    index = np.concatenate([[0, 1, 31, 32, N - 1], rng.integers(0, N, 300)])
    expected = dsprites.render_direct(dsprites.index_to_factors(index))
    np.testing.assert_array_equal(renderer.images(index), expected)
    np.testing.assert_array_equal(dsprites.render_images(index[:5]), expected[:5])


def test_area_grows_with_scale(windows):
    areas = windows.sum(axis=(-1, -2)).astype(np.int64)  # [shape, scale, orientation]
    assert (np.diff(areas, axis=1) > 0).all()
    # An axis-aligned square of side 20 * scale pixels covers exactly that many pixel centres.
    np.testing.assert_array_equal(areas[0, :, 0], [100, 144, 196, 256, 324, 400])
    # Shapes differ in area (so they are not one mask).
    assert len(set(areas[:, 5, 0].tolist())) == 3


def centroid(images):
    """(x, y) centroid of each mask in pixel coordinates (pixel centres at +0.5)."""
    masks = images[..., 0].astype(np.float64)
    area = masks.sum(axis=(1, 2))
    centres = np.arange(64) + 0.5
    return np.stack(
        [
            (masks.sum(axis=1) * centres).sum(axis=1) / area,
            (masks.sum(axis=2) * centres).sum(axis=1) / area,
        ],
        axis=1,
    )


def test_centroid_follows_position(renderer):
    rng = np.random.default_rng(1)
    base = np.column_stack([rng.integers(0, s, 40) for s in dsprites.FACTOR_SIZES])
    for axis in (3, 4):
        steps = []
        for i in range(32):
            f = base.copy()
            f[:, axis] = i
            steps.append(centroid(renderer.images_from_factors(f)))
        steps = np.stack(steps)  # [32 positions, 40 sprites, (x, y)]
        moving, still = (0, 1) if axis == 3 else (1, 0)
        np.testing.assert_allclose(np.diff(steps[..., moving], axis=0), 1.0, atol=1e-9)
        np.testing.assert_allclose(np.diff(steps[..., still], axis=0), 0.0, atol=1e-9)
    # Point-symmetric sprites (square, ellipse) are centred at (16 + i_x, 16 + i_y): x to the
    # right, y downwards.
    f = np.array([[0, 3, 7, 0, 31], [1, 5, 13, 31, 0], [0, 0, 0, 12, 5]])
    np.testing.assert_allclose(
        centroid(renderer.images_from_factors(f)), [[16, 47], [47, 16], [28, 21]]
    )


def test_quarter_turn(windows):
    # Orientation steps of 10 are quarter turns (counter-clockwise, as np.rot90).
    for k in range(30):
        np.testing.assert_array_equal(
            np.rot90(windows[:, :, k], axes=(-2, -1)), windows[:, :, k + 10]
        )
    # A square rotated by 90 degrees is the same mask; by 45 degrees it is not.
    square = windows[0]
    np.testing.assert_array_equal(square, np.roll(square, 10, axis=1))
    assert not np.array_equal(square[:, 0], square[:, 5])
    # The heart has no quarter-turn symmetry, the ellipse only a half-turn one.
    assert not np.array_equal(windows[2, :, 0], windows[2, :, 10])
    assert not np.array_equal(windows[1, :, 0], windows[1, :, 10])
    np.testing.assert_array_equal(windows[1, :, 0], windows[1, :, 20])


def test_full_images_rotate_about_the_sprite_centre(renderer):
    f = np.array([[2, 4, 3, 9, 20], [2, 4, 13, 9, 20]])
    images = renderer.images_from_factors(f)[..., 0]
    crop = images[:, 20 : 20 + 32, 9 : 9 + 32]  # the 32x32 window around the sprite
    assert crop.sum() == images.sum()
    np.testing.assert_array_equal(np.rot90(crop[0]), crop[1])


# ------------------------------------------------------------------ ground-truth data


def test_dsprites_interface(renderer):
    data = dsprites.DSprites()
    assert data.factor_sizes == (3, 6, 40, 32, 32) and data.num_factors == 5
    assert data.factor_names == dsprites.FACTOR_NAMES
    factors = data.sample_factors(500, np.random.RandomState(3))
    assert factors.shape == (500, 5) and factors.dtype == np.int64
    assert (factors >= 0).all() and (factors < np.array(data.factor_sizes)).all()
    # Same draws as disentanglement_lib: one randint call per factor, in order.
    rs = np.random.RandomState(3)
    expected = np.stack([rs.randint(s, size=500) for s in data.factor_sizes], axis=1)
    np.testing.assert_array_equal(factors, expected)
    f, obs = data.sample(16, np.random.RandomState(4))
    assert obs.shape == (16, 64, 64, 1) and obs.dtype == np.float32
    assert set(np.unique(obs)) <= {0.0, 1.0}
    np.testing.assert_array_equal(obs, renderer.images(dsprites.factors_to_index(f)))
    np.testing.assert_array_equal(data.sample_observations(16, 4), obs)  # int seed
    with pytest.raises(ValueError, match="RandomState"):
        data.sample_factors(3, np.random.default_rng(0))


# ------------------------------------------------------------------ TFDS builder


FIRST, LAST = 245_760 - 40, 245_760 + 40  # crosses the square -> ellipse boundary


def small_generators(self, dl_manager):
    return {"train": self._generate_examples(FIRST, LAST)}


def test_builder_is_registered_as_dsprites(tmp_path):
    import ssljax.data

    # One class per thing: DSprites is the ground-truth data, DSpritesBuilder the TFDS builder
    # (TFDS reads the registered name from its ``name`` attribute, not from the class name).
    assert tfds.builder_cls("dsprites") is dsprites.DSpritesBuilder is ssljax.data.DSpritesBuilder
    assert dsprites.DSpritesBuilder.name == "dsprites" and not hasattr(dsprites, "Dsprites")
    builder = tfds.builder("dsprites", data_dir=str(tmp_path))
    assert isinstance(builder, dsprites.DSpritesBuilder)
    features = builder.info.features
    assert features["image"].shape == (64, 64, 1)
    assert features["label_shape"].names == ["square", "ellipse", "heart"]
    assert [features[f"label_{n}"].num_classes for n in dsprites.FACTOR_NAMES] == [3, 6, 40, 32, 32]
    spec = datasets.get_dataset_spec("dsprites")
    assert (spec.tfds_name, spec.image_shape, spec.num_classes, spec.label_key) == (
        "dsprites",
        (64, 64, 1),
        3,
        "label_shape",
    )


def test_builder_examples_and_input_pipeline(tmp_path, monkeypatch):
    """A slice of the split, prepared by the real builder and read by tfds.load and
    ssljax's input pipeline: images (0/255), factors, values and index order."""
    monkeypatch.setattr(dsprites.DSpritesBuilder, "_split_generators", small_generators)
    # Generated in code: preparing it is allowed even when downloads are switched off.
    monkeypatch.setenv(input_pipeline.NO_DOWNLOAD_ENV_VAR, "1")
    data_dir = str(tmp_path)
    ds = tfds.load("dsprites", split="train", data_dir=data_dir)
    examples = list(ds.as_numpy_iterator())
    index = np.arange(FIRST, LAST)
    factors = dsprites.index_to_factors(index)
    expected_images = dsprites.render_images(index) * 255
    np.testing.assert_array_equal([e["index"] for e in examples], index)
    np.testing.assert_array_equal(np.stack([e["image"] for e in examples]), expected_images)
    for j, name in enumerate(dsprites.FACTOR_NAMES):
        np.testing.assert_array_equal([e[f"label_{name}"] for e in examples], factors[:, j])
        np.testing.assert_allclose(
            [e[f"value_{name}"] for e in examples],
            dsprites.factor_values()[name][factors[:, j]].astype(np.float32),
        )

    images, labels = input_pipeline.load_split_arrays("dsprites", "train", data_dir=data_dir)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, factors[:, 0])
    batch = next(
        input_pipeline.train_iterator("dsprites", global_batch_size=16, seed=0, data_dir=data_dir)
    )
    assert batch["image"].shape == (8, 2, 64, 64, 1)
    position = batch["index"].reshape(-1)
    np.testing.assert_array_equal(batch["image"].reshape(16, 64, 64, 1), expected_images[position])
    np.testing.assert_array_equal(batch["label"].reshape(-1), factors[position, 0])


def test_index_chunks():
    chunks = list(dsprites.index_chunks(1000, 10, 3510))
    np.testing.assert_array_equal(np.concatenate(chunks), np.arange(10, 3510))
    assert [len(c) for c in chunks] == [1000, 1000, 1000, 500]
    with pytest.raises(ValueError, match="chunk_size"):
        list(dsprites.index_chunks(0))
