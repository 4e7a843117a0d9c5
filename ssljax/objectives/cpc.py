"""Contrastive Predictive Coding (van den Oord et al. 2018; CPC v2, Henaff et al. 2020).

An image is a grid of overlapping patches with embeddings ``z[b, i, j]``; a row-causal
context network gives ``c[b, i, j]`` and one linear map per offset predicts
``zhat = W_k c[b, i, j]`` for the patch ``k`` rows below. InfoNCE scores each prediction
against every patch embedding of the (global) batch:

    L = - mean over (b, i, j, k) with i + k < rows of
        log( exp(zhat . z[b, i+k, j]) / sum over all patches l of the batch exp(zhat . z_l) )

(the seed's L_CPC, averaged rather than summed; the positive appears once in the
denominator, every other patch of every image at every position is a negative). As in CPC v2
the same context network and critics predict in four directions (the grid rotated by 0, 90,
180 and 270 degrees) and the four losses are averaged.

Views (``cpc_views``): each image is augmented once (``make_views(..., num_views=1)`` with
``config.augment``), cut into patches, and each patch may then be flipped horizontally
(``objective.patch_flip_prob``) and, for colour images, reduced to one random colour channel
with the other two zeroed (``objective.patch_color_drop_prob``), CPC v2's "colour dropping".
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.objectives.contrastive import contrastive_accuracy, cross_entropy_at, gather_batch
from ssljax.objectives.registry import Objective, register


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
    candidates, offset = gather_batch(targets.astype(jnp.float32).reshape(n * rows * cols, d),
                                      axis_name)
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
# Registry record
# ---------------------------------------------------------------------------

DIRECTIONS = (1, 2, 4)


def _cpc_settings(config) -> tuple[int, int]:
    obj = config.objective
    return int(obj.get("prediction_steps", 3)), int(obj.get("directions", 4))


def build_cpc_model(config, axis_name):
    """``CPCNetwork``: the patch-grid encoder of ``config.model``, context net and critics."""
    from ssljax.models.cpc import ContextNetwork, CPCNetwork
    from ssljax.models.network import build_encoder_from_config, dtype_from_name
    from ssljax.models.patches import PatchGridEncoder

    encoder = build_encoder_from_config(config, axis_name)
    if not isinstance(encoder, PatchGridEncoder):
        raise ValueError("objective 'cpc' needs config.model.patches (size, stride)")
    ctx = config.model.get("context", {})
    dtype = dtype_from_name(config.get("dtype", "float32"))
    steps, directions = _cpc_settings(config)
    return CPCNetwork(
        encoder=encoder,
        context=ContextNetwork(
            width=int(ctx.get("width", 256)),
            num_blocks=int(ctx.get("num_blocks", 2)),
            kernel_size=tuple(int(k) for k in ctx.get("kernel_size", (2, 3))),
            dtype=dtype,
        ),
        prediction_steps=steps,
        directions=directions,
        dtype=dtype,
    )


def augment_patches(rng, patches, *, flip_prob: float = 0.0, color_drop_prob: float = 0.0):
    """Independent per-patch flips and colour dropping of ``[B, rows, cols, p, p, C]``.

    Each patch is mirrored left-right with probability ``flip_prob``; with probability
    ``color_drop_prob`` a colour patch (``C == 3``) keeps one uniformly chosen channel and
    the other two are set to zero (CPC v2). Single-channel patches are never colour-dropped.
    """
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


def cpc_views(rng, images, config):
    """One augmented view, cut into patches and augmented per patch: ``([B, r, c, p, p, C],)``."""
    from ssljax.data.augment import make_views
    from ssljax.models.patches import extract_patches

    image_rng, patch_rng = jax.random.split(rng)
    (view,) = make_views(image_rng, images, config.augment, num_views=1)
    patches = extract_patches(view, int(config.model.patches.size),
                              int(config.model.patches.stride))
    patches = augment_patches(
        patch_rng,
        patches,
        flip_prob=float(config.objective.get("patch_flip_prob", 0.0)),
        color_drop_prob=float(config.objective.get("patch_color_drop_prob", 0.0)),
    )
    return (patches,)


def cpc_objective_loss(params, model_state, views, rng, *, model, config, axis_name, **_):
    """Mean CPC InfoNCE over the prediction directions, with per-direction metrics."""
    from ssljax.models.cpc import DIRECTION_NAMES, ROTATIONS

    del rng
    (x,) = views
    out, new_state = model.apply(
        {"params": params, **model_state}, x, train=True, mutable=list(model_state)
    )
    _, directions = _cpc_settings(config)
    metrics, losses, accuracies = {}, [], []
    for rotation, preds, targets in zip(ROTATIONS[directions], out["predictions"],
                                        out["targets"]):
        loss, accuracy = cpc_loss(preds, targets, axis_name=axis_name)
        losses.append(loss)
        accuracies.append(accuracy)
        metrics[f"loss_{DIRECTION_NAMES[rotation]}"] = loss
    loss = jnp.mean(jnp.stack(losses))
    metrics.update(loss=loss, cpc_accuracy=jnp.mean(jnp.stack(accuracies)))
    return loss, (metrics, new_state, {"embedding": out["features"]})


def _image_sizes(config) -> list[tuple[str, int, int]]:
    """``(what, H, W)`` of the training views and of the evaluation images."""
    from ssljax.data.datasets import get_dataset_spec

    spec = get_dataset_spec(config.dataset.name)
    train_h, train_w = spec.train_image_shape[:2]
    out_size = config.augment.get("output_size")
    if out_size is not None:
        train_h, train_w = (out_size, out_size) if isinstance(out_size, int) else out_size
    return [("training", int(train_h), int(train_w)),
            ("evaluation", int(spec.image_shape[0]), int(spec.image_shape[1]))]


def check_cpc_config(config) -> None:
    """One-line ValueErrors for patch grids and prediction offsets that cannot work."""
    from ssljax.models.patches import patch_grid_shape

    patches = config.model.get("patches")
    if patches is None or "size" not in patches or "stride" not in patches:
        raise ValueError("objective 'cpc' needs config.model.patches.size and .stride")
    steps, directions = _cpc_settings(config)
    if directions not in DIRECTIONS:
        raise ValueError(
            f"objective.directions={directions} is invalid; choose one of {DIRECTIONS}"
        )
    if steps < 1:
        raise ValueError(f"objective.prediction_steps={steps} must be >= 1")
    size, stride = patches.size, patches.stride
    for what, height, width in _image_sizes(config):
        try:
            rows, cols = patch_grid_shape(height, width, size, stride)
        except ValueError as err:
            raise ValueError(
                f"model.patches (size={size}, stride={stride}) do not fit the {height}x{width} "
                f"{what} images of {config.dataset.name}: {err}"
            ) from None
        if what != "training":
            continue
        # With 4 directions the columns become rows of the rotated grid.
        limit = rows if directions < 4 else min(rows, cols)
        if steps >= limit:
            raise ValueError(
                f"objective.prediction_steps={steps} must be smaller than the {rows}x{cols} "
                f"patch grid's {limit} rows ({height}x{width} {what} images, patches of "
                f"{size} at stride {stride})"
            )


CPC = register(
    Objective(
        name="cpc",
        build_model=build_cpc_model,
        make_views=cpc_views,
        loss=cpc_objective_loss,
        check_config=check_cpc_config,
        description="Contrastive Predictive Coding v2 over patch grids, 4 directions "
                    "(van den Oord et al. 2018; Henaff et al. 2020)",
    )
)
