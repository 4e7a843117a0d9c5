"""MoCo, the queue, binary "same image or not", and memory-bank instance discrimination."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssljax.objectives import (
    binary_contrastive_loss,
    enqueue,
    first_visit_rows,
    instance_discrimination_loss,
    masked_moco_loss,
    moco_loss,
    proximal_term,
    update_memory_bank,
)
from tests.tolerances import assert_close, f32_sum_tol


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


# ----------------------------------------------------------------------------------- MoCo


def numpy_moco(q, k, queue, tau):
    q, k, queue = _unit(q), _unit(k), np.asarray(queue, np.float64)
    total = 0.0
    for qi, ki in zip(q, k):
        pos = math.exp(qi @ ki / tau)
        neg = sum(math.exp(qi @ kj / tau) for kj in queue)
        total += -math.log(pos / (pos + neg))
    return total / len(q)


def test_moco_matches_numpy_and_logit_layout():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    queue = _unit(rng.normal(size=(6, 5))).astype(np.float32)
    loss, logits = moco_loss(q, k, queue, temperature=0.2)
    assert logits.shape == (4, 7)
    assert float(loss) == pytest.approx(numpy_moco(q, k, queue, 0.2), rel=1e-5)
    qn, kn = _unit(q), _unit(k)
    # Column 0 is the positive, columns 1.. the queue in order.
    np.testing.assert_allclose(logits[:, 0], np.sum(qn * kn, axis=1) / 0.2, rtol=1e-5)
    np.testing.assert_allclose(
        logits[:, 1:], qn @ queue.T.astype(np.float64) / 0.2, rtol=1e-5, atol=1e-6
    )
    # Hand value: positive at cosine 1, K orthogonal negatives, tau = 1: log(1 + K / e).
    eye = jnp.eye(4)
    loss, _ = moco_loss(eye[:1], 2.0 * eye[:1], eye[1:], temperature=1.0)
    assert float(loss) == pytest.approx(math.log(1 + 3 / math.e), rel=1e-6)


def test_moco_gradients_only_reach_queries():
    rng = np.random.default_rng(1)
    q, k = jnp.asarray(rng.normal(size=(3, 4))), jnp.asarray(rng.normal(size=(3, 4)))
    queue = jnp.asarray(_unit(rng.normal(size=(5, 4))))
    gq, gk, gqueue = jax.grad(
        lambda a, b, c: moco_loss(a, b, c, temperature=0.1)[0], argnums=(0, 1, 2)
    )(q, k, queue)
    assert np.all(np.asarray(gk) == 0) and np.all(np.asarray(gqueue) == 0)
    assert np.abs(np.asarray(gq)).max() > 1e-3


def test_enqueue_writes_in_order_and_wraps():
    queue = jnp.zeros((6, 2))
    ptr = 0
    for step in range(4):  # 4 writes of 2 rows into 6 slots: the 4th overwrites rows 0..1.
        keys = jnp.full((2, 2), float(step + 1))
        queue, ptr = enqueue(queue, ptr, keys)
    assert int(ptr) == 2
    np.testing.assert_array_equal(np.asarray(queue)[:, 0], [4, 4, 2, 2, 3, 3])
    # jit with a traced pointer: write at rows 4..5 and wrap to 0.
    q2, p2 = jax.jit(enqueue)(jnp.zeros((6, 2)), jnp.int32(4), jnp.ones((2, 2)))
    np.testing.assert_array_equal(np.asarray(q2)[:, 0], [0, 0, 0, 0, 1, 1])
    assert int(p2) == 0
    with pytest.raises(ValueError, match="multiple"):
        enqueue(jnp.zeros((5, 2)), 0, jnp.ones((2, 2)))


# ----------------------------------------------------------------- binary "same image or not"


def numpy_binary(z1, z2, tau, bias):
    z1, z2 = _unit(z1), _unit(z2)
    n = len(z1)
    pos, neg, tp, tn = [], [], 0, 0
    for i in range(n):
        for j in range(n):
            s = (z1[i] @ z2[j] - bias) / tau
            if i == j:
                pos.append(softplus(-s))
                tp += s > 0
            else:
                neg.append(softplus(s))
                tn += s <= 0
    loss = 0.5 * sum(pos) / len(pos) + 0.5 * sum(neg) / len(neg)
    return loss, 0.5 * (tp / len(pos) + tn / len(neg))


def test_binary_contrastive_matches_numpy():
    rng = np.random.default_rng(2)
    z1 = rng.normal(size=(6, 4)).astype(np.float32)
    z2 = (z1 + 0.7 * rng.normal(size=(6, 4))).astype(np.float32)
    for tau, bias in ((0.5, 0.0), (0.1, 0.3)):
        loss, acc = binary_contrastive_loss(z1, z2, temperature=tau, bias=bias)
        ref_loss, ref_acc = numpy_binary(z1, z2, tau, bias)
        assert float(loss) == pytest.approx(ref_loss, rel=1e-5)
        assert float(acc) == pytest.approx(ref_acc, abs=1e-6)


def test_binary_contrastive_accuracy_and_bounds():
    eye = jnp.eye(4)
    # Same images at cosine 1 and different at cosine 0; threshold 0.5 separates them.
    loss, acc = binary_contrastive_loss(eye, eye, temperature=0.1, bias=0.5)
    assert float(acc) == 1.0
    assert float(loss) == pytest.approx(softplus(-5.0), rel=1e-5)
    # A threshold above every cosine calls everything "different": balanced accuracy 0.5.
    _, acc = binary_contrastive_loss(eye, eye, temperature=0.1, bias=1.5)
    assert float(acc) == 0.5
    # Collapse with the threshold at the common cosine: every score 0, loss log 2.
    ones = jnp.ones((4, 3))
    loss, acc = binary_contrastive_loss(ones, ones, temperature=0.3, bias=1.0)
    assert float(loss) == pytest.approx(math.log(2), rel=1e-6)
    assert float(acc) == 0.5
    # Mis-paired views: every true pair scores -5 (TPR 0) and the 4 wrong pairs at cosine 1
    # score +5, so TNR = 8 / 12 and the balanced accuracy is 1/3.
    _, acc = binary_contrastive_loss(eye, jnp.roll(eye, 1, axis=0), temperature=0.1, bias=0.5)
    assert float(acc) == pytest.approx(1 / 3, abs=1e-6)


def test_binary_contrastive_multi_device_equals_single_device():
    n_dev = jax.device_count()
    assert n_dev == 8
    rng = np.random.default_rng(3)
    z1 = jnp.asarray(rng.normal(size=(16, 5)), jnp.float32)
    z2 = jnp.asarray(z1 + 0.8 * rng.normal(size=(16, 5)), jnp.float32)

    def fn(a, b, axis_name=None):
        return binary_contrastive_loss(a, b, temperature=0.2, bias=0.1, axis_name=axis_name)

    (ref, ref_acc), ref_grads = jax.value_and_grad(fn, argnums=(0, 1), has_aux=True)(z1, z2)

    def per_device(a, b):
        (loss, acc), grads = jax.value_and_grad(
            lambda x, y: fn(x, y, "batch"), argnums=(0, 1), has_aux=True
        )(a, b)
        return jax.lax.pmean((loss, acc), "batch"), jax.tree.map(lambda g: g / n_dev, grads)

    mesh = Mesh(np.array(jax.devices()), ("batch",))
    sharded = jax.jit(
        jax.shard_map(
            per_device,
            mesh=mesh,
            in_specs=(P("batch"), P("batch")),
            out_specs=(P(), P("batch")),
            check_vma=False,
        )
    )
    (loss, acc), grads = sharded(z1, z2)
    # Reordered chain: norms and dot products over d=5, means over the 32 x 32 pairs; logits
    # of unit vectors scale as 1 / tau = 5.
    tol = f32_sum_tol(2 * 5 + 32 * 32, magnitude=1 / 0.2)
    assert_close(loss, ref, rtol=tol)
    assert float(acc) == pytest.approx(float(ref_acc), abs=1e-6)  # a count: exact
    assert 0.0 < float(ref_acc) < 1.0
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, rtol=tol)


# ------------------------------------------------------------------------ memory bank


def numpy_instance(features, memory, indices, tau):
    f = _unit(features)
    memory = np.asarray(memory, np.float64)
    total, correct = 0.0, 0
    for fi, idx in zip(f, indices):
        logits = [fi @ v / tau for v in memory]
        log_z = math.log(sum(math.exp(s) for s in logits))
        total += log_z - logits[idx]
        correct += int(np.argmax(logits) == idx)
    return total / len(f), correct / len(f)


def test_instance_discrimination_matches_numpy():
    rng = np.random.default_rng(4)
    memory = _unit(rng.normal(size=(10, 4))).astype(np.float32)
    indices = np.array([3, 7, 0, 9])
    features = (memory[indices] + 0.6 * rng.normal(size=(4, 4))).astype(np.float32)
    loss, acc = instance_discrimination_loss(
        features, memory, jnp.asarray(indices), temperature=0.07
    )
    ref_loss, ref_acc = numpy_instance(features, memory, indices, 0.07)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-5)
    assert float(acc) == pytest.approx(ref_acc)
    # Features equal to their own memory rows are always classified correctly.
    _, acc = instance_discrimination_loss(
        3.0 * memory[indices], memory, jnp.asarray(indices), temperature=0.07
    )
    assert float(acc) == 1.0
    # A collapsed bank gives no information: loss log N.
    flat = np.tile(_unit(np.ones((1, 4))), (10, 1)).astype(np.float32)
    loss, _ = instance_discrimination_loss(features, flat, jnp.asarray(indices), temperature=0.07)
    assert float(loss) == pytest.approx(math.log(10), rel=1e-5)
    # The bank is a buffer: no gradient flows into it.
    g_mem = jax.grad(
        lambda m: instance_discrimination_loss(features, m, jnp.asarray(indices), temperature=0.07)[
            0
        ]
    )(jnp.asarray(memory))
    assert np.all(np.asarray(g_mem) == 0)


def test_update_memory_bank():
    rng = np.random.default_rng(5)
    memory = _unit(rng.normal(size=(8, 3))).astype(np.float32)
    indices = np.array([6, 1, 4])
    features = rng.normal(size=(3, 3)).astype(np.float32) * 5.0
    new = np.asarray(update_memory_bank(memory, jnp.asarray(indices), features, momentum=0.5))
    np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, rtol=1e-6)
    untouched = [i for i in range(8) if i not in indices]
    np.testing.assert_array_equal(new[untouched], memory[untouched])
    for row, idx in enumerate(indices):
        expected = _unit(0.5 * memory[idx].astype(np.float64) + 0.5 * _unit(features[row]))
        np.testing.assert_allclose(new[idx], expected, rtol=1e-5, atol=1e-6)
    # momentum 0 stores the normalised features; momentum 1 keeps the bank.
    new0 = np.asarray(update_memory_bank(memory, jnp.asarray(indices), features, momentum=0.0))
    np.testing.assert_allclose(new0[indices], _unit(features), rtol=1e-5, atol=1e-6)
    new1 = np.asarray(
        jax.jit(update_memory_bank)(memory, jnp.asarray(indices), features, momentum=1.0)
    )
    np.testing.assert_allclose(new1, memory, rtol=1e-6, atol=1e-7)


def test_proximal_term_matches_numpy_and_only_moves_features():
    rng = np.random.default_rng(6)
    rows = _unit(rng.normal(size=(5, 3))).astype(np.float32)
    features = rng.normal(size=(5, 3)).astype(np.float32) * 3.0
    expected = np.mean(np.sum((_unit(features) - rows.astype(np.float64)) ** 2, axis=1))
    assert float(proximal_term(features, rows)) == pytest.approx(expected, rel=1e-5)
    # Zero at the rows themselves (any scale), 4 at the opposite rows: the known bounds.
    assert float(proximal_term(2.0 * rows, rows)) == pytest.approx(0.0, abs=1e-6)
    assert float(proximal_term(-rows, rows)) == pytest.approx(4.0, rel=1e-6)
    g_rows = jax.grad(lambda r: proximal_term(features, r))(jnp.asarray(rows))
    assert np.all(np.asarray(g_rows) == 0)


# ------------------------------------------------------ memory bank filled at first visit


def test_unwritten_rows_leave_the_softmax_and_the_own_feature_is_the_positive():
    rng = np.random.default_rng(7)
    memory = _unit(rng.normal(size=(10, 4))).astype(np.float32)
    written = np.array([1, 1, 0, 1, 0, 1, 1, 0, 1, 1], bool)
    indices = np.array([3, 7, 0, 2])  # rows 7 and 2 not written yet
    features = rng.normal(size=(4, 4)).astype(np.float32)
    loss, acc = instance_discrimination_loss(
        features, memory, jnp.asarray(indices), temperature=0.1, written=jnp.asarray(written)
    )
    # Independent reference: softmax over the written rows plus the image's own class,
    # whose row is the feature itself when unwritten (score 1 / tau).
    f, total, correct = _unit(features), 0.0, 0
    for fi, idx in zip(f, indices):
        rows = {j: memory[j].astype(np.float64) for j in range(10) if written[j]}
        rows[idx] = memory[idx].astype(np.float64) if written[idx] else fi
        logits = {j: fi @ v / 0.1 for j, v in rows.items()}
        total += math.log(sum(math.exp(s) for s in logits.values())) - logits[idx]
        correct += int(max(logits, key=logits.get) == idx)
    assert float(loss) == pytest.approx(total / 4, rel=1e-5)
    assert float(acc) == pytest.approx(correct / 4)
    g = jax.grad(
        lambda x: instance_discrimination_loss(
            x, memory, jnp.asarray(indices), temperature=0.1, written=jnp.asarray(written)
        )[0]
    )(jnp.asarray(features))
    assert np.all(np.isfinite(np.asarray(g)))
    # An empty bank: each image only has itself, loss 0.
    loss, acc = instance_discrimination_loss(
        features, memory, jnp.asarray(indices), temperature=0.1, written=jnp.zeros(10, bool)
    )
    assert float(loss) == pytest.approx(0.0, abs=1e-6) and float(acc) == 1.0


def test_masked_moco_loss_equals_moco_on_the_kept_rows():
    rng = np.random.default_rng(8)
    q, k = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    queue = _unit(rng.normal(size=(6, 5))).astype(np.float32)
    keep = np.array([1, 0, 1, 1, 0, 1], bool)
    loss, logits = masked_moco_loss(q, k, queue, jnp.asarray(keep), temperature=0.2)
    ref, ref_logits = moco_loss(q, k, queue[keep], temperature=0.2)
    # Other shapes (6 queue rows, masked, against 4) may reorder the d=5 dot products and the
    # log-sum-exp over the 5 kept logits; logits of unit vectors scale as 1 / tau = 5.
    tol = f32_sum_tol(2 * 5 + 5, magnitude=1 / 0.2)
    assert_close(loss, ref, rtol=tol)
    assert_close(np.asarray(logits)[:, 1:][:, keep], np.asarray(ref_logits)[:, 1:], rtol=tol)
    assert np.all(np.isneginf(np.asarray(logits)[:, 1:][:, ~keep]))


def test_first_write_stores_the_feature_later_writes_mix():
    rng = np.random.default_rng(9)
    memory = _unit(rng.normal(size=(6, 3))).astype(np.float32)
    written = jnp.asarray(np.array([0, 1, 0, 1, 0, 0], bool))
    indices = jnp.asarray([0, 1, 4])
    features = rng.normal(size=(3, 3)).astype(np.float32) * 4.0
    rows = np.asarray(first_visit_rows(memory, indices, features, written))
    np.testing.assert_allclose(rows[[0, 2]], _unit(features[[0, 2]]), rtol=1e-5)
    np.testing.assert_array_equal(rows[1], memory[1])
    new = np.asarray(update_memory_bank(memory, indices, features, momentum=0.5, written=written))
    np.testing.assert_allclose(new[[0, 4]], _unit(features[[0, 2]]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        new[1], _unit(0.5 * memory[1] + 0.5 * _unit(features[1])), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(new[[2, 3, 5]], memory[[2, 3, 5]])
