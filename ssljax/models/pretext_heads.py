"""Classifier networks of the classification pretext tasks (rotation, jigsaw, patch location).

``PretextClassifier`` wraps any registered encoder (``[N, H, W, C] -> [N, D]``, variables
under ``'encoder'``, so ``ssljax.models.network.encoder_variables`` cuts it out for the linear
probe, which then runs the plain encoder on whole images):

* one input per example (rotation, RotNet): ``[B, H, W, C] -> encoder -> classifier``;
* ``num_inputs`` crops per example (jigsaw tiles, a centre/neighbour pair):
  ``[B, T, h, w, C]``: every crop goes through the same encoder (shared weights, one batch of
  ``B * T`` crops), each crop feature through a shared ``Dense(crop_dim) -> ReLU`` (Noroozi &
  Favaro's per-tile fc6; Doersch et al.'s per-patch fc6), then the ``T`` crop vectors are
  concatenated in slot order and classified by an MLP (fc7, fc8). Concatenation keeps the
  order, which is what the label depends on.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssljax.models.heads import MLPHead

Array = Any
Dtype = Any


class PretextClassifier(nn.Module):
    """Encoder + classifier over one image or a fixed number of crops per example.

    ``__call__(x, train=...)`` returns ``{'features': [B, D], 'logits': [B, num_classes]}``;
    for crops ``features`` is the mean of the crop features (what the collapse monitors
    watch). Whole images ``[B, H, W, C]`` given to a multi-crop network return only
    ``features`` (at initialisation the classifier is built on ``T`` copies of them, so
    ``init`` works on whole images).

    Attributes:
      encoder: image encoder with a ``train`` keyword (any of ``ssljax.models.ENCODERS``).
      num_classes: rotations, permutations or neighbours.
      num_inputs: crops per example (1: whole images).
      crop_dim: width of the shared per-crop layer (0: none, crop features go straight in).
      hidden_dims: hidden widths of the classifier MLP (``MLPHead``; empty: linear).
      use_bn: BatchNorm in the classifier's hidden layers.
      axis_name: mapped axis for cross-replica BatchNorm, or None.
      dtype: compute dtype (params stay float32).
    """

    encoder: nn.Module
    num_classes: int
    num_inputs: int = 1
    crop_dim: int = 0
    hidden_dims: Sequence[int] = ()
    use_bn: bool = True
    axis_name: str | None = None
    dtype: Dtype = jnp.float32

    def setup(self):
        if self.num_inputs > 1 and self.crop_dim > 0:
            self.crop_layer = nn.Dense(self.crop_dim, dtype=self.dtype, param_dtype=jnp.float32)
        self.classifier = MLPHead(
            hidden_dims=tuple(self.hidden_dims),
            output_dim=self.num_classes,
            use_bn=self.use_bn,
            axis_name=self.axis_name,
            dtype=self.dtype,
        )

    def classify(self, crop_features: Array, *, train: bool) -> Array:
        """Logits ``[B, num_classes]`` from per-crop features ``[B, T, D]`` (or ``[B, D]``)."""
        if crop_features.ndim == 2:
            return self.classifier(crop_features, train=train)
        h = crop_features
        if self.crop_dim > 0:
            h = nn.relu(self.crop_layer(h))
        return self.classifier(h.reshape(h.shape[0], -1), train=train)

    def __call__(self, x: Array, *, train: bool) -> dict[str, Array]:
        if x.ndim == 4:
            features = self.encoder(x, train=train)
            if self.num_inputs == 1:
                return {"features": features, "logits": self.classify(features, train=train)}
            out = {"features": features}
            if self.is_initializing():
                copies = jnp.repeat(features[:, None], self.num_inputs, axis=1)
                out["logits"] = self.classify(copies, train=train)
            return out
        if x.ndim != 5 or x.shape[1] != self.num_inputs or self.num_inputs == 1:
            raise ValueError(
                f"PretextClassifier(num_inputs={self.num_inputs}) expects [B, H, W, C] images"
                f" or [B, {self.num_inputs}, h, w, C] crops, got shape {x.shape}"
            )
        b, t = x.shape[:2]
        flat = self.encoder(x.reshape((b * t,) + x.shape[2:]), train=train)
        crop_features = flat.reshape(b, t, flat.shape[-1])
        return {
            "features": jnp.mean(crop_features, axis=1),
            "logits": self.classify(crop_features, train=train),
        }
