"""Compile and time one pretraining step of a config on random data (benchmarks, budgets).

Besides the objective's own step (``compile_step``), a supervised step with the same encoder,
optimizer and compute dtype (``compile_supervised_step``: one un-augmented view, a linear
classifier, softmax cross-entropy on the labels) gives the reference that a self-supervised
step's cost is read against (``measure_step``, ``resnet50_comparison``).
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import os
import re
import time
from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.objectives.base import LossAux, Objective, Outputs

SIMCLR = "simclr"
SUPERVISED = "supervised"


def random_host_batch(
    n_dev: int, per_dev: int, image_shape: tuple, num_classes: int, seed: int = 0
) -> dict:
    """A host batch ``[n_dev, per_dev, ...]``: uniform uint8 images, random labels, indices."""
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (n_dev, per_dev) + tuple(image_shape), dtype=np.uint8),
        "label": rng.integers(0, num_classes, (n_dev, per_dev)).astype(np.int32),
        "index": np.arange(n_dev * per_dev, dtype=np.int32).reshape(n_dev, per_dev),
    }


def lower_with_setup(config, setup, host_batch: dict | None = None, num_classes: int = 10):
    """Lowers the shard_map step of ``setup`` (a ``loop.Setup``) on a step-0 state.

    Returns ``(lowered, state, batch)``: a replicated state and the batch laid out on the
    device mesh (``host_batch``, or random data of ``setup.image_shape`` when None).
    """
    from ssljax import parallel
    from ssljax.training.loop import initial_state
    from ssljax.training.step import make_train_step, shard_map_driver

    mesh = parallel.make_mesh()
    per_dev = parallel.check_global_batch(config.batch_size)
    if host_batch is None:
        host_batch = random_host_batch(jax.device_count(), per_dev, setup.image_shape, num_classes)
    state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
    batch = parallel.batch_to_global(host_batch, mesh)
    step = shard_map_driver(
        make_train_step(
            objective=setup.objective,
            run=setup.run,
            model=setup.train_model,
            tx=setup.tx,
            config=config,
            schedule=setup.schedule,
        ),
        mesh,
    )
    return step.lower(state, batch), state, batch


def benchmark_setup(
    config,
    image_shape: tuple | None = None,
    supervised: bool = False,
    num_classes: int | None = None,
):
    """``build_setup(config)`` on the dataset's published facts (loads no data), optionally at
    another image shape and with the supervised objective in place of the config's own."""
    from ssljax.data.datasets import facts_from_spec, spec_from_config
    from ssljax.training.loop import build_setup

    spec = spec_from_config(config.dataset)
    # The benchmarks time steps on evaluation-size images (ImageNet: 224, not the 256 the
    # training input crops from), as every figure in docs/benchmarks.md was measured.
    shape = spec.image_shape if image_shape is None else image_shape
    facts = dataclasses.replace(facts_from_spec(spec), image_shape=tuple(shape))
    setup = build_setup(config, facts)
    if supervised:
        if num_classes is None:
            num_classes = spec.num_classes
        setup = supervised_setup(config, setup, num_classes)
    return setup


def compile_step(config, image_shape: tuple | None = None):
    """The compiled per-device step of ``config`` under the shard_map driver.

    Returns ``(compiled, state, batch)``: a replicated step-0 state and a random uint8 batch
    (with labels and example indices) laid out on the device mesh. ``image_shape`` overrides
    the dataset's ``(H, W, C)``.
    """
    lowered, state, batch = lower_with_setup(config, benchmark_setup(config, image_shape))
    return lowered.compile(), state, batch


class SupervisedNetwork(nn.Module):
    """An encoder followed by a linear classifier; returns ``{'features', 'logits'}``."""

    encoder: nn.Module
    num_classes: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool) -> dict:
        """Maps ``[B, H, W, C]`` images to ``[B, D]`` features and ``[B, classes]`` logits."""
        features = self.encoder(x, train=train)
        logits = nn.Dense(
            self.num_classes, dtype=self.dtype, param_dtype=jnp.float32, name="classifier"
        )(features)
        return {"features": features, "logits": logits}


@dataclasses.dataclass(frozen=True)
class Supervised(Objective):
    """Supervised classification (an unregistered objective): the reference step that the
    self-supervised steps are timed against.

    Attributes:
      num_classes: classes of the linear classifier on the encoder.
    """

    name: ClassVar[str] = SUPERVISED
    description: ClassVar[str] = "supervised reference step"

    num_classes: int = 10

    def build_model(self, run, axis_name):
        from ssljax.models.network import build_encoder_from_config, dtype_from_name

        return SupervisedNetwork(
            encoder=build_encoder_from_config(run, axis_name),
            num_classes=self.num_classes,
            dtype=dtype_from_name(run.dtype),
        )

    def make_views(self, rng, images, run) -> tuple:
        """One view: the uint8 batch scaled to ``[0, 1]`` float32, no augmentation."""
        del rng, run
        return (images.astype(jnp.float32) / 255.0,)

    def loss(self, params, model_state, views, rng, ctx):
        """Mean softmax cross-entropy of the logits (in float32) against the labels."""
        del rng
        out, new_state = ctx.model.apply(
            {"params": params, **model_state}, views[0], train=True, mutable=list(model_state)
        )
        logits = out["logits"].astype(jnp.float32)
        labels = ctx.batch["label"]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
        return loss, LossAux({"loss": loss, "accuracy": accuracy}, new_state, Outputs())


def supervised_setup(config, setup, num_classes: int):
    """``setup`` with the supervised objective and its models; optimizer and shape kept."""
    from ssljax.parallel import AXIS

    del config
    objective = Supervised(num_classes=num_classes)
    return dataclasses.replace(
        setup,
        objective=objective,
        train_model=objective.build_model(setup.run, AXIS),
        eval_model=objective.build_model(setup.run, None),
    )


def compile_supervised_step(
    config,
    num_classes: int | None = None,
    image_shape: tuple | None = None,
    host_batch: dict | None = None,
):
    """The compiled supervised step for ``config``'s encoder, optimizer and dtype.

    Same return value as ``compile_step``; the random labels cover ``num_classes`` (default:
    the dataset's class count). ``host_batch`` (``[devices, per_device, ...]``) replaces the
    random batch.
    """
    setup = benchmark_setup(config, image_shape, supervised=True, num_classes=num_classes)
    n_cls = setup.train_model.num_classes
    lowered, state, batch = lower_with_setup(config, setup, host_batch, n_cls)
    return lowered.compile(), state, batch


def step_times(compiled, state, batch, steps: int) -> list[float]:
    """Wall seconds of ``steps`` calls after one warm-up call (the state is advanced)."""
    return timed_calls(compiled, state, batch, steps)[0]


def timed_calls(compiled, state, batch, steps: int, warmup: int = 1):
    """Wall seconds of ``steps`` calls after ``warmup`` calls; returns ``(times, state,
    metrics)`` with the advanced state and the last call's metrics on the host."""
    metrics = None
    for _ in range(warmup):
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t)
    return times, state, jax.device_get(metrics)


def compiled_flops(compiled) -> float:
    """FLOPs of one call of a compiled function, from XLA's cost analysis."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", float("nan")))


_RESULT_TYPE = re.compile(r"->\s*tensor<(?:[0-9]+x)*([a-z0-9]+)>")


def op_result_dtypes(lowered_text: str, op: str) -> dict:
    """Counts the result element types of ``op`` (e.g. ``'stablehlo.convolution'``) in a
    lowered module's text: ``{'bf16': 159, 'f32': 0, ...}``."""
    counts = collections.Counter()
    for line in lowered_text.splitlines():
        if op + "(" in line or op + " " in line:
            found = _RESULT_TYPE.findall(line)
            if found:
                counts[found[-1]] += 1
    return dict(counts)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is XLA running out of device memory."""
    text = str(exc)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def resnet50_config(
    per_device_batch: int,
    image_size: int = 224,
    dtype: str = "bfloat16",
    stage_sizes: tuple | None = None,
):
    """``configs/simclr.py:imagenet2012`` at a per-device batch, image size and dtype.

    ``stage_sizes`` (e.g. ``(1, 1, 1, 1)``) shortens the bottleneck ResNet for quick runs.
    """
    from ssljax import config_base

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
    config = config_base.load_config(os.path.join(root, "configs", "simclr.py") + ":imagenet2012")
    config.batch_size = int(per_device_batch) * jax.device_count()
    config.dtype = dtype
    config.augment.output_size = (int(image_size), int(image_size))
    if stage_sizes:
        config.model.encoder_kwargs.stage_sizes = tuple(int(n) for n in stage_sizes)
    return config


def measure_step(
    config, mode: str, *, steps: int, image_size: int, warmup: int = 1, num_classes: int = 1000
) -> dict:
    """Compiles and times the ``mode`` step (``'simclr'`` or ``'supervised'``) of ``config``.

    Returns one record: ``status`` 'ok', 'oom' (device memory ran out) or 'error' with the
    message; images/s from the median step time (a SimCLR image is two views), XLA's FLOPs
    and the result dtypes of the convolutions and matmuls in the lowered step (the matmuls
    include the float32 augmentation resizes and the float32 contrastive logits).
    """
    n_dev = jax.device_count()
    record = {
        "mode": mode,
        "per_device_batch": int(config.batch_size) // n_dev,
        "global_batch": int(config.batch_size),
        "devices": n_dev,
        "device_kind": jax.devices()[0].device_kind,
        "dtype": config.dtype,
        "image_size": image_size,
        "encoder": config.model.encoder,
    }
    try:
        record.update(_timed_step(config, mode, steps, image_size, warmup, num_classes))
        record["status"] = "ok"
    except Exception as exc:  # noqa: BLE001  (reported, the next measurement goes on)
        record["status"] = "oom" if is_out_of_memory(exc) else "error"
        record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    gc.collect()
    return record


def _timed_step(config, mode, steps, image_size, warmup, num_classes) -> dict:
    """The compile, timing and FLOP numbers of ``measure_step`` (exceptions propagate)."""
    shape = (image_size, image_size, 3)
    setup = benchmark_setup(config, shape, supervised=mode == SUPERVISED, num_classes=num_classes)
    t = time.perf_counter()
    lowered, state, batch = lower_with_setup(config, setup, num_classes=num_classes)
    text = lowered.as_text()
    conv_dtypes = op_result_dtypes(text, "stablehlo.convolution")
    dot_dtypes = op_result_dtypes(text, "stablehlo.dot_general")
    del text
    compiled = lowered.compile()
    compile_seconds = time.perf_counter() - t
    times, state, metrics = timed_calls(compiled, state, batch, steps, warmup)
    del state, batch
    median, best = float(np.median(times)), float(np.min(times))
    flops = compiled_flops(compiled)
    return {
        "compile_seconds": round(compile_seconds, 2),
        "steps_timed": len(times),
        "step_seconds": round(median, 5),
        "best_step_seconds": round(best, 5),
        "images_per_sec": round(config.batch_size / median, 1),
        "views_per_sec": round(config.batch_size * (2 if mode == SIMCLR else 1) / median, 1),
        "gflops_per_step": round(flops / 1e9, 2),
        "tflops_per_sec": round(flops / median / 1e12, 3),
        "loss": round(float(metrics["loss"]), 4),
        "finite": bool(metrics["finite"]),
        "conv_dtypes": conv_dtypes,
        "dot_dtypes": dot_dtypes,
    }


def resnet50_comparison(
    per_device_batches,
    *,
    steps: int,
    image_size: int = 224,
    dtype: str = "bfloat16",
    warmup: int = 1,
    stage_sizes: tuple | None = None,
    emit: Callable[[dict], None] = print,
) -> list:
    """SimCLR and supervised ResNet-50 steps at each per-device batch, one record each.

    ``emit`` gets every record as soon as it is measured, then one ``'ratio'`` record per
    batch (SimCLR images/s over supervised images/s) where both steps ran.
    """
    records = []
    for per_dev in per_device_batches:
        pair = {}
        for mode in (SIMCLR, SUPERVISED):
            config = resnet50_config(per_dev, image_size, dtype, stage_sizes)
            pair[mode] = measure_step(
                config, mode, steps=steps, image_size=image_size, warmup=warmup
            )
            records.append(pair[mode])
            emit(pair[mode])
        ratio = simclr_over_supervised(pair)
        if ratio is not None:
            records.append(ratio)
            emit(ratio)
    return records


def simclr_over_supervised(pair: dict) -> dict | None:
    """The ``'ratio'`` record of one batch size, or None unless both steps ran."""
    simclr, supervised = pair.get(SIMCLR), pair.get(SUPERVISED)
    if not (simclr and supervised and simclr["status"] == supervised["status"] == "ok"):
        return None
    return {
        "mode": "ratio",
        "per_device_batch": simclr["per_device_batch"],
        "global_batch": simclr["global_batch"],
        "simclr_over_supervised_images_per_sec": round(
            simclr["images_per_sec"] / supervised["images_per_sec"], 3
        ),
    }


def _number(value: float) -> str:
    """Thousands separators from 100 up, three significant digits below."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _cell(record: dict | None, key: str, fmt: Callable[[Any], str] = _number) -> str:
    """One table cell: the formatted value, the status when the step did not run, or '-'."""
    if record is None:
        return "-"
    if record.get("status", "ok") != "ok":
        return record["status"].upper()
    return fmt(record[key]) if key in record else "-"


def comparison_table(records: list) -> str:
    """Markdown table of ``resnet50_comparison`` records, one row per per-device batch."""
    by_batch = collections.defaultdict(dict)
    for r in records:
        by_batch[r["per_device_batch"]][r["mode"]] = r
    lines = [
        "| per-device batch | global batch | SimCLR images/s (2 views each) "
        "| supervised images/s | SimCLR / supervised | SimCLR step | supervised step "
        "| SimCLR TFLOP/s | supervised TFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ratio, seconds = "{:.3f}".format, "{:.4f} s".format
    for per_dev in sorted(by_batch):
        row = by_batch[per_dev]
        s, u, q = row.get(SIMCLR), row.get(SUPERVISED), row.get("ratio")
        global_batch = (s or u or q)["global_batch"]
        lines.append(
            f"| {per_dev} | {global_batch} | {_cell(s, 'images_per_sec')} "
            f"| {_cell(u, 'images_per_sec')} "
            f"| {_cell(q, 'simclr_over_supervised_images_per_sec', ratio)} "
            f"| {_cell(s, 'step_seconds', seconds)} | {_cell(u, 'step_seconds', seconds)} "
            f"| {_cell(s, 'tflops_per_sec')} | {_cell(u, 'tflops_per_sec')} |"
        )
    return "\n".join(lines)


def matmul_tflops(n: int, dtype: str = "bfloat16", repeats: int = 10) -> float:
    """Achieved TFLOP/s of a dense ``[n, n] @ [n, n]`` matmul (best of ``repeats``)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
    mm = jax.jit(lambda x, y: x @ y)
    mm(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12
