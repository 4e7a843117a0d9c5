"""Classification pretext tasks: rotation, jigsaw puzzles, relative patch location.

Each task makes inputs and labels on device from unlabelled images
(``ssljax.views.pretext``) and trains ``PretextClassifier`` (``ssljax.models.pretext_heads``)
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
points below the same encoder with statistics re-estimated on whole images
(docs/pretext_tasks.md, "Classification pretext tasks: rotation, jigsaw puzzles, relative patch
location"). With ``objective.image_stats_fraction = f > 0`` every step also runs the encoder,
in train mode and outside the gradient, on the first ``max(1, round(f * n))`` whole images of
the device's batch, and the encoder's running statistics take that update instead of the crops'
(``with_image_statistics``). Training itself still normalises crops by crop statistics; only
what inference uses changes. The classifier's statistics stay those of the crops.

Hyperparameters (the fields of ``Rotation``, ``Jigsaw`` and ``RelativePatchLocation``,
``config.objective``):
  rotation                 rotations, pad_crop (RotNet's zero-pad + random crop), flip
  jigsaw                   grid, tile_size, gap, jitter, num_permutations,
                           min_hamming_distance, permutation_seed, color_mode, color_prob,
                           noise_fraction, normalize, image_stats_fraction
  relative_patch_location  patch_size, gap, jitter, color_mode, color_prob, noise_fraction,
                           normalize, image_stats_fraction
and ``config.model.classifier`` (``hidden_dims``, ``use_bn``, ``crop_dim``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import chex
import flax.struct
import jax
import jax.numpy as jnp

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
from ssljax.objectives.registry import register
from ssljax.views import pretext as pretext_data

# ---------------------------------------------------------------------------------------------
# Pure losses.


def pretext_classification_loss(
    logits: chex.Array, labels: chex.Array
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


@flax.struct.dataclass
class PretextOutputs(Outputs):
    """The encoder features of the inputs, the classifier's logits and the labels (one row
    per classified input)."""

    logits: jax.Array | None = None
    labels: jax.Array | None = None
    PER_EXAMPLE: ClassVar[tuple[str, ...]] = ("embedding", "logits", "labels")


def classifier_settings(run: Run) -> dict:
    """``run.model.classifier`` (``hidden_dims``, ``use_bn``, ``crop_dim``) with defaults."""
    head = run.model.get("classifier", {})
    return dict(
        hidden_dims=tuple(int(h) for h in head.get("hidden_dims", ())),
        use_bn=bool(head.get("use_bn", True)),
        crop_dim=int(head.get("crop_dim", 0)),
    )


def check_whole_image_encoder(name: str, run: Run) -> None:
    """The tasks crop their own inputs: a patch-grid encoder (``model.patches``) is refused."""
    if run.model.get("patches") is not None:
        raise ValueError(f"objective {name!r} crops its own inputs; remove config.model.patches")


def build_classifier(name: str, run: Run, axis_name, *, num_classes: int, num_inputs: int):
    """``PretextClassifier`` over ``run.model``'s encoder for ``num_inputs`` inputs."""
    from ssljax.models.network import build_encoder_from_config, dtype_from_name
    from ssljax.models.pretext_heads import PretextClassifier

    check_whole_image_encoder(name, run)
    return PretextClassifier(
        encoder=build_encoder_from_config(run, axis_name),
        num_classes=num_classes,
        num_inputs=num_inputs,
        axis_name=axis_name,
        dtype=dtype_from_name(run.dtype),
        **classifier_settings(run),
    )


def classification_loss(params, model_state, inputs, labels, *, model):
    """Cross entropy of the network's logits on ``inputs`` at ``labels``.

    Returns ``(loss, metrics, new_model_state, PretextOutputs)``.
    """
    out, new_state = model.apply(
        {"params": params, **model_state}, inputs, train=True, mutable=list(model_state)
    )
    loss, accuracy = pretext_classification_loss(out["logits"], labels)
    metrics = {"loss": loss, "pretext_accuracy": accuracy}
    outputs = PretextOutputs(embedding=out["features"], logits=out["logits"], labels=labels)
    return loss, metrics, new_state, outputs


def stats_images(images, fraction: float):
    """The whole images whose statistics the encoder's BatchNorm keeps (empty tuple: none)."""
    from ssljax.views.augment import to_float

    chex.assert_rank(images, 4)
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
        {"params": jax.lax.stop_gradient(params), **model_state},
        images,
        train=True,
        mutable=["batch_stats"],
    )
    batch_stats = dict(new_state["batch_stats"], encoder=image_state["batch_stats"]["encoder"])
    return dict(new_state, batch_stats=batch_stats)


def crop_classification_loss(params, model_state, views, *, model):
    """``classification_loss`` on ``views = (crops, labels[, whole images])``; with whole
    images the encoder's BatchNorm statistics come from them (``with_image_statistics``)."""
    crops, labels, *images = views
    loss, metrics, new_state, outputs = classification_loss(
        params, model_state, crops, labels, model=model
    )
    if images:
        new_state = with_image_statistics(params, model_state, new_state, images[0], model=model)
    return loss, LossAux(metrics, new_state, outputs)


def training_hw(run: Run) -> tuple[int, int]:
    """``(H, W)`` of the training images."""
    return int(run.facts.image_shape[0]), int(run.facts.image_shape[1])


def check_crop_settings(obj) -> None:
    """Range checks of the colour countermeasure, normalisation and image statistics."""
    check_int("gap", obj.gap, low=0)
    check_int("jitter", obj.jitter, low=0)
    check_choice("color_mode", obj.color_mode, pretext_data.COLOR_MODES)
    check_range("color_prob", obj.color_prob, low=0.0, high=1.0)
    check_range("noise_fraction", obj.noise_fraction, low=0.0)
    check_choice("normalize", obj.normalize, (False, True))
    check_range("image_stats_fraction", obj.image_stats_fraction, low=0.0, high=1.0)


def check_color_channels(obj, run: Run) -> None:
    """The colour countermeasures act on 3-channel crops and leave 1-channel ones alone."""
    channels = run.facts.channels
    if obj.color_mode != "none" and obj.color_prob > 0 and channels not in (1, 3):
        raise ValueError(
            f"objective.color_mode={obj.color_mode!r} needs 1- or 3-channel "
            f"images, {run.facts.name} has {channels}; valid: color_mode='none'"
        )


def color_kwargs(obj) -> dict:
    """The colour and normalisation arguments of the crop makers."""
    return dict(
        color_mode=obj.color_mode,
        color_prob=float(obj.color_prob),
        noise_fraction=float(obj.noise_fraction),
        normalize=bool(obj.normalize),
    )


# ---------------------------------------------------------------------------------------------
# Rotation (Gidaris et al. 2018).


def rotation_views(rng, images, *, rotations: tuple[int, ...], pad_crop: int, flip: bool):
    """Optional RotNet translation + flip, then every image in every rotation."""
    from ssljax.views.augment import random_flip_left_right, to_float

    chex.assert_rank(images, 4)
    crop_rng, flip_rng = jax.random.split(rng)
    x = pretext_data.random_pad_crop(crop_rng, to_float(images), pad_crop)
    if flip:
        x = random_flip_left_right(flip_rng, x, prob=0.5)
    return pretext_data.all_rotations(x, rotations)


@register
@dataclasses.dataclass(frozen=True)
class Rotation(Objective):
    """RotNet: classify which of ``rotations`` each image was rotated by.

    Attributes:
      rotations: the rotation angles (degrees, at least two of 0/90/180/270); one class each.
      pad_crop: RotNet's zero padding before a random crop to the original size (0: none).
      flip: random horizontal flips before rotating.
    """

    name: ClassVar[str] = "rotation"
    description: ClassVar[str] = (
        "RotNet: classify 0/90/180/270-degree rotations (Gidaris et al. 2018)"
    )

    rotations: tuple[int, ...] = pretext_data.ROTATION_DEGREES
    pad_crop: int = 0
    flip: bool = False

    def __post_init__(self):
        object.__setattr__(self, "rotations", pretext_data.check_rotation_degrees(self.rotations))
        check_int("pad_crop", self.pad_crop, low=0)
        check_choice("flip", self.flip, (False, True))

    def check(self, run: Run) -> None:
        check_whole_image_encoder(self.name, run)
        h, w = training_hw(run)
        if h != w and any(d % 180 for d in self.rotations):
            raise ValueError(
                f"objective.rotations={self.rotations} include 90/270 degrees, "
                f"which need square images; {run.facts.name} trains on {h}x{w}; "
                "valid: a subset of (0, 180)"
            )

    def build_model(self, run: Run, axis_name):
        return build_classifier(
            self.name, run, axis_name, num_classes=len(self.rotations), num_inputs=1
        )

    def make_views(self, rng, images, run: Run):
        del run
        return rotation_views(
            rng, images, rotations=self.rotations, pad_crop=int(self.pad_crop), flip=bool(self.flip)
        )

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        """Cross entropy of the rotation labels, plus the accuracy of each rotation."""
        del rng
        inputs, labels = views
        loss, metrics, new_state, outputs = classification_loss(
            params, model_state, inputs, labels, model=ctx.model
        )
        accuracy = per_class_accuracy(outputs.logits, outputs.labels, len(self.rotations))
        metrics = dict(
            metrics, **{f"accuracy_{d}": accuracy[i] for i, d in enumerate(self.rotations)}
        )
        return loss, LossAux(metrics, new_state, outputs)


# ---------------------------------------------------------------------------------------------
# Jigsaw puzzles (Noroozi & Favaro 2016).


@register
@dataclasses.dataclass(frozen=True)
class Jigsaw(Objective):
    """Jigsaw puzzles: classify the permutation of ``grid x grid`` shuffled tiles.

    Attributes:
      grid: tiles per side (2 or 3).
      tile_size: tile side in pixels.
      gap: pixels between neighbouring tiles.
      jitter: each tile moves by up to this many pixels per axis.
      num_permutations: size of the greedy max-Hamming permutation set (the classes).
      min_hamming_distance: required minimum pairwise Hamming distance of the set.
      permutation_seed: chooses the set's first permutation.
      color_mode, color_prob, noise_fraction: per-tile colour countermeasure
        (``ssljax.views.pretext.color_countermeasure``).
      normalize: each tile to zero mean and unit variance.
      image_stats_fraction: fraction of the batch's whole images whose statistics the
        encoder's BatchNorm keeps (0: the tiles'; module docstring).
    """

    name: ClassVar[str] = "jigsaw"
    description: ClassVar[str] = (
        "Jigsaw puzzles: classify the tile permutation among a "
        "max-Hamming set (Noroozi & Favaro 2016)"
    )

    grid: int = 3
    tile_size: int = 7
    gap: int = 2
    jitter: int = 1
    num_permutations: int = 1000
    min_hamming_distance: int = 1
    permutation_seed: int = 0
    color_mode: str = "gray"
    color_prob: float = 0.3
    noise_fraction: float = 0.0
    normalize: bool = False
    image_stats_fraction: float = 0.25

    def __post_init__(self):
        check_choice("grid", self.grid, (2, 3))
        check_int("tile_size", self.tile_size)
        tiles = int(self.grid) ** 2
        check_int("num_permutations", self.num_permutations, low=2)
        if self.num_permutations > math.factorial(tiles):
            raise ValueError(
                f"objective.num_permutations={self.num_permutations} is invalid; "
                f"{tiles} tiles have {math.factorial(tiles)} permutations, "
                f"choose 2..{math.factorial(tiles)}"
            )
        check_int("min_hamming_distance", self.min_hamming_distance)
        if self.min_hamming_distance > tiles:
            raise ValueError(
                f"objective.min_hamming_distance={self.min_hamming_distance} is "
                f"invalid; choose 1..{tiles} for {tiles} tiles"
            )
        check_int("permutation_seed", self.permutation_seed, low=0)
        check_crop_settings(self)

    def permutation_set(self):
        """The greedy max-Hamming permutation set (host numpy, cached; a few seconds for a
        3x3 grid the first time). Raises if ``min_hamming_distance`` is not attainable."""
        return pretext_data.hamming_permutation_set(
            int(self.num_permutations),
            int(self.grid) ** 2,
            seed=int(self.permutation_seed),
            min_distance=int(self.min_hamming_distance),
        )

    def _grid_kwargs(self) -> dict:
        return dict(
            grid=int(self.grid),
            tile=int(self.tile_size),
            gap=int(self.gap),
            jitter=int(self.jitter),
        )

    def check(self, run: Run) -> None:
        check_whole_image_encoder(self.name, run)
        h, w = training_hw(run)
        try:
            pretext_data.check_grid_fits(h, w, **self._grid_kwargs())
        except ValueError as err:
            raise ValueError(f"objective (jigsaw) on {run.facts.name}: {err}") from None
        check_color_channels(self, run)
        self.permutation_set()

    def build_model(self, run: Run, axis_name):
        return build_classifier(
            self.name,
            run,
            axis_name,
            num_classes=int(self.num_permutations),
            num_inputs=int(self.grid) ** 2,
        )

    def make_views(self, rng, images, run: Run):
        """``(shuffled tiles [B, grid**2, t, t, C], permutation labels [B])`` (+ whole images
        for the encoder's BatchNorm statistics, see ``stats_images``)."""
        del run
        tiles, labels = pretext_data.jigsaw_puzzles(
            rng, images, self.permutation_set(), **self._grid_kwargs(), **color_kwargs(self)
        )
        return (tiles, labels) + stats_images(images, float(self.image_stats_fraction))

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        return crop_classification_loss(params, model_state, views, model=ctx.model)


# ---------------------------------------------------------------------------------------------
# Relative patch location (Doersch et al. 2015).


@register
@dataclasses.dataclass(frozen=True)
class RelativePatchLocation(Objective):
    """Context prediction: classify which of the 8 neighbours of a centre patch a patch is.

    Attributes:
      patch_size: patch side in pixels.
      gap: pixels between the centre patch and its neighbour.
      jitter: the neighbour moves by up to this many pixels per axis.
      color_mode, color_prob, noise_fraction: per-patch colour countermeasure
        (``ssljax.views.pretext.color_countermeasure``).
      normalize: each patch to zero mean and unit variance.
      image_stats_fraction: fraction of the batch's whole images whose statistics the
        encoder's BatchNorm keeps (0: the patches'; module docstring).
    """

    name: ClassVar[str] = "relative_patch_location"
    description: ClassVar[str] = (
        "Context prediction: classify which of the 8 neighbours a patch is (Doersch et al. 2015)"
    )

    patch_size: int = 10
    gap: int = 4
    jitter: int = 2
    color_mode: str = "drop"
    color_prob: float = 1.0
    noise_fraction: float = 0.01
    normalize: bool = False
    image_stats_fraction: float = 0.25

    def __post_init__(self):
        check_int("patch_size", self.patch_size)
        check_crop_settings(self)

    def _pair_kwargs(self) -> dict:
        return dict(size=int(self.patch_size), gap=int(self.gap), jitter=int(self.jitter))

    def check(self, run: Run) -> None:
        check_whole_image_encoder(self.name, run)
        h, w = training_hw(run)
        try:
            pretext_data.check_pair_fits(h, w, **self._pair_kwargs())
        except ValueError as err:
            raise ValueError(
                f"objective (relative_patch_location) on {run.facts.name}: {err}"
            ) from None
        check_color_channels(self, run)

    def build_model(self, run: Run, axis_name):
        return build_classifier(
            self.name, run, axis_name, num_classes=len(pretext_data.NEIGHBOURS), num_inputs=2
        )

    def make_views(self, rng, images, run: Run):
        """``(centre/neighbour patches [B, 2, p, p, C], neighbour labels [B])`` (+ whole
        images for the encoder's BatchNorm statistics, see ``stats_images``)."""
        del run
        patches, labels = pretext_data.patch_pairs(
            rng, images, **self._pair_kwargs(), **color_kwargs(self)
        )
        return (patches, labels) + stats_images(images, float(self.image_stats_fraction))

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        return crop_classification_loss(params, model_state, views, model=ctx.model)
