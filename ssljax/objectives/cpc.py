"""Contrastive Predictive Coding (van den Oord et al. 2018; CPC v2, Henaff et al. 2020).

An image is a grid of overlapping patches with embeddings ``z[b, i, j]``; a row-causal
context network gives ``c[b, i, j]`` and one linear map per offset predicts
``zhat = W_k c[b, i, j]`` for the patch ``k`` rows below. InfoNCE scores each prediction
against every patch embedding of the (global) batch:

    L = - mean over (b, i, j, k) with i + k < rows of
        log( exp(zhat . z[b, i+k, j]) / sum over all patches l of the batch exp(zhat . z_l) )

(van den Oord et al. 2018's InfoNCE loss, averaged rather than summed; the positive appears
once in the denominator, every other patch of every image at every position is a negative). As
in CPC v2 the same context network and critics predict in four directions (the grid rotated by
0, 90, 180 and 270 degrees) and the four losses are averaged.

Views (``cpc_views``): each image is augmented once (``make_views(..., num_views=1)`` with
``run.augment``), cut into the ``run.model.patches`` grid, and each patch may then be flipped
horizontally (``CPC.patch_flip_prob``) and, for colour images, reduced to one random colour
channel with the other two zeroed (``CPC.patch_color_drop_prob``), CPC v2's "colour dropping".
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    Run,
    check_choice,
    check_int,
    check_range,
)
from ssljax.objectives.contrastive import contrastive_accuracy, cross_entropy_at, gather_batch
from ssljax.objectives.registry import register


def cpc_logits_and_labels(
    predictions: chex.Array, targets: chex.Array, *, axis_name: str | None = None
) -> tuple[chex.Array, chex.Array]:
    """Logits of every valid prediction against every patch of the batch, and positives.

    Args:
      predictions: ``[K, n, rows, cols, d]``; ``predictions[k - 1, b, i, j]`` predicts
        ``targets[b, i + k, j]``. Entries with ``i + k >= rows`` have no target and are
        not used.
      targets: ``[n, rows, cols, d]`` patch embeddings of this device's ``n`` images.
      axis_name: mapped axis; the candidates then are the patches of every device.

    Returns:
      ``logits [A, N * rows * cols]`` for the ``A = n * cols * sum_k (rows - k)`` valid
      predictions (ordered by ``k``, then ``b, i, j``) against the global batch's patches
      flattened in ``(device, b, i, j)`` order, and ``labels [A]``, each prediction's
      positive index.
    """
    chex.assert_rank(predictions, 5)
    chex.assert_rank(targets, 4)
    steps, n, rows, cols, d = predictions.shape
    if targets.shape != (n, rows, cols, d):
        raise ValueError(
            f"predictions {predictions.shape} and targets {targets.shape} do not match: need "
            "[K, n, rows, cols, d] and [n, rows, cols, d]"
        )
    if not 1 <= steps < rows:
        raise ValueError(f"need 1 <= prediction steps K={steps} < grid rows {rows}")
    predictions = predictions.astype(jnp.float32)
    candidates, offset = gather_batch(
        targets.astype(jnp.float32).reshape(n * rows * cols, d), axis_name
    )
    flat_index = np.arange(n * rows * cols).reshape(n, rows, cols)
    anchors, labels = [], []
    for k in range(1, steps + 1):
        anchors.append(predictions[k - 1, :, : rows - k].reshape(-1, d))
        labels.append(flat_index[:, k:, :].reshape(-1))
    anchors = jnp.concatenate(anchors, axis=0)
    labels = jnp.asarray(np.concatenate(labels), jnp.int32) + offset
    return anchors @ candidates.T, labels


def cpc_loss(
    predictions: chex.Array, targets: chex.Array, *, axis_name: str | None = None
) -> tuple[chex.Array, chex.Array]:
    """InfoNCE of CPC for one prediction direction: ``(loss, accuracy)``.

    For each position ``(b, i, j)`` and offset ``k`` with ``i + k < rows``, the positive is
    ``targets[b, i + k, j]`` and the negatives are all other patch embeddings of the batch at
    any position (gathered from every device when ``axis_name`` is set). The score is the
    plain dot product ``predictions[k - 1, b, i, j] . z`` (the bilinear critic
    ``c^T W_k^T z``, no normalisation or temperature, as in the papers).

    Args:
      predictions: ``[K, n, rows, cols, d]``, see ``cpc_logits_and_labels``.
      targets: ``[n, rows, cols, d]``.
      axis_name: mapped axis to gather negatives over, or None.

    Returns:
      The mean cross entropy over this device's valid predictions (every device has the same
      count, so the device mean is the global batch's loss) and the fraction of predictions
      whose positive scores highest.
    """
    logits, labels = cpc_logits_and_labels(predictions, targets, axis_name=axis_name)
    return cross_entropy_at(logits, labels), contrastive_accuracy(logits, labels)


# ---------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------

# Prediction directions: top-to-bottom only, both vertical ones, or all four (CPC v2).
DIRECTIONS = (1, 2, 4)


def build_cpc_model(run: Run, axis_name, *, prediction_steps: int, directions: int):
    """``CPCNetwork``: the patch-grid encoder of ``run.model``, context net and critics."""
    from ssljax.models.cpc import ContextNetwork, CPCNetwork
    from ssljax.models.network import build_encoder_from_config, dtype_from_name
    from ssljax.models.patches import PatchGridEncoder

    encoder = build_encoder_from_config(run, axis_name)
    if not isinstance(encoder, PatchGridEncoder):
        raise ValueError("objective 'cpc' needs config.model.patches (size, stride)")
    ctx = run.model.get("context", {})
    dtype = dtype_from_name(run.dtype)
    return CPCNetwork(
        encoder=encoder,
        context=ContextNetwork(
            width=int(ctx.get("width", 256)),
            num_blocks=int(ctx.get("num_blocks", 2)),
            kernel_size=tuple(int(k) for k in ctx.get("kernel_size", (2, 3))),
            dtype=dtype,
        ),
        prediction_steps=prediction_steps,
        directions=directions,
        dtype=dtype,
    )


def augment_patches(rng, patches, *, flip_prob: float = 0.0, color_drop_prob: float = 0.0):
    """Independent per-patch flips and colour dropping of ``[B, rows, cols, p, p, C]``.

    Each patch is mirrored left-right with probability ``flip_prob``; with probability
    ``color_drop_prob`` a colour patch (``C == 3``) keeps one uniformly chosen channel and
    the other two are set to zero (CPC v2). Single-channel patches are never colour-dropped.
    """
    chex.assert_rank(patches, 6)
    flip_rng, drop_rng, channel_rng = jax.random.split(rng, 3)
    grid_shape = patches.shape[:3]
    if flip_prob > 0.0:
        flip = jax.random.bernoulli(flip_rng, flip_prob, grid_shape)
        patches = jnp.where(flip[..., None, None, None], patches[:, :, :, :, ::-1], patches)
    channels = patches.shape[-1]
    if color_drop_prob > 0.0 and channels == 3:
        drop = jax.random.bernoulli(drop_rng, color_drop_prob, grid_shape)
        keep = jax.nn.one_hot(jax.random.randint(channel_rng, grid_shape, 0, channels), channels)
        mask = jnp.where(drop[..., None], keep, 1.0).astype(patches.dtype)
        patches = patches * mask[..., None, None, :]
    return patches


def cpc_views(rng, images, run: Run, *, flip_prob: float, color_drop_prob: float):
    """One augmented view, cut into patches and augmented per patch: ``([B, r, c, p, p, C],)``."""
    from ssljax.models.patches import extract_patches
    from ssljax.views.augment import make_views

    chex.assert_rank(images, 4)
    image_rng, patch_rng = jax.random.split(rng)
    (view,) = make_views(image_rng, images, run.augment, num_views=1)
    patches = extract_patches(view, int(run.model.patches.size), int(run.model.patches.stride))
    patches = augment_patches(
        patch_rng, patches, flip_prob=flip_prob, color_drop_prob=color_drop_prob
    )
    return (patches,)


def cpc_direction_losses(predictions, targets, directions: int, axis_name):
    """Mean CPC InfoNCE over the prediction directions, with per-direction metrics."""
    from ssljax.models.cpc import DIRECTION_NAMES, ROTATIONS

    metrics, losses, accuracies = {}, [], []
    for rotation, preds, tgts in zip(ROTATIONS[directions], predictions, targets):
        loss, accuracy = cpc_loss(preds, tgts, axis_name=axis_name)
        losses.append(loss)
        accuracies.append(accuracy)
        metrics[f"loss_{DIRECTION_NAMES[rotation]}"] = loss
    loss = jnp.mean(jnp.stack(losses))
    metrics.update(loss=loss, cpc_accuracy=jnp.mean(jnp.stack(accuracies)))
    return loss, metrics


def training_image_size(run: Run) -> tuple[int, int]:
    """``(H, W)`` of the training views: the dataset's images, or ``augment.output_size``."""
    height, width = run.facts.image_shape[:2]
    out_size = run.augment.get("output_size") if run.augment is not None else None
    if out_size is not None:
        height, width = (out_size, out_size) if isinstance(out_size, int) else out_size
    return int(height), int(width)


def check_patch_grid(run: Run, prediction_steps: int, directions: int) -> None:
    """One-line ValueErrors for patch grids and prediction offsets the images cannot give."""
    from ssljax.models.patches import patch_grid_shape

    patches = run.model.get("patches") if run.model is not None else None
    if patches is None or "size" not in patches or "stride" not in patches:
        raise ValueError("objective 'cpc' needs config.model.patches.size and .stride")
    size, stride = patches.size, patches.stride
    height, width = training_image_size(run)
    try:
        rows, cols = patch_grid_shape(height, width, size, stride)
    except ValueError as err:
        raise ValueError(
            f"model.patches (size={size}, stride={stride}) do not fit the {height}x{width} "
            f"training images of {run.facts.name}: {err}"
        ) from None
    # With 4 directions the columns become rows of the rotated grid.
    limit = rows if directions < 4 else min(rows, cols)
    if prediction_steps >= limit:
        raise ValueError(
            f"objective.prediction_steps={prediction_steps} must be smaller than the "
            f"{rows}x{cols} patch grid's {limit} rows ({height}x{width} training images, "
            f"patches of {size} at stride {stride})"
        )


@register
@dataclasses.dataclass(frozen=True)
class CPC(Objective):
    """CPC v2: InfoNCE of row-causal predictions over a patch grid, in 1, 2 or 4 directions.

    Attributes:
      prediction_steps: ``K``, the rows ahead each context vector predicts (1..K).
      directions: 1 (top to bottom), 2 (and bottom to top) or 4 (and both horizontal ones,
        CPC v2).
      patch_flip_prob: probability of mirroring each patch left-right.
      patch_color_drop_prob: probability of keeping one random channel of each colour patch
        (the other two zeroed, CPC v2's colour dropping).
    """

    name: ClassVar[str] = "cpc"
    description: ClassVar[str] = (
        "Contrastive Predictive Coding v2 over patch grids, 4 "
        "directions (van den Oord et al. 2018; Henaff et al. 2020)"
    )

    prediction_steps: int = 3
    directions: int = 4
    patch_flip_prob: float = 0.0
    patch_color_drop_prob: float = 0.0

    def __post_init__(self):
        check_int("prediction_steps", self.prediction_steps)
        check_choice("directions", self.directions, DIRECTIONS)
        check_range("patch_flip_prob", self.patch_flip_prob, low=0.0, high=1.0)
        check_range("patch_color_drop_prob", self.patch_color_drop_prob, low=0.0, high=1.0)

    def check(self, run: Run) -> None:
        check_patch_grid(run, int(self.prediction_steps), int(self.directions))

    def build_model(self, run: Run, axis_name):
        return build_cpc_model(
            run,
            axis_name,
            prediction_steps=int(self.prediction_steps),
            directions=int(self.directions),
        )

    def make_views(self, rng, images, run: Run):
        return cpc_views(
            rng,
            images,
            run,
            flip_prob=float(self.patch_flip_prob),
            color_drop_prob=float(self.patch_color_drop_prob),
        )

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        (x,) = views
        out, new_state = ctx.model.apply(
            {"params": params, **model_state}, x, train=True, mutable=list(model_state)
        )
        loss, metrics = cpc_direction_losses(
            out["predictions"], out["targets"], int(self.directions), ctx.axis_name
        )
        return loss, LossAux(metrics, new_state, Outputs(embedding=out["features"]))
