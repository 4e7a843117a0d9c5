"""Rotating a VAE's latent space: the same likelihood, other disentanglement scores.

Locatello et al. 2019 (Theorem 1) show that for a factorised prior ``p(z)`` and ``d > 1``
there are infinitely many bijections ``f`` with ``f(z)`` distributed as ``z`` whose every
output depends on every input: a generative model whose latents are the factors and the model
that reads ``f(z)`` instead explain the data equally well, while one is disentangled and the
other completely entangled. Without supervision or inductive biases nothing in the data picks
between them. For the isotropic Gaussian prior ``N(0, I)`` of the VAE (Kingma & Welling 2014)
every orthogonal ``R`` is such a map, and a trained VAE can be rotated in place:

* the encoder's mean head outputs ``R mu(x)`` (kernel ``K_mu R^T``, bias ``R b_mu``) and the
  decoder's first layer reads ``R^T z'`` (kernel ``R K_1``): :func:`rotate_vae_params`;
* the posterior becomes ``q'(z' | x) = N(R mu, R diag(sigma^2) R^T)``, a full-covariance
  Gaussian (:class:`GaussianVAE` carries ``R`` and samples ``z' = R mu + R diag(sigma) eps``).

What is invariant, exactly (in real arithmetic):

(a) **The marginal likelihood** of the generative model, ``p'(x) = int p(x | g(R^T z')) N(z';
    0, I) dz' = p(x)``: substitute ``z' = R z``; ``N(R z; 0, I) = N(z; 0, I)`` and ``|det R| =
    1``. This holds for any encoder, and for any proposal the importance-sampling estimate
    ``log mean_k p(x | z_k) p(z_k) / q(z_k | x)`` with ``z'_k = R z_k`` (common random
    numbers) gives the same number term by term.
(b) **The ELBO with the rotated posterior** ``q' = N(R mu, R Sigma R^T)``:
    ``E_q'[log p'(x | z')] = E_q[log p(x | z)]`` (``z' = R z`` has law ``q'`` when ``z`` has
    law ``q``, and the rotated decoder undoes ``R``), and ``KL(q' || N(0, I)) = KL(q || N(0,
    I))`` (KL is invariant under a bijection applied to both arguments and ``N(0, I)`` is
    rotation invariant; in closed form ``1/2 (tr Sigma + |mu|^2 - d - log det Sigma)`` sees
    ``Sigma`` only through its trace and determinant).

What is not: ``q'`` is not diagonal unless ``R`` is a signed permutation (or the variances
it mixes are equal), so a diagonal-Gaussian encoder cannot output it. The ELBO over the
diagonal family is therefore not rotation invariant: with the moment-matched diagonal
posterior ``N(R mu, diag(R Sigma R^T))`` it changes (reported as ``elbo_diagonal``; the
mean-field posterior's preference for some axes is the mechanism Rolinek et al. 2019
describe). Theorem 1 is about the marginal likelihood, which (a) shows unchanged.

(c) **Disentanglement metrics change**: they are functions of the codes ``R mu(x)`` and the
    ground-truth factors, not of the likelihood. A 90 degree rotation in a plane is a signed
    permutation, to which every metric of ``ssljax.evaluation.disentanglement`` is
    (essentially) invariant, so a curve over the angle returns to its start at 90 degrees.

Numerically, latent-space quantities (samples, KL, densities) are computed in float64 with
general full-covariance formulas (Cholesky factor of ``R Sigma R^T``) for the rotated model
and diagonal ones for the trained model, so before/after agreement is a check by an
independent formula; the networks run in float32, so before and after agree to float32
rounding of the network, not bit for bit.

Functions:

* :func:`random_rotation` (Haar on O(d), QR with sign correction, Mezzadri 2007),
  :func:`plane_rotation` (a Givens rotation by ``theta`` in one coordinate plane);
* :func:`rotate_vae_params`, :class:`GaussianVAE` (``rotated(R)``), :func:`load_vae`;
* :func:`posterior_estimates`, :func:`elbo_under_rotation`,
  :func:`log_likelihood_under_rotation`;
* :func:`metrics_under_rotations` (any representation function; codes cached across
  rotations), :class:`FactorsAsObservations` (the ground-truth factors as a perfectly
  disentangled reference code);
* :func:`rotation_study` (one table: rotations x {ELBO, log-likelihood, metrics}),
  :func:`format_rotation_table`, and the CPU-sized :func:`cpu_rotation_study` that trains a
  small VAE on dSprites with ``ssljax.experiments.disentanglement_study``'s training run.

  python -m ssljax.identifiability.rotation --workdir runs/rotation_vae_s200 --steps 200 \\
      --angles 0,30,45,60,90 --n_rotations 2

(beta = 1 VAE, 200 steps of batch 64: about 3 min of training and 7 min for the study on 2
CPU cores shared with other jobs, load average 5-9.) Measured there: over 64 images and 16
common posterior samples the ELBO (-680.10 nats) and ``log p(x)`` (-645.12) moved by at most
6e-5 nats per image under every rotation, the moment-matched diagonal posterior's ELBO by up
to 5.4 nats; the standardised dSprites factors scored MIG 0.83 and DCI disentanglement 0.98,
after a Haar rotation 0.04-0.06 and 0.06-0.07, after 45 degrees in the (x, y) plane 0.53
and 0.62, and after 90 degrees their starting values again; explicitness stayed at 0.891
(an L2-penalised logistic regression on standardised codes: rotation invariant for codes
that stay white under rotation, as these do).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import math
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

# Every sampling-based disentanglement metric of the suite (the downstream tasks measure
# informativeness and are slow; pass them in ``metrics`` to add them).
DEFAULT_METRICS = (
    "beta_vae",
    "factor_vae",
    "mig",
    "dci",
    "sap",
    "modularity_explicitness",
    "irs",
)
DEFAULT_ANGLES = (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0)
# Table columns: (row key, header). Metric keys are checkpoint_eval.SUMMARY_KEYS' names.
TABLE_COLUMNS = (
    ("representation", "code"),
    ("rotation", "rotation"),
    ("det", "det"),
    ("elbo", "ELBO"),
    ("elbo_change", "ΔELBO"),
    ("log_likelihood", "log p(x)"),
    ("log_likelihood_change", "Δlog p(x)"),
    ("elbo_diagonal", "ELBO, diag. q"),
    ("beta_vae", "BetaVAE"),
    ("factor_vae", "FactorVAE"),
    ("mig", "MIG"),
    ("dci_disentanglement", "DCI D"),
    ("dci_completeness", "DCI C"),
    ("dci_informativeness", "DCI I"),
    ("sap", "SAP"),
    ("modularity", "modularity"),
    ("explicitness", "explicitness"),
    ("irs", "IRS"),
)
CHANGE_COLUMNS = ("elbo_change", "log_likelihood_change")
LOG_2PI = math.log(2.0 * math.pi)
F32_EPS = 2.0**-23
# Orthogonality accepted in a rotation: max |R^T R - I| <= ORTHOGONALITY_ULPS * d * eps_f32
# (a float32 QR gives a few d * eps).
ORTHOGONALITY_ULPS = 64.0


# ---------------------------------------------------------------------------------------
# Rotations


def _check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or int(dim) < 1:
        raise ValueError(f"dim={dim!r} is invalid; valid: an int >= 1")
    return int(dim)


def random_rotation(key, dim: int, *, proper: bool = False):
    """A Haar-distributed orthogonal ``[dim, dim]`` matrix (float32).

    QR of a standard normal matrix ``A = Q R``, with the columns of ``Q`` multiplied by the
    signs of ``diag(R)`` so that the factorisation is unique and ``Q`` is Haar on O(d)
    (Mezzadri 2007; without the correction the LAPACK convention biases ``Q``'s diagonal).
    ``proper=True`` flips the first column when ``det = -1``: Haar on SO(d).

    Args:
      key: a JAX PRNG key.
      dim: the latent size, an int >= 1.
      proper: rotations only (det +1).
    """
    return _haar_fn(_check_dim(dim), bool(proper))(key)


@functools.lru_cache(maxsize=None)
def _haar_fn(dim: int, proper: bool):
    """The jitted draw of :func:`random_rotation` for one size (compiled once)."""
    import jax
    import jax.numpy as jnp

    def draw(key):
        a = jax.random.normal(key, (dim, dim), jnp.float32)
        q, r = jnp.linalg.qr(a)
        signs = jnp.sign(jnp.diagonal(r))
        q = q * jnp.where(signs == 0, 1.0, signs)[None, :]
        if proper:
            q = q.at[:, 0].multiply(jnp.where(jnp.linalg.det(q) < 0, -1.0, 1.0))
        return q

    return jax.jit(draw)


def plane_rotation(dim: int, theta: float, plane: Sequence[int] = (0, 1)) -> np.ndarray:
    """The Givens rotation by ``theta`` (radians) in the coordinate plane ``(i, j)``.

    ``R[i, i] = R[j, j] = cos theta``, ``R[j, i] = sin theta = -R[i, j]``, the identity
    elsewhere: ``R e_i = cos theta e_i + sin theta e_j``. float64 ``[dim, dim]``; at
    ``theta = pi / 2`` a signed permutation.
    """
    dim = _check_dim(dim)
    plane = tuple(int(p) for p in plane)
    if len(plane) != 2 or plane[0] == plane[1] or not all(0 <= p < dim for p in plane):
        raise ValueError(f"plane={plane} is invalid; valid: two different axes in 0..{dim - 1}")
    i, j = plane
    c, s = math.cos(float(theta)), math.sin(float(theta))
    r = np.eye(dim)
    r[i, i], r[j, j], r[j, i], r[i, j] = c, c, s, -s
    return r


def check_rotation(rotation, latent_dim: Optional[int] = None) -> np.ndarray:
    """``rotation`` as float64 after checking it is a square orthogonal matrix of the latent
    size (one-line ValueErrors naming the sizes or the deviation)."""
    r = np.asarray(rotation, np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"rotation must be a square [d, d] matrix, got shape {r.shape}")
    if latent_dim is not None and r.shape[0] != int(latent_dim):
        raise ValueError(
            f"rotation is {r.shape[0]}x{r.shape[1]} but the latent size is {int(latent_dim)}; "
            f"valid: a {int(latent_dim)}x{int(latent_dim)} orthogonal matrix"
        )
    if not np.all(np.isfinite(r)):
        raise ValueError("rotation contains non-finite values")
    deviation = float(np.max(np.abs(r.T @ r - np.eye(r.shape[0]))))
    allowed = ORTHOGONALITY_ULPS * r.shape[0] * F32_EPS
    if deviation > allowed:
        raise ValueError(
            f"rotation is not orthogonal: max |R^T R - I| = {deviation:.2e} > {allowed:.2e}"
        )
    return r


def rotate_codes(codes, rotation) -> np.ndarray:
    """``z' = R z`` for codes ``[n, d]`` (rows): ``codes @ R^T`` in float64."""
    codes = np.asarray(codes, np.float64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be [num_points, num_codes], got shape {codes.shape}")
    r = check_rotation(rotation, codes.shape[1])
    return codes @ r.T


def rotated_representation(representation_fn: Callable, rotation) -> Callable:
    """The representation ``x -> R representation_fn(x)``."""
    r = np.asarray(rotation, np.float64)
    return lambda x: rotate_codes(representation_fn(x), r)


# ---------------------------------------------------------------------------------------
# Rotating a VAE


def _get(tree: Mapping, path: Sequence[str], what: str):
    node = tree
    for i, name in enumerate(path):
        if not isinstance(node, Mapping) or name not in node:
            have = sorted(node) if isinstance(node, Mapping) else type(node).__name__
            raise ValueError(
                f"params have no {'/'.join(path[: i + 1])} ({what}); found {have} there"
            )
        node = node[name]
    return node


def _replace(tree: Mapping, path: Sequence[str], value) -> dict:
    out = dict(tree)
    out[path[0]] = value if len(path) == 1 else _replace(tree[path[0]], path[1:], value)
    return out


def rotate_vae_params(
    params: Mapping,
    rotation,
    *,
    mean_head: Sequence[str] = ("encoder", "mean_head"),
    decoder_input: Sequence[str] = ("decoder", "fc1"),
) -> dict:
    """The parameters of the rotated VAE: encoder mean ``R mu(x)``, decoder ``g(R^T z')``.

    For ``VAENetwork`` (``ssljax.models.vae``; Flax ``Dense``: ``y = x K + b`` on row vectors)
    the mean head becomes ``K_mu R^T``, ``b_mu R^T`` and the decoder's first layer ``R K_1``
    (its bias unchanged), so ``decode'(R z) = decode(z)``. The log-variance head is unchanged:
    its output stays the diagonal of ``Sigma`` in the *unrotated* frame, and the rotated
    posterior's covariance is ``R diag(exp(log_var)) R^T``, which no diagonal head can
    output (:class:`GaussianVAE` carries ``R`` for it). Other parameters (e.g. FactorVAE's
    discriminator) are returned as they are.

    Args:
      params: the network's parameters (``state.params``).
      rotation: orthogonal ``[d, d]``, ``d`` the latent size.
      mean_head, decoder_input: paths to the Dense layers to change.
    """
    head = _get(params, mean_head, "the encoder's mean head")
    first = _get(params, decoder_input, "the decoder's first layer")
    latent_dim = int(np.shape(head["kernel"])[-1])
    if int(np.shape(first["kernel"])[0]) != latent_dim:
        raise ValueError(
            f"the decoder's first layer reads {np.shape(first['kernel'])[0]} latents but the "
            f"mean head outputs {latent_dim}"
        )
    r64 = check_rotation(rotation, latent_dim)
    import jax.numpy as jnp

    def rot(x, right):
        x64 = np.asarray(x, np.float64)
        y = x64 @ right if right is not None else r64 @ x64
        return jnp.asarray(y, jnp.asarray(x).dtype)

    new_head = dict(head, kernel=rot(head["kernel"], r64.T), bias=rot(head["bias"], r64.T))
    new_first = dict(first, kernel=rot(first["kernel"], None))
    return _replace(_replace(params, mean_head, new_head), decoder_input, new_first)


_NETWORK_FNS: dict = {}


def _network_fns(model):
    """Jitted ``(variables, x) -> (mean, log_var)`` and ``(variables, z) -> logits``, compiled
    once per model object (kept by identity: a model restored from a stored config holds
    lists and cannot be hashed)."""
    import jax

    if id(model) not in _NETWORK_FNS:
        encode = jax.jit(lambda v, x: model.apply(v, x, train=False, method="encode"))
        decode = jax.jit(lambda v, z: model.apply(v, z, train=False, method="decode"))
        _NETWORK_FNS[id(model)] = (model, encode, decode)  # the model stays alive with its id
    return _NETWORK_FNS[id(model)][1:]


def _chunked(fn: Callable, x: np.ndarray, batch_size: int):
    """``fn`` over ``x`` in chunks of ``batch_size``, the last zero-padded (one compile);
    ``fn`` returns an array or a tuple of arrays."""
    outs = []
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size]
        pad = batch_size - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
        out = fn(chunk)
        out = out if isinstance(out, tuple) else (out,)
        outs.append(tuple(np.asarray(o)[: batch_size - pad] for o in out))
    joined = tuple(np.concatenate(parts) for parts in zip(*outs))
    return joined if len(joined) > 1 else joined[0]


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianVAE:
    """A VAE with prior ``N(0, I)``, posterior ``N(mean, scale scale^T)`` and decoder logits.

    Attributes:
      model: a ``VAENetwork`` (``encode -> (mean, log_var)``, ``decode -> logits``).
      variables: its variables (``{'params': ...}``).
      likelihood: 'bernoulli' or 'gaussian' (``ssljax.objectives.latent``).
      gaussian_std: the Gaussian likelihood's standard deviation.
      rotation: ``R`` of a rotated model (float64) or None. The variables then hold
        :func:`rotate_vae_params`' parameters and the posterior is ``N(mean, R diag(exp(
        log_var)) R^T)``.
      batch_size: images per network call.
    """

    model: Any
    variables: Mapping
    likelihood: str = "bernoulli"
    gaussian_std: float = math.sqrt(0.5)
    rotation: Optional[np.ndarray] = None
    batch_size: int = 256

    @property
    def latent_dim(self) -> int:
        return int(np.shape(self.variables["params"]["encoder"]["mean_head"]["bias"])[-1])

    def posterior(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The network's ``(mean, log_var)`` ``[n, d]`` (float32) of images ``x``."""
        encode, _ = _network_fns(self.model)
        x = np.asarray(x, np.float32)
        return _chunked(lambda c: encode(self.variables, c), x, self.batch_size)

    def posterior_scale(self, x, *, diagonal: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(mean [n, d], scale [n, d, d])`` in float64 with covariance ``scale scale^T``.

        ``scale = R diag(exp(log_var / 2))`` (``R = I`` for an unrotated model).
        ``diagonal=True``: the moment-matched diagonal posterior ``diag(sqrt(diag(scale
        scale^T)))`` instead, what a diagonal-Gaussian encoder could output.
        """
        mean, log_var = self.posterior(x)
        mean, std = np.asarray(mean, np.float64), np.exp(0.5 * np.asarray(log_var, np.float64))
        if self.rotation is None:
            return mean, std[:, :, None] * np.eye(std.shape[1])
        scale = self.rotation[None] * std[:, None, :]  # R diag(std)
        if diagonal:
            return mean, np.sqrt(np.sum(scale**2, axis=2))[:, :, None] * np.eye(std.shape[1])
        return mean, scale

    def decode(self, z) -> np.ndarray:
        """Decoder outputs (logits) of latents ``[n, d]``."""
        _, decode = _network_fns(self.model)
        z = np.asarray(z, np.float32)
        return _chunked(lambda c: decode(self.variables, c), z, self.batch_size)

    def log_likelihood(self, x, decoded) -> np.ndarray:
        """``log p(x | z)`` per example (float64) through ``ssljax.objectives.latent``."""
        from ssljax.objectives.latent import reconstruction_log_likelihood

        return np.asarray(
            reconstruction_log_likelihood(
                np.asarray(x, np.float32),
                np.asarray(decoded, np.float32),
                likelihood=self.likelihood,
                gaussian_std=self.gaussian_std,
            ),
            np.float64,
        )

    def representation_fn(self, x) -> np.ndarray:
        """The posterior means (the code the metrics score), float64."""
        return np.asarray(self.posterior(x)[0], np.float64)

    def rotated(self, rotation) -> "GaussianVAE":
        """The model rotated by ``R``: codes ``R mu``, posterior covariance ``R Sigma R^T``,
        decoder ``g(R^T z')``; rotations compose (``rotated(A).rotated(B)`` is ``BA``)."""
        r = check_rotation(rotation, self.latent_dim)
        params = rotate_vae_params(self.variables["params"], r)
        total = r if self.rotation is None else r @ self.rotation
        return dataclasses.replace(
            self, variables={**self.variables, "params": params}, rotation=total
        )


def load_vae(workdir: str, step: Optional[int] = None, *, batch_size: int = 256) -> GaussianVAE:
    """The :class:`GaussianVAE` of a pretraining workdir's checkpoint (and its stored config)."""
    from ssljax.training.loop import restore_for_eval

    config, setup, state, _ = restore_for_eval(workdir, step)
    model, objective = setup.eval_model, setup.objective
    if not (hasattr(model, "encode") and hasattr(objective, "likelihood")):
        raise ValueError(
            f"the checkpoint in {workdir} is a {config.objective.name!r} model; a rotation "
            "study needs a Gaussian VAE (objectives vae, beta_vae, factor_vae, beta_tcvae)"
        )
    return GaussianVAE(
        model=model,
        variables={"params": state.params, **state.model_state},
        likelihood=objective.likelihood,
        gaussian_std=float(objective.gaussian_std),
        batch_size=batch_size,
    )


# ---------------------------------------------------------------------------------------
# ELBO and marginal likelihood


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _gaussian_terms(mean, scale, z, *, diagonal: bool):
    """``(KL(N(mean, scale scale^T) || N(0, I)) [n], log q(z | x) [K, n])`` in float64:
    the diagonal formulas when ``diagonal``, else the general ones through the Cholesky
    factor of ``Sigma = scale scale^T``."""
    d = mean.shape[1]
    diff = z - mean[None]  # [K, n, d]
    if diagonal:
        var = np.diagonal(scale, axis1=1, axis2=2) ** 2
        kl = 0.5 * np.sum(mean**2 + var - np.log(var) - 1.0, axis=1)
        log_q = -0.5 * np.sum(LOG_2PI + np.log(var)[None] + diff**2 / var[None], axis=2)
        return kl, log_q
    cov = scale @ np.swapaxes(scale, 1, 2)
    chol = np.linalg.cholesky(cov)
    logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    kl = 0.5 * (np.trace(cov, axis1=1, axis2=2) + np.sum(mean**2, axis=1) - d - logdet)
    white = np.linalg.solve(chol, np.transpose(diff, (1, 2, 0)))  # [n, d, K]
    log_q = -0.5 * (d * LOG_2PI + logdet[:, None] + np.sum(white**2, axis=1))  # [n, K]
    return kl, log_q.T


def posterior_estimates(
    vae: GaussianVAE, images, eps, *, diagonal_posterior: bool = False
) -> dict[str, np.ndarray]:
    """Monte-Carlo ELBO and importance-sampled ``log p(x)`` per image, from given noise.

    ``z_k = mean + scale eps_k`` (:meth:`GaussianVAE.posterior_scale`), ``K`` samples per
    image. ELBO ``= mean_k log p(x | z_k) - KL(q || N(0, I))`` (KL in closed form);
    ``log p(x) ~ logsumexp_k [log p(x | z_k) + log N(z_k; 0, I) - log q(z_k | x)] - log K``
    (Burda et al. 2016's bound, which tends to ``log p(x)`` as ``K`` grows). Passing the same
    ``eps`` to two models is the common-random-numbers comparison.

    Args:
      vae: the model.
      images: ``[n, H, W, C]`` in [0, 1].
      eps: standard normal noise ``[K, n, d]``.
      diagonal_posterior: use the moment-matched diagonal posterior (rotated models).

    Returns:
      float64 ``[n]`` arrays ``elbo``, ``reconstruction`` (``-E log p(x|z)``), ``kl``,
      ``log_likelihood``.
    """
    images = np.asarray(images, np.float32)
    eps = np.asarray(eps, np.float64)
    mean, scale = vae.posterior_scale(images, diagonal=diagonal_posterior)
    if eps.ndim != 3 or eps.shape[1:] != mean.shape:
        raise ValueError(
            f"eps must be [num_samples, {mean.shape[0]}, {mean.shape[1]}], got {eps.shape}"
        )
    k, n, d = eps.shape
    z = mean[None] + np.einsum("nij,knj->kni", scale, eps)
    decoded = vae.decode(z.reshape(k * n, d))
    tiled = np.broadcast_to(images[None], (k,) + images.shape).reshape((k * n,) + images.shape[1:])
    log_px_z = vae.log_likelihood(tiled, decoded).reshape(k, n)
    diagonal = vae.rotation is None or diagonal_posterior
    kl, log_q = _gaussian_terms(mean, scale, z, diagonal=diagonal)
    log_pz = -0.5 * np.sum(LOG_2PI + z**2, axis=2)
    log_w = log_px_z + log_pz - log_q
    reconstruction = -np.mean(log_px_z, axis=0)
    return {
        "elbo": -reconstruction - kl,
        "reconstruction": reconstruction,
        "kl": kl,
        "log_likelihood": _logsumexp(log_w, 0) - math.log(k),
    }


def _noise(key, num_samples: int, n: int, d: int) -> np.ndarray:
    import jax

    if int(num_samples) < 1:
        raise ValueError(f"num_samples={num_samples!r} is invalid; valid: an int >= 1")
    return np.asarray(jax.random.normal(key, (int(num_samples), n, d)), np.float64)


def _under_rotation(vae, rotation, images, key, num_samples) -> dict:
    images = np.asarray(images, np.float32)
    rotated = vae.rotated(rotation)  # checks the size before any network runs
    eps = _noise(key, num_samples, len(images), vae.latent_dim)
    before = posterior_estimates(vae, images, eps)
    after = posterior_estimates(rotated, images, eps)
    diag = posterior_estimates(rotated, images, eps, diagonal_posterior=True)
    out = {}
    for name in ("elbo", "reconstruction", "kl", "log_likelihood"):
        out[f"{name}_before"] = before[name]
        out[f"{name}_after"] = after[name]
    out["elbo_diagonal_after"] = diag["elbo"]
    return out


def elbo_under_rotation(vae: GaussianVAE, rotation, images, key, *, num_samples: int = 16):
    """The ELBO of ``vae`` and of ``vae.rotated(rotation)`` on ``images`` with common noise.

    Returns float64 ``[n]`` arrays: ``elbo_before``, ``elbo_after`` (posterior ``N(R mu, R
    Sigma R^T)``: equal to ``elbo_before`` up to float32 rounding of the networks),
    ``elbo_diagonal_after`` (posterior ``N(R mu, diag(R Sigma R^T))``: not equal in general),
    and the ``reconstruction`` and ``kl`` terms before and after.
    """
    out = _under_rotation(vae, rotation, images, key, num_samples)
    return {k: v for k, v in out.items() if not k.startswith("log_likelihood")}


def log_likelihood_under_rotation(
    vae: GaussianVAE, rotation, images, key, *, num_samples: int = 64
) -> dict:
    """Importance-sampled ``log p(x)`` (``num_samples`` samples of the posterior, common
    noise) of ``vae`` and of ``vae.rotated(rotation)``: ``{'log_likelihood_before',
    'log_likelihood_after'}``, float64 ``[n]``."""
    out = _under_rotation(vae, rotation, images, key, num_samples)
    return {k: out[k] for k in ("log_likelihood_before", "log_likelihood_after")}


# ---------------------------------------------------------------------------------------
# Disentanglement metrics under rotations


class FactorsAsObservations:
    """Ground-truth data whose observations are the standardised factor indices.

    ``(f_j - (K_j - 1) / 2) / sqrt((K_j^2 - 1) / 12)``: zero mean and unit variance under
    the uniform factor distribution (a one-valued factor is 0), so that a rotation mixes
    factors of equal scale. With the identity as representation this is a perfectly
    disentangled code; factors are drawn by the wrapped data's ``sample_factors`` (same
    draws for the same ``RandomState``).
    """

    def __init__(self, data):
        self._data = data
        self.factor_sizes = tuple(int(k) for k in data.factor_sizes)
        self.num_factors = len(self.factor_sizes)
        self.factor_names = tuple(
            getattr(data, "factor_names", [f"factor_{i}" for i in range(self.num_factors)])
        )
        sizes = np.asarray(self.factor_sizes, np.float64)
        self._center = (sizes - 1.0) / 2.0
        self._scale = np.where(sizes > 1, np.sqrt(np.maximum(sizes**2 - 1.0, 1.0) / 12.0), 1.0)

    def sample_factors(self, num: int, random_state) -> np.ndarray:
        return self._data.sample_factors(num, random_state)

    def sample_observations_from_factors(self, factors, random_state=None) -> np.ndarray:
        del random_state
        return (np.asarray(factors, np.float64) - self._center) / self._scale

    def sample(self, num: int, random_state):
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors)

    def sample_observations(self, num: int, random_state) -> np.ndarray:
        return self.sample(num, random_state)[1]


class CachedRepresentation:
    """``representation_fn`` remembered by the bytes of each observation batch, so metrics
    run again on rotated codes (same seed, same observations) encode nothing twice."""

    def __init__(self, representation_fn: Callable):
        self._fn = representation_fn
        self._cache: dict = {}
        self.calls = 0

    def __call__(self, x) -> np.ndarray:
        x = np.ascontiguousarray(x)
        key = (x.shape, str(x.dtype), hashlib.blake2b(x.tobytes(), digest_size=16).digest())
        if key not in self._cache:
            self.calls += 1
            self._cache[key] = np.asarray(self._fn(x), np.float64)
        return self._cache[key]


def metrics_under_rotations(
    data,
    representation_fn: Callable,
    rotations: Sequence[tuple[str, Any]],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    overrides: Optional[Mapping[str, Mapping]] = None,
    random_seed: int = 0,
) -> list[dict]:
    """Disentanglement metrics of the codes ``R representation_fn(x)`` for each rotation.

    Every rotation sees the same observations (each metric's ``RandomState(random_seed)``,
    as ``ssljax.evaluation.disentanglement.evaluate_all``); the representation is cached.

    Args:
      data: ground-truth data (``DSprites()``, :class:`FactorsAsObservations`, ...).
      representation_fn: observations ``[n, ...]`` -> codes ``[n, d]``.
      rotations: ``(name, R)`` pairs, ``R`` orthogonal ``[d, d]``.
      metrics: names of ``ssljax.evaluation.disentanglement.METRICS``.
      overrides: ``{metric: {setting: value}}`` (sample counts).
      random_seed: seed of every metric's RandomState.

    Returns:
      One row per rotation: ``rotation``, ``det``, ``metrics`` (every score) and the
      headline scores by ``checkpoint_eval.SUMMARY_KEYS`` name (``mig``, ``dci_disentanglement``,
      ...).
    """
    from ssljax.evaluation.disentanglement import suite
    from ssljax.evaluation.disentanglement.checkpoint_eval import summary_scores

    cached = CachedRepresentation(representation_fn)
    rows = []
    for name, rotation in rotations:
        r = np.asarray(rotation, np.float64)
        results = suite.evaluate_all(
            data,
            rotated_representation(cached, r),
            random_seed=random_seed,
            metrics=list(metrics),
            overrides={m: dict(o) for m, o in (overrides or {}).items() if m in metrics},
        )
        rows.append(
            dict(
                rotation=str(name),
                det=float(np.round(np.linalg.det(r))),
                metrics=results,
                **summary_scores(results),
            )
        )
    return rows


# ---------------------------------------------------------------------------------------
# The study


def study_rotations(
    key, dim: int, *, angles=DEFAULT_ANGLES, plane=(0, 1), n_rotations: int = 3
) -> list[tuple[str, np.ndarray]]:
    """``(name, R)``: plane rotations by ``angles`` (degrees; 0 is the identity), then
    ``n_rotations`` Haar-random orthogonal matrices from ``key``."""
    import jax

    dim = _check_dim(dim)
    if int(n_rotations) < 0:
        raise ValueError(f"n_rotations={n_rotations!r} is invalid; valid: an int >= 0")
    out = []
    for angle in angles:
        angle = float(angle)
        name = "identity" if angle == 0 else f"{angle:g}° in plane {tuple(plane)}"
        out.append((name, plane_rotation(dim, math.radians(angle), plane)))
    for i, k in enumerate(jax.random.split(key, int(n_rotations)) if n_rotations else []):
        out.append((f"Haar #{i + 1}", np.asarray(random_rotation(k, dim), np.float64)))
    return out


def most_informative_latents(vae: GaussianVAE, images, count: int = 2) -> tuple[int, ...]:
    """The ``count`` latents of largest mean KL to ``N(0, I)`` over ``images``."""
    mean, log_var = (np.asarray(a, np.float64) for a in vae.posterior(images))
    kl = 0.5 * np.mean(mean**2 + np.exp(log_var) - log_var - 1.0, axis=0)
    return tuple(int(i) for i in np.sort(np.argsort(-kl)[:count]))


def rotation_study(
    model,
    data,
    key,
    *,
    angles: Sequence[float] = DEFAULT_ANGLES,
    plane: Optional[Sequence[int]] = None,
    n_rotations: int = 3,
    metrics: Sequence[str] = DEFAULT_METRICS,
    overrides: Optional[Mapping[str, Mapping]] = None,
    random_seed: int = 0,
    num_images: int = 64,
    num_samples: int = 16,
    include_factors: bool = True,
    factor_plane: Optional[Sequence[int]] = None,
) -> dict:
    """One VAE under rotations of its latent space: likelihood unchanged, metrics not.

    For every rotation (plane rotations by ``angles`` and ``n_rotations`` Haar ones): the
    Monte-Carlo ELBO and the importance-sampled ``log p(x)`` of ``num_images`` images with
    ``num_samples`` common posterior samples, before and after (:func:`posterior_estimates`),
    the ELBO of the moment-matched diagonal posterior, and the disentanglement metrics of the
    rotated codes ``R mu(x)``. With ``include_factors`` the same rotations are applied to the
    standardised ground-truth factors (:class:`FactorsAsObservations`), a perfectly
    disentangled code whose scores show what rotation does when there is disentanglement to
    lose.

    Args:
      model: a :class:`GaussianVAE` or a workdir holding a VAE checkpoint.
      data: ground-truth data whose observations the model encodes (``DSprites()``).
      key: JAX PRNG key (Haar rotations, posterior noise).
      angles: plane-rotation angles in degrees.
      plane: the two latents rotated (default: the two of largest KL on the images).
      n_rotations: Haar-random rotations.
      metrics, overrides, random_seed: as :func:`metrics_under_rotations`.
      num_images: images of the likelihood estimates (drawn with ``random_seed``).
      num_samples: posterior samples per image.
      include_factors: add the ground-truth factor rows.
      factor_plane: the factors rotated by ``angles`` (default: the last two; dSprites' x
        and y positions).

    Returns:
      ``{'rows': [...], 'plane', 'factor_plane', 'latent_dim', 'settings', 'seconds'}``;
      each row has ``representation`` ('vae' or 'factors'), ``rotation``, ``det``, the
      headline metric scores and, for the VAE, ``elbo``, ``elbo_change`` (mean after -
      before), ``elbo_max_abs_change``, ``log_likelihood``, ``log_likelihood_change``,
      ``log_likelihood_max_abs_change``, ``elbo_diagonal``, ``reconstruction``, ``kl``.
    """
    import jax

    from ssljax.data.dsprites import as_random_state

    t0 = time.perf_counter()
    vae = load_vae(os.fspath(model)) if isinstance(model, (str, os.PathLike)) else model
    if not isinstance(vae, GaussianVAE):
        raise ValueError(
            f"model must be a GaussianVAE or a workdir path, got {type(model).__name__}"
        )
    if int(num_images) < 1:
        raise ValueError(f"num_images={num_images!r} is invalid; valid: an int >= 1")
    images = np.asarray(
        data.sample_observations(int(num_images), as_random_state(random_seed)), np.float32
    )
    d = vae.latent_dim
    if d < 2 and len(angles):
        raise ValueError(f"plane rotations need a latent size >= 2, got {d}; pass angles=()")
    if plane is None:
        plane = most_informative_latents(vae, images) if d > 1 else (0, 1)
    key_rot, key_noise, key_factors = jax.random.split(key, 3)
    rotations = study_rotations(key_rot, d, angles=angles, plane=plane, n_rotations=n_rotations)
    rows = metrics_under_rotations(
        data,
        vae.representation_fn,
        rotations,
        metrics=metrics,
        overrides=overrides,
        random_seed=random_seed,
    )
    eps = _noise(key_noise, num_samples, len(images), d)
    before = posterior_estimates(vae, images, eps)
    for row, (_, r) in zip(rows, rotations):
        rotated = vae.rotated(r)
        after = posterior_estimates(rotated, images, eps)
        diag = posterior_estimates(rotated, images, eps, diagonal_posterior=True)
        row.update(representation="vae")
        for name in ("elbo", "log_likelihood"):
            change = after[name] - before[name]
            row[name] = float(np.mean(after[name]))
            row[f"{name}_change"] = float(np.mean(change))
            row[f"{name}_max_abs_change"] = float(np.max(np.abs(change)))
        row["elbo_diagonal"] = float(np.mean(diag["elbo"]))
        row["reconstruction"] = float(np.mean(after["reconstruction"]))
        row["kl"] = float(np.mean(after["kl"]))
    out_rows = list(rows)
    if include_factors:
        factors = FactorsAsObservations(data)
        f = factors.num_factors
        if factor_plane is None:
            factor_plane = (f - 2, f - 1) if f > 1 else (0, 1)
        factor_rotations = study_rotations(
            key_factors, f, angles=angles, plane=factor_plane, n_rotations=n_rotations
        )
        for row in metrics_under_rotations(
            factors,
            lambda x: x,
            factor_rotations,
            metrics=metrics,
            overrides=overrides,
            random_seed=random_seed,
        ):
            row.update(representation="factors")
            out_rows.append(row)
    return {
        "rows": out_rows,
        "plane": tuple(int(p) for p in plane),
        "factor_plane": tuple(int(p) for p in factor_plane) if include_factors else None,
        "latent_dim": d,
        "settings": dict(
            angles=[float(a) for a in angles],
            n_rotations=int(n_rotations),
            metrics=list(metrics),
            overrides={k: dict(v) for k, v in (overrides or {}).items()},
            random_seed=int(random_seed),
            num_images=int(num_images),
            num_samples=int(num_samples),
        ),
        "seconds": time.perf_counter() - t0,
    }


def _cell(key: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if key == "det":
        return f"{value:+.0f}"
    if key in CHANGE_COLUMNS:
        return f"{value:+.1e}"
    if key in ("elbo", "log_likelihood", "elbo_diagonal"):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_rotation_table(rows: Sequence[Mapping], columns=None) -> str:
    """A Markdown table of :func:`rotation_study` rows (``n/a`` where a row has no value);
    ``columns``: ``(key, header)`` pairs (default: those of :data:`TABLE_COLUMNS` any row
    has)."""
    if columns is None:
        columns = [(k, h) for k, h in TABLE_COLUMNS if any(k in r for r in rows)]
    lines = [
        "| " + " | ".join(h for _, h in columns) + " |",
        "|"
        + "|".join("---" if k in ("representation", "rotation") else "---:" for k, _ in columns)
        + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(k, row.get(k)) for k, _ in columns) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# CPU-sized run: a small VAE trained on dSprites, then the study


def _study_module():
    """``ssljax.experiments.disentanglement_study`` (its ``model_config`` and ``train_run``)."""
    from ssljax.experiments import disentanglement_study

    return disentanglement_study


def has_checkpoint(workdir: str) -> bool:
    from ssljax import io as wio
    from ssljax.training import checkpoint as ckpt_lib

    return wio.as_path(wio.join(workdir, ckpt_lib.CHECKPOINT_SUBDIR)).is_dir()


def train_small_vae(
    workdir: str, *, steps: int = 300, seed: int = 0, model: str = "beta_vae_b1"
) -> dict:
    """Trains study model ``model`` (``experiments/disentanglement_study.py``'s ``MODELS``:
    Locatello et al.'s architecture, batch 64, Adam 1e-4) for ``steps`` on dSprites rendered
    from its factor grid, through the library's step, state and checkpoints
    (``train_run``); a workdir holding that run's final checkpoint is not retrained."""
    study = _study_module()
    if model not in study.MODELS:
        raise ValueError(f"model={model!r} is invalid; choose one of {list(study.MODELS)}")
    if int(steps) < 1:
        raise ValueError(f"steps={steps!r} is invalid; valid: an int >= 1")
    config = study.model_config(model, seed=int(seed), steps=int(steps))
    return study.train_run(config, workdir, step_cache={}, cache_key=model)


def cpu_overrides(
    num_train: int = 1000, num_test: int = 500, dci_num_train: int = 300, score_num_train: int = 100
) -> dict:
    """Reduced sample counts (those of ``experiments/disentanglement_study.py``)."""
    from ssljax.evaluation.disentanglement.checkpoint_eval import sample_overrides

    overrides = sample_overrides(num_train, num_test)
    score_eval = max(1, score_num_train // 2)
    overrides["beta_vae"] = dict(num_train=score_num_train, num_eval=score_eval)
    overrides["factor_vae"] = dict(
        num_train=score_num_train, num_eval=score_eval, num_variance_estimate=max(num_train, 500)
    )
    overrides["dci"] = dict(num_train=dci_num_train, num_test=max(1, dci_num_train // 2))
    return {k: v for k, v in overrides.items() if not k.startswith("downstream")}


def cpu_rotation_study(
    workdir: str,
    *,
    steps: int = 300,
    seed: int = 0,
    model: str = "beta_vae_b1",
    key_seed: int = 0,
    overrides: Optional[Mapping[str, Mapping]] = None,
    **study_kwargs,
) -> dict:
    """Trains a small VAE on dSprites in ``workdir`` (unless it holds a checkpoint already,
    which is then used as it is) and runs :func:`rotation_study` on ``DSprites()`` with
    :func:`cpu_overrides`' sample counts. Adds ``train`` (status, seconds) to the result."""
    import jax

    from ssljax.data.dsprites import DSprites

    t0 = time.perf_counter()
    if has_checkpoint(workdir):
        train = {"status": "existing checkpoint"}
    else:
        train = train_small_vae(workdir, steps=steps, seed=seed, model=model)
        train = {k: v for k, v in train.items() if k != "last_metrics"}
    train["wall_seconds"] = time.perf_counter() - t0
    result = rotation_study(
        workdir,
        DSprites(),
        jax.random.key(key_seed),
        overrides=cpu_overrides() if overrides is None else overrides,
        **study_kwargs,
    )
    result["train"] = train
    result["workdir"] = os.fspath(workdir)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Rotations of a small dSprites VAE: same ELBO, other disentanglement."
    )
    parser.add_argument("--workdir", required=True, help="run directory (trained if empty)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="beta_vae_b1")
    parser.add_argument("--angles", default=",".join(f"{a:g}" for a in DEFAULT_ANGLES))
    parser.add_argument("--n_rotations", type=int, default=3)
    parser.add_argument("--num_images", type=int, default=64)
    parser.add_argument("--num_samples", type=int, default=16)
    parser.add_argument(
        "--out", default=None, help="Markdown output (default WORKDIR/rotation_study.md)"
    )
    args = parser.parse_args(argv)
    out = args.out or os.path.join(args.workdir, "rotation_study.md")
    json_out = os.path.splitext(out)[0] + ".json"
    for path in (out, json_out):
        if os.path.exists(path):
            parser.error(f"{path} exists; pass another --out (nothing is overwritten)")
    angles = [float(a) for a in args.angles.split(",") if a.strip()]
    result = cpu_rotation_study(
        args.workdir,
        steps=args.steps,
        seed=args.seed,
        model=args.model,
        angles=angles,
        n_rotations=args.n_rotations,
        num_images=args.num_images,
        num_samples=args.num_samples,
    )
    from ssljax.evaluation.disentanglement.checkpoint_eval import to_jsonable
    from ssljax.training.logging import write_json_atomic, write_text_atomic

    table = format_rotation_table(result["rows"])
    text = (
        f"Rotation study of {args.workdir} ({result['train']['status']}; latent plane "
        f"{result['plane']}, factor plane {result['factor_plane']}; "
        f"{result['seconds']:.0f} s for the study)\n\n{table}\n"
    )
    print(text, flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_text_atomic(out, text)
    write_json_atomic(json_out, to_jsonable(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
