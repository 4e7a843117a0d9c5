"""Random invertible MLPs that mix independent sources into observations.

The nonlinear ICA studies (Hyvarinen & Morioka 2016; Khemakhem et al. 2020; Zimmermann et al.
2021) mix the sources ``s`` with ``depth`` square layers: an affine map, then a leaky ReLU
between layers (none after the last). Every layer is invertible: the leaky ReLU is strictly
increasing, and each matrix is drawn with a bounded condition number (a Gaussian draw is kept
only when ``cond(W) <= max_condition``), so the inverse is well behaved in float32.
``depth = 1`` is a linear mixing.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@flax.struct.dataclass
class Mixing:
    """The layers of an invertible MLP: ``weights[l]`` ``[D, D]``, ``biases[l]`` ``[D]``."""

    weights: tuple
    biases: tuple
    negative_slope: float = flax.struct.field(pytree_node=False, default=0.2)

    @property
    def dim(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def depth(self) -> int:
        return len(self.weights)


def _check_depth_dim(dim: int, depth: int, negative_slope: float) -> None:
    if int(dim) != dim or dim < 1:
        raise ValueError(f"mixing dim={dim!r} is invalid; valid: an integer >= 1")
    if int(depth) != depth or depth < 1:
        raise ValueError(f"mixing depth={depth!r} is invalid; valid: an integer >= 1")
    if not 0.0 < negative_slope <= 1.0:
        raise ValueError(f"negative_slope={negative_slope!r} is invalid; valid: 0 < slope <= 1")


def random_mixing(
    key: Array,
    dim: int,
    depth: int,
    *,
    negative_slope: float = 0.2,
    max_condition: float | None = None,
    max_tries: int = 1000,
) -> Mixing:
    """A random invertible MLP of ``depth`` layers on ``R^dim``.

    Each matrix has i.i.d. ``N(0, 1/dim)`` entries, redrawn until its condition number is at
    most ``max_condition`` (default ``4 * dim``, which keeps the composed map's inverse
    accurate in float32); biases are zero-mean with scale 0.1.
    """
    _check_depth_dim(dim, depth, negative_slope)
    max_condition = float(4 * dim if max_condition is None else max_condition)
    if max_condition < 1.0:
        raise ValueError(f"max_condition={max_condition!r} is invalid; valid: >= 1")
    weights, biases = [], []
    for layer in range(depth):
        layer_key = jax.random.fold_in(key, layer)
        for attempt in range(max_tries):
            w_key, b_key = jax.random.split(jax.random.fold_in(layer_key, attempt))
            w = jax.random.normal(w_key, (dim, dim)) / np.sqrt(dim)
            if np.linalg.cond(np.asarray(w, np.float64)) <= max_condition:
                break
        else:
            raise ValueError(
                f"no {dim}x{dim} matrix with condition <= {max_condition} in {max_tries} draws; "
                "raise max_condition"
            )
        weights.append(w)
        biases.append(0.1 * jax.random.normal(b_key, (dim,)))
    return Mixing(tuple(weights), tuple(biases), float(negative_slope))


def _leaky(x: Array, slope: float) -> Array:
    return jnp.where(x >= 0, x, slope * x)


def _leaky_inverse(y: Array, slope: float) -> Array:
    return jnp.where(y >= 0, y, y / slope)


def _check_input(mixing: Mixing, x: Array, name: str) -> None:
    if x.ndim < 1 or x.shape[-1] != mixing.dim:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; the mixing expects a last axis of {mixing.dim}"
        )


def apply_mixing(mixing: Mixing, s: Array) -> Array:
    """Observations ``x = f(s)`` for sources ``s`` ``[..., D]``."""
    s = jnp.asarray(s, jnp.float32)
    _check_input(mixing, s, "sources")
    h = s
    for layer, (w, b) in enumerate(zip(mixing.weights, mixing.biases)):
        h = h @ w.T + b
        if layer < mixing.depth - 1:
            h = _leaky(h, mixing.negative_slope)
    return h


def invert_mixing(mixing: Mixing, x: Array) -> Array:
    """Sources ``s = f^{-1}(x)`` (layer by layer, solving each linear map in float64 NumPy
    when available, which keeps round-trip errors at float32 resolution)."""
    x = np.asarray(x, np.float64)
    _check_input(mixing, x, "observations")
    h = x
    for layer in reversed(range(mixing.depth)):
        if layer < mixing.depth - 1:
            h = np.where(h >= 0, h, h / mixing.negative_slope)
        w = np.asarray(mixing.weights[layer], np.float64)
        b = np.asarray(mixing.biases[layer], np.float64)
        h = np.linalg.solve(w, (h - b).T).T
    return h.astype(np.float32)


def log_abs_det_jacobian(mixing: Mixing, s: Array) -> Array:
    """``log |det df/ds|`` per sample (``[...]``): the change-of-variables term of ``p(x)``."""
    s = jnp.asarray(s, jnp.float32)
    _check_input(mixing, s, "sources")
    total = jnp.zeros(s.shape[:-1])
    h = s
    for layer, (w, b) in enumerate(zip(mixing.weights, mixing.biases)):
        total = total + jnp.linalg.slogdet(w)[1]
        h = h @ w.T + b
        if layer < mixing.depth - 1:
            slope = jnp.where(h >= 0, 1.0, mixing.negative_slope)
            total = total + jnp.sum(jnp.log(slope), axis=-1)
            h = _leaky(h, mixing.negative_slope)
    return total
