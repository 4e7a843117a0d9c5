"""Notebook imports stay light: objectives, views, models and the dataset registry import
neither TensorFlow nor TFDS (only the host input pipeline does)."""

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "tensorflow_datasets")


@pytest.mark.parametrize(
    "module",
    [
        "ssljax.objectives",
        "ssljax.views.augment",
        "ssljax.views.corruptions",
        "ssljax.views.pretext",
        "ssljax.models",
        "ssljax.data.datasets",
    ],
)
def test_import_does_not_load_tensorflow(module):
    code = (
        f"import sys, {module}\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"


def test_the_input_pipeline_does_load_tensorflow():
    """The check above can fail: the pipeline module is where TensorFlow comes in."""
    code = "import sys, ssljax.data.input_pipeline; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
