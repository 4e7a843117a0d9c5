"""Fine-tuning: the whole pretrained encoder plus a linear head, trained end to end on labels.

The protocol of SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of
Visual Representations", Appendix B.5) and of its semi-supervised follow-up (Chen et al.
2020b, "Big Self-Supervised Models are Strong Semi-Supervised Learners"): the encoder is
initialised from the checkpoint, a linear head (zero-initialised, as Kolesnikov et al. 2020,
Big Transfer) is put on the features the linear probe reads (a sown layer pooled to a grid,
:class:`Classifier`), and both are trained with a cross-entropy loss
(optional label smoothing, Szegedy et al. 2016) under light augmentations (random resized
crop and horizontal flip: ``ssljax.views.augment`` without colour distortion), with SGD +
Nesterov momentum (or AdamW, Loshchilov & Hutter 2019), a linear warm-up and a cosine decay,
and weight decay on kernels only. BatchNorm runs in train mode with its statistics averaged
over every device (cross-replica BatchNorm, as in pretraining). "From scratch" is the same
network, initialised at random, trained with the same recipe on the same labels.

Everything here is a function of arrays:

- :func:`default_config` -- the recipe (``finetune.*`` settings; the CLI overrides them);
- :func:`init_variables` -- classifier variables, the encoder's taken from a checkpoint or not;
- :func:`make_optimizer` -- the optax transformation and its schedule;
- :func:`make_train_step` -- one pure, per-device step ``(state, batch) -> (state, metrics)``
  with ``pmean`` over ``'batch'`` (the convention of ``ssljax.training.step``), run over every
  device by ``ssljax.training.step.shard_map_driver``;
- :func:`train_classifier` / :func:`predict_logits` / :func:`finetune_and_evaluate` -- the
  loop over a labelled array, and top-1/top-5 on held-out arrays.

The labelled images are held in host memory (the label-efficiency subsets, CIFAR- or
Fashion-MNIST-sized splits); every process holds them all and feeds its own rows of each
global batch.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssljax import parallel
from ssljax.training.optimizers import decay_mask
from ssljax.training.state import TrainState

OPTIMIZERS = ("adamw", "sgd")
HEAD = "head"
ENCODER = "encoder"
INTERMEDIATES = "intermediates"


def default_config() -> ml_collections.ConfigDict:
    """The fine-tuning recipe; every key is a ``--finetune.KEY=VALUE`` flag of
    ``python -m ssljax.evaluate``.

    The same recipe trains the pretrained and the from-scratch network. The learning rate
    and the crop scale were chosen among five recipes by validation top-1 on 10% of the
    10% Fashion-MNIST subset, held out from its training labels (the test split was not
    read): see experiments/label_efficiency.md.
    """
    return ml_collections.ConfigDict(
        dict(
            # Passes over the labelled examples, and a floor on the number of steps (small
            # subsets get more epochs, as SimCLR fine-tunes 1% of ImageNet for 60 epochs and
            # 10% for 30).
            epochs=15,
            min_steps=400,
            # Global batch (split over every device), and the peak learning rate at a batch
            # of 256 (scaled linearly with the batch, Goyal et al. 2017).
            batch_size=128,
            learning_rate=0.1,
            optimizer="sgd",  # one of OPTIMIZERS
            momentum=0.9,
            nesterov=True,
            weight_decay=5e-4,  # kernels only (SGD: L2 on the gradient; AdamW: decoupled)
            warmup_epochs=1.0,
            label_smoothing=0.0,
            # Factor on the encoder's updates (0 trains the head alone: the encoder's
            # parameters stay as they are).
            encoder_lr_multiplier=1.0,
            # Light augmentations (``ssljax.views.augment``): random resized crop + flip.
            crop_scale=(0.8, 1.0),
            crop_ratio=(3.0 / 4.0, 4.0 / 3.0),
            flip=True,
            # Rows per forward pass when predicting held-out images.
            eval_batch_size=1000,
            # Fraction of the labelled examples held out (class-balanced) to choose a
            # recipe on: its top-1 is reported as ``val_top1``; 0 trains on every example.
            validation_fraction=0.0,
        )
    )


def check_config(cfg) -> None:
    """One-line ValueErrors for ``finetune.*`` values that cannot work."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"unknown finetune.optimizer {cfg.optimizer!r}; choose one of {OPTIMIZERS}"
        )
    for key in ("epochs", "batch_size", "eval_batch_size"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"finetune.{key}={value!r} must be a positive integer")
    if isinstance(cfg.min_steps, bool) or not isinstance(cfg.min_steps, int) or cfg.min_steps < 0:
        raise ValueError(f"finetune.min_steps={cfg.min_steps!r} must be an integer >= 0")
    for key in ("learning_rate", "weight_decay", "warmup_epochs", "encoder_lr_multiplier"):
        if not float(cfg[key]) >= 0.0:
            raise ValueError(f"finetune.{key}={cfg[key]!r} must be >= 0")
    if not 0.0 <= float(cfg.momentum) < 1.0:
        raise ValueError(f"finetune.momentum={cfg.momentum!r} must be in [0, 1)")
    if not 0.0 <= float(cfg.label_smoothing) < 1.0:
        raise ValueError(f"finetune.label_smoothing={cfg.label_smoothing!r} must be in [0, 1)")
    if not 0.0 <= float(cfg.validation_fraction) < 1.0:
        raise ValueError(
            f"finetune.validation_fraction={cfg.validation_fraction!r} must be in [0, 1)"
        )


# --------------------------------------------------------------------------
# The network.


class Classifier(nn.Module):
    """``encoder`` followed by a linear head.

    The head reads the encoder's output (``layer=None``, which must be ``[B, D]``) or one of
    its sown layers, pooled to a ``grid x grid`` grid (``ssljax.models.spatial_pool``): the
    features the linear probe reads, so fine-tuning starts from the probe's representation.
    Takes float images in ``[0, 1]`` (``[B, H, W, C]``) and returns float32 logits
    ``[B, num_classes]``. Parameters live under ``'encoder'`` and ``'head'``; the encoder's
    BatchNorm statistics under ``batch_stats['encoder']``. Run it with
    :func:`apply_classifier` (a sown layer needs the ``'intermediates'`` collection mutable).
    """

    encoder: nn.Module
    num_classes: int
    layer: str | None = None
    grid: int = 1

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
        from ssljax.models import spatial_pool

        features = self.encoder(images, train=train)
        if self.layer is not None:
            sown = self.encoder.variables.get(INTERMEDIATES, {})
            if self.layer not in sown:
                raise ValueError(
                    f"unknown layer {self.layer!r}; the encoder sows {list(sown)} (apply the "
                    "classifier with apply_classifier)"
                )
            features = spatial_pool(sown[self.layer][-1], int(self.grid))
        if features.ndim != 2:
            raise ValueError(
                f"fine-tuning needs [B, D] features, got shape {features.shape}; name a layer"
            )
        head = nn.Dense(
            self.num_classes,
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.zeros,
            name=HEAD,
        )
        return head(features.astype(jnp.float32))


def apply_classifier(
    classifier: Classifier, variables: Mapping[str, Any], images: jax.Array, *, train: bool
) -> tuple[jax.Array, dict]:
    """``(logits, new non-parameter collections)``: in train mode BatchNorm uses (and
    updates) batch statistics; in eval mode the collections come back unchanged."""
    variables = {k: v for k, v in variables.items() if k != INTERMEDIATES}
    state = [k for k in variables if k != "params"] if train else []
    logits, new = classifier.apply(variables, images, train=train, mutable=state + [INTERMEDIATES])
    return logits, {k: v for k, v in new.items() if k in state}


def init_variables(
    classifier: Classifier,
    rng: jax.Array,
    image_shape,
    encoder_variables: Mapping[str, Any] | None = None,
) -> dict:
    """The classifier's variables: a zero head, and the encoder's ``encoder_variables``
    (a checkpoint's, same structure) or, with None, a random initialisation from ``rng``.

    Raises:
      ValueError: ``encoder_variables`` does not fit the classifier's encoder.
    """
    sample = jnp.zeros((1, *tuple(image_shape)), jnp.float32)
    variables = jax.device_get(classifier.init(rng, sample, train=False, mutable=True))
    variables = {col: dict(tree) for col, tree in variables.items() if col != INTERMEDIATES}
    if encoder_variables is None:
        return variables
    fresh = {col: tree[ENCODER] for col, tree in variables.items() if ENCODER in tree}
    given = {col: encoder_variables[col] for col in fresh if col in encoder_variables}
    if jax.tree.structure(fresh) != jax.tree.structure(given) or any(
        np.shape(a) != np.shape(b) for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(given))
    ):
        raise ValueError(
            "the checkpoint's encoder variables do not fit the fine-tuned encoder "
            f"(collections {sorted(encoder_variables)} vs {sorted(fresh)})"
        )
    for col, tree in given.items():
        variables[col][ENCODER] = jax.tree.map(lambda x: np.asarray(x, np.float32), tree)
    return variables


# --------------------------------------------------------------------------
# Optimizer, augmentation, schedule of steps.


def num_steps(num_examples: int, cfg) -> int:
    """Optimizer steps for ``num_examples`` labels: ``ceil(epochs * n / batch)``, at least
    ``min_steps`` (and 1)."""
    epochs = math.ceil(int(cfg.epochs) * int(num_examples) / int(cfg.batch_size))
    return max(1, int(cfg.min_steps), epochs)


def peak_learning_rate(cfg) -> float:
    """``learning_rate * batch_size / 256`` (the linear scaling rule, Goyal et al. 2017)."""
    return float(cfg.learning_rate) * int(cfg.batch_size) / 256.0


def learning_rate_schedule(cfg, total_steps: int, warmup_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to the peak over ``warmup_steps``, then cosine decay to 0."""
    warmup = min(int(warmup_steps), max(int(total_steps) - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak_learning_rate(cfg),
        warmup_steps=warmup,
        decay_steps=max(int(total_steps), warmup + 1),
        end_value=0.0,
    )


def encoder_mask(params):
    """True for the encoder's leaves, False for the head's."""
    return {k: jax.tree.map(lambda _, k=k: k == ENCODER, v) for k, v in params.items()}


def make_optimizer(
    cfg, total_steps: int, warmup_steps: int = 0
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax transformation of ``cfg.optimizer`` and its learning-rate schedule.

    SGD: ``add_decayed_weights`` (L2 on kernels) then ``sgd`` with (Nesterov) momentum;
    AdamW: decoupled weight decay on kernels. With ``encoder_lr_multiplier != 1`` the
    encoder's final updates are multiplied by it (0: the encoder does not move).
    """
    check_config(cfg)
    schedule = learning_rate_schedule(cfg, total_steps, warmup_steps)
    wd = float(cfg.weight_decay)
    if cfg.optimizer == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(wd, mask=decay_mask),
            optax.sgd(schedule, momentum=float(cfg.momentum) or None, nesterov=bool(cfg.nesterov)),
        )
    else:
        tx = optax.adamw(schedule, weight_decay=wd, mask=decay_mask)
    multiplier = float(cfg.encoder_lr_multiplier)
    if multiplier != 1.0:
        tx = optax.chain(tx, optax.masked(optax.scale(multiplier), encoder_mask))
    return tx, schedule


def make_augment(cfg) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(rng, uint8 images [B, H, W, C]) -> float32 [0, 1] images``: random resized crop
    (``cfg.crop_scale``, ``cfg.crop_ratio``, same output size) and, with ``cfg.flip``, a
    horizontal flip; no colour distortion, grayscale or blur."""
    from ssljax.views import augment

    def apply(rng, images):
        aug = augment.augment_config(
            int(images.shape[1]),
            crop_scale=tuple(cfg.crop_scale),
            crop_ratio=tuple(cfg.crop_ratio),
            flip=bool(cfg.flip),
            color_jitter_strength=0.0,
            grayscale_prob=0.0,
            blur_prob=0.0,
        )
        return augment.simclr_augment(rng, images, aug)

    return apply


def no_augment(rng: jax.Array, images: jax.Array) -> jax.Array:
    """The images as float32 in ``[0, 1]`` (no randomness)."""
    del rng
    return images.astype(jnp.float32) / 255.0 if images.dtype == jnp.uint8 else images


def batch_indices(num_examples: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """``[steps, batch_size]`` example indices: consecutive epochs, each a fresh permutation
    of ``range(num_examples)`` drawn from ``seed``, cut into batches (a batch may straddle
    two epochs; nothing is dropped)."""
    if num_examples < 1:
        raise ValueError(f"no labelled examples to train on (num_examples={num_examples})")
    rng = np.random.default_rng(seed)
    epochs = math.ceil(steps * batch_size / num_examples)
    order = np.concatenate([rng.permutation(num_examples) for _ in range(epochs)])
    return order[: steps * batch_size].reshape(steps, batch_size).astype(np.int64)


# --------------------------------------------------------------------------
# The step.


def classification_loss(
    logits: jax.Array, labels: jax.Array, num_classes: int, label_smoothing: float = 0.0
) -> jax.Array:
    """Mean softmax cross-entropy against (optionally smoothed) one-hot labels."""
    targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if label_smoothing:
        targets = optax.smooth_labels(targets, float(label_smoothing))
    return jnp.mean(optax.softmax_cross_entropy(logits, targets))


def make_train_step(
    classifier: Classifier,
    tx: optax.GradientTransformation,
    *,
    num_classes: int,
    label_smoothing: float = 0.0,
    augment: Callable[[jax.Array, jax.Array], jax.Array] = no_augment,
    axis_name: str | None = parallel.AXIS,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The per-device step ``(state, {'image': uint8 [n, H, W, C], 'label': int [n]}) ->
    (state, metrics)``.

    The device's key is ``fold_in(fold_in(state.rng, step), device index)``; the images are
    augmented with it, the classifier runs in train mode (BatchNorm on batch statistics,
    averaged over ``axis_name`` when the encoder was built with it), gradients, loss and
    the new BatchNorm statistics are averaged over ``axis_name`` (``None``: one device, no
    collectives), and ``tx`` updates the parameters. Pure: the same state and batch give the
    same result.
    """
    from ssljax.training.step import step_rng

    def loss_fn(params, model_state, images, labels):
        variables = {"params": params, **model_state}
        logits, new_state = apply_classifier(classifier, variables, images, train=True)
        loss = classification_loss(logits, labels, num_classes, label_smoothing)
        return loss, (new_state, logits)

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        rng = step_rng(state.rng, state.step, axis_name)
        images = augment(rng, batch["image"])
        labels = batch["label"]
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (model_state, logits)), grads = grad_fn(
            state.params, state.model_state, images, labels
        )
        accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
            loss = jax.lax.pmean(loss, axis_name)
            accuracy = jax.lax.pmean(accuracy, axis_name)
            model_state = jax.lax.pmean(model_state, axis_name)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(
            step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state
        )
        return new_state, dict(loss=loss, accuracy=accuracy)

    return step


def initial_state(variables: Mapping[str, Any], tx, seed: int) -> TrainState:
    """Step 0 of fine-tuning from ``variables`` (``params`` + other collections)."""
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state={k: v for k, v in variables.items() if k != "params"},
        opt_state=tx.init(params),
        rng=jax.random.PRNGKey(seed),
    )


def variables_of(state: TrainState) -> dict:
    """The classifier's variables in a state, on the host."""
    return jax.device_get({"params": state.params, **state.model_state})


# --------------------------------------------------------------------------
# Loops.


def _recipe_key(cfg) -> tuple:
    """``cfg`` as a hashable, sorted tuple of items (lists become tuples)."""

    def frozen(v):
        return tuple(frozen(x) for x in v) if isinstance(v, (list, tuple)) else v

    return tuple(sorted((k, frozen(v)) for k, v in cfg.to_dict().items()))


class _Cache:
    """A small cache of compiled functions keyed by a network (compared with ``==``: Flax
    modules built from configs hold lists, so they cannot be hashed) and hashable
    arguments."""

    def __init__(self, size: int = 8):
        self.size, self.entries = size, []

    def get(self, network, key, build):
        for i, (net, k, value) in enumerate(self.entries):
            if k == key and net == network:
                self.entries.append(self.entries.pop(i))
                return value
        value = build()
        self.entries = (self.entries + [(network, key, value)])[-self.size :]
        return value


_STEPS = _Cache()
_LOGITS = _Cache()


def _compiled_step(classifier, recipe: tuple, steps, warmup, num_classes, augment, mesh):
    """``(tx, jitted step over mesh)`` for a recipe; cached, so that runs of the same
    shapes (fine-tuning and from scratch, several seeds) compile once."""
    from ssljax.training.step import shard_map_driver

    def build():
        cfg = ml_collections.ConfigDict(dict(recipe))
        tx, _ = make_optimizer(cfg, steps, warmup)
        step = make_train_step(
            classifier,
            tx,
            num_classes=num_classes,
            label_smoothing=float(cfg.label_smoothing),
            augment=make_augment(cfg) if augment is None else augment,
        )
        return tx, shard_map_driver(step, mesh)

    return _STEPS.get(classifier, (recipe, steps, warmup, num_classes, augment, mesh), build)


def _logits_fn(classifier, mesh):
    """Eval-mode logits of uint8 images, rows split over ``mesh`` (cached per network)."""
    from ssljax.evaluation import features as feats

    def logits(v, x):
        return apply_classifier(classifier, v, x.astype(jnp.float32) / 255.0, train=False)[0]

    return _LOGITS.get(classifier, mesh, lambda: feats.shard_rows(logits, mesh))


def _log_fn(log):
    return log if log is not None else (lambda message: None)


def train_classifier(
    classifier: Classifier,
    variables: Mapping[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    cfg,
    num_classes: int,
    seed: int,
    mesh=None,
    augment: Callable | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[dict, dict]:
    """Trains ``classifier`` from ``variables`` on ``images``/``labels`` with ``cfg``.

    The per-device step runs on every device of ``mesh`` (default: all devices of every
    process) through ``shard_map_driver``; each process feeds its own rows of every global
    batch. ``classifier``'s encoder must be built with ``axis_name='batch'`` for
    cross-replica BatchNorm.

    Returns:
      ``(trained variables, {'steps', 'loss', 'train_accuracy', 'seconds'})``, the last
      two averaged over the final 10% of steps.
    """
    check_config(cfg)
    log = _log_fn(log)
    chex.assert_rank(images, 4)
    chex.assert_shape(labels, (images.shape[0],))
    mesh = parallel.make_mesh() if mesh is None else mesh
    batch = int(cfg.batch_size)
    num_devices = mesh.devices.size
    if batch % num_devices:
        raise ValueError(
            f"finetune.batch_size={batch} is not divisible by the {num_devices} devices; "
            f"use a multiple of {num_devices}"
        )
    steps = num_steps(len(labels), cfg)
    steps_per_epoch = max(1, math.ceil(len(labels) / batch))
    warmup = int(round(float(cfg.warmup_epochs) * steps_per_epoch))
    tx, step_fn = _compiled_step(
        classifier, _recipe_key(cfg), steps, warmup, int(num_classes), augment, mesh
    )
    # Host copies: the step donates its state, never the caller's arrays.
    variables = jax.device_get(variables)
    state = parallel.replicate_on_mesh(initial_state(variables, tx, seed), mesh)
    order = batch_indices(len(labels), batch, steps, seed)
    local = len(mesh.local_devices)
    per_process = batch // jax.process_count()
    first = jax.process_index() * per_process
    losses, accuracies = [], []
    t0 = last = time.perf_counter()
    for i in range(steps):
        rows = order[i, first : first + per_process]
        host = {
            "image": images[rows].reshape(local, per_process // local, *images.shape[1:]),
            "label": np.asarray(labels[rows], np.int32).reshape(local, per_process // local),
        }
        state, metrics = step_fn(state, parallel.batch_to_global(host, mesh))
        if i >= steps - max(1, steps // 10):
            losses.append(metrics["loss"])
            accuracies.append(metrics["accuracy"])
        now = time.perf_counter()
        if now - last >= 30.0:
            last = now
            log(f"step {i + 1}/{steps} ({(i + 1) / (now - t0):.1f} steps/s)")
    trained = variables_of(state)
    summary = dict(
        steps=steps,
        loss=float(np.mean(jax.device_get(losses))),
        train_accuracy=float(np.mean(jax.device_get(accuracies))),
        seconds=time.perf_counter() - t0,
    )
    return trained, summary


def predict_logits(
    classifier: Classifier, variables: Mapping[str, Any], images: np.ndarray, *, batch_size: int
) -> np.ndarray:
    """Eval-mode logits ``float32 [N, num_classes]`` of uint8 ``images``, on every local
    device (rows are independent in eval mode)."""
    from ssljax.evaluation import checkpoint_eval
    from ssljax.evaluation import features as feats

    mesh = feats.local_mesh()
    mapped = _logits_fn(classifier, mesh)
    on_mesh = feats.replicate(variables, mesh)
    rows = feats.round_up(min(int(batch_size), max(len(images), 1)), mesh.size)
    return checkpoint_eval.compute_features(
        lambda v, x: mapped(v, x), on_mesh, images, batch_size=rows
    )


def finetune_and_evaluate(
    classifier: Classifier,
    variables: Mapping[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    evals: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    cfg,
    num_classes: int,
    seed: int,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Trains on ``train = (images, labels)`` and reports top-1/top-5 on each of ``evals``
    (``{'test': (images, labels), 'val': ...}``) as ``{name}_top1`` / ``{name}_top5``
    (``top1``/``top5`` for ``'test'``), with the training summary."""
    from ssljax.evaluation.metrics import accuracy_report

    trained, summary = train_classifier(
        classifier,
        variables,
        *train,
        cfg=cfg,
        num_classes=num_classes,
        seed=seed,
        log=log,
    )
    report = dict(summary, num_train=int(len(train[1])))
    for name, (images, labels) in evals.items():
        logits = predict_logits(classifier, trained, images, batch_size=int(cfg.eval_batch_size))
        acc = accuracy_report(logits, np.asarray(labels, np.int32))
        prefix = "" if name == "test" else f"{name}_"
        report[f"{prefix}top1"] = acc["top1"]
        report[f"{prefix}top5"] = acc["top5"]
    return report
