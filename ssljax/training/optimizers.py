"""Optimizers and schedules from optax, configured by ``config.optimizer``.

Weight decay (and LARS/LAMB trust ratios) apply only to kernels (``ndim > 1``); biases and
BatchNorm scales/offsets are excluded, as in SimCLR and BYOL. The peak learning rate follows
the global batch: ``base * batch / 256`` ('linear', SimCLR/BYOL), ``base * sqrt(batch)``
('sqrt', SimCLR's small-batch rule with base 0.075) or ``base`` ('none').
``optimizer.lr_multipliers`` (``{top-level parameter name: factor}``, 1 = unchanged) scales
the final updates of one part of the model, e.g. ``predictor=10`` for a faster BYOL/SimSiam
predictor (Tian et al. 2021 study the predictor's relative learning rate).
``optimizer.b1`` (AdamW only; default 0.9) is Adam's first-moment decay; adversarial
objectives use 0.5 (Radford et al. 2016).
"""

from __future__ import annotations

import math

import jax
import optax

OPTIMIZERS = ("adamw", "lamb", "lars", "sgd")
LR_SCALINGS = ("linear", "sqrt", "none")


def decay_mask(params):
    """True for leaves that get weight decay (kernels), False for biases and norm params."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def peak_learning_rate(base: float, batch_size: int, scaling: str) -> float:
    """Scales the base learning rate with the global batch size."""
    if scaling == "linear":
        return base * batch_size / 256
    if scaling == "sqrt":
        return base * math.sqrt(batch_size)
    if scaling == "none":
        return base
    raise ValueError(f"unknown optimizer.lr_scaling {scaling!r}; choose one of {LR_SCALINGS}")


def learning_rate_schedule(config) -> optax.Schedule:
    """Linear warmup from 0 to the scaled peak, then cosine decay to ``end factor * peak``."""
    opt = config.optimizer
    peak = peak_learning_rate(opt.base_learning_rate, config.batch_size, opt.lr_scaling)
    warmup = min(int(opt.warmup_steps), max(int(config.total_steps) - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=warmup,
        decay_steps=max(int(config.total_steps), warmup + 1),
        end_value=peak * opt.get("end_learning_rate_factor", 0.0),
    )


def scale_by_multipliers(multipliers) -> optax.GradientTransformation:
    """Multiplies the updates under each top-level parameter name by its factor.

    Raises:
      ValueError: a non-positive factor, or (at ``init``) a name the parameters lack.
    """
    multipliers = {str(k): v for k, v in dict(multipliers or {}).items()}
    for name, factor in multipliers.items():
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise ValueError(f"optimizer.lr_multipliers[{name!r}]={factor!r} must be a number > 0")
    multipliers = {k: float(v) for k, v in multipliers.items()}
    multipliers = {k: v for k, v in multipliers.items() if v != 1.0}  # 1: nothing to do

    def check(params):
        missing = [n for n in multipliers if n not in params]
        if missing:
            raise ValueError(
                f"optimizer.lr_multipliers names {missing[0]!r}, which the model "
                f"does not have; its top-level parameters are {sorted(params)}"
            )

    def init_fn(params):
        check(params)
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        scaled = {
            k: (jax.tree.map(lambda u, f=multipliers[k]: u * f, v) if k in multipliers else v)
            for k, v in updates.items()
        }
        return type(updates)(scaled), state

    return optax.GradientTransformation(init_fn, update_fn)


def build_optimizer(config) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Returns the optax transformation named by ``config.optimizer.name`` and its schedule
    (followed by ``scale_by_multipliers`` when ``optimizer.lr_multipliers`` is set)."""
    opt = config.optimizer
    schedule = learning_rate_schedule(config)
    wd = opt.get("weight_decay", 0.0)
    if opt.name == "lars":
        tx = optax.lars(
            schedule,
            weight_decay=wd,
            weight_decay_mask=decay_mask,
            trust_ratio_mask=decay_mask,
            momentum=opt.get("momentum", 0.9),
        )
    elif opt.name == "lamb":
        tx = optax.lamb(schedule, weight_decay=wd, mask=decay_mask)
    elif opt.name == "adamw":
        b1 = opt.get("b1", 0.9)  # GANs train with 0.5 (Radford et al. 2016)
        if isinstance(b1, bool) or not 0.0 <= float(b1) < 1.0:
            raise ValueError(f"optimizer.b1={b1!r} is invalid; valid: 0 <= b1 < 1")
        tx = optax.adamw(schedule, b1=float(b1), weight_decay=wd, mask=decay_mask)
    elif opt.name == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(wd, mask=decay_mask),
            optax.sgd(schedule, momentum=opt.get("momentum", 0.9)),
        )
    else:
        raise ValueError(f"unknown optimizer.name {opt.name!r}; choose one of {OPTIMIZERS}")
    multipliers = dict(opt.get("lr_multipliers", None) or {})
    if multipliers:
        scale = scale_by_multipliers(multipliers)  # checks every factor, even the 1s
        if any(v != 1.0 for v in multipliers.values()):
            tx = optax.chain(tx, scale)
    return tx, schedule


def with_param_groups(tx: optax.GradientTransformation, groups) -> optax.GradientTransformation:
    """``tx`` for the main model, each parameter group's own transform for ``params[name]``.

    ``groups`` maps top-level parameter names to objects with a ``tx`` (``ParamGroup``); with
    none, ``tx`` is returned unchanged (same optimizer state as before groups existed).
    """
    if not groups:
        return tx
    names = set(groups)
    if "main" in names:
        raise ValueError("a parameter group may not be named 'main'")

    def labels(params):
        return {
            k: (
                jax.tree.map(lambda _, k=k: k, v)
                if k in names
                else jax.tree.map(lambda _: "main", v)
            )
            for k, v in params.items()
        }

    return optax.multi_transform({"main": tx, **{k: g.tx for k, g in groups.items()}}, labels)
