"""Gradient-based MCMC samplers of an energy: unadjusted Langevin, MALA and HMC.

Every sampler is a pure JAX function, jit-able, of a key, a batch of chains ``x0 [N, ...]`` and
an energy ``energy_fn(x [N, ...]) -> [N]`` (the density is proportional to ``exp(-E(x))``,
each chain's energy depending on that chain alone). Gradients are ``jax.grad`` of
``sum(energy_fn(x))``, which is every chain's own gradient; per-chain energies and gradients
come from one ``jax.vjp`` (one forward and one backward pass per step). Chains run in
``jax.lax.scan`` / ``jax.lax.fori_loop``.

Conventions:

* ``langevin`` (unadjusted Langevin dynamics; Roberts & Tweedie 1996's ULA, as used for EBMs
  by Du & Mordatch 2019)::

      x <- x + (step_size / 2) * score(x) + sqrt(step_size) * noise_scale * N(0, I)

  with ``score = -grad E`` (or a given ``score_fn``). ``noise_scale = 1`` targets
  ``exp(-E)`` as ``step_size -> 0``; ``noise_scale < 1`` is the "short-run" trick of Du &
  Mordatch 2019 (less noise than the gradient step asks for; samples concentrate near
  minima and are no longer from ``exp(-E)``).
* ``mala`` (Metropolis-adjusted Langevin, Roberts & Tweedie 1996): the Langevin proposal
  ``x' = x + (h/2) s(x) + sqrt(h) z`` accepted with probability ``min(1, exp(log_alpha))``,
  ``log_alpha = E(x) - E(x') + log q(x | x') - log q(x' | x)`` and
  ``log q(x' | x) = -|x' - x - (h/2) s(x)|^2 / (2h)`` (``mala_log_acceptance``).
* ``hmc`` (Duane et al. 1987; Neal 2011): momentum ``p ~ N(0, I)`` (unit mass), ``num_leapfrog``
  leapfrog steps of size ``step_size`` (``leapfrog``), accepted with probability
  ``min(1, exp(H(x, p) - H(x', p')))``, ``H = E(x) + |p|^2 / 2``.

Keys: ``key`` is one PRNG key for the whole batch, or one key per chain (``[N]`` typed keys or
``[N, 2]`` raw ``uint32`` keys). With per-chain keys, a chain's noise depends only on its own
key, so chains split over devices (or batched differently) draw the same numbers.

Bad settings (a non-positive step size, step count or leapfrog count, an unknown sampler) are
one-line ``ValueError``s naming the value and the valid choices.
"""

from __future__ import annotations

import math
from typing import Callable

import chex
import jax
import jax.numpy as jnp

SAMPLERS = ("langevin", "mala", "hmc")

EnergyFn = Callable[[jax.Array], jax.Array]


# ---------------------------------------------------------------------------------------------
# Checks (one line each).


def _is_traced(value) -> bool:
    return isinstance(value, jax.core.Tracer)  # a jitted argument: checked by its caller


def check_step_size(step_size, name: str = "step_size") -> None:
    """``step_size > 0`` and finite (traced values are not checked)."""
    if _is_traced(step_size):
        return
    value = float(step_size)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={step_size!r} is invalid; valid: {name} > 0")


def check_count(name: str, value) -> None:
    """An integer ``>= 1`` (step counts are static: they size the scan)."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and int(value) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= 1")


def check_noise_scale(noise_scale) -> None:
    """``noise_scale >= 0`` (traced values are not checked)."""
    if _is_traced(noise_scale):
        return
    value = float(noise_scale)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"noise_scale={noise_scale!r} is invalid; valid: noise_scale >= 0")


def check_sampler(name: str) -> None:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {list(SAMPLERS)}")


# ---------------------------------------------------------------------------------------------
# Keys: one for the batch, or one per chain.


def _per_chain(key: jax.Array, num_chains: int) -> bool:
    """Whether ``key`` holds one key per chain (and that their number is ``num_chains``)."""
    key = jnp.asarray(key)
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    batched = key.ndim == (1 if typed else 2)
    if batched and key.shape[0] != num_chains:
        raise ValueError(
            f"{key.shape[0]} per-chain keys for {num_chains} chains; valid: one key, or "
            f"one key per chain"
        )
    return batched


def _split(key, per_chain: bool):
    """``(next key, key to use)`` for one key or per chain."""
    if per_chain:
        pair = jax.vmap(jax.random.split)(key)
        return pair[:, 0], pair[:, 1]
    pair = jax.random.split(key)
    return pair[0], pair[1]


def _normal(key, like: jax.Array, per_chain: bool) -> jax.Array:
    """Standard normal noise of ``like``'s shape and dtype."""
    if per_chain:
        return jax.vmap(lambda k: jax.random.normal(k, like.shape[1:], like.dtype))(key)
    return jax.random.normal(key, like.shape, like.dtype)


def _uniform(key, num_chains: int, per_chain: bool) -> jax.Array:
    """One uniform number in ``[0, 1)`` per chain, ``[N]``."""
    if per_chain:
        return jax.vmap(lambda k: jax.random.uniform(k, ()))(key)
    return jax.random.uniform(key, (num_chains,))


# ---------------------------------------------------------------------------------------------
# Energies and their gradients.


def energy_and_grad(energy_fn: EnergyFn, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-chain energies ``[N]`` and ``grad_x sum(E(x))`` (each chain's gradient), from one
    forward and one backward pass."""
    energy, pullback = jax.vjp(energy_fn, x)
    chex.assert_shape(energy, (x.shape[0],))
    (grad,) = pullback(jnp.ones_like(energy))
    return energy, grad


def grad_energy(energy_fn: EnergyFn) -> Callable[[jax.Array], jax.Array]:
    """``x -> grad_x sum(E(x))``: every chain's gradient of its own energy."""
    return jax.grad(lambda x: jnp.sum(energy_fn(x)))


def _sum_rest(x: jax.Array) -> jax.Array:
    """Sum over every axis but the first: ``[N, ...] -> [N]``."""
    return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


def _per_chain_mask(mask: jax.Array, like: jax.Array) -> jax.Array:
    return mask.reshape((-1,) + (1,) * (like.ndim - 1))


# ---------------------------------------------------------------------------------------------
# Unadjusted Langevin dynamics.


def langevin(
    key: jax.Array,
    x0: jax.Array,
    *,
    energy_fn: EnergyFn | None = None,
    score_fn: Callable[[jax.Array], jax.Array] | None = None,
    step_size: float,
    num_steps: int,
    noise_scale: float = 1.0,
    return_chain: bool = False,
):
    """``num_steps`` steps of unadjusted Langevin dynamics from ``x0 [N, ...]``.

    ``x <- x + (step_size / 2) * s(x) + sqrt(step_size) * noise_scale * z``, ``z ~ N(0, I)``,
    with ``s = score_fn`` or ``s = -grad E`` (give exactly one of ``energy_fn``, ``score_fn``).
    ``noise_scale = 1`` is Langevin dynamics for ``exp(-E)`` (biased by O(step_size));
    ``noise_scale < 1`` is Du & Mordatch 2019's short-run variant.

    Returns:
      The final states ``[N, ...]``; with ``return_chain`` also the chain
      ``[num_steps, N, ...]`` (the state after each step).
    """
    if (energy_fn is None) == (score_fn is None):
        raise ValueError("langevin needs exactly one of energy_fn and score_fn; got both or none")
    check_step_size(step_size)
    check_count("num_steps", num_steps)
    check_noise_scale(noise_scale)
    per_chain = _per_chain(key, x0.shape[0])
    if score_fn is None:
        gradient = grad_energy(energy_fn)
        score_fn = lambda x: -gradient(x)
    noise_std = jnp.sqrt(jnp.asarray(step_size, x0.dtype)) * noise_scale

    def body(carry, _):
        x, k = carry
        k, sub = _split(k, per_chain)
        x = x + 0.5 * step_size * score_fn(x) + noise_std * _normal(sub, x, per_chain)
        return (x, k), (x if return_chain else None)

    (x, _), chain = jax.lax.scan(body, (x0, key), None, length=int(num_steps))
    return (x, chain) if return_chain else x


# ---------------------------------------------------------------------------------------------
# Metropolis-adjusted Langevin.


def mala_log_acceptance(
    x: jax.Array,
    x_new: jax.Array,
    energy_x: jax.Array,
    energy_new: jax.Array,
    grad_x: jax.Array,
    grad_new: jax.Array,
    step_size: float,
) -> jax.Array:
    """MALA's log acceptance ratio ``[N]`` of the move ``x -> x_new``.

    ``log_alpha = E(x) - E(x') + log q(x | x') - log q(x' | x)`` with the Langevin proposal
    ``q(x' | x) = N(x'; x - (h/2) grad E(x), h I)``, so
    ``log q(x' | x) = -|x' - x + (h/2) grad E(x)|^2 / (2h)`` (constants cancel).
    """
    h = step_size
    forward = _sum_rest((x_new - x + 0.5 * h * grad_x) ** 2)
    backward = _sum_rest((x - x_new + 0.5 * h * grad_new) ** 2)
    return energy_x - energy_new + (forward - backward) / (2.0 * h)


def _metropolis(u, log_alpha, current, proposed, accepted):
    """One accept/reject per chain: ``(x, E, grad E)`` become the proposed ones where
    ``log u < log_alpha``; ``accepted`` counts the acceptances."""
    x, e, g = current
    x_new, e_new, g_new = proposed
    accept = jnp.log(u) < log_alpha
    mask = _per_chain_mask(accept, x)
    return (
        jnp.where(mask, x_new, x),
        jnp.where(accept, e_new, e),
        jnp.where(mask, g_new, g),
        accepted + jnp.sum(accept.astype(jnp.float32)),
    )


def _run_metropolis(body, energy_fn, key, x0, num_steps, return_chain):
    """Scans ``body`` over ``(x, E, grad E, key, accepted)`` from ``x0`` for ``num_steps``;
    returns ``(x, acceptance_rate[, chain])``."""
    e0, g0 = energy_and_grad(energy_fn, x0)
    init = (x0, e0, g0, key, jnp.zeros((), jnp.float32))
    (x, _, _, _, accepted), chain = jax.lax.scan(body, init, None, length=int(num_steps))
    rate = accepted / (x0.shape[0] * int(num_steps))
    return (x, rate, chain) if return_chain else (x, rate)


def mala(
    key: jax.Array,
    x0: jax.Array,
    *,
    energy_fn: EnergyFn,
    step_size: float,
    num_steps: int,
    return_chain: bool = False,
):
    """``num_steps`` Metropolis-adjusted Langevin steps (Roberts & Tweedie 1996), per chain.

    Each step proposes ``x' = x - (h/2) grad E(x) + sqrt(h) z`` and accepts it with
    probability ``min(1, exp(mala_log_acceptance(...)))``; a rejected chain stays put.

    Returns:
      ``(x [N, ...], acceptance_rate)``: the final states and the fraction of accepted
      proposals over chains and steps; with ``return_chain`` also the chain
      ``[num_steps, N, ...]``.
    """
    check_step_size(step_size)
    check_count("num_steps", num_steps)
    n = x0.shape[0]
    per_chain = _per_chain(key, n)
    noise_std = jnp.sqrt(jnp.asarray(step_size, x0.dtype))

    def body(carry, _):
        x, e, g, k, accepted = carry
        k, k_noise = _split(k, per_chain)
        k, k_accept = _split(k, per_chain)
        proposal = x - 0.5 * step_size * g + noise_std * _normal(k_noise, x, per_chain)
        e_new, g_new = energy_and_grad(energy_fn, proposal)
        log_alpha = mala_log_acceptance(x, proposal, e, e_new, g, g_new, step_size)
        u = _uniform(k_accept, n, per_chain)
        x, e, g, accepted = _metropolis(u, log_alpha, (x, e, g), (proposal, e_new, g_new), accepted)
        return (x, e, g, k, accepted), (x if return_chain else None)

    return _run_metropolis(body, energy_fn, key, x0, num_steps, return_chain)


# ---------------------------------------------------------------------------------------------
# Hamiltonian Monte Carlo.


def _leapfrog(x, p, grad, value_and_grad, step_size, num_leapfrog):
    """Leapfrog from ``(x, p)`` with ``grad = grad E(x)`` given; returns ``(x, p, E, grad)``
    at the end point (``E`` as ``value_and_grad`` reports it)."""
    p = p - 0.5 * step_size * grad

    def full_step(_, carry):
        x, p, _, _ = carry
        x = x + step_size * p
        e, g = value_and_grad(x)
        return x, p - step_size * g, e, g

    e0 = jnp.zeros((x.shape[0],), x.dtype)
    x, p, e, g = jax.lax.fori_loop(0, num_leapfrog - 1, full_step, (x, p, e0, grad))
    x = x + step_size * p
    e, g = value_and_grad(x)
    p = p - 0.5 * step_size * g
    return x, p, e, g


def leapfrog(
    x: jax.Array,
    p: jax.Array,
    grad_energy: Callable[[jax.Array], jax.Array],
    step_size: float,
    num_leapfrog: int,
) -> tuple[jax.Array, jax.Array]:
    """``num_leapfrog`` leapfrog (Stormer-Verlet) steps of Hamiltonian dynamics, unit mass.

    ``p <- p - (eps/2) grad E(x); x <- x + eps p; p <- p - (eps/2) grad E(x)`` per step (the
    inner half steps merged). Volume-preserving and reversible; the Hamiltonian
    ``E(x) + |p|^2 / 2`` changes by O(eps^2) over a fixed time.

    Args:
      x, p: ``[N, ...]`` positions and momenta.
      grad_energy: ``x -> grad E(x)`` (e.g. ``samplers.grad_energy(energy_fn)``).

    Returns:
      ``(x, p)`` after the steps.
    """
    check_step_size(step_size)
    check_count("num_leapfrog", num_leapfrog)
    value_and_grad = lambda z: (jnp.zeros((z.shape[0],), z.dtype), grad_energy(z))
    x, p, _, _ = _leapfrog(x, p, grad_energy(x), value_and_grad, step_size, int(num_leapfrog))
    return x, p


def hmc(
    key: jax.Array,
    x0: jax.Array,
    *,
    energy_fn: EnergyFn,
    step_size: float,
    num_leapfrog: int,
    num_steps: int,
    return_chain: bool = False,
):
    """``num_steps`` Hamiltonian Monte Carlo transitions (Duane et al. 1987; Neal 2011).

    Each transition draws ``p ~ N(0, I)``, runs ``leapfrog`` for ``num_leapfrog`` steps of
    ``step_size`` and accepts the end point with probability ``min(1, exp(H0 - H1))``,
    ``H = E(x) + |p|^2 / 2``, per chain.

    Returns:
      ``(x [N, ...], acceptance_rate)`` (fraction of accepted transitions over chains and
      steps); with ``return_chain`` also the chain ``[num_steps, N, ...]``.
    """
    check_step_size(step_size)
    check_count("num_leapfrog", num_leapfrog)
    check_count("num_steps", num_steps)
    n = x0.shape[0]
    per_chain = _per_chain(key, n)
    value_and_grad = lambda z: energy_and_grad(energy_fn, z)

    def body(carry, _):
        x, e, g, k, accepted = carry
        k, k_momentum = _split(k, per_chain)
        k, k_accept = _split(k, per_chain)
        p = _normal(k_momentum, x, per_chain)
        x_new, p_new, e_new, g_new = _leapfrog(
            x, p, g, value_and_grad, step_size, int(num_leapfrog)
        )
        h0 = e + 0.5 * _sum_rest(p**2)
        h1 = e_new + 0.5 * _sum_rest(p_new**2)
        u = _uniform(k_accept, n, per_chain)
        x, e, g, accepted = _metropolis(u, h0 - h1, (x, e, g), (x_new, e_new, g_new), accepted)
        return (x, e, g, k, accepted), (x if return_chain else None)

    return _run_metropolis(body, energy_fn, key, x0, num_steps, return_chain)


# ---------------------------------------------------------------------------------------------
# Dispatch by name.


def sample(
    name: str,
    key: jax.Array,
    x0: jax.Array,
    *,
    energy_fn: EnergyFn,
    step_size: float,
    num_steps: int,
    num_leapfrog: int = 10,
    noise_scale: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """Runs the sampler ``name`` (one of ``SAMPLERS``) on ``energy_fn`` from ``x0``.

    ``num_leapfrog`` is read by ``hmc`` only, ``noise_scale`` by ``langevin`` only.

    Returns:
      ``(x, acceptance_rate)``; unadjusted Langevin accepts every step (rate 1).
    """
    check_sampler(name)
    if name == "langevin":
        x = langevin(
            key,
            x0,
            energy_fn=energy_fn,
            step_size=step_size,
            num_steps=num_steps,
            noise_scale=noise_scale,
        )
        return x, jnp.ones((), jnp.float32)
    if name == "mala":
        return mala(key, x0, energy_fn=energy_fn, step_size=step_size, num_steps=num_steps)
    return hmc(
        key,
        x0,
        energy_fn=energy_fn,
        step_size=step_size,
        num_leapfrog=num_leapfrog,
        num_steps=num_steps,
    )
