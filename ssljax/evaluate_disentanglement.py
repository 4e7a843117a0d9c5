"""Disentanglement evaluation entry point: reads a pretraining workdir's latest checkpoint.

  python -m ssljax.evaluate_disentanglement --workdir runs/vae_dsprites
  python -m ssljax.evaluate_disentanglement --workdir runs/vae_dsprites \\
      --num_train=1000 --num_test=500            # quick: fewer samples for every metric
  python -m ssljax.evaluate_disentanglement --workdir DIR --metrics=mig,dci --nofigures

Runs every metric of ``ssljax.evaluation.disentanglement`` on dSprites' ground-truth factors
(``ssljax.evaluation.disentanglement.checkpoint_eval``), writes ``DIR/disentanglement.json``
and, for models with a decoder, reconstruction, traversal and embedding figures, and prints a
table.
"""

from __future__ import annotations

from absl import flags

from ssljax import cli


def define_flags() -> None:
    """Defines the command-line flags (only when run as a program, so that importing this
    module never clashes with other entry points' flags of the same name)."""
    flags.DEFINE_string("workdir", None, "Pretraining run directory.")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
    flags.DEFINE_string("metrics", None, "Comma-separated metric names (default: every metric).")
    flags.DEFINE_integer(
        "num_train", None, "Training points of every metric (default: the suite's)."
    )
    flags.DEFINE_integer(
        "num_test", None, "Test/eval points of every metric (default: the suite's)."
    )
    flags.DEFINE_integer("seed", 0, "Random seed of the metrics and image samples.")
    flags.DEFINE_bool("figures", True, "Write the PNG figures.")
    flags.DEFINE_string("embedding", "pca", "2-D embedding: pca or tsne.")
    flags.DEFINE_integer("embedding_points", 2000, "Images in the embedding figure.")


def main() -> int:
    import jax

    from ssljax.evaluation.disentanglement.checkpoint_eval import evaluate_workdir, format_report

    f = flags.FLAGS
    if not f.workdir:
        raise ValueError("missing --workdir; e.g. --workdir runs/vae_dsprites")
    metrics = None
    if f.metrics:
        metrics = [m.strip() for m in f.metrics.split(",") if m.strip()]
    report = evaluate_workdir(
        f.workdir,
        step=f.step,
        metrics=metrics,
        num_train=f.num_train,
        num_test=f.num_test,
        random_seed=f.seed,
        figures=f.figures,
        embedding=f.embedding,
        embedding_points=f.embedding_points,
    )
    if jax.process_index() == 0:
        print(format_report(report), flush=True)
    return 0


def cli_main() -> None:
    """Console-script entry point."""
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    cli_main()
