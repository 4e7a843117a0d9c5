"""Registry records of the two-view methods beyond SimCLR: how each wires its pure loss.

Every record here reuses the generic pieces: the network is ``SSLNetwork`` (encoder, projector
and, for BYOL/SimSiam, a predictor), views come from ``ssljax.data.augment``, and the state a
method keeps between steps (EMA target, MoCo's queue, the instance memory bank) lives in
``TrainState.extra``, created by ``init_extra`` and advanced by ``update_extra`` after the
optimiser step. The pure losses live in ``contrastive.py``, ``bootstrap.py``,
``redundancy.py`` and ``entropy.py``.

Config keys read (``config.objective``):
  moco                  temperature, queue_size, ema_momentum, ema_schedule
  byol                  ema_momentum, ema_schedule ('cosine': base -> 1 as in BYOL),
                        view_batch_norm ('per_view' as the reference code, or 'joint')
  simsiam               (none)
  instance_discrimination  temperature, memory_momentum, num_negatives (0: full softmax),
                        proximal_weight (Wu et al.'s lambda; 0: off), memory_init
                        ('random': Wu et al.; 'first_visit': see ``init_memory_bank``;
                        'prefill': see ``prefill_memory_bank``)
  binary_contrastive    temperature, bias
  align_maxent          entropy_weight
  barlow_twins          lambd
  vicreg                sim_coeff, std_coeff, cov_coeff
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.objectives import bootstrap, contrastive, entropy, redundancy
from ssljax.objectives.registry import Objective, register
from ssljax.objectives.simclr import (
    apply_to_views,
    build_simclr_model,
    two_augmented_views,
    view_forward,
)

EMA_SCHEDULES = ("cosine", "constant")


# ---------------------------------------------------------------------------------------------
# Shared pieces.


def build_network(config, axis_name):
    """Encoder + projector, plus the predictor MLP when ``config.model`` names one."""
    from ssljax.models.network import SSLNetwork, build_projector_from_config

    network = build_simclr_model(config, axis_name)
    if config.model.get("predictor") is None:
        return network
    return SSLNetwork(
        encoder=network.encoder,
        projector=network.projector,
        predictor=build_projector_from_config(config, axis_name, key="predictor"),
    )


def one_augmented_view(rng, images, config):
    """One SimCLR-style augmentation of a uint8 batch (instance discrimination)."""
    from ssljax.data.augment import make_views

    return make_views(rng, images, config.augment, num_views=1)


def check_momentum(value, key: str) -> None:
    """EMA momenta must lie in [0, 1]."""
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{key}={value} must lie in [0, 1]")


def check_ema(config) -> None:
    """The EMA target's momentum and schedule."""
    check_momentum(config.objective.ema_momentum, "objective.ema_momentum")
    schedule = config.objective.get("ema_schedule", "constant")
    if schedule not in EMA_SCHEDULES:
        raise ValueError(
            f"unknown objective.ema_schedule {schedule!r}; choose one of {list(EMA_SCHEDULES)}"
        )


def ema_momentum(step, config):
    """Target momentum at ``step``: constant, or BYOL's cosine increase from base to 1."""
    base = config.objective.ema_momentum
    if config.objective.get("ema_schedule", "constant") == "cosine":
        return bootstrap.cosine_ema_momentum(step, config.total_steps, base)
    return jnp.asarray(base, jnp.float32)


def init_target(params, model_state, config):
    """The EMA target starts as a copy of the online network."""
    del config
    copy = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731
    return {"target_params": copy(params), "target_state": copy(model_state)}


def apply_target(extra, views, *, model, forward=apply_to_views):
    """Target network (no predictor) on ``views``; returns its outputs and new BN state."""
    return forward(
        extra["target_params"], extra["target_state"], views, model=model, predict=False
    )


def update_target(extra, outputs, *, params, step, config, **_):
    """``target <- m * target + (1 - m) * online`` and the target's new BatchNorm state."""
    momentum = ema_momentum(step, config)
    return dict(
        extra,
        target_params=bootstrap.ema_update(extra["target_params"], params, momentum),
        target_state=outputs["target_state"],
    )


# ---------------------------------------------------------------------------------------------
# MoCo v2 (He et al. 2020; Chen et al. 2020b).


def check_moco(config) -> None:
    check_ema(config)
    queue, batch = int(config.objective.queue_size), int(config.batch_size)
    if queue <= 0 or queue % batch:
        raise ValueError(
            f"objective.queue_size={queue} must be a positive multiple of the global "
            f"batch_size={batch} (the queue advances by one global batch of keys per step)"
        )


def init_moco(params, model_state, config):
    """EMA key encoder plus a queue of random unit keys and its write pointer."""
    dim = int(config.model.projector.output_dim)
    rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x6D6F636F)
    queue = contrastive.l2_normalize(
        jax.random.normal(rng, (int(config.objective.queue_size), dim), jnp.float32)
    )
    return dict(
        init_target(params, model_state, config), queue=queue, queue_ptr=jnp.zeros((), jnp.int32)
    )


def moco_objective_loss(params, model_state, views, rng, *, model, config, extra, **_):
    """Queries from view 1 (online), keys from view 2 (momentum encoder), queue negatives."""
    del rng
    v1, v2 = views
    online, new_state = apply_to_views(params, model_state, (v1,), model=model)
    target, target_state = apply_target(extra, (v2,), model=model)
    q = online["projection"][0]
    k = contrastive.l2_normalize(target["projection"][0])
    loss, logits = contrastive.moco_loss(
        q, k, extra["queue"], temperature=config.objective.temperature
    )
    labels = jnp.zeros((q.shape[0],), jnp.int32)
    metrics = {"loss": loss, "contrastive_accuracy": contrastive.contrastive_accuracy(logits, labels)}
    outputs = {"embedding": q, "keys": k, "target_state": target_state}
    return loss, (metrics, new_state, outputs)


def update_moco(extra, outputs, *, params, step, config, axis_name, **_):
    """Enqueue the keys of the whole global batch, then move the key encoder."""
    keys, _ = contrastive.gather_batch(outputs["keys"], axis_name)
    queue, ptr = contrastive.enqueue(extra["queue"], extra["queue_ptr"], keys)
    extra = dict(extra, queue=queue, queue_ptr=ptr)
    return update_target(extra, outputs, params=params, step=step, config=config)


# ---------------------------------------------------------------------------------------------
# BYOL (Grill et al. 2020) and SimSiam (Chen & He 2021).


def byol_objective_loss(params, model_state, views, rng, *, model, config, extra, **_):
    """Symmetric BYOL: each view's prediction regresses the target projection of the other.

    With ``objective.view_batch_norm = 'per_view'`` (the BYOL configs) both networks see each
    view in its own forward pass, so BatchNorm statistics are per view, as in the reference
    code (``byol_experiment.py``, one ``forward`` per view).
    """
    del rng
    forward = view_forward(config)
    online, new_state = forward(params, model_state, views, model=model)
    target, target_state = apply_target(extra, views, model=model, forward=forward)
    p1, p2 = online["prediction"]
    z1, z2 = target["projection"]
    loss = bootstrap.byol_loss(p1, z2) + bootstrap.byol_loss(p2, z1)
    outputs = {"embedding": online["projection"][0], "target_state": target_state}
    return loss, ({"loss": loss}, new_state, outputs)


def check_byol(config) -> None:
    check_ema(config)
    view_forward(config)


def simsiam_objective_loss(params, model_state, views, rng, *, model, **_):
    """``D(p1, z2) / 2 + D(p2, z1) / 2`` with a stop-gradient on z (no target network)."""
    del rng
    out, new_state = apply_to_views(params, model_state, views, model=model)
    p1, p2 = out["prediction"]
    z1, z2 = out["projection"]
    loss = 0.5 * bootstrap.simsiam_loss(p1, z2) + 0.5 * bootstrap.simsiam_loss(p2, z1)
    return loss, ({"loss": loss}, new_state, {"embedding": z1})


# ---------------------------------------------------------------------------------------------
# Instance discrimination with a memory bank (Wu et al. 2018).


def memory_size(config) -> int:
    """Rows of the memory bank: ``objective.memory_size``, or the pretraining split's size."""
    size = int(config.objective.get("memory_size", 0) or 0)
    if size > 0:
        return size
    from ssljax.data.datasets import get_dataset_spec
    from ssljax.data.input_pipeline import num_examples

    spec = get_dataset_spec(config.dataset.name)
    return num_examples(
        config.dataset.name, spec.pretrain_split, data_dir=config.dataset.get("data_dir")
    )


def check_instance_discrimination(config) -> None:
    check_momentum(config.objective.memory_momentum, "objective.memory_momentum")
    if int(config.objective.num_negatives) < 0:
        raise ValueError(
            f"objective.num_negatives={config.objective.num_negatives} must be >= 0 "
            "(0: softmax over the whole memory bank)"
        )
    init = config.objective.get("memory_init", "random")
    if init not in MEMORY_INITS:
        raise ValueError(f"unknown objective.memory_init {init!r}; choose one of "
                         f"{list(MEMORY_INITS)}")
    if init == "prefill":
        check_prefill(config)
    if float(config.objective.get("proximal_weight", 0.0)) < 0:
        raise ValueError(
            f"objective.proximal_weight={config.objective.proximal_weight} must be >= 0"
        )


MEMORY_INITS = ("random", "first_visit", "prefill")


def check_prefill(config) -> None:
    """``'prefill'`` loads the pretraining split into host memory at the network's input
    size, and needs one bank row per image."""
    from ssljax.data.datasets import get_dataset_spec
    from ssljax.data.input_pipeline import num_examples

    spec = get_dataset_spec(config.dataset.name)
    if not spec.fits_in_memory or spec.train_preprocess is not None:
        raise ValueError(
            f"objective.memory_init='prefill' needs a pretraining split held in memory at the "
            f"training size; {spec.name} is not (use 'first_visit' or 'random')"
        )
    size = int(config.objective.get("memory_size", 0) or 0)
    if size > 0:
        n = num_examples(spec.name, spec.pretrain_split, data_dir=config.dataset.get("data_dir"))
        if size != n:
            raise ValueError(
                f"objective.memory_init='prefill' needs one bank row per pretraining image: "
                f"objective.memory_size={size}, the {spec.pretrain_split} split has {n}"
            )


def _memory_init(config) -> str:
    return config.objective.get("memory_init", "random")


def _first_visit(config) -> bool:
    return _memory_init(config) == "first_visit"


def init_memory_bank(params, model_state, config):
    """One random unit vector per training example (Wu et al.'s initialisation).

    With ``objective.memory_init = 'first_visit'`` (ours) the bank also keeps a ``written``
    flag per row. Until an image's row is first written it is not a negative for anyone, and
    the image's own positive is its current feature; the first write stores the feature
    itself instead of mixing it with the random start. With random rows, every image of the
    first epoch is pulled towards a random direction and half of each first write stays
    random; over Wu et al.'s 200 epochs that washes out, in a run of one or two epochs it is
    most of what the network learns.
    """
    del params, model_state
    dim = int(config.model.projector.output_dim)
    rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x6D656D)
    bank = jax.random.normal(rng, (memory_size(config), dim), jnp.float32)
    extra = {"memory": contrastive.l2_normalize(bank)}
    if _first_visit(config):
        extra["written"] = jnp.zeros((bank.shape[0],), bool)
    return extra


def prefill_memory_bank(extra, params, model_state, load_images, *, model, config):
    """``memory_init='prefill'`` (ours): every row starts as the initial network's feature.

    Runs once before the first step over the whole pretraining split, in index order,
    un-augmented, with BatchNorm on each batch's own statistics (as the network normalises in
    training; the running averages are not kept). From the first step every image then has
    a positive (its own row) and every other row is a real negative; with Wu et al.'s random rows the
    first epoch pulls each image towards a random vector, with ``first_visit`` it only pushes.

    Args:
      extra: ``{'memory': [N, d]}`` from ``init_memory_bank``.
      load_images: ``() -> uint8 [N, H, W, C]``, row ``i`` the example with ``index`` i
        (called only for ``'prefill'``).
    Returns:
      ``extra`` with every row replaced (unchanged for the other ``memory_init`` values).
    """
    if _memory_init(config) != "prefill":
        return extra
    memory, images = extra["memory"], load_images()
    if images.shape[0] != memory.shape[0]:
        raise ValueError(f"memory_init='prefill' needs one bank row per pretraining image: "
                         f"objective.memory_size={memory.shape[0]}, split has {images.shape[0]}")
    bs = int(config.batch_size)

    @jax.jit
    def features(x):
        out, _ = model.apply({"params": params, **model_state}, x.astype(jnp.float32) / 255.0,
                             train=True, mutable=list(model_state))
        return contrastive.l2_normalize(out["projection"])

    rows = []
    for start in range(0, images.shape[0], bs):
        chunk = images[start:start + bs]
        pad = bs - chunk.shape[0]  # a short last batch is padded by repeating its images
        if pad:
            chunk = np.concatenate([chunk, chunk[np.arange(pad) % chunk.shape[0]]])
        rows.append(np.asarray(features(chunk))[:bs - pad])
    return dict(extra, memory=jnp.asarray(np.concatenate(rows), memory.dtype))


def instance_discrimination_objective_loss(
    params, model_state, views, rng, *, model, config, extra, batch, **_
):
    """Classify each image as its own instance against the memory bank.

    ``num_negatives=0`` uses the full non-parametric softmax over all N instances;
    ``num_negatives=m`` draws m bank rows uniformly (Wu et al.'s NCE uses 4096 noise samples;
    here the m rows serve as negatives of a sampled softmax with the instance's own row first).
    """
    out, new_state = apply_to_views(params, model_state, views, model=model)
    f = out["projection"][0]
    memory, indices, written = extra["memory"], batch["index"], extra.get("written")
    temperature = config.objective.temperature
    m = int(config.objective.num_negatives)
    own_rows = (memory[indices] if written is None
                else contrastive.first_visit_rows(memory, indices, f, written))
    if m == 0:
        loss, accuracy = contrastive.instance_discrimination_loss(
            f, memory, indices, temperature=temperature, written=written
        )
    else:
        negatives = jax.random.randint(rng, (m,), 0, memory.shape[0])
        if written is None:
            loss, logits = contrastive.moco_loss(
                f, own_rows, memory[negatives], temperature=temperature
            )
        else:
            loss, logits = contrastive.masked_moco_loss(
                f, own_rows, memory[negatives], written[negatives], temperature=temperature
            )
        accuracy = contrastive.contrastive_accuracy(logits, jnp.zeros_like(indices))
    metrics = {"instance_accuracy": accuracy}
    if written is not None:
        metrics["bank_written"] = jnp.mean(written.astype(jnp.float32))
    weight = float(config.objective.get("proximal_weight", 0.0))
    if weight > 0:
        proximal = contrastive.proximal_term(f, own_rows)
        metrics["proximal"] = proximal
        loss = loss + weight * proximal
    outputs = {"embedding": f, "indices": indices}
    return loss, (dict(metrics, loss=loss), new_state, outputs)


def update_memory(extra, outputs, *, config, axis_name, **_):
    """Writes the global batch's features into their rows of the bank."""
    features, _ = contrastive.gather_batch(outputs["embedding"], axis_name)
    indices, _ = contrastive.gather_batch(outputs["indices"], axis_name)
    written = extra.get("written")
    memory = contrastive.update_memory_bank(
        extra["memory"], indices, features, momentum=config.objective.memory_momentum,
        written=written,
    )
    if written is None:
        return dict(extra, memory=memory)
    return dict(extra, memory=memory, written=written.at[indices].set(True))


# ---------------------------------------------------------------------------------------------
# "Same image or not" (binary contrastive), AlignMaxEnt, Barlow Twins, VICReg.


def binary_contrastive_objective_loss(params, model_state, views, rng, *, model, config,
                                      axis_name, **_):
    """Balanced logistic loss: same image (two views) vs different images."""
    del rng
    out, new_state = apply_to_views(params, model_state, views, model=model)
    z1, z2 = out["projection"]
    loss, accuracy = contrastive.binary_contrastive_loss(
        z1, z2, temperature=config.objective.temperature, bias=config.objective.bias,
        axis_name=axis_name,
    )
    return loss, ({"loss": loss, "pair_accuracy": accuracy}, new_state, {"embedding": z1})


def align_maxent_objective_loss(params, model_state, views, rng, *, model, config,
                                axis_name, **_):
    """Alignment of ``g = sigmoid(projection)`` across views minus its differential entropy."""
    del rng
    out, new_state = apply_to_views(params, model_state, views, model=model)
    z1, z2 = out["projection"]
    loss, terms = entropy.align_maxent_loss(
        jax.nn.sigmoid(z1), jax.nn.sigmoid(z2),
        entropy_weight=config.objective.entropy_weight, axis_name=axis_name,
    )
    return loss, (dict(terms, loss=loss), new_state, {"embedding": z1})


def barlow_twins_objective_loss(params, model_state, views, rng, *, model, config,
                                axis_name, **_):
    """Cross-correlation of the two views' projections driven to the identity."""
    del rng
    out, new_state = apply_to_views(params, model_state, views, model=model)
    z1, z2 = out["projection"]
    loss = redundancy.barlow_twins_loss(z1, z2, lambd=config.objective.lambd, axis_name=axis_name)
    return loss, ({"loss": loss}, new_state, {"embedding": z1})


def vicreg_objective_loss(params, model_state, views, rng, *, model, config, axis_name, **_):
    """Invariance + variance + covariance terms on the two views' projections."""
    del rng
    out, new_state = apply_to_views(params, model_state, views, model=model)
    z1, z2 = out["projection"]
    obj = config.objective
    loss, terms = redundancy.vicreg_loss(
        z1, z2, sim_coeff=obj.sim_coeff, std_coeff=obj.std_coeff, cov_coeff=obj.cov_coeff,
        axis_name=axis_name,
    )
    return loss, (dict(terms, loss=loss), new_state, {"embedding": z1})


# ---------------------------------------------------------------------------------------------
# Registration.

MOCO = register(Objective(
    name="moco", build_model=build_network, make_views=two_augmented_views,
    loss=moco_objective_loss, init_extra=init_moco, update_extra=update_moco,
    check_config=check_moco, has_target=True,
    description="MoCo v2: momentum key encoder and a queue of negatives (He et al. 2020)",
))
BYOL = register(Objective(
    name="byol", build_model=build_network, make_views=two_augmented_views,
    loss=byol_objective_loss, init_extra=init_target, update_extra=update_target,
    check_config=check_byol, has_target=True,
    description="BYOL: predict an EMA target's projection of the other view (Grill et al. 2020)",
))
SIMSIAM = register(Objective(
    name="simsiam", build_model=build_network, make_views=two_augmented_views,
    loss=simsiam_objective_loss,
    description="SimSiam: predictor + stop-gradient, no negatives, no target (Chen & He 2021)",
))
INSTANCE_DISCRIMINATION = register(Objective(
    name="instance_discrimination", build_model=build_network, make_views=one_augmented_view,
    loss=instance_discrimination_objective_loss, init_extra=init_memory_bank,
    update_extra=update_memory, check_config=check_instance_discrimination, needs_index=True,
    prefill_extra=prefill_memory_bank,
    description="non-parametric instance classification with a memory bank (Wu et al. 2018)",
))
BINARY_CONTRASTIVE = register(Objective(
    name="binary_contrastive", build_model=build_network, make_views=two_augmented_views,
    loss=binary_contrastive_objective_loss,
    description="'same image or not': logistic loss on view pairs",
))
ALIGN_MAXENT = register(Objective(
    name="align_maxent", build_model=build_network, make_views=two_augmented_views,
    loss=align_maxent_objective_loss,
    description="alignment minus differential entropy (von Kuegelgen et al. 2021)",
))
BARLOW_TWINS = register(Objective(
    name="barlow_twins", build_model=build_network, make_views=two_augmented_views,
    loss=barlow_twins_objective_loss,
    description="Barlow Twins: cross-correlation to identity (Zbontar et al. 2021)",
))
VICREG = register(Objective(
    name="vicreg", build_model=build_network, make_views=two_augmented_views,
    loss=vicreg_objective_loss,
    description="VICReg: variance-invariance-covariance (Bardes et al. 2022)",
))
