"""Reconstruction pretext tasks: context-encoder inpainting, colorization, denoising autoencoder.

Pure losses (arrays in, scalar out) and their registry records.

* ``masked_l2_loss``: Pathak et al. 2016's ``L_rec = ||M * (x - F((1 - M) * x))||^2``. Normalised
  (our choice) as the mean squared error over each image's hidden values, then averaged over
  images: ``mean_b [ sum_{h,w,c} M (x - F)^2 / (C * sum_{h,w} M) ]``. Pixels outside the mask do
  not enter; every image weighs the same whatever its hole size, so the mean over devices of
  per-device losses is the global batch's loss.
* ``discriminator_loss`` / ``generator_adversarial_loss``: Pathak et al.'s
  ``L_adv = max_D E[log D(x) + log(1 - D(F((1 - M) * x)))]`` with ``D = sigmoid(logits)``,
  written as minimised cross entropies averaged over the patch logits. The generator uses the
  non-saturating ``-log D(fake)`` by default (as DCGAN, whose training recipe Pathak et al.
  follow); ``saturating=True`` gives the literal ``log(1 - D(fake))``.
* ``colorization_classification_loss``: Zhang et al. 2016's multinomial cross entropy
  ``-sum_{h,w} v(Z_hw) sum_q Z_hwq log Zhat_hwq`` against soft-encoded ab targets, averaged over
  pixels instead of summed; ``rebalance_weights`` gives their class rebalancing
  ``w ~ ((1 - lambda) p~ + lambda / Q)^-1`` normalised to ``E_p~[w] = 1`` (lambda = 0.5,
  ``p~`` the empirical bin distribution smoothed with a Gaussian of sigma 5).
  ``colorization_regression_loss`` is the L2 regression option (Larsson et al. 2016/2017
  compare both; classification gave them the better features).
* ``denoising_loss``: squared error of the reconstruction of the clean input (Vincent et al.
  2008, 2010), optionally weighting corrupted and clean values differently (their
  "emphasised" denoising); mean over values.

Records: ``inpainting`` (the discriminator, when ``objective.lambda_adv > 0``, lives in
``TrainState.extra`` with its own Adam state: the loss computes its gradient on the same
step's real and inpainted images and returns it in ``outputs``; ``update_extra`` averages it
over devices and applies the update, so generator and discriminator step simultaneously, each
against the other's pre-step parameters), ``colorization`` (the running bin distribution for
rebalancing lives in ``extra``) and ``denoising_autoencoder``. All three read the encoder's
``model.decoder.feature_layer`` map through ``ssljax.models.decoders.ReconstructionNetwork``;
the encoder's variables sit where ``checkpoint_eval.encoder_of`` looks for them.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssljax.data import corruptions
from ssljax.objectives.registry import Objective, register

LOSS_KINDS = ("classification", "regression")
AB_SCALE = 100.0  # regression targets are ab / AB_SCALE


# ---------------------------------------------------------------------------
# Pure losses
# ---------------------------------------------------------------------------


def masked_l2_loss(images: chex.Array, reconstruction: chex.Array, mask: chex.Array) -> chex.Array:
    """Mean over images of the mean squared error over each image's hidden values.

    Args:
      images: ``[B, H, W, C]`` originals ``x``.
      reconstruction: ``[B, H, W, C]`` network output ``F((1 - M) * x)``.
      mask: ``[B, H, W, 1]`` (or ``[B, H, W, C]``), 1 where a value was hidden.

    Returns:
      ``mean_b sum(M (x - F)^2) / (number of hidden values of image b)``; an image with an
      empty mask contributes 0.
    """
    chex.assert_rank([images, reconstruction, mask], 4)
    chex.assert_equal_shape([images, reconstruction])
    mask = jnp.broadcast_to(mask.astype(jnp.float32), images.shape)
    sq = mask * (images.astype(jnp.float32) - reconstruction.astype(jnp.float32)) ** 2
    per_image = jnp.sum(sq, axis=(1, 2, 3)) / jnp.maximum(jnp.sum(mask, axis=(1, 2, 3)), 1.0)
    return jnp.mean(per_image)


def denoising_loss(
    images: chex.Array,
    reconstruction: chex.Array,
    corrupted: chex.Array | None = None,
    *,
    corrupted_weight: float = 1.0,
    clean_weight: float = 1.0,
) -> chex.Array:
    """Mean over values of ``w (x - r)^2``, ``w`` = ``corrupted_weight`` where ``corrupted``.

    With both weights 1 (or ``corrupted=None``) this is the plain mean squared error.
    """
    chex.assert_rank([images, reconstruction], 4)
    chex.assert_equal_shape([images, reconstruction])
    sq = (images.astype(jnp.float32) - reconstruction.astype(jnp.float32)) ** 2
    if corrupted is not None:
        c = jnp.broadcast_to(corrupted.astype(jnp.float32), images.shape)
        sq = sq * (corrupted_weight * c + clean_weight * (1.0 - c))
    return jnp.mean(sq)


def discriminator_loss(real_logits: chex.Array, fake_logits: chex.Array) -> chex.Array:
    """``-mean log D(real) - mean log(1 - D(fake))`` with ``D = sigmoid(logits)``."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def generator_adversarial_loss(fake_logits: chex.Array, *, saturating: bool = False) -> chex.Array:
    """``-mean log D(fake)`` (non-saturating) or ``mean log(1 - D(fake))`` (saturating)."""
    if saturating:
        return -jnp.mean(jax.nn.softplus(fake_logits))
    return jnp.mean(jax.nn.softplus(-fake_logits))


def colorization_classification_loss(
    logits: chex.Array, targets: chex.Array, weights: chex.Array | None = None
) -> chex.Array:
    """Mean over pixels of ``v * (-sum_q Z_q log softmax(logits)_q)``.

    Args:
      logits: ``[..., Q]`` predicted bin logits.
      targets: ``[..., Q]`` target distributions ``Z`` (soft or one-hot encodings).
      weights: ``[...]`` per-pixel weights ``v`` (class rebalancing), or None for 1.
    """
    chex.assert_equal_shape([logits, targets])
    ce = -jnp.sum(targets * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), axis=-1)
    if weights is not None:
        ce = ce * weights
    return jnp.mean(ce)


def colorization_regression_loss(prediction: chex.Array, ab: chex.Array, *,
                                 scale: float = AB_SCALE) -> chex.Array:
    """Mean squared error between ``prediction [..., 2]`` and ``ab / scale``."""
    chex.assert_equal_shape([prediction, ab])
    return jnp.mean((prediction.astype(jnp.float32) - ab / scale) ** 2)


def smooth_distribution(p: chex.Array, centers, sigma: float) -> chex.Array:
    """Spreads each bin's mass over the bins with a Gaussian of ``sigma`` (ab units).

    Bin ``i`` gives bin ``j`` the fraction ``K_ij / sum_j' K_ij'`` of its mass with
    ``K_ij = exp(-|c_i - c_j|^2 / (2 sigma^2))``, so the result still sums to 1.
    ``sigma = 0`` returns ``p``.
    """
    if sigma <= 0:
        return p
    c = np.asarray(centers, np.float64)
    d2 = np.sum((c[:, None, :] - c[None, :, :]) ** 2, axis=-1)
    k = np.exp(-d2 / (2.0 * sigma**2))
    k = (k / k.sum(axis=1, keepdims=True)).astype(np.float32)
    return p @ jnp.asarray(k)


def rebalance_weights(prior: chex.Array, centers, *, lam: float = 0.5,
                      sigma: float = 5.0) -> chex.Array:
    """Zhang et al.'s class-rebalancing weights ``[Q]``.

    ``w_q ~ 1 / ((1 - lam) p~_q + lam / Q)`` with ``p~`` the ``sigma``-smoothed ``prior``,
    scaled so that ``sum_q p~_q w_q = 1``. ``lam = 1`` gives all ones.
    """
    q = prior.shape[-1]
    p = smooth_distribution(prior / jnp.sum(prior), centers, sigma)
    w = 1.0 / ((1.0 - lam) * p + lam / q)
    return w / jnp.sum(p * w)


# ---------------------------------------------------------------------------
# Shared pieces of the records
# ---------------------------------------------------------------------------


def _train_image_shape(config) -> tuple[int, int, int]:
    """``(H, W, C)`` of the images the views are made from."""
    from ssljax.data.datasets import get_dataset_spec

    h, w, c = get_dataset_spec(config.dataset.name).train_image_shape
    size = config.augment.get("output_size") if config.objective.get("augment", False) else None
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
    return int(h), int(w), int(c)


def _decoder_config(config) -> ml_collections.ConfigDict:
    return config.model.get("decoder", ml_collections.ConfigDict())


def build_reconstruction_model(config, axis_name, *, out_channels: int, output_activation: str,
                               output_size=None):
    """``ReconstructionNetwork``: ``config.model``'s encoder + a ``ConvDecoder``."""
    from ssljax.models.decoders import ConvDecoder, ReconstructionNetwork
    from ssljax.models.network import build_encoder_from_config, dtype_from_name

    dec = _decoder_config(config)
    upsample = dec.get("upsample")
    decoder = ConvDecoder(
        widths=tuple(int(w) for w in dec.get("widths", (64, 32))),
        upsample=None if upsample is None else tuple(int(u) for u in upsample),
        out_channels=int(out_channels),
        channel_fc=bool(dec.get("channel_fc", False)),
        kernel_size=int(dec.get("kernel_size", 3)),
        norm=str(dec.get("norm", "batch")),
        output_activation=output_activation,
        axis_name=axis_name,
        dtype=dtype_from_name(config.get("dtype", "float32")),
    )
    return ReconstructionNetwork(
        encoder_module=build_encoder_from_config(config, axis_name),
        decoder=decoder,
        feature_layer=str(dec.get("feature_layer", "block4")),
        output_size=None if output_size is None else tuple(int(s) for s in output_size),
    )


def clean_images(rng, images, config) -> jax.Array:
    """Float images in [0, 1]; augmented once with ``config.augment`` if ``objective.augment``."""
    from ssljax.data.augment import make_views, to_float

    if config.objective.get("augment", False):
        (x,) = make_views(rng, images, config.augment, num_views=1)
        return x
    return to_float(images)


def apply_network(params, model_state, x, *, model):
    """The network in train mode on ``x``: ``(outputs, new_model_state)``."""
    return model.apply({"params": params, **model_state}, x, train=True,
                       mutable=list(model_state))


def _check_positive_int(name: str, value, upper: int | None = None) -> None:
    ok = isinstance(value, (int, np.integer)) and value >= 1 and (upper is None or value <= upper)
    if not ok:
        bound = f"1..{upper}" if upper is not None else ">= 1"
        raise ValueError(f"{name}={value!r} is invalid; valid: an int in {bound}")


def _check_unit(name: str, value, *, closed: bool = False) -> None:
    value = float(value)
    ok = 0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name}={value} is invalid; valid: a number in {interval}")


def check_decoder_config(config, objective_name: str) -> None:
    """One-line errors for encoders and decoder settings a reconstruction cannot use."""
    from ssljax.models import encoder_layer_names
    from ssljax.models.decoders import DECODER_NORMS
    from ssljax.models.network import build_encoder_from_config

    if config.model.get("patches") is not None:
        raise ValueError(f"objective {objective_name!r} decodes an encoder feature map; remove "
                         "config.model.patches")
    dec = _decoder_config(config)
    norm = dec.get("norm", "batch")
    if norm not in DECODER_NORMS:
        raise ValueError(f"model.decoder.norm={norm!r} is invalid; choose one of {DECODER_NORMS}")
    widths = tuple(dec.get("widths", (64, 32)))
    upsample = dec.get("upsample")
    if upsample is not None and len(tuple(upsample)) != len(widths):
        raise ValueError(f"model.decoder.upsample={tuple(upsample)} needs one factor per width "
                         f"of model.decoder.widths={widths}")
    encoder = build_encoder_from_config(config, None)
    sample = jax.ShapeDtypeStruct((1,) + _train_image_shape(config), jnp.float32)
    variables = jax.eval_shape(lambda x: encoder.init(jax.random.PRNGKey(0), x, train=False),
                               sample)
    maps = [n for n in encoder_layer_names(encoder, variables, sample) if n != "pooled"]
    layer = dec.get("feature_layer", "block4")
    if layer not in maps:
        raise ValueError(f"model.decoder.feature_layer={layer!r} is invalid; choose one of the "
                         f"encoder's feature maps {maps}")


# ---------------------------------------------------------------------------
# Inpainting (Pathak et al. 2016)
# ---------------------------------------------------------------------------


def build_discriminator(config):
    """The ``PatchDiscriminator`` of ``objective.disc_widths``."""
    from ssljax.models.decoders import PatchDiscriminator

    widths = tuple(int(w) for w in config.objective.get("disc_widths", (32, 64)))
    return PatchDiscriminator(widths=widths)


def discriminator_optimizer(config) -> optax.GradientTransformation:
    """Adam with DCGAN's beta1 = 0.5 at ``objective.disc_learning_rate``."""
    obj = config.objective
    return optax.adam(float(obj.get("disc_learning_rate", 2e-4)),
                      b1=float(obj.get("disc_beta1", 0.5)))


def _mask_settings(config) -> dict:
    obj = config.objective
    h, w, _ = _train_image_shape(config)
    hole = obj.get("hole_size", 0) or (h // 2, w // 2)
    return dict(
        kind=str(obj.get("mask", "random_region")),
        hole_size=tuple(hole) if not isinstance(hole, (int, np.integer)) else int(hole),
        num_blocks=int(obj.get("num_blocks", 4)),
        block_size=int(obj.get("block_size", 0) or min(h, w) // 4),
        fraction=float(obj.get("region_fraction", 0.25)),
        scale=float(obj.get("region_scale", 4.0)),
    )


def _fill_value(config):
    fill = config.objective.get("fill_value", 0.5)
    return tuple(float(f) for f in fill) if isinstance(fill, (tuple, list)) else float(fill)


def inpainting_views(rng, images, config):
    """``(masked input, original, mask)``: ``[B, H, W, C]``, ``[B, H, W, C]``, ``[B, H, W, 1]``."""
    image_rng, mask_rng = jax.random.split(rng)
    x = clean_images(image_rng, images, config)
    b, h, w, _ = x.shape
    masks = corruptions.sample_masks(mask_rng, b, h, w, **_mask_settings(config))
    return corruptions.apply_mask(x, masks, _fill_value(config)), x, masks


def build_inpainting_model(config, axis_name):
    """Encoder + decoder to the input's channels, sigmoid output in [0, 1]."""
    channels = _train_image_shape(config)[-1]
    return build_reconstruction_model(config, axis_name, out_channels=channels,
                                      output_activation="sigmoid")


def _adversarial_weights(config) -> tuple[float, float]:
    obj = config.objective
    return float(obj.get("lambda_rec", 0.999)), float(obj.get("lambda_adv", 0.0))


def inpainting_objective_loss(params, model_state, views, rng, *, model, config, axis_name,
                              extra, **_):
    """``lambda_rec * L_rec + lambda_adv * L_adv`` and the discriminator's gradient.

    The generator term sees the inpainted image ``M * F + (1 - M) * x`` through the current
    discriminator; the discriminator's own loss (real ``x`` against the inpainted image with
    the generator's gradient stopped) is differentiated here with respect to its parameters
    and handed to ``update_extra`` as ``outputs['disc_grads']``.
    """
    del rng, axis_name
    inputs, images, masks = views
    out, new_state = apply_network(params, model_state, inputs, model=model)
    recon = out["reconstruction"]
    lambda_rec, lambda_adv = _adversarial_weights(config)
    rec = masked_l2_loss(images, recon, masks)
    loss = lambda_rec * rec
    metrics = {"rec_loss": rec}
    outputs = {"embedding": out["features"]}
    if lambda_adv > 0:
        disc = build_discriminator(config)
        disc_params = extra["disc_params"]
        fake = masks * recon + (1.0 - masks) * images
        adv = generator_adversarial_loss(
            disc.apply({"params": disc_params}, fake),
            saturating=bool(config.objective.get("saturating", False)))
        loss = loss + lambda_adv * adv

        def disc_objective(p):
            logits = disc.apply({"params": p},
                                jnp.concatenate([images, jax.lax.stop_gradient(fake)], axis=0))
            real_logits, fake_logits = jnp.split(logits, 2, axis=0)
            return discriminator_loss(real_logits, fake_logits), (real_logits, fake_logits)

        (disc_loss, (real_logits, fake_logits)), disc_grads = jax.value_and_grad(
            disc_objective, has_aux=True)(disc_params)
        metrics.update(
            adv_loss=adv,
            disc_loss=disc_loss,
            disc_real_accuracy=jnp.mean((real_logits > 0).astype(jnp.float32)),
            disc_fake_accuracy=jnp.mean((fake_logits < 0).astype(jnp.float32)),
        )
        outputs["disc_grads"] = disc_grads
    metrics["loss"] = loss
    return loss, (metrics, new_state, outputs)


def init_inpainting_extra(params, model_state, config):
    """Discriminator parameters and Adam state when ``lambda_adv > 0``, else ``{}``."""
    del params, model_state
    if _adversarial_weights(config)[1] <= 0:
        return {}
    disc = build_discriminator(config)
    rng = jax.random.fold_in(jax.random.PRNGKey(int(config.seed)), 1)
    sample = jnp.zeros((1,) + _train_image_shape(config), jnp.float32)
    disc_params = disc.init(rng, sample)["params"]
    return {"disc_params": disc_params,
            "disc_opt_state": discriminator_optimizer(config).init(disc_params)}


def update_inpainting_extra(extra, outputs, *, params, model_state, step, config, axis_name):
    """One Adam step of the discriminator on the device-averaged gradient (kept if finite)."""
    del params, model_state, step
    if "disc_params" not in extra:
        return extra
    grads = outputs["disc_grads"]
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = discriminator_optimizer(config).update(
        grads, extra["disc_opt_state"], extra["disc_params"])
    new = {"disc_params": optax.apply_updates(extra["disc_params"], updates),
           "disc_opt_state": opt_state}
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    return jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, extra)


def check_inpainting_config(config) -> None:
    """One-line errors for masks, loss weights and decoders that cannot work."""
    obj = config.objective
    h, w, c = _train_image_shape(config)
    s = _mask_settings(config)
    if s["kind"] not in corruptions.MASK_KINDS:
        raise ValueError(f"objective.mask={s['kind']!r} is invalid; choose one of "
                         f"{corruptions.MASK_KINDS}")
    if s["kind"] == "central":
        hole = s["hole_size"]
        hh, hw = (hole, hole) if isinstance(hole, int) else hole
        if not (1 <= hh < h and 1 <= hw < w):
            raise ValueError(f"objective.hole_size={hole!r} is invalid for {h}x{w} images; "
                             f"valid: 1..{min(h, w) - 1}")
    elif s["kind"] == "random_block":
        _check_positive_int("objective.block_size", s["block_size"], min(h, w))
        _check_positive_int("objective.num_blocks", s["num_blocks"])
    else:
        _check_unit("objective.region_fraction", s["fraction"])
        if not s["scale"] >= 1:
            raise ValueError(f"objective.region_scale={s['scale']} is invalid; valid: a number "
                             ">= 1 (pixels per noise cell)")
    fill = _fill_value(config)
    if isinstance(fill, tuple) and len(fill) not in (1, c):
        raise ValueError(f"objective.fill_value={fill} is invalid for {c}-channel images; valid: "
                         f"one number or {c}")
    lambda_rec, lambda_adv = _adversarial_weights(config)
    if lambda_rec < 0 or lambda_adv < 0 or lambda_rec + lambda_adv <= 0:
        raise ValueError(f"objective.lambda_rec={lambda_rec} and objective.lambda_adv="
                         f"{lambda_adv} are invalid; valid: both >= 0, not both 0")
    if lambda_adv > 0 and not float(obj.get("disc_learning_rate", 2e-4)) > 0:
        raise ValueError(f"objective.disc_learning_rate={obj.disc_learning_rate} is invalid; "
                         "valid: a number > 0")
    check_decoder_config(config, "inpainting")


INPAINTING = register(
    Objective(
        name="inpainting",
        build_model=build_inpainting_model,
        make_views=inpainting_views,
        loss=inpainting_objective_loss,
        init_extra=init_inpainting_extra,
        update_extra=update_inpainting_extra,
        check_config=check_inpainting_config,
        description="Context-encoder inpainting: masked L2 + optional adversarial term "
                    "(Pathak et al. 2016)",
    )
)


# ---------------------------------------------------------------------------
# Denoising autoencoder (Vincent et al. 2008, 2010)
# ---------------------------------------------------------------------------


def denoising_views(rng, images, config):
    """``(corrupted, clean, corrupted-mask)``; Gaussian noise marks every value corrupted."""
    image_rng, noise_rng = jax.random.split(rng)
    x = clean_images(image_rng, images, config)
    obj = config.objective
    kind = str(obj.get("noise", "gaussian"))
    if kind == "gaussian":
        noisy = corruptions.gaussian_noise(noise_rng, x, stddev=float(obj.get("noise_stddev", 0.3)))
        return noisy, x, jnp.ones(x.shape[:3] + (1,), x.dtype)
    if kind == "masking":
        noisy, mask = corruptions.masking_noise(noise_rng, x,
                                                drop_prob=float(obj.get("drop_prob", 0.25)))
        return noisy, x, mask
    raise ValueError(f"objective.noise={kind!r} is invalid; choose one of "
                     f"{corruptions.NOISE_KINDS}")


def build_denoising_model(config, axis_name):
    """Encoder + decoder to the input's channels, sigmoid output in [0, 1]."""
    channels = _train_image_shape(config)[-1]
    return build_reconstruction_model(config, axis_name, out_channels=channels,
                                      output_activation="sigmoid")


def denoising_objective_loss(params, model_state, views, rng, *, model, config, **_):
    """``denoising_loss`` of the reconstruction of the corrupted input against the clean one."""
    del rng
    noisy, images, corrupted = views
    out, new_state = apply_network(params, model_state, noisy, model=model)
    obj = config.objective
    loss = denoising_loss(images, out["reconstruction"], corrupted,
                          corrupted_weight=float(obj.get("corrupted_weight", 1.0)),
                          clean_weight=float(obj.get("clean_weight", 1.0)))
    metrics = {"loss": loss,
               "mse": jnp.mean((images - out["reconstruction"]) ** 2)}
    return loss, (metrics, new_state, {"embedding": out["features"]})


def check_denoising_config(config) -> None:
    """One-line errors for noise settings and decoders that cannot work."""
    obj = config.objective
    kind = obj.get("noise", "gaussian")
    if kind not in corruptions.NOISE_KINDS:
        raise ValueError(f"objective.noise={kind!r} is invalid; choose one of "
                         f"{corruptions.NOISE_KINDS}")
    if kind == "gaussian" and not float(obj.get("noise_stddev", 0.3)) > 0:
        raise ValueError(f"objective.noise_stddev={obj.noise_stddev} is invalid; valid: a "
                         "number > 0")
    if kind == "masking":
        _check_unit("objective.drop_prob", obj.get("drop_prob", 0.25))
    for key in ("corrupted_weight", "clean_weight"):
        if float(obj.get(key, 1.0)) < 0:
            raise ValueError(f"objective.{key}={obj[key]} is invalid; valid: a number >= 0")
    check_decoder_config(config, "denoising_autoencoder")


DENOISING_AUTOENCODER = register(
    Objective(
        name="denoising_autoencoder",
        build_model=build_denoising_model,
        make_views=denoising_views,
        loss=denoising_objective_loss,
        check_config=check_denoising_config,
        description="Denoising autoencoder: Gaussian or masking noise, L2 reconstruction "
                    "(Vincent et al. 2008)",
    )
)


# ---------------------------------------------------------------------------
# Colorization (Zhang et al. 2016; Larsson et al. 2016, 2017)
# ---------------------------------------------------------------------------


def _color_settings(config) -> dict:
    obj = config.objective
    return dict(
        loss=str(obj.get("loss", "classification")),
        grid=float(obj.get("ab_grid", corruptions.AB_GRID)),
        neighbors=int(obj.get("soft_neighbors", 5)),
        sigma=float(obj.get("soft_sigma", 5.0)),
        rebalance=bool(obj.get("class_rebalance", True)),
        lam=float(obj.get("rebalance_lambda", 0.5)),
        momentum=float(obj.get("prior_momentum", 0.99)),
        stride=int(obj.get("target_stride", 1)),
    )


def colorization_views(rng, images, config):
    """``(grey input, ab target)``: the image with ``a = b = 0`` as RGB, and its ab channels.

    The input keeps the image format the encoder is evaluated on (RGB in [0, 1]) but holds only
    the lightness L (Zhang et al. feed L alone). The ab target is mean-pooled by
    ``objective.target_stride`` (Zhang et al. predict at a quarter of the input resolution).
    """
    x = clean_images(rng, images, config)
    lab = corruptions.rgb_to_lab(x)
    grey = corruptions.lab_to_rgb(
        jnp.concatenate([lab[..., :1], jnp.zeros_like(lab[..., 1:])], axis=-1))
    ab = corruptions.downsample_mean(lab[..., 1:], _color_settings(config)["stride"])
    return grey, ab


def build_colorization_model(config, axis_name):
    """Encoder + decoder to ``Q`` bin logits (classification) or 2 ab values (regression)."""
    s = _color_settings(config)
    h, w, _ = _train_image_shape(config)
    channels = len(corruptions.ab_bin_centers(s["grid"])) if s["loss"] == "classification" else 2
    return build_reconstruction_model(config, axis_name, out_channels=channels,
                                      output_activation="none",
                                      output_size=(h // s["stride"], w // s["stride"]))


def ab_histogram(bins: chex.Array, num_bins: int) -> chex.Array:
    """Fraction of pixels in each bin: ``[num_bins]`` from integer ``bins [...]``."""
    counts = jnp.zeros((num_bins,), jnp.float32).at[bins.reshape(-1)].add(1.0)
    return counts / bins.size


def colorization_objective_loss(params, model_state, views, rng, *, model, config, extra, **_):
    """Rebalanced cross entropy over ab bins (or ab regression); bin accuracy as a metric."""
    del rng
    grey, ab = views
    out, new_state = apply_network(params, model_state, grey, model=model)
    pred = out["reconstruction"]
    s = _color_settings(config)
    outputs = {"embedding": out["features"]}
    if s["loss"] == "regression":
        loss = colorization_regression_loss(pred, ab)
        error = jnp.mean(jnp.sqrt(jnp.sum((pred * AB_SCALE - ab) ** 2, axis=-1) + 1e-12))
        metrics = {"loss": loss, "ab_error": error}
        return loss, (metrics, new_state, outputs)
    centers = corruptions.ab_bin_centers(s["grid"])
    targets = corruptions.encode_ab_soft(ab, centers, num_neighbors=s["neighbors"],
                                         sigma=s["sigma"])
    hard = corruptions.encode_ab_hard(ab, centers)
    weights = None
    if s["rebalance"]:
        table = rebalance_weights(extra["ab_prior"], centers, lam=s["lam"], sigma=s["sigma"])
        weights = table[hard]
        outputs["ab_histogram"] = ab_histogram(hard, len(centers))
    loss = colorization_classification_loss(pred, targets, weights)
    accuracy = jnp.mean((jnp.argmax(pred, axis=-1) == hard).astype(jnp.float32))
    metrics = {"loss": loss, "bin_accuracy": accuracy}
    return loss, (metrics, new_state, outputs)


def init_colorization_extra(params, model_state, config):
    """A uniform running bin distribution when rebalancing, else ``{}``."""
    del params, model_state
    s = _color_settings(config)
    if s["loss"] != "classification" or not s["rebalance"]:
        return {}
    q = len(corruptions.ab_bin_centers(s["grid"]))
    return {"ab_prior": jnp.full((q,), 1.0 / q, jnp.float32)}


def update_colorization_extra(extra, outputs, *, params, model_state, step, config, axis_name):
    """``prior <- m * prior + (1 - m) * (global batch's bin histogram)``."""
    del params, model_state, step
    if "ab_prior" not in extra:
        return extra
    hist = outputs["ab_histogram"]
    if axis_name is not None:
        hist = jax.lax.pmean(hist, axis_name)
    m = _color_settings(config)["momentum"]
    return {"ab_prior": m * extra["ab_prior"] + (1.0 - m) * hist}


def check_colorization_config(config) -> None:
    """RGB data only; one-line errors for loss, bins and target sizes that cannot work."""
    from ssljax.data.datasets import get_dataset_spec

    spec = get_dataset_spec(config.dataset.name)
    if spec.image_shape[-1] != 3:
        raise ValueError(f"objective 'colorization' needs RGB images, but dataset "
                         f"{spec.name!r} is grayscale ({spec.image_shape[-1]} channel); "
                         "choose an RGB dataset such as cifar10")
    s = _color_settings(config)
    if s["loss"] not in LOSS_KINDS:
        raise ValueError(f"objective.loss={s['loss']!r} is invalid; choose one of {LOSS_KINDS}")
    if not s["grid"] > 0:
        raise ValueError(f"objective.ab_grid={s['grid']} is invalid; valid: a number > 0")
    q = len(corruptions.ab_bin_centers(s["grid"]))
    _check_positive_int("objective.soft_neighbors", s["neighbors"], q)
    if not s["sigma"] > 0:
        raise ValueError(f"objective.soft_sigma={s['sigma']} is invalid; valid: a number > 0")
    _check_unit("objective.rebalance_lambda", s["lam"], closed=True)
    if not 0.0 <= s["momentum"] < 1.0:
        raise ValueError(f"objective.prior_momentum={s['momentum']} is invalid; valid: a "
                         "number in [0, 1)")
    h, w, _ = _train_image_shape(config)
    if s["stride"] < 1 or h % s["stride"] or w % s["stride"]:
        raise ValueError(f"objective.target_stride={s['stride']} is invalid; valid: an int >= 1 "
                         f"dividing the {h}x{w} image size")
    check_decoder_config(config, "colorization")


COLORIZATION = register(
    Objective(
        name="colorization",
        build_model=build_colorization_model,
        make_views=colorization_views,
        loss=colorization_objective_loss,
        init_extra=init_colorization_extra,
        update_extra=update_colorization_extra,
        check_config=check_colorization_config,
        description="Colorization: ab bins from lightness with class rebalancing "
                    "(Zhang et al. 2016; Larsson et al. 2017)",
    )
)
