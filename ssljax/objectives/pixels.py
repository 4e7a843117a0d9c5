"""Pixel prediction with a Transformer over quantised pixels (iGPT; Chen et al. 2020).

"Generative Pretraining from Pixels" (Chen, Radford, Child, Wu, Jun, Luan & Sutskever 2020)
reads an image as a sequence of quantised pixels ``x_0 .. x_{T-1}`` in raster order and
trains a GPT-2-style Transformer (``ssljax.models.transformer.PixelTransformer``) with one of
two objectives:

* ``pixel_autoregressive``: next-pixel prediction, ``L_AR = E_x[-log p(x)] =
  E_x[- sum_t log p(x_t | x_0 .. x_{t-1})]``, causal attention. The network's input is the
  tokens shifted right by one behind a start token, ``[start, x_0, ..., x_{T-2}]``, so its
  output ``t`` has seen ``x_0 .. x_{t-1}`` and its logits at ``t`` are scored against token
  ``x_t`` itself (``next_pixel_loss`` pairs ``logits[:, t]`` with ``tokens[:, t]``; the shift
  lives in the model, as in iGPT's code).
* ``pixel_masked``: BERT (Devlin et al. 2019) on pixels, ``L_BERT = E_x E_M[- sum_{i in M}
  log p(x_i | x_{[1, T] \\ M})]``, bidirectional attention. As in iGPT each position joins
  ``M`` independently with probability ``mask_rate`` (0.15; ``bert_mask``) and every masked
  token is replaced by the [MASK] token; BERT's 80/10/10 mix of [MASK], random and unchanged
  tokens is not used (iGPT does not use it either). ``masked_pixel_loss`` averages the cross
  entropy over the masked positions only.

Losses are in nats per predicted token; ``bits_per_dim = loss / ln 2`` is the bits per
*quantised, downsampled* pixel (8 grey levels of 14x14 Fashion-MNIST by default: at most
``log2 8 = 3`` bits for a uniform guess), so it is not comparable with the bits per dimension
of 256-level images reported by density models. ``pixel_accuracy`` is the share of predicted
tokens whose most likely level is the true one.

Hyperparameters (``config.objective``): ``num_levels`` (grey levels K, default 8),
``downsample`` (average pooling per side before quantising, default 2: 28x28 -> 14x14) and,
for ``pixel_masked``, ``mask_rate`` (default 0.15). They define the prediction task, so they
belong to the objective, which passes them (and ``causal``) to the encoder. The model's sizes
are the encoder's settings, as for every encoder: ``config.model.encoder =
'pixel_transformer'`` with ``config.model.encoder_kwargs`` ``width``, ``depth``,
``num_heads``, ``mlp_ratio`` and ``attention_batch_chunk`` (``PixelTransformer``'s defaults
where unset). The linear probe reads ``layer1`` .. ``layerN`` or ``pooled``
(``config.eval.layer``, ``linear_eval --layer``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from ssljax.models.transformer import (
    check_downsample,
    check_levels,
    image_tokens,
    quantize_pixels,
)
from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    Run,
    check_range,
    global_rows,
)
from ssljax.objectives.registry import register

__all__ = [
    "ENCODER",
    "PixelAutoregressive",
    "PixelMasked",
    "apply_mask",
    "bert_mask",
    "image_tokens",
    "masked_pixel_loss",
    "next_pixel_loss",
    "pixel_accuracy",
    "quantize_pixels",
    "shift_right",
    "token_cross_entropy",
]

# The encoder these objectives train (``ssljax.models.ENCODERS`` name).
ENCODER = "pixel_transformer"
# ``model.encoder_kwargs`` a config may set (the model's sizes); the objective sets the rest.
ENCODER_SETTINGS = (
    "width",
    "depth",
    "num_heads",
    "mlp_ratio",
    "attention_batch_chunk",
    "conv_batch_chunk",
)
OBJECTIVE_SETTINGS = ("num_levels", "downsample", "causal")

# ---------------------------------------------------------------------------------------------
# Pure functions.


def shift_right(tokens: chex.Array, start_token: int) -> chex.Array:
    """``[B, T]`` -> ``[start, x_0, ..., x_{T-2}]`` per row: the causal model's input
    sequence for targets ``tokens`` (``PixelTransformer(causal=True)`` applies the same
    shift to the token embeddings)."""
    chex.assert_rank(tokens, 2)
    start = jnp.full((tokens.shape[0], 1), start_token, tokens.dtype)
    return jnp.concatenate([start, tokens[:, :-1]], axis=1)


def token_cross_entropy(logits: chex.Array, tokens: chex.Array) -> chex.Array:
    """``[B, T]`` float32 ``-log softmax(logits[b, t])[tokens[b, t]]`` (nats)."""
    chex.assert_rank(logits, 3)
    chex.assert_shape(tokens, logits.shape[:2])
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(log_probs, tokens.astype(jnp.int32)[..., None], axis=-1)
    return -picked[..., 0]


def next_pixel_loss(logits: chex.Array, tokens: chex.Array) -> chex.Array:
    """Mean autoregressive cross entropy (nats per token) of ``logits [B, T, K]`` at
    ``tokens int [B, T]``.

    ``logits[:, t]`` is the prediction of ``tokens[:, t]`` from the inputs
    ``[start, tokens[:, 0], ..., tokens[:, t - 1]]`` (the causal model shifts its input; no
    shift happens here): ``L = -1/(B T) sum_{b, t} log softmax(logits[b, t])[tokens[b, t]]``.
    """
    return jnp.mean(token_cross_entropy(logits, tokens))


def masked_pixel_loss(
    logits: chex.Array, tokens: chex.Array, mask: chex.Array, *, axis_name: str | None = None
) -> chex.Array:
    """Cross entropy over the masked positions only, normalised by their number.

    ``L = sum_{b, t} mask[b, t] CE[b, t] / sum_{b, t} mask[b, t]`` (nats per masked token);
    0 when nothing is masked. Logits at unmasked positions do not enter.

    With ``axis_name`` the denominator is the mean count per device over that axis, so the
    train step's mean of this loss over devices is the global batch's
    ``sum of masked CE / number of masked tokens`` (the counts differ between devices).
    """
    chex.assert_shape(mask, tokens.shape)
    weights = mask.astype(jnp.float32)
    total = jnp.sum(token_cross_entropy(logits, tokens) * weights)
    count = jnp.sum(weights)
    if axis_name is not None:
        count = jax.lax.pmean(count, axis_name)
    return total / jnp.where(count > 0, count, 1.0)


def pixel_accuracy(
    logits: chex.Array, tokens: chex.Array, mask: chex.Array | None = None
) -> chex.Array:
    """Share of (masked, if ``mask`` is given) positions whose argmax level is the token."""
    chex.assert_rank(logits, 3)
    chex.assert_shape(tokens, logits.shape[:2])
    correct = (jnp.argmax(logits, axis=-1) == tokens).astype(jnp.float32)
    if mask is None:
        return jnp.mean(correct)
    weights = mask.astype(jnp.float32)
    return jnp.sum(correct * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def bert_mask(rng: chex.PRNGKey, shape, rate: float) -> chex.Array:
    """``bool`` mask of ``shape``: each position independently True with probability
    ``rate`` (iGPT's BERT mask; the count per sequence is Binomial(T, rate))."""
    check_range("mask_rate", rate, low=0.0, high=1.0, low_open=True, high_open=True)
    return jax.random.bernoulli(rng, float(rate), tuple(shape))


def apply_mask(tokens: chex.Array, mask: chex.Array, mask_token: int) -> chex.Array:
    """``tokens`` with every masked position replaced by ``mask_token`` ([MASK] only)."""
    chex.assert_shape(mask, tokens.shape)
    return jnp.where(mask, jnp.asarray(mask_token, tokens.dtype), tokens)


def loss_metrics(loss: chex.Array, accuracy: chex.Array) -> dict:
    """``loss`` (nats per predicted token), ``bits_per_dim`` and ``pixel_accuracy``."""
    return {"loss": loss, "bits_per_dim": loss / math.log(2.0), "pixel_accuracy": accuracy}


# ---------------------------------------------------------------------------------------------
# Objectives.


@dataclasses.dataclass(frozen=True)
class PixelObjective(Objective):
    """What both pixel objectives share: the tokens, the encoder and its checks.

    Attributes:
      num_levels: grey levels K of the tokens (2..256).
      downsample: average pooling factor per side before quantising (1: none).
    """

    CAUSAL: ClassVar[bool] = False

    num_levels: int = 8
    downsample: int = 2

    def __post_init__(self):
        try:
            check_levels(self.num_levels)
            check_downsample(self.downsample)
        except ValueError as err:
            raise ValueError(f"objective.{err}") from None

    def check(self, run: Run) -> None:
        h, w, c = (int(d) for d in run.facts.image_shape)
        if c != 1:
            raise ValueError(
                f"objective {self.name!r} models grey levels; {run.facts.name} has {c} "
                "channels; valid: 1-channel images"
            )
        if h % self.downsample or w % self.downsample:
            valid = [f for f in range(1, min(h, w) + 1) if h % f == 0 and w % f == 0]
            raise ValueError(
                f"objective.downsample={self.downsample} does not divide {run.facts.name}'s "
                f"{h}x{w} images; valid: one of {valid}"
            )
        model = run.model
        if model is None:
            return
        if model.get("encoder") != ENCODER:
            raise ValueError(
                f"objective {self.name!r} trains model.encoder={ENCODER!r}, got "
                f"{model.get('encoder')!r}; valid: {ENCODER!r}"
            )
        if model.get("patches") is not None:
            raise ValueError(f"objective {self.name!r} reads whole images; remove model.patches")
        for key in dict(model.get("encoder_kwargs") or {}):
            if key in OBJECTIVE_SETTINGS:
                raise ValueError(
                    f"model.encoder_kwargs.{key} is set by objective {self.name!r}; valid: "
                    f"objective.num_levels / objective.downsample, and causal follows the "
                    "objective"
                )
            if key not in ENCODER_SETTINGS:
                raise ValueError(
                    f"unknown key model.encoder_kwargs.{key} for {ENCODER!r}; valid keys: "
                    f"{', '.join(ENCODER_SETTINGS)}"
                )

    def encoder_kwargs(self, run: Run) -> dict:
        """The ``PixelTransformer`` settings of ``run.model.encoder_kwargs`` (none without a
        model config: the defaults)."""
        if run.model is None:
            return {}
        return dict(run.model.get("encoder_kwargs") or {})

    def build_encoder(self, run: Run, axis_name):
        """The ``PixelTransformer`` with this objective's tokens and attention."""
        from ssljax.models.network import dtype_from_name
        from ssljax.models.transformer import PixelTransformer

        return PixelTransformer(
            **self.encoder_kwargs(run),
            num_levels=int(self.num_levels),
            downsample=int(self.downsample),
            causal=self.CAUSAL,
            axis_name=axis_name,
            dtype=dtype_from_name(run.dtype),
        )

    def build_model(self, run: Run, axis_name):
        from ssljax.models.network import dtype_from_name
        from ssljax.models.transformer import PixelNetwork

        return PixelNetwork(
            encoder=self.build_encoder(run, axis_name), dtype=dtype_from_name(run.dtype)
        )

    def tokens(self, images) -> chex.Array:
        """``int32 [B, T]`` tokens of ``[B, H, W, 1]`` images (uint8 or float in [0, 1])."""
        return image_tokens(images, num_levels=self.num_levels, downsample=self.downsample)

    def predict(self, params, model_state, inputs, ctx: LossContext) -> dict:
        """The network's ``{'features', 'logits'}`` on ``inputs`` in train mode."""
        return ctx.model.apply({"params": params, **model_state}, inputs, train=True)


@register
@dataclasses.dataclass(frozen=True)
class PixelAutoregressive(PixelObjective):
    """iGPT's autoregressive objective: next-pixel prediction in raster order with causal
    attention (module docstring).

    Attributes:
      num_levels: grey levels K of the tokens (2..256).
      downsample: average pooling factor per side before quantising (1: none).
    """

    name: ClassVar[str] = "pixel_autoregressive"
    description: ClassVar[str] = (
        "iGPT: next-pixel prediction over quantised pixels, causal Transformer (Chen et al. 2020)"
    )
    CAUSAL: ClassVar[bool] = True

    def make_views(self, rng, images, run: Run):
        """``(tokens int32 [B, T],)``: the model shifts them behind the start token."""
        del rng, run
        return (self.tokens(images),)

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        """``next_pixel_loss`` of the causal model's logits, bits per dim, accuracy."""
        del rng
        (tokens,) = views
        out = self.predict(params, model_state, tokens, ctx)
        loss = next_pixel_loss(out["logits"], tokens)
        metrics = loss_metrics(loss, pixel_accuracy(out["logits"], tokens))
        return loss, LossAux(metrics, model_state, Outputs(embedding=out["features"]))


@register
@dataclasses.dataclass(frozen=True)
class PixelMasked(PixelObjective):
    """iGPT's BERT objective: predict the masked pixels with bidirectional attention
    (module docstring).

    Attributes:
      num_levels: grey levels K of the tokens (2..256).
      downsample: average pooling factor per side before quantising (1: none).
      mask_rate: probability that a position is masked (independently; 0 < rate < 1).
    """

    name: ClassVar[str] = "pixel_masked"
    description: ClassVar[str] = (
        "iGPT-BERT: masked-pixel prediction over quantised pixels, bidirectional "
        "Transformer (Chen et al. 2020)"
    )

    mask_rate: float = 0.15

    def __post_init__(self):
        super().__post_init__()
        check_range("mask_rate", self.mask_rate, low=0.0, high=1.0, low_open=True, high_open=True)

    def make_views(self, rng, images, run: Run):
        """``(tokens,)``; the mask is drawn in ``loss`` (for the global batch)."""
        del rng, run
        return (self.tokens(images),)

    def masked_inputs(self, key, tokens, axis_name=None):
        """``(inputs, mask)``: [MASK] (= ``num_levels``) at the masked positions of this
        device's ``tokens [n, T]``. ``key`` is equal on every device and the mask is drawn
        for the global batch (``global_rows``), so an image's mask does not depend on the
        number of devices."""
        n, length = tokens.shape
        mask = global_rows(
            key, n, lambda k, m: bert_mask(k, (m, length), self.mask_rate), axis_name
        )
        return apply_mask(tokens, mask, int(self.num_levels)), mask

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        """``masked_pixel_loss`` over the masked positions (global count over devices)."""
        (tokens,) = views
        key = rng if ctx.shared_rng is None else ctx.shared_rng
        inputs, mask = self.masked_inputs(key, tokens, ctx.axis_name)
        out = self.predict(params, model_state, inputs, ctx)
        loss = masked_pixel_loss(out["logits"], tokens, mask, axis_name=ctx.axis_name)
        metrics = loss_metrics(loss, pixel_accuracy(out["logits"], tokens, mask))
        metrics["masked_fraction"] = jnp.mean(mask.astype(jnp.float32))
        return loss, LossAux(metrics, model_state, Outputs(embedding=out["features"]))
