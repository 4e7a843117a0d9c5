"""Bootstrap (non-contrastive, target-network) objectives: BYOL and SimSiam, plus the EMA helpers.

The losses are one-directional: ``loss(p1, z2)`` regresses the online prediction of one view
onto the (stop-gradient) target projection of the other. The caller symmetrises, e.g.
``byol_loss(p1, z2) + byol_loss(p2, z1)`` as BYOL does, or the mean of both directions as
SimSiam does. Both losses only average over the local batch, so with equal per-device batches
the mean of the per-device values over devices is the loss of the global batch; they need no
axis name.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from ssljax.objectives.contrastive import l2_normalize


def _normalized_pair(p: chex.Array, z: chex.Array) -> tuple[chex.Array, chex.Array]:
    chex.assert_rank([p, z], 2)
    chex.assert_equal_shape([p, z])
    p = l2_normalize(p.astype(jnp.float32))
    z = l2_normalize(jax.lax.stop_gradient(z).astype(jnp.float32))
    return p, z


def byol_loss(online_prediction: chex.Array, target_projection: chex.Array) -> chex.Array:
    """BYOL regression loss (Grill et al. 2020, eq. 2), one direction.

    ``l_i = || p_i / ||p_i|| - z_i / ||z_i|| ||^2 = 2 - 2 cos(p_i, z_i)``, averaged over the
    batch. Written as the squared distance of the normalised vectors, as deepmind-research
    ``byol/utils/helpers.py: regression_loss`` does, so it is exactly non-negative; it lies in
    ``[0, 4]``. ``target_projection`` is wrapped in ``stop_gradient``.

    Args:
      online_prediction: ``[n, d]`` output of the online predictor for one view.
      target_projection: ``[n, d]`` output of the target projector for the other view.

    Returns:
      Scalar float32 loss.
    """
    p, z = _normalized_pair(online_prediction, target_projection)
    return jnp.mean(jnp.sum(jnp.square(p - z), axis=-1))


def simsiam_loss(p: chex.Array, z: chex.Array) -> chex.Array:
    """SimSiam negative cosine similarity ``D(p, z)`` (Chen & He 2021, Algorithm 1), one direction.

    ``D(p, z) = -mean_i cos(p_i, stop_gradient(z_i))``; it lies in ``[-1, 1]`` and is ``-1``
    when every prediction points along its target. SimSiam's symmetric loss is
    ``D(p1, z2) / 2 + D(p2, z1) / 2``.

    Args:
      p: ``[n, d]`` predictor output for one view.
      z: ``[n, d]`` projector output for the other view (gradient stopped here).

    Returns:
      Scalar float32 loss.
    """
    p, z = _normalized_pair(p, z)
    return -jnp.mean(jnp.sum(p * z, axis=-1))


def cosine_ema_momentum(step: chex.Numeric, total_steps: int, base_momentum: float) -> chex.Array:
    """BYOL's target-network momentum: cosine increase from ``base_momentum`` to 1.

    ``tau(k) = 1 - (1 - tau_base) * (cos(pi * k / K) + 1) / 2``. As in deepmind-research
    ``byol/utils/schedules.py`` (``target_ema``/``cosine_decay``), ``step`` is clipped to
    ``[0, total_steps]``, so the momentum stays 1 after the last step. ``step`` may be a traced
    integer.
    """
    step = jnp.clip(jnp.asarray(step, jnp.float32), 0.0, float(total_steps))
    decay = (jnp.cos(jnp.pi * step / total_steps) + 1.0) / 2.0
    return 1.0 - (1.0 - base_momentum) * decay


def ema_update(target, online, momentum: chex.Numeric):
    """Exponential moving average of parameter trees: ``t <- m * t + (1 - m) * o``.

    ``target`` and ``online`` must have the same tree structure; each result leaf keeps the
    dtype of its target leaf. ``momentum`` may be traced (e.g. from ``cosine_ema_momentum``).
    """

    def blend(t, o):
        t = jnp.asarray(t)
        return (momentum * t + (1.0 - momentum) * o).astype(t.dtype)

    return jax.tree.map(blend, target, online)
