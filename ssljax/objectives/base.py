"""The contract between the generic train step and one method: a typed, frozen objective.

An objective is a frozen dataclass whose fields are the method's hyperparameters, each with
its one default. ``from_config(config.objective)`` builds it; an unknown key is a one-line
error naming the valid ones. Everything else the method may know about the run comes in a
``Run``: the dataset's facts (computed once per run, ``DatasetFacts``), the batch size, the
number of steps, the seed, and the model and augmentation settings.

The hooks, in the order a run calls them::

  check(run)                              one-line ValueError for settings it cannot run with
  build_model(run, axis_name)             the Flax module the loss applies
  sample_shape(run)                       the input shape the module is initialised on
                                          ([1, H, W, C] images by default)
  param_groups(run)                       {params key: ParamGroup}: networks with their own
                                          optimizer (discriminators); {} for most methods
  init_state(params, model_state, run)    the method's typed state (EMA target, queue, bank)
  prefill_state(state, params, ...)       once before the first step of a fresh run
  make_views(rng, images, run)            on-device inputs of the model (augmented views, ...);
                                          images [B, V, S, S, C] when crops come from the host
                                          (objectives with host_crops = True)
  loss(params, model_state, views, rng, ctx) -> (loss, LossAux)
  update_state(state, outputs, ctx)       after the optimiser update

Objectives of ``modality = 'text'`` (word2vec) train on a text corpus instead of images
(``ssljax.data.text_source``): the host turns the corpus into examples with the objective's
``text_examples(sentences, counts, seed)`` hook, one call per epoch, and ``batch['image']``
holds the model's integer input (centre or context word ids) rather than pixels.

The pure losses (``simclr_loss``, ``byol_loss``, ``vicreg_loss``, ...) stay free functions
of arrays; an objective wires one of them to a network and to views.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Mapping

import flax.struct
import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class DatasetFacts:
    """What a run knows about its pretraining data, computed once (``dataset_facts``).

    Attributes:
      name: the dataset's registry name.
      image_shape: ``(H, W, C)`` of the ``uint8`` images the host feeds to training.
      num_examples: examples in the pretraining split (``batch['index']`` ranges over them).
      num_classes: label classes (evaluation only; no objective learns from labels).
      pretrain_split: the TFDS split pretraining reads.
      in_memory: the split is held in host memory at ``image_shape`` (no host resizing), so
        it can be loaded whole (``prefill_state``).
      vocab_size: words in a text corpus's vocabulary (``ssljax.data.text_source``); 0 for
        images. Text facts have ``image_shape = ()``, ``num_examples`` = the corpus's
        in-vocabulary tokens and ``num_classes = 0``.
    """

    name: str
    image_shape: tuple[int, ...]
    num_examples: int
    num_classes: int
    pretrain_split: str = "train"
    in_memory: bool = True
    vocab_size: int = 0

    @property
    def is_text(self) -> bool:
        return self.vocab_size > 0

    @property
    def channels(self) -> int:
        return int(self.image_shape[-1])


@dataclasses.dataclass(frozen=True)
class Run:
    """What an objective may know of the run beyond its own hyperparameters.

    Attributes:
      facts: the pretraining dataset's facts.
      batch_size: the global batch (all devices and hosts).
      total_steps: optimisation steps of the run (EMA schedules).
      seed: the run's seed (initial queues and banks).
      model: ``config.model`` (encoder, projector, decoders, ...).
      augment: ``config.augment`` (SimCLR-style augmentation parameters).
      dtype: compute dtype name (``'float32'`` or ``'bfloat16'``).
    """

    facts: DatasetFacts
    batch_size: int
    total_steps: int
    seed: int = 0
    model: Any = None
    augment: Any = None
    dtype: str = "float32"

    @classmethod
    def from_config(cls, config, facts: DatasetFacts) -> "Run":
        return cls(
            facts=facts,
            batch_size=int(config.batch_size),
            total_steps=int(config.total_steps),
            seed=int(config.get("seed", 0)),
            model=config.get("model"),
            augment=config.get("augment"),
            dtype=str(config.get("dtype", "float32")),
        )

    def seed_key(self, tag: int) -> Array:
        """A key of the run's seed, distinct per ``tag`` (initial queues, banks)."""
        return jax.random.fold_in(jax.random.PRNGKey(self.seed), tag)


@dataclasses.dataclass(frozen=True)
class ParamGroup:
    """A network of the objective's own (a discriminator) trained with its own optimizer.

    Its parameters sit under ``params[name]`` beside the main model's, so one gradient, one
    finite check and one ``optax.multi_transform`` update them all.

    Attributes:
      module: the Flax module (parameters only, no other collections).
      sample_shape: an input shape to initialise it with.
      tx: the optax transformation for this group (the run's optimizer trains the rest).
    """

    module: Any
    sample_shape: tuple
    tx: Any


@flax.struct.dataclass
class Outputs:
    """What a loss hands to ``update_state`` and to the step's collapse monitors.

    Subclasses add fields. Fields named in ``PER_EXAMPLE`` hold one row per example and are
    concatenated over gradient-accumulation micro-batches; the others are averaged (floats)
    or taken from the last micro-batch.
    """

    embedding: Array | None = None
    PER_EXAMPLE: ClassVar[tuple[str, ...]] = ("embedding",)


@flax.struct.dataclass
class LossAux:
    """The auxiliary result of a loss: logged metrics, the model's new state, outputs."""

    metrics: dict
    model_state: Any
    outputs: Outputs


@dataclasses.dataclass(frozen=True)
class LossContext:
    """Everything a loss may read besides parameters, views and its per-device key.

    Attributes:
      model: the train-mode Flax module (``build_model(run, axis_name)``).
      state: the objective's state (``init_state``), read-only in the loss.
      batch: this device's batch (``'image'``, ``'label'``, ``'index'``; labels are never
        learned from).
      axis_name: the device axis for collectives (None: one device, no collectives).
      run: the run's facts and settings.
      shared_rng: a key equal on every device (noise drawn for the whole global batch).
    """

    model: Any
    state: Any
    batch: Mapping[str, Array]
    axis_name: str | None
    run: Run
    shared_rng: Array | None = None


@dataclasses.dataclass(frozen=True)
class UpdateContext:
    """What ``update_state`` may read: the updated parameters and the step."""

    params: Any
    model_state: Any
    step: Array
    axis_name: str | None
    run: Run


def _config_items(objective_config) -> dict:
    if objective_config is None:
        return {}
    if hasattr(objective_config, "to_dict"):
        return objective_config.to_dict()
    return dict(objective_config)


def _as_field_type(value, default):
    """Lists from JSON become tuples where the default is a tuple (stored configs)."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


@dataclasses.dataclass(frozen=True)
class Objective:
    """Base of every objective; subclasses are frozen dataclasses of hyperparameters."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Whether the loss reads batch['index'] (each example's position in the split).
    needs_index: ClassVar[bool] = False
    # Whether ``make_views`` is ``augmented_views`` (two SimCLR-style views), so its crops can
    # be cut on the host (``ssljax.data.host_views``): ``make_views`` then receives
    # ``[B, 2, S, S, C]`` host crops and only flips, jitters and blurs them.
    host_crops: ClassVar[bool] = False
    # Old config keys accepted and ignored (stored runs), with why; not hyperparameters.
    RETIRED_KEYS: ClassVar[Mapping[str, str]] = {}
    # What the objective trains on: 'image' (TFDS and image-folder datasets) or 'text'
    # (``ssljax.data.text_source``: examples from ``text_examples``).
    modality: ClassVar[str] = "image"

    # --- construction -------------------------------------------------------------------

    @classmethod
    def hyperparameter_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_config(cls, objective_config) -> "Objective":
        """The objective of ``config.objective`` (its ``name`` key is ignored here).

        Raises:
          ValueError: a key that is not a hyperparameter of this objective (one line naming
            the valid ones), or a value ``__post_init__`` refuses.
        """
        items = _config_items(objective_config)
        items.pop("name", None)
        valid = cls.hyperparameter_names()
        for key in list(items):
            if key in cls.RETIRED_KEYS:
                items.pop(key)
            elif key not in valid:
                raise ValueError(
                    f"unknown key objective.{key} for objective {cls.name!r}; valid keys: "
                    f"{', '.join(valid) or '(none)'}"
                )
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        items = {k: _as_field_type(v, defaults.get(k)) for k, v in items.items()}
        return cls(**items)

    def hyperparameters(self) -> dict:
        """The fields as a plain dict (``name`` included), e.g. for logs and configs."""
        return dict(name=self.name, **dataclasses.asdict(self))

    # --- hooks ----------------------------------------------------------------------------

    def check(self, run: Run) -> None:
        """Raises a one-line ValueError for settings this method cannot run with."""
        del run

    def build_model(self, run: Run, axis_name: str | None):
        raise NotImplementedError

    def sample_shape(self, run: Run) -> tuple[int, ...]:
        """The shape of one input the model is initialised on: ``(1, H, W, C)`` of the
        dataset's images unless the objective's model reads something else."""
        return (1,) + tuple(run.facts.image_shape)

    def text_examples(self, sentences, counts, seed: int) -> dict:
        """One epoch of training examples from a text corpus (``modality = 'text'``):
        ``{key: array [n, ...]}`` with the model's input under ``'image'``. ``sentences``
        are token-id arrays, ``counts`` the vocabulary's counts; ``seed`` draws the epoch's
        windows, subsampling and noise words."""
        raise NotImplementedError(f"objective {self.name!r} does not train on text")

    def param_groups(self, run: Run) -> Mapping[str, ParamGroup]:
        """Networks of the objective's own, ``{top-level params name: ParamGroup}``, trained
        by their own optimizer under the step's one gradient and finite check."""
        del run
        return {}

    def init_state(self, params, model_state, run: Run):
        """The method's state between steps (a pytree of arrays), or None."""
        del params, model_state, run
        return None

    def prefill_state(
        self, state, params, model_state, load_images: Callable[[], Any], *, model, run: Run
    ):
        """Runs once before the first step of a fresh run; returns ``state`` unchanged by
        default. ``load_images()`` gives the whole pretraining split (uint8, index order)."""
        del params, model_state, load_images, model, run
        return state

    def make_views(self, rng: Array, images: Array, run: Run) -> tuple:
        raise NotImplementedError

    def loss(
        self, params, model_state, views: tuple, rng: Array, ctx: LossContext
    ) -> tuple[Array, LossAux]:
        raise NotImplementedError

    def update_state(self, state, outputs: Outputs, ctx: UpdateContext):
        """The state after the optimiser update (EMA targets, queue and bank writes)."""
        del outputs, ctx
        return state


# ---------------------------------------------------------------------------------------------
# Checks shared by the objectives: one line each, naming the key and the valid range.


def check_choice(key: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown objective.{key} {value!r}; choose one of {list(choices)}")


def check_range(
    key: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """``low <= value <= high`` (``<`` where open); bounds of None are not checked."""
    value = float(value)
    ok = True
    if low is not None:
        ok &= value > low if low_open else value >= low
    if high is not None:
        ok &= value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{low} {'<' if low_open else '<='} "
        hi = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise ValueError(f"objective.{key}={value:g} is invalid; valid: {lo}{key}{hi}")


def check_int(key: str, value, *, low: int = 1) -> None:
    if isinstance(value, bool) or int(value) != value or int(value) < low:
        raise ValueError(f"objective.{key}={value!r} is invalid; valid: an integer >= {low}")


def split_param_group(params, name: str = "discriminator"):
    """``(the model's params, params[name] or None)``: a parameter group's params sit beside
    the model's at the top level (``Objective.param_groups``)."""
    return {k: v for k, v in params.items() if k != name}, params.get(name)


def global_rows(key: Array, num: int, draw: Callable, axis_name: str | None) -> Array:
    """This device's ``num`` rows of a draw made for the whole global batch.

    ``key`` must be equal on every device (``LossContext.shared_rng``); ``draw(key, n)``
    returns ``[n, ...]``. The global batch's ``devices * num`` rows are drawn and device ``i``
    keeps rows ``i * num`` to ``(i + 1) * num - 1``, the rows of its examples, so an
    example's noise (a prior draw, a mask) does not depend on the number of devices.
    """
    if axis_name is None:
        return draw(key, num)
    rows = draw(key, jax.lax.axis_size(axis_name) * num)
    return jax.lax.dynamic_slice_in_dim(rows, jax.lax.axis_index(axis_name) * num, num, axis=0)


def copy_tree(tree):
    """A copy of every array leaf (targets start equal to, but apart from, the online net)."""
    return jax.tree.map(jnp.copy, tree)
