"""Notebook imports stay light: objectives, views, models and the dataset registry import
neither TensorFlow nor TFDS (only the host input pipeline does)."""

import json
import subprocess
import sys

HEAVY = ("tensorflow", "tensorflow_datasets")
LIGHT = (
    "ssljax",
    "ssljax.encoder",
    "ssljax.evaluation.adapt",
    "ssljax.objectives",
    "ssljax.views.augment",
    "ssljax.views.corruptions",
    "ssljax.views.pretext",
    "ssljax.models",
    "ssljax.data.datasets",
    "ssljax.energy",
)


def loaded_after_each_import(modules) -> list[tuple[str, list[str]]]:
    """``[(module, heavy modules loaded so far)]``, importing ``modules`` in order in a fresh
    interpreter (the first module that pulls TensorFlow in is the one named)."""
    code = (
        "import importlib, json, sys\n"
        "out = []\n"
        f"for m in {list(modules)!r}:\n"
        "    importlib.import_module(m)\n"
        f"    out.append((m, [h for h in {HEAVY!r} if h in sys.modules]))\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [tuple(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]


def test_light_modules_do_not_load_tensorflow_and_the_pipeline_does():
    """Each light module, imported in turn, leaves TensorFlow and TFDS unloaded; the input
    pipeline, imported last, loads them (so the check can fail)."""
    *light, (pipeline, heavy) = loaded_after_each_import([*LIGHT, "ssljax.data.input_pipeline"])
    for module, loaded in light:
        assert loaded == [], f"importing {module} loaded {loaded}"
    assert pipeline == "ssljax.data.input_pipeline" and "tensorflow" in heavy
