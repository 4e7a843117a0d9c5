"""Sampling codes and factors from ground-truth data through a ``representation_fn``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ssljax.data.dsprites import as_random_state
from ssljax.evaluation.disentanglement.common import check_positive

RepresentationFn = Callable[[np.ndarray], Any]


def represent(
    representation_fn: RepresentationFn, observations: np.ndarray, batch: int
) -> np.ndarray:
    """``representation_fn`` over ``observations`` in chunks of ``batch``, as float64 ``[n, d]``."""
    out = []
    for start in range(0, len(observations), batch):
        codes = np.asarray(representation_fn(observations[start : start + batch]), np.float64)
        if codes.ndim != 2 or codes.shape[0] != len(observations[start : start + batch]):
            raise ValueError(
                f"representation_fn must return [batch, num_codes]; for a batch of "
                f"{len(observations[start : start + batch])} it returned shape {codes.shape}"
            )
        out.append(codes)
    return np.concatenate(out)


def generate_factor_code(
    data,
    representation_fn: RepresentationFn,
    num_points: int,
    random_state,
    batch_size: int = 16,
    *,
    representation_batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` samples as ``(codes [n, num_codes], factors [n, num_factors])``.

    Draws ``data.sample(batch_size, random_state)`` repeatedly, as
    disentanglement_lib's ``generate_batch_factor_code``.
    """
    check_positive(
        num_points=num_points,
        batch_size=batch_size,
        representation_batch_size=representation_batch_size,
    )
    random_state = as_random_state(random_state)
    factors, codes, pending, pending_n = [], [], [], 0

    def flush():
        codes.append(
            represent(representation_fn, np.concatenate(pending), representation_batch_size)
        )
        pending.clear()

    for start in range(0, num_points, batch_size):
        f, obs = data.sample(min(batch_size, num_points - start), random_state)
        factors.append(np.asarray(f, np.int64))
        pending.append(np.asarray(obs))
        pending_n += len(obs)
        if pending_n >= representation_batch_size:
            flush()
            pending_n = 0
    if pending:
        flush()
    return np.concatenate(codes), np.concatenate(factors)


def grouped_samples(num_points: int, obs_per_point: int, representation_batch_size: int):
    """Group sizes so that one representation call sees about representation_batch_size observations."""
    group = max(1, representation_batch_size // obs_per_point)
    for start in range(0, num_points, group):
        yield min(group, num_points - start)


def train_test_codes(
    data, representation_fn, random_state, num_train, num_test, batch_size, rep_batch
):
    random_state = as_random_state(random_state)
    train = generate_factor_code(
        data,
        representation_fn,
        num_train,
        random_state,
        batch_size,
        representation_batch_size=rep_batch,
    )
    test = generate_factor_code(
        data,
        representation_fn,
        num_test,
        random_state,
        batch_size,
        representation_batch_size=rep_batch,
    )
    return random_state, train, test
