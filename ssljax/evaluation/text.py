"""Word-embedding evaluation: neighbours, analogies, word similarity and the PMI check.

Every function takes an embedding matrix ``W [V, D]`` whose row ``i`` is the vector of word
id ``i``; where words are involved, ``vocab`` gives the word of each id (a sequence of ``V``
strings, or anything with a ``words`` attribute such as
:class:`ssljax.data.text.Vocabulary`).

* :func:`normalize_rows`, :func:`nearest_neighbours`: cosine similarity and the ``k`` most
  similar words of each query.
* :func:`analogy_predictions`, :func:`analogy_accuracy`: questions ``a : b :: c : ?``
  answered by 3CosAdd (Mikolov, Yih & Zweig 2013, "Linguistic regularities in continuous
  space word representations"; Mikolov et al. 2013, "Efficient estimation of word
  representations in vector space")
  ``argmax_x cos(x, b) - cos(x, a) + cos(x, c)``, or by 3CosMul (Levy & Goldberg 2014,
  "Linguistic regularities in sparse and explicit word representations")
  ``argmax_x cos'(x, b) cos'(x, c) / (cos'(x, a) + eps)`` with ``cos' = (1 + cos) / 2`` in
  ``[0, 1]`` and ``eps = 1e-3``; the question words ``a, b, c`` are not candidates.
* :func:`similarity_spearman`: Spearman correlation between the cosines of word pairs and
  human similarity judgements (Finkelstein et al. 2002, WordSim-353).
* :func:`empirical_pmi`, :func:`pmi_correlation`: skip-gram with ``k`` negative samples is,
  at its optimum, a factorisation ``W[i] . C[j] = PMI(i, j) - log k`` of the shifted
  pointwise mutual information of (centre, context) pairs (Levy & Goldberg 2014, "Neural word
  embedding as implicit matrix factorization"); these measure how close trained embeddings
  come to it.
* :func:`read_word_similarity`, :func:`evaluate_word_similarity`,
  :func:`read_analogy_file`, :func:`evaluate_analogy_file`: the standard files
  (WordSim-353 as ``word1 word2 score`` lines; Mikolov et al.'s ``questions-words.txt``).

Conventions:

* Cosines use L2-normalised rows; an all-zero row stays zero and has cosine 0 with everything.
* Ties go to the lower word id (``jnp.argmax``, ``jax.lax.top_k``).
* Analogy and neighbour scores are computed on the device in batches of queries, each holding
  a ``[batch, V]`` block of scores (3CosMul: three such blocks), so 20,000 questions over a
  30,000-word vocabulary need some hundred megabytes, never a ``[n, V]`` matrix.
* Out-of-vocabulary words: the file evaluations skip every pair or question with a word that
  is not in the vocabulary and report how many they skipped, as gensim's
  ``KeyedVectors.evaluate_word_pairs`` / ``evaluate_word_analogies`` do; scores are over the
  rest. ``lowercase=True`` compares words case-insensitively (vocabulary words that differ
  only in case resolve to the lowest id, the most frequent one in a count-sorted vocabulary).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from etils import epath

_HIGHEST = jax.lax.Precision.HIGHEST
ANALOGY_METHODS = ("add", "mul")
DEFAULT_BATCH = 256
COSMUL_EPS = 1e-3

__all__ = [
    "ANALOGY_METHODS",
    "analogy_accuracy",
    "analogy_predictions",
    "empirical_pmi",
    "evaluate_analogy_file",
    "evaluate_word_similarity",
    "nearest_neighbours",
    "normalize_rows",
    "pmi_correlation",
    "read_analogy_file",
    "read_word_similarity",
    "similarity_spearman",
]


# ---------------------------------------------------------------------------------------------
# Input checks


def _as_embeddings(name: str, W: Any) -> np.ndarray:
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] == 0 or W.shape[1] == 0:
        raise ValueError(f"{name} of shape {W.shape} is invalid; valid: 2-D [V, D] with V, D >= 1")
    if not np.issubdtype(W.dtype, np.floating) and not np.issubdtype(W.dtype, np.integer):
        raise ValueError(f"{name} of dtype {W.dtype} is invalid; valid: a real dtype")
    if not np.all(np.isfinite(W)):
        raise ValueError(f"{name} has non-finite entries; valid: finite values")
    return W


def _as_ids(name: str, ids: Any, shape_text: str, ndim: int, last: int | None, V: int | None):
    """Integer ids of the given rank (and last axis), in ``[0, V)`` (``[0, inf)`` if None)."""
    ids = np.asarray(ids)
    if ids.ndim != ndim or (last is not None and ids.shape[-1] != last):
        raise ValueError(f"{name} of shape {ids.shape} is invalid; valid: {shape_text}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} of dtype {ids.dtype} is invalid; valid: integer word ids")
    ids = ids.astype(np.int64)
    bad = ids[(ids < 0) | (ids >= (np.iinfo(np.int64).max if V is None else V))]
    if bad.size:
        raise ValueError(f"{name} contains id {bad[0]}; valid: ids in [0, {V or 'inf'})")
    return ids


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= 1")
    return int(value)


def _check_method(method: Any) -> str:
    if method not in ANALOGY_METHODS:
        raise ValueError(
            f"method {method!r} is invalid; valid: {', '.join(map(repr, ANALOGY_METHODS))}"
        )
    return method


def _vocab_words(vocab: Any, V: int) -> tuple[str, ...]:
    words = getattr(vocab, "words", vocab)
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
        raise ValueError(
            f"vocab of type {type(vocab).__name__} is invalid; valid: a sequence of words"
        )
    words = tuple(words)
    if len(words) != V:
        raise ValueError(f"vocab has {len(words)} words but W has {V} rows; valid: one per row")
    bad = next((w for w in words if not isinstance(w, str)), None)
    if bad is not None:
        raise ValueError(f"vocab word {bad!r} is invalid; valid: strings")
    return words


def _word_index(words: Sequence[str], lowercase: bool) -> dict[str, int]:
    """word -> id; of words that coincide (after lowercasing) the lowest id wins."""
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(w.lower() if lowercase else w, i)
    return index


def _existing_path(path: Any, fn: str) -> epath.Path:
    p = epath.Path(path)
    if not p.exists():
        raise ValueError(f"{fn}: path {str(p)!r} does not exist; valid: an existing file")
    if p.is_dir():
        raise ValueError(f"{fn}: path {str(p)!r} is a directory; valid: a file")
    return p


# ---------------------------------------------------------------------------------------------
# Cosine similarity and neighbours


def normalize_rows(W: Any) -> np.ndarray:
    """Rows of ``W [V, D]`` scaled to unit L2 norm (an all-zero row stays zero).

    Returns float64 for float64 input and float32 otherwise.
    """
    W = _as_embeddings("W", W)
    W = W.astype(np.float64 if W.dtype == np.float64 else np.float32)
    norms = np.linalg.norm(W, axis=1, keepdims=True)
    return W / np.maximum(norms, np.finfo(W.dtype).tiny)


def _unit_rows_f32(W: Any) -> jax.Array:
    return jnp.asarray(normalize_rows(W).astype(np.float32))


def _padded_batches(ids: np.ndarray, batch: int):
    """Yields ``(start, count, padded)``: ``ids`` in fixed-size chunks (the last padded with
    row 0), so that every call of a jitted function has the same shape."""
    n = ids.shape[0]
    size = min(batch, n)
    for start in range(0, n, size):
        chunk = ids[start : start + size]
        count = chunk.shape[0]
        if count < size:
            pad = np.zeros((size - count,) + chunk.shape[1:], chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        yield start, count, jnp.asarray(chunk, dtype=jnp.int32)


@functools.partial(jax.jit, static_argnames=("k", "exclude_self"))
def _neighbours_batch(wn, query, *, k: int, exclude_self: bool):
    sims = jnp.matmul(wn[query], wn.T, precision=_HIGHEST)  # [B, V]
    if exclude_self:
        sims = sims.at[jnp.arange(query.shape[0]), query].set(-jnp.inf)
    return jax.lax.top_k(sims, k)


def nearest_neighbours(
    W: Any, query_ids: Any, k: int, exclude_self: bool = True, *, batch: int = DEFAULT_BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` words of highest cosine similarity to each query word.

    Args:
      W: ``[V, D]`` embeddings.
      query_ids: ``[Q]`` word ids.
      k: neighbours per query, ``1 <= k <= V - 1`` (``V`` without ``exclude_self``).
      exclude_self: leave the query word out of its own neighbours.
      batch: queries per device step (each holds a ``[batch, V]`` block of cosines).

    Returns:
      ``(ids int32 [Q, k], cosines float32 [Q, k])``, most similar first, ties by lower id.
    """
    W = _as_embeddings("W", W)
    V = W.shape[0]
    query = _as_ids("query_ids", query_ids, "1-D [Q] word ids", 1, None, V)
    candidates = V - int(bool(exclude_self))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= candidates:
        raise ValueError(f"k={k!r} is invalid; valid: an integer in [1, {candidates}]")
    batch = _check_positive_int("batch", batch)
    if query.shape[0] == 0:
        return np.zeros((0, int(k)), np.int32), np.zeros((0, int(k)), np.float32)
    wn = _unit_rows_f32(W)
    ids, cos = [], []
    for _, count, chunk in _padded_batches(query, batch):
        sim, idx = _neighbours_batch(wn, chunk, k=int(k), exclude_self=bool(exclude_self))
        ids.append(np.asarray(idx[:count], np.int32))
        cos.append(np.asarray(sim[:count], np.float32))
    return np.concatenate(ids), np.concatenate(cos)


# ---------------------------------------------------------------------------------------------
# Analogies


@functools.partial(jax.jit, static_argnames=("method", "exclude_inputs"))
def _analogy_batch(wn, abc, eps, *, method: str, exclude_inputs: bool):
    a, b, c = abc[:, 0], abc[:, 1], abc[:, 2]
    if method == "add":
        # cos(x, b) - cos(x, a) + cos(x, c) = x_hat . (b_hat - a_hat + c_hat) for unit rows.
        scores = jnp.matmul(wn[b] - wn[a] + wn[c], wn.T, precision=_HIGHEST)
    else:

        def shifted(ids):
            return (1.0 + jnp.matmul(wn[ids], wn.T, precision=_HIGHEST)) / 2.0

        scores = shifted(b) * shifted(c) / (shifted(a) + eps)
    if exclude_inputs:
        rows = jnp.arange(abc.shape[0])[:, None]
        scores = scores.at[rows, abc].set(-jnp.inf)
    return jnp.argmax(scores, axis=1)


def analogy_predictions(
    W: Any,
    a: Any,
    b: Any,
    c: Any,
    method: str = "add",
    exclude_inputs: bool = True,
    batch: int = DEFAULT_BATCH,
    *,
    eps: float = COSMUL_EPS,
) -> np.ndarray:
    """Answers ``x`` to analogy questions ``a : b :: c : x`` (ids ``[n]`` each).

    ``method='add'`` is 3CosAdd (Mikolov et al. 2013):
    ``argmax_x cos(x, b) - cos(x, a) + cos(x, c)``. ``method='mul'`` is 3CosMul (Levy &
    Goldberg 2014): ``argmax_x cos'(x, b) cos'(x, c) / (cos'(x, a) + eps)`` with the cosines
    shifted to ``[0, 1]`` by ``cos' = (1 + cos) / 2`` and ``eps = 1e-3`` as in the paper
    (gensim's ``most_similar_cosmul`` uses 1e-6).

    Args:
      W: ``[V, D]`` embeddings.
      a, b, c: ``[n]`` word ids.
      method: ``'add'`` or ``'mul'``.
      exclude_inputs: leave ``a``, ``b`` and ``c`` out of the candidates (the standard
        protocol, also gensim's).
      batch: questions per device step (3CosMul holds three ``[batch, V]`` score blocks).
      eps: 3CosMul's guard against division by zero.

    Returns:
      ``int32 [n]``, the predicted ids (ties by lower id).
    """
    method = _check_method(method)
    W = _as_embeddings("W", W)
    V = W.shape[0]
    ids = [_as_ids(name, x, "1-D [n] word ids", 1, None, V) for name, x in zip("abc", (a, b, c))]
    if not ids[0].shape == ids[1].shape == ids[2].shape:
        raise ValueError(
            f"a, b, c have lengths {[x.shape[0] for x in ids]}; valid: one length for all three"
        )
    if exclude_inputs and V < 4:
        raise ValueError(f"W has V={V} rows; valid: V >= 4 (three inputs and one answer)")
    batch = _check_positive_int("batch", batch)
    if not (isinstance(eps, (int, float, np.floating)) and eps > 0):
        raise ValueError(f"eps={eps!r} is invalid; valid: a number > 0")
    abc = np.stack(ids, axis=1)
    if abc.shape[0] == 0:
        return np.zeros((0,), np.int32)
    wn = _unit_rows_f32(W)
    eps = jnp.float32(eps)
    out = np.empty((abc.shape[0],), np.int32)
    for start, count, chunk in _padded_batches(abc, batch):
        pred = _analogy_batch(wn, chunk, eps, method=method, exclude_inputs=bool(exclude_inputs))
        out[start : start + count] = np.asarray(pred[:count])
    return out


def analogy_accuracy(
    W: Any, questions: Any, method: str = "add", *, batch: int = DEFAULT_BATCH
) -> dict[str, Any]:
    """Accuracy on analogy questions ``[n, 4]`` of ids ``(a, b, c, d)``: ``a : b :: c : d``.

    A question is right when :func:`analogy_predictions` (inputs excluded) returns ``d``.
    Chance level is ``1 / (V - 3)``: a predictor that picks uniformly among the ``V - 3``
    candidates other than ``a, b, c`` (embeddings whose rows are exchangeable, e.g. random
    ones) is right with that probability when ``d`` is not one of the inputs.

    Returns:
      ``{'accuracy': float, 'correct': int, 'n': int, 'chance': 1 / (V - 3)}``.
    """
    W = _as_embeddings("W", W)
    V = W.shape[0]
    q = _as_ids("questions", questions, "2-D [n, 4] word ids (a, b, c, d)", 2, 4, V)
    if q.shape[0] == 0:
        raise ValueError("questions is empty; valid: at least one question [n >= 1, 4]")
    pred = analogy_predictions(W, q[:, 0], q[:, 1], q[:, 2], method, batch=batch)
    correct = int(np.sum(pred == q[:, 3]))
    return {
        "accuracy": correct / q.shape[0],
        "correct": correct,
        "n": int(q.shape[0]),
        "chance": 1.0 / (V - 3),
    }


# ---------------------------------------------------------------------------------------------
# Word similarity


def _pair_cosines(W: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """float64 ``[n]`` cosines of the rows ``pairs[:, 0]`` and ``pairs[:, 1]`` of ``W``."""
    wn = normalize_rows(W.astype(np.float64))
    return np.sum(wn[pairs[:, 0]] * wn[pairs[:, 1]], axis=1)


def similarity_spearman(W: Any, pairs: Any, gold: Any) -> float:
    """Spearman correlation between the cosines of word pairs and gold similarity scores.

    Args:
      W: ``[V, D]`` embeddings.
      pairs: ``[n, 2]`` word ids, ``n >= 2``.
      gold: ``[n]`` human similarity scores (e.g. WordSim-353, Finkelstein et al. 2002).

    Returns:
      ``scipy.stats.spearmanr`` of (cosine, gold); NaN when either is constant.
    """
    W = _as_embeddings("W", W)
    pairs = _as_ids("pairs", pairs, "2-D [n, 2] word ids", 2, 2, W.shape[0])
    gold = np.asarray(gold, dtype=np.float64)
    if gold.shape != (pairs.shape[0],):
        raise ValueError(
            f"gold of shape {gold.shape} is invalid; valid: [{pairs.shape[0]}], one per pair"
        )
    if pairs.shape[0] < 2:
        raise ValueError(f"pairs has {pairs.shape[0]} rows; valid: at least 2 pairs")
    if not np.all(np.isfinite(gold)):
        raise ValueError("gold has non-finite scores; valid: finite values")
    return float(scipy.stats.spearmanr(_pair_cosines(W, pairs), gold).statistic)


# ---------------------------------------------------------------------------------------------
# PMI (Levy & Goldberg 2014)


def empirical_pmi(
    centre_ids: Any, context_ids: Any, vocab_size: int, *, context_power: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise mutual information of observed (centre, context) pairs.

    ``PMI(i, j) = log(#(i, j) N / (#(i) #(j)))`` with ``N`` the number of pairs and the
    marginals ``#(i) = sum_j #(i, j)``, ``#(j) = sum_i #(i, j)`` counted over the same pairs
    (Levy & Goldberg 2014). With ``context_power = alpha != 1`` the context marginal is the
    smoothed ``P_alpha(j) = #(j)^alpha / sum_j' #(j')^alpha`` (Levy, Goldberg & Dagan 2015,
    "Improving distributional similarity with lessons learned from word embeddings"), which
    is what skip-gram with negatives drawn from ``count^0.75`` factorises.

    Args:
      centre_ids, context_ids: ``[N]`` word ids of the pairs, ``N >= 1``.
      vocab_size: ``V``; the ``[V, V]`` counts are made with one ``np.bincount`` (``V`` up to
        a few thousand).
      context_power: ``alpha > 0``.

    Returns:
      ``(pmi float64 [V, V]`` with ``-inf`` where a pair was never observed,
      ``counts int64 [V, V])``; row = centre word, column = context word.
    """
    V = _check_positive_int("vocab_size", vocab_size)
    centre = _as_ids("centre_ids", centre_ids, "1-D [N] word ids", 1, None, V)
    context = _as_ids("context_ids", context_ids, "1-D [N] word ids", 1, None, V)
    if centre.shape != context.shape:
        raise ValueError(
            f"centre_ids has {centre.shape[0]} ids but context_ids has {context.shape[0]}; "
            "valid: one context per centre"
        )
    if centre.shape[0] == 0:
        raise ValueError("centre_ids is empty; valid: at least one pair")
    if not (isinstance(context_power, (int, float, np.floating)) and context_power > 0):
        raise ValueError(f"context_power={context_power!r} is invalid; valid: a number > 0")
    counts = np.bincount(centre * V + context, minlength=V * V).reshape(V, V).astype(np.int64)
    n = float(centre.shape[0])
    p_centre = counts.sum(axis=1) / n
    ctx = counts.sum(axis=0).astype(np.float64) ** context_power
    p_context = ctx / ctx.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts / n) - np.log(p_centre)[:, None] - np.log(p_context)[None, :]
    pmi[counts == 0] = -np.inf
    return pmi, counts


def pmi_correlation(
    W: Any, C: Any, pmi: Any, pairs: Any = None, k_negatives: float = 1
) -> dict[str, Any]:
    """How closely ``W[i] . C[j]`` matches the shifted PMI ``PMI(i, j) - log k``.

    Skip-gram with ``k`` negative samples reaches its optimum at
    ``W[i] . C[j] = PMI(i, j) - log k`` for every observed pair (Levy & Goldberg 2014,
    "Neural word embedding as implicit matrix factorization"). This compares the two over
    the given pairs.

    Args:
      W: ``[V_w, D]`` word (input) vectors.
      C: ``[V_c, D]`` context (output) vectors.
      pmi: ``[V_w, V_c]`` PMI (e.g. :func:`empirical_pmi`).
      pairs: ``[n, 2]`` (word, context) ids, or a ``[V_w, V_c]`` boolean mask of the pairs to
        use; None uses every pair with a finite PMI (the observed ones). PMI must be finite
        on the pairs used.
      k_negatives: ``k > 0``, the number of negative samples.

    Returns:
      ``{'pearson'`` (Pearson correlation of dot products and shifted PMI; NaN if either is
      constant), ``'mean_abs_gap'`` (mean ``|W[i] . C[j] - (PMI(i, j) - log k)|``),
      ``'mean_gap'`` (the signed mean), ``'pairs'`` (the number of pairs)``}``.
    """
    W = _as_embeddings("W", W)
    C = _as_embeddings("C", C)
    if W.shape[1] != C.shape[1]:
        raise ValueError(
            f"W has dim {W.shape[1]} but C has {C.shape[1]}; valid: the same dim D for both"
        )
    pmi = np.asarray(pmi, dtype=np.float64)
    shape = (W.shape[0], C.shape[0])
    if pmi.shape != shape:
        raise ValueError(f"pmi of shape {pmi.shape} is invalid; valid: {shape} (V_w, V_c)")
    if (
        isinstance(k_negatives, bool)
        or not isinstance(k_negatives, (int, float, np.integer, np.floating))
        or not k_negatives > 0
    ):
        raise ValueError(f"k_negatives={k_negatives!r} is invalid; valid: a number > 0")
    if pairs is None:
        rows, cols = np.nonzero(np.isfinite(pmi))
    else:
        arr = np.asarray(pairs)
        if arr.dtype == np.bool_:
            if arr.shape != shape:
                raise ValueError(
                    f"pairs mask of shape {arr.shape} is invalid; valid: {shape} like pmi"
                )
            rows, cols = np.nonzero(arr)
        else:
            arr = _as_ids("pairs", arr, "2-D [n, 2] ids or a boolean mask", 2, 2, None)
            bad = arr[(arr[:, 0] >= shape[0]) | (arr[:, 1] >= shape[1])]
            if bad.size:
                raise ValueError(
                    f"pairs contains pair {tuple(bad[0])}; valid: ids in [0, {shape[0]}) x "
                    f"[0, {shape[1]})"
                )
            rows, cols = arr[:, 0], arr[:, 1]
    if rows.shape[0] < 2:
        raise ValueError(f"{rows.shape[0]} pairs selected; valid: at least 2")
    target = pmi[rows, cols] - math.log(k_negatives)
    finite = np.isfinite(target)
    if not finite.all():
        i = int(np.argmin(finite))
        raise ValueError(
            f"pmi[{rows[i]}, {cols[i]}] = {pmi[rows[i], cols[i]]} is not finite; valid: "
            "pairs with finite PMI (observed pairs)"
        )
    dots = np.sum(W[rows].astype(np.float64) * C[cols].astype(np.float64), axis=1)
    gap = dots - target
    if np.ptp(dots) == 0 or np.ptp(target) == 0:
        pearson = float("nan")
    else:
        pearson = float(np.corrcoef(dots, target)[0, 1])
    return {
        "pearson": pearson,
        "mean_abs_gap": float(np.mean(np.abs(gap))),
        "mean_gap": float(np.mean(gap)),
        "pairs": int(rows.shape[0]),
    }


# ---------------------------------------------------------------------------------------------
# Files


def _data_lines(path: epath.Path):
    """Yields ``(line_number, stripped_line)`` of the non-blank lines not starting with '#'."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


def _similarity_fields(line: str) -> list[str]:
    if "\t" in line:
        return [f.strip() for f in line.split("\t")]
    if "," in line:
        return [f.strip() for f in line.split(",")]
    return line.split()


def _similarity_record(line: str) -> tuple[str, str, float] | None:
    fields = _similarity_fields(line)
    if len(fields) < 3 or not fields[0] or not fields[1]:
        return None
    try:
        score = float(fields[2])
    except ValueError:
        return None
    return (fields[0], fields[1], score) if math.isfinite(score) else None


def read_word_similarity(path: Any) -> list[tuple[str, str, float]]:
    """Word pairs with similarity scores from a WordSim-353 style file.

    Each line holds ``word1 word2 score`` separated by tabs (if the line has a tab), else
    commas (if it has a comma), else whitespace; further columns are ignored. Blank lines and
    lines starting with ``#`` (gensim's ``wordsim353.tsv`` starts with such comments) are
    skipped, and so is the first remaining line if it is not a record (a header such as
    ``Word 1,Word 2,Human (mean)``). Any other line that is not a record is a ValueError
    naming its line number.

    Returns:
      ``[(word1, word2, score)]`` in file order.
    """
    p = _existing_path(path, "read_word_similarity")
    records = []
    for position, (number, line) in enumerate(_data_lines(p)):
        record = _similarity_record(line)
        if record is None:
            if position == 0:  # the header
                continue
            raise ValueError(
                f"{p}:{number}: line {line!r} is malformed; valid: 'word1 word2 score' "
                "(tab, comma or space separated, finite score)"
            )
        records.append(record)
    if not records:
        raise ValueError(f"{p} has no 'word1 word2 score' lines; valid: a non-empty file")
    return records


def evaluate_word_similarity(
    W: Any, vocab: Any, path: Any, lowercase: bool = True
) -> dict[str, Any]:
    """Spearman correlation of cosines with the human scores of a word-similarity file.

    Pairs with a word outside ``vocab`` are skipped and counted (as gensim's
    ``evaluate_word_pairs`` with ``dummy4unknown=False``).

    Args:
      W: ``[V, D]`` embeddings.
      vocab: ``V`` words (id -> word), or an object with a ``words`` attribute.
      path: a file :func:`read_word_similarity` reads.
      lowercase: compare words case-insensitively.

    Returns:
      ``{'spearman', 'pearson'`` (of cosine and score over the pairs in the vocabulary),
      ``'pairs'`` (pairs evaluated), ``'oov_pairs'`` (pairs skipped), ``'oov_share'``
      (``oov_pairs / all pairs``, a fraction)``}``.
    """
    W = _as_embeddings("W", W)
    words = _vocab_words(vocab, W.shape[0])
    index = _word_index(words, lowercase)
    records = read_word_similarity(path)
    ids, gold = [], []
    for w1, w2, score in records:
        if lowercase:
            w1, w2 = w1.lower(), w2.lower()
        if w1 in index and w2 in index:
            ids.append((index[w1], index[w2]))
            gold.append(score)
    oov = len(records) - len(ids)
    if len(ids) < 2:
        raise ValueError(
            f"{len(ids)} of the {len(records)} pairs of {path} have both words in the "
            f"vocabulary of {len(words)} words; valid: at least 2"
        )
    pairs = np.asarray(ids, dtype=np.int64)
    gold = np.asarray(gold, dtype=np.float64)
    cos = _pair_cosines(W, pairs)
    constant = np.ptp(cos) == 0 or np.ptp(gold) == 0
    return {
        "spearman": similarity_spearman(W, pairs, gold),
        "pearson": float("nan") if constant else float(scipy.stats.pearsonr(cos, gold).statistic),
        "pairs": len(ids),
        "oov_pairs": oov,
        "oov_share": oov / len(records),
    }


_SECTION = re.compile(r"^:\s*(.*?)\s*$")


def read_analogy_file(path: Any) -> dict[str, list[tuple[str, str, str, str]]]:
    """Analogy questions from a file in the format of Mikolov et al.'s ``questions-words.txt``.

    A line ``: name`` starts a section; each following line holds four words ``a b c d``
    (``a : b :: c : d``) separated by whitespace. Blank lines and lines starting with ``#``
    are skipped; a question before the first section, a line without exactly four words or an
    unnamed section is a ValueError naming its line number. Sections of the same name are
    merged.

    Returns:
      ``{section: [(a, b, c, d)]}`` in file order.
    """
    p = _existing_path(path, "read_analogy_file")
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current = None
    for number, line in _data_lines(p):
        match = _SECTION.match(line)
        if match:
            current = match.group(1)
            if not current:
                raise ValueError(
                    f"{p}:{number}: section line {line!r} has no name; valid: ': name'"
                )
            sections.setdefault(current, [])
            continue
        fields = line.split()
        if len(fields) != 4:
            raise ValueError(
                f"{p}:{number}: line {line!r} has {len(fields)} words; valid: 4 words 'a b c d'"
            )
        if current is None:
            raise ValueError(
                f"{p}:{number}: question {line!r} comes before any section; valid: a ': name' "
                "line first"
            )
        sections[current].append(tuple(fields))
    if not any(sections.values()):
        raise ValueError(f"{p} has no analogy questions; valid: ': section' then 'a b c d' lines")
    return sections


def evaluate_analogy_file(
    W: Any,
    vocab: Any,
    path: Any,
    method: str = "add",
    lowercase: bool = True,
    restrict_vocab: int | None = None,
    *,
    batch: int = DEFAULT_BATCH,
) -> dict[str, Any]:
    """Analogy accuracy on a ``questions-words.txt`` style file, per section and overall.

    Questions with a word outside the vocabulary are skipped and counted, and the accuracy is
    over the rest (as gensim's ``evaluate_word_analogies``). ``restrict_vocab=N`` uses only
    the first ``N`` words (the most frequent ones in a count-sorted vocabulary): questions
    with a word beyond them count as out of vocabulary and only they are candidate answers
    (gensim does this with ``restrict_vocab=300000``; the default here is the whole
    vocabulary).

    Args:
      W: ``[V, D]`` embeddings.
      vocab: ``V`` words (id -> word), or an object with a ``words`` attribute.
      path: a file :func:`read_analogy_file` reads.
      method: ``'add'`` (3CosAdd) or ``'mul'`` (3CosMul), see :func:`analogy_predictions`.
      lowercase: compare words case-insensitively.
      restrict_vocab: None or ``N`` in ``[4, V]``.
      batch: questions per device step.

    Returns:
      ``{'accuracy'`` (over all questions evaluated), ``'correct'``, ``'questions'``
      (evaluated), ``'oov_questions'`` (skipped), ``'oov_share'`` (skipped / all, a
      fraction), ``'chance'`` (``1 / (N - 3)`` with ``N`` the candidate words),
      ``'per_section': {name: {'accuracy', 'correct', 'questions', 'oov_questions'}}``
      ``}``; a section with no question evaluated has accuracy NaN.
    """
    method = _check_method(method)
    W = _as_embeddings("W", W)
    words = _vocab_words(vocab, W.shape[0])
    V = W.shape[0]
    if restrict_vocab is not None:
        if (
            isinstance(restrict_vocab, bool)
            or not isinstance(restrict_vocab, (int, np.integer))
            or not 4 <= restrict_vocab <= V
        ):
            raise ValueError(
                f"restrict_vocab={restrict_vocab!r} is invalid; valid: None or an integer in "
                f"[4, {V}]"
            )
        V = int(restrict_vocab)
        W, words = W[:V], words[:V]
    elif V < 4:
        raise ValueError(f"W has V={V} rows; valid: V >= 4 (three inputs and one answer)")
    index = _word_index(words, lowercase)
    sections = read_analogy_file(path)
    ids, owner, per_section = [], [], {}
    for s, (name, questions) in enumerate(sections.items()):
        oov = 0
        for question in questions:
            if lowercase:
                question = tuple(w.lower() for w in question)
            if all(w in index for w in question):
                ids.append([index[w] for w in question])
                owner.append(s)
            else:
                oov += 1
        per_section[name] = {"oov_questions": oov}
    total = sum(len(q) for q in sections.values())
    if not ids:
        raise ValueError(
            f"none of the {total} questions of {path} has all four words in the vocabulary of "
            f"{V} words; valid: at least one"
        )
    q = np.asarray(ids, dtype=np.int64)
    owner = np.asarray(owner)
    pred = analogy_predictions(W, q[:, 0], q[:, 1], q[:, 2], method, batch=batch)
    right = pred == q[:, 3]
    for s, name in enumerate(sections):
        mine = owner == s
        n, correct = int(mine.sum()), int(right[mine].sum())
        per_section[name] = {
            "accuracy": correct / n if n else float("nan"),
            "correct": correct,
            "questions": n,
            "oov_questions": per_section[name]["oov_questions"],
        }
    oov_total = total - q.shape[0]
    return {
        "accuracy": float(right.mean()),
        "correct": int(right.sum()),
        "questions": int(q.shape[0]),
        "oov_questions": oov_total,
        "oov_share": oov_total / total,
        "chance": 1.0 / (V - 3),
        "per_section": per_section,
    }
