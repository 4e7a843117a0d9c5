"""Streamed linear probe and kNN: features read chunk by chunk, never all at once."""

import ml_collections
import numpy as np
import pytest

from ssljax.evaluation import fit_linear_probe, knn_scores
from ssljax.evaluation.checkpoint_eval import (
    chunk_rows_for,
    evaluate_features,
    probe_is_streamed,
)
from ssljax.evaluation.knn import knn_scores_streamed
from ssljax.evaluation.linear_probe import (
    fit_linear_probe_streamed,
    merge_moments,
    minibatch_plan,
    row_chunks,
    streamed_moments,
)
from tests.evaluation.test_linear_probe import (
    DIM,
    NUM_CLASSES,
    NUM_TRAIN,
    gaussian_clusters,
)

# The same 10 Gaussian clusters in 32-D as the L-BFGS tests, one train/test shape for every
# L-BFGS fit, so it is compiled once.
clusters = gaussian_clusters


class ChunkedStore:
    """A read-only ``[N, D]`` feature store that records every read and refuses to be
    turned into one array."""

    def __init__(self, array):
        self._array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.reads = []

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise AssertionError(f"only row ranges may be read, got {key!r}")
        lo, hi, _ = key.indices(self.shape[0])
        self.reads.append(hi - lo)
        return self._array[lo:hi].copy()

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole store was materialised")


@pytest.fixture(scope="module")
def overlapping():
    return clusters(seed=1, center_scale=0.5)


def test_streamed_probe_matches_lbfgs_accuracy_reading_only_chunks(overlapping):
    train_x, train_y, test_x, test_y = overlapping
    lbfgs = fit_linear_probe(
        train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, l2_grid=(1e-4, 1e-2)
    )
    store_train, store_test = ChunkedStore(train_x), ChunkedStore(test_x)
    streamed = fit_linear_probe_streamed(
        store_train,
        train_y,
        store_test,
        test_y,
        num_classes=NUM_CLASSES,
        l2_grid=(1e-4, 1e-2),
        chunk_rows=500,
        epochs=5,
        batch_size=128,
        learning_rate=1e-2,
    )
    assert 0.6 < lbfgs["top1"] < 0.95  # a problem where the fit matters
    assert abs(streamed["top1"] - lbfgs["top1"]) <= 0.02
    assert abs(streamed["train_top1"] - lbfgs["train_top1"]) <= 0.02
    assert set(streamed["val_top1"]) == set(lbfgs["val_top1"])
    assert streamed["top5"] >= streamed["top1"]
    assert streamed["solver"] == "streamed_adam" and streamed["num_train"] == NUM_TRAIN
    assert max(store_train.reads) == 500 and max(store_test.reads) == 500
    assert len(store_train.reads) > 3 * 5 * 4  # every epoch read every chunk again


def test_streamed_probe_holds_out_the_rows_lbfgs_holds_out():
    """The rows fit_linear_probe holds out for validation get a wrong label (true + 1). A
    probe that holds out exactly these rows learns the clean clusters and scores about 0 on
    them; holding out any other rows would score near 1."""
    train_x, train_y, test_x, test_y = clusters(seed=2, center_scale=3.0)
    held_out = np.random.default_rng(0).permutation(NUM_TRAIN)[: round(0.1 * NUM_TRAIN)]
    train_y = train_y.copy()
    train_y[held_out] = (train_y[held_out] + 1) % NUM_CLASSES
    grid = (1e-4, 1e-2)
    a = fit_linear_probe(train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, l2_grid=grid)
    b = fit_linear_probe_streamed(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=NUM_CLASSES,
        l2_grid=grid,
        chunk_rows=500,
        epochs=2,
        batch_size=128,
        learning_rate=1e-2,
    )
    for report in (a, b):
        assert max(report["val_top1"].values()) < 0.05
        assert report["top1"] > 0.9  # the test labels are clean


def test_streamed_probe_reads_float16_and_rejects_nan():
    train_x, train_y, test_x, test_y = clusters(
        seed=3, center_scale=3.0, num_train=300, num_test=100
    )
    report = fit_linear_probe_streamed(
        train_x.astype(np.float16),
        train_y,
        test_x.astype(np.float16),
        test_y,
        num_classes=NUM_CLASSES,
        l2_grid=(1e-3,),
        chunk_rows=64,
        epochs=5,
        batch_size=32,
        learning_rate=1e-2,
    )
    assert report["top1"] > 0.9 and report["val_top1"] == {}
    bad = train_x.copy()
    bad[250, 3] = np.nan
    with pytest.raises(ValueError, match="train_x contains NaN or inf values"):
        fit_linear_probe_streamed(
            bad, train_y, test_x, test_y, num_classes=NUM_CLASSES, chunk_rows=64
        )
    with pytest.raises(ValueError, match="chunk_rows must be >= 1, got 0"):
        fit_linear_probe_streamed(
            train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, chunk_rows=0
        )


def test_streamed_moments_equal_numpy():
    x = np.random.default_rng(4).standard_normal((1003, 5)).astype(np.float32) * 3 + 7
    mean, var = streamed_moments(ChunkedStore(x), chunk_rows=100)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(var, x.astype(np.float64).var(0), rtol=1e-10)
    n, m, m2 = merge_moments((0, np.zeros(1), np.zeros(1)), (2, np.ones(1), np.ones(1)))
    assert n == 2 and m[0] == 1.0 and m2[0] == 1.0


def test_row_chunks_and_minibatch_plan():
    assert row_chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    idx, mask = minibatch_plan(np.array([5, 2, 9]), batch_size=2, num_steps=3)
    np.testing.assert_array_equal(idx, [[5, 2], [9, 0], [0, 0]])
    np.testing.assert_array_equal(mask, [[True, True], [True, False], [False, False]])
    with pytest.raises(ValueError, match="do not fit"):
        minibatch_plan(np.arange(7), batch_size=2, num_steps=3)


@pytest.mark.parametrize("chunk", [7, 50, 333, 1000])
def test_streamed_knn_equals_in_memory(chunk):
    rng = np.random.default_rng(5)
    train_x = rng.standard_normal((1000, 16)).astype(np.float32)
    train_y = rng.integers(0, 5, 1000)
    test_x = rng.standard_normal((130, 16)).astype(np.float32)
    want = np.asarray(knn_scores(train_x, train_y, test_x, num_classes=5, k=50, batch_size=64))
    store = ChunkedStore(train_x)
    got = np.asarray(
        knn_scores_streamed(
            store, train_y, test_x, num_classes=5, k=50, batch_size=64, train_chunk_rows=chunk
        )
    )
    # Similarities agree to float32 rounding (~1e-7); a weight exp(s / 0.07) moves by
    # about 1e-7 / 0.07 relative.
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=0)
    assert max(store.reads) == min(chunk, 1000) and sum(store.reads) == 1000


def test_streamed_knn_ties_go_to_the_lower_train_index():
    """Identical train rows with different labels: only the first k may vote."""
    train_x = np.ones((6, 2), np.float32)
    train_y = np.array([0, 1, 2, 3, 4, 4])
    got = np.asarray(
        knn_scores_streamed(
            train_x, train_y, np.ones((1, 2), np.float32), num_classes=5, k=2, train_chunk_rows=1
        )
    )
    assert np.count_nonzero(got[0]) == 2 and got[0, 0] > 0 and got[0, 1] > 0


def test_probe_is_streamed_above_max_probe_bytes():
    assert not probe_is_streamed(60000, 2304, 4 * 2**30)  # the Fashion-MNIST demo
    assert probe_is_streamed(1281167, 2048, 4 * 2**30)  # ImageNet, ResNet-50 pooled
    assert probe_is_streamed(10, 10, 399) and not probe_is_streamed(10, 10, 400)
    assert chunk_rows_for(256, 2**20) == 1024 and chunk_rows_for(10**6, 1, at_least=5) == 5


def eval_config(**overrides):
    cfg = ml_collections.ConfigDict(
        dict(l2_grid=(1e-4, 1e-2), val_fraction=0.1, knn_k=20, knn_temperature=0.07)
    )
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def test_evaluate_features_switches_solver_on_max_probe_bytes():
    train_x, train_y, test_x, test_y = clusters(seed=6, center_scale=3.0)
    small = evaluate_features(
        train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, eval_cfg=eval_config()
    )
    assert small["solver"] == "lbfgs" and "epochs" not in small
    big = evaluate_features(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=NUM_CLASSES,
        eval_cfg=eval_config(
            max_probe_bytes=1000,
            probe_chunk_bytes=2**16,
            probe_epochs=2,
            probe_batch_size=128,
            probe_learning_rate=1e-2,
        ),
    )
    assert big["solver"] == "streamed_adam" and big["chunk_rows"] == 2**16 // (4 * DIM)
    assert big["top1"] > 0.9 and small["top1"] > 0.9
    assert big["knn"]["top1"] == pytest.approx(small["knn"]["top1"], abs=1e-2)


def test_knn_test_batch_bounds_the_similarities():
    from ssljax.evaluation.checkpoint_eval import EVAL_DEFAULTS, knn_test_batch

    chunk = EVAL_DEFAULTS["probe_chunk_bytes"]
    assert knn_test_batch(60000, chunk) == 1024  # Fashion-MNIST keeps the in-memory default
    assert knn_test_batch(600000, chunk) == chunk // (4 * 600000)
    assert knn_test_batch(10**12, chunk) == 1
