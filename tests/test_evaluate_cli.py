"""``python -m ssljax.evaluate`` on a tiny 2-step checkpoint: report rows, table, errors.

The entry point runs in this process (``ssljax.evaluate.cli_main``, what ``python -m`` calls):
absl flag parsing, ``cli.run``'s one-line errors and exit status are the real ones.
"""

import json
import os
import re

import pytest

from ssljax.training.loop import train_and_evaluate

# One compiled fine-tuning step serves every run: the same number of steps (min_steps
# covers 96 labels at batch 32) and no warm-up.
FAST = [
    "--finetune.epochs=1",
    "--finetune.min_steps=4",
    "--finetune.batch_size=32",
    "--finetune.eval_batch_size=40",
    "--finetune.warmup_epochs=0",
]
# The figures have their own tests (tests/test_evaluate_figures.py); these runs share one
# workdir, where a second run would refuse to replace the first run's figures.
NOFIGURES = ["--nofigures"]


@pytest.fixture(scope="module")
def workdir(tiny_fashion_mnist, tmp_path_factory):
    from tests.conftest import tiny_config

    config = tiny_config(tiny_fashion_mnist)
    config.total_steps = 2
    config.eval.l2_grid = (1e-3,)  # one L2 value: no validation fits, fewer compilations
    path = tmp_path_factory.mktemp("evaluate") / "run"
    result = train_and_evaluate(config, str(path), progress=False)
    assert result["step"] == 2
    return path


def run_cli(args, capsys):
    """Runs the entry point in this process; returns (exit status, stdout, stderr)."""
    from absl import flags

    from ssljax import evaluate

    evaluate.define_flags()
    flags.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as stop:
        evaluate.cli_main(["ssljax.evaluate", *args])
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def snapshot(directory):
    """Every file under ``directory`` with its bytes."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


def test_evaluate_writes_one_row_per_protocol_and_fraction(workdir, capsys):
    before = snapshot(workdir)
    before.pop("evaluate.json", None)
    code, out, err = run_cli(
        [
            f"--workdir={workdir}",
            "--protocols=finetune,linear,knn,label_efficiency",
            "--label_fractions=0.1,0.5",
            "--seed=3",
            *FAST,
            *NOFIGURES,
        ],
        capsys,
    )
    assert code == 0, err[-3000:]
    report = json.load(open(workdir / "evaluate.json"))
    after = snapshot(workdir)
    # Only evaluate.json was added; nothing else was changed.
    assert set(after) == set(before) | {"evaluate.json"}
    assert all(after[k] == before[k] for k in before)

    rows = report["rows"]
    keys = [(r["protocol"], r["method"], r["fraction"]) for r in rows]
    assert keys == [
        ("linear", "linear probe", 1.0),
        ("knn", "kNN (k=5)", 1.0),
        ("label_efficiency", "linear probe", 0.1),
        ("label_efficiency", "fine-tune", 0.1),
        ("label_efficiency", "from scratch", 0.1),
        ("label_efficiency", "linear probe", 0.5),
        ("label_efficiency", "fine-tune", 0.5),
        ("label_efficiency", "from scratch", 0.5),
        ("finetune", "fine-tune", 1.0),
    ]
    # 96 generated train images (10 or 9 per class): 1 and 5 per class, then all.
    from tests.conftest import TINY_TRAIN, tiny_images

    _, train_labels = tiny_images(TINY_TRAIN, 0)
    from ssljax.evaluation.protocols import balanced_subset

    for row in rows:
        assert 0.0 <= row["top1"] <= row["top5"] <= 1.0
        assert row["dataset"] == "fashion_mnist"
        expected = len(balanced_subset(train_labels, row["fraction"], 3))
        assert row["num_labels"] == expected
    assert [r["num_labels"] for r in rows[2:8:3]] == [10, 50]  # 4.5 rounds up
    for row in rows:
        if row["method"] in ("fine-tune", "from scratch"):
            assert row["steps"] == 4
    assert report["seed"] == 3 and report["checkpoint_step"] == 2
    assert report["finetune"]["batch_size"] == 32
    assert set(report["margins"]) == {"0.1", "0.5"}
    m = report["margins"]["0.5"]
    top1 = {r["method"]: r["top1"] for r in rows[5:8]}
    assert m["finetune_minus_scratch"] == pytest.approx(top1["fine-tune"] - top1["from scratch"])

    # The printed table: a header and one line per row.
    assert "| protocol | dataset | labels | method | top1 | top5 |" in out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(rows)
    assert "| label_efficiency | fashion_mnist | 10% (10) | fine-tune |" in out
    assert re.search(r"labels 50%: fine-tune - probe [+-]\d\.\d{4}", out)


def test_the_same_seed_gives_the_same_report(workdir, capsys):
    args = [
        f"--workdir={workdir}",
        "--protocols=label_efficiency",
        "--label_fractions=0.1",
        *FAST,
        *NOFIGURES,
    ]
    assert run_cli(args, capsys)[0] == 0
    first = json.load(open(workdir / "evaluate.json"))["rows"]
    assert run_cli(args, capsys)[0] == 0
    second = json.load(open(workdir / "evaluate.json"))["rows"]
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in first] == [
        {k: v for k, v in r.items() if k not in drop} for r in second
    ]


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["--label_fractions=0.1,1.5"], r"label fraction '1.5' is outside \(0, 1\]"),
        (["--label_fractions=0"], r"label fraction '0' is outside \(0, 1\]"),
        (
            ["--protocols=linear,finetuning"],
            r"unknown protocol 'finetuning'; valid protocols: linear, knn, label_efficiency, "
            r"finetune, transfer",
        ),
        (["--protocols=linear", "--layer=block9"], r"unknown layer 'block9'.*'pooled'"),
        (["--protocols=transfer"], r"transfer protocol needs --transfer_dataset"),
        (["--finetune.optimizer=lars"], r"unknown finetune.optimizer 'lars'"),
    ],
)
def test_bad_input_is_one_line_and_overwrites_nothing(workdir, capsys, args, pattern):
    before = snapshot(workdir)
    code, _, err = run_cli([f"--workdir={workdir}", *args, *FAST], capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]
    assert snapshot(workdir) == before


def test_transfer_probes_an_image_folder_at_the_encoder_input_shape(workdir, tmp_path, capsys):
    import numpy as np

    from ssljax.data.image_folder import write_image_folder

    # 32x32 RGB images, dark (class 0) or bright (class 1): the encoder sees them as 28x28 grey.
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 12)):
        labels = np.arange(n) % 2
        images = rng.integers(0, 40, (n, 32, 32, 3)) + 180 * labels[:, None, None, None]
        write_image_folder(tmp_path / "folder", split, images.astype(np.uint8), labels)
    code, out, err = run_cli(
        [
            f"--workdir={workdir}",
            "--protocols=transfer",
            "--transfer_dataset=image_folder",
            f"--transfer_data_dir={tmp_path / 'folder'}",
            *NOFIGURES,
        ],
        capsys,
    )
    assert code == 0, err[-3000:]
    (row,) = json.load(open(workdir / "evaluate.json"))["rows"]
    assert (row["protocol"], row["dataset"], row["num_labels"]) == ("transfer", "image_folder", 24)
    assert row["top1"] >= 0.9 and row["knn_top1"] >= 0.9  # brightness survives the encoder
    assert "| transfer | image_folder | 100% (24) | linear probe |" in out


def test_transfer_dataset_without_labels_is_one_line(workdir, capsys):
    before = snapshot(workdir)
    code, _, err = run_cli(
        [f"--workdir={workdir}", "--protocols=transfer", "--transfer_dataset=celeb_a"], capsys
    )
    assert code == 2
    assert re.search(
        r"^error: transfer dataset 'celeb_a' has no labels \(.*no ClassLabel feature", err.strip()
    ), err
    assert len(err.strip().splitlines()) == 1
    assert snapshot(workdir) == before


def test_workdir_without_checkpoint_is_one_line(tmp_path, capsys):
    code, _, err = run_cli([f"--workdir={tmp_path}", "--protocols=linear"], capsys)
    assert code == 2
    assert re.search(r"^error: no checkpoint in .*ssljax.train", err.strip())
    assert list(tmp_path.iterdir()) == []
