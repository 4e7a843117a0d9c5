"""Samples and reconstructions of a BiGAN checkpoint (Donahue, Krahenbuhl & Darrell 2017).

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
    import ssljax.objectives.bigan  # noqa: F401  (registers 'bigan' for the stored config)
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
