"""word2vec losses: skip-gram and CBOW with negative sampling or hierarchical softmax.

Pure functions of arrays (Mikolov et al. 2013a, "Efficient estimation of word representations
in vector space"; Mikolov et al. 2013b, "Distributed representations of words and phrases and
their compositionality"), with the hierarchical softmax of Morin & Bengio 2005 over a Huffman
tree (Huffman 1952) as in the reference implementation ``word2vec.c``. Per-example losses are
``[B]`` float32; ``mean_loss`` averages them.

* ``negative_sampling_loss(hidden, target, negatives)``:
  ``-log s(h . t) - sum_k log s(-h . n_k)`` with the logistic ``s``, written with
  ``jax.nn.log_sigmoid`` so that large scores neither overflow nor lose the small term.
* ``skip_gram_negative_sampling``: the same with ``hidden`` the centre word's input vector.
* ``cbow_hidden(context_vectors, mask)``: CBOW's hidden layer, the mean of the context words'
  input vectors (``word2vec.c`` with ``-cbow 1``, whose default is the mean).
* ``hierarchical_softmax_loss(hidden, node_vectors, codes, mask)``:
  ``-sum_l mask_l log s((1 - 2 code_l) h . v_l)`` along the word's path from the root.
* ``huffman_tree(counts)``: the tree's codes and internal-node indices per word.
* ``word_log_probabilities`` / ``word_probabilities``: ``log p(w | h)`` for every word.
* ``negative_sampling_from_tables`` (``skip_gram_ns_from_tables``) and
  ``hierarchical_softmax_from_tables``: the same losses from embedding tables and integer ids,
  so that a train step calls one function; skip-gram with ids ``[B]``, CBOW with ``[B, C]``.

Sign convention of the hierarchical softmax (``word2vec.c``): at internal node ``n`` with
output vector ``v_n`` the branch with code bit 0 has probability ``s(h . v_n)`` and the branch
with bit 1 has ``s(-h . v_n) = 1 - s(h . v_n)``, so
``p(w | h) = prod_l s((1 - 2 code_l) h . v_{point_l})`` and the probabilities of all words sum
to 1 for any ``h`` and node vectors. ``word2vec.c``'s update ``g = (1 - code - s(f)) * alpha``
is ``-alpha`` times the derivative of ``-log s((1 - 2 code) f)`` in ``f = h . v``.

Differences from ``word2vec.c`` (which runs plain SGD per pair, not a loss):

* ``word2vec.c`` reads ``s`` from a table on ``[-6, 6]`` and clips or skips larger scores; here
  ``s`` is exact everywhere.
* Its skip-gram takes the *context* word's input vector and predicts the centre word; over a
  symmetric window the set of (input, output) pairs is the same, so both train the same loss.
* In CBOW it adds the whole gradient of the hidden layer to every context word, where the
  gradient of the mean gives each ``1 / C`` of it (as gensim does with ``cbow_mean=1``).
* It skips a negative sample that equals the target word; pass ``negative_mask`` to do so.

Out-of-range ids: outside ``jit`` the table functions raise a ``ValueError``; inside ``jit``
(where values cannot be checked) an id outside ``[0, V)`` gathers NaN, so the loss is NaN and
the train step's non-finite check stops the run instead of training on a clamped row.

The gradient of a table function with respect to a ``[V, D]`` table is a dense ``[V, D]``
array (the scatter-add of the gathered rows' gradients into zeros), so each step pays for
the whole table even though only the rows of the batch change.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import ClassVar

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    Run,
    check_choice,
    check_int,
    check_range,
)
from ssljax.objectives.registry import register

__all__ = [
    "HuffmanTree",
    "cbow_hidden",
    "hierarchical_softmax_from_tables",
    "hierarchical_softmax_loss",
    "huffman_tree",
    "mean_loss",
    "negative_sampling_from_tables",
    "negative_sampling_loss",
    "skip_gram_negative_sampling",
    "skip_gram_ns_from_tables",
    "word_log_probabilities",
    "word_probabilities",
]


# --------------------------------------------------------------------------------------------
# The Huffman tree of hierarchical softmax.
# --------------------------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class HuffmanTree:
    """The Huffman tree of a vocabulary of ``V`` words, as ``word2vec.c`` stores it.

    The tree has ``V - 1`` internal nodes, numbered ``0 .. V - 2`` in the order they were
    merged, so the root is ``V - 2``; each internal node owns one row of the ``[V - 1, D]``
    node table. Per word, padded to the longest code ``L``:

    Attributes:
      codes: ``[V, L]`` int32 branch bits from the root down: ``codes[w, l]`` is the bit of
        the branch taken at ``points[w, l]`` (0 for the first of the two merged children,
        the one of smaller count, 1 for the second); 0 beyond the code.
      points: ``[V, L]`` int32 internal-node indices along the path, ``points[w, 0] = V - 2``
        (the root) for every word; 0 beyond the code.
      lengths: ``[V]`` int32 code lengths (depth of the word's leaf), between 1 and ``V - 1``.
      mask: ``[V, L]`` bool, ``mask[w, l] = l < lengths[w]``.

    A pytree (its four arrays are leaves), so it can be passed to a jitted function.
    """

    codes: np.ndarray
    points: np.ndarray
    lengths: np.ndarray
    mask: np.ndarray

    @property
    def vocab_size(self) -> int:
        """``V``, the number of words (leaves)."""
        return self.codes.shape[0]

    @property
    def max_length(self) -> int:
        """``L``, the longest code."""
        return self.codes.shape[1]


def huffman_tree(counts: np.ndarray) -> HuffmanTree:
    """Builds the Huffman tree (Huffman 1952) of word ``counts [V]``, ``V >= 2``.

    Repeatedly merges the two nodes of smallest count (a ``heapq`` priority queue, ``O(V log
    V)``) into a new internal node; the first of the two popped gets bit 0, the second bit 1,
    as in ``word2vec.c``'s ``CreateBinaryTree``. The code lengths minimise the expected code
    length ``sum_w counts_w lengths_w`` (the tree is optimal), and a more frequent word never
    has a longer code.

    Ties are broken deterministically: among nodes of equal count, internal nodes come before
    words, earlier-merged internal nodes before later ones, and words of higher index before
    words of lower index. For counts sorted in non-increasing order (as ``word2vec.c`` sorts
    its vocabulary) this is exactly ``word2vec.c``'s two-queue construction, so codes and
    points are identical to its ``vocab[w].code`` and ``vocab[w].point``.

    Filling the padded ``[V, L]`` arrays costs ``O(V L)`` (``L`` is ``O(log V)`` for counts
    of a natural vocabulary and at most ``V - 1``).

    Args:
      counts: 1-D array of ``V >= 2`` finite, non-negative counts (integers or floats).

    Returns:
      A ``HuffmanTree`` of numpy arrays.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1:
        raise ValueError(f"counts has shape {counts.shape}; valid: a 1-D array [V] of word counts")
    vocab = counts.shape[0]
    if vocab < 2:
        raise ValueError(f"counts has V={vocab} words; valid: V >= 2 (a tree needs two leaves)")
    if not (np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)):
        raise ValueError(f"counts has dtype {counts.dtype}; valid: an integer or float dtype")
    bad = np.flatnonzero(~np.isfinite(counts) | (counts < 0))
    if bad.size:
        raise ValueError(
            f"counts[{bad[0]}]={counts[bad[0]].item()} is invalid; valid: finite counts >= 0"
        )

    # Heap entries (count, kind, order, node): kind 0 = internal node (before words on ties),
    # order = merge index for internal nodes, -word for words. Node ids: words 0..V-1,
    # internal node a is V + a. Python ints keep integer counts exact.
    heap = [(c, 1, -w, w) for w, c in enumerate(counts.tolist())]
    heapq.heapify(heap)
    parent = np.zeros(2 * vocab - 1, np.int64)
    bit = np.zeros(2 * vocab - 1, np.int32)
    for a in range(vocab - 1):
        c0, _, _, n0 = heapq.heappop(heap)
        c1, _, _, n1 = heapq.heappop(heap)
        parent[n0] = parent[n1] = vocab + a
        bit[n1] = 1
        heapq.heappush(heap, (c0 + c1, 0, a, vocab + a))

    # Depths top-down: an internal node is merged after its children, so in reverse merge
    # order every parent's depth is known before its children's.
    root = 2 * vocab - 2
    depth = np.zeros(2 * vocab - 1, np.int64)
    for node in range(root - 1, vocab - 1, -1):
        depth[node] = depth[parent[node]] + 1
    depth[:vocab] = depth[parent[:vocab]] + 1
    lengths = depth[:vocab]
    max_length = int(lengths.max())

    codes = np.zeros((vocab, max_length), np.int32)
    points = np.zeros((vocab, max_length), np.int32)
    rows = np.arange(vocab)
    node = rows.copy()
    position = lengths - 1  # fill each word's code from its leaf up to the root
    for _ in range(max_length):
        active = position >= 0
        r, p = rows[active], position[active]
        codes[r, p] = bit[node[active]]
        points[r, p] = parent[node[active]] - vocab
        node = np.where(active, parent[node], node)
        position = position - 1
    mask = np.arange(max_length)[None, :] < lengths[:, None]
    return HuffmanTree(codes=codes, points=points, lengths=lengths.astype(np.int32), mask=mask)


# --------------------------------------------------------------------------------------------
# Losses of vectors.
# --------------------------------------------------------------------------------------------


def _f32(x: chex.Array) -> chex.Array:
    return jnp.asarray(x).astype(jnp.float32)


def _concrete(x) -> np.ndarray | None:
    """``x`` as a numpy array, or None when it is traced (values unknown inside ``jit``)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def negative_sampling_loss(
    hidden: chex.Array,
    target: chex.Array,
    negatives: chex.Array,
    negative_mask: chex.Array | None = None,
) -> chex.Array:
    """Negative-sampling loss of word2vec (Mikolov et al. 2013b, eq. 4), per example.

    ``l_b = -log s(h_b . t_b) - sum_k m_bk log s(-h_b . n_bk)`` with ``s`` the logistic
    function: logistic regression of "observed pair" for the target against ``K`` noise words.

    Args:
      hidden: ``[B, D]`` hidden vectors (skip-gram: the input word's vector; CBOW: the mean of
        the context vectors, ``cbow_hidden``).
      target: ``[B, D]`` output vectors of the observed words.
      negatives: ``[B, K, D]`` output vectors of the noise words.
      negative_mask: optional ``[B, K]`` bool/0-1 mask; a 0 drops that noise word (e.g. one
        that equals the target, which ``word2vec.c`` skips).

    Returns:
      ``[B]`` float32 losses.
    """
    chex.assert_rank([hidden, target, negatives], [2, 2, 3])
    chex.assert_equal_shape([hidden, target])
    chex.assert_equal_shape_prefix([hidden, negatives], 1)
    chex.assert_equal_shape_suffix([hidden, negatives], 1)
    h, t, n = _f32(hidden), _f32(target), _f32(negatives)
    positive = jnp.sum(h * t, axis=-1)  # [B]
    negative = jnp.einsum("bd,bkd->bk", h, n)  # [B, K]
    noise_terms = jax.nn.log_sigmoid(-negative)
    if negative_mask is not None:
        chex.assert_shape(negative_mask, negative.shape)
        noise_terms = jnp.where(jnp.asarray(negative_mask) != 0, noise_terms, 0.0)
    return -jax.nn.log_sigmoid(positive) - jnp.sum(noise_terms, axis=-1)


def skip_gram_negative_sampling(
    center_vectors: chex.Array,
    context_vectors: chex.Array,
    negative_vectors: chex.Array,
    negative_mask: chex.Array | None = None,
) -> chex.Array:
    """Skip-gram with negative sampling (Mikolov et al. 2013b), per (centre, context) pair.

    ``negative_sampling_loss`` with ``hidden`` the centre word's input vector ``[B, D]``,
    ``context_vectors [B, D]`` the output vectors of the observed context words and
    ``negative_vectors [B, K, D]`` those of the noise words. Returns ``[B]`` float32.
    """
    return negative_sampling_loss(center_vectors, context_vectors, negative_vectors, negative_mask)


def cbow_hidden(context_vectors: chex.Array, mask: chex.Array) -> chex.Array:
    """CBOW's hidden layer (Mikolov et al. 2013a): the mean of the unmasked context vectors.

    Args:
      context_vectors: ``[B, C, D]`` input vectors of up to ``C`` context words.
      mask: ``[B, C]`` bool (or 0/1): which context slots hold a word (windows near a
        sentence's ends and ``word2vec.c``'s random window shrinking leave fewer than ``C``).

    Returns:
      ``[B, D]`` float32 means. A row without any context word is a ``ValueError`` when
      ``mask`` is concrete; inside ``jit`` it cannot be checked and gives a zero vector.
    """
    chex.assert_rank(context_vectors, 3)
    chex.assert_shape(mask, context_vectors.shape[:2])
    concrete = _concrete(mask)
    if concrete is not None:
        empty = np.flatnonzero(~np.any(concrete != 0, axis=1))
        if empty.size:
            raise ValueError(
                f"mask row {empty[0].item()} has no context word ({empty.size} such rows); "
                "valid: at least one nonzero entry per row"
            )
    m = (jnp.asarray(mask) != 0).astype(jnp.float32)
    total = jnp.sum(m[..., None] * _f32(context_vectors), axis=1)
    count = jnp.sum(m, axis=1, keepdims=True)
    return total / jnp.maximum(count, 1.0)


def hierarchical_softmax_loss(
    hidden: chex.Array, node_vectors: chex.Array, codes: chex.Array, mask: chex.Array
) -> chex.Array:
    """Hierarchical-softmax loss ``-log p(w | h)`` (Morin & Bengio 2005; Mikolov et al. 2013a).

    ``l_b = -sum_l mask_bl log s((1 - 2 code_bl) h_b . v_bl)``: bit 0 at a node has
    probability ``s(h . v)`` and bit 1 ``s(-h . v)`` (``word2vec.c``'s convention), so
    ``exp(-l_b)`` is the product of the branch probabilities along the word's path.

    Args:
      hidden: ``[B, D]`` hidden vectors.
      node_vectors: ``[B, L, D]`` output vectors of the internal nodes on each target word's
        path (rows of the node table at ``tree.points[word]``).
      codes: ``[B, L]`` 0/1 branch bits (``tree.codes[word]``).
      mask: ``[B, L]`` bool/0-1, 1 on the code and 0 on its padding (``tree.mask[word]``).

    Returns:
      ``[B]`` float32 losses.
    """
    chex.assert_rank([hidden, node_vectors, codes, mask], [2, 3, 2, 2])
    chex.assert_equal_shape_prefix([hidden, node_vectors], 1)
    chex.assert_equal_shape_suffix([hidden, node_vectors], 1)
    chex.assert_equal_shape([codes, mask])
    chex.assert_shape(codes, node_vectors.shape[:2])
    scores = jnp.einsum("bd,bld->bl", _f32(hidden), _f32(node_vectors))
    sign = 1.0 - 2.0 * _f32(codes)
    terms = jax.nn.log_sigmoid(sign * scores)
    return -jnp.sum(jnp.where(jnp.asarray(mask) != 0, terms, 0.0), axis=-1)


def word_log_probabilities(
    hidden: chex.Array, node_table: chex.Array, tree: HuffmanTree
) -> chex.Array:
    """``log p(w | h)`` under hierarchical softmax for every word of the tree.

    Args:
      hidden: ``[B, D]`` hidden vectors.
      node_table: ``[V - 1, D]`` output vectors of the internal nodes.
      tree: the vocabulary's ``HuffmanTree``.

    Returns:
      ``[B, V]`` float32; ``exp`` of each row sums to 1. Costs ``O(B V L)`` memory: for
      evaluation and tests, not for a train step.
    """
    chex.assert_rank([hidden, node_table], 2)
    chex.assert_equal_shape_suffix([hidden, node_table], 1)
    _check_node_table(node_table, tree)
    scores = _f32(hidden) @ _f32(node_table).T  # [B, V - 1]
    path_scores = jnp.take(scores, jnp.asarray(tree.points), axis=1)  # [B, V, L]
    sign = 1.0 - 2.0 * _f32(tree.codes)
    terms = jax.nn.log_sigmoid(sign * path_scores)
    return jnp.sum(jnp.where(jnp.asarray(tree.mask), terms, 0.0), axis=-1)


def word_probabilities(hidden: chex.Array, node_table: chex.Array, tree: HuffmanTree) -> chex.Array:
    """``p(w | h)`` ``[B, V]`` under hierarchical softmax; ``exp(word_log_probabilities)``."""
    return jnp.exp(word_log_probabilities(hidden, node_table, tree))


def mean_loss(losses: chex.Array, weights: chex.Array | None = None) -> chex.Array:
    """Mean of per-example ``losses [B]``, or ``sum(w l) / sum(w)`` with ``weights [B]``
    (e.g. 0 on padding pairs of a fixed-size batch; all-zero weights give 0). Scalar float32."""
    chex.assert_rank(losses, 1)
    losses = _f32(losses)
    if weights is None:
        return jnp.mean(losses)
    chex.assert_equal_shape([losses, weights])
    w = _f32(weights)
    return jnp.sum(w * losses) / jnp.maximum(jnp.sum(w), jnp.finfo(jnp.float32).tiny)


# --------------------------------------------------------------------------------------------
# Losses of embedding tables and ids.
# --------------------------------------------------------------------------------------------


def _check_ids(name: str, ids, vocab: int) -> None:
    """Raises if concrete ``ids`` fall outside ``[0, vocab)``; traced ids are not checked."""
    concrete = _concrete(ids)
    if concrete is None or concrete.size == 0:
        return
    if not np.issubdtype(concrete.dtype, np.integer):
        raise ValueError(f"{name} has dtype {concrete.dtype}; valid: integer word ids")
    bad = np.flatnonzero((concrete < 0) | (concrete >= vocab))
    if bad.size:
        value = concrete.reshape(-1)[bad[0]].item()
        raise ValueError(f"{name} holds id {value}; valid: ids in [0, {vocab - 1}]")


def _rows(table: chex.Array, ids: chex.Array) -> chex.Array:
    """``table[ids]``; an id outside ``[0, rows)`` gives the fill value (NaN for floats)."""
    ids = jnp.asarray(ids)
    ids = jnp.where(ids < 0, table.shape[0], ids)  # negative ids would wrap around
    return jnp.take(table, ids, axis=0, mode="fill")


def _check_table(name: str, table) -> None:
    if jnp.ndim(table) != 2:
        raise ValueError(f"{name} has shape {jnp.shape(table)}; valid: a [rows, D] table")


def _check_node_table(node_table, tree: HuffmanTree) -> None:
    if node_table.shape[0] != tree.vocab_size - 1:
        raise ValueError(
            f"node_table has {node_table.shape[0]} rows; valid: V - 1 = {tree.vocab_size - 1} "
            f"rows for the tree's V = {tree.vocab_size} words"
        )


def _hidden_from_ids(in_table, inputs, input_mask) -> chex.Array:
    """Skip-gram (``inputs [B]``) or CBOW (``inputs [B, C]``) hidden vectors ``[B, D]``."""
    vocab = in_table.shape[0]
    rank = jnp.ndim(inputs)
    if rank == 1:
        if input_mask is not None:
            raise ValueError(
                "input_mask is given for inputs of rank 1; valid: input_mask=None for skip-gram "
                "ids [B], or inputs [B, C] (CBOW) with input_mask [B, C]"
            )
        _check_ids("inputs", inputs, vocab)
        return _f32(_rows(in_table, inputs))
    if rank == 2:
        _check_ids("inputs", inputs, vocab)
        if input_mask is None:
            input_mask = jnp.ones(jnp.shape(inputs), bool)
        return cbow_hidden(_rows(in_table, inputs), input_mask)
    raise ValueError(
        f"inputs has shape {jnp.shape(inputs)}; valid: ids [B] (skip-gram) or [B, C] (CBOW)"
    )


def negative_sampling_from_tables(
    in_table: chex.Array,
    out_table: chex.Array,
    inputs: chex.Array,
    targets: chex.Array,
    negatives: chex.Array,
    *,
    input_mask: chex.Array | None = None,
    negative_mask: chex.Array | None = None,
) -> chex.Array:
    """Negative sampling from the input and output embedding tables (``syn0``, ``syn1neg``).

    Args:
      in_table: ``[V, D]`` input vectors.
      out_table: ``[V, D]`` output vectors.
      inputs: skip-gram: ``[B]`` input word ids (the hidden vector is their row); CBOW:
        ``[B, C]`` context ids (the hidden vector is ``cbow_hidden`` of their rows).
      targets: ``[B]`` ids of the observed output words.
      negatives: ``[B, K]`` ids of the noise words (drawn from the unigram distribution to the
        power 3/4 in Mikolov et al. 2013b).
      input_mask: CBOW only: ``[B, C]`` mask of the context slots (None: all used).
      negative_mask: optional ``[B, K]`` mask of the noise words.

    Returns:
      ``[B]`` float32 losses, equal to ``negative_sampling_loss`` of the gathered rows.
    """
    _check_table("in_table", in_table)
    chex.assert_equal_shape([in_table, out_table])
    chex.assert_rank([targets, negatives], [1, 2])
    vocab = in_table.shape[0]
    _check_ids("targets", targets, vocab)
    _check_ids("negatives", negatives, vocab)
    hidden = _hidden_from_ids(in_table, inputs, input_mask)
    return negative_sampling_loss(
        hidden, _rows(out_table, targets), _rows(out_table, negatives), negative_mask
    )


def skip_gram_ns_from_tables(
    in_table: chex.Array,
    out_table: chex.Array,
    center: chex.Array,
    context: chex.Array,
    negatives: chex.Array,
    negative_mask: chex.Array | None = None,
) -> chex.Array:
    """Skip-gram with negative sampling from tables: ``center [B]`` ids whose input vectors
    predict ``context [B]`` ids against ``negatives [B, K]`` ids. ``[B]`` float32 losses,
    equal to ``skip_gram_negative_sampling(in_table[center], out_table[context],
    out_table[negatives])``."""
    chex.assert_rank(center, 1)
    return negative_sampling_from_tables(
        in_table, out_table, center, context, negatives, negative_mask=negative_mask
    )


def hierarchical_softmax_from_tables(
    in_table: chex.Array,
    node_table: chex.Array,
    inputs: chex.Array,
    targets: chex.Array,
    tree: HuffmanTree,
    *,
    input_mask: chex.Array | None = None,
) -> chex.Array:
    """Hierarchical softmax from the input table (``syn0``) and the node table (``syn1``).

    Args:
      in_table: ``[V, D]`` input vectors.
      node_table: ``[V - 1, D]`` output vectors of the tree's internal nodes.
      inputs: skip-gram ``[B]`` input ids, or CBOW ``[B, C]`` context ids (see
        ``negative_sampling_from_tables``).
      targets: ``[B]`` ids of the predicted words.
      tree: the vocabulary's ``HuffmanTree`` (numpy arrays, or traced inside ``jit``).
      input_mask: CBOW only: ``[B, C]`` mask of the context slots (None: all used).

    Returns:
      ``[B]`` float32 losses ``-log p(targets | hidden)``, equal to
      ``hierarchical_softmax_loss(hidden, node_table[tree.points[targets]],
      tree.codes[targets], tree.mask[targets])``.
    """
    _check_table("in_table", in_table)
    _check_table("node_table", node_table)
    chex.assert_equal_shape_suffix([in_table, node_table], 1)
    chex.assert_rank(targets, 1)
    vocab = in_table.shape[0]
    if tree.vocab_size != vocab:
        raise ValueError(
            f"tree has V={tree.vocab_size} words; valid: V = {vocab}, the rows of in_table"
        )
    _check_node_table(node_table, tree)
    _check_ids("targets", targets, vocab)
    hidden = _hidden_from_ids(in_table, inputs, input_mask)
    codes = _rows(jnp.asarray(tree.codes), targets)
    points = _rows(jnp.asarray(tree.points), targets)
    mask = _rows(jnp.asarray(tree.mask), targets)
    return hierarchical_softmax_loss(hidden, _rows(node_table, points), codes, mask)


# ---------------------------------------------------------------------------------------
# Typed objectives: skip-gram and CBOW through the library's train step
# ---------------------------------------------------------------------------------------

OUTPUTS = ("negative_sampling", "hierarchical_softmax")


class Word2VecNetwork(nn.Module):
    """The two embedding tables of word2vec: ``params['input']`` ``[V, D]`` (the word vectors,
    ``syn0``; uniform on ``[-0.5 / D, 0.5 / D]`` as in ``word2vec.c``) and ``params['output']``,
    zeros of ``[V, D]`` for negative sampling (``syn1neg``) or ``[V - 1, D]`` for the
    hierarchical softmax's internal nodes (``syn1``).

    ``__call__(ids)`` returns ``{'embedding': input[ids]}`` for integer (or integral float)
    ids of any shape."""

    vocab_size: int
    dim: int
    output: str = "negative_sampling"

    @nn.compact
    def __call__(self, ids: chex.Array, train: bool = False) -> dict:
        del train
        scale = 0.5 / self.dim

        def init_input(key, shape, dtype=jnp.float32):
            return jax.random.uniform(key, shape, dtype, -scale, scale)

        table = self.param("input", init_input, (self.vocab_size, self.dim))
        rows = self.vocab_size if self.output == "negative_sampling" else self.vocab_size - 1
        self.param("output", nn.initializers.zeros, (rows, self.dim))
        return {"embedding": jnp.take(table, jnp.asarray(ids).astype(jnp.int32), axis=0)}


def word2vec_batch_loss(params, inputs, batch, *, output: str, input_mask=None) -> chex.Array:
    """Per-example word2vec losses ``[B]`` from the network's tables and a batch.

    ``inputs``: ``[B]`` centre ids (skip-gram) or ``[B, C]`` context ids (CBOW, with
    ``input_mask``). ``batch`` holds ``target`` ``[B]`` and, for ``negative_sampling``,
    ``negatives`` ``[B, K]`` (and optionally ``negative_mask``); for
    ``hierarchical_softmax`` the target's path ``points``, ``codes`` and ``path_mask``
    ``[B, L]`` (rows of ``HuffmanTree``, gathered on the host)."""
    in_table, out_table = params["input"], params["output"]
    inputs = jnp.asarray(inputs).astype(jnp.int32)
    hidden = (
        _rows(in_table, inputs)
        if inputs.ndim == 1
        else cbow_hidden(_rows(in_table, inputs), input_mask)
    )
    if output == "negative_sampling":
        return negative_sampling_loss(
            hidden,
            _rows(out_table, batch["target"]),
            _rows(out_table, batch["negatives"]),
            batch.get("negative_mask"),
        )
    return hierarchical_softmax_loss(
        hidden, _rows(out_table, batch["points"]), batch["codes"], batch["path_mask"]
    )


@dataclasses.dataclass(frozen=True)
class _Word2Vec(Objective):
    """Shared fields and hooks of ``skip_gram`` and ``cbow``.

    Attributes:
      vocab_size: ``V``, rows of the embedding tables; 0 (default) takes the size of the
        run's text vocabulary (``run.facts.vocab_size``), any other value must equal it.
      dim: ``D``, the embedding dimension (Mikolov et al. 2013b: 300; gensim's default 100).
      output: ``negative_sampling`` (batches carry ``negatives``) or ``hierarchical_softmax``
        (batches carry the target's Huffman path).
      window: the largest context window; each centre draws its own in ``1..window``
        (``word2vec.c``'s dynamic window).
      negatives: noise words per example (negative sampling).
      subsample: frequent-word subsampling threshold ``t`` (Mikolov et al. 2013b; 0: none).
      power: exponent of the counts in the noise distribution (0.75).
    """

    vocab_size: int = 0
    dim: int = 100
    output: str = "negative_sampling"
    window: int = 5
    negatives: int = 5
    subsample: float = 1e-3
    power: float = 0.75

    modality: ClassVar[str] = "text"

    def __post_init__(self):
        if self.vocab_size != 0:
            check_int("vocab_size", self.vocab_size, low=2)
        check_int("dim", self.dim)
        check_choice("output", self.output, OUTPUTS)
        check_int("window", self.window)
        check_int("negatives", self.negatives)
        check_range("subsample", self.subsample, low=0.0)
        check_range("power", self.power, low=0.0)

    def vocab(self, run: Run) -> int:
        """``V`` of this run (``vocab_size``, or the corpus's vocabulary when it is 0)."""
        data = int(getattr(run.facts, "vocab_size", 0))
        if self.vocab_size and data and self.vocab_size != data:
            raise ValueError(
                f"objective.vocab_size={self.vocab_size} differs from the corpus's "
                f"vocabulary of {data} words; valid: 0 (the corpus's) or {data}"
            )
        v = int(self.vocab_size or data)
        if v < 2:
            raise ValueError(
                f"objective.vocab_size={self.vocab_size} and no text corpus gives one; "
                "valid: an integer >= 2, or a text dataset (synthetic_text, text_files)"
            )
        return v

    def check(self, run: Run) -> None:
        v = self.vocab(run)
        if run.facts.is_text and v <= self.window:
            raise ValueError(
                f"the vocabulary of {v} words is not larger than objective.window="
                f"{self.window}; valid: a window < {v}, or a larger corpus"
            )

    def build_model(self, run: Run, axis_name):
        del axis_name
        return Word2VecNetwork(self.vocab(run), int(self.dim), self.output)

    def sample_shape(self, run: Run) -> tuple[int, ...]:
        del run
        return self._input_shape()

    def _input_shape(self) -> tuple[int, ...]:
        return (1,)

    def text_examples(self, sentences, counts, seed: int) -> dict:
        """One epoch of ``word2vec.c``'s examples (``ssljax.data.text.word2vec_examples``
        with this objective's window, negatives, subsampling and noise power)."""
        from ssljax.data.text import word2vec_examples

        return word2vec_examples(
            sentences,
            counts,
            model=self.name,
            output=self.output,
            window=int(self.window),
            num_negatives=int(self.negatives),
            epochs=1,
            subsample_threshold=float(self.subsample),
            power=float(self.power),
            seed=int(seed),
        )

    def make_views(self, rng, images, run: Run):
        del rng, run
        return (images,)

    def _input_mask(self, batch):
        return None

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        per_example = word2vec_batch_loss(
            params, views[0], ctx.batch, output=self.output, input_mask=self._input_mask(ctx.batch)
        )
        loss = jnp.mean(per_example)
        return loss, LossAux({"loss": loss}, model_state, Outputs())


@register
@dataclasses.dataclass(frozen=True)
class SkipGram(_Word2Vec):
    """Skip-gram (Mikolov et al. 2013a,b): the centre word's vector predicts each context word.

    A batch holds ``image`` = centre ids ``[B]`` and ``target`` = context ids ``[B]`` (one
    pair per example; ``ssljax.data.text.word2vec_examples`` builds them), plus the output
    layer's arrays (see ``word2vec_batch_loss``)."""

    name: ClassVar[str] = "skip_gram"
    description: ClassVar[str] = "word2vec skip-gram (Mikolov et al. 2013)"


@register
@dataclasses.dataclass(frozen=True)
class CBOW(_Word2Vec):
    """Continuous bag of words (Mikolov et al. 2013a): the mean of the context words' vectors
    predicts the centre word.

    A batch holds ``image`` = context ids ``[B, 2 * window]``, ``input_mask`` ``[B, 2 *
    window]`` (the slots inside the dynamic window and the sentence) and ``target`` = centre
    ids ``[B]``, plus the output layer's arrays."""

    name: ClassVar[str] = "cbow"
    description: ClassVar[str] = "word2vec continuous bag of words (Mikolov et al. 2013)"

    def _input_shape(self) -> tuple[int, ...]:
        return (1, 2 * int(self.window))

    def _input_mask(self, batch):
        return batch["input_mask"]
