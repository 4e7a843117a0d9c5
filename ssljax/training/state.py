"""The train state: a pytree of arrays, so it can be replicated, sharded and checkpointed."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped.

    Attributes:
      step: number of optimisation steps taken (int32 scalar).
      params: trainable parameters of the objective's model.
      model_state: other Flax collections (BatchNorm ``batch_stats``).
      opt_state: optax state.
      rng: raw ``uint32[2]`` PRNG key; per-step keys are ``fold_in(rng, step)``.
      extra: objective-owned state (EMA targets, queues, memory banks); ``{}`` when unused.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    rng: jax.Array
    extra: Any = flax.struct.field(default_factory=dict)


def init_variables(model, rng: jax.Array, sample_shape: tuple[int, ...]) -> dict:
    """Initialises a Flax model on zeros of ``sample_shape`` in eval mode (no collectives)."""
    return model.init(rng, jnp.zeros(sample_shape, jnp.float32), train=False)


def create_train_state(
    model, tx: optax.GradientTransformation, rng: jax.Array, sample_shape: tuple[int, ...]
) -> TrainState:
    """Builds the initial state; ``rng`` seeds both the parameters and the run's key."""
    init_rng, run_rng = jax.random.split(rng)
    variables = init_variables(model, init_rng, sample_shape)
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
        rng=run_rng,
    )
