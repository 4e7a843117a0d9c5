"""A small decoder-only Transformer over quantised pixels (iGPT; Chen et al. 2020).

"Generative Pretraining from Pixels" (Chen, Radford, Child, Wu, Jun, Luan & Sutskever 2020)
trains a GPT-2 Transformer (Radford et al. 2019) on images read as sequences of pixels in
raster order, either autoregressively (next pixel, causal attention) or BERT-style
(Devlin et al. 2019: masked pixels, bidirectional attention), then probes the average-pooled
features of each layer linearly; for its autoregressive models the best layer lies in the
middle of the network, not at the end.

Input to tokens (``image_tokens``):

1. images ``[B, H, W, 1]`` in ``[0, 1]`` (``uint8`` is divided by 255) are average pooled by
   ``downsample`` per side (28x28 -> 14x14 with the default 2; 1: no pooling);
2. each pooled value is quantised to one of ``num_levels`` grey levels (default 8, i.e. 3
   bits; iGPT clusters RGB colours into a 9-bit palette with k-means, for one grey channel
   uniform bins do the same job): level ``k`` holds the values in ``[k / K, (k + 1) / K)``
   and ``1.0`` is level ``K - 1`` (``quantize_pixels``);
3. the ``H/d x W/d`` levels are flattened in raster order (row by row, left to right):
   ``T = (H / d) * (W / d)`` tokens, 196 for Fashion-MNIST at the default.

Integer tokens ``[B, T]`` (values ``0 .. num_levels``) are taken as they are. The vocabulary
has ``num_levels + 1`` symbols: the extra one, ``num_levels`` (``special_token``), is the start
token of the causal model and the [MASK] token of the bidirectional one (a model uses it in
one role only).

``PixelTransformer`` (pre-LayerNorm blocks as GPT-2 and iGPT):

    h_0 = E[x_in] + P                       token + learned position embeddings
    a_l = h_{l-1} + Attn(LN(h_{l-1}))       multi-head self-attention, l = 1 .. N
    h_l = a_l + MLP(LN(a_l))                Dense(mlp_ratio * D) -> GELU -> Dense(D)
    out = LN(h_N)

With ``causal=True`` the input sequence is the tokens shifted right by one behind the start
token, ``x_in = [start, x_0, ..., x_{T-2}]``, and attention is masked to earlier positions,
so output ``t`` is a function of ``x_0 .. x_{t-1}`` only and predicts ``x_t`` (its logits are
compared with token ``t`` itself, ``ssljax.objectives.pixels.next_pixel_loss``). With
``causal=False`` the input is the tokens as given (masked positions already replaced by
[MASK]) and every position attends to every other.

Sown intermediates (collection ``'intermediates'``), the features the linear probe reads
(``ssljax.models.extract_features(..., layer='layer3')``, ``linear_eval --layer``):
``'layer1'`` ... ``'layerN'``: each block's output ``h_l`` averaged over the T positions,
``[B, width]``; ``'pooled'``: the final LayerNorm's output averaged over positions,
``[B, width]`` (also what ``__call__`` returns). iGPT applies a LayerNorm to each position of
``h_l`` before pooling; the probe here standardises every feature over the train split, which
takes out the per-feature scale (not the per-position one).

``encode(x, train=...)`` returns ``{'tokens': [B, T, width], 'pooled': [B, width]}`` (the
final normalised token features, for the objectives' prediction heads); ``embed`` and
``encode_embedded`` split it at the token embedding, so gradients with respect to the
embedded inputs can be taken (the causal mask's test). ``PixelNetwork`` puts a linear head
of ``num_levels`` logits on every position.

Defaults are CPU-sized (width 128, 4 blocks, 4 heads, 196 tokens); there is no dropout and no
BatchNorm, so ``train`` changes nothing and examples never interact.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.models.layers import resolve_conv_batch_chunk

Array = Any
Dtype = Any

# GPT-2's initialisation (Radford et al. 2019): N(0, 0.02) weights, zero biases, the two
# residual projections of every block scaled by 1 / sqrt(2 * depth); positions N(0, 0.01).
INIT_STD = 0.02
POSITION_STD = 0.01
LN_EPSILON = 1e-5


def is_integer(value) -> bool:
    """True for ints and integral floats (numpy ones too), False for bools and the rest."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return False
    return float(value).is_integer()


def check_levels(num_levels) -> int:
    """``num_levels`` as an int in ``2 .. 256``; otherwise a one-line ValueError."""
    if not is_integer(num_levels) or not 2 <= num_levels <= 256:
        raise ValueError(f"num_levels={num_levels!r} is invalid; valid: an integer in 2..256")
    return int(num_levels)


def check_downsample(factor) -> int:
    """``factor`` as an int ``>= 1``; otherwise a one-line ValueError."""
    if not is_integer(factor) or factor < 1:
        raise ValueError(f"downsample={factor!r} is invalid; valid: an integer >= 1 (1: none)")
    return int(factor)


def as_unit_float(images: Array) -> Array:
    """``uint8`` images divided by 255, float images cast to float32 (values unchanged)."""
    images = jnp.asarray(images)
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    if jnp.issubdtype(images.dtype, jnp.floating):
        return images.astype(jnp.float32)
    raise ValueError(f"images of dtype {images.dtype} are invalid; valid: uint8 or float in [0, 1]")


def quantize_pixels(images: Array, num_levels: int) -> Array:
    """``int32`` grey levels ``floor(x * K)`` of values ``x`` in ``[0, 1]``, clipped to
    ``0 .. K - 1`` (``K = num_levels``; ``1.0`` is level ``K - 1``). Any shape.

    For ``uint8`` pixels ``v`` (``x = v / 255``) no value falls on a bin edge for K = 8
    (``255 k / 8`` is never an integer for ``0 < k < 8``), so float rounding cannot move one.
    """
    num_levels = check_levels(num_levels)
    x = as_unit_float(images)
    levels = jnp.floor(x * num_levels).astype(jnp.int32)
    return jnp.clip(levels, 0, num_levels - 1)


def downsample_pixels(images: Array, factor: int) -> Array:
    """``[B, H, W, C]`` -> ``[B, H / f, W / f, C]``, the mean of every ``f x f`` cell.

    Raises:
      ValueError: ``f`` does not divide ``H`` and ``W`` (one line, naming the valid factors).
    """
    factor = check_downsample(factor)
    chex.assert_rank(images, 4)
    b, h, w, c = images.shape
    if h % factor or w % factor:
        valid = [f for f in range(1, min(h, w) + 1) if h % f == 0 and w % f == 0]
        raise ValueError(
            f"downsample={factor} does not divide the {h}x{w} images; valid: one of {valid}"
        )
    if factor == 1:
        return images
    cells = images.reshape(b, h // factor, factor, w // factor, factor, c)
    return cells.mean(axis=(2, 4))


def image_tokens(images: Array, *, num_levels: int, downsample: int) -> Array:
    """``[B, H, W, 1]`` images (uint8, or float in [0, 1]) -> ``int32 [B, T]`` tokens:
    average pooled by ``downsample``, quantised to ``num_levels``, raster order
    (``T = (H / d) * (W / d)``; token ``i * (W / d) + j`` is row ``i``, column ``j``)."""
    chex.assert_rank(images, 4)
    if images.shape[-1] != 1:
        raise ValueError(
            f"pixel tokens are grey levels: images have {images.shape[-1]} channels; valid: 1"
        )
    x = downsample_pixels(as_unit_float(images), downsample)
    levels = quantize_pixels(x, num_levels)
    return levels.reshape(levels.shape[0], -1)


def num_tokens(image_shape, downsample: int) -> int:
    """Sequence length ``T`` of images of ``(H, W, ...)`` at ``downsample``."""
    factor = check_downsample(downsample)
    return (int(image_shape[0]) // factor) * (int(image_shape[1]) // factor)


def causal_mask(length: int) -> Array:
    """``bool [1, 1, T, T]``: query ``t`` may attend to keys ``0 .. t`` (lower triangle)."""
    return jnp.tril(jnp.ones((length, length), bool))[None, None]


def batch_chunked_attention(
    query: Array,
    key: Array,
    value: Array,
    mask: Array | None = None,
    *,
    chunk: int,
    dtype: Dtype | None = None,
    precision=None,
    force_fp32_for_softmax: bool = False,
) -> Array:
    """``nn.dot_product_attention`` (no dropout) on consecutive slices of ``chunk`` examples.

    Each example attends within itself, so the result is the whole-batch one (up to float32
    rounding). The ``[B, heads, T, T]`` attention weights of a whole batch outgrow the CPU's
    caches (a batch of 1000 Fashion-MNIST sequences: 600 MB per layer); slices of 32 keep
    them in cache: a batch of 1000 (width 64, 4 blocks) took 2.5 ms of forward pass per
    image against 8.8 ms in one call on the shared 2-core VM (load average 2-3). The slices are unrolled (as ``layers.batch_chunked_conv`` does), so XLA's cost
    analysis counts every one. ``chunk <= 0`` or a batch no larger than ``chunk`` runs one
    call.

    Args:
      query, key, value: ``[B, T, heads, head_dim]``.
      mask: ``bool [1, 1, T, T]`` shared by every example, or None.
    """
    attend = functools.partial(
        nn.dot_product_attention,
        deterministic=True,
        dtype=dtype,
        precision=precision,
        force_fp32_for_softmax=force_fp32_for_softmax,
    )
    size = query.shape[0]
    if mask is not None and mask.shape[0] != 1:
        raise ValueError(f"batch_chunked_attention needs one shared mask, got shape {mask.shape}")
    if chunk <= 0 or size <= chunk:
        return attend(query, key, value, mask=mask)
    outputs = [
        attend(
            *(
                jax.lax.slice_in_dim(x, start, min(start + chunk, size))
                for x in (query, key, value)
            ),
            mask=mask,
        )
        for start in range(0, size, chunk)
    ]
    return jnp.concatenate(outputs, axis=0)


class PositionEmbedding(nn.Module):
    """Adds a learned ``[T, D]`` embedding to ``[B, T, D]`` (``T`` from the input)."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        table = self.param(
            "embedding", nn.initializers.normal(POSITION_STD), x.shape[-2:], jnp.float32
        )
        return x + table.astype(self.dtype)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: ``h + Attn(LN(h))``, then ``h + MLP(LN(h))``."""

    width: int
    num_heads: int
    mlp_ratio: int
    depth: int
    causal: bool
    dtype: Dtype = jnp.float32
    attention_batch_chunk: int = 0

    @nn.compact
    def __call__(self, h: Array) -> Array:
        dense_init = nn.initializers.normal(INIT_STD)
        residual_init = nn.initializers.normal(INIT_STD / math.sqrt(2 * self.depth))
        mask = causal_mask(h.shape[1]) if self.causal else None
        x = nn.LayerNorm(
            epsilon=LN_EPSILON, dtype=self.dtype, param_dtype=jnp.float32, name="ln_attn"
        )(h)
        x = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            qkv_features=self.width,
            out_features=self.width,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=dense_init,
            out_kernel_init=residual_init,
            deterministic=True,
            force_fp32_for_softmax=True,
            attention_fn=functools.partial(
                batch_chunked_attention, chunk=self.attention_batch_chunk
            ),
            name="attention",
        )(x, x, mask=mask)
        h = h + x
        x = nn.LayerNorm(
            epsilon=LN_EPSILON, dtype=self.dtype, param_dtype=jnp.float32, name="ln_mlp"
        )(h)
        x = nn.Dense(
            self.mlp_ratio * self.width,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=dense_init,
            name="mlp_in",
        )(x)
        x = nn.gelu(x)
        x = nn.Dense(
            self.width,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=residual_init,
            name="mlp_out",
        )(x)
        return h + x


class PixelTransformer(nn.Module):
    """GPT-2-style Transformer over the quantised pixels of grey images (module docstring).

    ``__call__(x, train=...)`` returns the pooled features ``[B, width]`` (the encoder
    contract of ``ssljax.models``); ``encode`` also returns the token features.

    Attributes:
      num_levels: grey levels ``K`` of the tokens (2..256; default 8); the vocabulary has
        ``K + 1`` symbols, ``K`` being the start / [MASK] token.
      downsample: average pooling factor per side before quantising (default 2: 28 -> 14).
      width: model width ``D`` (must divide by ``num_heads``).
      depth: number of blocks ``N`` (sown as ``layer1`` .. ``layerN``).
      num_heads: attention heads.
      mlp_ratio: hidden units of each block's MLP per unit of width.
      causal: causal attention on tokens shifted right behind the start token (the
        autoregressive model); False: bidirectional attention on the tokens as given.
      attention_batch_chunk: examples per attention call (``batch_chunked_attention``):
        -1 (auto) is 32 on the CPU backend and the whole batch on accelerators (as
        ``model.conv_batch_chunk``), 0 the whole batch, n > 0 n examples. Parameters and
        results do not depend on it (up to float32 rounding).
      axis_name: accepted for the encoder interface; unused (no cross-device layers).
      dtype: compute dtype (params stay float32; softmax in float32).
      conv_batch_chunk: accepted for the encoder interface; unused (no convolutions).
    """

    num_levels: int = 8
    downsample: int = 2
    width: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: int = 4
    causal: bool = False
    attention_batch_chunk: int = -1
    axis_name: str | None = None
    dtype: Dtype = jnp.float32
    conv_batch_chunk: int = 0

    def setup(self):
        check_levels(self.num_levels)
        check_downsample(self.downsample)
        for key in ("width", "depth", "num_heads", "mlp_ratio"):
            value = getattr(self, key)
            if not is_integer(value) or value < 1:
                raise ValueError(f"PixelTransformer {key}={value!r} is invalid; valid: an int >= 1")
        if self.width % self.num_heads:
            heads = [h for h in range(1, self.width + 1) if self.width % h == 0]
            raise ValueError(
                f"PixelTransformer num_heads={self.num_heads} does not divide width="
                f"{self.width}; valid: one of {heads}"
            )
        if not is_integer(self.attention_batch_chunk) or self.attention_batch_chunk < -1:
            raise ValueError(
                f"PixelTransformer attention_batch_chunk={self.attention_batch_chunk!r} is "
                "invalid; valid: -1 (auto), 0 (whole batch) or an int > 0"
            )
        if self.causal not in (False, True):
            raise ValueError(f"PixelTransformer causal={self.causal!r} is invalid; valid: bool")
        self.token_embedding = nn.Embed(
            self.num_levels + 1,
            self.width,
            embedding_init=nn.initializers.normal(INIT_STD),
            dtype=self.dtype,
            param_dtype=jnp.float32,
        )
        self.position_embedding = PositionEmbedding(dtype=self.dtype)
        self.blocks = [
            TransformerBlock(
                width=self.width,
                num_heads=self.num_heads,
                mlp_ratio=self.mlp_ratio,
                depth=self.depth,
                causal=self.causal,
                dtype=self.dtype,
                attention_batch_chunk=resolve_conv_batch_chunk(int(self.attention_batch_chunk)),
                name=f"block{i + 1}",
            )
            for i in range(self.depth)
        ]
        self.final_norm = nn.LayerNorm(
            epsilon=LN_EPSILON, dtype=self.dtype, param_dtype=jnp.float32
        )

    @property
    def special_token(self) -> int:
        """The start token (causal) / [MASK] token (bidirectional): ``num_levels``."""
        return int(self.num_levels)

    def tokenize(self, x: Array) -> Array:
        """``int32 [B, T]`` tokens of images ``[B, H, W, 1]`` (``image_tokens``), or integer
        tokens ``[B, T]`` as they are (values ``0 .. num_levels``)."""
        x = jnp.asarray(x)
        if x.ndim == 2 and jnp.issubdtype(x.dtype, jnp.integer):
            return x.astype(jnp.int32)
        if x.ndim == 4:
            return image_tokens(x, num_levels=self.num_levels, downsample=self.downsample)
        raise ValueError(
            f"PixelTransformer input of shape {x.shape} and dtype {x.dtype} is invalid; valid: "
            "images [B, H, W, 1] or integer tokens [B, T]"
        )

    def embed(self, tokens: Array) -> Array:
        """Token embeddings ``[B, T, width]`` of ``int [B, T]`` tokens (no positions)."""
        chex.assert_rank(tokens, 2)
        return self.token_embedding(tokens)

    def encode_embedded(self, embedded: Array, *, train: bool = False) -> dict[str, Array]:
        """The network from token embeddings ``[B, T, width]`` on (causal: shifted right
        behind the start token's embedding); sows ``layer1`` .. ``layerN`` and ``pooled``.

        Returns:
          ``{'tokens': [B, T, width], 'pooled': [B, width]}``.
        """
        del train  # no dropout, no BatchNorm
        chex.assert_rank(embedded, 3)
        h = embedded.astype(self.dtype)
        if self.causal:
            start = jnp.full((h.shape[0], 1), self.special_token, jnp.int32)
            h = jnp.concatenate([self.embed(start).astype(self.dtype), h[:, :-1]], axis=1)
        h = self.position_embedding(h)
        for i, block in enumerate(self.blocks):
            h = block(h)
            self.sow("intermediates", f"layer{i + 1}", jnp.mean(h, axis=1))
        h = self.final_norm(h)
        pooled = jnp.mean(h, axis=1)
        self.sow("intermediates", "pooled", pooled)
        return {"tokens": h, "pooled": pooled}

    def encode(self, x: Array, *, train: bool = False) -> dict[str, Array]:
        """``{'tokens': [B, T, width], 'pooled': [B, width]}`` of images or tokens."""
        return self.encode_embedded(self.embed(self.tokenize(x)), train=train)

    def __call__(self, x: Array, *, train: bool) -> Array:
        """Pooled features ``[B, width]`` of images ``[B, H, W, 1]`` or tokens ``[B, T]``."""
        return self.encode(x, train=train)["pooled"]


class PixelNetwork(nn.Module):
    """A ``PixelTransformer`` (under ``'encoder'``) and a linear head of ``num_levels``
    logits on every position (under ``'head'``).

    ``__call__(x, train=...)`` returns ``{'features': [B, width], 'logits': float32
    [B, T, num_levels]}``; the head never predicts the start / [MASK] symbol.
    """

    encoder: PixelTransformer
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> dict[str, Array]:
        out = self.encoder.encode(x, train=train)
        logits = nn.Dense(
            self.encoder.num_levels,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=nn.initializers.normal(INIT_STD),
            name="head",
        )(out["tokens"])
        return {"features": out["pooled"], "logits": logits.astype(jnp.float32)}


__all__ = [
    "PixelNetwork",
    "PixelTransformer",
    "PositionEmbedding",
    "TransformerBlock",
    "batch_chunked_attention",
    "causal_mask",
    "downsample_pixels",
    "image_tokens",
    "num_tokens",
    "quantize_pixels",
]
