"""Device and host helpers for the per-device (SPMD) train step.

The train step is written for one device with collectives over the axis ``'batch'``. It is
driven either by ``jax.shard_map`` under ``jax.jit`` over a 1-D mesh (the default; multi-host
ready) or by ``jax.pmap``. These helpers move state and batches into the layout each expects.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"


def make_mesh(devices=None, axis_name: str = AXIS) -> Mesh:
    """A 1-D mesh over all (global) devices, named ``axis_name``."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (axis_name,))


def check_global_batch(global_batch: int, num_devices: int | None = None) -> int:
    """Returns the per-device batch; a global batch that does not divide is an error."""
    num_devices = jax.device_count() if num_devices is None else num_devices
    if global_batch <= 0 or global_batch % num_devices:
        lower = max(num_devices, global_batch // num_devices * num_devices)
        raise ValueError(
            f"batch_size={global_batch} is not divisible by the {num_devices} devices; "
            f"use a multiple of {num_devices} such as {lower} or {lower + num_devices}"
        )
    return global_batch // num_devices


def replicate_on_mesh(tree, mesh: Mesh):
    """Places every leaf of ``tree`` fully replicated on ``mesh``."""
    sharding = NamedSharding(mesh, P())
    return jax.device_put(tree, sharding)


def batch_to_global(batch, mesh: Mesh, axis_name: str = AXIS):
    """Turns host batches ``[local_devices, per_device, ...]`` into global arrays.

    The result is ``[global_batch, ...]`` sharded along its first axis over ``axis_name``,
    as ``jax.shard_map(..., in_specs=P('batch'))`` expects; on several hosts each host passes
    its own part.
    """
    sharding = NamedSharding(mesh, P(axis_name))

    def convert(x):
        x = np.asarray(x)
        flat = x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])
        return jax.make_array_from_process_local_data(sharding, flat)

    return jax.tree.map(convert, batch)


def replicate_for_pmap(tree, num_devices: int | None = None):
    """Stacks ``num_devices`` copies of every leaf, the layout ``jax.pmap`` maps over."""
    n = jax.local_device_count() if num_devices is None else num_devices
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), tree)


def unreplicate(tree):
    """First copy of every leaf of a pmap-replicated tree."""
    return jax.tree.map(lambda x: x[0], tree)
