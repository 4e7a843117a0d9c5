"""SimCLR (Chen et al. 2020): two augmented views, encoder + projector, NT-Xent; and the
forward passes over views that every two-view method shares."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from ssljax.objectives.base import LossAux, LossContext, Objective, Outputs, Run, check_range
from ssljax.objectives.contrastive import (
    contrastive_accuracy,
    cross_entropy_at,
    simclr_logits_and_labels,
)
from ssljax.objectives.registry import register


def build_simclr_model(run: Run, axis_name):
    """Encoder + projection MLP of ``run.model``; BatchNorm statistics are shared over
    ``axis_name``."""
    from ssljax.models.network import (
        SSLNetwork,
        build_encoder_from_config,
        build_projector_from_config,
    )

    return SSLNetwork(
        encoder=build_encoder_from_config(run, axis_name),
        projector=build_projector_from_config(run, axis_name),
    )


def augmented_views(rng, images, run: Run, num_views: int = 2):
    """``num_views`` independent SimCLR augmentations (``run.augment``) of a uint8 batch.

    ``images`` is ``[B, H, W, C]`` (each view crops on the device), or ``[B, num_views, S,
    S, C]`` crops cut on the host (``ssljax.data.host_views``; objectives with
    ``host_crops = True``), which are flipped, jittered and blurred per view."""
    from ssljax.views.augment import make_views

    return make_views(rng, images, run.augment, num_views=num_views)


def apply_to_views(params, model_state, views, *, model, **kwargs):
    """Runs the network in train mode on the concatenation of ``views``.

    All views go through one call, so BatchNorm normalises over all of them together as in
    the SimCLR reference implementation. ``kwargs`` go to the model's ``__call__``. Returns
    the outputs split per view and the new state.
    """
    x = jnp.concatenate(views, axis=0)
    out, new_state = model.apply(
        {"params": params, **model_state}, x, train=True, mutable=list(model_state), **kwargs
    )
    split = {k: jnp.split(v, len(views), axis=0) for k, v in out.items()}
    return split, new_state


def apply_per_view(params, model_state, views, *, model, **kwargs):
    """Runs the network in train mode on each view in turn, threading the BatchNorm state.

    Each view is normalised over its own (global) batch and the running averages advance once
    per view, as in the BYOL reference code's separate forward passes; ``apply_to_views``
    normalises over all views together. Same return value as ``apply_to_views``.
    """
    outs = []
    for view in views:
        out, model_state = apply_to_views(params, model_state, (view,), model=model, **kwargs)
        outs.append(out)
    return {k: [o[k][0] for o in outs] for k in outs[0]}, model_state


VIEW_BATCH_NORM = {"joint": apply_to_views, "per_view": apply_per_view}


@register
@dataclasses.dataclass(frozen=True)
class SimCLR(Objective):
    """NT-Xent on the projections of two augmented views (Chen et al. 2020).

    Attributes:
      temperature: the softmax temperature tau of NT-Xent.
    """

    name: ClassVar[str] = "simclr"
    host_crops: ClassVar[bool] = True  # augmented_views: crops may come from the host
    description: ClassVar[str] = "SimCLR NT-Xent over two augmented views (Chen et al. 2020)"

    temperature: float = 0.5

    def __post_init__(self):
        check_range("temperature", self.temperature, low=0.0, low_open=True)

    def build_model(self, run, axis_name):
        return build_simclr_model(run, axis_name)

    def make_views(self, rng, images, run):
        return augmented_views(rng, images, run)

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        out, new_state = apply_to_views(params, model_state, views, model=ctx.model)
        z1, z2 = out["projection"]
        logits, labels = simclr_logits_and_labels(
            z1, z2, temperature=self.temperature, axis_name=ctx.axis_name
        )
        loss = cross_entropy_at(logits, labels)
        metrics = {"loss": loss, "contrastive_accuracy": contrastive_accuracy(logits, labels)}
        return loss, LossAux(metrics, new_state, Outputs(embedding=z1))
