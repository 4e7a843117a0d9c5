"""One unattended accelerator check, each part in its own process under its own time limit.

Parts (a part that fails or runs out of time is reported and the next one runs):
  environment     device kind, platform, device count, jax/jaxlib/flax/optax versions.
  resnet50        SimCLR vs supervised ResNet-50 steps (configs/simclr.py:imagenet2012,
                  bfloat16 compute, random uint8 224x224x3 images) at per-device batches 128
                  and 256: images/s, TFLOP/s, SimCLR/supervised ratio; an out-of-memory step
                  is reported as OOM (ssljax.bench.resnet50_comparison).
  resnet18_cifar  configs/simclr.py:cifar10 (ResNet-18, CIFAR stem, global batch 512) for 200
                  steps on synthetic CIFAR-shaped images (a fixed pool of 4,096 blocky colour
                  layouts, already on the device): steps/s and the loss going down.
  multi_device    tests/training/test_step.py -k eight_devices on the accelerator when it has
                  more than one device (else reported as skipped), and always on 8 forced host
                  CPU devices as a sanity check.

Everything goes to one JSON file (--out, rewritten after every part, and
$OUT/accelerator_check.json when OUT is set) and a Markdown summary (printed, and written
beside the JSON as .md). Default limits add up to 470 s (--budget), inside 8 minutes.

On the device machine (one NVIDIA H200). Its image has JAX (0.11), flax, optax, chex,
absl-py and pytest but neither ml_collections nor TensorFlow; TensorFlow is not needed (the
steps, objectives and dataset registry import none of it), ml_collections travels as a wheel. Here, once
(build/ is git-ignored, so the run must name it in its carry):

  python3 -m pip download --no-deps --only-binary=:all: -d build/wheels ml-collections==1.1.0

then run with carry ["build/wheels"] and timeout_s 560:

  python3 -m pip install -q --no-index --no-deps --target /tmp/site build/wheels/*.whl \
    && PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 experiments/accelerator_check.py \
       --out $OUT/accelerator_check.json

(ssljax is not installed there: ``$PWD``, the repository root, on PYTHONPATH makes it
importable; every part runs in a child started in the repository root.)

Compiled steps are kept in --compilation_cache (/tmp/ssljax_jax_cache), so a rerun on the
same warm machine, e.g. with --parts resnet50 --limit_resnet50 400, skips the compiles that
finished.

Quick check on a CPU (tiny shapes, shortened ResNet, float32; about 2 minutes on 2 cores):

  python experiments/accelerator_check.py --smoke
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

# The repository root: parts run there (tests/ for the multi-device part).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARTS = ("environment", "resnet50", "resnet18_cifar", "multi_device")
TITLES = {
    "environment": "environment",
    "resnet50": "ResNet-50 SimCLR vs supervised",
    "resnet18_cifar": "ResNet-18 SimCLR, synthetic CIFAR",
    "multi_device": "multi-device equality test",
}
FULL = dict(
    per_device_batch=[128, 256],
    image_size=224,
    dtype="bfloat16",
    stage_sizes=None,
    steps=10,
    warmup=2,
    matmul_n=8192,
    cifar_batch=512,
    cifar_image_size=32,
    cifar_steps=200,
    cifar_pool=4096,
    cifar_warmup_steps=20,
    cifar_stage_sizes=None,
    limits=dict(environment=40, resnet50=280, resnet18_cifar=90, multi_device=60),
    budget=470,
    compilation_cache="/tmp/ssljax_jax_cache",
)
SMOKE = dict(
    per_device_batch=[2],
    image_size=32,
    dtype="float32",
    stage_sizes=[1],
    steps=2,
    warmup=1,
    matmul_n=256,
    cifar_batch=16,
    cifar_image_size=16,
    cifar_steps=12,
    cifar_pool=64,
    cifar_warmup_steps=2,
    cifar_stage_sizes=[1],
    limits=dict(environment=40, resnet50=120, resnet18_cifar=90, multi_device=90),
    budget=300,
    compilation_cache="",
)
PYTEST_BOOTSTRAP = "import sys, pytest; sys.exit(pytest.main(sys.argv[1:]))"
CHILD_BOOTSTRAP = (
    "import sys; from ssljax.experiments.accelerator_check import main; sys.exit(main())"
)
MULTI_DEVICE_TEST = [
    "tests/training/test_step.py",
    "-k",
    "eight_devices",
    "-q",
    "-p",
    "no:cacheprovider",
]


# ------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags; unset values take the full or the --smoke defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/accelerator_check.json", help="JSON result file.")
    p.add_argument("--smoke", action="store_true", help="Tiny shapes, for a CPU check.")
    p.add_argument("--parts", default=",".join(PARTS), help="Comma-separated parts to run.")
    p.add_argument("--budget", type=float, help="Seconds for all parts together.")
    for part in PARTS:
        p.add_argument(f"--limit_{part}", type=float, help=f"Seconds for the {part} part.")
    p.add_argument("--per_device_batch", help="ResNet-50 per-device batches, e.g. 128,256.")
    p.add_argument("--image_size", type=int, help="ResNet-50 image side.")
    p.add_argument("--dtype", help="ResNet-50 compute dtype.")
    p.add_argument("--stage_sizes", help="Blocks per stage for a shorter ResNet, e.g. 1,1,1,1.")
    p.add_argument("--steps", type=int, help="Timed ResNet-50 steps.")
    p.add_argument("--warmup", type=int, help="Untimed ResNet-50 steps before those.")
    p.add_argument("--matmul_n", type=int, help="Side of the peak-matmul probe (0: skip).")
    p.add_argument("--cifar_batch", type=int, help="ResNet-18 global batch.")
    p.add_argument("--cifar_image_size", type=int, help="ResNet-18 image side.")
    p.add_argument("--cifar_steps", type=int, help="ResNet-18 training steps.")
    p.add_argument("--cifar_pool", type=int, help="Synthetic images cycled through.")
    p.add_argument("--cifar_stage_sizes", help="Blocks per stage for a shorter ResNet-18.")
    p.add_argument(
        "--compilation_cache",
        help="JAX's persistent compilation cache folder, so "
        "a rerun on the same machine skips compiling ('' : none).",
    )
    p.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part in this process
    p.add_argument("--records", help=argparse.SUPPRESS)
    p.add_argument("--settings", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def int_list(text) -> list | None:
    """``'128,256'`` -> ``[128, 256]``; a list passes through; None and '' give None."""
    if text is None or text == "":
        return None
    if isinstance(text, (list, tuple)):
        return [int(v) for v in text]
    return [int(v) for v in str(text).split(",") if v.strip()]


def resolve_settings(args: argparse.Namespace) -> dict:
    """The settings of this run: the full or smoke defaults, overridden by given flags."""
    s = json.loads(json.dumps(SMOKE if args.smoke else FULL))
    for key in (
        "image_size",
        "dtype",
        "steps",
        "warmup",
        "matmul_n",
        "cifar_batch",
        "cifar_image_size",
        "cifar_steps",
        "cifar_pool",
        "budget",
        "compilation_cache",
    ):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    for key in ("per_device_batch", "stage_sizes", "cifar_stage_sizes"):
        if getattr(args, key) is not None:
            s[key] = int_list(getattr(args, key))
    for part in PARTS:
        if getattr(args, f"limit_{part}") is not None:
            s["limits"][part] = getattr(args, f"limit_{part}")
    s["smoke"] = bool(args.smoke)
    s["parts"] = [p for p in args.parts.split(",") if p]
    unknown = [p for p in s["parts"] if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    return s


# ------------------------------------------------------------------------------------------
# Parts, each run in a child process (``--part NAME``)
# ------------------------------------------------------------------------------------------


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment_part(settings: dict, emit) -> None:
    """Device kind, platform, device count and library versions."""
    del settings
    import platform

    import jax

    without_tf = "tensorflow" not in sys.modules
    device = jax.devices()[0]
    record = {
        "kind": "environment",
        "device_kind": device.device_kind,
        "platform": device.platform,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "ssljax_data_without_tensorflow": without_tf,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    for name in ("jaxlib", "flax", "optax", "chex", "numpy", "ml-collections"):
        record[name] = package_version(name)
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        record["device_memory_gib"] = round(stats["bytes_limit"] / 2**30, 1)
    emit(record)


def resnet50_part(settings: dict, emit) -> None:
    """Peak matmul probe, then SimCLR and supervised ResNet-50 steps at each batch."""
    from ssljax import bench

    if settings["matmul_n"]:
        n = settings["matmul_n"]
        emit(
            {
                "kind": "peak_matmul",
                "dtype": settings["dtype"],
                "n": n,
                "tflops": round(bench.matmul_tflops(n, settings["dtype"]), 2),
            }
        )
    bench.resnet50_comparison(
        settings["per_device_batch"],
        steps=settings["steps"],
        image_size=settings["image_size"],
        dtype=settings["dtype"],
        warmup=settings["warmup"],
        stage_sizes=settings["stage_sizes"],
        emit=lambda r: emit(dict(r, kind="resnet50")),
    )


def structured_images(n: int, size: int, seed: int = 0, cells: int = 4):
    """``n`` uint8 images ``[size, size, 3]``: a random ``cells x cells`` grid of colours
    each (upsampled by repetition) plus a little pixel noise, so every image is distinct."""
    import numpy as np

    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (n, cells, cells, 3)).astype(np.float32)
    rep = -(-size // cells)
    images = np.repeat(np.repeat(grid, rep, axis=1), rep, axis=2)[:, :size, :size]
    images += rng.normal(0.0, 8.0, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


def cifar_config(settings: dict):
    """configs/simclr.py:cifar10 at the run's batch and length (warm-up shortened; a
    shorter ResNet when ``cifar_stage_sizes`` is set)."""
    from ssljax import config_base

    config = config_base.load_config(os.path.join(REPO, "configs", "simclr.py") + ":cifar10")
    config.batch_size = int(settings["cifar_batch"])
    config.total_steps = int(settings["cifar_steps"])
    config.optimizer.warmup_steps = int(settings["cifar_warmup_steps"])
    if settings.get("cifar_stage_sizes"):
        config.model.encoder_kwargs.stage_sizes = tuple(settings["cifar_stage_sizes"])
    return config


def device_batches(images, per_dev: int, n_dev: int, mesh) -> list:
    """The image pool cut into global batches laid out on ``mesh`` (labels unused: 0)."""
    import numpy as np

    from ssljax import parallel

    size = per_dev * n_dev
    batches = []
    for start in range(0, len(images) - size + 1, size):
        chunk = images[start : start + size]
        host = {
            "image": chunk.reshape((n_dev, per_dev) + chunk.shape[1:]),
            "label": np.zeros((n_dev, per_dev), np.int32),
            "index": np.arange(start, start + size, dtype=np.int32).reshape(n_dev, per_dev),
        }
        batches.append(parallel.batch_to_global(host, mesh))
    return batches


def train_on_pool(compiled, state, batches, steps: int):
    """Runs ``steps`` steps cycling over ``batches``; returns host metrics per step, the
    seconds of the first step and of the rest."""
    import jax

    t = time.perf_counter()
    state, first = compiled(state, batches[0])
    jax.block_until_ready(first)
    first_seconds = time.perf_counter() - t
    metrics = [first]
    t = time.perf_counter()
    for i in range(1, steps):
        state, m = compiled(state, batches[i % len(batches)])
        metrics.append(m)
    jax.block_until_ready(metrics[-1])
    return jax.device_get(metrics), first_seconds, time.perf_counter() - t


def loss_summary(losses: list, window: int = 10) -> dict:
    """Mean loss over the first and the last ``window`` steps, and whether it went down."""
    import numpy as np

    w = max(1, min(window, len(losses) // 2))
    first, last = float(np.mean(losses[:w])), float(np.mean(losses[-w:]))
    return {
        "loss_window": w,
        "loss_first": round(first, 4),
        "loss_last": round(last, 4),
        "loss_decreased": last < first,
    }


def resnet18_cifar_part(settings: dict, emit) -> None:
    """SimCLR ResNet-18 for ``cifar_steps`` steps on a pool of synthetic images."""
    import jax

    from ssljax import bench, parallel

    config = cifar_config(settings)
    size = int(settings["cifar_image_size"])
    n_dev = jax.device_count()
    per_dev = parallel.check_global_batch(config.batch_size)
    pool = structured_images(max(settings["cifar_pool"], config.batch_size), size)
    setup = bench.benchmark_setup(config, (size, size, 3))
    t = time.perf_counter()
    batches = device_batches(pool, per_dev, n_dev, parallel.make_mesh())
    lowered, state, _ = bench.lower_with_setup(config, setup, num_classes=10)
    compiled = lowered.compile()
    compile_seconds = time.perf_counter() - t
    metrics, first_seconds, rest_seconds = train_on_pool(
        compiled, state, batches, config.total_steps
    )
    losses = [float(m["loss"]) for m in metrics]
    steps_per_sec = (len(metrics) - 1) / rest_seconds if len(metrics) > 1 else float("nan")
    record = {
        "kind": "resnet18_cifar",
        "encoder": config.model.encoder,
        "stage_sizes": settings.get("cifar_stage_sizes"),
        "dtype": config.get("dtype", "float32"),
        "global_batch": config.batch_size,
        "devices": n_dev,
        "image_size": size,
        "pool_images": len(batches) * config.batch_size,
        "steps": len(metrics),
        "compile_seconds": round(compile_seconds, 2),
        "first_step_seconds": round(first_seconds, 3),
        "steps_per_sec": round(steps_per_sec, 3),
        "images_per_sec": round(steps_per_sec * config.batch_size, 1),
        "finite": all(bool(m["finite"]) for m in metrics),
        "accuracy_first": round(float(metrics[0]["contrastive_accuracy"]), 4),
        "accuracy_last": round(float(metrics[-1]["contrastive_accuracy"]), 4),
        "loss_curve": [round(v, 4) for v in losses[:: max(1, len(losses) // 20)]],
    }
    record.update(loss_summary(losses))
    emit(record)


CHILD_PARTS = {
    "environment": environment_part,
    "resnet50": resnet50_part,
    "resnet18_cifar": resnet18_cifar_part,
}


def run_child(args: argparse.Namespace) -> None:
    """Runs one part in this process, appending its records to ``--records`` as JSON lines."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    settings = json.loads(args.settings)

    def emit(record):
        line = json.dumps(record)
        print(line, flush=True)
        with open(args.records, "a") as f:
            f.write(line + "\n")

    CHILD_PARTS[args.part](settings, emit)


# ------------------------------------------------------------------------------------------
# The parent: limits, processes, results
# ------------------------------------------------------------------------------------------


def run_process(cmd: list, limit: float, env: dict | None = None, tail_lines: int = 40) -> dict:
    """Runs ``cmd`` in its own session, echoing its output; kills it after ``limit`` s.

    Returns ``{'returncode', 'timed_out', 'wall_seconds', 'output_tail'}``.
    """
    t = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    tail = collections.deque(maxlen=tail_lines)

    def pump():
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=max(limit, 1.0))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    reader.join(timeout=10)
    return {
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "wall_seconds": round(time.perf_counter() - t, 1),
        "output_tail": list(tail),
    }


def read_records(path: str) -> list:
    """The JSON lines a child wrote (a line cut off by a kill is skipped)."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def part_status(proc: dict) -> str:
    """'ok', 'timeout' or 'failed' from ``run_process``'s result."""
    if proc["timed_out"]:
        return "timeout"
    return "ok" if proc["returncode"] == 0 else "failed"


def child_part(part: str, settings: dict, limit: float, workdir: str) -> dict:
    """Runs ``part`` in a child process; its result with the records it wrote."""
    records = os.path.join(workdir, f"{part}.jsonl")
    cmd = [
        sys.executable,
        "-c",
        CHILD_BOOTSTRAP,
        "--part",
        part,
        "--records",
        records,
        "--settings",
        json.dumps(settings),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")
    if settings.get("compilation_cache"):
        env.setdefault("JAX_COMPILATION_CACHE_DIR", settings["compilation_cache"])
    proc = run_process(cmd, limit, env)
    result = {"status": part_status(proc), "limit_seconds": limit, "records": read_records(records)}
    result.update(proc)
    if result["status"] == "ok":
        result.pop("output_tail")
    return result


def pytest_summary(lines: list) -> str:
    """pytest's closing line ('1 passed, 4 deselected in 27.5s'), or ''."""
    for line in reversed(lines):
        text = line.strip().strip("=").strip()
        if any(
            word in text
            for word in (" passed", " failed", " error", " skipped", " deselected", "no tests ran")
        ):
            return text
    return ""


def pytest_run(label: str, env: dict, limit: float, devices: int) -> dict:
    """One run of the multi-device equality test in a fresh Python process."""
    cmd = [sys.executable, "-c", PYTEST_BOOTSTRAP] + MULTI_DEVICE_TEST
    proc = run_process(cmd, limit, env)
    status = "timeout" if proc["timed_out"] else ("passed" if proc["returncode"] == 0 else "failed")
    run = {
        "run": label,
        "devices": devices,
        "status": status,
        "summary": pytest_summary(proc["output_tail"]),
        "wall_seconds": proc["wall_seconds"],
    }
    if status != "passed":
        run["output_tail"] = proc["output_tail"]
    return run


def multi_device_part(environment: dict, limit: float) -> dict:
    """The equality test on the accelerator (when it has several devices) and on 8 CPUs."""
    t = time.perf_counter()
    n = environment.get("device_count")
    platform = environment.get("platform", "unknown")
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    base.pop("JAX_PLATFORMS", None)
    runs = []
    if n and n > 1 and platform != "cpu":
        env = dict(
            base,
            CUDA_VISIBLE_DEVICES=os.environ.get(
                "CUDA_VISIBLE_DEVICES", ",".join(str(i) for i in range(n))
            ),
        )
        runs.append(pytest_run(f"{platform} ({n} devices)", env, limit / 2, n))
    else:
        reason = "one device" if n == 1 else "device count unknown (environment part failed)"
        runs.append(
            {
                "run": f"{platform} ({n or '?'} device{'s' if n != 1 else ''})",
                "devices": n,
                "status": "skipped",
                "summary": reason,
            }
        )
    left = limit - (time.perf_counter() - t)
    cpu_env = dict(
        base,
        JAX_PLATFORMS="cpu",
        CUDA_VISIBLE_DEVICES="",
        XLA_FLAGS=(base.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip(),
    )
    runs.append(pytest_run("cpu (8 forced host devices)", cpu_env, left, 8))
    failed = [r for r in runs if r["status"] in ("failed", "timeout")]
    status = "ok" if not failed else ("timeout" if failed[0]["status"] == "timeout" else "failed")
    return {
        "status": status,
        "limit_seconds": limit,
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - t, 1),
    }


def write_outputs(result: dict, out: str) -> list:
    """Writes the JSON (and the Markdown beside it) to ``out`` and under $OUT; returns paths."""
    paths = [out]
    if os.environ.get("OUT"):
        extra = os.path.join(os.environ["OUT"], "accelerator_check.json")
        if os.path.abspath(extra) != os.path.abspath(out):
            paths.append(extra)
    for path in paths:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        for target, text in (
            (path, json.dumps(result, indent=1)),
            (os.path.splitext(path)[0] + ".md", result.get("markdown", "")),
        ):
            tmp = target + ".tmp"
            with open(tmp, "w") as f:
                f.write(text + "\n")
            os.replace(tmp, target)
    return paths


# ------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------


def records_of(result: dict, part: str, kind: str) -> list:
    """The records of one kind that a part wrote."""
    return [r for r in result["parts"].get(part, {}).get("records", []) if r.get("kind") == kind]


def header_markdown(result: dict) -> str:
    """One line: device, versions, total wall time."""
    env = result.get("environment") or {}
    mem = f", {env['device_memory_gib']} GiB" if env.get("device_memory_gib") else ""
    smoke = "smoke settings; " if result["settings"]["smoke"] else ""
    return (
        f"Device: **{env.get('device_kind', '?')}** ({env.get('platform', '?')}, "
        f"{env.get('device_count', '?')} device(s){mem}); jax {env.get('jax', '?')}, "
        f"jaxlib {env.get('jaxlib', '?')}, flax {env.get('flax', '?')}, "
        f"optax {env.get('optax', '?')}; {smoke}"
        f"total {result.get('total_wall_seconds', 0):.0f} s."
    )


def parts_markdown(result: dict) -> str:
    """Table of the parts: status, wall time, limit."""
    lines = ["| part | status | wall time | limit |", "|---|---|---|---|"]
    for part in result["settings"]["parts"]:
        r = result["parts"].get(part)
        if r is None:
            lines.append(f"| {TITLES[part]} | not run | - | - |")
            continue
        lines.append(
            f"| {TITLES[part]} | {r['status']} | {r.get('wall_seconds', 0):.1f} s "
            f"| {r['limit_seconds']:.0f} s |"
        )
    return "\n".join(lines)


def shortened(stage_sizes) -> str:
    """' (shortened, stages [1])' for a shortened ResNet, else ''."""
    return f" (shortened, stages {list(stage_sizes)})" if stage_sizes else ""


def resnet50_markdown(result: dict) -> str:
    """The comparison table, with the settings and the peak matmul probe."""
    from ssljax.bench import comparison_table

    records = records_of(result, "resnet50", "resnet50")
    if not records:
        return "ResNet-50: no measurement (see the parts table)."
    s = result["settings"]
    peak = records_of(result, "resnet50", "peak_matmul")
    peak_text = (
        f"; dense {peak[0]['dtype']} matmul {peak[0]['n']}^3: {peak[0]['tflops']:.1f} TFLOP/s"
        if peak
        else ""
    )
    convs = sorted({k for r in records for k in r.get("conv_dtypes", {})})
    title = (
        f"ResNet-50{shortened(s['stage_sizes'])}, {s['dtype']} compute (lowered "
        f"convolutions: {', '.join(convs) or '?'}), {s['image_size']}x{s['image_size']}x3 "
        f"random uint8, median of {s['steps']} steps after {s['warmup']} warm-up"
        f"{peak_text}:"
    )
    errors = [
        f"- {r['mode']} at per-device batch {r['per_device_batch']}: {r['status']}: "
        f"{r.get('error', '')}"
        for r in records
        if r.get("status") not in (None, "ok")
    ]
    return "\n".join([title, "", comparison_table(records)] + ([""] + errors if errors else []))


def cifar_markdown(result: dict) -> str:
    """One-row table of the ResNet-18 run."""
    records = records_of(result, "resnet18_cifar", "resnet18_cifar")
    if not records:
        return "ResNet-18 on synthetic CIFAR: no result (see the parts table)."
    r = records[0]
    return "\n".join(
        [
            f"ResNet-18{shortened(r.get('stage_sizes'))} SimCLR (configs/simclr.py:cifar10, "
            f"{r['dtype']}) on {r['pool_images']:,} synthetic "
            f"{r['image_size']}x{r['image_size']}x3 images:",
            "",
            "| global batch | steps | step/s | images/s | compile | loss, first -> last "
            f"{r['loss_window']} steps | went down | contrastive accuracy, first -> last step |",
            "|---|---|---|---|---|---|---|---|",
            f"| {r['global_batch']} | {r['steps']} | {r['steps_per_sec']:.2f} "
            f"| {r['images_per_sec']:,.0f} | {r['compile_seconds']:.1f} s "
            f"| {r['loss_first']:.3f} -> {r['loss_last']:.3f} "
            f"| {'yes' if r['loss_decreased'] else 'NO'} "
            f"| {r['accuracy_first']:.3f} -> {r['accuracy_last']:.3f} |",
        ]
    )


def multi_device_markdown(result: dict) -> str:
    """Table of the equality-test runs."""
    part = result["parts"].get("multi_device")
    if not part:
        return "Multi-device equality test: not run."
    lines = [
        "Multi-device equality test (tests/training/test_step.py -k eight_devices):",
        "",
        "| run | result | wall time |",
        "|---|---|---|",
    ]
    for r in part["runs"]:
        wall = f"{r['wall_seconds']:.1f} s" if "wall_seconds" in r else "-"
        lines.append(f"| {r['run']} | {r['status']}: {r.get('summary') or '-'} | {wall} |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """The whole summary, ready to paste into docs/benchmarks.md, "Accelerators (prepared)"."""
    blocks = [header_markdown(result), parts_markdown(result)]
    run = result["settings"]["parts"]
    if "resnet50" in run:
        blocks.append(resnet50_markdown(result))
    if "resnet18_cifar" in run:
        blocks.append(cifar_markdown(result))
    if "multi_device" in run:
        blocks.append(multi_device_markdown(result))
    return "\n\n".join(blocks)


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------


def part_limit(settings: dict, part: str, elapsed: float) -> float:
    """The part's own limit, cut to what is left of the budget."""
    return max(1.0, min(float(settings["limits"][part]), settings["budget"] - elapsed))


def run_all(settings: dict, out: str) -> dict:
    """Runs every selected part in turn, rewriting the outputs after each."""
    t0 = time.perf_counter()
    import jax  # the version only: no backend is started in this process

    result = {
        "script": "experiments/accelerator_check.py",
        "argv": sys.argv[1:],
        "settings": settings,
        "jax_version": jax.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": {},
        "parts": {},
    }
    workdir = tempfile.mkdtemp(prefix="accelerator_check_")
    paths = write_outputs(dict(result, markdown=""), out)
    for part in settings["parts"]:
        limit = part_limit(settings, part, time.perf_counter() - t0)
        print(f"== {part}: limit {limit:.0f} s", flush=True)
        if part == "multi_device":
            result["parts"][part] = multi_device_part(result["environment"], limit)
        else:
            result["parts"][part] = child_part(part, settings, limit, workdir)
        if part == "environment":
            env = records_of(result, part, "environment")
            result["environment"] = env[0] if env else {}
        r = result["parts"][part]
        print(f"== {part}: {r['status']} in {r['wall_seconds']:.1f} s", flush=True)
        result["total_wall_seconds"] = round(time.perf_counter() - t0, 1)
        result["markdown"] = markdown(result)
        paths = write_outputs(result, out)
    result.setdefault("markdown", markdown(result))
    print("\n" + result["markdown"] + "\n", flush=True)
    print("wrote " + ", ".join(paths), flush=True)
    return result


def main(argv=None) -> int:
    """Parent: all parts with limits. Child (``--part``): one part in this process."""
    args = parse_args(argv)
    if args.part:
        run_child(args)
        return 0
    run_all(resolve_settings(args), args.out)
    return 0
