"""Text corpora for word2vec: tokens, vocabulary, subsampling, negatives, training pairs.

Host-side building blocks of skip-gram and CBOW training (Mikolov et al. 2013, "Efficient
estimation of word representations in vector space" and "Distributed representations of
words and phrases and their compositionality"), as small pure functions of arrays (numpy;
``jax.random`` where a JAX key drives the draw):

* :func:`tokenize`, :func:`read_text_files`: UTF-8 text to token lists, one per line;
* :class:`Vocabulary`, :func:`build_vocabulary`: words sorted by count, id lookups;
* :func:`keep_probabilities`, :func:`subsample`: frequent-word subsampling as the word2vec C
  code does it;
* :func:`unigram_table`, :func:`sample_negatives`: the ``count^0.75`` noise distribution of
  negative sampling;
* :func:`skip_gram_pairs`, :func:`cbow_windows`: training examples with word2vec's dynamic
  window; :func:`expected_pair_weights` gives the probability that an offset is inside it;
* :func:`synthetic_corpus`, :func:`true_pair_probabilities`, :func:`true_pmi`,
  :func:`true_similarity`: a corpus generated in code whose pair statistics are known exactly.

Token ids come as one sentence (a 1-D integer array), as equal-length sentences (the rows of
a 2-D array) or as a sequence of 1-D arrays; training pairs never cross a sentence.

**Why PMI.** Skip-gram with ``k`` negatives drawn from the unigram distribution is, at its
optimum, a factorisation of the shifted pointwise mutual information of (centre, context)
pairs, ``w . c = PMI(w, c) - log k`` (Levy & Goldberg 2014, "Neural word embedding as
implicit matrix factorization"); with the ``count^0.75`` noise distribution ``P_n`` the
optimum is ``log(P(w, c) / (P(w) P_n(c))) - log k``. :func:`true_pmi` gives the PMI of the
synthetic corpus exactly, so trained embeddings can be compared with the truth.

**The synthetic corpus** (:func:`synthetic_corpus`). Each word is a pair (base ``i``,
attribute ``g``), ``i < num_bases``, ``g < num_attributes``, written ``"x{i}_{g}"`` (zero
padded) with id ``i * num_attributes + g``. A sentence of ``sentence_length`` tokens is made
as follows:

1. bases follow a first-order Markov chain with transition matrix ``A`` (the "syntax"),
   started from its stationary distribution ``pi_A``, so every position is distributed as
   ``pi_A``;
2. the sentence draws one latent attribute ``s`` uniformly (like the tense or the
   grammatical number a sentence agrees on), and each token, independently of everything
   else, expresses ``s`` with probability ``agreement`` and otherwise a uniformly drawn
   attribute: ``q_s(g) = agreement [g = s] + (1 - agreement) / num_attributes``.

``A`` is random: row ``i`` is ``(1 - smoothing) D_i + smoothing z`` with ``D_i`` drawn from a
Dirichlet distribution of mean ``z`` and per-entry concentration ``concentration``, where
``z_j`` is proportional to ``(j + 1)^-zipf_exponent`` (Zipf-like word frequencies); bases are
then relabelled by decreasing ``pi_A``, so ids run in order of decreasing stationary
probability (ties only between the attributes of one base, which are in alphabetical order),
the order :func:`build_vocabulary` would give with unlimited data.

Bases and attributes are independent, and the attributes of any two tokens of a sentence
are exchangeable whatever their distance. So the pair of words at offset ``k`` has the
probability ``P_k((i, g), (j, h)) = pi_A(i) A^k(i, j) * C(g, h)`` with
``C = Q^T Q / num_attributes`` (``Q[s, g] = q_s(g)``) independent of ``k``, and any mixture
over offsets (word2vec's dynamic window) factorises the same way. The PMI of a word pair is
therefore exactly a base part plus an attribute part,
``PMI((i, g), (j, h)) = F(i, j) + H(g, h)``, and the analogies ``(i, g) : (i, h) :: (j, g) :
(j, h)`` hold exactly in the PMI rows: ``row(b) - row(a) + row(c) = row(d)``
(``planted_analogies``). Offsets ``k`` are weighted as word2vec samples them: an offset is in
the dynamic window with probability ``(window - k + 1) / window`` and a sentence of length
``L`` has ``L - k`` positions at offset ``k`` on either side.

Nothing here imports TensorFlow, PyTorch or gensim.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import re
import unicodedata
from typing import Any, Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

# ----------------------------------------------------------------------------------------
# Tokens and vocabulary
# ----------------------------------------------------------------------------------------

# Letters/digits (Python's Unicode ``\w`` without the underscore), with runs of apostrophes
# allowed only between them.
TOKEN_PATTERN = r"[^\W_]+(?:'+[^\W_]+)*"
_TOKEN_RE = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    r"""Splits text into lower-case word tokens.

    The text is normalised to Unicode NFC, lower-cased (``str.lower``), the typographic
    apostrophe U+2019 is replaced by ``'``, and the tokens are the matches, left to right, of
    the regular expression (Python ``re`` on ``str``)::

        [^\W_]+(?:'+[^\W_]+)*

    ``[^\W_]`` is a Unicode letter or digit (``\w`` without the underscore). A token is thus
    a maximal run of letters, digits and apostrophes with the apostrophes at its ends
    removed: ``"Don't"`` gives ``["don't"]``, ``"'quoted'"`` gives ``["quoted"]``, ``"dogs'"``
    gives ``["dogs"]``; everything else (spaces, punctuation, underscores, symbols) separates
    tokens. Combining marks that do not compose under NFC (some scripts' vowel signs) are not
    ``\w`` and split a word.

    Args:
      text: any string.

    Returns:
      The tokens, in order.
    """
    if not isinstance(text, str):
        raise ValueError(f"tokenize: text of type {type(text).__name__} is invalid; valid: str")
    text = unicodedata.normalize("NFC", text).lower().replace("\u2019", "'")
    return _TOKEN_RE.findall(text)


@dataclasses.dataclass(frozen=True, eq=False)
class Vocabulary:
    """Words with their counts; a word's id is its position in ``words``.

    :func:`build_vocabulary` sorts ``words`` by decreasing count, ties alphabetically (the
    word2vec C code's order, with its ties made deterministic); a ``Vocabulary`` built
    directly keeps the order it is given (:func:`synthetic_corpus` orders by exact
    probability).

    Attributes:
      words: the distinct words.
      counts: ``int64 [len(words)]``, each word's count (read-only).
    """

    words: tuple[str, ...]
    counts: np.ndarray
    _index: Mapping[str, int] = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        words = tuple(self.words)
        if not all(isinstance(w, str) for w in words):
            bad = next(w for w in words if not isinstance(w, str))
            raise ValueError(f"Vocabulary: word {bad!r} is invalid; valid: strings")
        index = {w: i for i, w in enumerate(words)}
        if len(index) != len(words):
            dup = next(w for w, n in collections.Counter(words).items() if n > 1)
            raise ValueError(f"Vocabulary: word {dup!r} appears twice; words must be distinct")
        counts = np.asarray(self.counts)
        if counts.shape != (len(words),) or not (
            counts.size == 0 or np.issubdtype(counts.dtype, np.integer)
        ):
            raise ValueError(
                f"Vocabulary: counts of shape {counts.shape} and dtype {counts.dtype} are "
                f"invalid; valid: integers of shape ({len(words)},)"
            )
        if np.any(counts < 0):
            raise ValueError(f"Vocabulary: count {counts.min()} is invalid; valid: counts >= 0")
        counts = counts.astype(np.int64, copy=True)
        counts.setflags(write=False)
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.words == other.words and np.array_equal(self.counts, other.counts)

    def __hash__(self) -> int:
        return hash((self.words, self.counts.tobytes()))

    @property
    def total(self) -> int:
        """The number of tokens counted (sum of ``counts``)."""
        return int(self.counts.sum())

    @property
    def frequencies(self) -> np.ndarray:
        """``counts / total`` (float64)."""
        total = self.total
        if total == 0:
            raise ValueError("Vocabulary: total count 0 has no frequencies; valid: total > 0")
        return self.counts / total

    def index(self, word: str) -> int:
        """The id of ``word``; a one-line ``ValueError`` when it is not in the vocabulary."""
        try:
            return self._index[word]
        except (KeyError, TypeError):
            raise ValueError(
                f"word {word!r} is not in the vocabulary of {len(self)} words "
                f"(first: {', '.join(map(repr, self.words[:3]))})"
            ) from None

    def ids(self, tokens: Iterable[str]) -> np.ndarray:
        """``int32`` ids of the tokens that are in the vocabulary, in order (others dropped)."""
        index = self._index
        return np.fromiter((index[t] for t in tokens if t in index), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The words of ``ids``."""
        return [self.words[i] for i in np.asarray(ids, dtype=np.int64).ravel()]


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= {minimum}")
    return int(value)


def build_vocabulary(
    token_streams: Iterable[Iterable[str]], *, min_count: int = 5, max_size: int | None = None
) -> Vocabulary:
    """Counts tokens and keeps the frequent ones, as word2vec does.

    Words with fewer than ``min_count`` occurrences are dropped (word2vec's ``-min-count``,
    default 5); the rest are sorted by decreasing count, ties alphabetically, and cut to the
    first ``max_size``.

    Args:
      token_streams: token lists (e.g. sentences from :func:`read_text_files`).
      min_count: the least count a word needs (>= 1).
      max_size: the most words kept (>= 1), or ``None`` for all.

    Returns:
      The ``Vocabulary``.
    """
    min_count = _check_int("min_count", min_count, 1)
    if max_size is not None:
        max_size = _check_int("max_size", max_size, 1)
    counter: collections.Counter[str] = collections.Counter()
    for tokens in token_streams:
        if isinstance(tokens, str):
            raise ValueError(
                f"build_vocabulary: token stream {tokens[:40]!r} is a string; valid: "
                "iterables of token strings (e.g. tokenize(line))"
            )
        counter.update(tokens)
    kept = sorted(((-n, w) for w, n in counter.items() if n >= min_count))
    if max_size is not None:
        kept = kept[:max_size]
    if not kept:
        most = max(counter.values(), default=0)
        raise ValueError(
            f"build_vocabulary: min_count={min_count} keeps no word (most frequent count "
            f"{most}); valid: min_count <= {max(most, 1)}"
        )
    return Vocabulary(
        words=tuple(w for _, w in kept), counts=np.array([-n for n, _ in kept], np.int64)
    )


def read_text_files(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
) -> Iterator[list[str]]:
    """Token lists, one per non-empty line, of UTF-8 text files (any ``etils.epath`` path).

    Every path is checked before reading starts: a missing one raises a one-line
    ``ValueError`` naming it. Lines without tokens (blank lines) are skipped; a line is a
    sentence for :func:`skip_gram_pairs`. The files are read lazily, line by line, so the
    iterator can be consumed twice only by calling this function twice (e.g. once for
    :func:`build_vocabulary`, once for the ids).

    Args:
      paths: a path or paths (``str``, ``os.PathLike`` or ``epath.Path``).

    Returns:
      An iterator over ``tokenize(line)`` for every line with tokens, file after file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    resolved = [epath.Path(p) for p in paths]
    if not resolved:
        raise ValueError("read_text_files: no paths given; valid: one or more text files")
    for path in resolved:
        if not path.exists():
            raise ValueError(f"read_text_files: {os.fspath(path)} does not exist")
        if path.is_dir():
            raise ValueError(f"read_text_files: {os.fspath(path)} is a folder; valid: files")
    return _read_lines(resolved)


def _read_lines(paths: list[epath.Path]) -> Iterator[list[str]]:
    for path in paths:
        with path.open("rb") as f:  # lines split at b"\n"; a trailing "\r" is no token
            for line_number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise ValueError(
                        f"read_text_files: {os.fspath(path)} is not UTF-8 text at line "
                        f"{line_number} ({err.reason})"
                    ) from None
                tokens = tokenize(line)
                if tokens:
                    yield tokens


# ----------------------------------------------------------------------------------------
# Subsampling and negatives
# ----------------------------------------------------------------------------------------


def _check_counts(name: str, counts: Any) -> np.ndarray:
    counts = np.asarray(counts)
    if (
        counts.ndim != 1
        or counts.size == 0
        or not (np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating))
    ):
        raise ValueError(
            f"{name}: counts of shape {counts.shape} and dtype {counts.dtype} are invalid; "
            "valid: a non-empty 1-D array of numbers"
        )
    counts = counts.astype(np.float64)
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError(
            f"{name}: counts with min {counts.min()} and sum {counts.sum()} are invalid; "
            "valid: finite, >= 0, with a positive sum"
        )
    return counts


def keep_probabilities(counts: Any, threshold: float = 1e-3) -> np.ndarray:
    """The probability of keeping each occurrence of a word (frequent-word subsampling).

    Mikolov et al. 2013 ("Distributed representations...") discard each occurrence of word
    ``w`` with probability ``1 - sqrt(t / f(w))``, i.e. keep it with ``sqrt(t / f(w))``, where
    ``f(w) = count(w) / total`` and ``t`` is the threshold. The word2vec C code, which we
    follow, keeps it with probability::

        p_keep(w) = (sqrt(f(w) / t) + 1) * t / f(w)      (= sqrt(t / f) + t / f)

    clipped to 1: words with ``f(w) <= t (3 + sqrt 5) / 2 ~= 2.618 t`` are always kept. The C
    default is ``t = 1e-3`` (the paper's experiments use ``1e-5``). ``threshold=0``
    switches subsampling off (all ones), as ``-sample 0`` does in the C code. Words of count
    0 get 1 (they never occur).

    Args:
      counts: ``[V]`` word counts (e.g. ``Vocabulary.counts``).
      threshold: ``t`` >= 0.

    Returns:
      ``float64 [V]`` keep probabilities in ``(0, 1]``.
    """
    counts = _check_counts("keep_probabilities", counts)
    if not (isinstance(threshold, (int, float, np.floating)) and 0 <= threshold < math.inf):
        raise ValueError(f"threshold={threshold!r} is invalid; valid: a finite number >= 0")
    if threshold == 0:
        return np.ones_like(counts)
    freq = counts / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(freq / threshold) + 1.0) * threshold / freq
    return np.where(freq > 0, np.minimum(keep, 1.0), 1.0)


def _as_sentences(ids: Any, fn: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat ids and sentence lengths from a 1-D array, a 2-D array or a sequence of 1-D."""
    if isinstance(ids, (np.ndarray, jax.Array)):
        arr = np.asarray(ids)
        if arr.ndim == 1:
            parts = [arr]
        elif arr.ndim == 2:
            parts = list(arr)
        else:
            raise ValueError(
                f"{fn}: ids of shape {arr.shape} are invalid; valid: 1-D (one sentence), 2-D "
                "(one sentence per row) or a sequence of 1-D arrays"
            )
    elif isinstance(ids, Sequence) and not isinstance(ids, str):
        parts = [np.asarray(p) for p in ids]
    else:
        raise ValueError(
            f"{fn}: ids of type {type(ids).__name__} are invalid; valid: a numpy array or a "
            "sequence of 1-D arrays"
        )
    for p in parts:
        if p.ndim != 1 or not (p.size == 0 or np.issubdtype(p.dtype, np.integer)):
            raise ValueError(
                f"{fn}: a sentence of shape {p.shape} and dtype {p.dtype} is invalid; valid: "
                "1-D integer arrays"
            )
    lengths = np.array([p.size for p in parts], dtype=np.int64)
    flat = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return flat, lengths


def subsample(rng_key: jax.Array, ids: Any, keep_prob: Any) -> np.ndarray | list[np.ndarray]:
    """Drops each token independently, keeping token ``w`` with probability ``keep_prob[w]``.

    As in the word2vec C code, subsampling happens before the training windows are formed, so
    the words around a discarded one move closer. One uniform draw per token from
    ``jax.random.uniform(rng_key, ...)``; a token is kept when the draw is below its keep
    probability.

    Args:
      rng_key: a JAX PRNG key.
      ids: one sentence (1-D integer array), or sentences (2-D array rows or a sequence of
        1-D arrays).
      keep_prob: ``[V]`` keep probabilities (:func:`keep_probabilities`).

    Returns:
      For a 1-D input, the kept ids (1-D, same dtype); otherwise a list with the kept ids of
      each sentence.
    """
    keep_prob = np.asarray(keep_prob, dtype=np.float64)
    if keep_prob.ndim != 1 or np.any(~(keep_prob >= 0)) or np.any(keep_prob > 1):
        raise ValueError(
            f"subsample: keep_prob of shape {keep_prob.shape} is invalid; valid: a 1-D array "
            "of probabilities in [0, 1]"
        )
    single = isinstance(ids, (np.ndarray, jax.Array)) and np.ndim(ids) == 1
    dtype = np.asarray(ids).dtype if single else np.int32
    flat, lengths = _as_sentences(ids, "subsample")
    if flat.size and (flat.min() < 0 or flat.max() >= keep_prob.size):
        bad = flat.min() if flat.min() < 0 else flat.max()
        raise ValueError(
            f"subsample: id {bad} is invalid; valid: 0 <= id < {keep_prob.size} (len(keep_prob))"
        )
    u = np.asarray(jax.random.uniform(rng_key, (flat.size,)), dtype=np.float64)
    keep = u < keep_prob[flat]
    if single:
        return flat[keep].astype(dtype)
    sentence = np.repeat(np.arange(lengths.size), lengths)
    kept_per_sentence = np.bincount(sentence[keep], minlength=lengths.size)
    return np.split(flat[keep].astype(np.int32), np.cumsum(kept_per_sentence)[:-1])


def unigram_table(counts: Any, power: float = 0.75) -> np.ndarray:
    """The noise distribution of negative sampling, ``counts^power / sum(counts^power)``.

    Mikolov et al. 2013 found the unigram distribution raised to 3/4 better than the plain
    unigram or uniform ones; the C code stores it as a table of 1e8 word ids, we keep the
    probabilities (``0^power = 0`` for any ``power > 0``).

    Args:
      counts: ``[V]`` word counts.
      power: the exponent (>= 0; 0 gives the uniform distribution over all ``V`` words).

    Returns:
      ``float64 [V]`` probabilities summing to 1.
    """
    counts = _check_counts("unigram_table", counts)
    if not (isinstance(power, (int, float, np.floating)) and 0 <= power < math.inf):
        raise ValueError(f"power={power!r} is invalid; valid: a finite number >= 0")
    weights = np.ones_like(counts) if power == 0 else counts**power
    return weights / weights.sum()


def sample_negatives(key: jax.Array, probs: Any, shape: Sequence[int]) -> jax.Array:
    """Draws word ids i.i.d. from ``probs`` (negatives for skip-gram or CBOW).

    ``jax.random.choice`` with ``p=probs`` (inverse CDF on the float32 cumulative sum: cost
    ``O(V + n log V)``, no ``[n, V]`` Gumbel array). Words of probability below about
    ``6e-8`` (the float32 spacing near 1) are resolved only to that granularity.

    Args:
      key: a JAX PRNG key.
      probs: ``[V]`` probabilities (:func:`unigram_table`); validated when concrete.
      shape: the shape of the draw, e.g. ``(batch, num_negatives)``.

    Returns:
      ``int32`` ids of shape ``shape``.
    """
    if not isinstance(probs, jax.core.Tracer):
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 1 or p.size == 0 or np.any(~(p >= 0)) or abs(p.sum() - 1) > 1e-5:
            raise ValueError(
                f"sample_negatives: probs of shape {p.shape} (sum {p.sum():.6g}) are invalid; "
                "valid: a non-empty 1-D array of probabilities summing to 1"
            )
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(
            f"sample_negatives: shape={shape!r} is invalid; valid: a tuple of sizes"
        ) from None
    if any(s < 0 for s in shape):
        raise ValueError(f"sample_negatives: shape={shape} is invalid; valid: sizes >= 0")
    probs = jnp.asarray(probs, dtype=jnp.float32)
    draw = jax.random.choice(key, probs.shape[0], shape=shape, replace=True, p=probs)
    return draw.astype(jnp.int32)


# ----------------------------------------------------------------------------------------
# Training examples
# ----------------------------------------------------------------------------------------


def expected_pair_weights(window: int) -> np.ndarray:
    """P(offset ``k`` is inside word2vec's dynamic window), ``k = 1..window``.

    The effective window ``b`` is uniform on ``1..window``, so ``P(b >= k) = (window - k + 1)
    / window``: nearby words count more, linearly decreasing with distance (Levy et al. 2015
    discuss this as "dynamic context window" weighting).

    Returns:
      ``float64 [window]``, entry ``k - 1`` for offset ``k``.
    """
    window = _check_int("window", window, 1)
    return (window - np.arange(1, window + 1) + 1) / window


def _dynamic_windows(
    ids: Any, window: int, rng: np.random.Generator, fn: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat ids ``[n]``, context indices ``[n, 2 window]`` and their validity mask."""
    window = _check_int("window", window, 1)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{fn}: rng of type {type(rng).__name__} is invalid; valid: numpy.random.Generator"
        )
    flat, lengths = _as_sentences(ids, fn)
    n = flat.size
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)  # first index of each sentence
    ends = np.repeat(np.cumsum(lengths), lengths)  # one past its last index
    # word2vec: b = next_random % window, effective window window - b, uniform on 1..window.
    effective = rng.integers(1, window + 1, size=n)
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
    position = np.arange(n)[:, None] + offsets[None, :]
    valid = (
        (np.abs(offsets)[None, :] <= effective[:, None])
        & (position >= starts[:, None])
        & (position < ends[:, None])
    )
    return flat, np.where(valid, position, 0), valid


def skip_gram_pairs(
    ids: Any, window: int, *, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(centre, context) pairs of skip-gram with word2vec's dynamic window.

    For every token (the centre) an effective window ``b`` is drawn uniformly from
    ``1..window``, and every token of the same sentence at distance ``1..b`` on either side is
    a context. Pairs come in token order, each centre's contexts from the farthest left to
    the farthest right. The same generator state gives :func:`cbow_windows` the same
    windows. Offset ``k`` is used with probability :func:`expected_pair_weights` ``[k - 1]``.

    Args:
      ids: one sentence (1-D integer array), sentences as the rows of a 2-D array, or a
        sequence of 1-D arrays; pairs never cross sentences.
      window: the largest window (word2vec's ``-window``, >= 1).
      rng: draws the effective windows.

    Returns:
      ``centre``, ``context``: ``int32 [num_pairs]``.
    """
    flat, position, valid = _dynamic_windows(ids, window, rng, "skip_gram_pairs")
    centre = np.broadcast_to(flat[:, None], valid.shape)[valid]
    context = flat[position[valid]]
    return centre.astype(np.int32), context.astype(np.int32)


def cbow_windows(
    ids: Any, window: int, *, rng: np.random.Generator, pad_id: int = -1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CBOW examples: each centre with its (padded) context words, dynamic window as above.

    Column ``j`` of ``context`` holds offset ``-window + j`` for ``j < window`` and
    ``j - window + 1`` otherwise (offsets ``-window..-1, 1..window``); slots outside the
    effective window or the sentence hold ``pad_id`` and are ``False`` in ``mask``. As in the
    C code, centres without any context word (one-word sentences) give no example. Given the
    same generator state, ``context[mask]`` with ``centre`` repeated are exactly the pairs of
    :func:`skip_gram_pairs`.

    Args:
      ids: sentences as for :func:`skip_gram_pairs`.
      window: the largest window (>= 1).
      rng: draws the effective windows.
      pad_id: the id written in empty slots.

    Returns:
      ``context`` ``int32 [n, 2 window]``, ``mask`` ``bool [n, 2 window]``, ``centre``
      ``int32 [n]``.
    """
    flat, position, valid = _dynamic_windows(ids, window, rng, "cbow_windows")
    rows = valid.any(axis=1)
    context = np.where(valid, flat[position], pad_id)[rows].astype(np.int32)
    return context, valid[rows], flat[rows].astype(np.int32)


# ----------------------------------------------------------------------------------------
# Synthetic corpus with exactly known statistics
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticCorpusParams:
    """The generating process of :func:`synthetic_corpus` (see the module docstring).

    Attributes:
      base_transition: ``float64 [B, B]`` row-stochastic matrix ``A`` of the base chain,
        bases in order of decreasing stationary probability.
      num_attributes: ``G``, attributes per base.
      agreement: probability that a token expresses its sentence's attribute.
      sentence_length: tokens per sentence ``L``.
      words: the ``B * G`` word names, id ``i * G + g`` for ``"x{i}_{g}"``.
    """

    base_transition: np.ndarray
    num_attributes: int
    agreement: float
    sentence_length: int
    words: tuple[str, ...]

    def __post_init__(self):
        transition = np.array(self.base_transition, dtype=np.float64)  # a read-only copy
        transition.setflags(write=False)
        object.__setattr__(self, "base_transition", transition)
        object.__setattr__(self, "words", tuple(self.words))

    @property
    def num_bases(self) -> int:
        return self.base_transition.shape[0]

    @property
    def vocab_size(self) -> int:
        return self.num_bases * self.num_attributes

    @property
    def base_stationary(self) -> np.ndarray:
        """``pi_A``: ``pi_A A = pi_A``, ``sum pi_A = 1`` (float64 ``[B]``)."""
        return _stationary(self.base_transition)

    @property
    def attribute_emission(self) -> np.ndarray:
        """``Q[s, g] = agreement [g = s] + (1 - agreement) / G`` (float64 ``[G, G]``)."""
        g = self.num_attributes
        return self.agreement * np.eye(g) + (1.0 - self.agreement) / g

    @property
    def stationary(self) -> np.ndarray:
        """Probability of each word at any position: ``pi_A(i) / G`` (float64 ``[B G]``)."""
        return np.kron(
            self.base_stationary, np.full(self.num_attributes, 1.0 / self.num_attributes)
        )

    def base_and_attribute(self, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """The (base, attribute) of word ids."""
        ids = np.asarray(ids)
        return ids // self.num_attributes, ids % self.num_attributes


def _stationary(transition: np.ndarray) -> np.ndarray:
    """Stationary distribution of an irreducible stochastic matrix (float64 linear solve)."""
    n = transition.shape[0]
    system = transition.T - np.eye(n)
    system[-1] = 1.0  # replace one (redundant) balance equation by sum(pi) = 1
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    return np.linalg.solve(system, rhs)


def _seed_sequence(key_or_seed: Any) -> np.random.SeedSequence:
    if isinstance(key_or_seed, (int, np.integer)) and not isinstance(key_or_seed, bool):
        if key_or_seed < 0:
            raise ValueError(f"seed={key_or_seed} is invalid; valid: an integer >= 0 or a JAX key")
        return np.random.SeedSequence(int(key_or_seed))
    if isinstance(key_or_seed, jax.Array):
        if jnp.issubdtype(key_or_seed.dtype, jax.dtypes.prng_key):
            key_or_seed = jax.random.key_data(key_or_seed)
        data = np.asarray(key_or_seed)
        if data.dtype == np.uint32:
            return np.random.SeedSequence([int(x) for x in data.ravel()])
    raise ValueError(
        f"key_or_seed of type {type(key_or_seed).__name__} is invalid; valid: an integer >= 0 "
        "or a JAX PRNG key"
    )


def synthetic_corpus(
    key_or_seed: Any,
    *,
    num_tokens: int,
    num_bases: int = 30,
    num_attributes: int = 2,
    sentence_length: int = 20,
    agreement: float = 0.7,
    concentration: float = 0.5,
    smoothing: float = 0.2,
    zipf_exponent: float = 1.0,
) -> dict[str, Any]:
    """A corpus from a known process (module docstring), with its exact statistics.

    The process (``base_transition``) depends only on the seed and the process settings, not
    on ``num_tokens``, so a larger sample of the same seed comes from the same chain.

    Args:
      key_or_seed: an integer seed >= 0 or a JAX PRNG key.
      num_tokens: at least this many tokens are drawn (whole sentences:
        ``ceil(num_tokens / sentence_length)`` of them).
      num_bases: ``B`` >= 2.
      num_attributes: ``G`` >= 2 (vocabulary of ``B G`` words).
      sentence_length: ``L`` >= 2 tokens per sentence.
      agreement: in ``(0, 1)``: how often a token expresses its sentence's attribute (0 makes
        attributes independent noise, 1 makes different attributes never co-occur).
      concentration: Dirichlet concentration per entry (> 0); small values give peaked
        transition rows, i.e. strong syntax.
      smoothing: in ``(0, 1]``: weight of the Zipf distribution mixed into every row; every
        transition has probability >= ``smoothing * z_j``, so every PMI is finite.
      zipf_exponent: >= 0, steepness of the word frequencies.

    Returns:
      A dict with ``sentences`` (``int32 [S, L]``), ``vocabulary`` (``Vocabulary`` of the
      sample's counts, words in id order), ``params`` (``SyntheticCorpusParams``),
      ``transition`` (``A``), ``base_stationary`` (``pi_A``), ``attribute_emission``
      (``Q``), ``stationary`` (word probabilities), ``planted_analogies`` (``int32 [m, 4]``
      rows ``a, b, c, d`` = ``(i, g), (i, h), (j, g), (j, h)`` for all ``i != j``,
      ``g != h``).
    """
    num_tokens = _check_int("num_tokens", num_tokens, 1)
    num_bases = _check_int("num_bases", num_bases, 2)
    num_attributes = _check_int("num_attributes", num_attributes, 2)
    sentence_length = _check_int("sentence_length", sentence_length, 2)
    for name, value, low, high, closed_high in (
        ("agreement", agreement, 0.0, 1.0, False),
        ("smoothing", smoothing, 0.0, 1.0, True),
    ):
        ok = isinstance(value, (int, float, np.floating)) and low < value
        ok = ok and (value <= high if closed_high else value < high)
        if not ok:
            bracket = "]" if closed_high else ")"
            raise ValueError(f"{name}={value!r} is invalid; valid: in ({low}, {high}{bracket}")
    if not (isinstance(concentration, (int, float, np.floating)) and 0 < concentration < math.inf):
        raise ValueError(f"concentration={concentration!r} is invalid; valid: a number > 0")
    if not (isinstance(zipf_exponent, (int, float, np.floating)) and 0 <= zipf_exponent < math.inf):
        raise ValueError(f"zipf_exponent={zipf_exponent!r} is invalid; valid: a number >= 0")

    params_seq, sample_seq = _seed_sequence(key_or_seed).spawn(2)
    params_rng = np.random.default_rng(params_seq)
    zipf = (np.arange(1, num_bases + 1, dtype=np.float64)) ** -float(zipf_exponent)
    zipf /= zipf.sum()
    dirichlet = params_rng.dirichlet(concentration * num_bases * zipf, size=num_bases)
    dirichlet = np.nan_to_num(dirichlet)  # tiny concentrations can underflow to 0/0
    dirichlet /= dirichlet.sum(axis=1, keepdims=True).clip(min=1e-300)
    transition = (1.0 - smoothing) * dirichlet + smoothing * zipf[None, :]
    transition /= transition.sum(axis=1, keepdims=True)
    order = np.argsort(-_stationary(transition), kind="stable")
    transition = transition[np.ix_(order, order)]

    bw, gw = len(str(num_bases - 1)), len(str(num_attributes - 1))
    words = tuple(
        f"x{i:0{bw}d}_{g:0{gw}d}" for i in range(num_bases) for g in range(num_attributes)
    )
    params = SyntheticCorpusParams(
        base_transition=transition,
        num_attributes=num_attributes,
        agreement=float(agreement),
        sentence_length=sentence_length,
        words=words,
    )
    num_sentences = -(-num_tokens // sentence_length)
    sentences = _sample_sentences(params, np.random.default_rng(sample_seq), num_sentences)

    bases = np.arange(num_bases)
    attrs = np.arange(num_attributes)
    i, j, g, h = (x.ravel() for x in np.meshgrid(bases, bases, attrs, attrs, indexing="ij"))
    keep = (i != j) & (g != h)
    i, j, g, h = i[keep], j[keep], g[keep], h[keep]
    G = num_attributes
    analogies = np.stack([i * G + g, i * G + h, j * G + g, j * G + h], axis=1).astype(np.int32)
    counts = np.bincount(sentences.ravel(), minlength=params.vocab_size).astype(np.int64)
    return {
        "sentences": sentences,
        "vocabulary": Vocabulary(words=words, counts=counts),
        "params": params,
        "transition": transition,
        "base_stationary": params.base_stationary,
        "attribute_emission": params.attribute_emission,
        "stationary": params.stationary,
        "planted_analogies": analogies,
    }


def _sample_sentences(
    params: SyntheticCorpusParams, rng: np.random.Generator, num_sentences: int
) -> np.ndarray:
    """``int32 [num_sentences, L]`` word ids drawn from the process (vectorised over rows)."""
    transition, num_attributes = params.base_transition, params.num_attributes
    length = params.sentence_length
    num_bases = transition.shape[0]

    def draw(cdf: np.ndarray) -> np.ndarray:  # cdf: [n, B] rows of cumulative probabilities
        u = rng.random(cdf.shape[0])[:, None] * cdf[:, -1:]
        return np.minimum((u >= cdf).sum(axis=1), num_bases - 1)

    base = np.empty((num_sentences, length), dtype=np.int64)
    start_cdf = np.cumsum(params.base_stationary)
    base[:, 0] = draw(np.broadcast_to(start_cdf, (num_sentences, num_bases)))
    row_cdf = np.cumsum(transition, axis=1)
    for t in range(1, length):
        base[:, t] = draw(row_cdf[base[:, t - 1]])
    latent = rng.integers(num_attributes, size=(num_sentences, 1))
    agrees = rng.random((num_sentences, length)) < params.agreement
    noise = rng.integers(num_attributes, size=(num_sentences, length))
    attribute = np.where(agrees, latent, noise)
    return (base * num_attributes + attribute).astype(np.int32)


def _params_of(corpus_params: Any) -> SyntheticCorpusParams:
    if isinstance(corpus_params, Mapping) and "params" in corpus_params:
        corpus_params = corpus_params["params"]
    if not isinstance(corpus_params, SyntheticCorpusParams):
        raise ValueError(
            f"corpus_params of type {type(corpus_params).__name__} is invalid; valid: "
            "SyntheticCorpusParams or the dict synthetic_corpus returns"
        )
    return corpus_params


def offset_weights(window: int, sentence_length: int) -> np.ndarray:
    """Share of word2vec's (centre, context) pairs at distance ``k = 1..window``.

    Proportional to ``P(k in the dynamic window) * (L - k)``: a sentence of ``L`` tokens has
    ``L - k`` positions at distance ``k`` on each side. Float64 ``[window]``, sums to 1.
    """
    window = _check_int("window", window, 1)
    length = _check_int("sentence_length", sentence_length, 2)
    k = np.arange(1, window + 1)
    weights = expected_pair_weights(window) * np.maximum(length - k, 0)
    return weights / weights.sum()


def true_pair_probabilities(corpus_params: Any, window: int) -> np.ndarray:
    """Exact probability of each (centre, context) pair word2vec samples from the corpus.

    ``P(w, c) = sum_k nu_k (P_k(w, c) + P_k(c, w)) / 2`` over distances ``k = 1..window``
    (both sides equally often), ``nu = offset_weights(window, L)``, with the offset-``k`` joint
    ``P_k = kron(diag(pi_A) A^k, Q^T Q / G)`` (module docstring). Both marginals are the
    stationary distribution. Pairs without subsampling.

    Args:
      corpus_params: ``SyntheticCorpusParams`` (or the dict of :func:`synthetic_corpus`).
      window: word2vec's window (>= 1).

    Returns:
      ``float64 [V, V]``, summing to 1, symmetric.
    """
    params = _params_of(corpus_params)
    nu = offset_weights(window, params.sentence_length)
    transition = params.base_transition
    pi_a = params.base_stationary
    base_joint = np.zeros_like(transition)
    power = np.eye(transition.shape[0])
    for weight in nu:
        power = power @ transition
        joint_k = pi_a[:, None] * power
        base_joint += weight * 0.5 * (joint_k + joint_k.T)
    emission = params.attribute_emission
    attribute_joint = emission.T @ emission / params.num_attributes
    return np.kron(base_joint, attribute_joint)


def true_pmi(corpus_params: Any, window: int) -> np.ndarray:
    """Exact PMI ``log P(w, c) / (P(w) P(c))`` of word2vec's pairs (float64 ``[V, V]``).

    ``P(w, c)`` from :func:`true_pair_probabilities`; its marginals are the stationary word
    probabilities. Every entry is finite (``smoothing > 0``).
    """
    params = _params_of(corpus_params)
    joint = true_pair_probabilities(params, window)
    pi = params.stationary
    return np.log(joint) - np.log(pi)[:, None] - np.log(pi)[None, :]


def true_similarity(corpus_params: Any, window: int) -> np.ndarray:
    """Cosine similarity of the rows of :func:`true_pmi` (float64 ``[V, V]``).

    Word ``w``'s row is its exact PMI with every context; words used in the same contexts
    have similar rows, the similarity word embeddings should rank alike.
    """
    pmi = true_pmi(corpus_params, window)
    unit = pmi / np.linalg.norm(pmi, axis=1, keepdims=True)
    return unit @ unit.T


__all__ = [
    "TOKEN_PATTERN",
    "SyntheticCorpusParams",
    "Vocabulary",
    "build_vocabulary",
    "cbow_windows",
    "expected_pair_weights",
    "keep_probabilities",
    "offset_weights",
    "read_text_files",
    "sample_negatives",
    "skip_gram_pairs",
    "subsample",
    "synthetic_corpus",
    "tokenize",
    "true_pair_probabilities",
    "true_pmi",
    "true_similarity",
    "unigram_table",
]


# ---------------------------------------------------------------------------------------
# Training examples for the skip_gram and cbow objectives
# ---------------------------------------------------------------------------------------

MODELS = ("skip_gram", "cbow")
OUTPUTS = ("negative_sampling", "hierarchical_softmax")


def word2vec_examples(
    sentences: Any,
    counts: Any,
    *,
    model: str = "skip_gram",
    output: str = "negative_sampling",
    window: int = 5,
    num_negatives: int = 5,
    epochs: int = 1,
    subsample_threshold: float = 1e-3,
    power: float = 0.75,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The examples ``epochs`` passes of ``word2vec.c`` would train on, as arrays for
    ``ssljax.identifiability.fit.fit`` (the library's train step on in-memory arrays).

    Every pass draws its own subsampling (``keep_probabilities(counts, subsample_threshold)``),
    dynamic windows and noise words, as the C code does per epoch; the passes are
    concatenated (the trainer shuffles them).

    Returns:
      ``image``: skip-gram centre ids ``[n]``, or CBOW context ids ``[n, 2 * window]`` (pad 0)
      with ``input_mask`` ``[n, 2 * window]``; ``target``: the predicted word ``[n]`` (the
      context word for skip-gram, the centre for CBOW); and ``negatives`` ``[n, K]`` drawn from
      ``unigram_table(counts, power)`` for ``negative_sampling``, or the target's Huffman
      ``points``, ``codes`` and ``path_mask`` ``[n, L]`` for ``hierarchical_softmax``. All
      int32 (masks bool).
    """
    if model not in MODELS:
        raise ValueError(f"model={model!r} is invalid; valid: {', '.join(MODELS)}")
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r} is invalid; valid: {', '.join(OUTPUTS)}")
    window = _check_int("window", window, 1)
    num_negatives = _check_int("num_negatives", num_negatives, 1)
    epochs = _check_int("epochs", epochs, 1)
    counts = _check_counts("word2vec_examples", counts)
    keep = keep_probabilities(counts, subsample_threshold)
    probs = unigram_table(counts, power)
    cdf = np.cumsum(probs)
    rng = np.random.default_rng(seed)
    parts: list[dict[str, np.ndarray]] = []
    for epoch in range(epochs):
        kept = subsample(jax.random.PRNGKey(seed * 1_000_003 + epoch), sentences, keep)
        if model == "skip_gram":
            centre, context = skip_gram_pairs(kept, window, rng=rng)
            part = {"image": centre, "target": context}
        else:
            context, mask, centre = cbow_windows(kept, window, rng=rng, pad_id=0)
            part = {"image": context, "input_mask": mask, "target": centre}
        if output == "negative_sampling":
            draws = rng.random((part["target"].shape[0], num_negatives))
            negatives = np.searchsorted(cdf, draws * cdf[-1], side="right")
            part["negatives"] = np.minimum(negatives, counts.size - 1).astype(np.int32)
        parts.append(part)
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if output == "hierarchical_softmax":
        from ssljax.objectives.word2vec import huffman_tree

        tree = huffman_tree(counts)
        data["points"] = tree.points[data["target"]].astype(np.int32)
        data["codes"] = tree.codes[data["target"]].astype(np.int32)
        data["path_mask"] = tree.mask[data["target"]]
    return data
