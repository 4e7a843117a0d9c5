"""The objective registry: a name maps to a typed objective class (``base.Objective``).

The generic train step (``ssljax.training.step``) only talks to objective instances, never to
a specific method. ``build(config.objective)`` is the one way a run turns its config into an
objective.
"""

from __future__ import annotations

from ssljax.objectives.base import Objective

_REGISTRY: dict[str, type[Objective]] = {}
# Names under which runs were stored before two objectives merged: read by ``build`` only, so
# stored configs still resume and evaluate; ``names()`` and ``get`` know the new name alone.
STORED_NAMES = {"denoising_ae": "denoising_autoencoder"}


def register(cls: type[Objective]) -> type[Objective]:
    """Class decorator: adds an objective class under its ``name``; a duplicate is an error."""
    if not cls.name:
        raise ValueError(f"objective class {cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"objective {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    """Sorted names of every registered objective."""
    return sorted(_REGISTRY)


def get(name: str) -> type[Objective]:
    """The objective class registered as ``name``; unknown names list the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown objective {name!r}; known objectives: {', '.join(names())}")
    return _REGISTRY[name]


def build(objective_config) -> Objective:
    """The objective ``objective_config`` describes (its ``name`` and hyperparameters)."""
    name = objective_config.get("name") if objective_config is not None else None
    if name is None:
        raise ValueError(f"objective.name is missing; known objectives: {', '.join(names())}")
    return get(STORED_NAMES.get(name, name)).from_config(objective_config)


def resolved(objective_config) -> dict:
    """``objective_config`` with every hyperparameter's value, defaults included (what a run
    stores in its ``config.json``)."""
    return build(objective_config).hyperparameters()
