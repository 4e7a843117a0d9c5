"""The pretraining loop: config in, checkpoints and metrics out.

``train_and_evaluate(config, workdir)`` is what ``python -m ssljax.train`` calls. Every piece
it wires together (data iterator, objective record, model, optimizer, per-device step,
checkpointer) can also be called on its own.
"""

from __future__ import annotations

import dataclasses
import signal
import time

import jax
import ml_collections
import numpy as np

from ssljax import objectives, parallel
from ssljax.training import checkpoint as ckpt_lib
from ssljax.training.logging import MetricWriter, Progress, to_python
from ssljax.training.monitor import KnnMonitor
from ssljax.training.optimizers import build_optimizer, with_param_groups
from ssljax.training.state import TrainState, create_train_state
from ssljax.training.step import (
    check_accumulate_steps,
    check_dtype,
    make_train_step,
    shard_map_driver,
)


class NonFiniteError(RuntimeError):
    """Raised when the loss or a gradient stops being finite."""


@dataclasses.dataclass
class Setup:
    """The pieces of a run that depend only on its config and its dataset's facts."""

    objective: objectives.Objective
    run: objectives.Run  # the dataset's facts and the run-level settings objectives see
    train_model: object  # cross-replica BatchNorm over the 'batch' axis
    eval_model: object  # same parameters, no collectives
    tx: object
    schedule: object

    @property
    def image_shape(self) -> tuple:
        return tuple(self.run.facts.image_shape)


def check_modality(objective: objectives.Objective, dataset_cfg) -> None:
    """A one-line ValueError when the objective and the dataset disagree on what they are
    (a text objective on images, an image objective on a text corpus)."""
    from ssljax.data.text_source import TEXT_DATASETS, is_text_dataset

    kind = "text" if is_text_dataset(dataset_cfg) else "image"
    if objective.modality != kind:
        valid = (
            ", ".join(TEXT_DATASETS)
            if objective.modality == "text"
            else "an image dataset (fashion_mnist, cifar10, image_folder, ...)"
        )
        raise ValueError(
            f"objective {objective.name!r} trains on {objective.modality}, but dataset "
            f"{dataset_cfg.get('name')!r} is {kind}; valid datasets: {valid}"
        )


def validate_config(config) -> None:
    """Fails fast, with one line each, on names and sizes that cannot work (before any data
    is read; checks that need the dataset's facts run in ``build_setup``)."""
    from ssljax.data.text_source import is_text_dataset, text_settings

    objective = objectives.build(config.objective)  # unknown names, keys and bad values
    check_modality(objective, config.dataset)
    if is_text_dataset(config.dataset):
        text_settings(config.dataset)  # unknown keys, missing paths
    else:
        from ssljax.data.datasets import spec_from_config
        from ssljax.data.host_views import host_views_for_config
        from ssljax.models import build_encoder

        host_views_for_config(config, spec_from_config(config.dataset))  # augment.crop_on
        build_encoder(config.model.encoder)  # unknown names raise with the valid choices
    parallel.check_global_batch(config.batch_size)
    check_dtype(config)
    check_accumulate_steps(config)
    build_optimizer(config)
    if int(config.total_steps) <= 0:
        raise ValueError(f"total_steps={config.total_steps} must be positive")


def pretrain_facts(config, corpus=None) -> objectives.DatasetFacts:
    """The ``DatasetFacts`` of the run's pretraining data, read once: a text corpus's
    (``corpus``, or the one ``config.dataset`` names, loaded here) or the image dataset's
    (``ssljax.data.dataset_facts``; prepares the TFDS data if needed)."""
    from ssljax.data.text_source import is_text_dataset, load_corpus, text_facts

    if is_text_dataset(config.dataset):
        return text_facts(corpus if corpus is not None else load_corpus(config.dataset))
    from ssljax.data.datasets import spec_from_config
    from ssljax.data.input_pipeline import dataset_facts, get_builder

    get_builder(spec_from_config(config.dataset), data_dir=config.dataset.get("data_dir"))
    return dataset_facts(config)


def with_resolved_objective(config) -> ml_collections.ConfigDict:
    """A copy of ``config`` whose ``objective`` lists every hyperparameter (defaults filled
    in from the objective's class), as the run stores and resumes it."""
    config = ml_collections.ConfigDict(config.to_dict())
    with config.ignore_type():
        config.objective = ml_collections.ConfigDict(objectives.resolved(config.objective))
    return config


def build_setup(config, facts: objectives.DatasetFacts | None = None) -> Setup:
    """Objective, models (train/eval), optimizer and run facts for ``config``.

    ``facts`` are the pretraining data's ``DatasetFacts``: runs pass those of the prepared
    dataset (``ssljax.data.dataset_facts``); without them the dataset's published facts are
    used and no data is read. The objective's own checks against them run here.
    """
    from ssljax.data.text_source import is_text_dataset

    if facts is None and is_text_dataset(config.dataset):
        facts = pretrain_facts(config)  # a corpus has no published facts: it is read
    elif facts is None:
        from ssljax.data.datasets import facts_from_spec, spec_from_config
        from ssljax.data.host_views import host_views_for_config

        spec = spec_from_config(config.dataset)
        facts = facts_from_spec(spec, host_views=host_views_for_config(config, spec))
    objective = objectives.build(config.objective)
    run = objectives.Run.from_config(config, facts)
    objective.check(run)
    tx, schedule = build_optimizer(config)
    tx = with_param_groups(tx, objective.param_groups(run))
    setup = Setup(
        objective=objective,
        run=run,
        train_model=objective.build_model(run, parallel.AXIS),
        eval_model=objective.build_model(run, None),
        tx=tx,
        schedule=schedule,
    )
    multipliers = dict(config.optimizer.get("lr_multipliers", None) or {})
    if any(v != 1.0 for v in multipliers.values()):  # factors were checked by build_optimizer
        abstract_state(config, setup)  # names the model lacks fail here
    return setup


def prefill(config, setup: Setup, state: TrainState) -> TrainState:
    """Runs the objective's ``prefill_state`` (fresh runs); it loads the pretraining split
    only if it needs it."""
    from ssljax.data.datasets import spec_from_config
    from ssljax.data.input_pipeline import load_split_arrays

    facts = setup.run.facts

    def load_images():
        return load_split_arrays(
            spec_from_config(config.dataset),
            facts.pretrain_split,
            data_dir=config.dataset.get("data_dir"),
        )[0]

    start = time.perf_counter()
    extra = setup.objective.prefill_state(
        state.extra,
        state.params,
        state.model_state,
        load_images,
        model=setup.eval_model,
        run=setup.run,
    )
    if extra is not state.extra and parallel.is_main_process():
        print(
            f"prefilled the objective's state from the {facts.pretrain_split} split in "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
    return state.replace(extra=extra)


def initial_state(config, setup: Setup) -> TrainState:
    """The step-0 state, seeded by ``config.seed``, with the objective's own state and the
    parameters of its parameter groups (``params[name]``)."""
    state = create_train_state(
        setup.eval_model,
        setup.tx,
        jax.random.PRNGKey(config.seed),
        setup.objective.sample_shape(setup.run),
        groups=setup.objective.param_groups(setup.run),
    )
    extra = setup.objective.init_state(state.params, state.model_state, setup.run)
    if extra is not None:
        state = state.replace(extra=extra)
    return state


def abstract_state(config, setup: Setup):
    """Shapes and dtypes of the train state, without computing it."""
    return jax.eval_shape(lambda: initial_state(config, setup))


def pretrain_batches(config, setup: Setup, corpus, start_step: int):
    """The run's host batches from ``start_step`` on: a text corpus's examples
    (``ssljax.data.text_source``) or the image dataset's (``train_iterator``)."""
    if corpus is not None:
        from ssljax.data.text_source import text_train_iterator

        return text_train_iterator(
            corpus,
            setup.objective,
            global_batch_size=config.batch_size,
            seed=config.seed,
            start_step=start_step,
        )
    from ssljax.data.datasets import spec_from_config
    from ssljax.data.host_views import host_views_for_config
    from ssljax.data.input_pipeline import train_iterator

    spec = spec_from_config(config.dataset)  # after get_builder: a prepared dataset's sizes
    return train_iterator(
        spec,
        global_batch_size=config.batch_size,
        seed=config.seed,
        start_step=start_step,
        data_dir=config.dataset.get("data_dir"),
        # Crops cut on the host (augment.crop_on); batch['local_image'] is not read yet.
        host_views=host_views_for_config(config, spec),
    )


class _SigtermFlag:
    """Records a SIGTERM so the loop can save a checkpoint and stop between steps."""

    def __init__(self):
        self.received = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread: no handler, no flag
            self._previous = None
        return self

    def _handle(self, signum, frame):
        del signum, frame
        self.received = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train_and_evaluate(
    config, workdir: str, *, max_steps: int | None = None, progress: bool = True
) -> dict:
    """Pretrains ``config`` in ``workdir``, resuming from its latest checkpoint.

    Args:
      config: an experiment ConfigDict (see ssljax/config_base.py).
      workdir: run directory; holds config.json, checkpoints/, metrics.jsonl, tensorboard/.
      max_steps: stop (with a checkpoint) after this many steps of this invocation; used to
        split a run in pieces. The run's schedule still follows ``config.total_steps``.
      progress: draw the progress bar.

    Returns:
      ``{'step', 'status', 'last_metrics', 'seconds', 'steps_per_second', 'steps_run'}``
      where status is
      'completed', 'stopped' (max_steps) or 'preempted' (SIGTERM).
    """
    from ssljax.data.text_source import is_text_dataset, load_corpus

    validate_config(config)
    config = with_resolved_objective(config)  # config.json lists every hyperparameter
    text = is_text_dataset(config.dataset)
    corpus = load_corpus(config.dataset) if text else None
    setup = build_setup(config, pretrain_facts(config, corpus))  # the data's facts, once
    main = parallel.is_main_process()
    # kNN top-1 needs labelled images; a text run is scored from its checkpoint instead.
    monitor = None if text else KnnMonitor.for_run(config, setup, verbose=main)
    # Every process checks the workdir's config; only process 0 writes it.
    config_dict = ckpt_lib.prepare_workdir(workdir, config, write=main)
    parallel.sync("ssljax:prepare_workdir")
    mesh = parallel.make_mesh()
    checkpointer = ckpt_lib.Checkpointer(workdir, max_to_keep=config.keep_checkpoints)

    state = initial_state(config, setup)
    # The newest readable checkpoint; newer damaged ones are moved aside (process 0).
    # Restored straight into the replicated mesh layout: every process reads its own
    # devices' copies (no cross-host transfer).
    template = parallel.replicated_abstract(state, mesh)
    restored = checkpointer.restore_newest(
        lambda s: checkpointer.restore_state(template, s), move_damaged=True
    )
    if restored is not None:
        state = restored[1]
        if main:
            print(f"resuming {workdir} from step {int(state.step)}", flush=True)
    else:
        state = prefill(config, setup, state)
    state = parallel.replicate_on_mesh(state, mesh)
    start = int(state.step)
    total = int(config.total_steps)
    end = total if max_steps is None else min(total, start + max_steps)

    step_fn = shard_map_driver(
        make_train_step(
            objective=setup.objective,
            model=setup.train_model,
            tx=setup.tx,
            config=config,
            run=setup.run,
            schedule=setup.schedule,
        ),
        mesh,
    )
    data = pretrain_batches(config, setup, corpus, start)
    # Logs, TensorBoard files and the progress bar belong to process 0; every process
    # takes part in the checkpoint saves.
    writer = MetricWriter(workdir, start_step=start) if main else None
    bar = Progress(
        total=total, initial=start, enabled=progress and main, every=config.log_every_steps
    )
    status, last = "completed", {}
    t0 = time.perf_counter()
    step = start
    try:
        with _SigtermFlag() as sigterm:
            while step < end:
                batch = parallel.batch_to_global(next(data), mesh)
                state, metrics = step_fn(state, batch)
                metrics = to_python(jax.device_get(metrics))
                if not metrics.pop("finite"):
                    raise NonFiniteError(
                        f"non-finite loss or gradients at step {step}; the last good "
                        f"checkpoint stays in {checkpointer.directory}"
                    )
                step += 1
                last = metrics
                # kNN top-1 at the monitor's steps (every process; it leaves the state as is).
                knn = monitor.after_step(step, state) if monitor else {}
                if writer is not None and (
                    step % config.log_every_steps == 0 or step == end or knn
                ):
                    writer.write(step, dict(metrics, steps_per_second=bar.rate(), **knn))
                bar.update(step, dict(metrics, **knn), force=step == end or bool(knn))
                if step % config.checkpoint_every_steps == 0 and step < end:
                    checkpointer.save(step, state, config_dict)
                # A SIGTERM to any process stops every process after this same step.
                if parallel.any_process(sigterm.received):
                    status = "preempted"
                    break
            if status != "preempted" and step < total:
                status = "stopped"
            if checkpointer.latest_step() != step:
                checkpointer.save(step, state, config_dict)
    finally:
        try:
            if writer is not None:
                writer.close()  # logs first: a failed save below must not lose them
        finally:
            checkpointer.close()
    seconds = time.perf_counter() - t0
    done = step - start
    return {
        "step": step,
        "status": status,
        "last_metrics": last,
        "seconds": seconds,
        "steps_per_second": done / seconds if seconds > 0 else 0.0,
        "steps_run": done,
    }


def _take_stored(current, stored):
    """``current`` with every leaf that ``stored`` (nested dicts) also holds replaced."""
    if isinstance(current, dict) and isinstance(stored, dict):
        return {k: _take_stored(v, stored[k]) if k in stored else v for k, v in current.items()}
    return current if isinstance(stored, dict) else stored


def with_stored_network(state: TrainState, stored: dict) -> TrainState:
    """A fresh state carrying a stored state's step, parameters and model state (stored in
    an earlier layout; parameter groups it lacks keep their initial values)."""
    return state.replace(
        step=stored["step"],
        params=_take_stored(state.params, stored["params"]),
        model_state=_take_stored(state.model_state, stored.get("model_state", {})),
    )


def restore_for_eval(workdir: str, step: int | None = None):
    """Reads a workdir's checkpoint for evaluation, with the config stored beside it.

    Returns ``(config_dict, setup, state, step)``; the state lives on one device. With
    ``step=None`` it reads the newest checkpoint that can be read: a newer unreadable one is
    skipped with one line naming both steps (nothing is moved; evaluation only reads). A
    missing checkpoint, or an unreadable requested ``step``, is a one-line ValueError naming
    the workdir.
    """
    from ssljax import io as wio
    from ssljax.data.text_source import is_text_dataset

    directory = wio.join(workdir, ckpt_lib.CHECKPOINT_SUBDIR)
    if not wio.as_path(directory).is_dir():
        raise ValueError(
            f"no checkpoint in {workdir} (missing {directory}); "
            "pretrain first with: python -m ssljax.train --config CONFIG --workdir " + workdir
        )
    checkpointer = ckpt_lib.Checkpointer(workdir, read_only=True)

    def read(s, named_errors=False):
        def orbax(fn):
            try:
                return fn()
            except ckpt_lib.StateLayoutError:
                raise
            except Exception as err:  # orbax raises many types for damaged files
                if not named_errors:
                    raise
                raise ValueError(
                    f"cannot read the checkpoint at step {s} in {directory}: {wio.first_line(err)}"
                ) from err

        config = ml_collections.ConfigDict(orbax(lambda: checkpointer.restore_config(s)))
        # A bad stored config is its own one-line error. Only objectives that index the
        # split size their state by it: the others need no data to be restored.
        # A text corpus is read for its vocabulary.
        needs_data = objectives.build(config.objective).needs_index
        if needs_data and not is_text_dataset(config.dataset):
            from ssljax.data.input_pipeline import dataset_facts

            setup = build_setup(config, dataset_facts(config))
        else:
            setup = build_setup(config)
        try:
            state = orbax(lambda: checkpointer.restore_state(abstract_state(config, setup), s))
        except ckpt_lib.StateLayoutError:
            # Written by an earlier layout of the objective's state: the network is all an
            # evaluation reads, so it is taken from the checkpoint as stored.
            stored = orbax(lambda: checkpointer.restore_stored_layout(s))
            state = with_stored_network(initial_state(config, setup), stored)
            print(
                f"checkpoint step {s} in {directory} has an earlier train-state layout; "
                "evaluating its stored network",
                flush=True,
            )
        return config, setup, state

    try:
        if step is None:
            found = checkpointer.restore_newest(read, move_damaged=False)
            if found is None:
                raise ValueError(f"no complete checkpoint in {directory}; pretrain first")
            step, (config, setup, state) = found
        else:
            config, setup, state = read(step, named_errors=True)
    finally:
        checkpointer.close()
    state = jax.tree.map(np.asarray, state)
    return config, setup, state, step
