"""word2vec through ssljax's train step: training, checkpoints, evaluation and the tables.

  python experiments/word2vec.py --corpus synthetic --out_dir runs/word2vec
  python experiments/word2vec.py --corpus wiki --out_dir runs/word2vec_wiki   # needs gensim
  python experiments/word2vec.py --profile   # the parts of one skip-gram step
  python experiments/word2vec.py --corpus files --text a.txt b.txt --wordsim ws.tsv \\
      --analogies questions-words.txt --out_dir runs/word2vec_mine

* ``synthetic``: the corpus of ``ssljax.data.text.synthetic_corpus``, whose pair statistics
  are known exactly. Every variant (skip-gram and CBOW, negative sampling and hierarchical
  softmax) is trained, saved as a checkpoint and evaluated from it: the Levy-Goldberg check
  (``W C^T`` against ``PMI - log k``), planted analogies (3CosAdd, 3CosMul) and the Spearman
  correlation with the true similarities.
* ``wiki``: the shortened English Wikipedia dump that gensim's wheel ships (its
  ``test/test_data``), parsed with gensim's ``WikiCorpus`` into a text file that ssljax then
  reads like any other; skip-gram with negative sampling beside gensim's ``Word2Vec`` at the
  same settings: WordSim-353 Spearman, Google analogies and words per second.
* ``files``: any UTF-8 text files (one sentence or paragraph per line).

A run writes ``OUT/word2vec.json`` and ``OUT/word2vec.md`` and one checkpoint directory per
trained model; existing outputs stop it before any work unless ``--overwrite``.

Learning rate: ``word2vec.c`` takes one SGD step of ``alpha`` per pair (0.025 for skip-gram,
0.05 for CBOW, decayed linearly to ``alpha * 1e-4``). The train step averages the loss over a
batch of ``B`` pairs, so the same per-pair step is a learning rate of ``alpha * B``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any, Sequence

import numpy as np

CORPORA = ("synthetic", "wiki", "files")
VARIANTS = (
    ("skip_gram", "negative_sampling"),
    ("skip_gram", "hierarchical_softmax"),
    ("cbow", "negative_sampling"),
    ("cbow", "hierarchical_softmax"),
)
ALPHA = {"skip_gram": 0.025, "cbow": 0.05}  # word2vec.c's defaults
GENSIM_TEST_DATA = "gensim/test/test_data"
WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


@dataclasses.dataclass(frozen=True)
class Settings:
    """One run's settings (gensim's names in brackets).

    Attributes:
      dim: embedding dimension (``vector_size``).
      window: maximum window (``window``); each centre draws its own in ``1..window``.
      negatives: noise words per pair (``negative``).
      epochs: passes over the corpus (``epochs``).
      min_count: words rarer than this are dropped (``min_count``).
      subsample: frequent-word subsampling threshold (``sample``; 0: none).
      batch_size: pairs per train step.
      alpha: per-pair learning rate (``alpha``); None: ``ALPHA[model]``.
      seed: seeds the initialisation, windows, subsampling and noise words.
    """

    dim: int = 100
    window: int = 5
    negatives: int = 5
    epochs: int = 5
    min_count: int = 5
    subsample: float = 1e-3
    batch_size: int = 1024
    alpha: float | None = None
    seed: int = 0


SYNTHETIC = Settings(dim=50, window=5, epochs=3, min_count=1, subsample=0.0, batch_size=256)
SYNTHETIC_TOKENS = 200_000
WIKI = Settings(batch_size=4096)


def train_word2vec(sentences, counts, *, model: str, output: str, settings: Settings) -> dict:
    """Trains ``model`` (``skip_gram`` or ``cbow``) with ``output`` on token-id ``sentences``
    through ``ssljax.identifiability.fit.fit`` (the library's pmapped train step).

    Returns:
      ``{'params', 'seconds', 'example_seconds', 'steps', 'examples', 'tokens',
      'words_per_second'}``: ``seconds`` trains, ``example_seconds`` builds the pairs on the
      host, and ``words_per_second`` is in-vocabulary corpus tokens times epochs over both
      together (gensim's ``train`` does both).
    """
    import optax

    from ssljax import objectives
    from ssljax.data.text import word2vec_examples
    from ssljax.identifiability.fit import fit

    start = time.perf_counter()
    data = word2vec_examples(
        sentences,
        counts,
        model=model,
        output=output,
        window=settings.window,
        num_negatives=settings.negatives,
        epochs=settings.epochs,
        subsample_threshold=settings.subsample,
        seed=settings.seed,
    )
    example_seconds = time.perf_counter() - start
    n = int(data["target"].shape[0])
    batch = min(int(settings.batch_size), n)
    steps = max(1, n // batch)
    alpha = float(ALPHA[model] if settings.alpha is None else settings.alpha)
    schedule = optax.linear_schedule(alpha * batch, alpha * 1e-4 * batch, steps)
    objective = objectives.build(
        {
            "name": model,
            "vocab_size": len(counts),
            "dim": settings.dim,
            "output": output,
            "window": settings.window,
            "negatives": settings.negatives,
            "subsample": settings.subsample,
        }
    )
    result = fit(
        objective, data, steps=steps, batch_size=batch, tx=optax.sgd(schedule), seed=settings.seed
    )
    tokens = int(sum(len(s) for s in sentences))
    return {
        "params": result.params,
        "seconds": float(result.seconds),
        "example_seconds": float(example_seconds),
        "steps": int(steps),
        "examples": n,
        "tokens": tokens,
        "words_per_second": tokens * settings.epochs / (result.seconds + example_seconds),
        "final_loss": float(np.mean(result.losses[-max(1, steps // 20) :])),
    }


# ---------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------


def _absolute(path):
    """``path`` as orbax wants it: absolute on a local disk, unchanged for ``gs://`` and
    other URLs (``etils.epath``)."""
    from etils import epath

    text = os.fspath(path)
    return epath.Path(text if "://" in text else os.path.abspath(text))


def save_embeddings(directory, params, words: Sequence[str], counts, info: dict) -> str:
    """Writes the tables (an orbax checkpoint in ``directory/checkpoint``), the vocabulary
    (``vocabulary.json``: words and counts) and ``info`` (``run.json``). An existing
    ``directory`` is refused (one line)."""
    import orbax.checkpoint as ocp
    from etils import epath

    root = epath.Path(directory)
    if root.exists():
        raise ValueError(f"{os.fspath(directory)} exists; valid: a new directory")
    root.mkdir(parents=True)
    tables = {k: np.asarray(v, np.float32) for k, v in params.items()}
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(_absolute(root / "checkpoint"), tables)
    checkpointer.wait_until_finished()
    vocabulary = {"words": list(words), "counts": [int(c) for c in np.asarray(counts)]}
    (root / "vocabulary.json").write_text(json.dumps(vocabulary))
    (root / "run.json").write_text(json.dumps(info, indent=1))
    return os.fspath(root)


def load_embeddings(directory) -> tuple[dict, list[str], np.ndarray, dict]:
    """``(tables, words, counts, info)`` of ``save_embeddings``; one-line errors for a
    missing or incomplete directory."""
    import orbax.checkpoint as ocp
    from etils import epath

    root = epath.Path(directory)
    for name in ("checkpoint", "vocabulary.json", "run.json"):
        if not (root / name).exists():
            raise ValueError(f"{os.fspath(root / name)} is missing; valid: a save_embeddings dir")
    tables = ocp.StandardCheckpointer().restore(_absolute(root / "checkpoint"))
    vocabulary = json.loads((root / "vocabulary.json").read_text())
    info = json.loads((root / "run.json").read_text())
    tables = {k: np.asarray(v, np.float32) for k, v in tables.items()}
    return tables, vocabulary["words"], np.asarray(vocabulary["counts"], np.int64), info


# ---------------------------------------------------------------------------------------
# Evaluation from a checkpoint
# ---------------------------------------------------------------------------------------


def evaluate_synthetic(directory, corpus_params, analogies, *, window: int, negatives: int):
    """Reads the checkpoint in ``directory`` and scores it against the synthetic corpus's
    exact statistics (``ssljax.evaluation.text_workdir.synthetic_scores``: the Levy-Goldberg
    correlation for negative sampling, planted analogies, similarity Spearman)."""
    from ssljax.evaluation.text_workdir import synthetic_scores

    tables, _, _, info = load_embeddings(directory)
    C = tables["output"] if info.get("output") == "negative_sampling" else None
    return synthetic_scores(
        tables["input"], C, corpus_params, analogies, window=window, negatives=negatives
    )


def evaluate_files(directory, *, wordsim=None, analogies=None, restrict_vocab=None) -> dict:
    """WordSim-353-format and Google-analogy-format scores of the checkpoint in
    ``directory`` (each file optional)."""
    from ssljax.evaluation import text as text_eval

    tables, words, _, _ = load_embeddings(directory)
    out: dict[str, Any] = {}
    if wordsim:
        out["wordsim"] = text_eval.evaluate_word_similarity(tables["input"], words, wordsim)
    if analogies:
        out["analogies"] = text_eval.evaluate_analogy_file(
            tables["input"], words, analogies, method="add", restrict_vocab=restrict_vocab
        )
    return out


# ---------------------------------------------------------------------------------------
# Studies
# ---------------------------------------------------------------------------------------


def _info(model: str, output: str, settings: Settings, trained: dict) -> dict:
    keep = ("seconds", "example_seconds", "steps", "examples", "tokens", "words_per_second")
    return {
        "model": model,
        "output": output,
        "settings": dataclasses.asdict(settings),
        **{k: trained[k] for k in keep},
        "final_loss": trained["final_loss"],
    }


def synthetic_study(
    out_dir,
    *,
    settings: Settings = SYNTHETIC,
    num_tokens: int = SYNTHETIC_TOKENS,
    variants: Sequence[tuple[str, str]] = VARIANTS,
    log=print,
) -> dict:
    """Every variant on the synthetic corpus, each saved under ``out_dir/<model>_<output>``
    and evaluated from that checkpoint."""
    from ssljax.data.text import synthetic_corpus

    corpus = synthetic_corpus(settings.seed, num_tokens=num_tokens)
    counts = corpus["vocabulary"].counts
    rows = []
    for model, output in variants:
        trained = train_word2vec(
            corpus["sentences"], counts, model=model, output=output, settings=settings
        )
        info = _info(model, output, settings, trained)
        directory = os.path.join(out_dir, f"{model}_{output}")
        save_embeddings(directory, trained["params"], corpus["vocabulary"].words, counts, info)
        scores = evaluate_synthetic(
            directory,
            corpus["params"],
            corpus["planted_analogies"],
            window=settings.window,
            negatives=settings.negatives,
        )
        row = {**info, **scores, "checkpoint": directory, "seconds_per_epoch": 0.0}
        row["seconds_per_epoch"] = trained["seconds"] / settings.epochs
        rows.append(row)
        log(
            f"[word2vec] synthetic {model}/{output}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            + f"; {row['seconds_per_epoch']:.1f} s/epoch"
        )
    return {
        "vocab_size": int(len(counts)),
        "tokens": int(corpus["sentences"].size),
        "analogies": int(len(corpus["planted_analogies"])),
        "settings": dataclasses.asdict(settings),
        "rows": rows,
    }


def gensim_test_file(name: str) -> str:
    """The path of ``name`` in the installed gensim's test data (one-line error without
    gensim)."""
    try:
        import gensim
    except ImportError as err:
        raise ValueError(
            f"{name} ships with gensim, which is not installed; valid: pip install -e '.[compare]'"
        ) from err
    path = os.path.join(os.path.dirname(gensim.__file__), "test", "test_data", name)
    if not os.path.exists(path):
        raise ValueError(f"{path} is missing from gensim {gensim.__version__}'s test data")
    return path


def wiki_text(path: str) -> str:
    """Writes the Wikipedia extract's articles as plain text, one article per line (gensim's
    ``WikiCorpus`` strips the markup), into ``path`` (kept if it exists)."""
    if os.path.exists(path):
        return path
    from gensim.corpora.wikicorpus import WikiCorpus

    corpus = WikiCorpus(gensim_test_file(WIKI_DUMP), dictionary={}, processes=1)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".partial", "w", encoding="utf-8") as f:
        for tokens in corpus.get_texts():
            f.write(" ".join(tokens) + "\n")
    os.replace(path + ".partial", path)
    return path


def text_study(
    out_dir,
    paths: Sequence[str],
    *,
    settings: Settings = WIKI,
    wordsim: str | None = None,
    analogies: str | None = None,
    gensim_peer: bool = False,
    log=print,
) -> dict:
    """Skip-gram with negative sampling on any text files, saved and evaluated from its
    checkpoint; with ``gensim_peer`` also gensim's ``Word2Vec`` on the same token lists and
    settings (one worker), scored by the same evaluation code."""
    from ssljax.data.text import build_vocabulary, read_text_files

    token_lists = [t for t in read_text_files(paths) if t]
    vocab = build_vocabulary(token_lists, min_count=settings.min_count)
    sentences = [vocab.ids(t) for t in token_lists]
    sentences = [s for s in sentences if len(s) > 1]
    log(
        f"[word2vec] {len(token_lists)} lines, {sum(len(t) for t in token_lists)} tokens, "
        f"{len(vocab)} words with count >= {settings.min_count}"
    )
    trained = train_word2vec(
        sentences, vocab.counts, model="skip_gram", output="negative_sampling", settings=settings
    )
    info = _info("skip_gram", "negative_sampling", settings, trained)
    directory = os.path.join(out_dir, "skip_gram_negative_sampling")
    save_embeddings(directory, trained["params"], vocab.words, vocab.counts, info)
    rows = [
        {
            "system": "ssljax",
            **info,
            **evaluate_files(directory, wordsim=wordsim, analogies=analogies),
        }
    ]
    if gensim_peer:
        rows.append(gensim_row(token_lists, settings, wordsim=wordsim, analogies=analogies))
    for row in rows:
        ws = row.get("wordsim", {}).get("spearman", float("nan"))
        log(
            f"[word2vec] {row['system']}: WordSim Spearman {ws:.3f}, "
            f"{row['words_per_second']:.0f} words/s, {row['seconds']:.1f} s"
        )
    return {"vocab_size": len(vocab), "settings": dataclasses.asdict(settings), "rows": rows}


def gensim_row(token_lists, settings: Settings, *, wordsim=None, analogies=None) -> dict:
    """gensim's skip-gram with negative sampling at ``settings`` (one worker), timed over
    ``train`` alone and scored by ssljax's evaluation functions."""
    import gensim
    from gensim.models import Word2Vec

    from ssljax.evaluation import text as text_eval

    model = Word2Vec(
        vector_size=settings.dim,
        window=settings.window,
        negative=settings.negatives,
        min_count=settings.min_count,
        sample=settings.subsample,
        alpha=ALPHA["skip_gram"] if settings.alpha is None else settings.alpha,
        sg=1,
        hs=0,
        workers=1,
        seed=settings.seed + 1,
    )
    model.build_vocab(token_lists)
    start = time.perf_counter()
    model.train(token_lists, total_examples=len(token_lists), epochs=settings.epochs)
    seconds = time.perf_counter() - start
    W, words = np.asarray(model.wv.vectors), list(model.wv.index_to_key)
    known = model.wv.key_to_index
    tokens = int(sum(1 for t in token_lists for w in t if w in known))  # as ssljax counts
    row: dict[str, Any] = {
        "system": f"gensim {gensim.__version__}",
        "seconds": seconds,
        "tokens": tokens,
        "words_per_second": tokens * settings.epochs / seconds,
        "vocab_size": len(words),
    }
    if wordsim:
        row["wordsim"] = text_eval.evaluate_word_similarity(W, words, wordsim)
    if analogies:
        row["analogies"] = text_eval.evaluate_analogy_file(W, words, analogies, method="add")
    return row


def profile_step(
    vocab_size: int = 9002, dim: int = 100, batch: int = 4096, negatives: int = 5, repeats: int = 30
) -> dict:
    """Median milliseconds, on one device, of the parts of a skip-gram negative-sampling
    step: the loss, its gradient with respect to the tables (dense ``[V, D]``), gradient and
    SGD update, and the alternative that updates only the gathered rows."""
    import jax
    import jax.numpy as jnp
    import optax

    from ssljax.objectives.word2vec import negative_sampling_loss, skip_gram_ns_from_tables

    rng = np.random.default_rng(0)
    tables = {
        "input": jnp.asarray(0.01 * rng.standard_normal((vocab_size, dim)), jnp.float32),
        "output": jnp.zeros((vocab_size, dim), jnp.float32),
    }
    centre, context = (jnp.asarray(rng.integers(0, vocab_size, batch), jnp.int32) for _ in "ab")
    noise = jnp.asarray(rng.integers(0, vocab_size, (batch, negatives)), jnp.int32)

    def loss(p):
        return jnp.mean(skip_gram_ns_from_tables(p["input"], p["output"], centre, context, noise))

    tx = optax.sgd(0.1)

    def dense_step(p, opt_state):
        updates, opt_state = tx.update(jax.grad(loss)(p), opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    def row_step(p):
        rows = (p["input"][centre], p["output"][context], p["output"][noise])
        g = jax.grad(lambda r: jnp.mean(negative_sampling_loss(*r)))(rows)
        return {
            "input": p["input"].at[centre].add(-0.1 * g[0]),
            "output": p["output"].at[context].add(-0.1 * g[1]).at[noise].add(-0.1 * g[2]),
        }

    def median_ms(fn, *args):
        jax.block_until_ready(fn(*args))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - start)
        return 1e3 * float(np.median(times))

    return {
        "loss": median_ms(jax.jit(loss), tables),
        "gradient": median_ms(jax.jit(jax.grad(loss)), tables),
        "gradient_and_sgd": median_ms(jax.jit(dense_step), tables, tx.init(tables)),
        "row_updates": median_ms(jax.jit(row_step), tables),
    }


# ---------------------------------------------------------------------------------------
# Tables and the command line
# ---------------------------------------------------------------------------------------


def _f(x, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def format_synthetic(r: dict) -> str:
    from ssljax.experiments.identifiability import table

    rows = [
        [
            row["model"],
            row["output"],
            _f(row.get("pmi_correlation")),
            _f(row["analogy_add"]),
            _f(row["analogy_mul"]),
            _f(row["similarity_spearman"]),
            _f(row["seconds_per_epoch"], 1),
            f"{row['words_per_second']:,.0f}",
        ]
        for row in r["rows"]
    ]
    chance = r["rows"][0]["analogy_chance"] if r["rows"] else float("nan")
    header = (
        "model",
        "output",
        "corr(W C^T, PMI - log k)",
        "analogy 3CosAdd",
        "3CosMul",
        "Spearman, true similarity",
        "s / epoch",
        "words / s",
    )
    return "\n".join(
        [
            f"### Synthetic corpus: {r['tokens']:,} tokens, {r['vocab_size']} words, "
            f"{r['analogies']} planted analogies (chance {chance:.3f}); settings {r['settings']}",
            "",
            table(header, rows),
        ]
    )


def format_text(r: dict, title: str) -> str:
    from ssljax.experiments.identifiability import table

    rows = []
    for row in r["rows"]:
        ws = row.get("wordsim", {})
        an = row.get("analogies", {})
        rows.append(
            [
                row["system"],
                _f(ws.get("spearman")),
                _f(ws.get("oov_share"), 2),
                _f(an.get("accuracy")),
                f"{row['words_per_second']:,.0f}",
                _f(row["seconds"], 1),
            ]
        )
    header = (
        "system",
        "WordSim-353 Spearman",
        "OOV share",
        "analogies 3CosAdd",
        "words / s",
        "train s",
    )
    return "\n".join(
        [f"### {title}: {r['vocab_size']} words; settings {r['settings']}", "", table(header, rows)]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="synthetic", help=f"one of {', '.join(CORPORA)}")
    parser.add_argument("--text", nargs="*", default=(), help="text files (--corpus files)")
    parser.add_argument("--wordsim", default=None, help="WordSim-353-format file")
    parser.add_argument("--analogies", default=None, help="questions-words.txt-format file")
    parser.add_argument("--out_dir", default="runs/word2vec")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--profile", action="store_true", help="time a step's parts, then stop")
    args = parser.parse_args(argv)
    if args.profile:
        print({k: round(v, 2) for k, v in profile_step().items()}, "ms (median, one device)")
        return 0
    if args.corpus not in CORPORA:
        raise SystemExit(f"--corpus={args.corpus!r} is invalid; valid: {', '.join(CORPORA)}")
    if args.corpus == "files" and not args.text:
        raise SystemExit("--corpus=files needs --text FILE [FILE ...]")
    record = os.path.join(args.out_dir, "word2vec.json")
    if os.path.exists(record) and not args.overwrite:
        raise SystemExit(f"{record} exists; pass --overwrite or another --out_dir")
    if args.overwrite and os.path.isdir(args.out_dir):
        import shutil

        for name in os.listdir(args.out_dir):
            if name.endswith(("_negative_sampling", "_hierarchical_softmax")):
                shutil.rmtree(os.path.join(args.out_dir, name))
    os.makedirs(args.out_dir, exist_ok=True)
    base = SYNTHETIC if args.corpus == "synthetic" else WIKI
    overrides = {k: getattr(args, k) for k in ("epochs", "batch_size") if getattr(args, k)}
    settings = dataclasses.replace(base, **overrides)
    if args.corpus == "synthetic":
        result = synthetic_study(args.out_dir, settings=settings)
        section = format_synthetic(result)
    elif args.corpus == "wiki":
        path = wiki_text(os.path.join(args.out_dir, "enwiki_extract.txt"))
        result = text_study(
            args.out_dir,
            [path],
            settings=settings,
            wordsim=args.wordsim or gensim_test_file("wordsim353.tsv"),
            analogies=args.analogies or gensim_test_file("questions-words.txt"),
            gensim_peer=True,
        )
        section = format_text(result, "Wikipedia extract (gensim's test data)")
    else:
        result = text_study(
            args.out_dir,
            args.text,
            settings=settings,
            wordsim=args.wordsim,
            analogies=args.analogies,
        )
        section = format_text(result, ", ".join(args.text))
    print(section, flush=True)
    from ssljax.experiments.identifiability import to_json

    with open(record, "w") as f:
        json.dump(to_json(result), f, indent=1)
    with open(os.path.join(args.out_dir, "word2vec.md"), "w") as f:
        f.write(section + "\n")
    print(f"wrote {record} and word2vec.md", flush=True)
    return 0
