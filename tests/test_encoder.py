"""ssljax.load_encoder: the linear-eval features of a trained checkpoint, from any images."""

import os
import pathlib

import jax
import numpy as np
import pytest

import ssljax
from ssljax.evaluation.checkpoint_eval import compute_features, encoder_of, feature_fn
from tests.conftest import tiny_images
from tests.tolerances import f32_sum_tol
from tests.training.test_workdir_io import gcs, gs  # noqa: F401 (the emulator)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Reductions one pooled feature of the tiny ConvNet (widths 8, 16) goes through: a 3x3
# convolution per block (fan-in 9 x C_in) and the global mean over the last 14 x 14 map.
FEATURE_TERMS = 9 * 1 + 9 * 8 + 14 * 14


def assert_features_close(actual, desired):
    """Equal up to reordered float32 sums (``f32_sum_tol``, worst case, per feature scale)."""
    atol = f32_sum_tol(FEATURE_TERMS, float(np.abs(desired).max()))
    np.testing.assert_allclose(actual, desired, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def workdir(tiny_fashion_mnist, tmp_path_factory, make_tiny_config):
    """A tiny SimCLR run on generated Fashion-MNIST, trained for 2 steps."""
    from ssljax.training.loop import train_and_evaluate

    config = make_tiny_config(tiny_fashion_mnist)
    config.total_steps = 2
    config.checkpoint_every_steps = 2
    run = str(tmp_path_factory.mktemp("encoder") / "run")
    assert train_and_evaluate(config, run, progress=False)["status"] == "completed"
    return run


@pytest.fixture(scope="module")
def encoder(workdir):
    return ssljax.load_encoder(workdir)


@pytest.fixture(scope="module")
def images():
    return tiny_images(20, seed=3)[0][..., None]  # uint8 [20, 28, 28, 1]


def test_attributes(encoder, workdir):
    assert encoder.step == 2
    assert encoder.image_shape == (28, 28, 1)
    assert encoder.layers == ("block1", "block2", "pooled")
    assert encoder.config.dataset.name == "fashion_mnist"
    assert tuple(encoder.config.model.encoder_kwargs.widths) == (8, 16)
    assert len(encoder.devices) == jax.local_device_count() == 8
    assert "step 2" in repr(encoder)


@pytest.mark.parametrize("layer, grid", [("pooled", 1), ("block1", 2)])
def test_embed_equals_the_linear_eval_features(encoder, workdir, images, layer, grid):
    """The code path of ``evaluate_workdir``: restore, cut out the encoder, ``feature_fn``."""
    from ssljax.training.loop import restore_for_eval

    _, setup, state, step = restore_for_eval(workdir)
    module, variables = encoder_of(setup, state.params, state.model_state)
    fn = feature_fn(module, layer=layer, grid=grid)
    want = compute_features(fn, variables, images, batch_size=8)
    got = encoder.embed(images, layer=layer, grid=grid)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert want.shape == (20, 8 * grid * grid if layer == "block1" else 16)
    assert_features_close(got, want)
    # Not all alike: the rows are the images' own features.
    assert np.abs(got - got.mean(0)).max() > 1e-3 * np.abs(got).max()


def test_batch_size_does_not_change_rows(workdir, encoder, images):
    one = ssljax.load_encoder(workdir, devices=jax.local_devices()[:1])
    by3, by7 = one.embed(images, batch_size=3), one.embed(images, batch_size=7)
    assert_features_close(by3, by7)
    # On 8 devices the batch is rounded up to a multiple of 8: 24 rows, 4 of them padding.
    assert_features_close(encoder.embed(images, batch_size=20), by7)
    # The first rows alone give the same rows as within the whole set.
    assert_features_close(encoder.embed(images[:5]), by7[:5])


def test_device_count_does_not_change_rows(workdir, encoder, images):
    one = ssljax.load_encoder(workdir, devices=jax.local_devices()[:1]).embed(images)
    on_four = ssljax.load_encoder(workdir, devices=jax.local_devices()[:4])
    assert len(on_four.devices) == 4
    four = on_four.embed(images)
    assert_features_close(four, one)
    assert_features_close(encoder.embed(images), one)


def test_other_sizes_channels_and_dtypes_are_adapted(encoder, images):
    big = np.random.default_rng(0).integers(0, 256, (6, 56, 56, 1), dtype=np.uint8)
    halved = np.rint(big.reshape(6, 28, 2, 28, 2, 1).astype(np.float64).mean(axis=(2, 4)))
    assert_features_close(encoder.embed(big), encoder.embed(halved.astype(np.uint8)))
    base = encoder.embed(images)
    # Grey without a channel axis, float in [0, 1], and RGB with equal channels.
    assert_features_close(encoder.embed(images[..., 0]), base)
    assert_features_close(encoder.embed(images.astype(np.float32) / 255), base)
    assert_features_close(encoder.embed(np.repeat(images, 3, axis=-1)), base)
    assert encoder.embed(images[:0]).shape == (0, 16)


def test_errors(workdir, encoder, images, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        ValueError, match=r"^no checkpoint in .*empty \(missing .*empty/checkpoints\)"
    ):
        ssljax.load_encoder(str(empty))
    with pytest.raises(ValueError, match=r"cannot read the checkpoint at step 5 in .*checkpoints"):
        ssljax.load_encoder(workdir, step=5)
    cases = [
        (
            dict(layer="block9"),
            r"unknown layer 'block9'; the encoder sows \['block1', 'block2', 'pooled'\]",
        ),
        (dict(batch_size=0), r"batch_size must be a positive int, got 0"),
        (dict(grid=1.5), r"grid must be a positive int, got 1.5"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            encoder.embed(images, **kwargs)
    with pytest.raises(ValueError, match=r"got dtype int64"):
        encoder.embed(images.astype(np.int64))
    with pytest.raises(ValueError, match=r"float images must have finite values in \[0, 1\]"):
        encoder.embed(images.astype(np.float32))  # 0..255 as floats
    with pytest.raises(ValueError, match=r"got \(28, 28\)$"):
        encoder.embed(images[0, ..., 0])  # one image without its batch axis
    with pytest.raises(ValueError, match=r"cannot convert images with 5 channels to 1"):
        encoder.embed(np.zeros((2, 28, 28, 5), np.uint8))


def copy_tree(src, dst) -> None:
    """Every file under local ``src`` written under ``dst`` (any epath filesystem)."""
    from etils import epath

    for path in pathlib.Path(src).rglob("*"):
        if path.is_file():
            target = epath.Path(dst) / str(path.relative_to(src))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())


@pytest.mark.usefixtures("gcs")
def test_workdir_on_gcs(workdir, encoder, images):
    copy_tree(workdir, gs("encoder_run"))
    remote = ssljax.load_encoder(gs("encoder_run"))
    assert remote.step == encoder.step and remote.layers == encoder.layers
    np.testing.assert_array_equal(remote.embed(images), encoder.embed(images))
    with pytest.raises(ValueError, match=r"^no checkpoint in gs://ssljax-test/nothing"):
        ssljax.load_encoder(gs("nothing"))
