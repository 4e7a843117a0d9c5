"""Scores a word2vec pretraining run from its checkpoint (``python -m ssljax.evaluate``).

A run whose ``config.dataset`` is a text corpus (``ssljax.data.text_source``) stores the
two embedding tables in its train state (``params['input']``, the word vectors ``W``, and
``params['output']``, ``C``). ``evaluate_text_workdir`` reads them back with the corpus's
vocabulary (rebuilt from the stored config) and reports:

* on ``synthetic_text`` (exact statistics known): the Levy-Goldberg check (Pearson
  correlation of ``W C^T`` with ``PMI - log k`` over the pairs the chain can produce;
  negative sampling only, where ``C`` is a word table), planted-analogy accuracy by 3CosAdd
  and 3CosMul with its chance level, and the Spearman correlation of cosine similarities
  with the true similarity (``synthetic_scores``);
* with ``wordsim`` / ``analogies`` files given by path (any corpus): WordSim-353-format
  Spearman with the out-of-vocabulary share, and Google-analogy-format accuracy;
* the nearest neighbours of the most frequent words.

The report is written to ``DIR/evaluate.json`` (replaced on every call).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from ssljax.evaluation import text as text_eval


def is_text_workdir(workdir: str) -> bool:
    """Whether the run in ``workdir`` (its ``config.json``) pretrained on a text corpus."""
    from ssljax.data.text_source import TEXT_DATASETS
    from ssljax.training.checkpoint import read_workdir_config

    try:
        config = read_workdir_config(workdir)
    except ValueError:  # unreadable JSON: the image path reports it
        return False
    return bool(config) and config.get("dataset", {}).get("name") in TEXT_DATASETS


def synthetic_scores(
    W: np.ndarray,
    C: np.ndarray | None,
    corpus_params,
    analogies,
    *,
    window: int,
    negatives: int,
) -> dict[str, float]:
    """Scores of word vectors ``W`` (and output vectors ``C`` for the PMI check; None skips
    it) against the synthetic corpus's exact statistics (``ssljax.data.text``)."""
    from ssljax.data.text import true_pmi, true_similarity

    W = np.asarray(W, np.float32)
    out: dict[str, float] = {}
    if C is not None:
        pmi = true_pmi(corpus_params, window)
        lg = text_eval.pmi_correlation(W, np.asarray(C), pmi, np.isfinite(pmi), negatives)
        out["pmi_correlation"] = float(lg["pearson"])
        out["pmi_gap"] = float(lg["mean_abs_gap"])
    for method in ("add", "mul"):
        acc = text_eval.analogy_accuracy(W, np.asarray(analogies), method=method)
        out[f"analogy_{method}"] = float(acc["accuracy"])
        out["analogy_chance"] = float(acc["chance"])
    sim = true_similarity(corpus_params, window)
    iu = np.triu_indices(W.shape[0], 1)
    out["similarity_spearman"] = float(
        text_eval.similarity_spearman(W, np.stack(iu, axis=1), sim[iu])
    )
    return out


def evaluate_text_workdir(
    workdir: str,
    *,
    step: int | None = None,
    wordsim: str | None = None,
    analogies: str | None = None,
    neighbours: int = 5,
    write: bool = True,
) -> dict[str, Any]:
    """Reads the run's checkpoint and scores its word vectors (module docstring).

    Returns:
      ``{'workdir', 'step', 'objective', 'dataset', 'vocab_size', 'tokens', 'scores',
      'neighbours', 'seconds'}``; also written to ``workdir/evaluate.json`` with ``write``.
    """
    from ssljax import io as wio
    from ssljax import parallel
    from ssljax.data.text_source import SYNTHETIC_TEXT, load_corpus
    from ssljax.training.loop import restore_for_eval

    start = time.perf_counter()
    config, setup, state, step = restore_for_eval(workdir, step)
    corpus = load_corpus(config.dataset)
    objective = setup.objective
    params = state.params
    W = np.asarray(params["input"], np.float32)
    negative_sampling = objective.output == "negative_sampling"
    scores: dict[str, Any] = {}
    if corpus.name == SYNTHETIC_TEXT:
        scores.update(
            synthetic_scores(
                W,
                np.asarray(params["output"]) if negative_sampling else None,
                corpus.synthetic["params"],
                corpus.synthetic["planted_analogies"],
                window=int(objective.window),
                negatives=int(objective.negatives),
            )
        )
    words = list(corpus.vocabulary.words)
    if wordsim:
        scores["wordsim"] = text_eval.evaluate_word_similarity(W, words, wordsim)
    if analogies:
        scores["analogies"] = text_eval.evaluate_analogy_file(W, words, analogies, method="add")
    shown = min(5, len(words))
    ids, _ = text_eval.nearest_neighbours(W, np.arange(shown), k=min(neighbours, len(words) - 1))
    report = {
        "workdir": str(workdir),
        "step": int(step),
        "objective": objective.hyperparameters(),
        "dataset": config.dataset.to_dict(),
        "vocab_size": len(words),
        "tokens": corpus.num_tokens,
        "scores": scores,
        "neighbours": {words[i]: [words[j] for j in row] for i, row in enumerate(ids)},
        "seconds": time.perf_counter() - start,
    }
    if write and parallel.is_main_process():
        wio.write_text_atomic(
            wio.join(workdir, "evaluate.json"), json.dumps(_jsonable(report), indent=1)
        )
    return report


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def format_text_report(report: dict) -> str:
    """A short table of ``evaluate_text_workdir``'s report."""
    obj = report["objective"]
    lines = [
        f"{obj['name']} / {obj['output']} (dim {obj['dim']}) at step {report['step']}: "
        f"{report['vocab_size']} words, {report['tokens']:,} tokens of {report['dataset']['name']}"
    ]
    for key, value in report["scores"].items():
        if isinstance(value, dict):
            main = value.get("spearman", value.get("accuracy"))
            extra = value.get("oov_share")
            lines.append(
                f"  {key:<20} {main:.4f}"
                + (f"  (out of vocabulary: {extra:.1%})" if extra is not None else "")
            )
        else:
            lines.append(f"  {key:<20} {value:.4f}")
    for word, near in report["neighbours"].items():
        lines.append(f"  nearest to {word}: {', '.join(near)}")
    return "\n".join(lines)
