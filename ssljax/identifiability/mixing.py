"""Random invertible MLPs that mix independent sources into observations.

The nonlinear ICA studies (Hyvarinen & Morioka 2016; Khemakhem et al. 2020; Zimmermann et al.
2021) mix the sources ``s`` with ``depth`` square layers: an affine map, then an elementwise nonlinearity
between layers (none after the last). Every layer is invertible: the nonlinearity is strictly
increasing (a leaky ReLU, or the iVAE code's ``xtanh(h) = tanh(h) + slope * h``), and each
matrix is drawn with a bounded condition number (a draw is kept only when
``cond(W) <= max_condition``), so the inverse is well behaved in float32. ``depth = 1`` is a
linear mixing.

The iVAE authors' generator (ilkhem/iVAE, ``generate_data``) is
``random_mixing(..., activation="xtanh", negative_slope=0.1, matrices="uniform",
shared=True, bias_scale=0.0)``: one matrix with uniform entries and unit-norm columns, below the
25th percentile of condition numbers of such matrices, repeated in every layer.
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
    activation: str = flax.struct.field(pytree_node=False, default="leaky_relu")

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


ACTIVATIONS = ("leaky_relu", "xtanh")
MATRICES = ("gaussian", "uniform")


def _draw_matrix(key: Array, dim: int, matrices: str) -> Array:
    if matrices == "gaussian":
        return jax.random.normal(key, (dim, dim)) / np.sqrt(dim)
    w = jax.random.uniform(key, (dim, dim), minval=-1.0, maxval=1.0)
    return w / jnp.linalg.norm(w, axis=1, keepdims=True)  # unit rows: unit columns of W^T


def uniform_condition_threshold(key: Array, dim: int, draws: int = 10_000) -> float:
    """The 25th percentile of ``cond(W)`` over ``draws`` uniform unit-norm ``dim x dim``
    matrices: the iVAE code's bound for its mixing matrices."""
    w = np.asarray(jax.random.uniform(key, (draws, dim, dim), minval=-1.0, maxval=1.0))
    w = w / np.linalg.norm(w, axis=2, keepdims=True)
    return float(np.percentile(np.linalg.cond(w.astype(np.float64)), 25))


def random_mixing(
    key: Array,
    dim: int,
    depth: int,
    *,
    negative_slope: float = 0.2,
    max_condition: float | None = None,
    max_tries: int = 1000,
    activation: str = "leaky_relu",
    matrices: str = "gaussian",
    shared: bool = False,
    bias_scale: float = 0.1,
) -> Mixing:
    """A random invertible MLP of ``depth`` layers on ``R^dim``.

    Args:
      negative_slope: slope of the leaky ReLU for negative inputs, or the linear term of
        ``xtanh``.
      max_condition: bound on each matrix's condition number (default ``4 * dim`` for
        ``gaussian`` matrices, ``uniform_condition_threshold`` for ``uniform`` ones).
      activation: ``leaky_relu`` or ``xtanh`` between layers.
      matrices: ``gaussian`` (i.i.d. ``N(0, 1/dim)`` entries) or ``uniform`` (entries uniform
        on [-1, 1], each input-side column scaled to unit norm), redrawn until the condition
        bound holds.
      shared: one matrix for every layer (the iVAE code's ``repeat_linearity``).
      bias_scale: standard deviation of the zero-mean Gaussian biases (0: none).
    """
    _check_depth_dim(dim, depth, negative_slope)
    if activation not in ACTIVATIONS:
        raise ValueError(f"mixing activation={activation!r} is invalid; valid: {ACTIVATIONS}")
    if matrices not in MATRICES:
        raise ValueError(f"mixing matrices={matrices!r} is invalid; valid: {MATRICES}")
    if not float(bias_scale) >= 0.0:
        raise ValueError(f"bias_scale={bias_scale!r} is invalid; valid: a float >= 0")
    if max_condition is None:
        max_condition = (
            4.0 * dim
            if matrices == "gaussian"
            else uniform_condition_threshold(jax.random.fold_in(key, 10**6), dim)
        )
    max_condition = float(max_condition)
    if max_condition < 1.0:
        raise ValueError(f"max_condition={max_condition!r} is invalid; valid: >= 1")
    weights, biases = [], []
    for layer in range(depth):
        layer_key = jax.random.fold_in(key, layer)
        for attempt in range(max_tries):
            w_key, b_key = jax.random.split(jax.random.fold_in(layer_key, attempt))
            if shared and layer > 0:
                w = weights[0]
                break
            w = _draw_matrix(w_key, dim, matrices)
            if np.linalg.cond(np.asarray(w, np.float64)) <= max_condition:
                break
        else:
            raise ValueError(
                f"no {dim}x{dim} matrix with condition <= {max_condition} in {max_tries} draws; "
                "raise max_condition"
            )
        weights.append(w)
        biases.append(float(bias_scale) * jax.random.normal(b_key, (dim,)))
    return Mixing(tuple(weights), tuple(biases), float(negative_slope), activation)


def _activate(h: Array, mixing: Mixing) -> Array:
    if mixing.activation == "xtanh":
        return jnp.tanh(h) + mixing.negative_slope * h
    return _leaky(h, mixing.negative_slope)


def _activation_slope(h: Array, mixing: Mixing) -> Array:
    if mixing.activation == "xtanh":
        return 1.0 - jnp.tanh(h) ** 2 + mixing.negative_slope
    return jnp.where(h >= 0, 1.0, mixing.negative_slope)


def _xtanh_inverse(y: np.ndarray, slope: float, iterations: int = 100) -> np.ndarray:
    """The ``h`` with ``tanh(h) + slope * h = y`` by bisection in float64: ``|tanh| < 1``
    brackets it in ``[(y - 1) / slope, (y + 1) / slope]``, which halves every iteration."""
    lo, hi = (y - 1.0) / slope, (y + 1.0) / slope
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = np.tanh(mid) + slope * mid > y
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _leaky(x: Array, slope: float) -> Array:
    return jnp.where(x >= 0, x, slope * x)


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
            h = _activate(h, mixing)
    return h


def invert_mixing(mixing: Mixing, x: Array) -> Array:
    """Sources ``s = f^{-1}(x)`` (layer by layer, solving each linear map in float64 NumPy
    when available, which keeps round-trip errors at float32 resolution)."""
    x = np.asarray(x, np.float64)
    _check_input(mixing, x, "observations")
    h = x
    for layer in reversed(range(mixing.depth)):
        if layer < mixing.depth - 1 and mixing.activation == "xtanh":
            h = _xtanh_inverse(h, mixing.negative_slope)
        elif layer < mixing.depth - 1:
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
            total = total + jnp.sum(jnp.log(_activation_slope(h, mixing)), axis=-1)
            h = _activate(h, mixing)
    return total
