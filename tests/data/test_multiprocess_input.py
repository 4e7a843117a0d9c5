"""Per-process input: the same global batches on any number of processes (in memory), and
disjoint per-process shards (streamed)."""

import dataclasses

import jax
import numpy as np
import pytest

from ssljax.data import datasets, input_pipeline


def take(it, n):
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("process_count", [2, 4])
def test_in_memory_global_batch_independent_of_process_count(process_count):
    """Concatenating every process's slice gives the 1-process batch, step for step, across
    an epoch boundary and from a resumed start step."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 4, 4, 1), dtype=np.uint8)
    labels = np.arange(40, dtype=np.int32)
    global_batch, devices = 16, 8
    per_device = global_batch // devices
    for start in (0, 3):
        one = take(
            input_pipeline._in_memory_batches(
                images,
                labels,
                seed=3,
                start_step=start,
                steps=40 // global_batch,
                local_devices=devices,
                per_device=per_device,
            ),
            5,
        )
        parts = [
            take(
                input_pipeline._in_memory_batches(
                    images,
                    labels,
                    seed=3,
                    start_step=start,
                    steps=40 // global_batch,
                    local_devices=devices // process_count,
                    per_device=per_device,
                    process_index=p,
                    process_count=process_count,
                ),
                5,
            )
            for p in range(process_count)
        ]
        for t in range(5):
            for key in ("image", "label", "index"):
                joined = np.concatenate([parts[p][t][key] for p in range(process_count)])
                np.testing.assert_array_equal(joined, one[t][key])
            # Rows are the examples named by their index.
            np.testing.assert_array_equal(one[t]["label"], one[t]["index"])


def test_streamed_shards_are_disjoint(monkeypatch, tiny_fashion_mnist):
    """Two processes of a streamed split read disjoint examples that cover the split.

    Fashion-MNIST (generated, 96 training images) is read through the streaming path by
    marking its spec as not fitting in memory; each example carries its position in the
    split (from its TFDS id), so the shards can be compared exactly.
    """
    spec = datasets.get_dataset_spec("fashion_mnist")
    streamed = dataclasses.replace(spec, fits_in_memory=False)
    monkeypatch.setattr(input_pipeline, "get_dataset_spec", lambda name: streamed)
    # This builder is ordered (one file); read it without the file shuffle.
    read = input_pipeline._read
    monkeypatch.setattr(
        input_pipeline, "_read", lambda *a, shuffle_seed=None, **k: read(*a, shuffle_seed=None, **k)
    )
    seen = []
    for p in range(2):
        monkeypatch.setattr(jax, "process_index", lambda p=p: p)
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        it = input_pipeline.train_iterator(
            "fashion_mnist",
            global_batch_size=16,
            seed=1,
            num_devices=8,
            data_dir=tiny_fashion_mnist,
        )
        batches = take(it, 6)  # 48 examples per process: one epoch of 6 steps of 8
        assert batches[0]["image"].shape[:2] == (4, 2)
        seen.append(np.concatenate([b["index"].ravel() for b in batches]))
    assert sorted(seen[0]) == list(range(48))
    assert sorted(seen[1]) == list(range(48, 96))
