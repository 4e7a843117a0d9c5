"""word2vec losses: every loss against float64 numpy, the Huffman tree's code properties and
word2vec.c's construction, hierarchical-softmax probabilities that sum to 1, the closed-form
gradient of negative sampling, table versions == vector versions, jit, and input errors."""

import heapq
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.objectives import word2vec as w2v
from tests.tolerances import F32_EPS, assert_close

ULPS = 4.0  # rounding of one log-sigmoid / logistic evaluation, in units of eps


def _f32(rng, shape, scale=1.0):
    """Random float32 values, and the same values exactly in float64 for the references."""
    x = (scale * rng.normal(size=shape)).astype(np.float32)
    return x, x.astype(np.float64)


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _assert_within(actual, desired, tol, what=""):
    diff = np.abs(np.asarray(actual, np.float64) - desired)
    assert np.all(diff <= tol), f"{what}: max excess {np.max(diff - tol):.3e}"


def _one_line_value_error(excinfo):
    assert "\n" not in str(excinfo.value)


# ---------------------------------------------------------------------------
# Huffman tree
# ---------------------------------------------------------------------------


def huffman_cost(counts):
    """Expected code length x total count of an optimal prefix code: the sum of the weights of
    all merges (each merge adds one bit to every word below it)."""
    heap = [int(c) for c in counts]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


def word2vec_c_tree(counts):
    """A line-by-line port of word2vec.c's CreateBinaryTree (counts sorted non-increasing)."""
    v = len(counts)
    count = [int(c) for c in counts] + [10**15] * v
    binary, parent = [0] * (2 * v), [0] * (2 * v)
    pos1, pos2 = v - 1, v
    for a in range(v - 1):
        picked = []
        for _ in range(2):
            if pos1 >= 0 and count[pos1] < count[pos2]:
                picked.append(pos1)
                pos1 -= 1
            else:
                picked.append(pos2)
                pos2 += 1
        min1, min2 = picked
        count[v + a] = count[min1] + count[min2]
        parent[min1] = parent[min2] = v + a
        binary[min2] = 1
    codes, points = [], []
    for a in range(v):
        b, code, point = a, [], []
        while True:
            code.append(binary[b])
            point.append(b)
            b = parent[b]
            if b == 2 * v - 2:
                break
        i = len(code)
        vcode, vpoint = [0] * i, [0] * (i + 1)
        vpoint[0] = v - 2
        for b in range(i):
            vcode[i - b - 1] = code[b]
            vpoint[i - b] = point[b] - v
        codes.append(vcode)
        points.append(vpoint[:i])
    return codes, points


def _words_codes(tree):
    return [tuple(int(b) for b in tree.codes[w, : tree.lengths[w]]) for w in range(tree.vocab_size)]


def test_huffman_two_words():
    tree = w2v.huffman_tree(np.array([5, 3]))
    np.testing.assert_array_equal(tree.codes, [[1], [0]])  # the rarer word is merged first: 0
    np.testing.assert_array_equal(tree.points, [[0], [0]])
    np.testing.assert_array_equal(tree.lengths, [1, 1])
    np.testing.assert_array_equal(tree.mask, [[True], [True]])


def test_huffman_hand_example():
    # merges: 1+1=2 (node 0), 2+2=4 (node 1), 3+3=6 (node 2), 4+5=9 (node 3), 6+9=15 (root 4)
    tree = w2v.huffman_tree(np.array([5, 3, 3, 2, 1, 1]))
    np.testing.assert_array_equal(tree.lengths, [2, 2, 2, 3, 4, 4])
    np.testing.assert_array_equal(tree.points[:, 0], 4)
    np.testing.assert_array_equal(tree.points[5, :4], [4, 3, 1, 0])
    assert int(np.sum(tree.lengths * np.array([5, 3, 3, 2, 1, 1]))) == 2 + 4 + 6 + 9 + 15


@pytest.mark.parametrize(
    "kind,vocab",
    [("ties", 2), ("ties", 3), ("ties", 7), ("ties", 60), ("zipf", 200), ("zeros", 30)],
)
def test_huffman_code_properties(kind, vocab):
    rng = np.random.default_rng(vocab)
    if kind == "ties":
        counts = rng.integers(1, 6, size=vocab)
    elif kind == "zipf":
        counts = rng.zipf(1.3, size=vocab).clip(max=10**6)
    else:
        counts = rng.integers(0, 3, size=vocab)
    tree = w2v.huffman_tree(counts)
    codes = _words_codes(tree)

    assert tree.codes.shape == tree.points.shape == tree.mask.shape
    assert tree.max_length == int(tree.lengths.max())
    np.testing.assert_array_equal(tree.mask.sum(1), tree.lengths)
    assert np.all(tree.codes[~tree.mask] == 0) and np.all(tree.points[~tree.mask] == 0)

    # prefix-free: in sorted order a prefix of any code is a prefix of its successor
    ordered = sorted(codes)
    assert len(set(ordered)) == vocab
    for a, b in zip(ordered, ordered[1:]):
        assert b[: len(a)] != a
    # Kraft's equality: a full binary tree
    assert sum(Fraction(1, 2 ** len(c)) for c in codes) == 1
    # a more frequent word never has a longer code
    more = counts[:, None] > counts[None, :]
    assert not np.any(more & (tree.lengths[:, None] > tree.lengths[None, :]))
    # optimal: the expected code length is the Huffman cost
    assert int(np.sum(counts.astype(np.int64) * tree.lengths)) == huffman_cost(counts)
    # points name the internal nodes: one index per distinct proper prefix, 0..V-2, root V-2
    node_of = {}
    for word, code in enumerate(codes):
        for depth in range(len(code)):
            node = int(tree.points[word, depth])
            assert node_of.setdefault(code[:depth], node) == node
    assert sorted(node_of.values()) == list(range(vocab - 1))
    assert node_of[()] == vocab - 2


def test_huffman_deepest_tree():
    fibonacci = [1, 1]
    while len(fibonacci) < 12:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    tree = w2v.huffman_tree(np.array(fibonacci[::-1]))
    assert tree.max_length == 11 and sorted(tree.lengths.tolist()) == [1, 2, *range(3, 12), 11]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_huffman_matches_word2vec_c(seed):
    rng = np.random.default_rng(seed)
    counts = np.sort(rng.zipf(1.5, size=150).clip(max=5000))[::-1]  # many ties, as in text
    tree = w2v.huffman_tree(counts)
    codes, points = word2vec_c_tree(counts)
    for word in range(len(counts)):
        n = int(tree.lengths[word])
        assert tree.codes[word, :n].tolist() == codes[word]
        assert tree.points[word, :n].tolist() == points[word]


@pytest.mark.parametrize(
    "counts,match",
    [
        (np.array([4]), "V=1"),
        (np.array([], np.int64), "V=0"),
        (np.ones((2, 3)), r"shape \(2, 3\)"),
        (np.array([3, -1, 2]), r"counts\[1\]=-1"),
        (np.array([3.0, np.nan]), r"counts\[1\]=nan"),
        (np.array([True, False]), "dtype bool"),
    ],
)
def test_huffman_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        w2v.huffman_tree(counts)
    _one_line_value_error(excinfo)


# ---------------------------------------------------------------------------
# Losses of vectors against float64 numpy
# ---------------------------------------------------------------------------


def np_negative_sampling(h, t, n, mask=None):
    """Loss [B] and its float32 error bound [B] (dot products of D terms, then K + 1 terms)."""
    d = h.shape[-1]
    pos = np.sum(h * t, -1)
    neg = np.einsum("bd,bkd->bk", h, n)
    noise = np_log_sigmoid(-neg)
    if mask is not None:
        noise = np.where(mask, noise, 0.0)
    terms = np.concatenate([np_log_sigmoid(pos)[:, None], noise], axis=1)
    products = np.sum(np.abs(h * t), -1) + np.sum(np.abs(h[:, None, :] * n), (1, 2))
    tol = F32_EPS * (d * products + (terms.shape[1] + ULPS) * np.sum(np.abs(terms), 1))
    return -np.sum(terms, 1), tol


def test_negative_sampling_matches_numpy():
    rng = np.random.default_rng(0)
    b, k, d = 9, 5, 16
    (h, h64), (t, t64), (n, n64) = (_f32(rng, s, 0.6) for s in [(b, d), (b, d), (b, k, d)])
    mask = rng.random((b, k)) < 0.7
    for m in (None, mask):
        want, tol = np_negative_sampling(h64, t64, n64, m)
        got = w2v.negative_sampling_loss(h, t, n, m)
        assert got.shape == (b,) and got.dtype == jnp.float32
        _assert_within(got, want, tol, "negative sampling")
    # skip-gram is the same loss with the centre's vector as hidden
    np.testing.assert_array_equal(
        w2v.skip_gram_negative_sampling(h, t, n), w2v.negative_sampling_loss(h, t, n)
    )


def test_negative_sampling_is_stable_for_large_scores():
    # one dimension: h.t = s, h.n = -s: loss = 2 log(1 + e^-s) -> 2 e^-s for large s
    for s, want in [(200.0, 2 * math.exp(-200.0)), (-200.0, 400.0), (30.0, 2 * math.exp(-30.0))]:
        h, t, n = np.ones((1, 1)), np.full((1, 1), s), np.full((1, 1, 1), -s)
        got = float(w2v.negative_sampling_loss(h, t, n)[0])
        assert math.isfinite(got)
        assert abs(got - want) <= 4 * F32_EPS * want + np.finfo(np.float32).tiny


def test_negative_sampling_gradient_closed_form():
    rng = np.random.default_rng(1)
    b, k, d = 6, 4, 12
    (h, h64), (t, t64), (n, n64) = (_f32(rng, s, 0.5) for s in [(b, d), (b, d), (b, k, d)])
    grad_t, grad_n = jax.grad(
        lambda t, n: jnp.sum(w2v.negative_sampling_loss(h, t, n)), argnums=(0, 1)
    )(t, n)
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))
    score = np.sum(h64 * t64, -1, keepdims=True)
    want_t = -(1.0 - sig(score)) * h64
    want_n = sig(np.einsum("bd,bkd->bk", h64, n64))[..., None] * h64[:, None, :]
    # the logistic moves by at most 1/4 of the score's error; then one product rounds
    score_err = d * F32_EPS * np.sum(np.abs(h64 * t64), -1, keepdims=True)
    tol_t = np.abs(h64) * (score_err / 4 + ULPS * F32_EPS)
    _assert_within(grad_t, want_t, tol_t, "d loss / d target")
    neg_err = d * F32_EPS * np.sum(np.abs(h64[:, None, :] * n64), -1, keepdims=True)
    tol_n = np.abs(h64[:, None, :]) * (neg_err / 4 + ULPS * F32_EPS)
    _assert_within(grad_n, want_n, tol_n, "d loss / d negatives")


def test_cbow_hidden_matches_numpy():
    rng = np.random.default_rng(2)
    b, c, d = 7, 6, 5
    x, x64 = _f32(rng, (b, c, d))
    mask = rng.random((b, c)) < 0.5
    mask[:, 0] = True
    want = np.sum(mask[..., None] * x64, 1) / mask.sum(1, keepdims=True)
    tol = c * F32_EPS * np.sum(np.abs(x64), 1) / mask.sum(1, keepdims=True) + F32_EPS * np.abs(want)
    _assert_within(w2v.cbow_hidden(x, mask), want, tol, "cbow mean")
    _assert_within(w2v.cbow_hidden(x, mask.astype(np.int32)), want, tol, "0/1 mask")


def test_cbow_hidden_empty_row():
    x = np.ones((3, 2, 4), np.float32)
    mask = np.array([[1, 0], [0, 0], [0, 1]], bool)
    with pytest.raises(ValueError, match="mask row 1 has no context word") as excinfo:
        w2v.cbow_hidden(x, mask)
    _one_line_value_error(excinfo)
    # inside jit the values are unknown: the empty row is documented to give zeros
    got = jax.jit(w2v.cbow_hidden)(x, mask)
    np.testing.assert_array_equal(got, [[1.0] * 4, [0.0] * 4, [1.0] * 4])


def np_hierarchical_softmax(h, v, codes, mask):
    d = h.shape[-1]
    scores = np.einsum("bd,bld->bl", h, v)
    terms = np.where(mask, np_log_sigmoid((1 - 2 * codes) * scores), 0.0)
    products = np.sum(np.where(mask[..., None], np.abs(h[:, None, :] * v), 0.0), (1, 2))
    tol = F32_EPS * (d * products + (codes.shape[1] + ULPS) * np.sum(np.abs(terms), 1))
    return -np.sum(terms, 1), tol


def test_hierarchical_softmax_matches_numpy():
    rng = np.random.default_rng(3)
    b, length, d = 8, 7, 10
    (h, h64), (v, v64) = _f32(rng, (b, d), 0.8), _f32(rng, (b, length, d), 0.8)
    codes = rng.integers(0, 2, size=(b, length))
    mask = np.arange(length)[None, :] < rng.integers(1, length + 1, size=(b, 1))
    want, tol = np_hierarchical_softmax(h64, v64, codes, mask)
    got = w2v.hierarchical_softmax_loss(h, v, codes, mask)
    assert got.shape == (b,) and got.dtype == jnp.float32
    _assert_within(got, want, tol, "hierarchical softmax")


@pytest.mark.parametrize("vocab", [2, 3, 40])
def test_word_probabilities_sum_to_one(vocab):
    rng = np.random.default_rng(vocab)
    tree = w2v.huffman_tree(rng.integers(1, 100, size=vocab))
    h, _ = _f32(rng, (5, 8), 1.5)
    nodes, _ = _f32(rng, (vocab - 1, 8), 1.5)
    probs = np.asarray(w2v.word_probabilities(h, nodes, tree), np.float64)
    assert probs.shape == (5, vocab) and np.all(probs >= 0)
    # each of the V probabilities is a product of <= L factors, each within a few eps
    tol = vocab * (tree.max_length + 2) * ULPS * F32_EPS
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=0, atol=tol)
    if vocab == 2:  # one node: p(bit 0) = s(h.v), p(bit 1) = s(-h.v)
        s = 1 / (1 + np.exp(-(h.astype(np.float64) @ nodes[0].astype(np.float64))))
        zero = int(np.flatnonzero(tree.codes[:, 0] == 0)[0])
        assert_close(probs[:, zero], s, rtol=tol)


# ---------------------------------------------------------------------------
# Table versions == vector versions; jit; errors
# ---------------------------------------------------------------------------


def _tables(seed, vocab=30, d=8):
    rng = np.random.default_rng(seed)
    tables = [_f32(rng, (rows, d), 0.7)[0] for rows in (vocab, vocab, vocab - 1)]
    tree = w2v.huffman_tree(rng.integers(1, 1000, size=vocab))
    return rng, (*tables, tree)


def _close(a, b, n_terms, magnitude):
    assert_close(a, b, rtol=0, atol=(n_terms + ULPS) * F32_EPS * magnitude)


def test_table_versions_equal_gathered_vectors():
    rng, (in_t, out_t, node_t, tree) = _tables(4)
    vocab, d = in_t.shape
    b, k, c = 11, 5, 4
    center, context = rng.integers(0, vocab, size=b), rng.integers(0, vocab, size=b)
    negatives = rng.integers(0, vocab, size=(b, k))
    window = rng.integers(0, vocab, size=(b, c))
    window_mask = rng.random((b, c)) < 0.6
    window_mask[:, 0] = True
    neg_mask = negatives != context[:, None]

    got = w2v.skip_gram_ns_from_tables(in_t, out_t, center, context, negatives, neg_mask)
    want = w2v.skip_gram_negative_sampling(in_t[center], out_t[context], out_t[negatives], neg_mask)
    _close(got, want, d + k, float(np.max(np.abs(want))))

    got = w2v.negative_sampling_from_tables(
        in_t, out_t, window, center, negatives, input_mask=window_mask
    )
    hidden = w2v.cbow_hidden(in_t[window], window_mask)
    want = w2v.negative_sampling_loss(hidden, out_t[center], out_t[negatives])
    _close(got, want, c + d + k, float(np.max(np.abs(want))))

    for inputs, mask in [(center, None), (window, window_mask)]:
        got = w2v.hierarchical_softmax_from_tables(
            in_t, node_t, inputs, context, tree, input_mask=mask
        )
        hidden = in_t[center] if mask is None else w2v.cbow_hidden(in_t[window], mask)
        want = w2v.hierarchical_softmax_loss(
            hidden, node_t[tree.points[context]], tree.codes[context], tree.mask[context]
        )
        _close(got, want, c + d + tree.max_length, float(np.max(np.abs(want))))
        # and -log p(context | hidden) read off the full distribution
        log_p = w2v.word_log_probabilities(hidden, node_t, tree)
        _close(got, -np.asarray(log_p)[np.arange(b), context], c + d + tree.max_length, 10.0)


def test_jit_and_out_of_range_ids():
    rng, (in_t, out_t, node_t, tree) = _tables(5)
    vocab, d = in_t.shape
    center, context = rng.integers(0, vocab, size=6), rng.integers(0, vocab, size=6)
    negatives = rng.integers(0, vocab, size=(6, 3))
    ns = jax.jit(w2v.skip_gram_ns_from_tables)
    hs = jax.jit(w2v.hierarchical_softmax_from_tables)  # the tree is a pytree argument
    eager_ns = w2v.skip_gram_ns_from_tables(in_t, out_t, center, context, negatives)
    eager_hs = w2v.hierarchical_softmax_from_tables(in_t, node_t, center, context, tree)
    _close(ns(in_t, out_t, center, context, negatives), eager_ns, d + 3, 10.0)
    _close(hs(in_t, node_t, center, context, tree), eager_hs, d + tree.max_length, 10.0)
    # gradients with respect to both tables are dense [V, D] arrays
    grads = jax.jit(
        jax.grad(
            lambda i, o: jnp.mean(w2v.skip_gram_ns_from_tables(i, o, center, context, negatives)),
            argnums=(0, 1),
        )
    )(in_t, out_t)
    assert [g.shape for g in grads] == [(vocab, d), (vocab, d)]
    untouched = np.setdiff1d(np.arange(vocab), center)
    np.testing.assert_array_equal(np.asarray(grads[0])[untouched], 0.0)

    # out of range: a ValueError outside jit, NaN (never a clamped row) inside
    for bad in (-1, vocab):
        ids = center.copy()
        ids[2] = bad
        with pytest.raises(ValueError, match=rf"inputs holds id {bad}; valid: ids in \[0, 29\]"):
            w2v.skip_gram_ns_from_tables(in_t, out_t, ids, context, negatives)
        got = np.asarray(ns(in_t, out_t, context, ids, negatives))
        assert np.isnan(got[2]) and np.all(np.isfinite(np.delete(got, 2)))
        got = np.asarray(hs(in_t, node_t, center, ids, tree))
        assert np.isnan(got[2]) and np.all(np.isfinite(np.delete(got, 2)))


def test_bad_inputs_are_one_line_value_errors():
    rng, (in_t, out_t, node_t, tree) = _tables(6, vocab=10)
    ids = np.arange(4)
    cases = [
        (
            lambda: w2v.hierarchical_softmax_from_tables(in_t, node_t[:-1], ids, ids, tree),
            "node_table has 8 rows; valid: V - 1 = 9",
        ),
        (
            lambda: w2v.hierarchical_softmax_from_tables(in_t[:-1], node_t[:-1], ids, ids, tree),
            "tree has V=10 words; valid: V = 9",
        ),
        (
            lambda: w2v.negative_sampling_from_tables(
                in_t, out_t, np.zeros((4, 2, 2), int), ids, ids[:, None]
            ),
            r"inputs has shape \(4, 2, 2\); valid: ids \[B\] \(skip-gram\) or \[B, C\]",
        ),
        (
            lambda: w2v.negative_sampling_from_tables(
                in_t, out_t, ids, ids, ids[:, None], input_mask=np.ones(4, bool)
            ),
            "input_mask is given for inputs of rank 1",
        ),
        (
            lambda: w2v.skip_gram_ns_from_tables(in_t, out_t, ids, ids, ids[:, None] + 7),
            r"negatives holds id 10; valid: ids in \[0, 9\]",
        ),
        (
            lambda: w2v.skip_gram_ns_from_tables(in_t, out_t, ids, ids * 1.0, ids[:, None]),
            "targets has dtype float64; valid: integer word ids",
        ),
        (
            lambda: w2v.word_probabilities(in_t, node_t[:3], tree),
            "node_table has 3 rows",
        ),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match) as excinfo:
            call()
        _one_line_value_error(excinfo)
    # mismatched vector shapes are chex assertions, as in the other objectives
    with pytest.raises(AssertionError):
        w2v.negative_sampling_loss(in_t[:4], in_t[:3], in_t[:4, None])


def test_mean_loss():
    losses = np.array([1.0, 2.0, 6.0], np.float32)
    assert float(w2v.mean_loss(losses)) == 3.0
    assert float(w2v.mean_loss(losses, np.array([1.0, 1.0, 0.0]))) == 1.5
    assert float(w2v.mean_loss(losses, np.zeros(3))) == 0.0


# ---------------------------------------------------------------------------------------
# Typed objectives and the examples they train on
# ---------------------------------------------------------------------------------------


def _tiny_corpus():
    from ssljax.data import text

    return text.synthetic_corpus(0, num_tokens=4_000, num_bases=6)


@pytest.mark.parametrize("model", ["skip_gram", "cbow"])
@pytest.mark.parametrize("output", ["negative_sampling", "hierarchical_softmax"])
def test_objective_loss_is_the_pure_loss_of_its_tables(model, output):
    from ssljax import objectives
    from ssljax.data import text
    from ssljax.objectives.base import DatasetFacts, LossContext, Run

    corpus = _tiny_corpus()
    counts = corpus["vocabulary"].counts
    data = text.word2vec_examples(
        corpus["sentences"], counts, model=model, output=output, window=2, seed=1
    )
    objective = objectives.build(
        {"name": model, "vocab_size": len(counts), "dim": 8, "output": output}
    )
    shape = data["image"].shape[1:]
    run = Run(
        facts=DatasetFacts("text", shape, len(data["target"]), 0), batch_size=16, total_steps=1
    )
    net = objective.build_model(run, None)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1,) + shape))["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(
        lambda p: jnp.asarray(0.3 * rng.standard_normal(p.shape), jnp.float32), params
    )
    rows = len(counts) if output == "negative_sampling" else len(counts) - 1
    assert params["input"].shape == (len(counts), 8) and params["output"].shape == (rows, 8)
    batch = {k: jnp.asarray(v[:16]) for k, v in data.items()}
    ctx = LossContext(model=net, state=None, batch=batch, axis_name=None, run=run)
    views = objective.make_views(jax.random.PRNGKey(1), batch["image"], run)
    loss, aux = objective.loss(params, {}, views, jax.random.PRNGKey(2), ctx)
    if output == "negative_sampling":
        expected = w2v.negative_sampling_from_tables(
            params["input"],
            params["output"],
            batch["image"],
            batch["target"],
            batch["negatives"],
            input_mask=batch.get("input_mask"),
        )
    else:
        tree = w2v.huffman_tree(counts)
        expected = w2v.hierarchical_softmax_from_tables(
            params["input"],
            params["output"],
            batch["image"],
            batch["target"],
            tree,
            input_mask=batch.get("input_mask"),
        )
    np.testing.assert_allclose(float(loss), float(jnp.mean(expected)), rtol=1e-5)
    assert float(aux.metrics["loss"]) == float(loss)


def test_objectives_refuse_bad_settings_in_one_line():
    from ssljax import objectives

    with pytest.raises(ValueError, match=r"unknown objective.output 'softmax'; choose one of"):
        objectives.build({"name": "skip_gram", "vocab_size": 10, "output": "softmax"})
    with pytest.raises(
        ValueError, match=r"objective.vocab_size=1 is invalid; valid: an integer >= 2"
    ):
        objectives.build({"name": "cbow", "vocab_size": 1})


def test_examples_follow_the_windows_negatives_and_tree():
    from ssljax.data import text

    corpus = _tiny_corpus()
    counts = corpus["vocabulary"].counts
    sentences = corpus["sentences"]
    sg = text.word2vec_examples(sentences, counts, window=3, num_negatives=4, epochs=2, seed=3)
    # No subsampling at threshold 0: every epoch has the pairs of skip_gram_pairs.
    plain = text.word2vec_examples(
        sentences, counts, window=3, epochs=1, subsample_threshold=0.0, seed=3
    )
    centre, context = text.skip_gram_pairs(sentences, 3, rng=np.random.default_rng(3))
    assert len(plain["target"]) == len(centre)
    np.testing.assert_array_equal(plain["image"], centre)
    np.testing.assert_array_equal(plain["target"], context)
    assert sg["negatives"].shape == (len(sg["target"]), 4)
    # Noise words follow the unigram^0.75 table: chi-square over 4 x n draws.
    probs = text.unigram_table(counts, 0.75)
    observed = np.bincount(sg["negatives"].ravel(), minlength=len(counts))
    expected = probs * observed.sum()
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    dof = len(counts) - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof)  # mean dof, sd sqrt(2 dof)
    hs = text.word2vec_examples(
        sentences, counts, model="cbow", output="hierarchical_softmax", window=2, seed=0
    )
    tree = w2v.huffman_tree(counts)
    np.testing.assert_array_equal(hs["codes"], tree.codes[hs["target"]])
    np.testing.assert_array_equal(hs["points"], tree.points[hs["target"]])
    assert hs["image"].shape[1] == 4 and hs["input_mask"].any(axis=1).all()
    assert np.all(hs["image"][~hs["input_mask"]] == 0)  # padding id 0, masked out
    with pytest.raises(ValueError, match=r"model='glove' is invalid; valid: skip_gram, cbow"):
        text.word2vec_examples(sentences, counts, model="glove")
