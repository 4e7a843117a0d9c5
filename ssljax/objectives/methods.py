"""The two-view methods beyond SimCLR as typed objectives: how each wires its pure loss.

Every objective here reuses the generic pieces: the network is ``SSLNetwork`` (encoder,
projector and, for BYOL/SimSiam, a predictor), views come from ``ssljax.views.augment``, and
the state a method keeps between steps (EMA target, MoCo's queue, the instance memory bank) is
a typed structure (``TargetState``, ``MoCoState``, ``MemoryBank``) made by ``init_state`` and
advanced by ``update_state`` after the optimiser step. The pure losses live in
``contrastive.py``, ``bootstrap.py``, ``redundancy.py`` and ``entropy.py``. Each class's fields
are its hyperparameters with the authors' defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.objectives import bootstrap, contrastive, entropy, redundancy
from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    Run,
    UpdateContext,
    check_choice,
    check_int,
    check_range,
    copy_tree,
)
from ssljax.objectives.registry import register
from ssljax.objectives.simclr import (
    VIEW_BATCH_NORM,
    apply_to_views,
    augmented_views,
    build_simclr_model,
)

EMA_SCHEDULES = ("cosine", "constant")
MEMORY_INITS = ("random", "first_visit", "prefill")


# ---------------------------------------------------------------------------------------------
# Shared pieces.


def build_network(run: Run, axis_name):
    """Encoder + projector, plus the predictor MLP when ``run.model`` names one."""
    from ssljax.models.network import SSLNetwork, build_projector_from_config

    network = build_simclr_model(run, axis_name)
    if run.model.get("predictor") is None:
        return network
    return SSLNetwork(
        encoder=network.encoder,
        projector=network.projector,
        predictor=build_projector_from_config(run, axis_name, key="predictor"),
    )


def check_ema(momentum: float, schedule: str) -> None:
    """The EMA target's momentum lies in [0, 1] and its schedule is known."""
    check_range("ema_momentum", momentum, low=0.0, high=1.0)
    check_choice("ema_schedule", schedule, EMA_SCHEDULES)


def ema_momentum(step, base: float, schedule: str, total_steps: int):
    """Target momentum at ``step``: constant, or BYOL's cosine increase from base to 1."""
    if schedule == "cosine":
        return bootstrap.cosine_ema_momentum(step, total_steps, base)
    return jnp.asarray(base, jnp.float32)


@flax.struct.dataclass
class TargetState:
    """An EMA target network: its parameters and its own BatchNorm statistics."""

    target_params: Any
    target_state: Any


@flax.struct.dataclass
class MoCoState(TargetState):
    """MoCo's key encoder plus its queue of keys and the queue's write pointer."""

    queue: jax.Array = None
    queue_ptr: jax.Array = None


@flax.struct.dataclass
class TargetOutputs(Outputs):
    """The online embedding and the target network's new BatchNorm state."""

    target_state: Any = None


@flax.struct.dataclass
class MoCoOutputs(TargetOutputs):
    """Also the (normalised) keys of this device's batch, enqueued after the step."""

    keys: jax.Array = None
    PER_EXAMPLE: ClassVar[tuple[str, ...]] = ("embedding", "keys")


def init_target(params, model_state) -> TargetState:
    """The EMA target starts as a copy of the online network."""
    return TargetState(target_params=copy_tree(params), target_state=copy_tree(model_state))


def apply_target(state: TargetState, views, *, model, forward=apply_to_views):
    """Target network (no predictor) on ``views``; returns its outputs and new BN state."""
    return forward(state.target_params, state.target_state, views, model=model, predict=False)


def update_target(state: TargetState, outputs: TargetOutputs, params, momentum):
    """``target <- m * target + (1 - m) * online`` and the target's new BatchNorm state."""
    return state.replace(
        target_params=bootstrap.ema_update(state.target_params, params, momentum),
        target_state=outputs.target_state,
    )


# ---------------------------------------------------------------------------------------------
# MoCo v2 (He et al. 2020; Chen et al. 2020b).


@register
@dataclasses.dataclass(frozen=True)
class MoCo(Objective):
    """Queries from view 1 (online), keys from view 2 (momentum encoder), queue negatives.

    Attributes:
      temperature: softmax temperature (MoCo v2: 0.2).
      queue_size: negatives kept; a positive multiple of the global batch.
      ema_momentum: key-encoder momentum (0.999).
      ema_schedule: 'constant' (MoCo) or 'cosine' (BYOL's increase to 1).
    """

    name: ClassVar[str] = "moco"
    host_crops: ClassVar[bool] = True  # augmented_views: crops may come from the host
    description: ClassVar[str] = (
        "MoCo v2: momentum key encoder and a queue of negatives (He et al. 2020)"
    )

    temperature: float = 0.2
    queue_size: int = 65536
    ema_momentum: float = 0.999
    ema_schedule: str = "constant"

    def __post_init__(self):
        check_range("temperature", self.temperature, low=0.0, low_open=True)
        check_int("queue_size", self.queue_size)
        check_ema(self.ema_momentum, self.ema_schedule)

    def check(self, run):
        queue, batch = int(self.queue_size), int(run.batch_size)
        if queue % batch:
            raise ValueError(
                f"objective.queue_size={queue} must be a positive multiple of the global "
                f"batch_size={batch} (the queue advances by one global batch of keys per step)"
            )

    def build_model(self, run, axis_name):
        return build_network(run, axis_name)

    def make_views(self, rng, images, run):
        return augmented_views(rng, images, run)

    def init_state(self, params, model_state, run) -> MoCoState:
        """EMA key encoder plus a queue of random unit keys and its write pointer."""
        dim = int(run.model.projector.output_dim)
        queue = contrastive.l2_normalize(
            jax.random.normal(run.seed_key(0x6D6F636F), (int(self.queue_size), dim), jnp.float32)
        )
        target = init_target(params, model_state)
        return MoCoState(
            target_params=target.target_params,
            target_state=target.target_state,
            queue=queue,
            queue_ptr=jnp.zeros((), jnp.int32),
        )

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        v1, v2 = views
        online, new_state = apply_to_views(params, model_state, (v1,), model=ctx.model)
        target, target_state = apply_target(ctx.state, (v2,), model=ctx.model)
        q = online["projection"][0]
        k = contrastive.l2_normalize(target["projection"][0])
        loss, logits = contrastive.moco_loss(q, k, ctx.state.queue, temperature=self.temperature)
        labels = jnp.zeros((q.shape[0],), jnp.int32)
        metrics = {
            "loss": loss,
            "contrastive_accuracy": contrastive.contrastive_accuracy(logits, labels),
        }
        outputs = MoCoOutputs(embedding=q, keys=k, target_state=target_state)
        return loss, LossAux(metrics, new_state, outputs)

    def update_state(self, state: MoCoState, outputs: MoCoOutputs, ctx: UpdateContext):
        """Enqueue the keys of the whole global batch, then move the key encoder."""
        keys, _ = contrastive.gather_batch(outputs.keys, ctx.axis_name)
        queue, ptr = contrastive.enqueue(state.queue, state.queue_ptr, keys)
        momentum = ema_momentum(ctx.step, self.ema_momentum, self.ema_schedule, ctx.run.total_steps)
        return update_target(
            state.replace(queue=queue, queue_ptr=ptr), outputs, ctx.params, momentum
        )


# ---------------------------------------------------------------------------------------------
# BYOL (Grill et al. 2020) and SimSiam (Chen & He 2021).


@register
@dataclasses.dataclass(frozen=True)
class BYOL(Objective):
    """Symmetric BYOL: each view's prediction regresses the target projection of the other.

    With ``view_batch_norm='per_view'`` both networks see each view in its own forward pass,
    so BatchNorm statistics are per view, as in the reference code (``byol_experiment.py``,
    one ``forward`` per view); ``'joint'`` normalises over both views together.

    Attributes:
      ema_momentum: base target momentum (0.996).
      ema_schedule: 'cosine' (BYOL: base -> 1) or 'constant'.
      view_batch_norm: 'per_view' (reference code) or 'joint'.
    """

    name: ClassVar[str] = "byol"
    host_crops: ClassVar[bool] = True  # augmented_views: crops may come from the host
    description: ClassVar[str] = (
        "BYOL: predict an EMA target's projection of the other view (Grill et al. 2020)"
    )
    # Stored before the typed objectives: the shared base config's SimCLR temperature,
    # which this method never read.
    RETIRED_KEYS: ClassVar[dict] = {"temperature": "unused"}

    ema_momentum: float = 0.996
    ema_schedule: str = "cosine"
    view_batch_norm: str = "per_view"

    def __post_init__(self):
        check_ema(self.ema_momentum, self.ema_schedule)
        check_choice("view_batch_norm", self.view_batch_norm, sorted(VIEW_BATCH_NORM))

    def build_model(self, run, axis_name):
        return build_network(run, axis_name)

    def make_views(self, rng, images, run):
        return augmented_views(rng, images, run)

    def init_state(self, params, model_state, run) -> TargetState:
        return init_target(params, model_state)

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        forward = VIEW_BATCH_NORM[self.view_batch_norm]
        online, new_state = forward(params, model_state, views, model=ctx.model)
        target, target_state = apply_target(ctx.state, views, model=ctx.model, forward=forward)
        p1, p2 = online["prediction"]
        z1, z2 = target["projection"]
        loss = bootstrap.byol_loss(p1, z2) + bootstrap.byol_loss(p2, z1)
        outputs = TargetOutputs(embedding=online["projection"][0], target_state=target_state)
        return loss, LossAux({"loss": loss}, new_state, outputs)

    def update_state(self, state: TargetState, outputs: TargetOutputs, ctx: UpdateContext):
        momentum = ema_momentum(ctx.step, self.ema_momentum, self.ema_schedule, ctx.run.total_steps)
        return update_target(state, outputs, ctx.params, momentum)


@register
@dataclasses.dataclass(frozen=True)
class SimSiam(Objective):
    """``D(p1, z2) / 2 + D(p2, z1) / 2`` with a stop-gradient on z (no target network)."""

    name: ClassVar[str] = "simsiam"
    host_crops: ClassVar[bool] = True  # augmented_views: crops may come from the host
    description: ClassVar[str] = (
        "SimSiam: predictor + stop-gradient, no negatives, no target (Chen & He 2021)"
    )
    # Stored before the typed objectives: the shared base config's SimCLR temperature,
    # which this method never read.
    RETIRED_KEYS: ClassVar[dict] = {"temperature": "unused"}

    def build_model(self, run, axis_name):
        return build_network(run, axis_name)

    def make_views(self, rng, images, run):
        return augmented_views(rng, images, run)

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        out, new_state = apply_to_views(params, model_state, views, model=ctx.model)
        p1, p2 = out["prediction"]
        z1, z2 = out["projection"]
        loss = 0.5 * bootstrap.simsiam_loss(p1, z2) + 0.5 * bootstrap.simsiam_loss(p2, z1)
        return loss, LossAux({"loss": loss}, new_state, Outputs(embedding=z1))


# ---------------------------------------------------------------------------------------------
# Instance discrimination with a memory bank (Wu et al. 2018).


@flax.struct.dataclass
class MemoryBank:
    """One unit vector per training example; ``written`` (``first_visit`` only) marks rows
    written at least once."""

    memory: jax.Array
    written: jax.Array | None = None


@flax.struct.dataclass
class BankOutputs(Outputs):
    """This device's features and their rows (``batch['index']``)."""

    indices: jax.Array = None
    PER_EXAMPLE: ClassVar[tuple[str, ...]] = ("embedding", "indices")


@register
@dataclasses.dataclass(frozen=True)
class InstanceDiscrimination(Objective):
    """Classify each image as its own instance against a memory bank (Wu et al. 2018).

    ``num_negatives=0`` uses the full non-parametric softmax over all N instances;
    ``num_negatives=m`` draws m bank rows uniformly (Wu et al.'s NCE uses 4096 noise samples;
    here the m rows serve as negatives of a sampled softmax with the instance's own row first).

    Attributes:
      temperature: tau (0.07).
      memory_size: bank rows; 0 means one per pretraining example (``run.facts``).
      memory_momentum: bank update ``m * row + (1 - m) * feature`` (0.5).
      num_negatives: sampled negatives (4096); 0 for the full softmax.
      proximal_weight: Wu et al.'s proximal regulariser lambda (0: off).
      memory_init: 'random' (Wu et al.), 'first_visit' or 'prefill' (ours; see
        ``init_state`` and ``prefill_state``).
    """

    name: ClassVar[str] = "instance_discrimination"
    description: ClassVar[str] = (
        "non-parametric instance classification with a memory bank (Wu et al. 2018)"
    )
    needs_index: ClassVar[bool] = True

    temperature: float = 0.07
    memory_size: int = 0
    memory_momentum: float = 0.5
    num_negatives: int = 4096
    proximal_weight: float = 0.0
    memory_init: str = "random"

    def __post_init__(self):
        check_range("temperature", self.temperature, low=0.0, low_open=True)
        check_int("memory_size", self.memory_size, low=0)
        check_range("memory_momentum", self.memory_momentum, low=0.0, high=1.0)
        check_int("num_negatives", self.num_negatives, low=0)
        check_range("proximal_weight", self.proximal_weight, low=0.0)
        check_choice("memory_init", self.memory_init, MEMORY_INITS)

    def rows(self, run: Run) -> int:
        """Rows of the memory bank: ``memory_size``, or the pretraining split's size."""
        return int(self.memory_size) if self.memory_size else int(run.facts.num_examples)

    def check(self, run):
        if self.memory_init != "prefill":
            return
        facts = run.facts
        if not facts.in_memory:
            raise ValueError(
                f"objective.memory_init='prefill' needs a pretraining split held in memory at "
                f"the training size; {facts.name} is not (use 'first_visit' or 'random')"
            )
        if self.rows(run) != facts.num_examples:
            raise ValueError(
                f"objective.memory_init='prefill' needs one bank row per pretraining image: "
                f"objective.memory_size={self.memory_size}, the {facts.pretrain_split} split "
                f"has {facts.num_examples}"
            )

    def build_model(self, run, axis_name):
        return build_network(run, axis_name)

    def make_views(self, rng, images, run):
        """One SimCLR-style augmentation of a uint8 batch."""
        return augmented_views(rng, images, run, num_views=1)

    def init_state(self, params, model_state, run) -> MemoryBank:
        """One random unit vector per training example (Wu et al.'s initialisation).

        With ``memory_init='first_visit'`` (ours) the bank also keeps a ``written`` flag per
        row. Until an image's row is first written it is not a negative for anyone, and the
        image's own positive is its current feature; the first write stores the feature
        itself instead of mixing it with the random start. With random rows, every image of
        the first epoch is pulled towards a random direction and half of each first write
        stays random; over Wu et al.'s 200 epochs that washes out, in a run of one or two
        epochs it is most of what the network learns.
        """
        del params, model_state
        dim = int(run.model.projector.output_dim)
        bank = jax.random.normal(run.seed_key(0x6D656D), (self.rows(run), dim), jnp.float32)
        written = jnp.zeros((bank.shape[0],), bool) if self.memory_init == "first_visit" else None
        return MemoryBank(memory=contrastive.l2_normalize(bank), written=written)

    def prefill_state(self, state: MemoryBank, params, model_state, load_images, *, model, run):
        """``memory_init='prefill'`` (ours): every row starts as the initial network's feature.

        Runs once before the first step over the whole pretraining split, in index order,
        un-augmented, with BatchNorm on each batch's own statistics (as the network normalises
        in training; the running averages are not kept). From the first step every image
        then has a positive (its own row) and every other row is a real negative. Other
        ``memory_init`` values return ``state`` unchanged (nothing is loaded).
        """
        if self.memory_init != "prefill":
            return state
        memory, images = state.memory, load_images()
        if images.shape[0] != memory.shape[0]:
            raise ValueError(
                f"memory_init='prefill' needs one bank row per pretraining image: "
                f"objective.memory_size={memory.shape[0]}, split has {images.shape[0]}"
            )
        bs = int(run.batch_size)

        @jax.jit
        def features(x):
            out, _ = model.apply(
                {"params": params, **model_state},
                x.astype(jnp.float32) / 255.0,
                train=True,
                mutable=list(model_state),
            )
            return contrastive.l2_normalize(out["projection"])

        rows = []
        for start in range(0, images.shape[0], bs):
            chunk = images[start : start + bs]
            pad = bs - chunk.shape[0]  # a short last batch is padded by repeating its images
            if pad:
                chunk = np.concatenate([chunk, chunk[np.arange(pad) % chunk.shape[0]]])
            rows.append(np.asarray(features(chunk))[: bs - pad])
        return state.replace(memory=jnp.asarray(np.concatenate(rows), memory.dtype))

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        out, new_state = apply_to_views(params, model_state, views, model=ctx.model)
        f = out["projection"][0]
        bank: MemoryBank = ctx.state
        memory, indices, written = bank.memory, ctx.batch["index"], bank.written
        temperature = self.temperature
        m = int(self.num_negatives)
        own_rows = (
            memory[indices]
            if written is None
            else contrastive.first_visit_rows(memory, indices, f, written)
        )
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
        if self.proximal_weight > 0:
            proximal = contrastive.proximal_term(f, own_rows)
            metrics["proximal"] = proximal
            loss = loss + float(self.proximal_weight) * proximal
        outputs = BankOutputs(embedding=f, indices=indices)
        return loss, LossAux(dict(metrics, loss=loss), new_state, outputs)

    def update_state(self, state: MemoryBank, outputs: BankOutputs, ctx: UpdateContext):
        """Writes the global batch's features into their rows of the bank."""
        features, _ = contrastive.gather_batch(outputs.embedding, ctx.axis_name)
        indices, _ = contrastive.gather_batch(outputs.indices, ctx.axis_name)
        memory = contrastive.update_memory_bank(
            state.memory,
            indices,
            features,
            momentum=self.memory_momentum,
            written=state.written,
        )
        if state.written is None:
            return state.replace(memory=memory)
        return state.replace(memory=memory, written=state.written.at[indices].set(True))


# ---------------------------------------------------------------------------------------------
# "Same image or not" (binary contrastive), AlignMaxEnt, Barlow Twins, VICReg: a loss of the
# two views' projections, no state.


@dataclasses.dataclass(frozen=True)
class TwoViewObjective(Objective):
    """Two augmented views through the encoder + projector; ``projection_loss`` scores them."""

    host_crops: ClassVar[bool] = True  # augmented_views: crops may come from the host

    def build_model(self, run, axis_name):
        return build_network(run, axis_name)

    def make_views(self, rng, images, run):
        return augmented_views(rng, images, run)

    def projection_loss(self, z1, z2, axis_name) -> tuple[jax.Array, dict]:
        """``(loss, metrics)`` of the two views' projections ``[n, d]``."""
        raise NotImplementedError

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        out, new_state = apply_to_views(params, model_state, views, model=ctx.model)
        z1, z2 = out["projection"]
        loss, metrics = self.projection_loss(z1, z2, ctx.axis_name)
        return loss, LossAux(dict(metrics, loss=loss), new_state, Outputs(embedding=z1))


@register
@dataclasses.dataclass(frozen=True)
class BinaryContrastive(TwoViewObjective):
    """'Same image or not': a balanced logistic loss on ``(cos - bias) / temperature`` of
    view pairs (same image: positive; different images: negative)."""

    name: ClassVar[str] = "binary_contrastive"
    description: ClassVar[str] = "'same image or not': logistic loss on view pairs"

    temperature: float = 0.2
    bias: float = 0.0

    def __post_init__(self):
        check_range("temperature", self.temperature, low=0.0, low_open=True)

    def projection_loss(self, z1, z2, axis_name):
        loss, accuracy = contrastive.binary_contrastive_loss(
            z1, z2, temperature=self.temperature, bias=self.bias, axis_name=axis_name
        )
        return loss, {"pair_accuracy": accuracy}


@register
@dataclasses.dataclass(frozen=True)
class AlignMaxEnt(TwoViewObjective):
    """Alignment of ``g = sigmoid(projection)`` across views minus its differential entropy
    (von Kuegelgen et al. 2021)."""

    name: ClassVar[str] = "align_maxent"
    description: ClassVar[str] = "alignment minus differential entropy (von Kuegelgen et al. 2021)"
    # Stored before the typed objectives: the shared base config's SimCLR temperature,
    # which this method never read.
    RETIRED_KEYS: ClassVar[dict] = {"temperature": "unused"}

    entropy_weight: float = 1.0

    def __post_init__(self):
        check_range("entropy_weight", self.entropy_weight, low=0.0)

    def projection_loss(self, z1, z2, axis_name):
        return entropy.align_maxent_loss(
            jax.nn.sigmoid(z1),
            jax.nn.sigmoid(z2),
            entropy_weight=self.entropy_weight,
            axis_name=axis_name,
        )


@register
@dataclasses.dataclass(frozen=True)
class BarlowTwins(TwoViewObjective):
    """Cross-correlation of the two views' projections driven to the identity."""

    name: ClassVar[str] = "barlow_twins"
    description: ClassVar[str] = "Barlow Twins: cross-correlation to identity (Zbontar et al. 2021)"
    # Stored before the typed objectives: the shared base config's SimCLR temperature,
    # which this method never read.
    RETIRED_KEYS: ClassVar[dict] = {"temperature": "unused"}

    lambd: float = 0.0051

    def __post_init__(self):
        check_range("lambd", self.lambd, low=0.0)

    def projection_loss(self, z1, z2, axis_name):
        return redundancy.barlow_twins_loss(z1, z2, lambd=self.lambd, axis_name=axis_name), {}


@register
@dataclasses.dataclass(frozen=True)
class VICReg(TwoViewObjective):
    """Invariance + variance + covariance terms on the two views' projections."""

    name: ClassVar[str] = "vicreg"
    description: ClassVar[str] = "VICReg: variance-invariance-covariance (Bardes et al. 2022)"
    # Stored before the typed objectives: the shared base config's SimCLR temperature,
    # which this method never read.
    RETIRED_KEYS: ClassVar[dict] = {"temperature": "unused"}

    sim_coeff: float = 25.0
    std_coeff: float = 25.0
    cov_coeff: float = 1.0

    def __post_init__(self):
        for key in ("sim_coeff", "std_coeff", "cov_coeff"):
            check_range(key, getattr(self, key), low=0.0)

    def projection_loss(self, z1, z2, axis_name):
        return redundancy.vicreg_loss(
            z1,
            z2,
            sim_coeff=self.sim_coeff,
            std_coeff=self.std_coeff,
            cov_coeff=self.cov_coeff,
            axis_name=axis_name,
        )
