"""Word-embedding evaluation: planted analogies, NumPy / SciPy references, hand-counted PMI,
file readers on written files, restrict_vocab and one-line errors."""

import math

import numpy as np
import pytest
import scipy.stats

from ssljax.evaluation.text import (
    analogy_accuracy,
    analogy_predictions,
    empirical_pmi,
    evaluate_analogy_file,
    evaluate_word_similarity,
    nearest_neighbours,
    normalize_rows,
    pmi_correlation,
    read_analogy_file,
    read_word_similarity,
    similarity_spearman,
)
from tests.tolerances import F32_EPS


def planted(num_bases=6, num_attributes=4, dim=16, seed=0):
    """Word (i, g) = u_i + v_g with orthonormal u's and v's, times a random positive scale.

    Every unscaled row has norm sqrt(2), so ``b - a + c = d`` holds for the unit rows too for
    the questions ``(i, g) : (i, h) :: (j, g) : (j, h)``.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, num_bases + num_attributes)))
    u, v = basis[:, :num_bases].T, basis[:, num_bases:].T
    W = (u[:, None, :] + v[None, :, :]).reshape(num_bases * num_attributes, dim)
    W = W * rng.uniform(0.5, 2.0, size=(W.shape[0], 1))
    words = tuple(f"x{i}_{g}" for i in range(num_bases) for g in range(num_attributes))
    G = num_attributes
    questions = np.array(
        [
            (i * G + g, i * G + h, j * G + g, j * G + h)
            for i in range(num_bases)
            for j in range(num_bases)
            for g in range(G)
            for h in range(G)
            if i != j and g != h
        ]
    )
    return W.astype(np.float32), words, questions


def reference_scores(W, a, b, c, method, eps=1e-3):
    """float64 scores of every candidate for one question, written as a plain loop."""
    W = np.asarray(W, np.float64)
    V = W.shape[0]

    def cos(x, y):
        nx, ny = np.linalg.norm(W[x]), np.linalg.norm(W[y])
        return float(W[x] @ W[y] / (nx * ny))

    scores = np.empty(V)
    for x in range(V):
        if method == "add":
            scores[x] = cos(x, b) - cos(x, a) + cos(x, c)
        else:
            sa, sb, sc = ((1 + cos(x, y)) / 2 for y in (a, b, c))
            scores[x] = sb * sc / (sa + eps)
    return scores


# --------------------------------------------------------------------------------- neighbours


def test_normalize_rows_unit_norm_and_zero_row():
    W = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]], np.float32)
    np.testing.assert_allclose(normalize_rows(W), [[0.6, 0.8], [0, 0], [-1, 0]], atol=1e-7)
    assert normalize_rows(W).dtype == np.float32
    assert normalize_rows(W.astype(np.float64)).dtype == np.float64


def test_nearest_neighbours_matches_brute_force():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(40, 6)).astype(np.float32)
    W[7] = 0.0  # cosine 0 with everything: its neighbours are ties, broken by lower id
    queries = np.array([0, 7, 13, 39, 13])
    k = 5
    ids, cos = nearest_neighbours(W, queries, k)
    assert ids.shape == cos.shape == (5, k) and ids.dtype == np.int32
    Wn = normalize_rows(W.astype(np.float64))
    full = Wn @ Wn.T
    for row, q in enumerate(queries):
        sims = full[q].copy()
        sims[q] = -np.inf
        order = np.argsort(-sims, kind="stable")[:k]
        np.testing.assert_array_equal(ids[row], order)
        np.testing.assert_allclose(cos[row], sims[order], atol=8 * 6 * F32_EPS)
    np.testing.assert_array_equal(ids[1], [0, 1, 2, 3, 4])
    # Batching (with a padded last batch) gives the same answer; without exclusion a query
    # is its own nearest neighbour.
    ids7, _ = nearest_neighbours(W, queries, k, batch=2)
    np.testing.assert_array_equal(ids7, ids)
    own, own_cos = nearest_neighbours(W, [0, 13], 1, exclude_self=False)
    np.testing.assert_array_equal(own[:, 0], [0, 13])
    np.testing.assert_allclose(own_cos[:, 0], 1.0, atol=4 * F32_EPS)


# ---------------------------------------------------------------------------------- analogies


@pytest.mark.parametrize("method", ["add", "mul"])
def test_planted_analogies_are_solved_exactly(method):
    W, _, questions = planted()
    report = analogy_accuracy(W, questions, method)
    assert report == {
        "accuracy": 1.0,
        "correct": len(questions),
        "n": len(questions),
        "chance": 1 / (W.shape[0] - 3),
    }


@pytest.mark.parametrize("method", ["add", "mul"])
def test_scrambled_analogies_are_near_chance(method):
    # Shuffling all entries of W makes its rows exchangeable, so each answer is right with
    # probability exactly 1 / (V - 3). 20 scrambles x 360 questions: binomial sd 0.0025; the
    # bound allows for the correlation of questions that share one W (design effect ~6).
    W, _, questions = planted()
    rng = np.random.default_rng(2)
    correct = 0
    for _ in range(20):
        scrambled = rng.permutation(W.ravel()).reshape(W.shape)
        correct += analogy_accuracy(scrambled, questions, method)["correct"]
    chance = 1 / (W.shape[0] - 3)
    assert abs(correct / (20 * len(questions)) - chance) < 0.02


@pytest.mark.parametrize("method", ["add", "mul"])
@pytest.mark.parametrize("exclude_inputs", [True, False])
def test_analogy_predictions_match_numpy_loop(method, exclude_inputs):
    rng = np.random.default_rng(3)
    V, D, n = 60, 10, 80
    W = rng.normal(size=(V, D)).astype(np.float32)
    abc = np.stack([rng.choice(V, size=3, replace=False) for _ in range(n)])
    pred = analogy_predictions(W, *abc.T, method=method, exclude_inputs=exclude_inputs, batch=32)
    assert pred.shape == (n,) and pred.dtype == np.int32
    exact = 0
    for (a, b, c), p in zip(abc, pred):
        scores = reference_scores(W, a, b, c, method)
        if exclude_inputs:
            scores[[a, b, c]] = -np.inf
            assert p not in (a, b, c)
        best = int(np.argmax(scores))
        exact += p == best
        # float32 cosines are off by ~D eps; 3CosMul divides by a shifted cosine >= eps.
        assert scores[p] >= scores[best] - 1e-4 * abs(scores[best])
    assert exact == n


def test_cosmul_hand_values_and_eps():
    # Unit rows a=(1,0,0), b=(0,1,0), c=(0,0,1): d=(0,1,1)/sqrt2 has cos 1/sqrt2 with b and c
    # and 0 with a, so 3CosMul = (1 + 1/sqrt2)^2 / 4 / (1/2 + eps) = 1.454 (3CosAdd's answer);
    # e=-a has (1/2)(1/2) / (0 + eps) = 250 and f=(-1, t, t) (t = 0.002, normalised) has
    # cos'(f, a) = 2e-6 and (1 + t)^2 / 4 / (0.001 + 2e-6) = 250.5: with eps = 1e-3 f wins by
    # 0.2% (float32 moves the scores by ~1e-4 %), with eps = 1e-6 e wins by a factor 3.
    s = 1 / math.sqrt(2)
    f = np.array([-1.0, 0.002, 0.002]) / math.sqrt(1 + 2 * 0.002**2)
    W = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, s, s], [-1, 0, 0], f], np.float32)
    scores = reference_scores(W, 0, 1, 2, "mul")
    assert scores[3] == pytest.approx((1 + s) ** 2 / 4 / 0.501, rel=1e-6)
    assert scores[4] == pytest.approx(0.25 / 1e-3, rel=1e-6)
    assert scores[5] == pytest.approx(250.5, rel=1e-4)
    assert analogy_predictions(W, [0], [1], [2], method="mul")[0] == 5
    assert analogy_predictions(W, [0], [1], [2], method="mul", eps=1e-6)[0] == 4
    assert analogy_predictions(W, [0], [1], [2], method="add")[0] == 3


# --------------------------------------------------------------------------------- similarity


def test_similarity_spearman_hand_case_and_rescaling():
    # Word 0 at angle 0 and words 1..5 at 10, 30, 50, 70, 90 degrees: cosines with word 0
    # decrease. Gold ranks 5 4 2 3 1 swap one adjacent pair: rho = 1 - 6 * 2 / (5 * 24) = 0.9.
    angles = np.deg2rad([0, 10, 30, 50, 70, 90])
    W = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    pairs = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [0, 5]])
    gold = np.array([9.0, 7.5, 2.0, 3.0, 0.5])
    rho = similarity_spearman(W, pairs, gold)
    assert rho == pytest.approx(0.9, abs=1e-12)
    assert rho == pytest.approx(scipy.stats.spearmanr(np.cos(angles[1:]), gold).statistic)
    scales = np.array([[0.1], [3.0], [7.0], [0.5], [2.0], [1e3]], np.float32)
    assert similarity_spearman(W * scales, pairs, gold) == pytest.approx(0.9, abs=1e-12)


# ---------------------------------------------------------------------------------------- PMI


def test_pmi_correlation_exact_factorisation():
    rng = np.random.default_rng(4)
    V, k = 12, 5
    M = rng.normal(size=(V, V))
    M = (M + M.T) / 2
    U, S, Vt = np.linalg.svd(M)
    W, C = U * np.sqrt(S), Vt.T * np.sqrt(S)  # W C^T = M
    pmi = M + math.log(k)
    report = pmi_correlation(W, C, pmi, k_negatives=k)
    assert report["pairs"] == V * V
    assert report["pearson"] == pytest.approx(1.0, abs=1e-12)
    assert report["mean_abs_gap"] < 1e-12
    # A subset as pairs or as a mask; unobserved (-inf) entries are left out by default.
    mask = rng.random((V, V)) < 0.4
    by_mask = pmi_correlation(W, C, pmi, mask, k_negatives=k)
    by_pairs = pmi_correlation(W, C, pmi, np.argwhere(mask), k_negatives=k)
    by_default = pmi_correlation(W, C, np.where(mask, pmi, -np.inf), k_negatives=k)
    assert by_mask == by_pairs == by_default
    assert by_mask["pairs"] == mask.sum()
    # The wrong shift leaves the correlation at 1 and opens a gap of exactly log(5 / 2).
    shifted = pmi_correlation(W, C, pmi, k_negatives=2)
    assert shifted["pearson"] == pytest.approx(1.0, abs=1e-12)
    assert shifted["mean_abs_gap"] == pytest.approx(math.log(5 / 2), abs=1e-12)
    assert shifted["mean_gap"] == pytest.approx(-math.log(5 / 2), abs=1e-12)


def test_pmi_correlation_hand_value():
    # dots (1, 2, 3) against targets (1, 2, 4): r = 3 / sqrt(2 * 42 / 9); gaps (0, 0, -1).
    W = np.array([[1.0], [2.0], [3.0]])
    report = pmi_correlation(W, np.ones((1, 1)), np.array([[1.0], [2.0], [4.0]]), k_negatives=1)
    assert report["pearson"] == pytest.approx(3 / math.sqrt(2 * 42 / 9), abs=1e-12)
    assert report["mean_abs_gap"] == pytest.approx(1 / 3)
    assert report["mean_gap"] == pytest.approx(-1 / 3)


def test_empirical_pmi_hand_counted():
    # Pairs (0,1) x2, (0,2), (1,0), (2,0), (2,1): N = 6, centre counts (3, 1, 2), context
    # counts (2, 3, 1).
    centre = np.array([0, 0, 0, 1, 2, 2])
    context = np.array([1, 1, 2, 0, 0, 1])
    pmi, counts = empirical_pmi(centre, context, 3)
    np.testing.assert_array_equal(counts, [[0, 2, 1], [1, 0, 0], [1, 1, 0]])
    expected = np.full((3, 3), -np.inf)
    expected[0, 1] = math.log(2 * 6 / (3 * 3))
    expected[0, 2] = math.log(6 / (3 * 1))
    expected[1, 0] = math.log(6 / (1 * 2))
    expected[2, 0] = math.log(6 / (2 * 2))
    expected[2, 1] = 0.0
    np.testing.assert_allclose(pmi, expected, atol=1e-12)
    # Smoothed context distribution #(c)^0.75 / sum (Levy, Goldberg & Dagan 2015).
    smooth, _ = empirical_pmi(centre, context, 3, context_power=0.75)
    z = 2**0.75 + 3**0.75 + 1
    assert smooth[0, 1] == pytest.approx(math.log((2 / 6) / ((3 / 6) * (3**0.75 / z))))
    assert smooth[1, 1] == -np.inf


# -------------------------------------------------------------------------------------- files

WORDSIM = (
    "# The WordSimilarity-353 Test Collection\n"
    "# Word 1\tWord 2\tHuman (mean)\n"
    "Word 1\tWord 2\tHuman (mean)\n"
    "x0_0\tx0_1\t9.0\n"
    "X1_0\tx2_3\t1.5\n"
    "\n"
    "x0_0\tx0_0\t10.00\n"
    "x0_0\tzebra\t3.0\n"
    "x3_1\tx3_2\t8.0\n"
    "x5_2\tx1_1\t0.5\n"
    "  x4_0\tx4_3\t6.0  \n"
)
WORDSIM_ROWS = [
    ("x0_0", "x0_1", 9.0),
    ("x1_0", "x2_3", 1.5),
    ("x0_0", "x0_0", 10.0),
    ("x3_1", "x3_2", 8.0),
    ("x5_2", "x1_1", 0.5),
    ("x4_0", "x4_3", 6.0),
]


def test_read_word_similarity_tabs_comments_header(tmp_path):
    path = tmp_path / "wordsim.tsv"
    path.write_text(WORDSIM)
    records = read_word_similarity(path)
    assert len(records) == 7
    assert records[:2] == [("x0_0", "x0_1", 9.0), ("X1_0", "x2_3", 1.5)]
    assert records[3] == ("x0_0", "zebra", 3.0) and records[6] == ("x4_0", "x4_3", 6.0)
    spaces = tmp_path / "spaces.txt"
    spaces.write_text("x0_0  x0_1   9.0\nx3_1 x3_2 8 extra\n")
    assert read_word_similarity(spaces) == [("x0_0", "x0_1", 9.0), ("x3_1", "x3_2", 8.0)]
    csv = tmp_path / "combined.csv"
    csv.write_text("Word 1,Word 2,Human (mean)\nlove,sex,6.77\n")
    assert read_word_similarity(csv) == [("love", "sex", 6.77)]


def test_evaluate_word_similarity_counts_and_value(tmp_path):
    _, words, _ = planted()
    W = np.random.default_rng(5).normal(size=(len(words), 8)).astype(np.float32)
    path = tmp_path / "wordsim.tsv"
    path.write_text(WORDSIM)
    index = {w: i for i, w in enumerate(words)}
    pairs = np.array([(index[a], index[b]) for a, b, _ in WORDSIM_ROWS])
    gold = np.array([s for *_, s in WORDSIM_ROWS])
    Wn = normalize_rows(W.astype(np.float64))
    cos = np.sum(Wn[pairs[:, 0]] * Wn[pairs[:, 1]], axis=1)

    report = evaluate_word_similarity(W, words, path)
    assert (report["pairs"], report["oov_pairs"]) == (6, 1)
    assert report["oov_share"] == pytest.approx(1 / 7)
    assert report["spearman"] == pytest.approx(scipy.stats.spearmanr(cos, gold).statistic)
    assert report["pearson"] == pytest.approx(scipy.stats.pearsonr(cos, gold).statistic)
    # Case-sensitive: 'X1_0' is out of the vocabulary too.
    cased = evaluate_word_similarity(W, words, path, lowercase=False)
    assert (cased["pairs"], cased["oov_pairs"]) == (5, 2)
    assert cased["oov_share"] == pytest.approx(2 / 7)
    keep = [0, 2, 3, 4, 5]
    assert cased["spearman"] == pytest.approx(
        scipy.stats.spearmanr(cos[keep], gold[keep]).statistic
    )

    # A Vocabulary-like object with a ``words`` attribute works the same.
    class Vocab:
        pass

    vocab = Vocab()
    vocab.words = words
    assert evaluate_word_similarity(W, vocab, path) == report


def test_lowercase_collisions_resolve_to_the_lowest_id(tmp_path):
    # 'Cat' (id 0) and 'cat' (id 2) coincide lowercased; the lower id (the more frequent word
    # of a count-sorted vocabulary) is used. Row 0 ranks the pairs as the gold does (+1),
    # row 2 the other way round (-1).
    vocab = ("Cat", "dog", "cat", "fish")
    W = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]], np.float32)
    path = tmp_path / "sim.txt"
    path.write_text("cat dog 1\ncat fish 2\n")
    assert evaluate_word_similarity(W, vocab, path)["spearman"] == pytest.approx(1.0)
    assert evaluate_word_similarity(W, vocab, path, lowercase=False)["spearman"] == (
        pytest.approx(-1.0)
    )


ANALOGIES = (
    "# planted analogies\n"
    ": family\n"
    "x0_0 x0_1 x1_0 x1_1\n"
    "X0_0 x0_2 x2_0 x2_2\n"
    "x0_0 x0_1 foo x1_1\n"
    "x4_1\tx4_3 x5_1 x5_3\n"
    "\n"
    ": gram-plural\n"
    "x1_2 x1_0 x3_2 x3_0\n"
    "x2_1 x2_2 x5_1 x5_2\n"
    "bar x2_2 x5_1 baz\n"
    ": empty-section\n"
)


def test_read_analogy_file_sections(tmp_path):
    path = tmp_path / "questions-words.txt"
    path.write_text(ANALOGIES + ": family\nx1_0 x1_1 x2_0 x2_1\n")
    sections = read_analogy_file(path)
    assert list(sections) == ["family", "gram-plural", "empty-section"]
    assert [len(q) for q in sections.values()] == [5, 3, 0]
    assert sections["family"][1] == ("X0_0", "x0_2", "x2_0", "x2_2")
    assert sections["family"][4] == ("x1_0", "x1_1", "x2_0", "x2_1")  # merged section


@pytest.mark.parametrize("method", ["add", "mul"])
def test_evaluate_analogy_file_counts(tmp_path, method):
    W, words, _ = planted()
    path = tmp_path / "questions-words.txt"
    path.write_text(ANALOGIES)
    report = evaluate_analogy_file(W, words, path, method=method)
    assert report["accuracy"] == 1.0
    assert (report["correct"], report["questions"], report["oov_questions"]) == (5, 5, 2)
    assert report["oov_share"] == pytest.approx(2 / 7)
    assert report["chance"] == pytest.approx(1 / 21)
    per = report["per_section"]
    assert per["family"] == {"accuracy": 1.0, "correct": 3, "questions": 3, "oov_questions": 1}
    assert per["gram-plural"] == {
        "accuracy": 1.0,
        "correct": 2,
        "questions": 2,
        "oov_questions": 1,
    }
    assert per["empty-section"]["questions"] == 0 and math.isnan(per["empty-section"]["accuracy"])
    cased = evaluate_analogy_file(W, words, path, method=method, lowercase=False)
    assert (cased["questions"], cased["oov_questions"]) == (4, 3)
    assert cased["per_section"]["family"]["oov_questions"] == 2


def test_evaluate_analogy_file_restrict_vocab(tmp_path):
    W, words, _ = planted()
    path = tmp_path / "questions-words.txt"
    path.write_text(ANALOGIES)
    # The first 16 words are bases 0..3: questions touching bases 4 or 5 become OOV.
    report = evaluate_analogy_file(W, words, path, restrict_vocab=16)
    assert (report["questions"], report["oov_questions"]) == (3, 4)
    assert report["per_section"]["family"]["questions"] == 2
    assert report["per_section"]["gram-plural"]["questions"] == 1
    assert report["chance"] == pytest.approx(1 / 13)
    assert report["accuracy"] == 1.0

    # Candidates are restricted too: word 4 ('decoy', beyond the first 4) is exactly
    # b - a + c and wins over the slightly bent answer 'd' unless it is left out.
    a, b, c = np.eye(3)
    target = (b - a + c) / np.linalg.norm(b - a + c)
    bent = target + 0.1 * np.array([1.0, 1.0, 0.0]) / math.sqrt(2)
    W5 = np.stack([a, b, c, bent / np.linalg.norm(bent), target]).astype(np.float32)
    small = tmp_path / "small.txt"
    small.write_text(": s\na b c d\n: t\nb a decoy c\n")
    vocab = ("a", "b", "c", "d", "decoy")
    full = evaluate_analogy_file(W5, vocab, small)
    assert (full["questions"], full["chance"]) == (2, 0.5)
    assert full["per_section"]["s"]["correct"] == 0  # the decoy is predicted
    assert full["per_section"]["t"]["correct"] == 1
    restricted = evaluate_analogy_file(W5, vocab, small, restrict_vocab=4)
    assert (restricted["questions"], restricted["oov_questions"]) == (1, 1)
    assert restricted["per_section"]["s"]["correct"] == 1
    assert restricted["per_section"]["t"]["oov_questions"] == 1
    assert restricted["chance"] == 1.0


# ------------------------------------------------------------------------------------- errors


def _errors(tmp_path):
    W, words, questions = planted()
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    bad_sim = tmp_path / "bad_sim.tsv"
    bad_sim.write_text("w1\tw2\tscore\nx0_0\tx0_1\t9.0\nx0_0\tx0_1\n")
    bad_ana = tmp_path / "bad_ana.txt"
    bad_ana.write_text(": s\nx0_0 x0_1 x1_0 x1_1\n\nx0_0 x0_1 x1_0\n")
    early = tmp_path / "early.txt"
    early.write_text("x0_0 x0_1 x1_0 x1_1\n: s\n")
    missing = tmp_path / "missing.txt"
    ids = np.array([0, 1])
    return [
        (
            lambda: analogy_accuracy(W, questions, "sub"),
            r"method 'sub' is invalid; valid: 'add', 'mul'",
        ),
        (lambda: analogy_accuracy(W, questions[:, :3]), r"questions of shape \(360, 3\)"),
        (lambda: analogy_accuracy(W, questions[:0]), r"questions is empty"),
        (lambda: analogy_predictions(W, ids, ids, [0]), r"lengths \[2, 2, 1\]"),
        (
            lambda: analogy_predictions(W, ids, ids, [0, 24]),
            r"c contains id 24; valid: ids in \[0, 24\)",
        ),
        (lambda: analogy_predictions(W[:3], [0], [1], [2]), r"V=3"),
        (lambda: analogy_predictions(W[0], [0], [1], [2]), r"W of shape \(16,\) is invalid"),
        (
            lambda: nearest_neighbours(W, ids, 24),
            r"k=24 is invalid; valid: an integer in \[1, 23\]",
        ),
        (lambda: nearest_neighbours(W, ids, 2, batch=0), r"batch=0 is invalid"),
        (lambda: similarity_spearman(W, [[0, 1], [2, 3]], [1.0]), r"gold of shape \(1,\)"),
        (lambda: similarity_spearman(W, [[0, 1]], [1.0]), r"at least 2 pairs"),
        (lambda: pmi_correlation(W, W[:, :3], np.zeros((24, 24))), r"W has dim 16 but C has 3"),
        (lambda: pmi_correlation(W, W, np.zeros((24, 3))), r"pmi of shape \(24, 3\)"),
        (
            lambda: pmi_correlation(W, W, np.full((24, 24), -np.inf), [[0, 1], [2, 3]]),
            r"pmi\[0, 1\] = -inf is not finite",
        ),
        (
            lambda: pmi_correlation(W, W, np.zeros((24, 24)), np.ones((3, 3), bool)),
            r"pairs mask of shape \(3, 3\)",
        ),
        (
            lambda: pmi_correlation(W, W, np.zeros((24, 24)), k_negatives=0),
            r"k_negatives=0 is invalid",
        ),
        (lambda: empirical_pmi([0, 1], [1], 3), r"centre_ids has 2 ids but context_ids has 1"),
        (
            lambda: empirical_pmi([0, 3], [1, 1], 3),
            r"centre_ids contains id 3; valid: ids in \[0, 3\)",
        ),
        (lambda: empirical_pmi([], [], 3), r"centre_ids is empty"),
        (
            lambda: evaluate_word_similarity(W, words[:-1], empty),
            r"vocab has 23 words but W has 24 rows",
        ),
        (
            lambda: evaluate_analogy_file(W, words, bad_ana, method="cos"),
            r"method 'cos' is invalid",
        ),
        (
            lambda: evaluate_analogy_file(W, words, bad_ana, restrict_vocab=30),
            r"restrict_vocab=30 is invalid; valid: None or an integer in \[4, 24\]",
        ),
        (lambda: read_word_similarity(missing), r"missing.txt' does not exist"),
        (lambda: read_word_similarity(empty), r"empty.txt has no 'word1 word2 score' lines"),
        (lambda: read_word_similarity(bad_sim), r"bad_sim.tsv:3: line 'x0_0\\tx0_1' is malformed"),
        (lambda: read_analogy_file(empty), r"empty.txt has no analogy questions"),
        (
            lambda: read_analogy_file(bad_ana),
            r"bad_ana.txt:4: line 'x0_0 x0_1 x1_0' has 3 words; valid: 4",
        ),
        (lambda: read_analogy_file(early), r"early.txt:1: question .* before any section"),
        (
            lambda: evaluate_analogy_file(W, words, early.with_name("missing.txt")),
            r"does not exist",
        ),
    ]


def test_errors_are_one_line_value_errors(tmp_path):
    for call, pattern in _errors(tmp_path):
        with pytest.raises(ValueError, match=pattern) as info:
            call()
        assert "\n" not in str(info.value), str(info.value)


def test_all_oov_is_an_error(tmp_path):
    W, words, _ = planted()
    sim = tmp_path / "sim.txt"
    sim.write_text("foo bar 1\nx0_0 baz 2\n")
    with pytest.raises(ValueError, match=r"0 of the 2 pairs .* valid: at least 2"):
        evaluate_word_similarity(W, words, sim)
    ana = tmp_path / "ana.txt"
    ana.write_text(": s\nfoo bar baz qux\n")
    with pytest.raises(ValueError, match=r"none of the 1 questions"):
        evaluate_analogy_file(W, words, ana)
