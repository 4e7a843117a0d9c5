"""The accelerator check's pieces on CPU: the supervised reference step, dtype honouring, the
comparison table, part limits and the Markdown summary (the full --smoke run takes minutes on
two cores, so it is not run here)."""

import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ssljax import bench
from ssljax.experiments import accelerator_check as check
from ssljax.models.network import build_encoder_from_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean of ``logsumexp(logits) - logits[label]`` in float64."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return float(np.mean(lse - logits[np.arange(len(labels)), labels]))


def test_supervised_step_loss_is_softmax_cross_entropy_of_the_global_batch(make_tiny_config):
    config = make_tiny_config()
    n_dev = jax.device_count()
    per_dev = config.batch_size // n_dev
    host = bench.random_host_batch(n_dev, per_dev, (28, 28, 1), num_classes=10, seed=3)
    compiled, state, batch = bench.compile_supervised_step(config, host_batch=host)

    model = bench.SupervisedNetwork(encoder=build_encoder_from_config(config, None), num_classes=10)
    images = host["image"].reshape((-1, 28, 28, 1)).astype(np.float32) / 255.0
    params, model_state = jax.device_get((state.params, state.model_state))
    out, _ = model.apply(
        {"params": params, **model_state}, images, train=True, mutable=list(model_state)
    )
    expected = softmax_cross_entropy(np.asarray(out["logits"]), host["label"].reshape(-1))

    times, state, metrics = bench.timed_calls(compiled, state, batch, steps=1, warmup=0)
    assert len(times) == 1 and times[0] > 0
    assert bool(metrics["finite"]) and int(state.step) == 1
    np.testing.assert_allclose(float(metrics["loss"]), expected, rtol=1e-5)
    assert 0.0 <= float(metrics["accuracy"]) <= 1.0


@pytest.mark.parametrize("supervised", [False, True])
def test_bfloat16_config_lowers_every_convolution_in_bfloat16(make_tiny_config, supervised):
    config = make_tiny_config()
    config.dtype = "bfloat16"
    setup = bench.benchmark_setup(config, supervised=supervised, num_classes=10)
    lowered, _, _ = bench.lower_with_setup(config, setup)
    dtypes = bench.op_result_dtypes(lowered.as_text(), "stablehlo.convolution")
    assert set(dtypes) == {"bf16"} and dtypes["bf16"] == 5  # 2 fwd, 2 kernel grads, 1 input grad


def test_image_shape_override_reaches_the_batch(make_tiny_config):
    config = make_tiny_config()
    setup = bench.benchmark_setup(config, image_shape=(20, 20, 1))
    _, _, batch = bench.lower_with_setup(config, setup)
    assert batch["image"].shape == (config.batch_size, 20, 20, 1)


def test_resnet50_config_sets_batch_per_device_size_and_dtype():
    config = bench.resnet50_config(4, image_size=64, dtype="bfloat16", stage_sizes=(1, 1))
    assert config.batch_size == 4 * jax.device_count()
    assert config.model.encoder == "resnet50" and config.dtype == "bfloat16"
    assert tuple(config.augment.output_size) == (64, 64)
    assert tuple(config.model.encoder_kwargs.stage_sizes) == (1, 1)


def test_out_of_memory_is_recognised():
    assert bench.is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying"))
    assert not bench.is_out_of_memory(ValueError("shapes do not match"))


def _record(mode, ips, status="ok", per_dev=128):
    return {
        "mode": mode,
        "per_device_batch": per_dev,
        "global_batch": per_dev,
        "status": status,
        "images_per_sec": ips,
        "step_seconds": per_dev / ips,
        "tflops_per_sec": 100.0,
    }


def test_ratio_and_table_report_oom_without_a_ratio():
    pair = {"simclr": _record("simclr", 1000.0), "supervised": _record("supervised", 2500.0)}
    ratio = bench.simclr_over_supervised(pair)
    assert ratio["simclr_over_supervised_images_per_sec"] == 0.4
    oom = {
        "simclr": _record("simclr", 1.0, "oom", 256),
        "supervised": _record("supervised", 9.0, per_dev=256),
    }
    assert bench.simclr_over_supervised(oom) is None
    table = bench.comparison_table(list(pair.values()) + [ratio] + list(oom.values()))
    rows = table.splitlines()
    assert len(rows) == 4
    assert "| 128 | 128 | 1,000 | 2,500 | 0.400 |" in rows[2]
    assert "| 256 | 256 | OOM | 9 | - |" in rows[3]


def test_settings_smoke_and_overrides():
    s = check.resolve_settings(
        check.parse_args(["--smoke", "--per_device_batch", "4,8", "--limit_resnet50", "33"])
    )
    assert s["smoke"] and s["per_device_batch"] == [4, 8] and s["limits"]["resnet50"] == 33
    full = check.resolve_settings(check.parse_args([]))
    assert full["per_device_batch"] == [128, 256] and full["dtype"] == "bfloat16"
    assert sum(full["limits"].values()) <= full["budget"] <= 480
    assert check.part_limit(full, "resnet50", elapsed=400.0) == pytest.approx(70.0)
    with pytest.raises(SystemExit, match="unknown part"):
        check.resolve_settings(check.parse_args(["--parts", "resnet50,nope"]))


def test_run_process_kills_a_part_at_its_limit():
    t = time.perf_counter()
    proc = check.run_process(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"], limit=2.0
    )
    assert proc["timed_out"] and check.part_status(proc) == "timeout"
    assert time.perf_counter() - t < 30
    assert proc["output_tail"] == ["up"]


def test_structured_images_are_distinct_uint8():
    images = check.structured_images(8, 16, seed=1)
    assert images.shape == (8, 16, 16, 3) and images.dtype == np.uint8
    flat = images.reshape(8, -1).astype(np.int64)
    assert len({tuple(row) for row in flat}) == 8
    assert check.loss_summary([5.0, 4.0, 3.0, 2.0])["loss_decreased"]


def test_markdown_summary_of_a_result():
    settings = check.resolve_settings(check.parse_args([]))
    resnet = [
        dict(_record("simclr", 1000.0), kind="resnet50", conv_dtypes={"bf16": 159}),
        dict(_record("supervised", 2500.0), kind="resnet50", conv_dtypes={"bf16": 159}),
        {
            "kind": "resnet50",
            "mode": "ratio",
            "per_device_batch": 128,
            "global_batch": 128,
            "simclr_over_supervised_images_per_sec": 0.4,
        },
        {"kind": "peak_matmul", "dtype": "bfloat16", "n": 8192, "tflops": 780.0},
    ]
    cifar = {
        "kind": "resnet18_cifar",
        "dtype": "float32",
        "pool_images": 4096,
        "image_size": 32,
        "global_batch": 512,
        "steps": 200,
        "steps_per_sec": 20.0,
        "images_per_sec": 10240.0,
        "compile_seconds": 30.0,
        "loss_window": 10,
        "loss_first": 6.9,
        "loss_last": 5.1,
        "loss_decreased": True,
        "accuracy_first": 0.01,
        "accuracy_last": 0.4,
    }
    result = {
        "settings": settings,
        "total_wall_seconds": 300.0,
        "environment": {
            "device_kind": "NVIDIA H200",
            "platform": "gpu",
            "device_count": 1,
            "jax": "0.11.2",
            "jaxlib": "0.11.2",
        },
        "parts": {
            "environment": {"status": "ok", "wall_seconds": 5, "limit_seconds": 40},
            "resnet50": {
                "status": "ok",
                "wall_seconds": 200,
                "limit_seconds": 280,
                "records": resnet,
            },
            "resnet18_cifar": {
                "status": "ok",
                "wall_seconds": 60,
                "limit_seconds": 90,
                "records": [cifar],
            },
            "multi_device": {
                "status": "ok",
                "wall_seconds": 30,
                "limit_seconds": 60,
                "runs": [{"run": "gpu (1 device)", "status": "skipped", "summary": "one device"}],
            },
        },
    }
    text = check.markdown(result)
    assert "**NVIDIA H200**" in text and "jax 0.11.2" in text
    assert "| 128 | 128 | 1,000 | 2,500 | 0.400 |" in text
    assert "780.0 TFLOP/s" in text and "convolutions: bf16" in text
    assert "| 512 | 200 | 20.00 | 10,240 | 30.0 s | 6.900 -> 5.100 | yes |" in text
    assert "| gpu (1 device) | skipped: one device | - |" in text
    json.dumps(result)


def test_benchmark_setup_builds_without_tensorflow():
    code = (
        "import sys\n"
        "for m in ('tensorflow', 'tensorflow_datasets'): sys.modules[m] = None\n"
        "from ssljax import bench\n"
        "setup = bench.benchmark_setup(bench.resnet50_config(1), supervised=True)\n"
        "print(setup.image_shape, setup.train_model.num_classes)\n"
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "(224, 224, 3) 1000"


def test_script_runs_a_part_in_a_child_and_writes_json_and_markdown(tmp_path):
    out = tmp_path / "check.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("OUT", None)
    run = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "experiments", "accelerator_check.py"),
            "--smoke",
            "--parts",
            "environment",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["parts"]["environment"]["status"] == "ok"
    assert result["environment"]["platform"] == "cpu"
    assert result["environment"]["jax"] == jax.__version__
    assert "| environment | ok |" in (tmp_path / "check.md").read_text()
    assert "| environment | ok |" in run.stdout


def test_measure_step_reports_out_of_memory_and_errors(make_tiny_config, monkeypatch):
    config = make_tiny_config()

    def exhausted(*args):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9 GiB.")

    monkeypatch.setattr(bench, "_timed_step", exhausted)
    record = bench.measure_step(config, "simclr", steps=1, image_size=28)
    assert record["status"] == "oom" and "RESOURCE_EXHAUSTED" in record["error"]
    monkeypatch.setattr(bench, "_timed_step", lambda *a: 1 / 0)
    assert bench.measure_step(config, "supervised", steps=1, image_size=28)["status"] == "error"
