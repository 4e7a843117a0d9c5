"""Linear evaluation entry point: reads a pretraining workdir's latest checkpoint.

  python -m ssljax.linear_eval --workdir runs/demo [--layer block3 --grid 2 --step 1000]
  python -m ssljax.linear_eval --workdir runs/demo --layer all   # every block, best by validation

Writes ``DIR/linear_eval.json`` (top1, top5, kNN, and the raw-pixel and random-encoder
baselines) and prints a table.
"""

from __future__ import annotations

from absl import flags

from ssljax import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Pretraining run directory.")
_LAYER = flags.DEFINE_string(
    "layer",
    None,
    "Encoder layer to probe: a sown name, a comma-separated list, or 'all' (each is probed, "
    "the best by validation top-1 is reported; default: config.eval.layer).",
)
_GRID = flags.DEFINE_integer("grid", None, "Spatial pooling grid for feature maps.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_BASELINES = flags.DEFINE_bool("baselines", None, "Also probe raw pixels and a random encoder.")
_BASELINE_CACHE = flags.DEFINE_bool(
    "baseline_cache",
    True,
    "Read the baselines from the per-machine cache when it holds them, and store them there "
    "($SSLJAX_CACHE_DIR, default ~/.cache/ssljax/baselines); --nobaseline_cache recomputes.",
)


def main() -> int:
    if not _WORKDIR.value:
        raise ValueError("missing --workdir; e.g. --workdir runs/demo")
    from ssljax.evaluation.checkpoint_eval import evaluate_workdir, format_report
    from ssljax.evaluation.text_workdir import is_text_workdir

    if is_text_workdir(_WORKDIR.value):
        raise ValueError(
            f"{_WORKDIR.value} pretrained word vectors (a text corpus), which have no linear "
            f"probe; score them with: python -m ssljax.evaluate --workdir {_WORKDIR.value}"
        )

    report = evaluate_workdir(
        _WORKDIR.value,
        layer=_LAYER.value,
        grid=_GRID.value,
        step=_STEP.value,
        baselines=_BASELINES.value,
        baseline_cache=_BASELINE_CACHE.value,
    )
    from ssljax import parallel

    if parallel.is_main_process():
        print(format_report(report), flush=True)
    return 0


def cli_main() -> None:
    """Console-script entry point."""
    cli.run(main)


if __name__ == "__main__":
    cli_main()
