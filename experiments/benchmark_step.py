"""Throughput of the pretraining step and of the input pipeline that feeds it.

  python experiments/benchmark_step.py --config configs/simclr.py:fashion_mnist [--steps 20]
  python experiments/benchmark_step.py --resnet50 [--per_device_batch 128,256] [--steps 10]
  python experiments/benchmark_step.py --resnet50 --per_device_batch 2 --image_size 64 \
      --dtype float32 --stage_sizes 1,1,1,1 --steps 2     # a quick CPU check

``--resnet50``: the SimCLR step of configs/simclr.py:imagenet2012 (ResNet-50, bfloat16
compute) against a supervised step of the same encoder (linear classifier over 1000 classes,
softmax cross-entropy, same LARS optimizer and dtype, one un-augmented view), on random uint8
images, at each per-device batch (global batch = per-device batch x device count). Prints one
JSON line per step (``mode`` simclr / supervised: images/s from the median step time, XLA's
FLOPs, the result dtypes of the lowered convolutions and matmuls), one ``ratio`` line per
batch (SimCLR images/s over supervised images/s; a SimCLR image is two views through the
network) and a Markdown table. A step that runs out of device memory is reported as OOM and
the others go on. ``--config`` is not read in this mode.

Prints one JSON line: images_per_sec, step_seconds, gflops_per_step (XLA's cost analysis of
the step compiled with whole-batch convolutions, ``model.conv_batch_chunk=0``: the same
arithmetic, counted without the per-slice duplication that batch slicing shows in the cost
analysis; the count of the step as compiled is printed beside it), gflops_per_sec, peak_matmul_gflops (a dense f32 matmul timed in the same
run), mfu = gflops_per_sec / peak_matmul_gflops, and the input pipeline's batches/s and its
speed relative to the step. Step and matmul are both timed as the best of repeated calls
(the same statistic for numerator and denominator); the median step time is also printed.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/simclr.py:fashion_mnist", "Config.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after one warm-up step).")
_MATMUL_N = flags.DEFINE_integer("matmul_n", 2048, "Side of the square peak-matmul probe.")
_PIPELINE_BATCHES = flags.DEFINE_integer(
    "pipeline_batches", 200, "Batches timed from the input pipeline (0: skip)."
)
_RESNET50 = flags.DEFINE_bool(
    "resnet50", False, "ResNet-50 SimCLR vs supervised steps instead of --config."
)
_PER_DEVICE_BATCH = flags.DEFINE_list(
    "per_device_batch", ["128", "256"], "--resnet50: per-device batches."
)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "--resnet50: side of the input images.")
_DTYPE = flags.DEFINE_string("dtype", "bfloat16", "--resnet50: compute dtype (config.dtype).")
_STAGE_SIZES = flags.DEFINE_list(
    "stage_sizes",
    [],
    "--resnet50: blocks per stage for a shorter ResNet (default: ResNet-50's 3,4,6,3).",
)
_WARMUP = flags.DEFINE_integer("warmup", 1, "--resnet50: untimed calls before the timed ones.")


def best_time(fn, repeats: int) -> float:
    """Minimum wall time of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak_matmul_gflops(n: int) -> float:
    """Achieved GFLOP/s of a dense f32 ``[n, n] @ [n, n]`` matmul on the default device."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    mm = jax.jit(lambda x, y: x @ y)
    seconds = best_time(lambda: mm(a, b).block_until_ready(), repeats=10)
    return 2 * n**3 / seconds / 1e9


def resnet50_main() -> list:
    """The ``--resnet50`` mode: JSON lines as each step is measured, then a Markdown table."""
    from ssljax import bench

    def emit(record):
        print(json.dumps(record), flush=True)

    if _MATMUL_N.value:
        emit(
            {
                "mode": "peak_matmul",
                "dtype": _DTYPE.value,
                "n": _MATMUL_N.value,
                "tflops": round(bench.matmul_tflops(_MATMUL_N.value, _DTYPE.value), 2),
            }
        )
    records = bench.resnet50_comparison(
        [int(b) for b in _PER_DEVICE_BATCH.value],
        steps=_STEPS.value,
        image_size=_IMAGE_SIZE.value,
        dtype=_DTYPE.value,
        warmup=_WARMUP.value,
        stage_sizes=tuple(int(n) for n in _STAGE_SIZES.value) or None,
        emit=emit,
    )
    print(bench.comparison_table(records), flush=True)
    return records


def main(argv):
    del argv
    if _RESNET50.value:
        resnet50_main()
        return
    import jax
    import numpy as np

    from ssljax.bench import compile_step, compiled_flops, step_times
    from ssljax.training.loop import validate_config

    config = _CONFIG.value
    validate_config(config)
    n_dev = jax.device_count()
    t = time.perf_counter()
    compiled, state, batch = compile_step(config)
    compile_seconds = time.perf_counter() - t
    # The work of a step is counted on the same step with whole-batch convolutions: slicing
    # the batch (model.conv_batch_chunk) does not change the arithmetic, but XLA's cost
    # analysis counts an elementwise producer once per slice it is fused into.
    with config.unlocked():
        reference = config.copy_and_resolve_references()
        reference.model.conv_batch_chunk = 0
    flops = compiled_flops(compile_step(reference)[0])
    flops_as_compiled = compiled_flops(compiled)

    times = step_times(compiled, state, batch, _STEPS.value)
    step_seconds = float(np.min(times))
    peak = peak_matmul_gflops(_MATMUL_N.value)
    achieved = flops / step_seconds / 1e9
    result = {
        "config": config.objective.name + "/" + config.dataset.name + "/" + config.model.encoder,
        "devices": n_dev,
        "platform": jax.devices()[0].platform,
        "global_batch": int(config.batch_size),
        "compile_seconds": round(compile_seconds, 2),
        "step_seconds": round(step_seconds, 4),
        "median_step_seconds": round(float(np.median(times)), 4),
        "images_per_sec": round(config.batch_size / step_seconds, 1),
        "gflops_per_step": round(flops / 1e9, 3),
        "gflops_per_step_as_compiled": round(flops_as_compiled / 1e9, 3),
        "gflops_per_sec": round(achieved, 2),
        "peak_matmul_gflops": round(peak, 2),
        "mfu": round(achieved / peak, 3),
    }
    if _PIPELINE_BATCHES.value:
        from ssljax.data.input_pipeline import train_iterator

        it = train_iterator(
            config.dataset.name,
            global_batch_size=config.batch_size,
            seed=config.seed,
            data_dir=config.dataset.get("data_dir"),
        )
        for _ in range(5):
            next(it)
        t = time.perf_counter()
        for _ in range(_PIPELINE_BATCHES.value):
            next(it)
        per_batch = (time.perf_counter() - t) / _PIPELINE_BATCHES.value
        result["pipeline_batches_per_sec"] = round(1 / per_batch, 1)
        result["pipeline_speed_over_step"] = round(step_seconds / per_batch, 1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    app.run(main)
