"""Downstream evaluation entry point: reads a pretraining workdir's checkpoint.

  python -m ssljax.evaluate --workdir runs/demo                      # linear, kNN, 1% / 10%
  python -m ssljax.evaluate --workdir runs/demo --protocols=label_efficiency \\
      --label_fractions=0.01,0.1 --seed=0 --finetune.epochs=15 --finetune.learning_rate=0.1
  python -m ssljax.evaluate --workdir runs/demo --protocols=transfer --transfer_dataset=cifar10
  python -m ssljax.evaluate --workdir runs/demo --protocols=transfer \\
      --transfer_dataset=image_folder --transfer_data_dir=/data/my_images
  python -m ssljax.evaluate --workdir runs/skip_gram [--wordsim FILE --analogies FILE]

A word2vec run (``config.dataset`` a text corpus) is scored from its embedding tables by
``ssljax.evaluation.text_workdir`` instead: the Levy-Goldberg PMI check, analogies and
similarity on the synthetic corpus, word-similarity and analogy files by path on any corpus.

Protocols (``ssljax.evaluation.protocols``): ``linear``, ``knn``, ``label_efficiency`` (linear
probe, fine-tuning and from-scratch training on class-balanced label fractions), ``finetune``
(every label) and ``transfer`` (linear probe on another dataset). Every ``finetune.*`` setting
of ``ssljax.evaluation.finetune.default_config`` is a flag ``--finetune.KEY=VALUE``
(``--finetune.crop_scale=0.5,1``). Writes ``DIR/evaluate.json`` (one
row per protocol and label fraction) and prints a table.

``--layer all`` (or ``--layer block1,block2``) with ``--protocols=linear,knn`` probes each
layer: one row per layer, the best by validation top-1 named in the report.

Figures (``--figures``, on by default; ``--nofigures`` writes none) go beside the report,
after it, from the features the protocols computed: ``evaluate_tsne.png`` (t-SNE of up to
2,000 test embeddings; ``evaluate_umap.png`` too with ``--figures_umap`` and umap-learn),
``evaluate_retrieval.png`` (test queries and their nearest train images),
``evaluate_curves.png`` (from ``DIR/metrics.jsonl``) and, with several layers,
``evaluate_layers.png``. An existing figure stops the run before it computes anything,
unless ``--overwrite_figures``; the report itself is replaced.
"""

from __future__ import annotations

from absl import flags

from ssljax import cli


def define_flags() -> None:
    """Defines the command-line flags once (a flag another entry point already defined in
    this process, such as ``--workdir``, is shared)."""
    from ssljax.evaluation import finetune, protocols

    def define(kind, name, default, help_text):
        if name not in flags.FLAGS:
            getattr(flags, f"DEFINE_{kind}")(name, default, help_text)

    define("string", "workdir", None, "Pretraining run directory.")
    define("integer", "step", None, "Checkpoint step (default: latest).")
    define(
        "string",
        "layer",
        None,
        "Encoder layer the probes read (a sown name; default: config.eval.layer); with "
        "--protocols=linear,knn also a comma-separated list or 'all' (one row per layer).",
    )
    define("integer", "grid", None, "Spatial pooling grid for feature maps.")
    define(
        "string",
        "protocols",
        ",".join(protocols.DEFAULT_PROTOCOLS),
        f"Comma-separated protocols, of: {', '.join(protocols.PROTOCOLS)}.",
    )
    define(
        "string",
        "label_fractions",
        ",".join(f"{f:g}" for f in protocols.DEFAULT_FRACTIONS),
        "Comma-separated label fractions in (0, 1] of the label_efficiency protocol.",
    )
    define("integer", "seed", 0, "Seed of the label subsets and of fine-tuning.")
    define(
        "string",
        "wordsim",
        None,
        "Text runs: a WordSim-353-format file (word, word, score per line) to score.",
    )
    define(
        "string",
        "analogies",
        None,
        "Text runs: a questions-words.txt-format analogy file to score (3CosAdd).",
    )
    define(
        "string",
        "transfer_dataset",
        None,
        "Dataset of the transfer protocol: a registered name (cifar10, ...), any TFDS name, "
        "or image_folder (with --transfer_data_dir).",
    )
    define(
        "string",
        "transfer_data_dir",
        None,
        "Directory of the transfer dataset (TFDS data_dir, or the image folder).",
    )
    define(
        "bool",
        "figures",
        True,
        "Write PNG figures beside evaluate.json (t-SNE, retrieval grid, training curves, "
        "per-layer bars with several layers).",
    )
    define("bool", "figures_umap", False, "Also a UMAP map (needs umap-learn).")
    define("bool", "overwrite_figures", False, "Replace existing figure files.")
    for key, value in finetune.default_config().items():
        help_text = f"finetune.{key} of the fine-tuning recipe (default {value!r})."
        if isinstance(value, bool):
            define("bool", f"finetune.{key}", value, help_text)
        elif isinstance(value, int):
            define("integer", f"finetune.{key}", value, help_text)
        elif isinstance(value, float):
            define("float", f"finetune.{key}", value, help_text)
        elif isinstance(value, tuple):
            define("list", f"finetune.{key}", [f"{v:g}" for v in value], help_text)
        else:
            define("string", f"finetune.{key}", value, help_text)


def finetune_overrides() -> dict:
    """The ``--finetune.KEY=VALUE`` flags given on the command line, as typed values."""
    from ssljax.evaluation import finetune

    out = {}
    for key, default in finetune.default_config().items():
        flag = flags.FLAGS[f"finetune.{key}"]
        if not flag.present:
            continue
        value = flag.value
        if isinstance(default, tuple):
            try:
                value = tuple(float(v) for v in value)
            except ValueError:
                raise ValueError(
                    f"--finetune.{key}={','.join(value)} must be comma-separated numbers"
                ) from None
        out[key] = value
    return out


def main() -> int:
    from ssljax import parallel
    from ssljax.evaluation.protocols import evaluate_workdir, format_report

    f = flags.FLAGS
    if not f.workdir:
        raise ValueError("missing --workdir; e.g. --workdir runs/demo")
    from ssljax.evaluation import text_workdir

    if text_workdir.is_text_workdir(f.workdir):  # word2vec: scored from its tables
        report = text_workdir.evaluate_text_workdir(
            f.workdir, step=f.step, wordsim=f.wordsim, analogies=f.analogies
        )
        if parallel.is_main_process():
            print(text_workdir.format_text_report(report), flush=True)
        return 0
    if f.wordsim or f.analogies:
        raise ValueError(
            f"--wordsim/--analogies score word vectors; {f.workdir} is not a text run "
            "(its config.dataset is an image dataset)"
        )
    report = evaluate_workdir(
        f.workdir,
        protocols=f.protocols,
        fractions=f.label_fractions,
        seed=f.seed,
        layer=f.layer,
        grid=f.grid,
        step=f.step,
        finetune=finetune_overrides(),
        transfer_dataset=f.transfer_dataset,
        transfer_data_dir=f.transfer_data_dir,
        figures=f.figures,
        figures_umap=f.figures_umap,
        overwrite_figures=f.overwrite_figures,
    )
    if parallel.is_main_process():
        print(format_report(report), flush=True)
        for path in report.get("figures", {}).values():
            print(f"figure: {path}", flush=True)
    return 0


def cli_main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``argv``: for calling it in-process)."""
    define_flags()
    cli.run(main, argv)


if __name__ == "__main__":
    cli_main()
