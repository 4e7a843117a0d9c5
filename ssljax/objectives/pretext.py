"""Classification pretext tasks: rotation, jigsaw puzzles, relative patch location.

Each task makes inputs and labels on device from unlabelled images
(``ssljax.data.pretext``) and trains ``PretextClassifier`` (``ssljax.models.pretext_heads``)
with the softmax cross entropy of the labels:

    L = - mean_i log softmax(logits_i)[label_i]

* ``rotation`` (Gidaris et al. 2018): every image in the rotations ``objective.rotations``
  (default 0/90/180/270), one batch of ``R * B`` images, ``R``-way classification.
* ``jigsaw`` (Noroozi & Favaro 2016): ``grid x grid`` tiles with gaps and jitter, shuffled by
  one of ``num_permutations`` greedy max-Hamming permutations; the shared-weight encoder sees
  each tile, the classifier the concatenated tile features.
* ``relative_patch_location`` (Doersch et al. 2015): a centre patch and one of its 8
  neighbours, 8-way classification from the concatenated patch features.

Every example of every device carries the same number of labels, so the mean over this
device's labels, averaged over devices by the generic step, is the global batch's mean (no
collective is needed here; cross-replica BatchNorm runs inside the model).

Crop tasks and BatchNorm statistics: the encoder trains on tiles/patches but the linear probe
runs it on whole images, in inference mode, with the running BatchNorm statistics gathered in
training. Statistics of 7x7 tiles (mostly border positions in every feature map) do not fit
whole 28x28 images: on Fashion-MNIST a jigsaw encoder probed with tile statistics scored 1.2
points below the same encoder with statistics re-estimated on whole images (README section).
With ``objective.image_stats_fraction = f > 0`` every step also runs the encoder, in train
mode and outside the gradient, on the first ``max(1, round(f * n))`` whole images of the
device's batch, and the encoder's running statistics take that update instead of the crops'
(``with_image_statistics``). Training itself still normalises crops by crop statistics; only
what inference uses changes. The classifier's statistics stay those of the crops.

Config keys (``config.objective``; defaults in ``configs/methods.py``):
  rotation                 rotations, pad_crop (RotNet's zero-pad + random crop), flip
  jigsaw                   grid, tile_size, gap, jitter, num_permutations,
                           min_hamming_distance, permutation_seed, color_mode, color_prob,
                           noise_fraction, normalize, image_stats_fraction
  relative_patch_location  patch_size, gap, jitter, color_mode, color_prob, noise_fraction,
                           normalize, image_stats_fraction
and ``config.model.classifier`` (``hidden_dims``, ``use_bn``, ``crop_dim``).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from ssljax.data import pretext as pretext_data
from ssljax.objectives.registry import Objective, register


# ---------------------------------------------------------------------------------------------
# Pure losses.


def pretext_classification_loss(logits: chex.Array, labels: chex.Array
                                ) -> tuple[chex.Array, chex.Array]:
    """Mean softmax cross entropy of ``logits [n, K]`` at integer ``labels [n]``, and accuracy.

    Computed in float32 with ``log_softmax`` (stable for large logits).
    """
    chex.assert_rank(logits, 2)
    chex.assert_shape(labels, (logits.shape[0],))
    logits = logits.astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    labels = labels.astype(jnp.int32)
    loss = -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))
    accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
    return loss, accuracy


def per_class_accuracy(logits: chex.Array, labels: chex.Array, num_classes: int) -> chex.Array:
    """``[num_classes]`` accuracy among the examples of each label (NaN-free: 0 if none)."""
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    return (onehot * correct[:, None]).sum(0) / jnp.maximum(onehot.sum(0), 1.0)


# ---------------------------------------------------------------------------------------------
# Shared pieces.


def _classifier_settings(config) -> dict:
    head = config.model.get("classifier", {})
    return dict(hidden_dims=tuple(int(h) for h in head.get("hidden_dims", ())),
                use_bn=bool(head.get("use_bn", True)), crop_dim=int(head.get("crop_dim", 0)))


def _build(config, axis_name, *, num_classes: int, num_inputs: int):
    from ssljax.models.network import build_encoder_from_config, dtype_from_name
    from ssljax.models.pretext_heads import PretextClassifier

    if config.model.get("patches") is not None:
        raise ValueError(f"objective {config.objective.name!r} crops its own inputs; remove "
                         "config.model.patches")
    return PretextClassifier(
        encoder=build_encoder_from_config(config, axis_name),
        num_classes=num_classes,
        num_inputs=num_inputs,
        axis_name=axis_name,
        dtype=dtype_from_name(config.get("dtype", "float32")),
        **_classifier_settings(config),
    )


def classification_loss(params, model_state, views, rng, *, model, config, axis_name, **_):
    """Cross entropy of the network's logits on ``views = (inputs, labels)``."""
    del rng, config, axis_name
    inputs, labels = views
    out, new_state = model.apply(
        {"params": params, **model_state}, inputs, train=True, mutable=list(model_state))
    loss, accuracy = pretext_classification_loss(out["logits"], labels)
    metrics = {"loss": loss, "pretext_accuracy": accuracy}
    return loss, (metrics, new_state, {"embedding": out["features"], "logits": out["logits"],
                                       "labels": labels})


def stats_images(images, config):
    """The whole images whose statistics the encoder's BatchNorm keeps (empty tuple: none)."""
    from ssljax.data.augment import to_float

    fraction = float(config.objective.get("image_stats_fraction", 0.0))
    if fraction <= 0.0:
        return ()
    count = max(1, int(round(fraction * images.shape[0])))
    return (to_float(images[:count]),)


def with_image_statistics(params, model_state, new_state, images, *, model):
    """``new_state`` whose encoder BatchNorm statistics are updated from ``images``, not crops.

    Runs the network (which then runs only its encoder) in train mode on whole ``images`` from
    the step's old ``model_state``, outside the gradient, and takes the encoder's part of the
    resulting ``batch_stats``; everything else stays as in ``new_state``.
    """
    if "encoder" not in new_state.get("batch_stats", {}):
        return new_state
    _, image_state = model.apply(
        {"params": jax.lax.stop_gradient(params), **model_state}, images, train=True,
        mutable=["batch_stats"])
    batch_stats = dict(new_state["batch_stats"], encoder=image_state["batch_stats"]["encoder"])
    return dict(new_state, batch_stats=batch_stats)


def crop_classification_loss(params, model_state, views, rng, *, model, **kwargs):
    """``classification_loss`` on ``views = (crops, labels[, whole images])``; with whole
    images the encoder's BatchNorm statistics come from them (``with_image_statistics``)."""
    crops, labels, *images = views
    loss, (metrics, new_state, outputs) = classification_loss(
        params, model_state, (crops, labels), rng, model=model, **kwargs)
    if images:
        new_state = with_image_statistics(params, model_state, new_state, images[0],
                                          model=model)
    return loss, (metrics, new_state, outputs)


def _train_hw(config) -> tuple[int, int]:
    from ssljax.data.datasets import get_dataset_spec

    spec = get_dataset_spec(config.dataset.name)
    return int(spec.train_image_shape[0]), int(spec.train_image_shape[1])


def _check_prob(value, key: str) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{key}={value} must lie in [0, 1]")


def _check_color(obj) -> None:
    _check_prob(obj.get("image_stats_fraction", 0.0), "objective.image_stats_fraction")
    pretext_data.check_color_mode(obj.get("color_mode", "none"))
    _check_prob(obj.get("color_prob", 0.0), "objective.color_prob")
    if float(obj.get("noise_fraction", 0.0)) < 0.0:
        raise ValueError(f"objective.noise_fraction={obj.noise_fraction} must be >= 0")


def _color_kwargs(obj) -> dict:
    return dict(color_mode=obj.get("color_mode", "none"),
                color_prob=float(obj.get("color_prob", 0.0)),
                noise_fraction=float(obj.get("noise_fraction", 0.0)),
                normalize=bool(obj.get("normalize", False)))


# ---------------------------------------------------------------------------------------------
# Rotation (Gidaris et al. 2018).


def _rotations(config) -> tuple[int, ...]:
    return pretext_data.check_rotation_degrees(
        config.objective.get("rotations", pretext_data.ROTATION_DEGREES))


def build_rotation_model(config, axis_name):
    return _build(config, axis_name, num_classes=len(_rotations(config)), num_inputs=1)


def rotation_views(rng, images, config):
    """Optional RotNet translation + flip, then every image in every rotation."""
    from ssljax.data.augment import random_flip_left_right, to_float

    obj = config.objective
    crop_rng, flip_rng = jax.random.split(rng)
    x = pretext_data.random_pad_crop(crop_rng, to_float(images), int(obj.get("pad_crop", 0)))
    if obj.get("flip", False):
        x = random_flip_left_right(flip_rng, x, prob=0.5)
    return pretext_data.all_rotations(x, _rotations(config))


def rotation_loss(params, model_state, views, rng, **kwargs):
    """Cross entropy of the rotation labels, plus the accuracy of each rotation."""
    loss, (metrics, new_state, outputs) = classification_loss(
        params, model_state, views, rng, **kwargs)
    degrees = _rotations(kwargs["config"])
    accuracy = per_class_accuracy(outputs["logits"], outputs["labels"], len(degrees))
    metrics = dict(metrics, **{f"accuracy_{d}": accuracy[i] for i, d in enumerate(degrees)})
    return loss, (metrics, new_state, outputs)


def check_rotation_config(config) -> None:
    degrees = _rotations(config)
    h, w = _train_hw(config)
    if h != w and any(d % 180 for d in degrees):
        raise ValueError(f"objective.rotations={degrees} include 90/270 degrees, which need "
                         f"square images; {config.dataset.name} trains on {h}x{w}")
    pad = config.objective.get("pad_crop", 0)
    if isinstance(pad, bool) or int(pad) != pad or pad < 0:
        raise ValueError(f"objective.pad_crop={pad!r} must be an int >= 0")


ROTATION = register(
    Objective(
        name="rotation",
        build_model=build_rotation_model,
        make_views=rotation_views,
        loss=rotation_loss,
        check_config=check_rotation_config,
        description="RotNet: classify 0/90/180/270-degree rotations (Gidaris et al. 2018)",
    )
)


# ---------------------------------------------------------------------------------------------
# Jigsaw puzzles (Noroozi & Favaro 2016).


def _grid_settings(config) -> dict:
    obj = config.objective
    return dict(grid=int(obj.get("grid", 3)), tile=int(obj.tile_size), gap=int(obj.gap),
                jitter=int(obj.jitter))


def permutation_set(config):
    """The config's greedy max-Hamming permutation set (host numpy, cached)."""
    obj = config.objective
    grid = int(obj.get("grid", 3))
    return pretext_data.hamming_permutation_set(
        int(obj.num_permutations), grid * grid, seed=int(obj.get("permutation_seed", 0)),
        min_distance=int(obj.get("min_hamming_distance", 1)))


def build_jigsaw_model(config, axis_name):
    grid = int(config.objective.get("grid", 3))
    return _build(config, axis_name, num_classes=int(config.objective.num_permutations),
                  num_inputs=grid * grid)


def jigsaw_views(rng, images, config):
    """``(shuffled tiles [B, grid**2, t, t, C], permutation labels [B])`` (+ whole images
    for the encoder's BatchNorm statistics, see ``stats_images``)."""
    tiles, labels = pretext_data.jigsaw_puzzles(rng, images, permutation_set(config),
                                                **_grid_settings(config),
                                                **_color_kwargs(config.objective))
    return (tiles, labels) + stats_images(images, config)


def check_jigsaw_config(config) -> None:
    settings = _grid_settings(config)
    if settings["grid"] not in (2, 3):
        raise ValueError(f"objective.grid={settings['grid']} is invalid; choose 2 or 3 "
                         "(permutation sets are enumerated up to 9 tiles)")
    h, w = _train_hw(config)
    try:
        pretext_data.check_grid_fits(h, w, **settings)
    except ValueError as err:
        raise ValueError(f"objective (jigsaw) on {config.dataset.name}: {err}") from None
    _check_color(config.objective)
    permutation_set(config)


JIGSAW = register(
    Objective(
        name="jigsaw",
        build_model=build_jigsaw_model,
        make_views=jigsaw_views,
        loss=crop_classification_loss,
        check_config=check_jigsaw_config,
        description="Jigsaw puzzles: classify the tile permutation among a max-Hamming set "
                    "(Noroozi & Favaro 2016)",
    )
)


# ---------------------------------------------------------------------------------------------
# Relative patch location (Doersch et al. 2015).


def _pair_settings(config) -> dict:
    obj = config.objective
    return dict(size=int(obj.patch_size), gap=int(obj.gap), jitter=int(obj.jitter))


def build_relative_patch_model(config, axis_name):
    return _build(config, axis_name, num_classes=len(pretext_data.NEIGHBOURS), num_inputs=2)


def relative_patch_views(rng, images, config):
    """``(centre/neighbour patches [B, 2, p, p, C], neighbour labels [B])`` (+ whole images
    for the encoder's BatchNorm statistics, see ``stats_images``)."""
    patches, labels = pretext_data.patch_pairs(rng, images, **_pair_settings(config),
                                               **_color_kwargs(config.objective))
    return (patches, labels) + stats_images(images, config)


def check_relative_patch_config(config) -> None:
    h, w = _train_hw(config)
    try:
        pretext_data.check_pair_fits(h, w, **_pair_settings(config))
    except ValueError as err:
        raise ValueError(f"objective (relative_patch_location) on {config.dataset.name}: "
                         f"{err}") from None
    _check_color(config.objective)


RELATIVE_PATCH_LOCATION = register(
    Objective(
        name="relative_patch_location",
        build_model=build_relative_patch_model,
        make_views=relative_patch_views,
        loss=crop_classification_loss,
        check_config=check_relative_patch_config,
        description="Context prediction: classify which of the 8 neighbours a patch is "
                    "(Doersch et al. 2015)",
    )
)
