"""Streamed feature extraction: one pass over a split, every device, every process."""

import jax
import numpy as np
import pytest

from ssljax.data import input_pipeline
from ssljax.evaluation import features as feats
from ssljax.evaluation.checkpoint_eval import (
    compute_features,
    encoder_feature_fn,
    feature_fn,
    split_features,
)

WIDTHS, STRIDES = (8, 16), (1, 2)
TEST_ROWS = 40  # conftest.TINY_TEST: with batches of 32 the last one has 8 real rows
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def encoder_and_variables():
    from ssljax.models import build_encoder

    encoder = build_encoder("convnet", widths=WIDTHS, strides=STRIDES)
    images = np.zeros((2, 28, 28, 1), np.float32)
    return encoder, encoder.init(jax.random.PRNGKey(0), images, train=False)


def float32_tolerance(reference: np.ndarray) -> float:
    """Absolute tolerance for two float32 evaluations of the same features that may sum in
    another order: a length-K sum differs by at most about K eps times its magnitude, and the
    pooled features go through one 3x3 convolution per block (K = 9 C_in) and a global mean
    over the last map (14 x 14 = 196 terms)."""
    fan_ins = [9 * c for c in (1, *WIDTHS[:-1])] + [14 * 14]
    return sum(fan_ins) * EPS32 * float(np.abs(reference).max())


def test_tolerance_is_small_against_the_features(encoder_and_variables):
    encoder, variables = encoder_and_variables
    ref = np.asarray(
        feature_fn(encoder, layer="pooled", grid=1)(
            variables, np.full((4, 28, 28, 1), 200, np.uint8)
        )
    )
    assert float32_tolerance(ref) < 1e-4 * np.abs(ref).max()


def streamed(
    encoder,
    variables,
    data_dir,
    *,
    mesh,
    split="test",
    batch_size=32,
    dtype=np.float32,
    layers=("pooled",),
):
    extractors, dims = {}, {}
    for layer in layers:
        fn = encoder_feature_fn(encoder, layer=layer, grid=2)
        extractors[layer] = feats.device_extractor(feats.shard_rows(fn, mesh), variables, mesh)
        dims[layer] = feats.output_dim(fn, variables, (28, 28, 1))
    return split_features(
        "fashion_mnist",
        split,
        extractors,
        dims,
        batch_size=batch_size,
        data_dir=data_dir,
        dtype=dtype,
    )


def test_streamed_equals_in_memory_and_keeps_the_order(tiny_fashion_mnist, encoder_and_variables):
    encoder, variables = encoder_and_variables
    images, labels = input_pipeline.load_split_arrays(
        "fashion_mnist", "test", data_dir=tiny_fashion_mnist
    )
    one = feats.local_mesh(jax.local_devices()[:1])
    got, got_labels = streamed(
        encoder, variables, tiny_fashion_mnist, mesh=one, layers=("block1", "pooled")
    )
    np.testing.assert_array_equal(got_labels, labels)
    for layer in ("block1", "pooled"):
        want = compute_features(
            feature_fn(encoder, layer=layer, grid=2), variables, images, batch_size=32
        )
        assert got[layer].shape == want.shape and got[layer].dtype == np.float32
        np.testing.assert_allclose(got[layer], want, rtol=0, atol=float32_tolerance(want))


def test_eight_devices_equal_one(tiny_fashion_mnist, encoder_and_variables):
    assert jax.local_device_count() == 8
    encoder, variables = encoder_and_variables
    one, _ = streamed(
        encoder, variables, tiny_fashion_mnist, mesh=feats.local_mesh(jax.local_devices()[:1])
    )
    eight, _ = streamed(encoder, variables, tiny_fashion_mnist, mesh=feats.local_mesh())
    np.testing.assert_allclose(
        eight["pooled"], one["pooled"], rtol=0, atol=float32_tolerance(one["pooled"])
    )


def test_float16_storage_is_the_rounded_float32(tiny_fashion_mnist, encoder_and_variables):
    encoder, variables = encoder_and_variables
    mesh = feats.local_mesh()
    full, _ = streamed(encoder, variables, tiny_fashion_mnist, mesh=mesh)
    half, _ = streamed(encoder, variables, tiny_fashion_mnist, mesh=mesh, dtype=np.float16)
    assert half["pooled"].dtype == np.float16
    assert half["pooled"].nbytes * 2 == full["pooled"].nbytes
    np.testing.assert_array_equal(half["pooled"], full["pooled"].astype(np.float16))


def test_ragged_last_batch_keeps_only_real_rows():
    """Padding rows (here 255s, label 7) never reach the features or labels."""
    images = np.arange(5 * 2, dtype=np.uint8).reshape(5, 2, 1, 1)
    batches = [
        input_pipeline.pad_batch(
            {"image": images[i : i + 3], "label": np.arange(i, min(i + 3, 5), dtype=np.int32)}, 3
        )
        for i in (0, 3)
    ]
    batches[-1]["image"][2:] = 255
    batches[-1]["label"][2:] = 7
    out, labels = feats.extract_split(
        batches, {"raw": feats.pixel_features}, num_rows=5, dims={"raw": 2}
    )
    np.testing.assert_array_equal(labels, np.arange(5))
    np.testing.assert_allclose(out["raw"], images.reshape(5, 2) / 255.0, rtol=1e-7)
    with pytest.raises(ValueError, match="hold 5 rows, expected 6"):
        feats.extract_split(
            iter(batches), {"raw": feats.pixel_features}, num_rows=6, dims={"raw": 2}
        )
    with pytest.raises(ValueError, match="more than the expected 4 rows"):
        feats.extract_split(
            iter(batches), {"raw": feats.pixel_features}, num_rows=4, dims={"raw": 2}
        )


def test_device_batch_must_divide_over_the_devices(encoder_and_variables):
    encoder, variables = encoder_and_variables
    mesh = feats.local_mesh()
    fn = encoder_feature_fn(encoder, layer="pooled", grid=1)
    extract = feats.device_extractor(feats.shard_rows(fn, mesh), variables, mesh)
    with pytest.raises(ValueError, match="not a multiple of the 8 devices"):
        extract(np.zeros((12, 28, 28, 1), np.uint8))
    assert feats.round_up(12, 8) == 16 and feats.round_up(16, 8) == 16
    assert feats.round_up(1000, 1) == 1000


def test_process_shares_cover_the_split_in_order(tiny_fashion_mnist):
    images, labels = input_pipeline.load_split_arrays(
        "fashion_mnist", "test", data_dir=tiny_fashion_mnist
    )
    counts = input_pipeline.eval_shard_sizes(
        "fashion_mnist", "test", process_count=3, data_dir=tiny_fashion_mnist
    )
    assert counts == [14, 13, 13]
    parts = []
    for p in range(3):
        batches = list(
            input_pipeline.eval_batches(
                "fashion_mnist",
                "test",
                batch_size=8,
                data_dir=tiny_fashion_mnist,
                process_index=p,
                process_count=3,
            )
        )
        assert sum(int(b["mask"].sum()) for b in batches) == counts[p]
        parts.append(np.concatenate([b["label"][b["mask"]] for b in batches]))
        if p == 1:
            got = np.concatenate([b["image"][b["mask"]] for b in batches])
            np.testing.assert_array_equal(got, images[14:27])
    np.testing.assert_array_equal(np.concatenate(parts), labels)
    with pytest.raises(ValueError, match="process_index=3"):
        input_pipeline.eval_process_split("test", process_index=3, process_count=3)


def fake_allgather(locals_, block):
    """What ``process_allgather`` returns on every process, for processes holding ``locals_``:
    call ``c`` gathers rows ``[c * block, (c + 1) * block)`` of each, zero-padded."""
    calls = []
    rows = max(len(x) for x in locals_)

    def gather(part):
        lo = len(calls) * block
        hi = min(lo + block, rows)
        calls.append(part.shape)
        out = np.zeros((len(locals_), hi - lo, *part.shape[1:]), part.dtype)
        for p, x in enumerate(locals_):
            out[p, : len(x[lo:hi])] = x[lo:hi]
        return out

    return gather, calls


@pytest.mark.parametrize("counts", [(5, 4, 4), (3, 3), (0, 2, 1)])
def test_gather_rows_concatenates_in_process_order(counts):
    rng = np.random.default_rng(0)
    locals_ = [rng.standard_normal((c, 3)).astype(np.float16) for c in counts]
    for p in range(len(counts)):
        gather, calls = fake_allgather(locals_, block=2)
        out = feats.gather_rows(
            locals_[p], counts, process_index=p, block_bytes=2 * 3 * 2, allgather=gather
        )
        np.testing.assert_array_equal(out, np.concatenate(locals_))
        assert out.dtype == np.float16
        assert all(shape[0] <= 2 for shape in calls)  # one block at a time
        assert len(calls) == -(-max(counts) // 2)


def test_gather_rows_on_one_process_is_the_identity():
    x = np.arange(6.0).reshape(3, 2)
    assert feats.gather_rows(x, [3]) is x
    with pytest.raises(ValueError, match="holds 3 rows, counts say 4"):
        feats.gather_rows(x, [4])


def test_feature_dtype_names():
    assert feats.feature_dtype("float16") == np.float16
    with pytest.raises(ValueError, match="eval.feature_dtype must be one of"):
        feats.feature_dtype("bfloat16")
