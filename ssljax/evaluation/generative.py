"""Samples (and reconstructions) of generative checkpoints: BiGAN (Donahue, Krahenbuhl &
Darrell 2017) and energy-based models (``objective.name = 'energy'``).

Reads only what pretraining wrote: the workdir's checkpoint and its stored config
(``ssljax.training.loop.restore_for_eval``). The network runs in evaluation mode (BatchNorm
running averages), on one device.

* ``generate_images(model, variables, z)``: ``G(z)``, images ``[N, H, W, C]`` in [0, 1].
* ``reconstruct_images(model, variables, images)``: ``G(E(x))``.
* ``bigan_samples(workdir, num, seed)``: ``G(z)`` for ``num`` prior draws of ``seed``.
* ``bigan_reconstructions(workdir, images)``: ``G(E(x))`` of the given images.
* ``write_bigan_figures(workdir, out_dir)``: ``bigan_samples.png`` (a grid of ``G(z)``) and
  ``bigan_reconstructions.png`` (rows of test images ``x`` alternating with rows of their
  ``G(E(x))``), via ``ssljax.evaluation.plots.image_grid``.
* ``energy_samples(workdir, num, seed)``: Langevin chains (``ssljax.energy.samplers``) on the
  learned energy from uniform noise; ``write_energy_figures`` writes ``energy_samples.png``.
* ``write_figures(workdir, out_dir)``: whichever of the two the run's objective calls for.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

SAMPLES_FILE = "bigan_samples.png"
RECONSTRUCTIONS_FILE = "bigan_reconstructions.png"
OBJECTIVE = "bigan"


def load_bigan(workdir: str, step: int | None = None):
    """``(config, setup, state, step)`` of a BiGAN workdir's checkpoint (newest by default).

    Raises:
      ValueError: one line, when the workdir has no readable checkpoint or was not trained
        with the ``bigan`` objective.
    """
    from ssljax.training.loop import restore_for_eval

    config, setup, state, step = restore_for_eval(workdir, step)
    name = setup.objective.name
    if name != OBJECTIVE:
        raise ValueError(
            f"{workdir} was trained with objective {name!r}; samples and reconstructions "
            f"need objective {OBJECTIVE!r}"
        )
    return config, setup, state, step


def network_variables(state) -> dict:
    """The ``BiGANNetwork``'s variables of a train state (the discriminator left out)."""
    from ssljax.objectives.bigan import split_param_group

    params, _ = split_param_group(state.params)
    return {"params": params, **state.model_state}


def generate_images(model, variables: dict, z) -> np.ndarray:
    """``G(z)`` in evaluation mode: latents ``[N, latent_dim]`` -> float32 ``[N, H, W, C]``."""
    z = jnp.asarray(z, jnp.float32)
    chex.assert_rank(z, 2)
    fn = jax.jit(lambda v, z: model.apply(v, z, train=False, method="generate"))
    return np.asarray(fn(variables, z))


def reconstruct_images(model, variables: dict, images) -> np.ndarray:
    """``G(E(x))`` in evaluation mode: images ``[N, H, W, C]`` (uint8, or float in [0, 1])
    -> float32 ``[N, H, W, C]``."""
    from ssljax.views.augment import to_float

    x = to_float(jnp.asarray(images))
    chex.assert_rank(x, 4)

    def fn(v, x):
        z = model.apply(v, x, train=False, method="encode")
        return model.apply(v, z, train=False, method="generate")

    return np.asarray(jax.jit(fn)(variables, x))


def prior_draws(objective, num: int, seed: int) -> np.ndarray:
    """``[num, latent_dim]`` draws of the objective's prior from ``PRNGKey(seed)``."""
    from ssljax.objectives.bigan import sample_prior

    if isinstance(num, bool) or int(num) < 1:
        raise ValueError(f"num={num!r} is invalid; valid: an integer >= 1")
    key = jax.random.PRNGKey(int(seed))
    return np.asarray(sample_prior(key, (int(num), int(objective.latent_dim)), objective.prior))


def bigan_samples(workdir: str, num: int = 64, seed: int = 0, *, step: int | None = None):
    """``G(z)`` for ``num`` prior draws of ``seed``: float32 ``[num, H, W, C]`` in [0, 1]."""
    _, setup, state, _ = load_bigan(workdir, step)
    z = prior_draws(setup.objective, num, seed)
    return generate_images(setup.eval_model, network_variables(state), z)


def bigan_reconstructions(workdir: str, images, *, step: int | None = None) -> np.ndarray:
    """``G(E(x))`` of ``images`` (``[N, H, W, C]`` uint8 or float in [0, 1]): float32 in
    [0, 1]."""
    _, setup, state, _ = load_bigan(workdir, step)
    return reconstruct_images(setup.eval_model, network_variables(state), images)


def interleave_rows(originals, reconstructions, columns: int) -> np.ndarray:
    """Rows of ``columns`` originals alternating with the rows of their reconstructions.

    Both are ``[N, H, W, C]``; a last partial row is filled with white (1.0) tiles. Returns
    float32 ``[2 * rows * columns, H, W, C]``.
    """
    from ssljax.views.augment import to_float

    x, r = np.asarray(to_float(originals)), np.asarray(to_float(reconstructions))
    if x.shape != r.shape or x.ndim != 4:
        raise ValueError(
            f"originals {x.shape} and reconstructions {r.shape} must be equal [N, H, W, C]"
        )
    if isinstance(columns, bool) or int(columns) < 1:
        raise ValueError(f"columns={columns!r} is invalid; valid: an integer >= 1")
    columns = int(columns)
    pad = -len(x) % columns
    if pad:
        white = np.ones((pad,) + x.shape[1:], np.float32)
        x, r = np.concatenate([x, white]), np.concatenate([r, white])
    rows = len(x) // columns
    shape = (rows, columns) + x.shape[1:]
    pairs = np.stack([x.reshape(shape), r.reshape(shape)], axis=1)
    return pairs.reshape((-1,) + x.shape[1:])


def held_out_images(config, num: int, seed: int) -> np.ndarray:
    """``num`` images of the run's test split (uint8), drawn without replacement by ``seed``
    (all of them, in file order, when the split has at most ``num``)."""
    from ssljax.data.datasets import spec_from_config
    from ssljax.data.input_pipeline import load_split_arrays

    spec = spec_from_config(config.dataset)
    images, _ = load_split_arrays(spec, spec.test_split, data_dir=config.dataset.get("data_dir"))
    if len(images) <= num:
        return images
    rows = np.sort(np.random.default_rng(seed).choice(len(images), size=num, replace=False))
    return images[rows]


def write_bigan_figures(
    workdir: str,
    out_dir: str | None = None,
    *,
    num: int = 64,
    seed: int = 0,
    columns: int = 8,
    step: int | None = None,
    overwrite: bool = True,
) -> dict[str, str]:
    """Writes ``bigan_samples.png`` and ``bigan_reconstructions.png`` into ``out_dir``.

    Args:
      workdir: a BiGAN pretraining workdir.
      out_dir: where the PNGs go (default: ``workdir``; created if missing).
      num: generated samples, and test images reconstructed.
      seed: the prior draws' key and the choice of test images.
      columns: images per grid row (the reconstruction grid alternates a row of ``x`` with
        the row of their ``G(E(x))``).
      step: the checkpoint step (default: the newest).
      overwrite: replace existing figures.

    Returns:
      ``{'samples': path, 'reconstructions': path}``.
    """
    from ssljax import io as wio
    from ssljax.evaluation import plots

    config, setup, state, step = load_bigan(workdir, step)
    out_dir = workdir if out_dir is None else out_dir
    wio.ensure_dir(out_dir)
    model, variables = setup.eval_model, network_variables(state)
    samples = generate_images(model, variables, prior_draws(setup.objective, num, seed))
    images = held_out_images(config, num, seed)
    recon = reconstruct_images(model, variables, images)
    paths = {
        "samples": wio.join(out_dir, SAMPLES_FILE),
        "reconstructions": wio.join(out_dir, RECONSTRUCTIONS_FILE),
    }
    plots.image_grid(
        samples,
        paths["samples"],
        columns=columns,
        title=f"BiGAN samples G(z), step {step}",
        overwrite=overwrite,
    )
    plots.image_grid(
        interleave_rows(images, recon, columns),
        paths["reconstructions"],
        columns=columns,
        title=f"BiGAN test images x (odd rows) and G(E(x)) (even rows), step {step}",
        overwrite=overwrite,
    )
    return paths


# ---------------------------------------------------------------------------------------------
# Energy-based models.

ENERGY_SAMPLES_FILE = "energy_samples.png"


def energy_samples(
    workdir: str,
    num: int = 64,
    seed: int = 0,
    *,
    num_steps: int = 500,
    step_size: float | None = None,
    step: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Images drawn from an energy checkpoint's model by unadjusted Langevin dynamics.

    ``num`` chains start from uniform noise in [0, 1] and take ``num_steps`` steps of
    ``x + (h / 2) score(x) + sqrt(h) z`` (``ssljax.energy.samplers.langevin``) on the learned
    energy, ``h = step_size`` (default: ``sigma^2 / 2`` of a score-matching run, the noise
    scale its score was learned at; the objective's own ``step_size`` for contrastive
    divergence); the result is clipped to [0, 1].

    Returns:
      ``(images float32 [num, H, W, C], {'step', 'step_size', 'num_steps', 'training'})``.
    """
    from ssljax.energy import samplers
    from ssljax.objectives.energy import energy_fn
    from ssljax.training.loop import restore_for_eval

    config, setup, state, step = restore_for_eval(workdir, step)
    objective = setup.objective
    if objective.name != "energy":
        raise ValueError(
            f"{workdir} was trained with objective {objective.name!r}; Langevin samples need "
            "objective 'energy'"
        )
    if step_size is None:
        score_matching = objective.training != "contrastive_divergence"
        step_size = 0.5 * float(objective.sigma) ** 2 if score_matching else objective.step_size
    shape = (int(num),) + tuple(setup.run.facts.image_shape)
    key, init_key = jax.random.split(jax.random.PRNGKey(seed))
    x0 = jax.random.uniform(init_key, shape, jnp.float32)
    fn = energy_fn(state.params, state.model_state, model=setup.eval_model)
    run = jax.jit(
        lambda k, x: samplers.langevin(
            k, x, energy_fn=fn, step_size=float(step_size), num_steps=int(num_steps)
        )
    )
    images = np.clip(np.asarray(run(key, x0), np.float32), 0.0, 1.0)
    info = {
        "step": int(step),
        "step_size": float(step_size),
        "num_steps": int(num_steps),
        "training": objective.training,
    }
    return images, info


def write_energy_figures(
    workdir: str,
    out_dir: str | None = None,
    *,
    num: int = 64,
    seed: int = 0,
    columns: int = 8,
    num_steps: int = 500,
    step: int | None = None,
    overwrite: bool = True,
) -> dict[str, str]:
    """Writes ``energy_samples.png`` (``energy_samples``) into ``out_dir`` (default: the
    workdir); returns ``{'samples': path}``."""
    from ssljax import io as wio
    from ssljax.evaluation import plots

    images, info = energy_samples(workdir, num, seed, num_steps=num_steps, step=step)
    out_dir = workdir if out_dir is None else out_dir
    wio.ensure_dir(out_dir)
    path = wio.join(out_dir, ENERGY_SAMPLES_FILE)
    plots.image_grid(
        images,
        path,
        columns=columns,
        title=f"energy model ({info['training']}), step {info['step']}: Langevin from noise, "
        f"{info['num_steps']} steps of h={info['step_size']:.2g}",
        overwrite=overwrite,
    )
    return {"samples": path}


def write_figures(workdir: str, out_dir: str | None = None, **kwargs) -> dict[str, str]:
    """``write_bigan_figures`` or ``write_energy_figures``, by the run's stored objective
    (one-line error for any other objective)."""
    from ssljax.training.checkpoint import read_workdir_config

    stored = read_workdir_config(workdir) or {}
    name = stored.get("objective", {}).get("name")
    if name == OBJECTIVE:
        kwargs.pop("num_steps", None)
        return write_bigan_figures(workdir, out_dir, **kwargs)
    if name == "energy":
        return write_energy_figures(workdir, out_dir, **kwargs)
    raise ValueError(
        f"{workdir} holds objective {name!r}; generative figures exist for 'bigan' and 'energy'"
    )
