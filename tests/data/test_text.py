"""Tests of the word2vec text blocks: tokens, vocabulary, subsampling, negatives, pairs, and
the synthetic corpus whose pair statistics are known exactly.

Random checks use fixed seeds and bounds from the sample size: binomial counts within
``z`` standard deviations, ``z`` the normal quantile of ``ALPHA`` split over the tests made
(Bonferroni), and chi-square tests at level ``ALPHA``. A correct implementation fails one of
them with probability below ``ALPHA`` per seed; the errors they catch (wrong formula, wrong
window law, wrong offset weighting) are many standard deviations away.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
import scipy.stats
from etils import epath

from ssljax.data import text

ALPHA = 1e-6  # family-wise false-failure probability of each statistical assertion


def normal_quantile(num_tests: int) -> float:
    """Two-sided normal quantile for ``num_tests`` simultaneous tests at level ``ALPHA``."""
    return float(scipy.stats.norm.isf(ALPHA / (2 * num_tests)))


# ------------------------------------------------------------------------ tokens, vocabulary


@pytest.mark.parametrize(
    "raw, tokens",
    [
        ("Hello, World!", ["hello", "world"]),
        ("Don't stop", ["don't", "stop"]),
        ("'quoted' dogs' 'tis", ["quoted", "dogs", "tis"]),
        ("rock''n roll", ["rock''n", "roll"]),
        ("l\u2019Homme", ["l'homme"]),  # typographic apostrophe
        ("snake_case x2 3.14", ["snake", "case", "x2", "3", "14"]),
        ("Caf\u0065\u0301 na\u00efve", ["caf\u00e9", "na\u00efve"]),  # NFC composes e + acute
        ("  -- ... ''  ", []),
        ("ÜBER straße", ["über", "straße"]),
    ],
)
def test_tokenize_hand_cases(raw, tokens):
    assert text.tokenize(raw) == tokens


def test_build_vocabulary_order_min_count_max_size():
    streams = [["b", "a", "b", "c"], ["a", "b", "d"], ["e", "e"]]
    vocab = text.build_vocabulary(streams, min_count=1)
    # counts b 3, a 2, e 2, c 1, d 1: by count, ties alphabetically.
    assert vocab.words == ("b", "a", "e", "c", "d")
    np.testing.assert_array_equal(vocab.counts, [3, 2, 2, 1, 1])
    assert vocab.counts.dtype == np.int64 and vocab.total == 9
    assert text.build_vocabulary(streams, min_count=2).words == ("b", "a", "e")
    assert text.build_vocabulary(streams, min_count=1, max_size=3).words == ("b", "a", "e")
    # Streams can be generators, consumed once.
    assert text.build_vocabulary((iter(s) for s in streams), min_count=3).words == ("b",)


def test_vocabulary_lookups_drop_unknown_tokens():
    vocab = text.build_vocabulary([["b", "a", "b", "c"], ["a", "b"]], min_count=2)
    assert vocab.words == ("b", "a") and len(vocab) == 2
    assert vocab.index("a") == 1 and "c" not in vocab
    ids = vocab.ids(["a", "zzz", "b", "c", "a"])
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [1, 0, 1])
    assert vocab.ids([]).shape == (0,)
    assert vocab.decode(ids) == ["a", "b", "a"]
    np.testing.assert_allclose(vocab.frequencies, [3 / 5, 2 / 5])
    with pytest.raises(ValueError, match="'zzz' is not in the vocabulary of 2 words"):
        vocab.index("zzz")
    with pytest.raises(ValueError):  # counts are read-only
        vocab.counts[0] = 7
    assert vocab == text.Vocabulary(words=("b", "a"), counts=np.array([3, 2]))


def test_read_text_files(tmp_path):
    first = tmp_path / "a.txt"
    first.write_text("The cat sat.\r\n\n   \nOn the MAT, naïve!\n", encoding="utf-8")
    second = tmp_path / "b.txt"
    second.write_text("It's the cat", encoding="utf-8")  # no final newline
    lines = list(text.read_text_files([first, str(second)]))
    assert lines == [["the", "cat", "sat"], ["on", "the", "mat", "naïve"], ["it's", "the", "cat"]]
    assert list(text.read_text_files(epath.Path(second))) == [["it's", "the", "cat"]]
    vocab = text.build_vocabulary(text.read_text_files([first, second]), min_count=2)
    assert vocab.words == ("the", "cat")

    missing = tmp_path / "nope.txt"
    with pytest.raises(ValueError) as err:
        text.read_text_files([first, missing])  # checked before anything is read
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("ok\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt is not UTF-8 text at line 2"):
        list(text.read_text_files(latin1))


# ---------------------------------------------------------------------- subsampling, negatives


def test_keep_probabilities_hand_numbers():
    # total 100, t = 0.01: f = 0.64, 0.25, 0.09, 0.01, 0.01 -> sqrt(f / t) = 8, 5, 3, 1, 1.
    keep = text.keep_probabilities(np.array([64, 25, 9, 1, 1]), threshold=0.01)
    # (sqrt(f/t) + 1) t / f: 9/64, 6/25, 4/9, then 2 clipped to 1.
    np.testing.assert_allclose(keep, [9 / 64, 6 / 25, 4 / 9, 1.0, 1.0], rtol=1e-15)
    # Unused words keep 1; threshold 0 switches subsampling off.
    np.testing.assert_array_equal(text.keep_probabilities([10, 0], 0.01)[1], 1.0)
    np.testing.assert_array_equal(text.keep_probabilities([10, 5], 0.0), [1.0, 1.0])
    # The C form is the paper's keep probability sqrt(t/f) plus t/f.
    f = 0.5
    np.testing.assert_allclose(
        text.keep_probabilities([1, 1], threshold=1e-3)[0], math.sqrt(1e-3 / f) + 1e-3 / f
    )


def test_subsample_keep_rate_within_binomial_bound():
    keep_prob = np.array([0.1, 0.5, 0.9, 1.0, 0.0])
    n = 20_000
    ids = np.repeat(np.arange(5), n)
    np.random.default_rng(0).shuffle(ids)
    kept = text.subsample(jax.random.key(0), ids, keep_prob)
    assert kept.dtype == ids.dtype
    counts = np.bincount(kept, minlength=5)
    assert counts[3] == n and counts[4] == 0
    z = normal_quantile(3)
    for word in range(3):
        p = keep_prob[word]
        assert abs(counts[word] - n * p) <= z * math.sqrt(n * p * (1 - p)), (word, counts)
    # Kept tokens are a subsequence of the input (order preserved): keep_prob 1 or 0 words.
    always = text.subsample(jax.random.key(1), ids, np.array([0.0, 0.0, 0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(always, ids[ids == 3])


def test_subsample_sentences_keep_structure():
    sentences = [np.array([0, 1, 2, 3]), np.array([], np.int32), np.array([1, 1, 3])]
    kept = text.subsample(jax.random.key(3), sentences, np.array([1.0, 0.0, 1.0, 1.0]))
    assert len(kept) == 3
    for got, want in zip(kept, [[0, 2, 3], [], [3]]):
        np.testing.assert_array_equal(got, want)
    rows = text.subsample(jax.random.key(3), np.array([[0, 1], [1, 2]]), np.array([1, 0, 1.0]))
    assert [r.tolist() for r in rows] == [[0], [2]]


def test_unigram_table_hand_counts():
    # 16^0.75 = 8, 1^0.75 = 1, 81^0.75 = 27, 0 -> / 36.
    np.testing.assert_allclose(
        text.unigram_table(np.array([16, 1, 81, 0])), [8 / 36, 1 / 36, 27 / 36, 0], rtol=1e-14
    )
    np.testing.assert_allclose(text.unigram_table([3, 0, 1], power=0.0), [1 / 3] * 3)
    np.testing.assert_allclose(text.unigram_table([3, 1], power=1.0), [0.75, 0.25])


def test_sample_negatives_matches_distribution():
    probs = text.unigram_table(np.array([16, 1, 81, 0, 40, 5]))
    draws = text.sample_negatives(jax.random.key(7), probs, (500, 400))
    assert draws.shape == (500, 400) and draws.dtype == np.int32
    counts = np.bincount(np.asarray(draws).ravel(), minlength=probs.size)
    assert counts[3] == 0  # zero probability: never drawn
    n = counts.sum()
    support = probs > 0
    _, p_value = scipy.stats.chisquare(counts[support], n * probs[support])
    assert p_value > ALPHA, (counts, n * probs)


# ---------------------------------------------------------------------------- training pairs


def test_expected_pair_weights_hand():
    np.testing.assert_allclose(text.expected_pair_weights(4), [1.0, 0.75, 0.5, 0.25])
    np.testing.assert_allclose(text.expected_pair_weights(1), [1.0])


def sentence_of(positions: np.ndarray, lengths: list[int]) -> np.ndarray:
    return np.searchsorted(np.cumsum(lengths), positions, side="right")


def test_skip_gram_pairs_stay_in_window_and_sentence():
    lengths = [1, 5, 12, 0, 30, 2]
    positions = np.arange(sum(lengths))
    sentences = np.split(positions, np.cumsum(lengths)[:-1])
    window = 3
    centre, context = text.skip_gram_pairs(sentences, window, rng=np.random.default_rng(0))
    assert centre.dtype == np.int32 and context.dtype == np.int32
    offset = context - centre
    assert np.all((np.abs(offset) >= 1) & (np.abs(offset) <= window))
    np.testing.assert_array_equal(sentence_of(centre, lengths), sentence_of(context, lengths))
    # Each centre's contexts are every in-sentence offset within one radius b <= window.
    sent = sentence_of(positions, lengths)
    for c in positions:
        got = set(offset[centre == c].tolist())
        radius = max((abs(o) for o in got), default=0)
        want = {
            o
            for o in range(-radius, radius + 1)
            if o and 0 <= c + o < positions.size and sent[c + o] == sent[c]
        }
        assert got == want, (c, got)
        has_neighbour = any(0 <= c + o < positions.size and sent[c + o] == sent[c] for o in (-1, 1))
        assert (radius >= 1) == has_neighbour  # b >= 1 always


def test_skip_gram_window_one_is_all_neighbours():
    centre, context = text.skip_gram_pairs(
        [np.array([5, 6, 7]), np.array([8]), np.array([9, 4])], 1, rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(centre, [5, 6, 6, 7, 9, 4])
    np.testing.assert_array_equal(context, [6, 5, 7, 6, 4, 9])


def test_skip_gram_offset_counts_follow_dynamic_window():
    """For offset k on one side, each of the n - k centres uses it with P(b >= k)."""
    n, window = 20_000, 5
    centre, context = text.skip_gram_pairs(np.arange(n), window, rng=np.random.default_rng(1))
    offset = context - centre
    weights = text.expected_pair_weights(window)
    z = normal_quantile(2 * (window - 1))  # k = 1 is certain
    for k in range(1, window + 1):
        p = weights[k - 1]
        for side in (-1, 1):
            count = np.sum(offset == side * k)
            trials = n - k
            if p == 1.0:
                assert count == trials
            else:
                assert abs(count - trials * p) <= z * math.sqrt(trials * p * (1 - p)), (k, count)
    # The share of offset k among all pairs is then proportional to the weights.
    share = np.bincount(np.abs(offset))[1:] / offset.size
    np.testing.assert_allclose(share, weights / weights.sum(), atol=0.01)


def test_cbow_windows_hand_case():
    sentences = [np.array([5, 6, 7]), np.array([8]), np.array([9, 4])]
    context, mask, centre = text.cbow_windows(sentences, 1, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(centre, [5, 6, 7, 9, 4])  # 8 has no context: no example
    np.testing.assert_array_equal(context, [[-1, 6], [5, 7], [6, -1], [-1, 4], [9, -1]])
    np.testing.assert_array_equal(mask, context != -1)
    assert context.dtype == np.int32 and mask.dtype == bool and centre.dtype == np.int32
    context, mask, _ = text.cbow_windows(
        [np.array([1, 2])], 2, rng=np.random.default_rng(0), pad_id=0
    )
    # Columns are offsets -2, -1, +1, +2.
    np.testing.assert_array_equal(context, [[0, 0, 2, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(mask, [[False, False, True, False], [False, True, False, False]])


def test_cbow_windows_agree_with_skip_gram_pairs():
    rng_ids = np.random.default_rng(5)
    sentences = [rng_ids.integers(0, 50, size=m) for m in (7, 1, 0, 25, 3)]
    window = 4
    context, mask, centre = text.cbow_windows(sentences, window, rng=np.random.default_rng(9))
    sg_centre, sg_context = text.skip_gram_pairs(sentences, window, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(np.repeat(centre, mask.sum(1)), sg_centre)
    np.testing.assert_array_equal(context[mask], sg_context)
    assert np.all(context[~mask] == -1) and np.all(mask.any(axis=1))
    # Each row's mask is a symmetric radius b, cut by the sentence.
    radius = np.max(np.where(mask, np.abs(np.r_[-window:0, 1 : window + 1]), 0), axis=1)
    assert np.all((radius >= 1) & (radius <= window))


# ------------------------------------------------------------------------- synthetic corpus


def hmm_pair_probabilities(params: text.SyntheticCorpusParams, window: int) -> np.ndarray:
    """The pair law computed as a generic hidden Markov model, without the factorisation.

    Hidden state (base i, sentence attribute s) moves with kron(A, I); it emits word (i, g)
    with probability Q[s, g]; the joint at offset k is E^T diag(pi_h) T^k E.
    """
    a = params.base_transition
    b, g = params.num_bases, params.num_attributes
    transition = np.kron(a, np.eye(g))
    pi_hidden = np.kron(params.base_stationary, np.full(g, 1 / g))
    emission = np.kron(np.eye(b), params.attribute_emission)  # [(i, s), (i', g)]
    length = params.sentence_length
    joint = np.zeros((b * g, b * g))
    total = 0.0
    for k in range(1, window + 1):
        weight = (window - k + 1) / window * max(length - k, 0)  # both sides alike
        joint_k = (
            emission.T @ (pi_hidden[:, None] * np.linalg.matrix_power(transition, k)) @ emission
        )
        joint += weight * (joint_k + joint_k.T)
        total += 2 * weight
    return joint / total


@pytest.fixture(scope="module")
def small_corpus():
    return text.synthetic_corpus(3, num_tokens=240_000, num_bases=6, sentence_length=12)


def test_synthetic_corpus_layout_and_stationarity(small_corpus):
    corpus = small_corpus
    params = corpus["params"]
    sentences = corpus["sentences"]
    assert sentences.shape == (20_000, 12) and sentences.dtype == np.int32
    assert params.vocab_size == 12 and corpus["vocabulary"].words[:3] == ("x0_0", "x0_1", "x1_0")
    np.testing.assert_array_equal(
        corpus["vocabulary"].counts, np.bincount(sentences.ravel(), minlength=12)
    )
    a, pi_a = corpus["transition"], corpus["base_stationary"]
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(pi_a @ a, pi_a, atol=1e-15)
    assert np.all(pi_a > 0) and abs(pi_a.sum() - 1) < 1e-14
    assert np.all(np.diff(pi_a) <= 0)  # ids in decreasing stationary probability
    pi = corpus["stationary"]
    np.testing.assert_allclose(pi, np.repeat(pi_a, 2) / 2, rtol=1e-15)
    np.testing.assert_allclose(pi @ np.kron(a, np.full((2, 2), 0.5)), pi, atol=1e-15)
    # Every position is distributed as pi, independently across sentences.
    for column in (0, 11):
        counts = np.bincount(sentences[:, column], minlength=12)
        _, p_value = scipy.stats.chisquare(counts, counts.sum() * pi)
        assert p_value > ALPHA / 2, (column, counts)


def test_true_pair_probabilities_equal_hidden_markov_formula(small_corpus):
    params = small_corpus["params"]
    for window in (1, 3, 15):  # 15 > sentence length: long offsets have no pairs
        joint = text.true_pair_probabilities(params, window)
        np.testing.assert_allclose(joint, hmm_pair_probabilities(params, window), atol=1e-15)
        np.testing.assert_allclose(joint.sum(axis=1), params.stationary, atol=1e-15)
        np.testing.assert_allclose(joint, joint.T, atol=1e-17)
    three = text.synthetic_corpus(1, num_tokens=10, num_bases=4, num_attributes=3)["params"]
    np.testing.assert_allclose(
        text.true_pair_probabilities(three, 2), hmm_pair_probabilities(three, 2), atol=1e-15
    )


def test_empirical_pmi_from_skip_gram_pairs_matches_true_pmi(small_corpus):
    """PMI of counted pairs vs the exact PMI, within the sampling error of the corpus.

    Sentences are i.i.d., so 100 groups of 200 sentences give independent estimates; the
    standard error of each cell's PMI is the batch-means error of its linearisation
    ``dJ/J - dP(w)/P(w) - dP(c)/P(c)``, and every cell must lie within a Student-t quantile
    (Bonferroni over the cells). Weighting offsets without the dynamic window's
    ``(window - k + 1) / window`` must fail the same test.
    """
    params, window = small_corpus["params"], 3
    v, groups = params.vocab_size, 100
    rng = np.random.default_rng(11)
    counts = np.zeros((groups, v * v))
    for g, block in enumerate(np.array_split(small_corpus["sentences"], groups)):
        centre, context = text.skip_gram_pairs(block, window, rng=rng)
        counts[g] = np.bincount(centre.astype(np.int64) * v + context, minlength=v * v)
    assert counts.sum(axis=0).min() >= 100  # every cell well populated
    joint_g = (counts / counts.sum(axis=1, keepdims=True)).reshape(groups, v, v)
    joint = (counts.sum(axis=0) / counts.sum()).reshape(v, v)
    rows, cols = joint.sum(axis=1), joint.sum(axis=0)
    pmi_hat = np.log(joint) - np.log(rows)[:, None] - np.log(cols)[None, :]
    influence = (
        (joint_g - joint) / joint
        - ((joint_g.sum(axis=2) - rows) / rows)[:, :, None]
        - ((joint_g.sum(axis=1) - cols) / cols)[:, None, :]
    )
    se = influence.std(axis=0, ddof=1) / math.sqrt(groups)
    assert se.max() < 0.1  # the test has power
    quantile = scipy.stats.t.isf(ALPHA / (2 * v * v), groups - 1)
    truth = text.true_pmi(params, window)
    assert np.abs((pmi_hat - truth) / se).max() <= quantile

    # Offsets weighted only by the number of positions (no dynamic window): rejected.
    k = np.arange(1, window + 1)
    nu = (params.sentence_length - k) / (params.sentence_length - k).sum()
    pi_a, a = params.base_stationary, params.base_transition
    base = sum(w * pi_a[:, None] * np.linalg.matrix_power(a, kk) for w, kk in zip(nu, k))
    q = params.attribute_emission
    wrong_joint = np.kron((base + base.T) / 2, q.T @ q / params.num_attributes)
    wrong = np.log(wrong_joint) - np.log(np.outer(params.stationary, params.stationary))
    assert np.abs((pmi_hat - wrong) / se).max() > 2 * quantile


@pytest.mark.parametrize("num_attributes", [2, 3])
def test_planted_analogies_hold_in_true_pmi_rows(num_attributes):
    corpus = text.synthetic_corpus(0, num_tokens=100, num_bases=30, num_attributes=num_attributes)
    pmi = text.true_pmi(corpus, window=5)
    assert np.all(np.isfinite(pmi))
    analogies = corpus["planted_analogies"]
    b, g = 30, num_attributes
    assert analogies.shape == (b * (b - 1) * g * (g - 1), 4) and analogies.dtype == np.int32
    a_, b_, c_, d_ = analogies.T
    words = corpus["vocabulary"].words
    i, attr = corpus["params"].base_and_attribute(analogies)
    assert np.all((i[:, 0] == i[:, 1]) & (i[:, 2] == i[:, 3]) & (i[:, 0] != i[:, 2]))
    assert np.all(
        (attr[:, 0] == attr[:, 2]) & (attr[:, 1] == attr[:, 3]) & (attr[:, 0] != attr[:, 1])
    )
    assert words[a_[0]].startswith("x00_")
    target = pmi[b_] - pmi[a_] + pmi[c_]
    np.testing.assert_allclose(target, pmi[d_], atol=1e-12)  # exact by construction
    excluded = np.zeros((len(analogies), pmi.shape[0]), bool)
    for column in (a_, b_, c_):
        excluded[np.arange(len(analogies)), column] = True
    distance = np.linalg.norm(target[:, None, :] - pmi[None, :, :], axis=-1)
    np.testing.assert_array_equal(np.where(excluded, np.inf, distance).argmin(axis=1), d_)
    cosine = (target / np.linalg.norm(target, axis=1, keepdims=True)) @ (
        pmi / np.linalg.norm(pmi, axis=1, keepdims=True)
    ).T
    np.testing.assert_array_equal(np.where(excluded, -np.inf, cosine).argmax(axis=1), d_)
    # The attribute part is not degenerate: b's row differs from a's.
    assert np.abs(pmi[b_] - pmi[a_]).max(axis=1).min() > 0.1


def test_true_similarity_is_cosine_of_pmi_rows(small_corpus):
    params = small_corpus["params"]
    sim = text.true_similarity(params, 2)
    pmi = text.true_pmi(params, 2)
    for u, w in [(0, 1), (3, 7), (5, 5), (11, 2)]:
        want = pmi[u] @ pmi[w] / (np.linalg.norm(pmi[u]) * np.linalg.norm(pmi[w]))
        np.testing.assert_allclose(sim[u, w], want, rtol=1e-12)
    np.testing.assert_allclose(np.diag(sim), 1.0, rtol=1e-14)
    np.testing.assert_allclose(sim, sim.T, atol=1e-15)


def test_synthetic_corpus_seeds():
    small = text.synthetic_corpus(4, num_tokens=50, num_bases=5, sentence_length=10)
    large = text.synthetic_corpus(4, num_tokens=5000, num_bases=5, sentence_length=10)
    np.testing.assert_array_equal(small["transition"], large["transition"])  # same chain
    assert small["sentences"].shape == (5, 10) and large["sentences"].shape == (500, 10)
    again = text.synthetic_corpus(4, num_tokens=50, num_bases=5, sentence_length=10)
    np.testing.assert_array_equal(small["sentences"], again["sentences"])
    keyed = text.synthetic_corpus(jax.random.key(4), num_tokens=50, num_bases=5)
    legacy = text.synthetic_corpus(jax.random.PRNGKey(4), num_tokens=50, num_bases=5)
    np.testing.assert_array_equal(keyed["transition"], legacy["transition"])
    assert not np.array_equal(keyed["transition"], small["transition"])


# ------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: text.tokenize(b"bytes"), "bytes is invalid; valid: str"),
        (
            lambda: text.build_vocabulary([["a"]], min_count=0),
            "min_count=0 is invalid; valid: an integer >= 1",
        ),
        (
            lambda: text.build_vocabulary([["a"]], max_size=0),
            "max_size=0 is invalid; valid: an integer >= 1",
        ),
        (
            lambda: text.build_vocabulary([["a"]], min_count=2),
            "min_count=2 keeps no word .*valid: min_count <= 1",
        ),
        (
            lambda: text.build_vocabulary(["a line"]),
            "'a line' is a string; valid: iterables of token strings",
        ),
        (lambda: text.Vocabulary(("a", "a"), np.array([1, 1])), "word 'a' appears twice"),
        (
            lambda: text.Vocabulary(("a",), np.array([-1])),
            "count -1 is invalid; valid: counts >= 0",
        ),
        (
            lambda: text.Vocabulary(("a",), np.array([1.5])),
            r"dtype float64 are invalid; valid: integers of shape \(1,\)",
        ),
        (lambda: text.read_text_files([]), "no paths given"),
        (
            lambda: text.keep_probabilities([1, 2], threshold=-1.0),
            "threshold=-1.0 is invalid; valid: a finite number >= 0",
        ),
        (lambda: text.keep_probabilities([-1, 2]), r"counts with min -1.0 .* valid: finite, >= 0"),
        (
            lambda: text.keep_probabilities(np.ones((2, 2))),
            r"shape \(2, 2\) .* valid: a non-empty 1-D array",
        ),
        (
            lambda: text.subsample(jax.random.key(0), np.array([0, 3]), np.ones(3)),
            r"id 3 is invalid; valid: 0 <= id < 3",
        ),
        (
            lambda: text.subsample(jax.random.key(0), np.array([0]), np.array([1.5])),
            "valid: a 1-D array of probabilities in",
        ),
        (
            lambda: text.unigram_table([1, 2], power=-0.5),
            "power=-0.5 is invalid; valid: a finite number >= 0",
        ),
        (
            lambda: text.sample_negatives(jax.random.key(0), np.array([0.5, 0.6]), (3,)),
            r"sum 1.1\) are invalid; valid: .* summing to 1",
        ),
        (
            lambda: text.sample_negatives(jax.random.key(0), np.array([0.5, 0.5]), (-1,)),
            "shape=.-1,. is invalid; valid: sizes >= 0",
        ),
        (lambda: text.expected_pair_weights(0), "window=0 is invalid; valid: an integer >= 1"),
        (
            lambda: text.skip_gram_pairs(np.arange(4), 0, rng=np.random.default_rng()),
            "window=0 is invalid",
        ),
        (
            lambda: text.skip_gram_pairs(np.arange(4), 2, rng=0),
            "rng of type int is invalid; valid: numpy.random.Generator",
        ),
        (
            lambda: text.skip_gram_pairs(np.zeros((2, 2, 2), int), 2, rng=np.random.default_rng()),
            r"shape \(2, 2, 2\) are invalid; valid: 1-D",
        ),
        (
            lambda: text.cbow_windows([np.array([0.5])], 2, rng=np.random.default_rng()),
            "dtype float64 is invalid; valid: 1-D integer arrays",
        ),
        (
            lambda: text.synthetic_corpus(0, num_tokens=0),
            "num_tokens=0 is invalid; valid: an integer >= 1",
        ),
        (
            lambda: text.synthetic_corpus(0, num_tokens=9, agreement=1.0),
            r"agreement=1.0 is invalid; valid: in \(0.0, 1.0\)",
        ),
        (
            lambda: text.synthetic_corpus(0, num_tokens=9, smoothing=0.0),
            r"smoothing=0.0 is invalid; valid: in \(0.0, 1.0\]",
        ),
        (
            lambda: text.synthetic_corpus(0, num_tokens=9, num_attributes=1),
            "num_attributes=1 is invalid; valid: an integer >= 2",
        ),
        (
            lambda: text.synthetic_corpus("seed", num_tokens=9),
            "key_or_seed of type str is invalid; valid: an integer >= 0 or a JAX PRNG key",
        ),
        (
            lambda: text.true_pmi({"nothing": 1}, 2),
            "corpus_params of type dict is invalid; valid: SyntheticCorpusParams",
        ),
    ],
)
def test_bad_inputs_raise_one_line_value_errors(call, pattern):
    with pytest.raises(ValueError, match=pattern) as err:
        call()
    assert "\n" not in str(err.value)
