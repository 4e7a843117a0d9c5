"""BiGAN / ALI: adversarial feature learning with an encoder, a generator and a joint
discriminator (Donahue, Krahenbuhl & Darrell 2017; Dumoulin et al. 2017), with BigBiGAN's
unary scores as an option (Donahue & Simonyan 2019).

A discriminator ``D`` scores image-latent pairs: the encoder's ``(x, E(x))`` for data ``x``
are labelled real, the generator's ``(G(z), z)`` for prior draws ``z`` fake. With
``s = logit D``:

* ``bigan_discriminator_loss``: ``mean softplus(-s(x, E(x))) + mean softplus(s(G(z), z))``,
  i.e. ``-mean log sigmoid(s_real) - mean log(1 - sigmoid(s_fake))``.
* ``bigan_generator_loss``: the non-saturating loss of ``E`` and ``G``, the same cross
  entropies with the labels flipped: ``mean softplus(s(x, E(x))) + mean softplus(-s(G(z),
  z))``. (Donahue et al. train E and G on these inverted labels, as Goodfellow et al. 2014
  suggest for G.)
* ``kind='hinge'`` gives BigBiGAN's hinge form instead: ``D``: ``mean relu(1 - s_real) +
  mean relu(1 + s_fake)``; ``E, G``: ``mean s_real - mean s_fake``.
* With ``cycle_weight > 0`` the loss of ``E`` and ``G`` adds ALICE's explicit cycle
  consistency in image space (Li et al. 2017), ``cycle_weight * mean (x - G(E(x)))^2``
  (``cycle_loss``); ``G(E(x))`` and ``G(z)`` come from one generator pass. BiGAN alone
  matches the joint distributions only at the game's optimum, where ``G(E(x)) = x``; the
  term asks for that directly, and the discriminator never sees it.
* With ``unary=True`` the discriminator also scores ``x`` alone (``s_x``) and ``z`` alone
  (``s_z``), and each loss is the sum of the same loss over the joint, x and z scores
  (``total_discriminator_loss``, ``total_generator_loss``). BigBiGAN sums the three in its
  hinge form; the default here is the non-saturating form of each term (``gan_loss``).

The objective ``bigan`` trains ``E``, ``G`` (the run's model, ``ssljax.models.bigan.
BiGANNetwork``) and ``D`` (a parameter group, ``params['discriminator']``, with its own Adam;
DCGAN's beta1 = 0.5) in one step, as ``inpainting`` and ``factor_vae`` do: the returned scalar
is ``L_EG + L_D`` where ``L_EG`` sees the discriminator's parameters under
``stop_gradient`` and ``L_D`` sees the pairs under ``stop_gradient``, so the one gradient of
the sum gives ``E, G`` the gradient of ``L_EG`` alone and ``D`` that of ``L_D`` alone; both
players step simultaneously against the other's pre-step parameters.

Multi-device: the prior's ``z`` is drawn for the whole global batch from the step's shared key
(``LossContext.shared_rng``, equal on every device) and each device takes its rows (``jax.lax.
axis_index``), so an example's ``z`` does not depend on the device count. ``E`` and ``G`` use
cross-replica BatchNorm, ``D`` has no batch statistics, every loss is a mean of per-example
terms and the step averages gradients over devices: 8 devices give the update of 1 device on
the same global batch (tested).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Mapping

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
    global_rows,
    split_param_group,
)
from ssljax.objectives.registry import register

DISCRIMINATOR = "discriminator"  # the params key of the discriminator (a ParamGroup)
PRIORS = ("gaussian", "uniform")
GAN_LOSSES = ("non_saturating", "hinge")
SCORE_KEYS = ("joint", "x", "z")
# ``model.generator`` keys and their defaults (``start_shape`` None: a quarter of the image's
# height and width, ``GENERATOR_START_CHANNELS`` channels).
GENERATOR_DEFAULTS = dict(
    start_shape=None, widths=(64, 32), upsample=None, kernel_size=3, norm="batch"
)
GENERATOR_START_CHANNELS = 128


# ---------------------------------------------------------------------------
# Pure losses (logits in, scalar out)
# ---------------------------------------------------------------------------


def _check_logits(real_logits, fake_logits):
    chex.assert_rank([real_logits, fake_logits], 1)
    return real_logits.astype(jnp.float32), fake_logits.astype(jnp.float32)


def bigan_discriminator_loss(
    real_logits: chex.Array, fake_logits: chex.Array, *, kind: str = "non_saturating"
) -> chex.Array:
    """The discriminator's loss: ``(x, E(x))`` real, ``(G(z), z)`` fake.

    Args:
      real_logits: ``[B]`` scores ``s(x, E(x))``.
      fake_logits: ``[B']`` scores ``s(G(z), z)``.
      kind: ``'non_saturating'`` (the logistic loss ``mean softplus(-s_real) + mean
        softplus(s_fake)``) or ``'hinge'`` (``mean relu(1 - s_real) + mean relu(1 + s_fake)``).

    Returns:
      A scalar.
    """
    real, fake = _check_logits(real_logits, fake_logits)
    if kind == "non_saturating":
        return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
    if kind == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
    raise ValueError(f"unknown gan loss kind {kind!r}; choose one of {list(GAN_LOSSES)}")


def bigan_generator_loss(
    real_logits: chex.Array, fake_logits: chex.Array, *, kind: str = "non_saturating"
) -> chex.Array:
    """The loss of the encoder and the generator: the discriminator's labels flipped.

    Args:
      real_logits: ``[B]`` scores ``s(x, E(x))`` (gradients reach E).
      fake_logits: ``[B']`` scores ``s(G(z), z)`` (gradients reach G).
      kind: ``'non_saturating'`` (``mean softplus(s_real) + mean softplus(-s_fake)``, i.e.
        ``-mean log(1 - D(x, E(x))) - mean log D(G(z), z)``) or ``'hinge'`` (BigBiGAN's
        ``mean s_real - mean s_fake``).

    Returns:
      A scalar.
    """
    real, fake = _check_logits(real_logits, fake_logits)
    if kind == "non_saturating":
        return jnp.mean(jax.nn.softplus(real)) + jnp.mean(jax.nn.softplus(-fake))
    if kind == "hinge":
        return jnp.mean(real) - jnp.mean(fake)
    raise ValueError(f"unknown gan loss kind {kind!r}; choose one of {list(GAN_LOSSES)}")


def _paired_keys(real_scores: Mapping, fake_scores: Mapping) -> list[str]:
    if set(real_scores) != set(fake_scores) or "joint" not in real_scores:
        raise ValueError(
            f"score keys {sorted(real_scores)} and {sorted(fake_scores)} must be equal and "
            f"include 'joint' (valid keys: {list(SCORE_KEYS)})"
        )
    return [k for k in SCORE_KEYS if k in real_scores]


def total_discriminator_loss(
    real_scores: Mapping[str, chex.Array],
    fake_scores: Mapping[str, chex.Array],
    *,
    kind: str = "non_saturating",
) -> chex.Array:
    """``sum_k bigan_discriminator_loss(real[k], fake[k])`` over the scores ``'joint'`` and,
    when present, BigBiGAN's unary ``'x'`` and ``'z'``."""
    return sum(
        bigan_discriminator_loss(real_scores[k], fake_scores[k], kind=kind)
        for k in _paired_keys(real_scores, fake_scores)
    )


def total_generator_loss(
    real_scores: Mapping[str, chex.Array],
    fake_scores: Mapping[str, chex.Array],
    *,
    kind: str = "non_saturating",
) -> chex.Array:
    """``sum_k bigan_generator_loss(real[k], fake[k])`` over the same scores."""
    return sum(
        bigan_generator_loss(real_scores[k], fake_scores[k], kind=kind)
        for k in _paired_keys(real_scores, fake_scores)
    )


def cycle_loss(images: chex.Array, reconstructions: chex.Array) -> chex.Array:
    """ALICE's explicit cycle consistency in image space (Li et al. 2017): the mean squared
    error ``mean (x - G(E(x)))^2`` over examples and pixels.

    Args:
      images: ``[B, H, W, C]`` data ``x``.
      reconstructions: ``[B, H, W, C]`` ``G(E(x))``.

    Returns:
      A scalar.
    """
    chex.assert_equal_shape([images, reconstructions])
    diff = images.astype(jnp.float32) - reconstructions.astype(jnp.float32)
    return jnp.mean(jnp.square(diff))


def sample_prior(key: chex.PRNGKey, shape: tuple[int, ...], prior: str) -> chex.Array:
    """``z ~ p(z)``: ``'gaussian'`` N(0, I) or ``'uniform'`` U[-1, 1] per coordinate (float32)."""
    if prior == "gaussian":
        return jax.random.normal(key, shape, jnp.float32)
    if prior == "uniform":
        return jax.random.uniform(key, shape, jnp.float32, minval=-1.0, maxval=1.0)
    raise ValueError(f"unknown prior {prior!r}; choose one of {list(PRIORS)}")


def global_prior_sample(
    key: chex.PRNGKey, num: int, latent_dim: int, prior: str, axis_name: str | None
) -> chex.Array:
    """This device's ``[num, latent_dim]`` rows of prior draws made for the global batch.

    ``key`` is equal on every device; the global batch's ``devices * num`` rows are drawn
    and device ``i`` keeps rows ``i * num`` to ``(i + 1) * num - 1``, the rows of its examples
    in the global batch. So an example's ``z`` does not depend on the device count.
    """
    return global_rows(key, num, lambda k, n: sample_prior(k, (n, latent_dim), prior), axis_name)


# ---------------------------------------------------------------------------
# Networks from the run's settings
# ---------------------------------------------------------------------------


def generator_settings(run: Run) -> dict:
    """``run.model.generator`` over ``GENERATOR_DEFAULTS``, ``start_shape`` resolved."""
    given = dict(run.model.get("generator") or {}) if run.model is not None else {}
    unknown = sorted(set(given) - set(GENERATOR_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown key model.generator.{unknown[0]}; valid keys: {', '.join(GENERATOR_DEFAULTS)}"
        )
    s = dict(GENERATOR_DEFAULTS, **given)
    h, w, _ = (int(v) for v in run.facts.image_shape)
    if s["start_shape"] is None:
        s["start_shape"] = (math.ceil(h / 4), math.ceil(w / 4), GENERATOR_START_CHANNELS)
    s["start_shape"] = tuple(int(v) for v in s["start_shape"])
    s["widths"] = tuple(int(v) for v in s["widths"])
    if s["upsample"] is not None:
        s["upsample"] = tuple(int(v) for v in s["upsample"])
    return s


def build_generator(run: Run, axis_name):
    """A ``ConvDecoder`` from ``[B, latent_dim]`` through ``start_shape`` to the dataset's
    ``(H, W, C)``, sigmoid output in [0, 1] (DCGAN-style resize-convolutions)."""
    from ssljax.models.decoders import ConvDecoder
    from ssljax.models.network import dtype_from_name

    s = generator_settings(run)
    h, w, c = (int(v) for v in run.facts.image_shape)
    return ConvDecoder(
        widths=s["widths"],
        upsample=s["upsample"],
        out_channels=c,
        output_size=(h, w),
        start_shape=s["start_shape"],
        kernel_size=int(s["kernel_size"]),
        norm=str(s["norm"]),
        output_activation="sigmoid",
        axis_name=axis_name,
        dtype=dtype_from_name(run.dtype),
    )


def check_generator(run: Run) -> None:
    """One-line errors for ``model.generator`` settings the generator cannot use."""
    from ssljax.models.decoders import DECODER_NORMS

    s = generator_settings(run)
    if s["norm"] not in DECODER_NORMS:
        raise ValueError(
            f"model.generator.norm={s['norm']!r} is invalid; choose one of {DECODER_NORMS}"
        )
    if len(s["start_shape"]) != 3 or min(s["start_shape"]) < 1:
        raise ValueError(
            f"model.generator.start_shape={s['start_shape']} is invalid; valid: (h, w, C) >= 1"
        )
    if s["upsample"] is not None and len(s["upsample"]) != len(s["widths"]):
        raise ValueError(
            f"model.generator.upsample={s['upsample']} needs one factor per width of "
            f"model.generator.widths={s['widths']}"
        )
    for key in ("widths", "upsample"):
        if s[key] is not None and any(v < 1 for v in s[key]):
            raise ValueError(f"model.generator.{key}={s[key]} is invalid; valid: integers >= 1")
    if int(s["kernel_size"]) < 1:
        raise ValueError(
            f"model.generator.kernel_size={s['kernel_size']} is invalid; valid: an integer >= 1"
        )


# ---------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------


@register
@dataclasses.dataclass(frozen=True)
class BiGAN(Objective):
    """BiGAN / ALI: ``E`` and ``G`` against a joint discriminator ``D(x, z)``.

    Attributes:
      latent_dim: dimension of ``z`` (the encoder's head and the generator's input).
      prior: ``'gaussian'`` N(0, I) or ``'uniform'`` U[-1, 1] (Donahue et al.'s choice).
      unary: add BigBiGAN's unary scores ``s_x``, ``s_z`` to the joint one (Donahue &
        Simonyan 2019), each with its own loss term.
      gan_loss: ``'non_saturating'`` (logistic D, flipped-label E/G loss) or ``'hinge'``
        (BigBiGAN's).
      disc_x_widths: channels of the discriminator's image convolutions (stride 2, 4x4).
      disc_z_hidden: units of its latent MLP.
      disc_joint_hidden: units of its joint MLP.
      disc_norm: ``'none'`` or ``'layer'`` after its convolutions (no BatchNorm).
      disc_learning_rate, disc_beta1, disc_beta2: the discriminator's Adam (DCGAN: 2e-4, 0.5,
        0.999), constant learning rate.
      cycle_weight: weight of ALICE's cycle term ``cycle_loss(x, G(E(x)))`` in ``L_EG`` (Li
        et al. 2017); 0 (default) is plain BiGAN. It reaches ``E`` and ``G`` only.
    """

    name: ClassVar[str] = "bigan"
    description: ClassVar[str] = (
        "BiGAN / ALI: encoder + generator against a joint discriminator D(x, z), optional "
        "BigBiGAN unary terms (Donahue et al. 2017; Dumoulin et al. 2017)"
    )

    latent_dim: int = 64
    prior: str = "gaussian"
    unary: bool = False
    gan_loss: str = "non_saturating"
    disc_x_widths: tuple[int, ...] = (32, 64)
    disc_z_hidden: tuple[int, ...] = (256,)
    disc_joint_hidden: tuple[int, ...] = (256,)
    disc_norm: str = "none"
    disc_learning_rate: float = 2e-4
    disc_beta1: float = 0.5
    disc_beta2: float = 0.999
    cycle_weight: float = 0.0

    def __post_init__(self):
        from ssljax.models.bigan import DISCRIMINATOR_NORMS

        for key in ("disc_x_widths", "disc_z_hidden", "disc_joint_hidden"):
            value = getattr(self, key)
            object.__setattr__(self, key, tuple(value) if isinstance(value, list) else value)
        check_int("latent_dim", self.latent_dim)
        check_choice("prior", self.prior, PRIORS)
        check_choice("unary", self.unary, (False, True))
        check_choice("gan_loss", self.gan_loss, GAN_LOSSES)
        for key in ("disc_x_widths", "disc_z_hidden", "disc_joint_hidden"):
            value = getattr(self, key)
            if not isinstance(value, tuple):
                raise ValueError(f"objective.{key}={value!r} is invalid; valid: a tuple of ints")
            for units in value:
                check_int(key, units)
        if not self.disc_joint_hidden:
            raise ValueError(
                "objective.disc_joint_hidden=() is invalid; valid: a non-empty tuple of ints >= 1"
            )
        check_choice("disc_norm", self.disc_norm, DISCRIMINATOR_NORMS)
        check_range("disc_learning_rate", self.disc_learning_rate, low=0.0, low_open=True)
        check_range("disc_beta1", self.disc_beta1, low=0.0, high=1.0, high_open=True)
        check_range("disc_beta2", self.disc_beta2, low=0.0, high=1.0, high_open=True)
        check_range("cycle_weight", self.cycle_weight, low=0.0)

    # --- networks -------------------------------------------------------------------------

    def check(self, run):
        """A whole-image encoder with pooled ``[B, F]`` features; usable generator settings."""
        from ssljax.models.network import build_encoder_from_config

        if run.model.get("patches") is not None:
            raise ValueError(
                f"objective {self.name!r} encodes whole images; remove config.model.patches"
            )
        check_generator(run)
        encoder = build_encoder_from_config(run, None)
        sample = jax.ShapeDtypeStruct((1,) + tuple(run.facts.image_shape), jnp.float32)
        out = jax.eval_shape(
            lambda x: encoder.init_with_output(jax.random.PRNGKey(0), x, train=False)[0], sample
        )
        if not isinstance(out, jax.ShapeDtypeStruct) or len(out.shape) != 2:
            raise ValueError(
                f"model.encoder={run.model.encoder!r} is invalid for {self.name!r}; valid: an "
                "encoder with pooled [B, F] features (convnet, resnet18, resnet50, vae_conv)"
            )

    def build_model(self, run, axis_name):
        """``BiGANNetwork``: the run's encoder + a Dense head to ``z``, and the generator."""
        from ssljax.models.bigan import BiGANNetwork
        from ssljax.models.network import build_encoder_from_config

        return BiGANNetwork(
            encoder=build_encoder_from_config(run, axis_name),
            generator=build_generator(run, axis_name),
            latent_dim=int(self.latent_dim),
        )

    def discriminator(self, run: Run):
        """The ``JointDiscriminator`` of the ``disc_*`` settings for the dataset's images."""
        from ssljax.models.bigan import JointDiscriminator

        return JointDiscriminator(
            image_shape=tuple(int(s) for s in run.facts.image_shape),
            latent_dim=int(self.latent_dim),
            x_widths=tuple(int(w) for w in self.disc_x_widths),
            z_hidden=tuple(int(u) for u in self.disc_z_hidden),
            joint_hidden=tuple(int(u) for u in self.disc_joint_hidden),
            unary=bool(self.unary),
            norm=self.disc_norm,
        )

    def discriminator_optimizer(self) -> optax.GradientTransformation:
        """Adam at ``disc_learning_rate`` with ``disc_beta1`` (DCGAN's 0.5), constant."""
        return optax.adam(
            float(self.disc_learning_rate), b1=float(self.disc_beta1), b2=float(self.disc_beta2)
        )

    def param_groups(self, run):
        """``{'discriminator': ParamGroup}``, initialised on a packed ``(x, z)`` pair."""
        size = math.prod(int(s) for s in run.facts.image_shape)
        return {
            DISCRIMINATOR: ParamGroup(
                self.discriminator(run),
                (1, size + int(self.latent_dim)),
                self.discriminator_optimizer(),
            )
        }

    # --- views and loss -------------------------------------------------------------------

    def make_views(self, rng, images, run):
        """``(x,)``: the images as float32 in [0, 1], not augmented."""
        from ssljax.views.augment import to_float

        del rng, run
        return (to_float(images),)

    def prior_sample(self, ctx: LossContext, num: int) -> chex.Array:
        """This device's ``[num, latent_dim]`` rows of the global batch's prior draws."""
        if ctx.shared_rng is None:
            raise ValueError(
                f"objective {self.name!r} needs LossContext.shared_rng (a key equal on every "
                "device); the step passes shared_step_rng"
            )
        return global_prior_sample(
            ctx.shared_rng, num, int(self.latent_dim), self.prior, ctx.axis_name
        )

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        """``L_EG + L_D`` (module docstring); ``metrics['loss']`` is ``L_EG``.

        ``E(x)`` and ``G(z)`` come from one train-mode pass of the network (BatchNorm
        statistics of both updated). ``L_EG`` scores ``(x, E(x))`` and ``(G(z), z)`` with the
        discriminator's parameters under ``stop_gradient``; ``L_D`` scores the same pairs
        under ``stop_gradient`` with its live parameters.
        """
        del rng
        (x,) = views
        net_params, disc_params = split_param_group(params)
        prior_z = self.prior_sample(ctx, x.shape[0])
        cycle = float(self.cycle_weight) > 0.0
        out, new_state = ctx.model.apply(
            {"params": net_params, **model_state},
            x,
            train=True,
            prior_z=prior_z,
            reconstruct=cycle,
            mutable=list(model_state),
        )
        encoded, generated = out["z"], out["generated"]
        disc = self.discriminator(ctx.run)
        n = x.shape[0]

        def scores(p, images, latents):
            both = disc.apply({"params": p}, images, latents)
            return {k: v[:n] for k, v in both.items()}, {k: v[n:] for k, v in both.items()}

        pair_x = jnp.concatenate([x, generated], axis=0)
        pair_z = jnp.concatenate([encoded, prior_z], axis=0)
        real_eg, fake_eg = scores(jax.lax.stop_gradient(disc_params), pair_x, pair_z)
        eg_loss = total_generator_loss(real_eg, fake_eg, kind=self.gan_loss)
        real_d, fake_d = scores(
            disc_params, jax.lax.stop_gradient(pair_x), jax.lax.stop_gradient(pair_z)
        )
        disc_loss = total_discriminator_loss(real_d, fake_d, kind=self.gan_loss)
        metrics = {}
        if cycle:
            metrics["cycle_loss"] = cycle_loss(x, out["reconstruction"])
            eg_loss = eg_loss + float(self.cycle_weight) * metrics["cycle_loss"]
        metrics |= {
            "loss": eg_loss,
            "disc_loss": disc_loss,
            "disc_real_accuracy": jnp.mean((real_d["joint"] > 0).astype(jnp.float32)),
            "disc_fake_accuracy": jnp.mean((fake_d["joint"] < 0).astype(jnp.float32)),
        }
        return eg_loss + disc_loss, LossAux(metrics, new_state, Outputs(embedding=out["features"]))
