"""Views cut on the host (ssljax.data.host_views): the crop windows' distribution, the JPEG
fast path against a full decode, independent and reproducible views, the training iterator's
host-view batches, the device's post-crop augmentation and ``augment.crop_on``."""

import dataclasses
import math
import os

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from ssljax import objectives
from ssljax.data import host_views as hv
from ssljax.data import input_pipeline
from ssljax.data.datasets import facts_from_spec, get_dataset_spec, spec_from_config
from ssljax.views import augment as aug

GLOBAL = hv.CropSpec(count=2, size=24, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
LOCAL = hv.CropSpec(count=2, size=12, scale=(0.05, 0.14), ratio=(3 / 4, 4 / 3))
# Image shapes (H, W) of the distribution tests: landscape, portrait, square, panorama.
SHAPES = [(375, 500), (500, 375), (480, 640), (300, 300), (200, 800)]


def textured(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Gradients plus noise: JPEG chroma varies at every scale."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], -1)
    noisy = base[..., :channels] + rng.integers(-40, 40, (height, width, channels))
    return np.clip(noisy, 0, 255).astype(np.uint8)


@tf.function
def windows_of(shape_hw, seeds, scale, ratio):
    """``int32 [n, 4]`` windows ``crop_window(shape_hw, seeds[i])``."""
    return tf.map_fn(
        lambda s: tf.stack(hv.crop_window(shape_hw, s, scale=scale, ratio=ratio)),
        seeds,
        fn_output_signature=tf.int32,
    )


def seeds(n: int, salt: int = 0) -> tf.Tensor:
    return tf.constant(np.stack([np.arange(n) + 1000 * salt, np.full(n, 7 + salt)], 1), tf.int64)


# ------------------------------------------------------------------------------- windows


def sampler_areas(height: int, width: int, scale, ratio, n: int, rng) -> np.ndarray:
    """Area fractions of TensorFlow's documented sampler (``GenerateRandomCrop``), written
    independently: aspect ``r ~ U[ratio]``, height uniform between the heights of the
    smallest and largest allowed areas (clipped to fit the image), width ``h * r``."""
    area = height * width
    r = rng.uniform(*ratio, size=n)
    lo = np.sqrt(scale[0] * area / r)
    hi = np.minimum(np.sqrt(scale[1] * area / r), np.minimum(height, width / r))
    h = rng.uniform(lo, np.maximum(lo, hi))
    return h * h * r / area


@pytest.mark.parametrize("height,width", SHAPES)
def test_windows_follow_the_area_and_aspect_ranges(height, width):
    """Over 1500 seeds: every window lies in the image with area fraction in [0.08, 1] and
    aspect in [3/4, 4/3] (rounding a side moves it by <= 0.5 / h); the area fractions follow
    TensorFlow's sampler (KS test against an independent simulation of it), the aspect
    ratios U[3/4, 4/3] (mean log-aspect 0.027), the offsets are uniform."""
    n, scale, ratio = 1500, (0.08, 1.0), (3 / 4, 4 / 3)
    win = windows_of(tf.constant([height, width, 3]), seeds(n), scale, ratio).numpy()
    top, left, h, w = win.T
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    area = h * w / (height * width)
    aspect = w / h
    assert (area >= scale[0] - 1e-9).all() and (area <= scale[1] + 1e-9).all()
    assert (aspect >= ratio[0] - 0.5 / h).all() and (aspect <= ratio[1] + 0.5 / h).all()
    # The area fractions follow the sampler's distribution (not U[scale]: its height is).
    reference = sampler_areas(height, width, scale, ratio, 20000, np.random.default_rng(0))
    assert stats.ks_2samp(area, reference).pvalue > 1e-3
    assert area.min() < scale[0] + 0.04 and area.max() > min(reference.max(), 1.0) - 0.1
    # Aspect ratios: uniform on ratio (up to the rounding of w); mean log-aspect by formula.
    a, b = ratio
    mean_log = (b * math.log(b) - b - a * math.log(a) + a) / (b - a)  # E[log r], r ~ U[a, b]
    assert abs(np.log(aspect).mean() - mean_log) < 4 * np.log(aspect).std() / math.sqrt(n)
    assert stats.kstest(aspect, stats.uniform(a, b - a).cdf).pvalue > 1e-3
    # Offsets: TensorFlow draws top uniformly from {0, ..., H - h - 1} (left likewise).
    room = height - h
    u = (top[room > 20] + 0.5) / room[room > 20]
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_fallback_is_the_central_window():
    """When no attempt fits (a 200x800 panorama has no 3/4..4/3 window of half its area)
    the window is the central one of clamped aspect and the largest allowed area."""
    win = windows_of(tf.constant([200, 800, 3]), seeds(20), (0.5, 1.0), (3 / 4, 4 / 3)).numpy()
    # aspect clamped to 4/3 at full height: 200 x 267, centred.
    assert (win == [0, (800 - 267) // 2, 200, 267]).all()
    # Local-crop ranges: at most scale[1] of the image, centred, aspect clamped.
    top, left, h, w = (int(v) for v in hv._central_window(200, 800, 0.14, (3 / 4, 4 / 3)))
    assert abs(h * w / (200 * 800) - 0.14) < 2 * (h + w) / (200 * 800)
    assert abs(w / h - 4 / 3) < 1 / h and (top, left) == ((200 - h) // 2, (800 - w) // 2)
    # A square image at scale (1, 1): the whole image (a valid sample equals the fallback).
    win = windows_of(tf.constant([300, 300, 3]), seeds(5), (1.0, 1.0), (3 / 4, 4 / 3)).numpy()
    assert (win == [0, 0, 300, 300]).all()


def test_views_come_from_independent_windows():
    """View 0 and view 1 of 600 images: never the same window, uncorrelated offsets."""
    n = 600
    base = hv.crop_seed(0, 0)

    @tf.function
    def two_windows(position):
        pair = hv.view_seeds(base, position, 2)
        return tf.stack(
            [
                tf.stack(hv.crop_window([375, 500], pair[i], scale=(0.08, 1), ratio=(0.75, 4 / 3)))
                for i in range(2)
            ]
        )

    win = tf.map_fn(
        two_windows, tf.range(n, dtype=tf.int64), fn_output_signature=tf.int32
    ).numpy()  # [n, 2, 4]
    assert not (win[:, 0] == win[:, 1]).all(axis=1).any()
    bound = 4 / math.sqrt(n)  # |r| of independent samples: about N(0, 1/n)
    for k in range(4):  # top, left, h, w
        assert abs(np.corrcoef(win[:, 0, k], win[:, 1, k])[0, 1]) < bound
    # Other positions and epochs draw other windows.
    assert len({tuple(w) for w in win[:, 0]}) > 0.95 * n
    other = hv.view_seeds(hv.crop_seed(0, 1), 0, 2).numpy()
    assert not (other == hv.view_seeds(base, 0, 2).numpy()).all(axis=1).any()


def test_crop_spec_validation():
    with pytest.raises(ValueError, match=r"CropSpec.scale=\(0.5, 1.5\) is invalid; valid"):
        hv.CropSpec(count=2, size=8, scale=(0.5, 1.5), ratio=(1, 1))
    with pytest.raises(ValueError, match=r"CropSpec.count=0 is invalid"):
        hv.CropSpec(count=0, size=8, scale=(0.5, 1), ratio=(1, 1))
    with pytest.raises(ValueError, match=r"CropSpec.ratio=\(2, 1\) is invalid"):
        hv.CropSpec(count=1, size=8, scale=(0.5, 1), ratio=(2, 1))
    with pytest.raises(ValueError, match=r"HostViews.crops=\(\) is invalid"):
        hv.HostViews(crops=())
    spec = hv.CropSpec(count=1, size=8, scale=[0.5, 1], ratio=[1, 2])
    assert spec.scale == (0.5, 1.0) and spec.ratio == (1.0, 2.0)


# ------------------------------------------------------------------------------- pixels


def resized(crop: np.ndarray, size: int) -> np.ndarray:
    out = tf.image.resize(crop, [size, size], method="bicubic", antialias=False)
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8).numpy()


@pytest.mark.parametrize("subsampled", [True, False])
def test_jpeg_fast_path_equals_full_decode_and_crop(subsampled):
    """decode_and_crop_jpeg of the window (with its one-column margins) gives exactly the
    pixels of decode_jpeg then crop, for 4:2:0 and 4:4:4 JPEGs, RGB, grey and converted."""
    for (height, width), channels in [((75, 100), 3), ((100, 75), 3), ((40, 160), 1)]:
        enc = tf.io.encode_jpeg(
            textured(height, width, channels), quality=90, chroma_downsampling=subsampled
        )
        for out_channels in (3, 1):
            full = tf.io.decode_jpeg(enc, channels=out_channels).numpy()
            for s in range(12):
                seed = tf.constant([s, 3], tf.int64)
                top, left, h, w = (
                    int(v)
                    for v in hv.crop_window(
                        tf.image.extract_jpeg_shape(enc), seed, scale=(0.08, 1), ratio=(0.75, 4 / 3)
                    )
                )
                got = hv.inception_crop(
                    enc, seed, size=16, scale=(0.08, 1), ratio=(0.75, 4 / 3), channels=out_channels
                ).numpy()
                want = resized(full[top : top + h, left : left + w], 16)
                assert got.dtype == np.uint8 and got.shape == (16, 16, out_channels)
                np.testing.assert_array_equal(got, want)


def kernel_reference(image: np.ndarray, size: int, kind: str = "bilinear", a: float = -0.75):
    """Half-pixel-centre resize without anti-aliasing, written independently in float64,
    separable in rows and columns; source coordinate ``(i + 0.5) * in / out - 0.5``.
    ``bilinear``: the coordinate clamped to the image, its two neighbours' linear blend.
    ``bicubic``: Keys' cubic convolution with parameter ``a`` on the four neighbours, their
    indices clamped to the image (edge pixels replicated)."""

    def weights(n_in: int) -> np.ndarray:
        src = (np.arange(size) + 0.5) * n_in / size - 0.5
        m = np.zeros((size, n_in))
        rows = np.arange(size)
        if kind == "bilinear":
            src = np.clip(src, 0, n_in - 1)
            lo = np.floor(src).astype(int)
            hi = np.minimum(lo + 1, n_in - 1)
            np.add.at(m, (rows, lo), 1 - (src - lo))
            np.add.at(m, (rows, hi), src - lo)
            return m
        base = np.floor(src).astype(int)
        for k in range(-1, 3):
            d = np.abs(k - (src - base))
            near = (a + 2) * d**3 - (a + 3) * d**2 + 1
            far = a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
            np.add.at(m, (rows, np.clip(base + k, 0, n_in - 1)), np.where(d <= 1, near, far))
        return m

    rows, cols = weights(image.shape[0]), weights(image.shape[1])
    return np.einsum("ih,hwc,jw->ijc", rows, image.astype(np.float64), cols)


def test_bilinear_host_resize_against_an_independent_resize():
    """``host_resize='bilinear'``: every view is the window's bilinear resize (independent
    float64 formula; float32 rounding may move a value sitting at .5 by one level), and it
    differs from the bicubic view of the same window."""
    encoded = tf.io.encode_jpeg(textured(90, 120), quality=90)
    full = tf.io.decode_jpeg(encoded, channels=3).numpy()
    bilinear = hv.HostViews(crops=(GLOBAL,), resize="bilinear", resize_backend="tensorflow")
    for position in range(6):
        seeds_ = hv.view_seeds(hv.crop_seed(1, 0), position, 2)
        got = hv.example_views(encoded, seeds_, bilinear, channels=3)["image"].numpy()
        cubic = hv.example_views(
            encoded, seeds_, hv.HostViews(crops=(GLOBAL,), resize_backend="tensorflow"), channels=3
        )
        for i in range(2):
            top, left, h, w = (
                int(v)
                for v in hv.crop_window(
                    full.shape, seeds_[i], scale=GLOBAL.scale, ratio=GLOBAL.ratio
                )
            )
            want = kernel_reference(full[top : top + h, left : left + w], GLOBAL.size)
            diff = np.abs(got[i].astype(np.float64) - np.round(want))
            assert diff.max() <= 1 and np.mean(diff == 0) > 0.99
            assert not np.array_equal(got[i], cubic["image"][i].numpy())
    with pytest.raises(
        ValueError, match=r"^augment.host_resize='area' is invalid; valid: bicubic, bilinear$"
    ):
        hv.HostViews(crops=(GLOBAL,), resize="area")


@pytest.mark.parametrize("resize", hv.RESIZE_CHOICES)
def test_opencv_backend_against_an_independent_resize(resize):
    """``host_resize_backend='opencv'``: global and local views (RGB and grey, JPEG and PNG)
    are their windows' resizes by the independent float64 formula within one level (8-bit
    fixed-point weights), bilinear as TensorFlow's, bicubic with OpenCV's Keys a = -0.75;
    bilinear views are within one level of the TensorFlow backend's."""
    views = hv.HostViews(crops=(GLOBAL, LOCAL), resize=resize, resize_backend="opencv")
    for channels, png in ((3, False), (1, False), (3, True)):
        image = textured(70, 90, channels, seed=channels)
        encoded = tf.io.encode_png(image) if png else tf.io.encode_jpeg(image, quality=90)
        full = tf.io.decode_image(encoded, channels=channels).numpy()
        for position in range(3):
            seeds_ = hv.view_seeds(hv.crop_seed(2, 0), position, views.num_views)
            out = hv.example_views(encoded, seeds_, views, channels=channels)
            tf_out = hv.example_views(
                encoded,
                seeds_,
                dataclasses.replace(views, resize_backend="tensorflow"),
                channels=channels,
            )
            for i in range(views.num_views):
                spec, key, j = (GLOBAL, "image", i) if i < 2 else (LOCAL, "local_image", i - 2)
                got = out[key][j].numpy()
                assert got.dtype == np.uint8 and got.shape == (spec.size, spec.size, channels)
                top, left, h, w = (
                    int(v)
                    for v in hv.crop_window(
                        full.shape, seeds_[i], scale=spec.scale, ratio=spec.ratio
                    )
                )
                want = kernel_reference(full[top : top + h, left : left + w], spec.size, resize)
                diff = np.abs(got.astype(np.float64) - np.clip(np.round(want), 0, 255))
                # Within one level (8-bit fixed-point weights), and unbiased: rounding to the
                # nearest level is off by 0.25 on average, a systematic one-level error by 0.75.
                error = np.abs(got - np.clip(want, 0, 255))
                assert diff.max() <= 1 and error.mean() < 0.5, error.mean()
                gap = np.abs(got.astype(int) - tf_out[key][j].numpy().astype(int)).max()
                assert gap <= 1 if resize == "bilinear" else gap > 0
    with pytest.raises(
        ValueError,
        match=r"^augment.host_resize_backend='pil' is invalid; valid: tensorflow, opencv$",
    ):
        hv.HostViews(crops=(GLOBAL,), resize_backend="pil")


def test_png_path_crops_the_same_window():
    image = textured(60, 90, 3)
    rgba = np.concatenate([image, np.full((60, 90, 1), 128, np.uint8)], -1)
    for encoded in (tf.io.encode_png(image), tf.io.encode_png(rgba)):
        for s in range(6):
            seed = tf.constant([s, 11], tf.int64)
            top, left, h, w = (
                int(v) for v in hv.crop_window([60, 90], seed, scale=(0.2, 0.6), ratio=(0.5, 2))
            )
            got = hv.inception_crop(
                encoded, seed, size=20, scale=(0.2, 0.6), ratio=(0.5, 2), channels=3
            ).numpy()
            np.testing.assert_array_equal(got, resized(image[top : top + h, left : left + w], 20))


def test_example_views_global_and_local():
    encoded = tf.io.encode_jpeg(textured(50, 70))
    views = hv.HostViews(crops=(GLOBAL, LOCAL), resize_backend="tensorflow")
    seeds_ = hv.view_seeds(hv.crop_seed(3, 0), 5, views.num_views)
    out = hv.example_views(encoded, seeds_, views, channels=3)
    assert out["image"].shape == (2, 24, 24, 3) and out["local_image"].shape == (2, 12, 12, 3)
    # View i, cut from one decode, is inception_crop (a partial decode per view) with the
    # i-th seed bit for bit (locals after the globals), for 4:2:0 JPEGs and PNGs.
    for image_bytes in (encoded, tf.io.encode_png(textured(50, 70))):
        out_i = hv.example_views(image_bytes, seeds_, views, channels=3)
        for i in range(4):
            spec, key, j = (GLOBAL, "image", i) if i < 2 else (LOCAL, "local_image", i - 2)
            want = hv.inception_crop(
                image_bytes,
                seeds_[i],
                size=spec.size,
                scale=spec.scale,
                ratio=spec.ratio,
                channels=3,
            )
            np.testing.assert_array_equal(out_i[key][j].numpy(), want.numpy())
    assert not np.array_equal(out["image"][0].numpy(), out["image"][1].numpy())


# ---------------------------------------------------------------------- training iterator


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    """24 train JPEGs of five shapes and two classes, 4 test JPEGs."""
    root = tmp_path_factory.mktemp("host_views_folder")
    for split, n in (("train", 24), ("test", 4)):
        for i in range(n):
            height, width = [(30, 40), (40, 30), (24, 32), (30, 30), (16, 64)][i % 5]
            path = os.path.join(root, split, f"c{i % 2}", f"{i:03d}.jpg")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(tf.io.encode_jpeg(textured(height, width, seed=i)).numpy())
    return str(root)


def folder_spec(root, image_size=24):
    return spec_from_config(dict(name="image_folder", data_dir=root, image_size=image_size))


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_train_iterator_with_host_views(jpeg_folder):
    """Shapes and dtypes of host-view batches (global + local crops); the same seed gives
    the same crops, ``start_step=k`` the tail of a fresh iterator, a new epoch new crops of
    the same images."""
    spec = folder_spec(jpeg_folder)
    assert spec.fits_in_memory  # host views stream it anyway (new crops every epoch)
    views = hv.HostViews(crops=(GLOBAL, LOCAL))
    kwargs = dict(global_batch_size=8, seed=5, num_devices=4, host_views=views)
    fresh = take(input_pipeline.train_iterator(spec, **kwargs), 4)  # 3 steps per epoch
    batch = fresh[0]
    assert set(batch) == {"image", "local_image", "label", "index"}
    assert batch["image"].shape == (4, 2, 2, 24, 24, 3) and batch["image"].dtype == np.uint8
    assert batch["local_image"].shape == (4, 2, 2, 12, 12, 3)
    assert batch["local_image"].dtype == np.uint8
    assert batch["label"].shape == batch["index"].shape == (4, 2)
    assert batch["label"].dtype == batch["index"].dtype == np.int32
    epoch0 = np.concatenate([b["index"].ravel() for b in fresh[:3]])
    assert sorted(epoch0) == sorted(set(epoch0)) and epoch0.min() >= 0 and epoch0.max() < 24
    # Resume (same seed) mid-epoch: the tail of a fresh iterator, bit for bit.
    resumed = take(input_pipeline.train_iterator(spec, start_step=1, **kwargs), 2)
    for a, b in zip(fresh[1:3], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    # Epoch 1 cuts other crops of the images it shares with epoch 0.
    first = {
        int(i): img
        for i, img in zip(batch["index"].ravel(), batch["image"].reshape(8, 2, 24, 24, 3))
    }
    later = fresh[3]
    shared = [
        (first[int(i)], img)
        for i, img in zip(later["index"].ravel(), later["image"].reshape(8, 2, 24, 24, 3))
        if int(i) in first
    ]
    assert all(not np.array_equal(a, b) for a, b in shared)
    # The batch reaches the devices as global arrays (local crops included).
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:4]), ("batch",))
    from ssljax import parallel

    placed = parallel.batch_to_global(batch, mesh)
    assert placed["local_image"].shape == (8, 2, 12, 12, 3)
    # OpenCV's resize inside the parallel tf.data map: the same images and windows, bilinear
    # views within one level of TensorFlow's.
    linear = dict(
        kwargs,
        host_views=dataclasses.replace(views, resize="bilinear", resize_backend="tensorflow"),
    )
    fast = dict(
        linear, host_views=dataclasses.replace(linear["host_views"], resize_backend="opencv")
    )
    for a, b in zip(
        take(input_pipeline.train_iterator(spec, **linear), 2),
        take(input_pipeline.train_iterator(spec, **fast), 2),
    ):
        np.testing.assert_array_equal(a["index"], b["index"])
        for key in ("image", "local_image"):
            assert a[key].shape == b[key].shape and b[key].dtype == np.uint8
            assert np.abs(a[key].astype(int) - b[key].astype(int)).max() <= 1


def test_in_memory_path_unchanged_without_host_views(jpeg_folder):
    """Without host views a folder that fits in memory keeps its resize-and-centre-crop
    batches (the in-memory path)."""
    spec = folder_spec(jpeg_folder, image_size=16)
    batch = next(input_pipeline.train_iterator(spec, global_batch_size=8, seed=0, num_devices=4))
    assert set(batch) == {"image", "label", "index"} and batch["image"].shape == (4, 2, 16, 16, 3)


# ------------------------------------------------------------------------- device side


def test_rank5_make_views_is_the_post_crop_augment_per_view():
    """Grey crops (cheaper to compile; the RGB ops are the rank-4 test's, through
    ``simclr_augment = crop + post_crop_augment``)."""
    cfg = aug.augment_config(16, blur_prob=0.5)
    rng = jax.random.PRNGKey(3)
    crops = jax.random.randint(jax.random.PRNGKey(1), (4, 2, 16, 16, 1), 0, 256).astype(np.uint8)

    @jax.jit
    def both(r, x):  # one program: one compilation
        keys = jax.random.split(r, 2)
        per_view = [aug.post_crop_augment(keys[i], x[:, i], cfg) for i in range(2)]
        return aug.make_views(r, x, cfg, 2), per_view

    views, want = both(rng, crops)
    for i in range(2):
        assert views[i].shape == (4, 16, 16, 1)
        # Same ops on the same keys; vmapping may only reorder float32 sums (blur, jitter).
        np.testing.assert_allclose(np.asarray(views[i]), np.asarray(want[i]), atol=1e-5)
    with pytest.raises(ValueError, match=r"num_views=3 but the host crops hold 2 views"):
        aug.make_views(rng, crops, cfg, 3)


def test_rank4_make_views_unchanged():
    """Rank 4: crop then the post-crop ops with the keys they always had."""
    cfg = aug.augment_config(16, blur_prob=0.5, output_size=(12, 12))
    rng = jax.random.PRNGKey(7)
    images = jax.random.randint(jax.random.PRNGKey(2), (4, 16, 16, 3), 0, 256).astype(np.uint8)

    def by_hand(key, x):
        k_crop, k_flip, k_color, k_gray, k_blur = jax.random.split(key, 5)
        out = aug.random_resized_crop(
            k_crop, aug.to_float(x), output_size=(12, 12), scale=(0.08, 1.0), ratio=(0.75, 4 / 3)
        )
        out = aug.random_flip_left_right(k_flip, out, prob=0.5)
        out = aug.color_jitter(k_color, out, strength=1.0, prob=0.8)
        out = aug.random_grayscale(k_gray, out, prob=0.2)
        return aug.gaussian_blur(k_blur, out, prob=0.5, sigma=(0.1, 2.0))

    @jax.jit
    def both(r, x):
        want = jax.vmap(lambda k: by_hand(k, x))(jax.random.split(r, 2))
        return aug.make_views(r, x, cfg, 2), want

    views, want = both(rng, images)
    for i in range(2):
        assert views[i].shape == (4, 12, 12, 3)
        np.testing.assert_array_equal(np.asarray(views[i]), np.asarray(want[i]))


# ------------------------------------------------------------------------- crop_on


def augment(**overrides):
    cfg = ml_collections.ConfigDict(dict(aug.augment_config(224)))
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def test_crop_on_resolution(jpeg_folder):
    simclr, cpc = objectives.get("simclr"), objectives.get("cpc")
    imagenet = get_dataset_spec("imagenet2012")
    # auto: device for fixed-size datasets, host for ImageNet and folders.
    for name in ("fashion_mnist", "cifar10", "stl10"):
        assert hv.host_views_from_config(augment(), get_dataset_spec(name), simclr) is None
    cifar64 = spec_from_config(dict(name="cifar10", image_size=64))
    assert hv.host_views_from_config(augment(), cifar64, simclr) is None
    views = hv.host_views_from_config(augment(output_size=(224, 224)), imagenet, simclr)
    assert views == hv.HostViews(
        crops=(hv.CropSpec(count=2, size=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),)
    )
    # Without output_size: the dataset's evaluation side (224 for ImageNet).
    assert hv.host_views_from_config(augment(), imagenet, simclr).global_crops.size == 224
    folder = hv.host_views_from_config(
        augment(crop_scale=(0.2, 1.0)), folder_spec(jpeg_folder), simclr
    )
    assert folder.global_crops.size == 24 and folder.global_crops.scale == (0.2, 1.0)
    # Objectives without host crops stay on the device under 'auto' and refuse 'host'.
    assert hv.host_views_from_config(augment(), imagenet, cpc) is None
    with pytest.raises(ValueError) as err:
        hv.host_views_from_config(augment(crop_on="host"), imagenet, cpc)
    message = str(err.value)
    assert "\n" not in message and "objective 'cpc' cannot take host crops" in message
    assert "simclr" in message and "byol" in message and "vicreg" in message
    with pytest.raises(
        ValueError, match=r"augment.crop_on='gpu' is invalid; valid: auto, host, device$"
    ):
        hv.host_views_from_config(augment(crop_on="gpu"), imagenet, simclr)
    # 'host' on a fixed-size dataset, 'device' on ImageNet.
    forced = hv.host_views_from_config(augment(crop_on="host"), get_dataset_spec("cifar10"), simclr)
    assert forced.global_crops.size == 32
    assert hv.host_views_from_config(augment(crop_on="device"), imagenet, simclr) is None
    # The resize kernel: bicubic unless augment.host_resize says otherwise.
    assert views.resize == "bicubic"
    linear = hv.host_views_from_config(augment(host_resize="bilinear"), imagenet, simclr)
    assert linear.resize == "bilinear" and linear.crops == views.crops
    with pytest.raises(ValueError, match=r"^augment.host_resize='lanczos' is invalid"):
        hv.host_views_from_config(augment(host_resize="lanczos"), imagenet, simclr)
    # The resize library: OpenCV unless augment.host_resize_backend says otherwise (also for
    # stored configs without the key).
    assert views.resize_backend == "opencv"
    exact = hv.host_views_from_config(augment(host_resize_backend="tensorflow"), imagenet, simclr)
    assert exact.resize_backend == "tensorflow" and exact.crops == views.crops
    stored = augment()
    del stored["host_resize_backend"]
    assert hv.host_views_from_config(stored, imagenet, simclr).resize_backend == "opencv"
    with pytest.raises(ValueError, match=r"^augment.host_resize_backend='cuda' is invalid"):
        hv.host_views_from_config(augment(host_resize_backend="cuda"), imagenet, simclr)
    # Multi-crop: a config away.
    multi = hv.host_views_from_config(augment(local_crops=6), imagenet, objectives.get("byol"))
    assert multi.local_crops == hv.CropSpec(
        count=6, size=96, scale=(0.05, 0.14), ratio=(3 / 4, 4 / 3)
    )
    with pytest.raises(ValueError, match=r"augment.local_crops=6 needs crops made on the host"):
        hv.host_views_from_config(augment(local_crops=6), get_dataset_spec("cifar10"), simclr)
    # Stored configs without the keys: 'auto', no local crops.
    old = ml_collections.ConfigDict(
        {k: v for k, v in augment().items() if k not in hv.HOST_AUGMENT_DEFAULTS}
    )
    assert hv.host_views_from_config(old, imagenet, simclr).crops == views.crops
    # One set of defaults: the config files', augment_config's and stored configs'.
    from ssljax.config_base import augment_defaults
    from ssljax.training.checkpoint import LATER_DEFAULTS

    for key, value in hv.HOST_AUGMENT_DEFAULTS.items():
        assert augment_defaults(224)[key] == aug.augment_config(224)[key] == value
        assert LATER_DEFAULTS[f"augment.{key}"] == (
            list(value) if isinstance(value, tuple) else value
        )
    # Objectives taking host crops are exactly those whose views are augmented_views.
    takes = {n for n in objectives.names() if objectives.get(n).host_crops}
    assert takes == {
        "simclr",
        "moco",
        "byol",
        "simsiam",
        "binary_contrastive",
        "align_maxent",
        "barlow_twins",
        "vicreg",
    }


def test_facts_image_shape_is_the_crop_size(make_tiny_config):
    """In host mode the objectives see the crops' shape (ImageNet: 224, not the 256 the
    device path feeds)."""
    imagenet = get_dataset_spec("imagenet2012")
    assert facts_from_spec(imagenet).image_shape == (256, 256, 3)
    views = hv.HostViews(crops=(dataclasses.replace(GLOBAL, size=224),))
    facts = facts_from_spec(imagenet, host_views=views)
    assert facts.image_shape == (224, 224, 3) and not facts.in_memory
    config = make_tiny_config()
    config.dataset.name = "imagenet2012"
    config.augment.output_size = (64, 64)
    assert hv.host_views_for_config(config).global_crops.size == 64
    from ssljax.training.loop import build_setup

    assert build_setup(config).run.facts.image_shape == (64, 64, 3)


def test_train_step_takes_host_crops_and_ignores_local_crops(jpeg_folder, make_tiny_config):
    """A run on the folder resolves to host crops (global + local); its train step, traced
    on a host batch, makes two views of the crops' size and leaves ``local_image`` unread."""
    from ssljax.training.loop import abstract_state, build_setup
    from ssljax.training.step import make_train_step

    config = make_tiny_config()
    config.dataset.name = "image_folder"
    config.dataset.data_dir = jpeg_folder
    config.dataset.image_size = 24
    config.augment.local_crops = 2
    config.augment.local_crop_size = 12
    views = hv.host_views_for_config(config)
    assert views.num_views == 4 and views.local_crops.size == 12
    setup = build_setup(config)
    assert setup.run.facts.image_shape == (24, 24, 3)
    batch = next(
        input_pipeline.train_iterator(
            folder_spec(jpeg_folder), global_batch_size=8, seed=0, num_devices=1, host_views=views
        )
    )
    batch = {k: v.reshape(-1, *v.shape[2:]) for k, v in batch.items()}  # one device
    seen = []
    objective = setup.objective

    class Recording(type(objective)):
        def make_views(self, rng, images, run):
            seen.append(images.shape)
            return super().make_views(rng, images, run)

    step = make_train_step(
        objective=Recording(**dataclasses.asdict(objective)),
        model=setup.eval_model,
        tx=setup.tx,
        config=config,
        run=setup.run,
        axis_name=None,
    )
    state = abstract_state(config, setup)
    new_state, metrics = jax.eval_shape(step, state, batch)
    assert seen == [(8, 2, 24, 24, 3)] and metrics["loss"].shape == ()
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
