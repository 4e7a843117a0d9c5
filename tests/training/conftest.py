"""Shared by the workdir and fault tests: one uninterrupted tiny run to compare against."""

import jax
import numpy as np
import pytest


@pytest.fixture(scope="session")
def reference_run(tiny_fashion_mnist, tmp_path_factory, make_tiny_config):
    """``(config, workdir, final_state)`` of the tiny config trained to the end in one go."""
    from ssljax.training.loop import restore_for_eval, train_and_evaluate

    config = make_tiny_config(tiny_fashion_mnist)
    workdir = str(tmp_path_factory.mktemp("reference"))
    result = train_and_evaluate(config, workdir, progress=False)
    assert result["status"] == "completed" and result["step"] == config.total_steps
    _, _, state, step = restore_for_eval(workdir)
    assert step == config.total_steps
    return config, workdir, state


def assert_same_state(a, b):
    """Every leaf of two train states is bit-identical."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="session")
def same_state():
    return assert_same_state
