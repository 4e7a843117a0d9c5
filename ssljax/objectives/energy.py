"""The ``energy`` objective: an energy-based model ``p(x) ~ exp(-E(x))`` trained by score
matching or contrastive divergence (pure losses in ``ssljax.energy.losses``).

``objective.training`` picks the training:

* ``denoising_score_matching`` (Vincent 2011): ``x~ = x + sigma z``, the loss
  ``denoising_score_matching_loss(-grad E(x~), x~, x, sigma)``; ``dsm_weighting='sigma2'``
  (default) scales it by ``sigma^2`` (Song & Ermon 2019), which only changes its scale here
  (one ``sigma``) and keeps it order 1 per input dimension.
* ``sliced_score_matching`` (Song et al. 2019): ``num_projections`` Gaussian projections per
  example, ``sliced_score_matching_loss(-grad E, x, v)`` (SSM-VR with ``variance_reduction``).
  A network that is piecewise linear in its input (ReLU layers and affine normalisation) has
  a zero Hessian almost everywhere, so SSM's trace term vanishes for it; the image config's
  ConvNet uses LayerNorm, which is not piecewise linear, and the vector network is a swish MLP.
* ``contrastive_divergence`` (Du & Mordatch 2019): negatives from ``sampler``
  (``langevin``/``mala``/``hmc``, ``step_size``, ``num_steps``, ``num_leapfrog``,
  ``noise_scale``) run on the current energy with its parameters under ``stop_gradient``,
  starting from chains of a replay buffer (the objective's state, ``buffer_size`` rows, each
  chain restarted from uniform noise with probability ``reinit_prob``), and
  ``contrastive_divergence_loss(E(x+), E(x-), reg=reg)``. After the step the negatives of
  the whole global batch (all-gathered over the device axis) overwrite the buffer's oldest
  rows (a ring with a write pointer). Image negatives are clipped to [0, 1] after the chain.

The network (``EnergyNetwork``): an encoder, then ``Dense(1)``; its output is
``{'features': [B, D], 'energy': [B]}``. Images (``image_shape`` of rank 3) use the run's
encoder (``model.encoder``), held as the submodule ``encoder`` so that linear evaluation cuts it
out like any other method's; vectors (``image_shape`` of rank 1, the toy densities trained
through ``ssljax.identifiability.fit``) use ``EnergyMLP``: ``depth`` Dense layers of ``hidden``
units with swish activations (a smooth energy has a smooth score).

BatchNorm: the energy of one example must not depend on the other examples of its batch,
or ``-grad_x E`` would not be that example's score and 8 devices would not equal 1. So the
network is always applied in inference mode (``train=False``): BatchNorm, if the encoder has
it, normalises with its stored statistics, which this objective never updates (the initial
mean 0 and variance 1), i.e. it is a learned per-channel affine map; the model state passes
through unchanged. The image config uses the ConvNet with LayerNorm (``norm='layer'``), which
normalises each example on its own.

Randomness is drawn per example from the step's shared key folded with the example's
position in the global batch (noise, projections, buffer picks, restarts and every sampler
chain's key), so an example's randomness does not depend on the number of devices: 8
devices give the loss and update of 1 device on the same global batch.

Hyperparameters (``Energy``'s fields): training, sigma, dsm_weighting, num_projections,
variance_reduction, sampler, step_size, num_steps, num_leapfrog, noise_scale, buffer_size,
reinit_prob, reg, init_range, hidden, depth.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import chex
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.energy import losses, samplers
from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    Run,
    UpdateContext,
    check_choice,
    check_int,
    check_range,
)
from ssljax.objectives.contrastive import gather_batch
from ssljax.objectives.registry import register

TRAININGS = ("denoising_score_matching", "sliced_score_matching", "contrastive_divergence")
# The largest replay buffer (float32 bytes) ``check`` accepts: it is replicated on every
# device and written into every checkpoint.
MAX_BUFFER_BYTES = 2 * 2**30
# Tags folded into the run's seed for the initial buffer.
_BUFFER_TAG = 0xEB0


# ---------------------------------------------------------------------------------------------
# Networks.


class EnergyMLP(nn.Module):
    """``depth`` Dense layers of ``hidden`` units with swish activations: ``[B, ...]`` vectors
    (flattened) to ``[B, hidden]`` features."""

    hidden: int = 128
    depth: int = 3

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        del train
        h = x.reshape(x.shape[0], -1).astype(jnp.float32)
        for i in range(self.depth):
            h = nn.swish(nn.Dense(self.hidden, name=f"dense{i + 1}")(h))
        return h


class EnergyNetwork(nn.Module):
    """An encoder and a linear energy head: ``{'features': [B, D], 'energy': [B]}``."""

    encoder: nn.Module

    @nn.compact
    def __call__(self, x, *, train: bool):
        features = self.encoder(x, train=train)
        energy = nn.Dense(1, dtype=jnp.float32, name="energy_head")(features.astype(jnp.float32))
        return {"features": features, "energy": energy[:, 0]}


def apply_network(params, model_state, x, *, model) -> dict:
    """The network in inference mode (module docstring: BatchNorm never couples examples)."""
    return model.apply({"params": params, **model_state}, x, train=False)


def energy_fn(params, model_state, *, model):
    """``x [B, ...] -> E(x) [B]`` for fixed parameters."""
    return lambda x: apply_network(params, model_state, x, model=model)["energy"]


def score_fn(params, model_state, *, model):
    """``x -> -grad_x sum E(x)``: each example's score ``-grad E`` (energies are per example)."""
    gradient = samplers.grad_energy(energy_fn(params, model_state, model=model))
    return lambda x: -gradient(x)


# ---------------------------------------------------------------------------------------------
# State, outputs, per-example randomness.


@flax.struct.dataclass
class EnergyState:
    """The replay buffer of contrastive divergence and its write pointer."""

    buffer: jax.Array
    pointer: jax.Array


@flax.struct.dataclass
class EnergyOutputs(Outputs):
    """The features of the data, and (contrastive divergence) this device's negatives."""

    negatives: jax.Array | None = None
    PER_EXAMPLE: ClassVar[tuple[str, ...]] = ("embedding", "negatives")


def example_keys(shared_rng, n: int, axis_name, count: int) -> jax.Array:
    """``[count, n, 2]`` raw keys for this device's ``n`` examples: ``fold_in(shared_rng, i)``
    of each example's global position ``i``, split ``count`` ways (the same keys whatever the
    number of devices)."""
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n
    positions = offset + jnp.arange(n)
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(shared_rng, i), count))(positions)
    return jnp.swapaxes(keys, 0, 1)


def per_example_normal(keys: jax.Array, shape: tuple) -> jax.Array:
    """One standard normal array of ``shape`` per key: ``[n, *shape]``."""
    return jax.vmap(lambda k: jax.random.normal(k, shape, jnp.float32))(keys)


def is_image(run: Run) -> bool:
    return len(run.facts.image_shape) == 3


def replace_rows(buffer: jax.Array, pointer, rows: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Writes ``rows [m, ...]`` over ``buffer`` rows ``pointer, ..., pointer + m - 1`` modulo
    its size (oldest first); returns the buffer and the next pointer. ``m <= size``."""
    size, m = buffer.shape[0], rows.shape[0]
    if m > size:
        raise ValueError(f"{m} rows do not fit a buffer of {size}")
    index = (pointer + jnp.arange(m)) % size
    rows = jax.lax.stop_gradient(rows).astype(buffer.dtype)
    return buffer.at[index].set(rows), ((pointer + m) % size).astype(jnp.int32)


# ---------------------------------------------------------------------------------------------
# The objective.


@register
@dataclasses.dataclass(frozen=True)
class Energy(Objective):
    """An energy network trained by score matching or contrastive divergence.

    Attributes:
      training: one of ``TRAININGS``.
      sigma: denoising score matching's noise standard deviation.
      dsm_weighting: ``'sigma2'`` (Song & Ermon 2019) or ``'none'`` (Vincent 2011).
      num_projections: sliced score matching's projections per example.
      variance_reduction: SSM-VR (``|s|^2 / 2`` instead of ``(v^T s)^2 / 2``).
      sampler: contrastive divergence's sampler, one of ``samplers.SAMPLERS``.
      step_size: the sampler's step size (Langevin and MALA: ``h`` of
        ``x + (h/2) s + sqrt(h) z``; HMC: the leapfrog step).
      num_steps: sampler steps (HMC: transitions) per training step.
      num_leapfrog: HMC's leapfrog steps per transition.
      noise_scale: Langevin's noise factor (1: Langevin dynamics; < 1: short-run).
      buffer_size: rows of the replay buffer (at least the global batch).
      reinit_prob: probability that a chain restarts from uniform noise (Du & Mordatch: 0.05).
      reg: weight of the squared energies in the CD loss.
      init_range: vectors' uniform noise box ``[-init_range, init_range]^d`` (images: [0, 1]).
      hidden, depth: the vector network's width and number of hidden layers.
    """

    name: ClassVar[str] = "energy"
    description: ClassVar[str] = (
        "Energy-based model: denoising/sliced score matching (Vincent 2011; Song et al. 2019) "
        "or contrastive divergence with a replay buffer (Du & Mordatch 2019)"
    )

    training: str = "denoising_score_matching"
    sigma: float = 0.1
    dsm_weighting: str = "sigma2"
    num_projections: int = 1
    variance_reduction: bool = True
    sampler: str = "langevin"
    step_size: float = 0.01
    num_steps: int = 20
    num_leapfrog: int = 5
    noise_scale: float = 1.0
    buffer_size: int = 10000
    reinit_prob: float = 0.05
    reg: float = 1.0
    init_range: float = 4.0
    hidden: int = 128
    depth: int = 3

    def __post_init__(self):
        check_choice("training", self.training, TRAININGS)
        check_range("sigma", self.sigma, low=0, low_open=True)
        check_choice("dsm_weighting", self.dsm_weighting, losses.DSM_WEIGHTINGS)
        check_int("num_projections", self.num_projections)
        check_choice("variance_reduction", self.variance_reduction, (False, True))
        check_choice("sampler", self.sampler, samplers.SAMPLERS)
        check_range("step_size", self.step_size, low=0, low_open=True)
        check_int("num_steps", self.num_steps)
        check_int("num_leapfrog", self.num_leapfrog)
        check_range("noise_scale", self.noise_scale, low=0)
        check_int("buffer_size", self.buffer_size)
        check_range("reinit_prob", self.reinit_prob, low=0, high=1)
        check_range("reg", self.reg, low=0)
        check_range("init_range", self.init_range, low=0, low_open=True)
        check_int("hidden", self.hidden)
        check_int("depth", self.depth)
        for key in ("sigma", "step_size", "noise_scale", "reinit_prob", "reg", "init_range"):
            if not math.isfinite(float(getattr(self, key))):
                raise ValueError(
                    f"objective.{key}={getattr(self, key)!r} is invalid; valid: finite"
                )

    # --- checks and model -------------------------------------------------------------------

    def buffer_bytes(self, run: Run) -> int:
        """Bytes of the float32 replay buffer."""
        return int(self.buffer_size) * int(np.prod(run.facts.image_shape)) * 4

    def check(self, run: Run) -> None:
        shape = tuple(run.facts.image_shape)
        if len(shape) not in (1, 3):
            raise ValueError(
                f"objective 'energy' trains on images [H, W, C] or vectors [D]; "
                f"{run.facts.name} has examples of shape {shape}"
            )
        if is_image(run):
            if run.model is None:
                raise ValueError("objective 'energy' on images needs config.model (its encoder)")
            if run.model.get("patches") is not None:
                raise ValueError(
                    "objective 'energy' scores whole images; remove config.model.patches"
                )
        if self.training == "contrastive_divergence":
            size = self.buffer_bytes(run)
            if size > MAX_BUFFER_BYTES:
                raise ValueError(
                    f"objective.buffer_size={self.buffer_size} needs {size} bytes for "
                    f"{run.facts.name}; valid: at most {MAX_BUFFER_BYTES} bytes"
                )
            if int(self.buffer_size) < int(run.batch_size):
                raise ValueError(
                    f"objective.buffer_size={self.buffer_size} is smaller than the global "
                    f"batch_size={run.batch_size}; valid: buffer_size >= batch_size (each "
                    "step writes one global batch of negatives)"
                )

    def build_model(self, run: Run, axis_name):
        if is_image(run):
            from ssljax.models.network import build_encoder_from_config

            return EnergyNetwork(encoder=build_encoder_from_config(run, axis_name))
        return EnergyNetwork(encoder=EnergyMLP(hidden=int(self.hidden), depth=int(self.depth)))

    def make_views(self, rng, images, run):
        """Images ``uint8 [B, H, W, C]`` as float32 in [0, 1]; vectors as float32."""
        del rng
        if is_image(run):
            from ssljax.views.augment import to_float

            chex.assert_rank(images, 4)
            return (to_float(images),)
        return (jnp.asarray(images, jnp.float32),)

    # --- state -------------------------------------------------------------------------------

    def noise_range(self, run: Run) -> tuple[float, float]:
        """The uniform box of initial and restarted chains."""
        return (0.0, 1.0) if is_image(run) else (-float(self.init_range), float(self.init_range))

    def init_state(self, params, model_state, run: Run):
        """Contrastive divergence: a buffer of ``buffer_size`` uniform-noise examples."""
        del params, model_state
        if self.training != "contrastive_divergence":
            return None
        low, high = self.noise_range(run)
        shape = (int(self.buffer_size),) + tuple(run.facts.image_shape)
        buffer = jax.random.uniform(run.seed_key(_BUFFER_TAG), shape, jnp.float32, low, high)
        return EnergyState(buffer=buffer, pointer=jnp.zeros((), jnp.int32))

    def update_state(self, state, outputs: EnergyOutputs, ctx: UpdateContext):
        """Writes the negatives of the whole global batch into the buffer."""
        if self.training != "contrastive_divergence":
            return state
        negatives, _ = gather_batch(outputs.negatives, ctx.axis_name)
        buffer, pointer = replace_rows(state.buffer, state.pointer, negatives)
        return state.replace(buffer=buffer, pointer=pointer)

    # --- losses ------------------------------------------------------------------------------

    def _shared_rng(self, ctx: LossContext):
        if ctx.shared_rng is None:
            raise ValueError(
                "objective 'energy' needs LossContext.shared_rng (a key equal on every "
                "device); the step passes shared_step_rng"
            )
        return ctx.shared_rng

    def negatives(self, params, model_state, x, ctx: LossContext) -> tuple[jax.Array, Any]:
        """Contrastive divergence's negatives for the data ``x [n, ...]`` of this device and
        the sampler's acceptance rate: chains from the buffer (or uniform noise with
        probability ``reinit_prob``), ``num_steps`` of ``sampler`` on the energy with
        ``stop_gradient`` parameters; returned under ``stop_gradient``."""
        n, shape = x.shape[0], tuple(x.shape[1:])
        keys = example_keys(self._shared_rng(ctx), n, ctx.axis_name, 4)
        pick = jax.vmap(lambda k: jax.random.randint(k, (), 0, self.buffer_size))(keys[0])
        restart = jax.vmap(lambda k: jax.random.uniform(k, ()))(keys[1]) < self.reinit_prob
        low, high = self.noise_range(ctx.run)
        noise = jax.vmap(lambda k: jax.random.uniform(k, shape, jnp.float32, low, high))(keys[2])
        mask = restart.reshape((n,) + (1,) * len(shape))
        x0 = jnp.where(mask, noise, ctx.state.buffer[pick])
        frozen = jax.lax.stop_gradient(params)
        x_neg, acceptance = samplers.sample(
            self.sampler,
            keys[3],
            x0,
            energy_fn=energy_fn(frozen, model_state, model=ctx.model),
            step_size=float(self.step_size),
            num_steps=int(self.num_steps),
            num_leapfrog=int(self.num_leapfrog),
            noise_scale=float(self.noise_scale),
        )
        if is_image(ctx.run):
            x_neg = jnp.clip(x_neg, 0.0, 1.0)
        return jax.lax.stop_gradient(x_neg), acceptance

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        (x,) = views
        if self.training == "denoising_score_matching":
            loss, metrics, features = self._dsm(params, model_state, x, ctx)
            negatives = None
        elif self.training == "sliced_score_matching":
            loss, metrics, features = self._ssm(params, model_state, x, ctx)
            negatives = None
        else:
            loss, metrics, features, negatives = self._cd(params, model_state, x, ctx)
        outputs = EnergyOutputs(embedding=features, negatives=negatives)
        return loss, LossAux(dict(metrics, loss=loss), model_state, outputs)

    def _dsm(self, params, model_state, x, ctx):
        keys = example_keys(self._shared_rng(ctx), x.shape[0], ctx.axis_name, 1)[0]
        noisy = x + self.sigma * per_example_normal(keys, tuple(x.shape[1:]))

        def energy_and_features(z):
            out = apply_network(params, model_state, z, model=ctx.model)
            return out["energy"], out["features"]

        energy, pullback, features = jax.vjp(energy_and_features, noisy, has_aux=True)
        (grad,) = pullback(jnp.ones_like(energy))
        loss = losses.denoising_score_matching_loss(
            -grad, noisy, x, self.sigma, weighting=self.dsm_weighting
        )
        metrics = {"energy": jnp.mean(energy), "score_norm": _mean_norm(grad)}
        return loss, metrics, features

    def _ssm(self, params, model_state, x, ctx):
        keys = example_keys(self._shared_rng(ctx), x.shape[0], ctx.axis_name, 1)[0]
        shape = (int(self.num_projections),) + tuple(x.shape[1:])
        projections = jnp.swapaxes(per_example_normal(keys, shape), 0, 1)  # [M, n, ...]
        loss = losses.sliced_score_matching_loss(
            score_fn(params, model_state, model=ctx.model),
            x,
            projections,
            variance_reduction=bool(self.variance_reduction),
        )
        out = apply_network(jax.lax.stop_gradient(params), model_state, x, model=ctx.model)
        return loss, {"energy": jnp.mean(out["energy"])}, out["features"]

    def _cd(self, params, model_state, x, ctx):
        x_neg, acceptance = self.negatives(params, model_state, x, ctx)
        n = x.shape[0]
        out = apply_network(params, model_state, jnp.concatenate([x, x_neg]), model=ctx.model)
        e_pos, e_neg = out["energy"][:n], out["energy"][n:]
        loss = losses.contrastive_divergence_loss(e_pos, e_neg, reg=float(self.reg))
        metrics = {
            "energy_pos": jnp.mean(e_pos),
            "energy_neg": jnp.mean(e_neg),
            "acceptance_rate": acceptance,
        }
        features = jax.lax.stop_gradient(out["features"][:n])
        return loss, metrics, features, x_neg


def _mean_norm(x: jax.Array) -> jax.Array:
    return jnp.mean(jnp.sqrt(jnp.sum(x.reshape(x.shape[0], -1) ** 2, axis=1)))
