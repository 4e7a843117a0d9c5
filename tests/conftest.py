"""Test set-up: eight host CPU devices, so multi-device code runs on any machine."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Tests never prepare data in the user's ~/tensorflow_datasets (a generated split there
# would stand in for the real one in later runs): TFDS's default data_dir is a temporary
# folder for the session and for the processes the tests start.
if "TFDS_DATA_DIR" not in os.environ:
    import tempfile

    os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp(prefix="ssljax_tests_tfds_")
# One persistent XLA compilation cache for the session, its xdist workers and the processes
# the tests start: the many tiny runs compile the same steps. (Programs that compile in under
# a second, JAX's default threshold, are not cached.)
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="ssljax_tests_xla_")

# The linear evaluation's per-machine baseline cache lives in a folder of the session, never
# in the user's ~/.cache.
if "SSLJAX_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["SSLJAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="ssljax_tests_baselines_")

import gzip  # noqa: E402
import struct  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Tiny generated Fashion-MNIST: class c is a bright bar at rows 2c..2c+4 plus noise, so a
# linear probe can learn it and the real input path (idx files -> TFDS builder) is exercised.
TINY_TRAIN, TINY_TEST = 96, 40


def write_idx_gz(path, array: np.ndarray) -> None:
    """Writes ``array`` (uint8) in the idx format Fashion-MNIST ships, gzip-compressed."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
        ">" + "I" * array.ndim, *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def tiny_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 * c + 2 : 2 * c + 6, 4:24] = 220
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_fashion_mnist(tmp_path_factory):
    """A directory of generated Fashion-MNIST idx files, installed as the data source.

    Sets SSLJAX_FASHION_MNIST_DIR for the session and returns a TFDS data_dir to use.
    """
    src = tmp_path_factory.mktemp("fmnist_src")
    for prefix, n, seed in (("train", TINY_TRAIN, 0), ("t10k", TINY_TEST, 1)):
        images, labels = tiny_images(n, seed)
        write_idx_gz(src / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_gz(src / f"{prefix}-labels-idx1-ubyte.gz", labels)
    os.environ["SSLJAX_FASHION_MNIST_DIR"] = str(src)
    return str(tmp_path_factory.mktemp("tfds_data"))


def tiny_config(data_dir: str | None = None):
    """The default Fashion-MNIST SimCLR config shrunk to compile and run in seconds."""
    from ssljax import config_base

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    c = config_base.load_config(os.path.join(root, "configs", "simclr.py") + ":fashion_mnist")
    # The LARS recipe the stored test runs (tests/data/old_workdirs) were made with; the demo
    # itself now trains with SGD (configs/simclr.py), which test_end_to_end runs.
    c.objective.temperature = 0.1
    c.optimizer.name = "lars"
    c.optimizer.base_learning_rate = 0.075
    c.optimizer.lr_scaling = "sqrt"
    c.optimizer.weight_decay = 1e-6
    c.augment.crop_scale = (0.2, 1.0)
    c.augment.color_jitter_strength = 0.5
    # Views at the data's own size, as the stored test runs were made (the demo trains on
    # 12x12 views of its 28x28 images).
    c.augment.output_size = None
    c.batch_size = 16
    c.total_steps = 6
    c.dataset.data_dir = data_dir
    c.model.encoder_kwargs.widths = (8, 16)
    c.model.encoder_kwargs.strides = (1, 2)
    c.model.projector.hidden_dims = (16,)
    c.model.projector.output_dim = 8
    c.optimizer.warmup_steps = 2
    c.log_every_steps = 2
    c.checkpoint_every_steps = 4
    c.eval.layer = "pooled"  # the two-layer test encoder has no block4
    c.eval.grid = 1
    c.eval.batch_size = 32
    c.eval.l2_grid = (1e-4, 1e-2)
    c.eval.knn_k = 5
    return c


@pytest.fixture(scope="session")
def make_tiny_config():
    return tiny_config


def identity_augment(config):
    """Augmentations that change nothing, so views do not depend on the device's key."""
    config.augment.crop_scale = (1.0, 1.0)
    config.augment.crop_ratio = (1.0, 1.0)
    config.augment.flip = False
    config.augment.color_jitter_strength = 0.0
    config.augment.grayscale_prob = 0.0
    config.augment.blur_prob = 0.0
    return config


@pytest.fixture(scope="session")
def make_identity_config():
    """The tiny config with identity augmentations (device-count equality tests)."""
    return lambda: identity_augment(tiny_config())


@pytest.fixture(scope="session")
def tiny_pretrained_workdir(tiny_fashion_mnist, tmp_path_factory):
    """A completed tiny pretraining run (``tiny_config``, no kNN monitor), shared by the
    tests that only read a checkpoint. Tests that write into a workdir copy it first."""
    from ssljax.training.loop import train_and_evaluate

    workdir = str(tmp_path_factory.mktemp("tiny_pretrained") / "run")
    config = tiny_config(tiny_fashion_mnist)
    config.eval_every_steps = 0
    train_and_evaluate(config, workdir, progress=False)
    return workdir
