"""The config files: one per method (``configs/<method>.py:<dataset>``), each loads for every
dataset it names, means exactly what the per-dataset files before it meant, validates, builds
its model and reads its dataset (mock data)."""

import ast
import dataclasses
import glob
import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
import tensorflow_datasets as tfds

from ssljax import config_base
from ssljax.config_base import EVAL_EVERY_STEPS
from ssljax.evaluation.checkpoint_eval import EVAL_DEFAULTS
from ssljax.training.checkpoint import LATER_DEFAULTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(ROOT, "configs")

METHODS = [
    "simclr",
    "moco",
    "byol",
    "simsiam",
    "instance_discrimination",
    "binary_contrastive",
    "align_maxent",
    "barlow_twins",
    "vicreg",
    "cpc",
    "dim",
    "rotation",
    "jigsaw",
    "relative_patch_location",
    "inpainting",
    "colorization",
    "denoising_autoencoder",
    "autoencoder",
    "vae",
    "beta_vae",
    "factor_vae",
    "beta_tcvae",
    "pixel_autoregressive",
    "pixel_masked",
    "skip_gram",
    "cbow",
    "bigan",
    "energy",
]
# Methods added after the redesign: configs_before_redesign.json has no entry for them.
ADDED_METHODS = {"pixel_autoregressive", "pixel_masked", "skip_gram", "cbow", "bigan", "energy"}
# Methods that train on text corpora (tests/training/test_text_training.py builds them).
TEXT_METHODS = {"skip_gram", "cbow"}


def config_path(method: str) -> str:
    return os.path.join(CONFIG_DIR, f"{method}.py")


def config_module(method: str):
    spec = importlib.util.spec_from_file_location(f"test_config_{method}", config_path(method))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DATASETS = {m: tuple(config_module(m).DATASETS) for m in METHODS}
SPECS = [(m, d) for m in METHODS for d in DATASETS[m]]
IMAGE_SPECS = [(m, d) for m, d in SPECS if m not in TEXT_METHODS]


def load(method: str, dataset: str | None = None):
    spec = config_path(method) if dataset is None else f"{config_path(method)}:{dataset}"
    return config_base.load_config(spec)


# ---------------------------------------------------------------------------------------------
# Files, defaults, arguments.


def test_one_file_per_method_and_nothing_else():
    files = sorted(
        os.path.basename(p)
        for p in glob.glob(os.path.join(CONFIG_DIR, "*"))
        if os.path.basename(p) != "__pycache__"
    )
    assert files == sorted(f"{m}.py" for m in METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_default_and_every_dataset_load(method):
    module = config_module(method)
    default = module.get_config()
    assert default.dataset.name in DATASETS[method]
    assert default.to_dict() == load(method, default.dataset.name).to_dict()
    assert load(method).to_dict() == default.to_dict()  # no ':arg': the default
    for dataset in DATASETS[method]:
        c = load(method, dataset)
        assert c.dataset.name == dataset
        assert c.objective.name == method
        # The module docstring keeps each dataset's launch command in the new form.
        assert f"--config configs/{method}.py:{dataset} --workdir" in module.__doc__


@pytest.mark.parametrize("method", METHODS)
def test_bad_dataset_is_one_line_naming_the_choices(method):
    with pytest.raises(ValueError) as err:
        load(method, "nope")
    message = str(err.value)
    assert "\n" not in message and "'nope'" in message
    for dataset in DATASETS[method]:
        assert dataset in message


def test_load_config_errors_are_one_line(tmp_path):
    for spec, match in [
        (str(tmp_path / "missing.py"), "not found"),
        (str(tmp_path / "missing.py:cifar10"), "not found"),
    ]:
        with pytest.raises(ValueError, match=match) as err:
            config_base.load_config(spec)
        assert "\n" not in str(err.value)
    no_arg = tmp_path / "no_arg.py"
    no_arg.write_text(
        "import ml_collections\n\ndef get_config():\n"
        "    return ml_collections.ConfigDict(dict(a=1))\n"
    )
    assert config_base.load_config(str(no_arg)).a == 1
    with pytest.raises(ValueError, match="get_config") as err:
        config_base.load_config(f"{no_arg}:x")
    assert "\n" not in str(err.value)
    (tmp_path / "empty.py").write_text("")
    with pytest.raises(ValueError, match="no get_config"):
        config_base.load_config(str(tmp_path / "empty.py"))


def test_relative_spec_is_read_from_the_current_directory(monkeypatch):
    monkeypatch.chdir(ROOT)
    c = config_base.load_config("configs/simclr.py:fashion_mnist")
    assert c.to_dict() == load("simclr", "fashion_mnist").to_dict()
    assert config_base.split_spec("gs://bucket/configs/byol.py:cifar10") == (
        "gs://bucket/configs/byol.py",
        "cifar10",
    )
    assert config_base.split_spec("configs/byol.py") == ("configs/byol.py", None)


@pytest.mark.parametrize("method", METHODS)
def test_configs_import_only_ssljax_and_ml_collections(method):
    tree = ast.parse(open(config_path(method)).read())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: config files are loaded by path"
            roots.add(node.module.split(".")[0])
    assert roots <= {"ml_collections", "ssljax"}, roots


def test_configs_is_not_an_installed_package(tmp_path):
    """``configs`` is a folder of files loaded by path, not a top-level package that could
    shadow a user's own ``configs`` module."""
    assert not os.path.exists(os.path.join(CONFIG_DIR, "__init__.py"))
    setup = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    includes = [
        elt.value
        for node in ast.walk(setup)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "find_packages"
        for kw in node.keywords
        if kw.arg == "include"
        for elt in kw.value.elts
    ]
    assert includes and not any(i == "configs" or i.startswith("configs.") for i in includes)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('configs'))"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == "None", proc.stdout


# ---------------------------------------------------------------------------------------------
# Nothing changed meaning: every config before the redesign, fully resolved, against the new
# file with its dataset argument.

with open(os.path.join(ROOT, "tests", "data", "configs_before_redesign.json")) as f:
    BEFORE = json.load(f)


def new_spec(old_name: str) -> tuple[str, str]:
    """``byol_cifar10`` -> ``('byol', 'cifar10')``."""
    if old_name == "denoising_ae_dsprites":  # merged into the denoising autoencoder's file
        return "denoising_autoencoder", "dsprites"
    method = max((m for m in METHODS if old_name.startswith(m + "_")), key=len)
    return method, old_name[len(method) + 1 :]


# Intended differences, each with its reason.
# - The dSprites denoising autoencoder was the 'denoising_ae' objective; it is now the
#   'denoising_autoencoder' objective (one objective for both, its keys kept).
RENAMED_OBJECTIVES = {"denoising_ae_dsprites": ("denoising_ae", "denoising_autoencoder")}
# - These methods' old configs inherited objective.temperature from the SimCLR config they
#   were built on; none of these objectives reads it, so the new files do not state it.
STALE_OBJECTIVE_KEYS = {
    old: {"temperature"}
    for old in BEFORE
    if new_spec(old)[0] in ("byol", "simsiam", "align_maxent", "barlow_twins", "vicreg")
}
# - Colorization's objective.loss is objective.ab_loss: a field named 'loss' would hide the
#   objective's loss method.
RENAMED_OBJECTIVE_KEYS = {"colorization_cifar10": {"loss": "ab_loss"}}
# - The merged denoising objective has the hyperparameters of both former objectives, each at
#   its default where the variant does not read it: the feature-map variant's pixel weights
#   and input augmentation for dSprites, the latent-code variant's likelihood for the others.
NEW_OBJECTIVE_KEYS = {
    "denoising_ae_dsprites": {"augment", "corrupted_weight", "clean_weight"},
    "denoising_autoencoder_cifar10": {"likelihood", "gaussian_std"},
    "denoising_autoencoder_fashion_mnist": {"likelihood", "gaussian_std"},
}

# - The demo trains with the recipe of lightly's SimCLR tutorial since it beat the LARS recipe
#   at equal steps (0.9000 against 0.8928 at 800 steps), on views of 12x12 pixels since
#   they cost a third and scored higher (docs/demo_tuning.md): these keys of
#   configs/simclr.py:fashion_mnist changed on purpose, to exactly these values.
RETUNED = {
    "simclr_fashion_mnist": {
        "total_steps": 800,
        "optimizer.name": "sgd",
        "optimizer.base_learning_rate": 0.06,
        "optimizer.lr_scaling": "none",
        "optimizer.weight_decay": 5e-4,
        "optimizer.warmup_steps": 0,
        "augment.crop_scale": [0.08, 1.0],
        "augment.color_jitter_strength": 1.0,
        "objective.temperature": 0.5,
        # 12x12 views: a third of the step's cost and a higher probe (0.9088 against 0.9001
        # at 800 steps on one machine; docs/demo_tuning.md).
        "augment.output_size": [12, 12],
    }
}

# Keys added after these configs were recorded, with the value every config file has.
ADDED_KEYS = {
    **{k: v for k, v in LATER_DEFAULTS.items() if k.startswith(("dataset.", "augment."))},
    "eval_every_steps": EVAL_EVERY_STEPS,
    **{f"eval.{k}": v for k, v in EVAL_DEFAULTS.items() if k.startswith("monitor_")},
}


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def as_json(x):
    """Tuples -> lists, as the stored configs were written."""
    return json.loads(json.dumps(x))


def test_new_files_cover_exactly_the_old_configs():
    old_specs = [s for s in SPECS if s[0] not in ADDED_METHODS]
    assert sorted(new_spec(old) for old in BEFORE) == sorted(old_specs)


@pytest.mark.parametrize("old_name", sorted(BEFORE))
def test_same_config_as_before_except_objective(old_name):
    before = flatten({k: v for k, v in BEFORE[old_name].items() if k != "objective"})
    for key, value in RETUNED.get(old_name, {}).items():
        if not key.startswith("objective."):
            assert key in before, key
            before[key] = value
    c = as_json(load(*new_spec(old_name)).to_dict())
    now = flatten({k: v for k, v in c.items() if k != "objective"})
    # Keys added since, at the value an old stored config is read with.
    for key in [k for k in now if k not in before and k in ADDED_KEYS]:
        assert now.pop(key) == ADDED_KEYS[key], key
    missing, extra = sorted(set(before) - set(now)), sorted(set(now) - set(before))
    assert not missing and not extra, (missing, extra)
    changed = {k: (before[k], now[k]) for k in before if before[k] != now[k]}
    assert not changed, changed


@pytest.mark.parametrize("old_name", sorted(BEFORE))
def test_same_objective_as_before(old_name):
    """The new file's objective keys filled with the objective class's defaults give the old
    file's objective: the keys a file leaves out are exactly the class defaults."""
    from ssljax import objectives

    c = load(*new_spec(old_name))
    cls = objectives.get(c.objective.name)
    filled = as_json(
        dict(name=c.objective.name, **dataclasses.asdict(cls.from_config(c.objective)))
    )
    before = dict(BEFORE[old_name]["objective"])
    for key, value in RETUNED.get(old_name, {}).items():
        if key.startswith("objective."):
            before[key.split(".", 1)[1]] = value
    if old_name in RENAMED_OBJECTIVES:
        old, new = RENAMED_OBJECTIVES[old_name]
        assert before["name"] == old and filled["name"] == new
        before["name"] = new
    for key in STALE_OBJECTIVE_KEYS.get(old_name, ()):
        del before[key]
    for old, new in RENAMED_OBJECTIVE_KEYS.get(old_name, {}).items():
        before[new] = before.pop(old)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for key in NEW_OBJECTIVE_KEYS.get(old_name, ()):
        if key in filled:  # a new key is at its default: the old config could not set it
            assert filled.pop(key) == as_json(defaults[key]), key
    assert sorted(filled) == sorted(before)
    changed = {k: (before[k], filled[k]) for k in before if before[k] != filled[k]}
    assert not changed, changed


# Settings a config always states, default or not: they were required arguments of the
# method settings before the redesign and depend on the dataset (bank size, patch geometry).
ALWAYS_STATED = {
    "instance_discrimination": {"memory_size"},
    "cpc": {"prediction_steps", "patch_flip_prob", "patch_color_drop_prob"},
    "jigsaw": {"tile_size", "gap", "jitter"},
    "relative_patch_location": {"patch_size", "gap", "jitter"},
}


@pytest.mark.parametrize("old_name", sorted(BEFORE))
def test_config_objective_lists_every_hyperparameter_from_its_class(old_name):
    """``config_base.objective`` fills every hyperparameter from the class (the one place
    defaults live), so ``config.json`` shows them all and any key can be overridden on the
    command line; the file's own settings stay stated beside them."""
    from ssljax import objectives

    c = load(*new_spec(old_name))
    cls = objectives.get(c.objective.name)
    assert set(c.objective.keys()) == {"name", *cls.hyperparameter_names()}
    assert as_json(c.objective.to_dict()) == as_json(objectives.resolved(c.objective))


def test_a_defaulted_objective_key_is_overridable_like_any_other():
    c = load("rotation", "fashion_mnist")
    c.objective.pad_crop = 2  # a default the file does not state
    assert c.objective.pad_crop == 2


# ---------------------------------------------------------------------------------------------
# Every config validates, builds its model and state, and reads its dataset.

# Split sizes the configs are written for. Validation reads a split's size only where a
# config needs it (a prefilled memory bank); the published size stands in for the data,
# which tests do not prepare (a session may have installed the tiny generated split).
SPLIT_SIZES = {("fashion_mnist", "train"): 60_000}


@pytest.mark.parametrize("method,dataset", IMAGE_SPECS)
def test_config_builds(method, dataset, monkeypatch):
    """Validates, builds the model and the state, and traces views -> model (shapes only)."""
    from ssljax.data import input_pipeline
    from ssljax.data.datasets import get_dataset_spec
    from ssljax.training.loop import abstract_state, build_setup, validate_config

    monkeypatch.setattr(
        input_pipeline,
        "num_examples",
        lambda dataset, split, data_dir=None: SPLIT_SIZES[(dataset, split)],
    )
    config = load(method, dataset)
    validate_config(config)
    setup = build_setup(config)
    state = abstract_state(config, setup)
    assert int(state.step.size) == 1
    spec = get_dataset_spec(config.dataset.name)
    images = jax.ShapeDtypeStruct((2,) + tuple(spec.train_image_shape), jnp.uint8)
    views = jax.eval_shape(
        lambda r, x: setup.objective.make_views(r, x, setup.run), jax.random.PRNGKey(0), images
    )
    out = jax.eval_shape(
        lambda s, v: setup.eval_model.apply({"params": s.params, **s.model_state}, v, train=False),
        state,
        views[0],
    )
    assert out["features"].shape[0] == views[0].shape[0]
    if "projection" in out:
        assert out["projection"].shape == (views[0].shape[0], config.model.projector.output_dim)


ALL_DATASETS = sorted({d for _, d in IMAGE_SPECS})


@pytest.mark.parametrize("dataset", ALL_DATASETS)
def test_configs_dataset_reads_and_augments(dataset, tmp_path):
    """Once per dataset: mocked TFDS batches and on-device views of the configured size."""
    from ssljax.data.datasets import get_dataset_spec
    from ssljax.data.input_pipeline import train_iterator
    from ssljax.views.augment import make_views

    # SimCLR's config where it has one; otherwise (dSprites) the first method that reads it.
    method = (
        "simclr" if dataset in DATASETS["simclr"] else next(m for m, d in SPECS if d == dataset)
    )
    config = load(method, dataset)
    spec = get_dataset_spec(dataset)
    with tfds.testing.mock_data(num_examples=32):
        batch = next(train_iterator(dataset, global_batch_size=16, seed=0, data_dir=str(tmp_path)))
    assert batch["image"].shape[2:] == tuple(spec.train_image_shape)
    views = jax.jit(lambda r, x: make_views(r, x, config.augment, 2))(
        jax.random.PRNGKey(0), batch["image"][0]
    )
    size = config.augment.get("output_size") or spec.train_image_shape[:2]
    assert views[0].shape == (2, *size, spec.image_shape[-1])
