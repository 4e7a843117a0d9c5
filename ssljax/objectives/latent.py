"""Latent-variable objectives: autoencoder, the VAE's ELBO, beta-VAE, FactorVAE, beta-TCVAE.

Pure terms (arrays in, arrays out; per-example terms are ``[B]``, summed over latents/pixels):

* ``gaussian_kl_standard(mean, log_var)``: ``KL(N(mean, diag e^log_var) || N(0, I)) =
  1/2 sum_d (mean^2 + e^log_var - log_var - 1)``.
* ``gaussian_kl(mean_q, log_var_q, mean_p, log_var_p)``: KL between two diagonal Gaussians,
  ``1/2 sum_d (log_var_p - log_var_q + (e^log_var_q + (mean_q - mean_p)^2) / e^log_var_p - 1)``.
* ``bernoulli_log_likelihood(x, logits)``: ``sum x log s(l) + (1 - x) log(1 - s(l))`` written as
  ``sum x l - softplus(l)`` (``x`` in [0, 1]; binary dSprites pixels).
* ``gaussian_log_likelihood(x, mean, log_var)`` and the elementwise ``gaussian_log_density``.
* ``reparameterize(rng, mean, log_var)``: ``z = mean + exp(log_var / 2) * eps``,
  ``eps ~ N(0, I)`` (Kingma & Welling 2014), differentiable in ``mean`` and ``log_var``.
* ``permute_dims(rng, z)``: FactorVAE's samples of the product of marginals ``prod_d q(z_d)``:
  every latent dimension permuted independently across the batch (Kim & Mnih 2018, Alg. 1), so
  each column keeps exactly its values.
* ``density_ratio_tc(logits)`` and ``tc_discriminator_loss``: FactorVAE's total-correlation
  estimate ``E_q(z)[log D(z) / (1 - D(z))]`` = mean of ``logit_0 - logit_1`` for a 2-way
  softmax discriminator, and the discriminator's cross entropy (class 0: ``z ~ q(z)``, class 1:
  permuted ``z``), each half weighted 1/2 as in disentanglement_lib. We use ``log_softmax``;
  disentanglement_lib clips probabilities to ``[1e-6, 1 - 1e-6]`` before the log.
* ``minibatch_log_densities``, ``total_correlation`` and ``kl_decomposition``: beta-TCVAE's
  minibatch-weighted sampling (Chen et al. 2018, section 3 and appendix C.1):
  ``log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(N M)`` and, per dimension,
  ``log q(z_id) ~ logsumexp_j log q(z_id | x_jd) - log(N M)`` over the ``M`` posteriors of the
  minibatch, ``N`` the dataset size. With ``dataset_size=None`` (ours, the default) the constant
  is ``log M``, i.e. the minibatch is taken as the data, so the estimate is near 0 for a
  factorised aggregate posterior; the constant shifts the TC estimate by ``(D - 1) log N`` and
  does not change any gradient (disentanglement_lib drops it altogether).
  ``kl_decomposition`` splits the sampled KL ``log q(z|x) - log p(z)`` into index-code mutual
  information, total correlation and dimension-wise KL, which sum to it exactly.

Objectives (``config.objective.name``; every class shares ``likelihood`` and ``gaussian_std``):

==================  ==========================================================================
``autoencoder``     deterministic: decode the posterior mean; loss = ``-log p(x | mean(x))``.
                    Its denoising variant is ``denoising_autoencoder``
                    (``ssljax.objectives.reconstruction``), which decodes the latent code of a
                    Gaussian encoder such as this one.
``vae`` / ``beta_vae``  ``-log p(x|z) + beta KL(q(z|x) || N(0, I))``, ``z`` sampled once per image
                    (Kingma & Welling 2014; Higgins et al. 2017). ``beta_vae`` is the same
                    objective under the name its config file needs.
``factor_vae``      VAE loss + ``gamma * TC`` with TC from the discriminator's density ratio
                    (Kim & Mnih 2018). The discriminator is a parameter group
                    (``params['discriminator']``, Adam(1e-4, b1 0.5, b2 0.9)); one gradient of
                    ``main loss + discriminator loss`` steps both networks together, each
                    against the other's pre-step parameters (as disentanglement_lib's grouped
                    train ops): the main loss sees the discriminator's parameters under
                    ``stop_gradient``, the discriminator's loss sees the latents under it.
``beta_tcvae``      ``-log p(x|z) + KL + (beta - 1) TC`` with the minibatch-weighted TC estimate
                    (Chen et al. 2018 with alpha = gamma = 1, as disentanglement_lib).
==================  ==========================================================================

``likelihood``: 'bernoulli' (decoder logits) or 'gaussian' (mean ``sigmoid(decoder output)``
with fixed ``gaussian_std``, default ``sqrt(1/2)`` so that ``-log p`` is disentanglement_lib's
summed squared error plus a constant). Reported values are per image, in nats:
``reconstruction = -E log p(x|z)``, ``kl``, ``elbo = -(reconstruction + kl)``.

Multi-device: every term is a mean over images. The latent noise ``eps`` is drawn for the
whole global batch from the step's shared key (``LossContext.shared_rng``, equal on every
device) and each device takes its rows, so an example's sample does not depend on the device
count. FactorVAE permutes the latents of the global batch (gathered, with a second key split
from the shared one) and each device scores its slice; beta-TCVAE's density estimates use the
posteriors of the whole global batch (gathered with gradients). So 8 devices give the loss and
update of 1 device on the same global batch. None of these objectives keeps a state.

The model is ``ssljax.models.vae.VAENetwork`` (``model.encoder = 'vae_conv'`` with
``model.encoder_kwargs``, decoder settings in ``model.vae_decoder``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp
import optax

from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    ParamGroup,
    Run,
    check_choice,
    check_int,
    check_range,
    split_param_group,
)
from ssljax.objectives.contrastive import gather_batch
from ssljax.objectives.registry import register

LIKELIHOODS = ("bernoulli", "gaussian")
DEFAULT_GAUSSIAN_STD = math.sqrt(0.5)
LOG_2PI = math.log(2.0 * math.pi)
# The top-level params key of FactorVAE's discriminator (a ParamGroup).
DISCRIMINATOR = "discriminator"


# ---------------------------------------------------------------------------
# Pure terms
# ---------------------------------------------------------------------------


def _sum_per_example(x: chex.Array) -> chex.Array:
    """Sum over every axis but the first: ``[B, ...] -> [B]``."""
    return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


def gaussian_kl_standard(mean: chex.Array, log_var: chex.Array) -> chex.Array:
    """``KL(N(mean, diag(exp(log_var))) || N(0, I))`` summed over the last axis."""
    chex.assert_equal_shape([mean, log_var])
    return 0.5 * jnp.sum(mean**2 + jnp.exp(log_var) - log_var - 1.0, axis=-1)


def gaussian_kl(
    mean_q: chex.Array, log_var_q: chex.Array, mean_p: chex.Array, log_var_p: chex.Array
) -> chex.Array:
    """``KL(N(mean_q, e^log_var_q) || N(mean_p, e^log_var_p))`` (diagonal), summed over the
    last axis; arguments broadcast against each other."""
    ratio = jnp.exp(log_var_q - log_var_p)
    return 0.5 * jnp.sum(
        log_var_p - log_var_q + ratio + (mean_q - mean_p) ** 2 * jnp.exp(-log_var_p) - 1.0, axis=-1
    )


def gaussian_log_density(x: chex.Array, mean: chex.Array, log_var: chex.Array) -> chex.Array:
    """Elementwise ``log N(x; mean, exp(log_var))``; arguments broadcast."""
    return -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * jnp.exp(-log_var))


def gaussian_log_likelihood(x: chex.Array, mean: chex.Array, log_var) -> chex.Array:
    """``log N(x; mean, exp(log_var))`` summed over every axis but the first: ``[B]``."""
    chex.assert_equal_shape([x, mean])
    log_var = jnp.broadcast_to(jnp.asarray(log_var, jnp.float32), x.shape)
    return _sum_per_example(gaussian_log_density(x.astype(jnp.float32), mean, log_var))


def bernoulli_log_likelihood(x: chex.Array, logits: chex.Array) -> chex.Array:
    """``sum x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))`` per example: ``[B]``.

    ``x`` may be any value in [0, 1] (then this is minus the cross entropy).
    """
    chex.assert_equal_shape([x, logits])
    logits = logits.astype(jnp.float32)
    return _sum_per_example(x.astype(jnp.float32) * logits - jax.nn.softplus(logits))


def reparameterize(rng: chex.PRNGKey, mean: chex.Array, log_var: chex.Array) -> chex.Array:
    """A sample ``mean + exp(log_var / 2) * eps`` of ``N(mean, diag(exp(log_var)))``."""
    chex.assert_equal_shape([mean, log_var])
    eps = jax.random.normal(rng, mean.shape, jnp.float32)
    return mean + jnp.exp(0.5 * log_var) * eps


def permute_dims(rng: chex.PRNGKey, z: chex.Array) -> chex.Array:
    """Permutes every column of ``z [B, D]`` across the batch with its own permutation."""
    chex.assert_rank(z, 2)
    n, d = z.shape
    keys = jax.random.split(rng, d)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(keys)  # [D, B]
    return jnp.take_along_axis(z, perms.T, axis=0)


def density_ratio_tc(logits: chex.Array) -> chex.Array:
    """FactorVAE's TC estimate ``mean(logit_0 - logit_1)`` = ``E log D / (1 - D)``."""
    chex.assert_rank(logits, 2)
    return jnp.mean(logits[:, 0] - logits[:, 1])


def tc_discriminator_loss(real_logits: chex.Array, permuted_logits: chex.Array) -> chex.Array:
    """``-1/2 mean log D_0(z) - 1/2 mean log D_1(permuted z)`` with ``D = softmax(logits)``."""
    chex.assert_rank([real_logits, permuted_logits], 2)
    real = jax.nn.log_softmax(real_logits.astype(jnp.float32), axis=-1)[:, 0]
    perm = jax.nn.log_softmax(permuted_logits.astype(jnp.float32), axis=-1)[:, 1]
    return -0.5 * jnp.mean(real) - 0.5 * jnp.mean(perm)


def minibatch_log_densities(
    z: chex.Array,
    batch_mean: chex.Array,
    batch_log_var: chex.Array,
    *,
    dataset_size: int | None = None,
) -> tuple[chex.Array, chex.Array]:
    """Minibatch-weighted estimates of ``log q(z_i)`` and ``log q(z_id)``.

    Args:
      z: ``[n, D]`` samples (each drawn from one of the minibatch's posteriors).
      batch_mean, batch_log_var: ``[M, D]`` posteriors ``q(z | x_j)`` of the minibatch.
      dataset_size: ``N`` for Chen et al.'s constant ``log(N M)``; None: ``log M``.

    Returns:
      ``(log_qz [n], log_qz_marginals [n, D])``.
    """
    chex.assert_rank([z, batch_mean, batch_log_var], 2)
    chex.assert_equal_shape([batch_mean, batch_log_var])
    m = batch_mean.shape[0]
    const = math.log(m) + (math.log(dataset_size) if dataset_size else 0.0)
    log_q = gaussian_log_density(z[:, None, :], batch_mean[None], batch_log_var[None])  # [n, M, D]
    log_qz = jax.nn.logsumexp(jnp.sum(log_q, axis=-1), axis=1) - const
    log_qz_marginals = jax.nn.logsumexp(log_q, axis=1) - const
    return log_qz, log_qz_marginals


def total_correlation(
    z: chex.Array,
    batch_mean: chex.Array,
    batch_log_var: chex.Array,
    *,
    dataset_size: int | None = None,
) -> chex.Array:
    """``mean_i [log q(z_i) - sum_d log q(z_id)]`` by minibatch-weighted sampling."""
    log_qz, log_qzd = minibatch_log_densities(
        z, batch_mean, batch_log_var, dataset_size=dataset_size
    )
    return jnp.mean(log_qz - jnp.sum(log_qzd, axis=-1))


def kl_decomposition(
    z: chex.Array,
    mean: chex.Array,
    log_var: chex.Array,
    *,
    batch_mean: chex.Array | None = None,
    batch_log_var: chex.Array | None = None,
    dataset_size: int | None = None,
) -> dict[str, chex.Array]:
    """Chen et al.'s split of the sampled KL term, averaged over the ``n`` samples.

    ``log q(z|x) - log p(z) = [log q(z|x) - log q(z)] + [log q(z) - sum_d log q(z_d)]
    + [sum_d log q(z_d) - log p(z)]``: index-code mutual information, total correlation,
    dimension-wise KL (``p = N(0, I)``). ``z``, ``mean``, ``log_var`` are ``[n, D]`` (``z_i``
    drawn from ``q(z | x_i)``); ``batch_mean``/``batch_log_var`` the ``[M, D]`` posteriors the
    densities are estimated from (default: ``mean``/``log_var``, e.g. the global batch when
    ``z`` is one device's share).

    Returns:
      ``{'mutual_info', 'total_correlation', 'dimwise_kl', 'sampled_kl'}`` (scalars; the first
      three sum to ``sampled_kl``).
    """
    batch_mean = mean if batch_mean is None else batch_mean
    batch_log_var = log_var if batch_log_var is None else batch_log_var
    log_qz, log_qzd = minibatch_log_densities(
        z, batch_mean, batch_log_var, dataset_size=dataset_size
    )
    log_qz_x = jnp.sum(gaussian_log_density(z, mean, log_var), axis=-1)
    log_pz = jnp.sum(gaussian_log_density(z, 0.0, 0.0), axis=-1)
    log_prod = jnp.sum(log_qzd, axis=-1)
    return {
        "mutual_info": jnp.mean(log_qz_x - log_qz),
        "total_correlation": jnp.mean(log_qz - log_prod),
        "dimwise_kl": jnp.mean(log_prod - log_pz),
        "sampled_kl": jnp.mean(log_qz_x - log_pz),
    }


def reconstruction_log_likelihood(
    x: chex.Array,
    decoded: chex.Array,
    *,
    likelihood: str = "bernoulli",
    gaussian_std: float = DEFAULT_GAUSSIAN_STD,
) -> chex.Array:
    """``log p(x | z)`` per example ``[B]`` from the decoder output.

    'bernoulli': ``decoded`` are logits. 'gaussian': mean ``sigmoid(decoded)``, fixed standard
    deviation ``gaussian_std`` (disentanglement_lib's l2 loss applies the same sigmoid).
    """
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(x, decoded)
    if likelihood == "gaussian":
        return gaussian_log_likelihood(
            x, jax.nn.sigmoid(decoded.astype(jnp.float32)), 2.0 * math.log(gaussian_std)
        )
    raise ValueError(f"likelihood={likelihood!r} is invalid; choose one of {LIKELIHOODS}")


def log_likelihood_terms(
    x: chex.Array,
    decoded: chex.Array,
    *,
    likelihood: str = "bernoulli",
    gaussian_std: float = DEFAULT_GAUSSIAN_STD,
) -> chex.Array:
    """The elementwise terms ``[B, ...]`` whose per-example sums are
    ``reconstruction_log_likelihood`` (for weighting some values more than others)."""
    chex.assert_equal_shape([x, decoded])
    x, decoded = x.astype(jnp.float32), decoded.astype(jnp.float32)
    if likelihood == "bernoulli":
        return x * decoded - jax.nn.softplus(decoded)
    if likelihood == "gaussian":
        return gaussian_log_density(x, jax.nn.sigmoid(decoded), 2.0 * math.log(gaussian_std))
    raise ValueError(f"likelihood={likelihood!r} is invalid; choose one of {LIKELIHOODS}")


def weighted_log_likelihood(
    x: chex.Array,
    decoded: chex.Array,
    weights: chex.Array,
    *,
    likelihood: str = "bernoulli",
    gaussian_std: float = DEFAULT_GAUSSIAN_STD,
) -> chex.Array:
    """``sum w log p(x_v | z)`` over the values ``v`` of each example: ``[B]``; ``weights``
    broadcast against ``x`` (all ones: ``reconstruction_log_likelihood``)."""
    terms = log_likelihood_terms(x, decoded, likelihood=likelihood, gaussian_std=gaussian_std)
    return _sum_per_example(jnp.broadcast_to(weights, terms.shape) * terms)


# ---------------------------------------------------------------------------
# Shared pieces of the objectives
# ---------------------------------------------------------------------------


def build_decoder(run: Run):
    """The ``VAEDecoder`` of ``run.model.vae_decoder`` with the dataset's channels."""
    from ssljax.models.network import dtype_from_name
    from ssljax.models.vae import VAEDecoder

    dec = run.model.get("vae_decoder") or {}
    return VAEDecoder(
        hidden=int(dec.get("hidden", 256)),
        start_shape=tuple(int(s) for s in dec.get("start_shape", (4, 4, 64))),
        widths=tuple(int(w) for w in dec.get("widths", (64, 32, 32))),
        kernel_size=int(dec.get("kernel_size", 4)),
        stride=int(dec.get("stride", 2)),
        out_channels=run.facts.channels,
        dtype=dtype_from_name(run.dtype),
    )


def build_latent_model(run: Run, axis_name):
    """``VAENetwork``: ``run.model``'s Gaussian encoder + ``build_decoder(run)``."""
    from ssljax.models.network import build_encoder_from_config
    from ssljax.models.vae import VAENetwork

    return VAENetwork(encoder=build_encoder_from_config(run, axis_name), decoder=build_decoder(run))


def gaussian_encoder_names() -> list[str]:
    """The registered encoders with a ``posterior`` (``(mean, log_var)`` of ``q(z | x)``)."""
    from ssljax.models import ENCODERS

    return sorted(n for n, cls in ENCODERS.items() if hasattr(cls, "posterior"))


def has_gaussian_encoder(run: Run) -> bool:
    """Whether ``run.model.encoder`` encodes to a Gaussian posterior (a latent code)."""
    return run.model.encoder in gaussian_encoder_names()


def latent_dim(run: Run) -> int:
    """Latents of ``run.model``'s Gaussian encoder."""
    from ssljax.models.network import build_encoder_from_config

    return int(build_encoder_from_config(run, None).latent_dim)


def check_latent_model(run: Run, objective_name: str, image_size=None) -> None:
    """One-line errors for encoders and decoders a latent model cannot use; ``image_size``
    ``(H, W)`` to decode (default: the dataset's)."""
    if not has_gaussian_encoder(run):
        raise ValueError(
            f"objective {objective_name!r} needs a Gaussian encoder; "
            f"model.encoder={run.model.encoder!r} is invalid; choose one of "
            f"{gaussian_encoder_names()}"
        )
    dim = latent_dim(run)
    if dim < 1:
        raise ValueError(f"model.encoder_kwargs.latent_dim={dim!r} is invalid; valid: an int >= 1")
    size = tuple(image_size or run.facts.image_shape[:2])
    decoder = build_decoder(run)
    if decoder.output_size() != size:
        raise ValueError(
            f"model.vae_decoder start_shape={tuple(decoder.start_shape)} with "
            f"{len(decoder.widths) + 1} stride-{decoder.stride} upconvolutions decodes "
            f"{decoder.output_size()} images, but the {run.facts.name!r} views are {size}; "
            f"valid: start_shape * stride**{len(decoder.widths) + 1} equal to the image size"
        )


def image_views(images: chex.Array) -> tuple[chex.Array]:
    """``(x,)``: the batch as float32 in [0, 1] (dSprites: exactly 0 or 1)."""
    from ssljax.views.augment import to_float

    return (to_float(images),)


def encode(params, model_state, x, *, model):
    """``(mean, log_var)`` of ``q(z | x)`` in train mode."""
    return model.apply({"params": params, **model_state}, x, train=True, method="encode")


def decode(params, model_state, z, *, model):
    """Decoder output for latents ``z``."""
    return model.apply({"params": params, **model_state}, z, train=True, method="decode")


def global_batch_noise(key, local_shape, axis_name) -> chex.Array:
    """This device's rows of standard normal noise drawn for the whole global batch.

    ``key`` is the same on every device, so the noise of an example does not depend on how
    many devices share the batch (the device-folded step key would make it depend on that).
    """
    n = local_shape[0]
    if axis_name is None:
        return jax.random.normal(key, local_shape, jnp.float32)
    devices = jax.lax.axis_size(axis_name)
    noise = jax.random.normal(key, (devices * n,) + tuple(local_shape[1:]), jnp.float32)
    return jax.lax.dynamic_slice_in_dim(noise, jax.lax.axis_index(axis_name) * n, n, axis=0)


def shared_keys(ctx: LossContext, objective_name: str) -> tuple[chex.Array, chex.Array]:
    """``(noise key, permutation key)``, split from the step's key shared by all devices."""
    if ctx.shared_rng is None:
        raise ValueError(
            f"objective {objective_name!r} needs LossContext.shared_rng (a key "
            "equal on every device); the step passes shared_step_rng"
        )
    noise_key, permutation_key = jax.random.split(ctx.shared_rng)
    return noise_key, permutation_key


def elbo_metrics(rec: chex.Array, kl: chex.Array) -> dict:
    rec, kl = jnp.mean(rec), jnp.mean(kl)
    return {"reconstruction": rec, "kl": kl, "elbo": -(rec + kl)}


# ---------------------------------------------------------------------------
# The objectives
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LatentObjective(Objective):
    """What the latent-variable objectives share: the likelihood and the ``VAENetwork``.

    Attributes:
      likelihood: 'bernoulli' (decoder logits) or 'gaussian' (mean ``sigmoid(output)``).
      gaussian_std: the Gaussian likelihood's fixed standard deviation.
    """

    likelihood: str = "bernoulli"
    gaussian_std: float = DEFAULT_GAUSSIAN_STD

    def __post_init__(self):
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_range("gaussian_std", self.gaussian_std, low=0.0, low_open=True)

    def check(self, run):
        check_latent_model(run, self.name)

    def build_model(self, run, axis_name):
        return build_latent_model(run, axis_name)

    def make_views(self, rng, images, run):
        del rng, run
        return image_views(images)

    def log_likelihood(self, x: chex.Array, decoded: chex.Array) -> chex.Array:
        """``log p(x | z)`` per example ``[B]``."""
        return reconstruction_log_likelihood(
            x, decoded, likelihood=self.likelihood, gaussian_std=self.gaussian_std
        )

    def elbo_terms(self, params, model_state, x, noise_key, ctx: LossContext):
        """Encode, sample once, decode: ``(reconstruction [B], kl [B], mean, log_var, z)``."""
        mean, log_var = encode(params, model_state, x, model=ctx.model)
        eps = global_batch_noise(noise_key, mean.shape, ctx.axis_name)
        z = mean + jnp.exp(0.5 * log_var) * eps  # reparameterize() with global-batch noise
        decoded = decode(params, model_state, z, model=ctx.model)
        rec = -self.log_likelihood(x, decoded)
        return rec, gaussian_kl_standard(mean, log_var), mean, log_var, z


@register
@dataclasses.dataclass(frozen=True)
class Autoencoder(LatentObjective):
    """Deterministic autoencoder: ``-log p(x | decode(mean(x)))``, no KL term."""

    name: ClassVar[str] = "autoencoder"
    description: ClassVar[str] = (
        "Deterministic autoencoder through the latent means (Bernoulli/Gaussian reconstruction)"
    )

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        (x,) = views
        mean, _ = encode(params, model_state, x, model=ctx.model)
        decoded = decode(params, model_state, mean, model=ctx.model)
        rec = jnp.mean(-self.log_likelihood(x, decoded))
        metrics = {"loss": rec, "reconstruction": rec}
        return rec, LossAux(metrics, model_state, Outputs(embedding=mean))


@register
@dataclasses.dataclass(frozen=True)
class VAE(LatentObjective):
    """``mean(-log p(x|z) + beta KL)`` with one reparameterised sample per image.

    Attributes:
      beta: weight of the KL term (1: the ELBO; Locatello et al.'s grid 1, 2, 4, 6, 8, 16).
    """

    name: ClassVar[str] = "vae"
    description: ClassVar[str] = (
        "VAE / beta-VAE: -log p(x|z) + beta KL(q(z|x) || N(0, I)) "
        "(Kingma & Welling 2014; Higgins et al. 2017)"
    )

    beta: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_range("beta", self.beta, low=0.0)

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        (x,) = views
        noise_key, _ = shared_keys(ctx, self.name)
        rec, kl, mean, _, _ = self.elbo_terms(params, model_state, x, noise_key, ctx)
        loss = jnp.mean(rec + self.beta * kl)
        metrics = dict(elbo_metrics(rec, kl), loss=loss)
        return loss, LossAux(metrics, model_state, Outputs(embedding=mean))


@register
@dataclasses.dataclass(frozen=True)
class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017): ``vae`` under the name its config files use."""

    name: ClassVar[str] = "beta_vae"
    description: ClassVar[str] = "beta-VAE (Higgins et al. 2017): the 'vae' objective by name"


@register
@dataclasses.dataclass(frozen=True)
class BetaTCVAE(LatentObjective):
    """``mean(-log p(x|z) + KL) + (beta - 1) TC``, TC by minibatch-weighted sampling over the
    global batch's posteriors.

    Attributes:
      beta: weight of the total correlation (Locatello et al.'s grid 1, 2, 4, 6, 8, 10).
    """

    name: ClassVar[str] = "beta_tcvae"
    description: ClassVar[str] = (
        "beta-TCVAE: VAE + (beta - 1) TC by minibatch-weighted sampling (Chen et al. 2018)"
    )

    beta: float = 6.0

    def __post_init__(self):
        super().__post_init__()
        check_range("beta", self.beta, low=0.0)

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        (x,) = views
        noise_key, _ = shared_keys(ctx, self.name)
        rec, kl, mean, log_var, z = self.elbo_terms(params, model_state, x, noise_key, ctx)
        batch_mean, _ = gather_batch(mean, ctx.axis_name)
        batch_log_var, _ = gather_batch(log_var, ctx.axis_name)
        parts = kl_decomposition(
            z, mean, log_var, batch_mean=batch_mean, batch_log_var=batch_log_var
        )
        loss = jnp.mean(rec + kl) + (self.beta - 1.0) * parts["total_correlation"]
        metrics = dict(
            elbo_metrics(rec, kl),
            loss=loss,
            mutual_info=parts["mutual_info"],
            total_correlation=parts["total_correlation"],
            dimwise_kl=parts["dimwise_kl"],
        )
        return loss, LossAux(metrics, model_state, Outputs(embedding=mean))


@register
@dataclasses.dataclass(frozen=True)
class FactorVAE(LatentObjective):
    """``mean(-log p(x|z) + KL) + gamma TC(z)``, TC from a discriminator trained in the same
    step (a parameter group, ``params['discriminator']``).

    The discriminator sees this device's latents (class 0) and this device's slice of the
    dimension-permuted global batch of latents (class 1), both without gradient to the VAE.

    Attributes:
      gamma: weight of the TC estimate (Locatello et al.'s grid 10, 20, 30, 40, 50, 100).
      disc_hidden: units of the discriminator's LeakyReLU layers (Kim & Mnih: 6 x 1000).
      disc_learning_rate, disc_beta1, disc_beta2: the discriminator's Adam (Locatello et al.:
        1e-4, 0.5, 0.9), constant learning rate.
    """

    name: ClassVar[str] = "factor_vae"
    description: ClassVar[str] = (
        "FactorVAE: VAE + gamma TC from a dimension-permutation discriminator (Kim & Mnih 2018)"
    )

    gamma: float = 30.0
    disc_hidden: tuple[int, ...] = (1000,) * 6
    disc_learning_rate: float = 1e-4
    disc_beta1: float = 0.5
    disc_beta2: float = 0.9

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "disc_hidden", tuple(self.disc_hidden))
        check_range("gamma", self.gamma, low=0.0)
        check_range("disc_learning_rate", self.disc_learning_rate, low=0.0, low_open=True)
        check_range("disc_beta1", self.disc_beta1, low=0.0, high=1.0, high_open=True)
        check_range("disc_beta2", self.disc_beta2, low=0.0, high=1.0, high_open=True)
        if not self.disc_hidden:
            raise ValueError(
                "objective.disc_hidden=() is invalid; valid: a non-empty tuple of ints >= 1"
            )
        for units in self.disc_hidden:
            check_int("disc_hidden", units)

    def check(self, run):
        super().check(run)
        if run.batch_size < 2:
            raise ValueError(
                f"batch_size={run.batch_size} is invalid for factor_vae; valid: "
                ">= 2 (permuting latents needs several images)"
            )

    def discriminator(self):
        """FactorVAE's ``TCDiscriminator`` of ``disc_hidden``."""
        from ssljax.models.vae import TCDiscriminator

        return TCDiscriminator(hidden=tuple(int(h) for h in self.disc_hidden))

    def discriminator_optimizer(self) -> optax.GradientTransformation:
        """Adam for the discriminator (Locatello et al.: lr 1e-4, beta1 0.5, beta2 0.9)."""
        return optax.adam(
            float(self.disc_learning_rate), b1=float(self.disc_beta1), b2=float(self.disc_beta2)
        )

    def param_groups(self, run):
        return {
            DISCRIMINATOR: ParamGroup(
                self.discriminator(), (1, latent_dim(run)), self.discriminator_optimizer()
            )
        }

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        """``main + discriminator loss``: one gradient gives the VAE the main loss's gradient
        and the discriminator its own loss's gradient; ``metrics['loss']`` is the main loss."""
        del rng
        (x,) = views
        vae_params, disc_params = split_param_group(params)
        noise_key, permutation_key = shared_keys(ctx, self.name)
        rec, kl, mean, _, z = self.elbo_terms(vae_params, model_state, x, noise_key, ctx)
        disc = self.discriminator()
        tc = density_ratio_tc(disc.apply({"params": jax.lax.stop_gradient(disc_params)}, z))
        loss = jnp.mean(rec + kl) + self.gamma * tc

        z_fixed = jax.lax.stop_gradient(z)
        z_all, offset = gather_batch(z_fixed, ctx.axis_name)
        z_perm = jax.lax.dynamic_slice_in_dim(
            permute_dims(permutation_key, z_all), offset, z.shape[0], axis=0
        )
        real = disc.apply({"params": disc_params}, z_fixed)
        perm = disc.apply({"params": disc_params}, z_perm)
        disc_loss = tc_discriminator_loss(real, perm)
        accuracy = 0.5 * (
            jnp.mean((real[:, 0] > real[:, 1]).astype(jnp.float32))
            + jnp.mean((perm[:, 1] > perm[:, 0]).astype(jnp.float32))
        )
        metrics = dict(
            elbo_metrics(rec, kl),
            loss=loss,
            total_correlation=tc,
            disc_loss=disc_loss,
            disc_accuracy=accuracy,
        )
        return loss + disc_loss, LossAux(metrics, model_state, Outputs(embedding=mean))
