"""Device and host helpers for the per-device (SPMD) train step.

The train step is written for one device with collectives over the axis ``'batch'``. It is
driven either by ``jax.shard_map`` under ``jax.jit`` over a 1-D mesh (the default; multi-host
ready) or by ``jax.pmap``. These helpers move state and batches into the layout each expects.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

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


def replicated_abstract(tree, mesh: Mesh):
    """Shapes and dtypes of ``tree`` with a fully replicated sharding on ``mesh`` (what a
    checkpoint restore fills in place, on every process)."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), tree
    )


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


# --------------------------------------------------------------------------
# Processes: jax.distributed start-up, and what only process 0 does.

DEFAULT_INIT_TIMEOUT_S = 300


def is_main_process() -> bool:
    """True on the process that writes logs, reports and figures (process 0)."""
    return jax.process_index() == 0


def detected_cluster() -> str | None:
    """The name of the cluster JAX would detect on its own (TPU pod, SLURM, Open MPI), or None.

    Uses JAX's own cluster detection (the environments ``jax.distributed.initialize()`` reads
    when called without arguments); opt-in methods such as mpi4py are not probed.
    """
    try:
        from jax._src import clusters
    except ImportError:  # a JAX without the module: behave as off a cluster
        return None
    for env in clusters.ClusterEnv._cluster_types:
        try:
            if not env.opt_in_only_method and env.is_env_present():
                return env.name or env.__name__
        except Exception:  # noqa: BLE001 - a probe that cannot tell counts as absent
            continue
    return None


def check_distributed_args(
    coordinator_address: str | None,
    num_processes: int | None,
    process_id: int | None,
    *,
    cluster: str | None = None,
) -> None:
    """One-line ValueErrors for launch flags that cannot work (checked before any start-up)."""
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"--num_processes={num_processes} must be at least 1")
    if process_id is not None and process_id < 0:
        raise ValueError(f"--process_id={process_id} must be >= 0")
    if process_id is not None and num_processes is not None and process_id >= num_processes:
        raise ValueError(
            f"--process_id={process_id} is not below --num_processes={num_processes}; "
            f"valid ids are 0..{num_processes - 1}"
        )
    if (
        coordinator_address is None
        and cluster is None
        and ((num_processes or 1) > 1 or process_id is not None)
    ):
        raise ValueError(
            f"--num_processes={num_processes} / --process_id={process_id} need "
            "--coordinator_address=HOST:PORT (process 0's address) when no cluster "
            "(TPU pod, SLURM, Open MPI) is detected"
        )
    if coordinator_address is not None:
        host, sep, port = coordinator_address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(
                f"--coordinator_address={coordinator_address!r} is not HOST:PORT "
                "(e.g. 10.0.0.2:1234, the address of process 0)"
            )
        if num_processes is None or process_id is None:
            raise ValueError(
                "--coordinator_address needs --num_processes and --process_id "
                "off a detected cluster"
            )


def _exit_after(seconds: float, message: str):
    """A started timer that prints ``error: message`` and ends the process with status 2.

    jax.distributed's own timeout aborts the process with a C++ stack trace; this watchdog
    fires first and leaves one line instead.
    """
    import os
    import sys
    import threading

    def fire():
        print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(2)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: float = DEFAULT_INIT_TIMEOUT_S,
) -> int:
    """Starts ``jax.distributed`` when the run spans several processes; returns the count.

    - With ``coordinator_address``/``num_processes``/``process_id``: those processes, over
      that coordinator (process 0 hosts it).
    - With none of them on a detected cluster (TPU pod, SLURM, Open MPI):
      ``jax.distributed.initialize()``'s own detection.
    - Otherwise: one process, nothing started.

    CPU collectives across processes go through gloo. A coordinator that does not answer
    (or processes that do not all join) within ``timeout_s`` ends the process with one line
    and exit status 2. Call it before anything touches a JAX device.
    """
    cluster = detected_cluster()
    check_distributed_args(coordinator_address, num_processes, process_id, cluster=cluster)
    explicit = coordinator_address is not None
    if not explicit and cluster is None:
        return 1
    if explicit and num_processes == 1:
        return 1
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    who = f"process {process_id} of {num_processes}" if explicit else f"{cluster} cluster"
    where = coordinator_address or "the detected coordinator"
    watchdog = _exit_after(
        timeout_s,
        f"jax.distributed start-up timed out after {timeout_s:g} s ({who}): the "
        f"coordinator {where} did not answer or not every process joined",
    )
    try:
        kwargs = dict(initialization_timeout=int(timeout_s) + 30)
        if explicit:
            kwargs.update(
                coordinator_address=coordinator_address,
                num_processes=num_processes,
                process_id=process_id,
            )
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"jax.distributed could not start ({who}, {where}): {first}") from err
    finally:
        watchdog.cancel()
    return jax.process_count()


def sync(name: str) -> None:
    """A barrier across processes (no-op on one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
    """True on every process when ``flag`` is True on at least one (no-op on one process)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.asarray([int(bool(flag))], np.int32))
    return bool(np.asarray(flags).max())
