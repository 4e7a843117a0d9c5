"""The objective registry: a name maps to a small record of what a method needs.

A record says which model to build, which views the data must produce, the pure loss over
those views, and (for later methods) whether a target network exists. The generic train step
(`ssljax.training.step`) only talks to these records, never to a specific method.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

Array = Any


@dataclasses.dataclass(frozen=True)
class Objective:
    """What the generic train step needs to optimise one method.

    Attributes:
      name: registry name (``config.objective.name``).
      build_model: ``(config, axis_name) -> flax Module`` whose output the loss consumes.
      make_views: ``(rng, images_uint8, config) -> tuple of arrays``: the inputs the model
        sees (augmented views, rotated copies, ...), computed on device.
      loss: ``(params, model_state, views, rng, *, model, config, axis_name, extra, batch) ->
        (loss, (metrics, new_model_state, outputs))``, a pure function differentiable in
        ``params``. ``extra`` is the objective-owned state (``TrainState.extra``: EMA target,
        queue, memory bank), ``batch`` this device's batch dict (``'image'``, ``'label'``,
        ``'index'``; labels are never used for learning). ``outputs`` is a dict handed to
        ``update_extra`` after the optimiser step; its ``'embedding'`` entry ``[n, d]`` is
        what the step's collapse monitors look at.
      init_extra: ``(params, model_state, config) -> pytree``, the initial ``extra``
        (None: the method keeps no state of its own).
      update_extra: ``(extra, outputs, *, params, model_state, step, config, axis_name) ->
        extra``, run after the optimiser update with the new ``params`` (EMA targets, queue
        and memory-bank writes). ``step`` is the number of updates before this one.
      check_config: ``(config) -> None``, raises ValueError with one line for settings the
        method cannot run with (queue size, momentum range, views the data cannot give).
      prefill_extra: ``(extra, params, model_state, load_images, *, model, config) ->
        extra``, run once before the first step of a fresh run; ``load_images()`` returns
        the whole pretraining split (uint8, in ``index`` order), ``model`` is the eval model
        (memory-bank prefill). None: nothing to do.
      needs_index: whether the loss reads ``batch['index']`` (each example's position in
        the training split, e.g. for a memory bank).
      has_target: whether the method keeps an EMA target network.
      description: one line for listings.
    """

    name: str
    build_model: Callable[..., Any]
    make_views: Callable[..., tuple]
    loss: Callable[..., tuple]
    init_extra: Callable[..., Any] | None = None
    update_extra: Callable[..., Any] | None = None
    check_config: Callable[[Any], None] | None = None
    prefill_extra: Callable[..., Any] | None = None
    needs_index: bool = False
    has_target: bool = False
    description: str = ""


_REGISTRY: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
    """Adds an objective to the registry; a duplicate name is an error."""
    if objective.name in _REGISTRY:
        raise ValueError(f"objective {objective.name!r} is already registered")
    _REGISTRY[objective.name] = objective
    return objective


def names() -> list[str]:
    """Sorted names of every registered objective."""
    return sorted(_REGISTRY)


def get(name: str) -> Objective:
    """Returns the objective registered as ``name``; unknown names list the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown objective {name!r}; known objectives: {', '.join(names())}")
    return _REGISTRY[name]
