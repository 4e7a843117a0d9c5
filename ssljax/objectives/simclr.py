"""SimCLR (Chen et al. 2020) as a registry record: two augmented views, encoder + projector."""

from __future__ import annotations

import jax.numpy as jnp

from ssljax.objectives.contrastive import (
    contrastive_accuracy,
    cross_entropy_at,
    simclr_logits_and_labels,
)
from ssljax.objectives.registry import Objective, register


def build_simclr_model(config, axis_name):
    """Encoder + projection MLP; BatchNorm statistics are shared over ``axis_name``."""
    from ssljax.models.network import (
        SSLNetwork,
        build_encoder_from_config,
        build_projector_from_config,
    )

    return SSLNetwork(
        encoder=build_encoder_from_config(config, axis_name),
        projector=build_projector_from_config(config, axis_name),
    )


def two_augmented_views(rng, images, config):
    """Two independent SimCLR augmentations of a uint8 batch ``[n, H, W, C]``."""
    from ssljax.data.augment import make_views

    return make_views(rng, images, config.augment, num_views=2)


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


def view_forward(config):
    """``apply_to_views`` or ``apply_per_view`` as ``config.objective.view_batch_norm`` says
    (``'joint'``, the default, or ``'per_view'``)."""
    mode = config.objective.get("view_batch_norm", "joint")
    if mode not in VIEW_BATCH_NORM:
        raise ValueError(f"unknown objective.view_batch_norm {mode!r}; choose one of "
                         f"{sorted(VIEW_BATCH_NORM)}")
    return VIEW_BATCH_NORM[mode]


def simclr_objective_loss(params, model_state, views, rng, *, model, config, axis_name, **_):
    """NT-Xent on the projections of two views, with the contrastive accuracy as a metric."""
    del rng
    out, new_state = apply_to_views(params, model_state, views, model=model)
    z1, z2 = out["projection"]
    logits, labels = simclr_logits_and_labels(
        z1, z2, temperature=config.objective.temperature, axis_name=axis_name
    )
    loss = cross_entropy_at(logits, labels)
    metrics = {"loss": loss, "contrastive_accuracy": contrastive_accuracy(logits, labels)}
    return loss, (metrics, new_state, {"embedding": z1})


SIMCLR = register(
    Objective(
        name="simclr",
        build_model=build_simclr_model,
        make_views=two_augmented_views,
        loss=simclr_objective_loss,
        description="SimCLR NT-Xent over two augmented views (Chen et al. 2020)",
    )
)
