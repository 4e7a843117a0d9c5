"""experiments/notebooks/quickstart.ipynb runs end to end at a tiny size.

Jupyter is not a dependency: the notebook's code cells are joined, in order, into one script
run by a fresh interpreter (what "Restart and run all" does), and its printed lines are
checked.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, "experiments", "notebooks")
NOTEBOOK = os.path.join(NOTEBOOK_DIR, "quickstart.ipynb")


def load_notebook() -> dict:
    with open(NOTEBOOK) as f:
        return json.load(f)


def test_notebook_is_generated_and_has_no_outputs():
    spec = importlib.util.spec_from_file_location(
        "make_quickstart", os.path.join(NOTEBOOK_DIR, "make_quickstart.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(NOTEBOOK) as f:
        assert f.read() == module.render(), "rerun experiments/notebooks/make_quickstart.py"
    nb = load_notebook()
    assert nb["nbformat"] == 4
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_notebook_runs_at_a_tiny_size(tiny_fashion_mnist, tmp_path):
    cells = [c for c in load_notebook()["cells"] if c["cell_type"] == "code"]
    script = "\n\n".join("".join(c["source"]) for c in cells)
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        SSLJAX_NO_DOWNLOAD="1",
        TFDS_DATA_DIR=tiny_fashion_mnist,  # the generated Fashion-MNIST, prepared once
        SSLJAX_QUICKSTART_STEPS="2",
        SSLJAX_QUICKSTART_TINY="1",
        SSLJAX_QUICKSTART_KNN_TRAIN="96",
        TMPDIR=str(tmp_path),  # the notebook's temporary workdir
        # Part 2 and part 3 compile the same train step; the second compile is read back.
        JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    matched = float(re.search(r"NT-Xent, matched views: +([\d.]+)", out).group(1))
    shuffled = float(re.search(r"NT-Xent, shuffled views: +([\d.]+)", out).group(1))
    assert matched < shuffled
    assert re.search(r"^step 3: loss [\d.]+$", out, re.M), out
    assert "pretraining completed at step 2" in out
    assert "layers: ('block1', 'block2', 'pooled')" in out
    assert "features (pooled, grid 1): train (96, 16), test (40, 16)" in out
    top1 = re.search(r"kNN top-1 \(k=20\): encoder ([\d.]+), raw pixels ([\d.]+)", out)
    assert top1 and all(0.0 <= float(v) <= 1.0 for v in top1.groups()), out
    # The generated classes are bright bars at class-dependent rows: pixels separate them.
    assert float(top1.group(2)) > 0.5
    assert "56x56 RGB copies embed like the originals: True" in out
