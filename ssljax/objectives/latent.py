"""Latent-variable objectives: autoencoders, the VAE's ELBO, beta-VAE, FactorVAE, beta-TCVAE.

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

Registry records (``config.objective``):

==================  ==========================================================================
``autoencoder``     deterministic: decode the posterior mean; loss = ``-log p(x | mean(x))``.
``denoising_ae``    the same on a corrupted input (``noise`` 'masking' or 'gaussian', from
                    ``ssljax.data.corruptions``), reconstructing the clean image (Vincent et al.
                    2008); the ``denoising_autoencoder`` record decodes a ConvNet feature map
                    instead of a latent code, so it does not give a 10-d representation.
``vae`` / ``beta_vae``  ``-log p(x|z) + beta KL(q(z|x) || N(0, I))``, ``z`` sampled once per image
                    (Kingma & Welling 2014; Higgins et al. 2017). ``beta_vae`` is the same record
                    under the name its config file needs; ``objective.beta`` sets beta in both.
``factor_vae``      VAE loss + ``gamma * TC`` with TC from the discriminator's density ratio
                    (Kim & Mnih 2018). The discriminator's parameters and Adam state live in
                    ``TrainState.extra``; the loss computes its gradient on this step's latents
                    and their dimension-permuted copies and ``update_extra`` applies it, so both
                    networks step together, each against the other's pre-step parameters (as
                    disentanglement_lib's grouped train ops). Adam(1e-4, b1 0.5, b2 0.9).
``beta_tcvae``      ``-log p(x|z) + KL + (beta - 1) TC`` with the minibatch-weighted TC estimate
                    (Chen et al. 2018 with alpha = gamma = 1, as disentanglement_lib).
==================  ==========================================================================

Common keys: ``likelihood`` ('bernoulli': decoder logits; 'gaussian': mean ``sigmoid(decoder
output)`` with fixed ``gaussian_std``, default ``sqrt(1/2)`` so that ``-log p`` is
disentanglement_lib's summed squared error plus a constant). Reported values are per image,
in nats: ``reconstruction = -E log p(x|z)``, ``kl``, ``elbo = -(reconstruction + kl)``.

Multi-device: every term is a mean over images. The latent noise ``eps`` is drawn for the
whole global batch from a key kept in ``TrainState.extra`` (``noise_key``, the same on every
device, advanced each step) and each device takes its rows, so an example's sample does not
depend on the device count (the step's own key is folded with the device index). FactorVAE
permutes the latents of the global batch (gathered, with a shared ``permutation_key``) and each
device scores its slice; beta-TCVAE's density estimates use the posteriors of the whole global
batch (gathered with gradients). So 8 devices give the loss and update of 1 device on the same
global batch.

The model is ``ssljax.models.vae.VAENetwork`` (``model.encoder = 'vae_conv'`` with
``model.encoder_kwargs``, decoder settings in ``model.vae_decoder``).
"""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.objectives.contrastive import gather_batch
from ssljax.objectives.registry import Objective, register

LIKELIHOODS = ("bernoulli", "gaussian")
DEFAULTS = dict(
    likelihood="bernoulli",
    gaussian_std=math.sqrt(0.5),
    beta=1.0,
    gamma=10.0,
    noise="masking",
    noise_stddev=0.3,
    drop_prob=0.25,
    disc_hidden=(1000,) * 6,
    disc_learning_rate=1e-4,
    disc_beta1=0.5,
    disc_beta2=0.9,
)
LOG_2PI = math.log(2.0 * math.pi)


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


def gaussian_kl(mean_q: chex.Array, log_var_q: chex.Array, mean_p: chex.Array,
                log_var_p: chex.Array) -> chex.Array:
    """``KL(N(mean_q, e^log_var_q) || N(mean_p, e^log_var_p))`` (diagonal), summed over the
    last axis; arguments broadcast against each other."""
    ratio = jnp.exp(log_var_q - log_var_p)
    return 0.5 * jnp.sum(
        log_var_p - log_var_q + ratio + (mean_q - mean_p) ** 2 * jnp.exp(-log_var_p) - 1.0,
        axis=-1)


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


def minibatch_log_densities(z: chex.Array, batch_mean: chex.Array, batch_log_var: chex.Array, *,
                            dataset_size: int | None = None) -> tuple[chex.Array, chex.Array]:
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


def total_correlation(z: chex.Array, batch_mean: chex.Array, batch_log_var: chex.Array, *,
                      dataset_size: int | None = None) -> chex.Array:
    """``mean_i [log q(z_i) - sum_d log q(z_id)]`` by minibatch-weighted sampling."""
    log_qz, log_qzd = minibatch_log_densities(z, batch_mean, batch_log_var,
                                              dataset_size=dataset_size)
    return jnp.mean(log_qz - jnp.sum(log_qzd, axis=-1))


def kl_decomposition(z: chex.Array, mean: chex.Array, log_var: chex.Array, *,
                     batch_mean: chex.Array | None = None,
                     batch_log_var: chex.Array | None = None,
                     dataset_size: int | None = None) -> dict[str, chex.Array]:
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
    log_qz, log_qzd = minibatch_log_densities(z, batch_mean, batch_log_var,
                                              dataset_size=dataset_size)
    log_qz_x = jnp.sum(gaussian_log_density(z, mean, log_var), axis=-1)
    log_pz = jnp.sum(gaussian_log_density(z, 0.0, 0.0), axis=-1)
    log_prod = jnp.sum(log_qzd, axis=-1)
    return {
        "mutual_info": jnp.mean(log_qz_x - log_qz),
        "total_correlation": jnp.mean(log_qz - log_prod),
        "dimwise_kl": jnp.mean(log_prod - log_pz),
        "sampled_kl": jnp.mean(log_qz_x - log_pz),
    }


def reconstruction_log_likelihood(x: chex.Array, decoded: chex.Array, *,
                                  likelihood: str = "bernoulli",
                                  gaussian_std: float = DEFAULTS["gaussian_std"]) -> chex.Array:
    """``log p(x | z)`` per example ``[B]`` from the decoder output.

    'bernoulli': ``decoded`` are logits. 'gaussian': mean ``sigmoid(decoded)``, fixed standard
    deviation ``gaussian_std`` (disentanglement_lib's l2 loss applies the same sigmoid).
    """
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(x, decoded)
    if likelihood == "gaussian":
        return gaussian_log_likelihood(x, jax.nn.sigmoid(decoded.astype(jnp.float32)),
                                       2.0 * math.log(gaussian_std))
    raise ValueError(f"likelihood={likelihood!r} is invalid; choose one of {LIKELIHOODS}")


# ---------------------------------------------------------------------------
# Records: shared pieces
# ---------------------------------------------------------------------------


def _setting(config, key):
    value = config.objective.get(key, DEFAULTS[key])
    return DEFAULTS[key] if value is None else value


def _likelihood_kwargs(config) -> dict:
    return dict(likelihood=str(_setting(config, "likelihood")),
                gaussian_std=float(_setting(config, "gaussian_std")))


def build_decoder(config):
    """The ``VAEDecoder`` of ``config.model.vae_decoder`` with the dataset's channels."""
    from ssljax.data.datasets import get_dataset_spec
    from ssljax.models.network import dtype_from_name
    from ssljax.models.vae import VAEDecoder

    dec = config.model.get("vae_decoder") or {}
    channels = get_dataset_spec(config.dataset.name).train_image_shape[-1]
    return VAEDecoder(
        hidden=int(dec.get("hidden", 256)),
        start_shape=tuple(int(s) for s in dec.get("start_shape", (4, 4, 64))),
        widths=tuple(int(w) for w in dec.get("widths", (64, 32, 32))),
        kernel_size=int(dec.get("kernel_size", 4)),
        stride=int(dec.get("stride", 2)),
        out_channels=int(channels),
        dtype=dtype_from_name(config.get("dtype", "float32")),
    )


def build_latent_model(config, axis_name):
    """``VAENetwork``: ``config.model``'s Gaussian encoder + ``build_decoder(config)``."""
    from ssljax.models.network import build_encoder_from_config
    from ssljax.models.vae import VAENetwork

    return VAENetwork(encoder=build_encoder_from_config(config, axis_name),
                      decoder=build_decoder(config))


def build_discriminator(config):
    """FactorVAE's ``TCDiscriminator`` of ``objective.disc_hidden``."""
    from ssljax.models.vae import TCDiscriminator

    return TCDiscriminator(hidden=tuple(int(h) for h in _setting(config, "disc_hidden")))


def discriminator_optimizer(config) -> optax.GradientTransformation:
    """Adam for the discriminator (Locatello et al.: lr 1e-4, beta1 0.5, beta2 0.9)."""
    return optax.adam(float(_setting(config, "disc_learning_rate")),
                      b1=float(_setting(config, "disc_beta1")),
                      b2=float(_setting(config, "disc_beta2")))


def image_views(rng, images, config):
    """``(x,)``: the batch as float32 in [0, 1] (dSprites: exactly 0 or 1)."""
    from ssljax.data.augment import to_float

    del rng, config
    return (to_float(images),)


def corrupted_views(rng, images, config):
    """``(corrupted, clean)`` for the denoising autoencoder."""
    from ssljax.data import corruptions
    from ssljax.data.augment import to_float

    x = to_float(images)
    kind = str(_setting(config, "noise"))
    if kind == "gaussian":
        stddev = float(_setting(config, "noise_stddev"))
        return corruptions.gaussian_noise(rng, x, stddev=stddev), x
    if kind == "masking":
        drop_prob = float(_setting(config, "drop_prob"))
        return corruptions.masking_noise(rng, x, drop_prob=drop_prob)[0], x
    raise ValueError(f"objective.noise={kind!r} is invalid; choose one of "
                     f"{corruptions.NOISE_KINDS}")


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


def init_noise_extra(params, model_state, config):
    """``{'noise_key'}``: the key of the latent noise, shared by all devices."""
    del params, model_state
    return {"noise_key": jax.random.fold_in(jax.random.PRNGKey(int(config.seed)), 3)}


def update_noise_extra(extra, outputs, **_):
    """A fresh noise key for the next step."""
    del outputs
    return dict(extra, noise_key=jax.random.split(extra["noise_key"])[1])


def _elbo_terms(params, model_state, x, *, model, config, extra, axis_name):
    """Encode, sample once, decode: ``(reconstruction [B], kl [B], mean, log_var, z)``."""
    mean, log_var = encode(params, model_state, x, model=model)
    eps = global_batch_noise(extra["noise_key"], mean.shape, axis_name)
    z = mean + jnp.exp(0.5 * log_var) * eps  # reparameterize() with global-batch noise
    decoded = decode(params, model_state, z, model=model)
    rec = -reconstruction_log_likelihood(x, decoded, **_likelihood_kwargs(config))
    return rec, gaussian_kl_standard(mean, log_var), mean, log_var, z


def _elbo_metrics(rec, kl):
    rec, kl = jnp.mean(rec), jnp.mean(kl)
    return {"reconstruction": rec, "kl": kl, "elbo": -(rec + kl)}


# ---------------------------------------------------------------------------
# Autoencoder and denoising autoencoder
# ---------------------------------------------------------------------------


def autoencoder_loss(params, model_state, views, rng, *, model, config, **_):
    """``-log p(x | decode(mean(x~)))`` with ``x~ = x`` (AE) or a corrupted ``x`` (DAE)."""
    del rng
    x_in, x = (views[0], views[0]) if len(views) == 1 else views
    mean, _ = encode(params, model_state, x_in, model=model)
    decoded = decode(params, model_state, mean, model=model)
    rec = jnp.mean(-reconstruction_log_likelihood(x, decoded, **_likelihood_kwargs(config)))
    metrics = {"loss": rec, "reconstruction": rec}
    return rec, (metrics, model_state, {"embedding": mean})


# ---------------------------------------------------------------------------
# VAE / beta-VAE
# ---------------------------------------------------------------------------


def vae_loss(params, model_state, views, rng, *, model, config, extra, axis_name=None, **_):
    """``mean(-log p(x|z) + beta KL)`` with one reparameterised sample per image."""
    del rng
    (x,) = views
    rec, kl, mean, _, _ = _elbo_terms(params, model_state, x, model=model, config=config,
                                      extra=extra, axis_name=axis_name)
    beta = float(_setting(config, "beta"))
    loss = jnp.mean(rec + beta * kl)
    metrics = dict(_elbo_metrics(rec, kl), loss=loss)
    return loss, (metrics, model_state, {"embedding": mean})


# ---------------------------------------------------------------------------
# beta-TCVAE
# ---------------------------------------------------------------------------


def beta_tcvae_loss(params, model_state, views, rng, *, model, config, extra, axis_name=None,
                    **_):
    """``mean(-log p(x|z) + KL) + (beta - 1) TC`` with the minibatch-weighted TC estimate over
    the global batch's posteriors."""
    del rng
    (x,) = views
    rec, kl, mean, log_var, z = _elbo_terms(params, model_state, x, model=model, config=config,
                                            extra=extra, axis_name=axis_name)
    batch_mean, _ = gather_batch(mean, axis_name)
    batch_log_var, _ = gather_batch(log_var, axis_name)
    parts = kl_decomposition(z, mean, log_var, batch_mean=batch_mean, batch_log_var=batch_log_var)
    beta = float(_setting(config, "beta"))
    loss = jnp.mean(rec + kl) + (beta - 1.0) * parts["total_correlation"]
    metrics = dict(_elbo_metrics(rec, kl), loss=loss, mutual_info=parts["mutual_info"],
                   total_correlation=parts["total_correlation"], dimwise_kl=parts["dimwise_kl"])
    return loss, (metrics, model_state, {"embedding": mean})


# ---------------------------------------------------------------------------
# FactorVAE
# ---------------------------------------------------------------------------


def factor_vae_loss(params, model_state, views, rng, *, model, config, axis_name=None, extra,
                    **_):
    """``mean(-log p(x|z) + KL) + gamma TC(z)``; also the discriminator's gradient.

    The discriminator sees this device's latents (class 0) and this device's slice of the
    dimension-permuted global batch of latents (class 1), both without gradient to the VAE.
    """
    del rng
    (x,) = views
    rec, kl, mean, _, z = _elbo_terms(params, model_state, x, model=model, config=config,
                                      extra=extra, axis_name=axis_name)
    disc = build_discriminator(config)
    disc_params = extra["disc_params"]
    tc = density_ratio_tc(disc.apply({"params": disc_params}, z))
    gamma = float(_setting(config, "gamma"))
    loss = jnp.mean(rec + kl) + gamma * tc

    z_fixed = jax.lax.stop_gradient(z)
    z_all, offset = gather_batch(z_fixed, axis_name)
    z_perm = jax.lax.dynamic_slice_in_dim(permute_dims(extra["permutation_key"], z_all), offset,
                                          z.shape[0], axis=0)

    def disc_objective(p):
        real = disc.apply({"params": p}, z_fixed)
        perm = disc.apply({"params": p}, z_perm)
        return tc_discriminator_loss(real, perm), (real, perm)

    (disc_loss, (real, perm)), disc_grads = jax.value_and_grad(disc_objective, has_aux=True)(
        disc_params)
    accuracy = 0.5 * (jnp.mean((real[:, 0] > real[:, 1]).astype(jnp.float32))
                      + jnp.mean((perm[:, 1] > perm[:, 0]).astype(jnp.float32)))
    metrics = dict(_elbo_metrics(rec, kl), loss=loss, total_correlation=tc,
                   disc_loss=disc_loss, disc_accuracy=accuracy)
    return loss, (metrics, model_state, {"embedding": mean, "disc_grads": disc_grads})


def init_factor_vae_extra(params, model_state, config):
    """Discriminator parameters, its Adam state, the permutation and noise keys."""
    disc = build_discriminator(config)
    seed_key = jax.random.PRNGKey(int(config.seed))
    latent_dim = int(config.model.get("encoder_kwargs", {}).get("latent_dim", 10))
    disc_params = disc.init(jax.random.fold_in(seed_key, 1),
                            jnp.zeros((1, latent_dim), jnp.float32))["params"]
    return {"disc_params": disc_params,
            "disc_opt_state": discriminator_optimizer(config).init(disc_params),
            "permutation_key": jax.random.fold_in(seed_key, 2),
            **init_noise_extra(params, model_state, config)}


def update_factor_vae_extra(extra, outputs, *, params, model_state, step, config, axis_name):
    """One Adam step of the discriminator on the device-averaged gradient (kept if finite);
    fresh permutation and noise keys for the next step."""
    del params, model_state, step
    grads = outputs["disc_grads"]
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = discriminator_optimizer(config).update(
        grads, extra["disc_opt_state"], extra["disc_params"])
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    stepped = {"disc_params": optax.apply_updates(extra["disc_params"], updates),
               "disc_opt_state": opt_state}
    kept = {k: extra[k] for k in stepped}
    new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), stepped, kept)
    new["permutation_key"] = jax.random.split(extra["permutation_key"])[1]
    new["noise_key"] = jax.random.split(extra["noise_key"])[1]
    return new


# ---------------------------------------------------------------------------
# Config checks
# ---------------------------------------------------------------------------


def _check_number(name: str, value, *, low: float = 0.0, strict: bool = False) -> None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = float("nan")
    ok = value > low if strict else value >= low
    if not ok:
        op = ">" if strict else ">="
        raise ValueError(f"objective.{name}={value} is invalid; valid: a number {op} {low:g}")


def check_latent_model_config(config, objective_name: str) -> None:
    """One-line errors for encoders, decoders and likelihoods a latent model cannot use."""
    from ssljax.data.datasets import get_dataset_spec
    from ssljax.models.network import build_encoder_from_config

    from ssljax.models import ENCODERS

    gaussian = [n for n, cls in ENCODERS.items() if hasattr(cls, "posterior")]
    if not hasattr(ENCODERS.get(config.model.encoder), "posterior"):
        raise ValueError(f"objective {objective_name!r} needs a Gaussian encoder; "
                         f"model.encoder={config.model.encoder!r} is invalid; choose one of "
                         f"{gaussian}")
    encoder = build_encoder_from_config(config, None)
    latent_dim = encoder.latent_dim
    if not (isinstance(latent_dim, (int, np.integer)) and latent_dim >= 1):
        raise ValueError(f"model.encoder_kwargs.latent_dim={latent_dim!r} is invalid; valid: an "
                         "int >= 1")
    likelihood = _setting(config, "likelihood")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"objective.likelihood={likelihood!r} is invalid; choose one of "
                         f"{LIKELIHOODS}")
    _check_number("gaussian_std", _setting(config, "gaussian_std"), strict=True)
    decoder = build_decoder(config)
    height, width = get_dataset_spec(config.dataset.name).train_image_shape[:2]
    if decoder.output_size() != (height, width):
        raise ValueError(
            f"model.vae_decoder start_shape={tuple(decoder.start_shape)} with "
            f"{len(decoder.widths) + 1} stride-{decoder.stride} upconvolutions decodes "
            f"{decoder.output_size()} images, but dataset {config.dataset.name!r} has "
            f"{(height, width)}; valid: start_shape * 2**{len(decoder.widths) + 1} equal to "
            "the image size")


def check_autoencoder_config(config) -> None:
    check_latent_model_config(config, "autoencoder")


def check_denoising_ae_config(config) -> None:
    from ssljax.data import corruptions

    check_latent_model_config(config, "denoising_ae")
    kind = _setting(config, "noise")
    if kind not in corruptions.NOISE_KINDS:
        raise ValueError(f"objective.noise={kind!r} is invalid; choose one of "
                         f"{corruptions.NOISE_KINDS}")
    if kind == "gaussian":
        _check_number("noise_stddev", _setting(config, "noise_stddev"), strict=True)
    else:
        p = float(_setting(config, "drop_prob"))
        if not 0.0 < p < 1.0:
            raise ValueError(f"objective.drop_prob={p} is invalid; valid: a number in (0, 1)")


def check_vae_config(config) -> None:
    check_latent_model_config(config, config.objective.name)
    _check_number("beta", _setting(config, "beta"))


def check_beta_tcvae_config(config) -> None:
    check_latent_model_config(config, "beta_tcvae")
    _check_number("beta", _setting(config, "beta"))


def check_factor_vae_config(config) -> None:
    check_latent_model_config(config, "factor_vae")
    _check_number("gamma", _setting(config, "gamma"))
    _check_number("disc_learning_rate", _setting(config, "disc_learning_rate"), strict=True)
    for key in ("disc_beta1", "disc_beta2"):
        b = float(_setting(config, key))
        if not 0.0 <= b < 1.0:
            raise ValueError(f"objective.{key}={b} is invalid; valid: a number in [0, 1)")
    hidden = tuple(_setting(config, "disc_hidden"))
    if not hidden or any(not (isinstance(h, (int, np.integer)) and h >= 1) for h in hidden):
        raise ValueError(f"objective.disc_hidden={hidden} is invalid; valid: a non-empty tuple "
                         "of ints >= 1")
    if int(config.batch_size) < 2:
        raise ValueError(f"batch_size={config.batch_size} is invalid for factor_vae; valid: >= 2 "
                         "(permuting latents needs several images)")


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------

AUTOENCODER = register(Objective(
    name="autoencoder",
    build_model=build_latent_model,
    make_views=image_views,
    loss=autoencoder_loss,
    check_config=check_autoencoder_config,
    description="Deterministic autoencoder through the latent means (Bernoulli/Gaussian "
                "reconstruction)",
))

DENOISING_AE = register(Objective(
    name="denoising_ae",
    build_model=build_latent_model,
    make_views=corrupted_views,
    loss=autoencoder_loss,
    check_config=check_denoising_ae_config,
    description="Denoising autoencoder through the latent means: masking or Gaussian noise "
                "(Vincent et al. 2008)",
))

VAE = register(Objective(
    name="vae",
    build_model=build_latent_model,
    make_views=image_views,
    loss=vae_loss,
    init_extra=init_noise_extra,
    update_extra=update_noise_extra,
    check_config=check_vae_config,
    description="VAE / beta-VAE: -log p(x|z) + beta KL(q(z|x) || N(0, I)) (Kingma & Welling "
                "2014; Higgins et al. 2017)",
))

BETA_VAE = register(dataclasses.replace(
    VAE, name="beta_vae",
    description="beta-VAE (Higgins et al. 2017): the 'vae' record under its own name",
))

FACTOR_VAE = register(Objective(
    name="factor_vae",
    build_model=build_latent_model,
    make_views=image_views,
    loss=factor_vae_loss,
    init_extra=init_factor_vae_extra,
    update_extra=update_factor_vae_extra,
    check_config=check_factor_vae_config,
    description="FactorVAE: VAE + gamma TC from a dimension-permutation discriminator "
                "(Kim & Mnih 2018)",
))

BETA_TCVAE = register(Objective(
    name="beta_tcvae",
    build_model=build_latent_model,
    make_views=image_views,
    loss=beta_tcvae_loss,
    init_extra=init_noise_extra,
    update_extra=update_noise_extra,
    check_config=check_beta_tcvae_config,
    description="beta-TCVAE: VAE + (beta - 1) TC by minibatch-weighted sampling "
                "(Chen et al. 2018)",
))
