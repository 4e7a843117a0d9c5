"""Evaluation of a pretraining checkpoint: frozen features -> linear probe and kNN.

Reads only what pretraining wrote (checkpoint + stored config), never training internals.

Scales to ImageNet and to several processes: each split is read once, in batches, each
process reading its own share and computing the features of every probed layer (of the
pretrained and of the randomly initialised encoder) and the raw pixels on all its devices;
only the features are kept (``eval.feature_dtype``), gathered to every process, and every
process runs the same probe. Features larger than ``eval.max_probe_bytes`` are probed by the
streamed solvers (minibatch Adam, chunked kNN); raw pixels above
``eval.max_raw_pixel_bytes`` are skipped with a note. Only process 0 logs and writes.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from ssljax.training.logging import write_json_atomic

REPORT_FILE = "linear_eval.json"

# ``eval.*`` settings added with the streamed evaluation, and their values when a stored
# config predates them.
EVAL_DEFAULTS = {
    # Storage dtype of the extracted features ('float32' or 'float16': half the memory).
    "feature_dtype": "float32",
    # Train features (as float32) above this many bytes are probed by the streamed solvers.
    "max_probe_bytes": 4 * 2**30,
    # Raw-pixel train features (at feature_dtype) above this many bytes skip that baseline.
    "max_raw_pixel_bytes": 4 * 2**30,
    # Streamed probe / kNN: bytes of one float32 chunk of features on the device.
    "probe_chunk_bytes": 256 * 2**20,
    # Streamed probe: Adam epochs per l2 value (and for the refit), batch rows, peak rate.
    # On the Fashion-MNIST demo's pooled features of a random encoder these reach L-BFGS's
    # test top-1 (0.8341 against 0.8344); 10 epochs at 1e-3 and 1024 rows stop at 0.821.
    "probe_epochs": 20,
    "probe_batch_size": 256,
    "probe_learning_rate": 1e-2,
    # The kNN monitor during pretraining (ssljax.training.monitor): its fixed bank of train
    # examples and its queries from the test split.
    "monitor_bank_examples": 5000,
    "monitor_query_examples": 1000,
}


def eval_setting(eval_cfg, key: str):
    """``eval_cfg[key]``, or its :data:`EVAL_DEFAULTS` value when the config has no such key."""
    return eval_cfg.get(key, EVAL_DEFAULTS[key])


def is_main_process() -> bool:
    """True on the process that logs and writes the report (process 0)."""
    return jax.process_index() == 0


def _log(message: str) -> None:
    if is_main_process():
        print(f"[linear_eval] {message}", flush=True)


def encoder_feature_fn(encoder, *, layer: str, grid: int):
    """``(variables, uint8 images [B,H,W,C]) -> float32 features [B, D]`` for ``layer``
    (not jitted)."""
    from ssljax.models import extract_features

    def features(variables, images):
        x = images.astype(jnp.float32) / 255.0
        return extract_features(encoder, variables, x, layer=layer, grid=grid)

    return features


# The extractor key of the probed layers' concatenated features (split per layer after reading).
LAYERS_KEY = "__layers__"


def encoder_layers_fn(encoder, *, layers: Sequence[str], grid: int):
    """``(variables, uint8 images) -> [B, sum D]``: every layer of ``layers`` from one pass
    of the network, concatenated in order (``ssljax.models.extract_layers``)."""
    from ssljax.models import extract_layers

    def features(variables, images):
        x = images.astype(jnp.float32) / 255.0
        return extract_layers(encoder, variables, x, layers=tuple(layers), grid=grid)

    return features


def layer_columns(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``[(start, stop)]`` column ranges of consecutive blocks of ``sizes`` columns."""
    stops = np.cumsum(np.asarray(sizes, np.int64))
    return [(int(b - a), int(b)) for a, b in zip(sizes, stops)]


def feature_fn(encoder, *, layer: str, grid: int):
    """A jitted ``(variables, uint8 images [B,H,W,C]) -> features [B, D]`` for ``layer``."""
    return jax.jit(encoder_feature_fn(encoder, layer=layer, grid=grid))


def compute_features(fn, variables, images: np.ndarray, *, batch_size: int) -> np.ndarray:
    """Applies ``fn`` over ``images`` in fixed-size batches (last one padded), as float32."""
    n = images.shape[0]
    out = []
    for start in range(0, n, batch_size):
        chunk = images[start : start + batch_size]
        pad = batch_size - chunk.shape[0]
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
        out.append(np.asarray(fn(variables, chunk))[: batch_size - pad])
    return np.concatenate(out, axis=0).astype(np.float32)


def probe_is_streamed(num_rows: int, dim: int, max_probe_bytes: int) -> bool:
    """Whether ``[num_rows, dim]`` train features, as float32, exceed ``max_probe_bytes``
    (then the streamed solvers run instead of full-batch L-BFGS and the in-memory kNN)."""
    from ssljax.evaluation.features import feature_bytes

    return feature_bytes(num_rows, dim, np.float32) > int(max_probe_bytes)


def chunk_rows_for(dim: int, chunk_bytes: int, *, at_least: int = 1) -> int:
    """Rows of one float32 chunk of ``dim`` features within ``chunk_bytes`` (>= ``at_least``)."""
    return max(int(at_least), 1, int(chunk_bytes) // (4 * max(int(dim), 1)))


def knn_test_batch(similarity_columns: int, chunk_bytes: int, *, most: int = 1024) -> int:
    """Test rows per kNN step, so that its ``[rows, similarity_columns]`` float32
    similarities stay within ``chunk_bytes`` (between 1 and ``most`` rows)."""
    return int(min(most, max(1, int(chunk_bytes) // (4 * max(int(similarity_columns), 1)))))


def evaluate_features(
    train_x, train_y, test_x, test_y, *, num_classes: int, eval_cfg, knn: bool = True
) -> dict:
    """Linear probe (L2 chosen on held-out train data) and weighted kNN on given features.

    Train features that fit ``eval.max_probe_bytes`` (as float32) get full-batch L-BFGS and
    the in-memory kNN (``solver: 'lbfgs'``); larger ones the streamed probe and kNN, which
    move ``eval.probe_chunk_bytes`` of features at a time (``solver: 'streamed_adam'``).
    The features may be float16 or float32. The kNN takes as many test rows at a time as
    keep its similarity matrix within ``eval.probe_chunk_bytes`` (at most 1024, the
    in-memory default), so its memory does not grow with the train split either.
    """
    from ssljax.evaluation import fit_linear_probe, knn_evaluate
    from ssljax.evaluation.linear_probe import fit_linear_probe_streamed

    num_train, dim = np.shape(train_x)
    streamed = probe_is_streamed(num_train, dim, eval_setting(eval_cfg, "max_probe_bytes"))
    common = dict(
        num_classes=num_classes, l2_grid=tuple(eval_cfg.l2_grid), val_fraction=eval_cfg.val_fraction
    )
    chunk_bytes = eval_setting(eval_cfg, "probe_chunk_bytes")
    chunk = chunk_rows_for(dim, chunk_bytes, at_least=int(eval_cfg.knn_k))
    if streamed:
        report = fit_linear_probe_streamed(
            train_x,
            train_y,
            test_x,
            test_y,
            **common,
            chunk_rows=chunk,
            epochs=int(eval_setting(eval_cfg, "probe_epochs")),
            batch_size=int(eval_setting(eval_cfg, "probe_batch_size")),
            learning_rate=float(eval_setting(eval_cfg, "probe_learning_rate")),
        )
    else:
        report = dict(fit_linear_probe(train_x, train_y, test_x, test_y, **common), solver="lbfgs")
    if knn:
        report["knn"] = knn_evaluate(
            train_x,
            train_y,
            test_x,
            test_y,
            num_classes=num_classes,
            k=eval_cfg.knn_k,
            temperature=eval_cfg.knn_temperature,
            batch_size=knn_test_batch(
                min(chunk, num_train) if streamed else num_train, chunk_bytes
            ),
            train_chunk_rows=chunk if streamed else None,
        )
    return report


def encoder_of(setup, params, model_state):
    """The encoder module and its variables, cut out of the objective's network."""
    from ssljax.models.network import encoder_variables

    variables = encoder_variables({"params": params, **model_state})
    return setup.eval_model.encoder, variables


def resolve_layers(spec: str, available: list[str]) -> list[str]:
    """The layers to probe: ``'all'``, one sown name, or a comma-separated list of names.

    Raises:
      ValueError: a name the encoder does not sow (the message lists the ones it does).
    """
    names = list(available) if spec.strip() == "all" else [n.strip() for n in spec.split(",")]
    names = [n for n in names if n]
    bad = [n for n in names if n not in available]
    if bad or not names:
        raise ValueError(
            f"unknown layer {(bad or [spec])[0]!r}; the encoder sows {available} "
            "(or pass 'all', or a comma-separated list)"
        )
    return names


def best_validation_top1(report: dict) -> float:
    """The probe's best validation top-1 over its l2 grid (its training top-1 with no grid)."""
    values = list(report.get("val_top1", {}).values())
    return float(max(values)) if values else float(report["train_top1"])


def select_layer(reports: dict[str, dict]) -> str:
    """The layer whose probe has the best *validation* top-1 (held out from the train split;
    the test split never chooses). Ties go to the layer listed first."""
    names = list(reports)
    return max(names, key=lambda n: (best_validation_top1(reports[n]), -names.index(n)))


def summarise_layers(reports: dict[str, dict]) -> dict[str, dict]:
    """Per-layer summary kept in the JSON report when several layers are probed."""
    return {
        name: dict(
            top1=r["top1"],
            top5=r["top5"],
            knn_top1=r["knn"]["top1"],
            val_top1=best_validation_top1(r),
            feature_dim=r["feature_dim"],
        )
        for name, r in reports.items()
    }


def raw_pixel_skip_reason(num_train: int, image_shape, dtype, max_bytes: int) -> str | None:
    """Why the raw-pixel baseline is skipped, or None when it runs: its train features
    (``num_train x prod(image_shape)`` at ``dtype``) would exceed ``max_bytes``."""
    from ssljax.evaluation.features import feature_bytes

    dim = math.prod(image_shape)
    size = feature_bytes(num_train, dim, dtype)
    if size <= int(max_bytes):
        return None
    return (
        f"{num_train} x {dim} {np.dtype(dtype).name} raw-pixel train features are "
        f"{size / 2**30:.1f} GiB, above eval.max_raw_pixel_bytes = "
        f"{int(max_bytes) / 2**30:.1f} GiB"
    )


def split_features(
    dataset,
    split: str,
    extractors: dict,
    dims: dict,
    *,
    batch_size: int,
    data_dir,
    dtype,
    log=None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every extractor's features of a whole split, in file order, on every process.

    One streamed pass: each process reads its own share (``eval_process_split``) in batches
    of ``batch_size`` (the last one padded and masked), then the shares are gathered
    (``features.gather_rows``; nothing to gather on one process).

    ``dataset`` is a registered name or a ``DatasetSpec`` (``spec_from_config``).

    Returns:
      ``({name: dtype [N, dims[name]]}, labels int32 [N])``.
    """
    from ssljax.data.input_pipeline import eval_batches, eval_shard_sizes
    from ssljax.evaluation.features import extract_split, gather_rows

    index, count = jax.process_index(), jax.process_count()
    counts = eval_shard_sizes(dataset, split, process_count=count, data_dir=data_dir)
    batches = eval_batches(
        dataset,
        split,
        batch_size=batch_size,
        data_dir=data_dir,
        process_index=index,
        process_count=count,
    )
    local, labels = extract_split(
        batches, extractors, num_rows=counts[index], dims=dims, dtype=dtype, log=log
    )
    gathered = {key: gather_rows(local.pop(key), counts) for key in list(extractors)}
    return gathered, gather_rows(labels, counts)


def baseline_keys(
    spec, data_root, num_train, num_test, eval_cfg, init_variables, layers, grid, directory
):
    """``{'dir', 'keys': {kind: key}, 'fields': {kind: fields}}`` of this evaluation's
    baselines in the per-machine cache (:mod:`ssljax.evaluation.baseline_cache`)."""
    from ssljax.evaluation import baseline_cache as bc

    data = bc.dataset_fields(spec, num_train, num_test, bc.files_fingerprint(data_root))
    probe_cfg = bc.probe_settings(eval_cfg, EVAL_DEFAULTS)
    fields = {
        "raw_pixels": {**data, "probe": probe_cfg},
        "random_init": {
            **data,
            "probe": probe_cfg,
            "encoder": bc.variables_digest(init_variables),
            "layers": list(layers),
            "grid": int(grid),
        },
    }
    return {
        "dir": bc.cache_dir(directory),
        "keys": {kind: bc.cache_key(kind, f) for kind, f in fields.items()},
        "fields": fields,
    }


def read_baselines(cache, *, with_raw_pixels: bool) -> dict:
    """The cached baseline reports (``cached: true``, ``cache_file``) every process holds;
    a baseline missing on any process is computed by all (feature extraction is
    collective)."""
    from ssljax import parallel
    from ssljax.evaluation import baseline_cache as bc

    kinds = ["random_init"] + (["raw_pixels"] if with_raw_pixels else [])
    out = {}
    for kind in kinds:
        entry = bc.read_entry(cache["dir"], kind, cache["keys"][kind])
        if parallel.any_process(entry is None):
            continue
        path = bc.entry_path(cache["dir"], kind, cache["keys"][kind])
        out[kind] = dict(entry["report"], cached=True, cache_file=str(path))
        _log(f"{kind}: read from the baseline cache {path}")
    return out


def store_baselines(cache, report: dict, cached: dict) -> None:
    """Writes the baselines computed in this evaluation to the cache (process 0)."""
    from ssljax.evaluation import baseline_cache as bc

    for kind in bc.KINDS:
        if kind in report and kind not in cached:
            path = bc.write_entry(
                cache["dir"], kind, cache["keys"][kind], report[kind], cache["fields"][kind]
            )
            if path is not None:
                _log(f"{kind}: stored in the baseline cache {path}")


def evaluate_workdir(
    workdir: str,
    *,
    layer: str | None = None,
    grid: int | None = None,
    step: int | None = None,
    baselines: bool | None = None,
    baseline_cache: bool = True,
    cache_dir: str | None = None,
) -> dict:
    """Evaluates the checkpoint in ``workdir`` and writes ``workdir/linear_eval.json``.

    ``layer`` is one sown layer (``'block3'``), a comma-separated list, or ``'all'`` (every
    layer the encoder sows). With several layers each is probed, and the reported one is
    the best by validation top-1 (``select_layer``): the best layer is often not the last
    (Kolesnikov et al. 2019, iGPT). The random-encoder baseline gets the same choice.

    Each split is read once (:func:`split_features`): every layer of the pretrained and the
    random encoder, and the raw pixels, are extracted in that pass, on every local device of
    every process; every process then runs the same probes, and process 0 alone logs and
    writes the report. Raw pixels whose train features would exceed
    ``eval.max_raw_pixel_bytes`` are skipped (``raw_pixels_skipped`` says why).

    The baselines depend only on the dataset, the encoder's initial variables, the layers,
    the grid and the probe settings, so with ``baseline_cache`` they are read from a
    per-machine cache when it holds them (:mod:`ssljax.evaluation.baseline_cache`; its
    directory is ``cache_dir``, default ``$SSLJAX_CACHE_DIR`` or
    ``~/.cache/ssljax/baselines``), and stored there after they are computed. A cached
    baseline's report says ``cached: true`` and names its ``cache_file``.

    Returns the report: ``top1``, ``top5``, ``l2``, ``knn``, ``checkpoint_step``, the probed
    ``layer``/``grid``, ``solver``, ``feature_dtype``, ``layers`` (per-layer summary, several
    layers only), and (with baselines) ``raw_pixels`` (or ``raw_pixels_skipped``) and
    ``random_init`` reports.
    """
    from ssljax.data.datasets import spec_from_config
    from ssljax.data.input_pipeline import eval_shard_sizes, get_builder
    from ssljax.evaluation import features as feats
    from ssljax.models import encoder_layer_names
    from ssljax.training.loop import initial_state, restore_for_eval

    t0 = time.perf_counter()
    config, setup, state, step = restore_for_eval(workdir, step)
    eval_cfg = config.eval
    layer = eval_cfg.layer if layer is None else layer
    grid = int(eval_cfg.grid if grid is None else grid)
    baselines = bool(eval_cfg.get("baselines", True) if baselines is None else baselines)
    dtype_name = eval_setting(eval_cfg, "feature_dtype")
    dtype = feats.feature_dtype(dtype_name)
    spec = spec_from_config(config.dataset)
    data_dir = config.dataset.get("data_dir")

    encoder, variables = encoder_of(setup, state.params, state.model_state)
    sample = jax.ShapeDtypeStruct((1, *spec.image_shape), jnp.float32)
    layers = resolve_layers(layer, encoder_layer_names(encoder, variables, sample))
    _log(
        f"checkpoint step {step} of {workdir}; dataset {spec.name}; "
        f"layer {','.join(layers)} grid {grid}"
    )

    mesh = feats.local_mesh()
    batch_size = feats.round_up(int(eval_cfg.batch_size), mesh.size)
    encoders = {"pretrained": variables}
    raw_skipped = None
    cached, cache = {}, None
    if baselines:
        init = initial_state(config, setup)
        init_variables = encoder_of(setup, init.params, init.model_state)[1]
        num_train = sum(eval_shard_sizes(spec, spec.train_split, data_dir=data_dir))
        raw_skipped = raw_pixel_skip_reason(
            num_train, spec.image_shape, dtype, eval_setting(eval_cfg, "max_raw_pixel_bytes")
        )
        if baseline_cache:
            num_test = sum(eval_shard_sizes(spec, spec.test_split, data_dir=data_dir))
            cache = baseline_keys(
                spec,
                get_builder(spec, data_dir=data_dir).data_dir,
                num_train,
                num_test,
                eval_cfg,
                init_variables,
                layers,
                grid,
                cache_dir,
            )
            cached = read_baselines(cache, with_raw_pixels=raw_skipped is None)
        if "random_init" not in cached:
            encoders["random_init"] = init_variables
    # One pass of each encoder gives every probed layer (columns split after reading).
    extractors, dims, layer_dims = {}, {}, {}
    fn = encoder_layers_fn(encoder, layers=layers, grid=grid)
    mapped = feats.shard_rows(fn, mesh)
    for prefix, vars_ in encoders.items():
        key = f"{prefix}/{LAYERS_KEY}"
        extractors[key] = feats.device_extractor(mapped, vars_, mesh)
        layer_dims[prefix] = [
            feats.output_dim(
                encoder_feature_fn(encoder, layer=n, grid=grid), vars_, spec.image_shape
            )
            for n in layers
        ]
        dims[key] = sum(layer_dims[prefix])
    if baselines and raw_skipped is None and "raw_pixels" not in cached:
        extractors["raw_pixels"] = feats.pixel_features
        dims["raw_pixels"] = math.prod(spec.image_shape)

    def read(split):
        t = time.perf_counter()
        out = split_features(
            spec,
            split,
            extractors,
            dims,
            batch_size=batch_size,
            data_dir=data_dir,
            dtype=dtype,
            log=lambda m: _log(f"{split}: {m}"),
        )
        size = sum(v.nbytes for v in out[0].values())
        _log(
            f"{split}: {len(out[1])} images -> {len(extractors)} feature sets "
            f"({size / 2**20:.0f} MiB {dtype_name}) on {jax.process_count()} process(es) x "
            f"{mesh.size} device(s) in {time.perf_counter() - t:.0f} s"
        )
        return out

    def per_layer(features):
        for prefix, sizes in layer_dims.items():
            combined = features.pop(f"{prefix}/{LAYERS_KEY}")
            for name, (lo, hi) in zip(layers, layer_columns(sizes)):
                features[f"{prefix}/{name}"] = np.ascontiguousarray(combined[:, lo:hi])
            del combined
        return features

    train_features, train_labels = read(spec.train_split)
    test_features, test_labels = read(spec.test_split)
    train_features, test_features = per_layer(train_features), per_layer(test_features)

    def probe_one(key, name):
        t = time.perf_counter()
        tr, te = train_features.pop(key), test_features.pop(key)
        res = evaluate_features(
            tr, train_labels, te, test_labels, num_classes=spec.num_classes, eval_cfg=eval_cfg
        )
        _log(
            f"{name}: top1 {res['top1']:.4f} knn {res['knn']['top1']:.4f} "
            f"val {best_validation_top1(res):.4f} (dim {tr.shape[1]}, {res['solver']}, "
            f"{time.perf_counter() - t:.0f} s)"
        )
        return res

    def probe(prefix, name):
        reports = {n: probe_one(f"{prefix}/{n}", f"{name} {n}") for n in layers}
        best = select_layer(reports)
        report = dict(reports[best], layer=best)
        if len(layers) > 1:
            report["layers"] = summarise_layers(reports)
            _log(f"{name}: best layer by validation top-1 is {best}")
        return report

    report = probe("pretrained", "pretrained encoder")
    report.update(
        checkpoint_step=int(step),
        dataset=spec.name,
        objective=config.objective.name,
        encoder=config.model.encoder,
        grid=grid,
        feature_dtype=dtype_name,
    )
    if baselines:
        if raw_skipped is None:
            report["raw_pixels"] = cached.get("raw_pixels") or probe_one("raw_pixels", "raw pixels")
        else:
            report["raw_pixels_skipped"] = raw_skipped
            _log(f"raw pixels skipped: {raw_skipped}")
        report["random_init"] = cached.get("random_init") or probe("random_init", "random encoder")
        if cache is not None and is_main_process():
            store_baselines(cache, report, cached)
    report["seconds"] = time.perf_counter() - t0
    if is_main_process():
        write_json_atomic(str(epath.Path(workdir) / REPORT_FILE), report)
    return report


def format_report(report: dict) -> str:
    """A Markdown results table for a linear-eval report."""
    from ssljax.training.logging import format_table

    rows = [
        dict(
            features=f"{report['objective']} {report['encoder']} "
            f"(step {report['checkpoint_step']}, {report['layer']})",
            top1=report["top1"],
            top5=report["top5"],
            knn_top1=report["knn"]["top1"],
        )
    ]
    for name, r in report.get("layers", {}).items():
        if name != report["layer"]:
            rows.append(
                dict(
                    features=f"  {name} (val top-1 {r['val_top1']:.4f})",
                    top1=r["top1"],
                    top5=r["top5"],
                    knn_top1=r["knn_top1"],
                )
            )
    for key, name in (("random_init", "random-init encoder"), ("raw_pixels", "raw pixels")):
        if key in report:
            r = report[key]
            notes = ([r["layer"]] if "layer" in r else []) + (["cached"] if r.get("cached") else [])
            label = f"{name} ({', '.join(notes)})" if notes else name
            rows.append(
                dict(features=label, top1=r["top1"], top5=r["top5"], knn_top1=r["knn"]["top1"])
            )
    if "raw_pixels_skipped" in report:
        rows.append(
            dict(
                features=f"raw pixels (skipped: {report['raw_pixels_skipped']})",
                top1="-",
                top5="-",
                knn_top1="-",
            )
        )
    title = f"Linear evaluation on {report['dataset']} (test split)"
    return title + "\n" + format_table(rows, ["features", "top1", "top5", "knn_top1"])
