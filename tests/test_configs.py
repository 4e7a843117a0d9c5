"""Every shipped config validates, builds its model and reads its dataset (mock data)."""

import glob
import importlib
import os

import jax
import jax.numpy as jnp
import pytest
import tensorflow_datasets as tfds

from ssljax.data.augment import make_views
from ssljax.data.datasets import get_dataset_spec
from ssljax.data.input_pipeline import train_iterator
from ssljax.training.loop import abstract_state, build_setup, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.splitext(os.path.basename(p))[0]
    for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
    if not os.path.basename(p).startswith(("_", "common", "methods"))
)


def test_config_names_follow_objective_dataset():
    assert "simclr_fashion_mnist" in CONFIGS
    for name in CONFIGS:
        c = importlib.import_module(f"configs.{name}").get_config()
        assert name == f"{c.objective.name}_{c.dataset.name}"


# Split sizes the configs are written for. Validation reads a split's size only where a
# config needs it (a prefilled memory bank); the published size stands in for the data,
# which tests do not prepare (a session may have installed the tiny generated split).
SPLIT_SIZES = {("fashion_mnist", "train"): 60_000}


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds(name, monkeypatch):
    """Validates, builds the model and the state, and traces views -> model (shapes only)."""
    from ssljax.data import input_pipeline

    monkeypatch.setattr(input_pipeline, "num_examples",
                        lambda dataset, split, data_dir=None: SPLIT_SIZES[(dataset, split)])
    module = importlib.import_module(f"configs.{name}")
    assert "Launch:" in module.__doc__ and "python -m ssljax.train" in module.__doc__
    config = module.get_config()
    validate_config(config)
    setup = build_setup(config)
    state = abstract_state(config, setup)
    assert int(state.step.size) == 1
    spec = get_dataset_spec(config.dataset.name)
    images = jax.ShapeDtypeStruct((2,) + tuple(spec.train_image_shape), jnp.uint8)
    views = jax.eval_shape(
        lambda r, x: setup.objective.make_views(r, x, config), jax.random.PRNGKey(0), images)
    out = jax.eval_shape(
        lambda s, v: setup.eval_model.apply({"params": s.params, **s.model_state}, v,
                                            train=False),
        state, views[0])
    assert out["features"].shape[0] == views[0].shape[0]
    if "projection" in out:
        assert out["projection"].shape == (views[0].shape[0], config.model.projector.output_dim)


DATASETS = sorted({importlib.import_module(f"configs.{n}").get_config().dataset.name
                   for n in CONFIGS})


@pytest.mark.parametrize("dataset", DATASETS)
def test_configs_dataset_reads_and_augments(dataset, tmp_path):
    """Once per dataset: mocked TFDS batches and on-device views of the configured size."""
    name = f"simclr_{dataset}"
    if name not in CONFIGS:  # datasets without a SimCLR config (dSprites): their first config
        name = next(n for n in CONFIGS
                    if importlib.import_module(f"configs.{n}").get_config().dataset.name == dataset)
    config = importlib.import_module(f"configs.{name}").get_config()
    spec = get_dataset_spec(dataset)
    with tfds.testing.mock_data(num_examples=32):
        batch = next(train_iterator(dataset, global_batch_size=16, seed=0,
                                    data_dir=str(tmp_path)))
    assert batch["image"].shape[2:] == tuple(spec.train_image_shape)
    views = jax.jit(lambda r, x: make_views(r, x, config.augment, 2))(
        jax.random.PRNGKey(0), batch["image"][0])
    size = config.augment.get("output_size") or spec.train_image_shape[:2]
    assert views[0].shape == (2, *size, spec.image_shape[-1])
