"""Samples and reconstructions of a BiGAN checkpoint: a tiny run on the generated
Fashion-MNIST, then shapes, ranges, the checkpoint's parameters and the written figures."""

import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from ssljax import config_base
from ssljax.evaluation import generative as G
from ssljax.objectives.bigan import sample_prior
from ssljax.training.loop import build_setup, initial_state, restore_for_eval, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bigan_workdir(tiny_fashion_mnist, make_tiny_config, tmp_path_factory):
    """A 4-step BiGAN run of the tiny config (two-layer encoder, small generator and
    discriminator), checkpointed at its end."""
    c = make_tiny_config(tiny_fashion_mnist)
    c.objective = ml_collections.ConfigDict(
        dict(
            name="bigan",
            latent_dim=4,
            disc_x_widths=(4,),
            disc_z_hidden=(8,),
            disc_joint_hidden=(8,),
            disc_learning_rate=1e-2,
        )
    )
    del c.model["projector"]
    c.model.generator = ml_collections.ConfigDict(
        dict(start_shape=(7, 7, 8), widths=(4,), upsample=(4,), kernel_size=3, norm="batch")
    )
    config_base.adamw(c, 1e-2, weight_decay=0.0, warmup_steps=0)
    c.total_steps = 4
    c.eval_every_steps = 0
    workdir = str(tmp_path_factory.mktemp("bigan") / "run")
    result = train_and_evaluate(c, workdir, progress=False)
    assert result["status"] == "completed" and result["step"] == 4
    return workdir


def hand_apply(workdir, params_from=None):
    """``(eval model, variables)`` of the restored network, applied below without the
    module under test; ``params_from='init'`` takes the untrained parameters instead."""
    config, setup, state, _ = restore_for_eval(workdir)
    if params_from == "init":
        state = initial_state(config, build_setup(config))
    params = {k: v for k, v in state.params.items() if k != "discriminator"}
    return setup.eval_model, {"params": params, **state.model_state}


def test_samples_are_images_from_the_prior_seed(bigan_workdir):
    samples = G.bigan_samples(bigan_workdir, num=5, seed=3)
    assert samples.shape == (5, 28, 28, 1) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    np.testing.assert_array_equal(G.bigan_samples(bigan_workdir, num=5, seed=3), samples)
    assert not np.allclose(G.bigan_samples(bigan_workdir, num=5, seed=4), samples)
    # G(z) of the checkpoint's generator for the seed's prior draws, by hand.
    model, variables = hand_apply(bigan_workdir)
    z = sample_prior(jax.random.PRNGKey(3), (5, 4), "gaussian")
    want = model.apply(variables, z, train=False, method="generate")
    np.testing.assert_allclose(samples, want, rtol=1e-5, atol=1e-6)


def test_reconstructions_use_the_checkpoint(bigan_workdir, tiny_fashion_mnist):
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    recon = G.bigan_reconstructions(bigan_workdir, images)
    assert recon.shape == images.shape and recon.dtype == np.float32
    assert recon.min() >= 0.0 and recon.max() <= 1.0
    # Float images in [0, 1] are the same images.
    np.testing.assert_allclose(
        G.bigan_reconstructions(bigan_workdir, images / np.float32(255.0)), recon, atol=1e-6
    )
    model, variables = hand_apply(bigan_workdir)
    z = model.apply(variables, images / np.float32(255.0), train=False, method="encode")
    want = model.apply(variables, z, train=False, method="generate")
    np.testing.assert_allclose(recon, want, rtol=1e-5, atol=1e-6)
    # The trained parameters, not the initial ones, make them.
    model, init_variables = hand_apply(bigan_workdir, params_from="init")
    z0 = model.apply(init_variables, images / np.float32(255.0), train=False, method="encode")
    untrained = model.apply(init_variables, z0, train=False, method="generate")
    assert np.abs(np.asarray(untrained) - recon).max() > 1e-3


def test_interleave_rows_alternates_originals_and_reconstructions():
    x = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1) / 10
    r = x + 0.5
    grid = G.interleave_rows(x, r, columns=2)
    # Rows of 2: x0 x1 | r0 r1 | x2 x3 | r2 r3 | x4 white | r4 white.
    want = [0.0, 0.1, 0.5, 0.6, 0.2, 0.3, 0.7, 0.8, 0.4, 1.0, 0.9, 1.0]
    np.testing.assert_allclose(grid[:, 0, 0, 0], want, rtol=1e-6)
    with pytest.raises(ValueError, match="must be equal") as err:
        G.interleave_rows(x, r[:3], columns=2)
    assert "\n" not in str(err.value)


def test_figures_are_written_by_the_library_and_the_script(bigan_workdir, tmp_path):
    from PIL import Image

    paths = G.write_bigan_figures(bigan_workdir, str(tmp_path / "lib"), num=16, seed=0)
    assert paths == {
        "samples": str(tmp_path / "lib" / G.SAMPLES_FILE),
        "reconstructions": str(tmp_path / "lib" / G.RECONSTRUCTIONS_FILE),
    }
    # 8 columns of 28-pixel tiles with 2-pixel gaps, 4x scaled: (8 * 30 + 2) * 4 wide; the
    # reconstruction grid has twice the samples' rows.
    samples, recon = (Image.open(paths[k]) for k in ("samples", "reconstructions"))
    assert samples.size[0] == recon.size[0] == (8 * 30 + 2) * 4
    assert recon.size[1] - samples.size[1] == 2 * 30 * 4
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "experiments", "generative_figures.py"),
            f"--workdir={bigan_workdir}",
            f"--out={tmp_path / 'script'}",
            "--num=8",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    printed = out.stdout.split()
    assert printed == [
        str(tmp_path / "script" / G.SAMPLES_FILE),
        str(tmp_path / "script" / G.RECONSTRUCTIONS_FILE),
    ]
    assert all(os.path.getsize(p) > 0 for p in printed)


def test_a_workdir_without_a_checkpoint_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint") as err:
        G.bigan_samples(str(tmp_path))
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def energy_workdir(tiny_fashion_mnist, make_tiny_config, tmp_path_factory):
    """A 3-step denoising-score-matching run of the tiny config's encoder."""
    c = make_tiny_config(tiny_fashion_mnist)
    c.objective = config_base.objective("energy", sigma=0.2)
    del c.model["projector"]
    config_base.adamw(c, 1e-2, weight_decay=0.0, warmup_steps=0)
    c.total_steps = 3
    c.eval_every_steps = 0
    workdir = str(tmp_path_factory.mktemp("energy") / "run")
    assert train_and_evaluate(c, workdir, progress=False)["step"] == 3
    return workdir


def test_energy_samples_are_langevin_chains_on_the_checkpoint(energy_workdir, tmp_path):
    from ssljax.energy import samplers
    from ssljax.objectives.energy import energy_fn

    images, info = G.energy_samples(energy_workdir, num=6, seed=1, num_steps=5)
    assert images.shape == (6, 28, 28, 1) and images.min() >= 0.0 and images.max() <= 1.0
    assert info == {
        "step": 3,
        "step_size": pytest.approx(0.5 * 0.2**2),
        "num_steps": 5,
        "training": "denoising_score_matching",
    }
    again, _ = G.energy_samples(energy_workdir, num=6, seed=1, num_steps=5)
    np.testing.assert_array_equal(images, again)
    # By hand: the same chains on the restored energy, started from the same noise.
    _, setup, state, _ = restore_for_eval(energy_workdir)
    key, init_key = jax.random.split(jax.random.PRNGKey(1))
    x0 = jax.random.uniform(init_key, (6, 28, 28, 1))
    fn = energy_fn(state.params, state.model_state, model=setup.eval_model)
    hand = samplers.langevin(key, x0, energy_fn=fn, step_size=0.02, num_steps=5)
    # Jitted against eager: only the reduction order of the ConvNet's gradients differs, each
    # step moves x by h/2 * score (h = 0.02), so the difference stays far below 1e-4.
    np.testing.assert_allclose(images, np.clip(hand, 0, 1), rtol=0, atol=1e-4)
    assert np.abs(images - np.clip(np.asarray(x0), 0, 1)).max() > 1e-3  # the chains moved
    paths = G.write_figures(energy_workdir, str(tmp_path), num=8, num_steps=2)
    assert paths == {"samples": str(tmp_path / G.ENERGY_SAMPLES_FILE)}
    assert os.path.getsize(paths["samples"]) > 0


def test_figures_refuse_other_objectives(tmp_path):
    (tmp_path / "config.json").write_text('{"objective": {"name": "simclr"}}')
    with pytest.raises(ValueError, match="holds objective 'simclr'; generative figures") as err:
        G.write_figures(str(tmp_path))
    assert "\n" not in str(err.value)
