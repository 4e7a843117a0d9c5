"""Writes ``quickstart.ipynb`` (nbformat 4, outputs cleared) from the cells below.

  python experiments/notebooks/make_quickstart.py

Edit the cells here and rerun; ``tests/test_notebook.py`` checks that the notebook on disk is
this script's output and runs its code cells, in order, at a tiny size.
"""

from __future__ import annotations

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK = os.path.join(HERE, "quickstart.ipynb")

CELLS = [
    (
        "markdown",
        """# ssljax quickstart

Three ways into the library, from the smallest piece to a whole run:

1. **A loss is a function of arrays**: SimCLR's NT-Xent (Chen et al. 2020) on random embeddings.
2. **The train step is a function of a state and a batch**: a few SimCLR steps on Fashion-MNIST,
   driven by hand on every device.
3. **A run, then its encoder as a Python object**: `train_and_evaluate` into a temporary
   workdir, `ssljax.load_encoder(workdir)`, embeddings of test images and a kNN classifier.

Run it from a source checkout (it reads `configs/simclr.py`). Sizes come from environment
variables: `SSLJAX_QUICKSTART_STEPS` (pretraining steps, default 300: a few minutes on a
2-core CPU), `SSLJAX_QUICKSTART_TINY=1` (a two-layer ConvNet and batches of 16: seconds), and
`SSLJAX_QUICKSTART_KNN_TRAIN` (labelled train images the kNN searches, default 10000).""",
    ),
    (
        "code",
        """import os
import tempfile

import jax
import numpy as np

import ssljax
from ssljax import config_base

STEPS = int(os.environ.get("SSLJAX_QUICKSTART_STEPS", "300"))
TINY = os.environ.get("SSLJAX_QUICKSTART_TINY", "0") == "1"
NUM_KNN_TRAIN = int(os.environ.get("SSLJAX_QUICKSTART_KNN_TRAIN", "10000"))
CONFIGS = os.path.join(os.path.dirname(os.path.dirname(ssljax.__file__)), "configs")


def make_config():
    \"\"\"SimCLR on Fashion-MNIST (the `make demo` config), shortened to STEPS steps.\"\"\"
    config = config_base.load_config(os.path.join(CONFIGS, "simclr.py") + ":fashion_mnist")
    config.total_steps = STEPS
    config.log_every_steps = max(1, min(50, STEPS))
    config.checkpoint_every_steps = STEPS
    if TINY:
        config.batch_size = 16
        config.model.encoder_kwargs.widths = (8, 16)
        config.model.encoder_kwargs.strides = (1, 2)
        config.model.projector.hidden_dims = (16,)
        config.model.projector.output_dim = 8
        config.optimizer.warmup_steps = 1
        config.eval.layer, config.eval.grid = "pooled", 1
    return config


print(f"{jax.device_count()} {jax.devices()[0].platform} device(s); {STEPS} steps; tiny={TINY}")""",
    ),
    (
        "markdown",
        """## 1. A loss is a function of arrays

`simclr_loss(z1, z2, temperature=...)` takes two `[n, d]` batches of embeddings whose rows `i`
are two views of the same example. With matching rows the positives are the most similar
pairs and the loss is low; shuffling one view breaks the pairs and the loss rises (above
`log(2n - 1)`, the loss of a model that cannot tell the positive from the `2n - 2` negatives:
the true partner of each anchor is now among its negatives).""",
    ),
    (
        "code",
        """from ssljax.objectives import simclr_loss

key1, key2, key3 = jax.random.split(jax.random.PRNGKey(0), 3)
n, d, temperature = 128, 32, 0.1
z1 = jax.random.normal(key1, (n, d))
z2 = z1 + 0.1 * jax.random.normal(key2, (n, d))  # a second "view": a small perturbation
z2_shuffled = z2[jax.random.permutation(key3, n)]  # positives no longer match

# Pure functions of arrays: jit and grad apply as they are.
loss = jax.jit(simclr_loss, static_argnames="temperature")
loss_grad = jax.jit(jax.grad(simclr_loss), static_argnames="temperature")
matched = float(loss(z1, z2, temperature=temperature))
shuffled = float(loss(z1, z2_shuffled, temperature=temperature))
grad_norm = float(jax.numpy.linalg.norm(loss_grad(z1, z2, temperature=temperature)))
print(f"NT-Xent, matched views:  {matched:.4f}")
print(f"NT-Xent, shuffled views: {shuffled:.4f}  (log(2n - 1) = {np.log(2 * n - 1):.4f})")
print(f"|d loss / d z1| = {grad_norm:.4f}")
assert matched < shuffled""",
    ),
    (
        "markdown",
        """## 2. The train step is a function of a state and a batch

`build_setup` turns a config into the objective, the models and the optimizer (no data read);
`initial_state` is the step-0 train state. `make_train_step` is written per device, with
`pmean` over the `'batch'` axis; `shard_map_driver` runs it on every device (a 1-D mesh), and
`pmap_driver` would run the very same function under `jax.pmap`. The batches come from the
host input pipeline: `[local_devices, per_device, 28, 28, 1]` uint8 images.""",
    ),
    (
        "code",
        """from ssljax import parallel
from ssljax.data.input_pipeline import train_iterator
from ssljax.training.loop import build_setup, initial_state
from ssljax.training.step import make_train_step, shard_map_driver

config = make_config()
setup = build_setup(config)
mesh = parallel.make_mesh()  # axis 'batch' over every device
state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
train_step = shard_map_driver(
    make_train_step(
        objective=setup.objective,
        model=setup.train_model,
        tx=setup.tx,
        config=config,
        run=setup.run,
        schedule=setup.schedule,
    ),
    mesh,
)
batches = train_iterator(
    config.dataset.name,
    global_batch_size=config.batch_size,
    seed=config.seed,
    data_dir=config.dataset.get("data_dir"),
)
for _ in range(3):
    state, metrics = train_step(state, parallel.batch_to_global(next(batches), mesh))
    print(f"step {int(state.step)}: loss {float(metrics['loss']):.4f}")""",
    ),
    (
        "markdown",
        """## 3. A run, then its encoder as a Python object

`train_and_evaluate(config, workdir)` is what `python -m ssljax.train` runs: it writes
checkpoints and the config into `workdir`. `ssljax.load_encoder(workdir)` reads them back;
`encoder.embed(images)` gives frozen features of any layer (`encoder.layers`), on every
device, exactly as `python -m ssljax.linear_eval` extracts them.""",
    ),
    (
        "code",
        """from ssljax.training.loop import train_and_evaluate

workdir = os.path.join(tempfile.mkdtemp(prefix="ssljax_quickstart_"), "run")
result = train_and_evaluate(make_config(), workdir, progress=not TINY)
print(f"pretraining {result['status']} at step {result['step']} in {result['seconds']:.0f} s")

encoder = ssljax.load_encoder(workdir)
print(encoder)
print("layers:", encoder.layers)""",
    ),
    (
        "code",
        """from ssljax.data.datasets import get_dataset_spec
from ssljax.data.input_pipeline import load_split_arrays
from ssljax.evaluation import knn_evaluate

spec = get_dataset_spec(encoder.config.dataset.name)
data_dir = encoder.config.dataset.get("data_dir")
train_images, train_labels = load_split_arrays(
    spec, spec.train_split, data_dir=data_dir, max_examples=NUM_KNN_TRAIN
)
test_images, test_labels = load_split_arrays(spec, spec.test_split, data_dir=data_dir)
layer, grid = encoder.config.eval.layer, encoder.config.eval.grid
train_x = encoder.embed(train_images, layer=layer, grid=grid)
test_x = encoder.embed(test_images, layer=layer, grid=grid)
print(f"features ({layer}, grid {grid}): train {train_x.shape}, test {test_x.shape}")

k = min(20, len(train_x))
knn = knn_evaluate(train_x, train_labels, test_x, test_labels, num_classes=spec.num_classes, k=k)
pixels = knn_evaluate(
    train_images.reshape(len(train_images), -1).astype(np.float32),
    train_labels,
    test_images.reshape(len(test_images), -1).astype(np.float32),
    test_labels,
    num_classes=spec.num_classes,
    k=k,
)
print(f"kNN top-1 (k={k}): encoder {knn['top1']:.4f}, raw pixels {pixels['top1']:.4f}")""",
    ),
    (
        "markdown",
        """`embed` takes images of any size and channel count, `uint8` or float in `[0, 1]`, and
adapts them to `encoder.image_shape` (`ssljax.evaluation.adapt.adapt_images`: alpha dropped,
grey <-> RGB, the shorter side scaled to fit with area averaging, a centre crop). Test images
blown up to 56x56 RGB come back to the originals, and so do their embeddings.""",
    ),
    (
        "code",
        """big_rgb = np.repeat(np.repeat(np.repeat(test_images[:8], 2, axis=1), 2, axis=2), 3, axis=-1)
print("input", big_rgb.shape, "->", encoder.image_shape)
same = encoder.embed(big_rgb / 255.0, layer=layer, grid=grid)
print("56x56 RGB copies embed like the originals:", bool(np.allclose(same, test_x[:8], atol=1e-5)))""",
    ),
]


def code_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def notebook() -> dict:
    cells = []
    for kind, text in CELLS:
        cell = {"cell_type": kind, "metadata": {}, "source": code_lines(text)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 4,
    }


def render() -> str:
    return json.dumps(notebook(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    with open(NOTEBOOK, "w") as f:
        f.write(render())
    print(f"wrote {NOTEBOOK}")
