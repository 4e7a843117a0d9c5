"""Redundancy-reduction objectives: Barlow Twins and VICReg.

Both follow the authors' PyTorch reference code term by term (facebookresearch/barlowtwins
``main.py`` and facebookresearch/vicreg ``main_vicreg.py``). With ``axis_name=None`` they are
notebook functions of the whole batch; inside ``jax.shard_map``/``jax.pmap`` with an axis name
the batch statistics are those of the global batch, so the mean over devices of the per-device
loss equals the loss of the concatenated global batch (device batches must be equal in size).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from ssljax.objectives.contrastive import gather_batch


def _off_diagonal(m: chex.Array) -> chex.Array:
    """``m`` with its diagonal set to zero (a square matrix)."""
    return jnp.where(jnp.eye(m.shape[0], dtype=bool), 0.0, m)


def _batch_standardize(z: chex.Array, eps: float, axis_name: str | None) -> chex.Array:
    """``BatchNorm1d(affine=False)`` in training mode, synchronised over ``axis_name``.

    Per dimension: ``(z - mean) / sqrt(var + eps)`` with the biased (divide by ``N``) variance
    over the (global) batch, as ``torch.nn.SyncBatchNorm`` normalises.
    """
    mean = jnp.mean(z, axis=0)
    if axis_name is not None:
        mean = jax.lax.pmean(mean, axis_name)
    centred = z - mean
    var = jnp.mean(jnp.square(centred), axis=0)
    if axis_name is not None:
        var = jax.lax.pmean(var, axis_name)
    return centred * jax.lax.rsqrt(var + eps)


def barlow_twins_loss(
    z1: chex.Array,
    z2: chex.Array,
    *,
    lambd: float = 0.0051,
    eps: float = 1e-5,
    axis_name: str | None = None,
) -> chex.Array:
    """Barlow Twins loss (Zbontar et al. 2021), as in facebookresearch/barlowtwins ``main.py``.

    Conventions of the reference code, kept exactly:

    * each view is standardised per dimension over the batch like ``BatchNorm1d(affine=False)``
      in training mode: biased variance (divide by ``N``), ``eps`` inside the square root;
      the reference wraps the model in ``SyncBatchNorm``, so mean and variance are those of
      the *global* batch (``pmean`` over ``axis_name``);
    * the cross-correlation is ``c = z1n.T @ z2n / N`` with ``N`` the global batch size (the
      reference divides by ``args.batch_size`` and ``all_reduce``-sums ``c`` over GPUs; here
      ``pmean`` of the per-device ``z1n.T @ z2n / n``, identical for equal device batches);
    * ``loss = sum_i (c_ii - 1)^2 + lambd * sum_{i != j} c_ij^2`` (not divided by ``D``).

    The value is the same on every device (the global loss). Because of ``eps``, ``c_ii`` of
    identical views is ``var / (var + eps)``, slightly below 1.

    Args:
      z1, z2: ``[n, D]`` projector outputs of the two views (local batch).
      lambd: weight of the off-diagonal (redundancy-reduction) term; the paper uses 5e-3 and
        the reference code's default is 0.0051.
      eps: BatchNorm epsilon (PyTorch default 1e-5).
      axis_name: mapped axis whose devices together hold the global batch, or None.

    Returns:
      Scalar float32 loss.
    """
    chex.assert_rank([z1, z2], 2)
    chex.assert_equal_shape([z1, z2])
    n = z1.shape[0]
    z1n = _batch_standardize(z1.astype(jnp.float32), eps, axis_name)
    z2n = _batch_standardize(z2.astype(jnp.float32), eps, axis_name)
    c = z1n.T @ z2n / n
    if axis_name is not None:
        c = jax.lax.pmean(c, axis_name)
    on_diag = jnp.sum(jnp.square(jnp.diagonal(c) - 1.0))
    off_diag = jnp.sum(jnp.square(_off_diagonal(c)))
    return on_diag + lambd * off_diag


def vicreg_loss(
    z1: chex.Array,
    z2: chex.Array,
    *,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    eps: float = 1e-4,
    axis_name: str | None = None,
) -> tuple[chex.Array, dict[str, chex.Array]]:
    """VICReg loss (Bardes et al. 2022), as in facebookresearch/vicreg ``main_vicreg.py``.

    With ``x = z1``, ``y = z2`` (``D`` dimensions, global batch ``N``):

    * invariance ``= mean((x - y)^2)`` over all elements of the *local* batch (the reference
      computes it before gathering); the device mean equals the global mean;
    * ``x``, ``y`` are then all-gathered over ``axis_name`` and centred per dimension;
    * variance ``= mean_j relu(1 - std_x_j) / 2 + mean_j relu(1 - std_y_j) / 2`` with
      ``std = sqrt(var_unbiased + eps)`` (divide by ``N - 1``);
    * covariance ``= sum_{i != j} cov_x_ij^2 / D + sum_{i != j} cov_y_ij^2 / D`` with
      ``cov_x = x.T @ x / (N - 1)`` of the centred ``x``;
    * ``loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance``.

    Args:
      z1, z2: ``[n, D]`` expander outputs of the two views (local batch).
      sim_coeff, std_coeff, cov_coeff: term weights (reference defaults 25, 25, 1).
      eps: added to the variance inside the square root (reference: 1e-4).
      axis_name: mapped axis whose devices together hold the global batch, or None.

    Returns:
      ``(loss, metrics)``: the scalar loss and the unweighted terms ``{'invariance',
      'variance', 'covariance'}``. Averaging loss and terms over devices gives the values of
      the global batch.
    """
    chex.assert_rank([z1, z2], 2)
    chex.assert_equal_shape([z1, z2])
    x = z1.astype(jnp.float32)
    y = z2.astype(jnp.float32)
    dim = x.shape[1]
    invariance = jnp.mean(jnp.square(x - y))

    x, _ = gather_batch(x, axis_name)
    y, _ = gather_batch(y, axis_name)
    big_n = x.shape[0]
    x = x - jnp.mean(x, axis=0)
    y = y - jnp.mean(y, axis=0)

    def variance_term(v):
        std = jnp.sqrt(jnp.sum(jnp.square(v), axis=0) / (big_n - 1) + eps)
        return jnp.mean(jax.nn.relu(1.0 - std))

    def covariance_term(v):
        cov = v.T @ v / (big_n - 1)
        return jnp.sum(jnp.square(_off_diagonal(cov))) / dim

    variance = variance_term(x) / 2 + variance_term(y) / 2
    covariance = covariance_term(x) + covariance_term(y)
    loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
    return loss, {"invariance": invariance, "variance": variance, "covariance": covariance}
