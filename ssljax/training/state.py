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
      extra: the objective's typed state (``Objective.init_state``: EMA targets, queues,
        memory banks); ``{}`` for objectives without state.
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
    model,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    sample_shape: tuple[int, ...],
    groups=None,
) -> TrainState:
    """Builds the initial state; ``rng`` seeds both the parameters and the run's key.

    ``groups`` (``{name: ParamGroup}``, an objective's own networks such as a discriminator)
    are initialised on zeros of their ``sample_shape`` and stored as ``params[name]``.
    """
    init_rng, run_rng = jax.random.split(rng)
    variables = init_variables(model, init_rng, sample_shape)
    params = variables["params"]
    if groups:
        params = dict(params)
        for i, (name, group) in enumerate(sorted(groups.items())):
            if name in params:
                raise ValueError(f"parameter group {name!r} clashes with a part of the model")
            params[name] = group.module.init(
                jax.random.fold_in(init_rng, i + 1), jnp.zeros(group.sample_shape, jnp.float32)
            )["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
        rng=run_rng,
    )
