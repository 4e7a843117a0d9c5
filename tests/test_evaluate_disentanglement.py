"""``python -m ssljax.evaluate_disentanglement`` end to end on a tiny dSprites run, and its pieces.

A tiny VAE is pretrained for two steps through the real loop on a slice of the dSprites TFDS
split (prepared by the real builder), then evaluated from its checkpoint with every metric of
the suite at reduced sample counts: the JSON report and the three figures must be written.
"""

import json
import math
import os

import numpy as np
import pytest

from ssljax.data import dsprites
from ssljax.evaluation import disentanglement as dis
from ssljax.evaluation.disentanglement import checkpoint_eval as ed
from tests.tolerances import assert_close, f32_sum_tol

FIRST, LAST = 100_000, 100_256


def small_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(FIRST, LAST)}


def tiny_vae_config(data_dir):
    from ssljax import config_base

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    c = config_base.load_config(os.path.join(root, "configs", "vae.py") + ":dsprites")
    c.dataset.data_dir = data_dir
    c.batch_size = 16
    c.total_steps = 2
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
    c.model.encoder_kwargs.widths = (4, 4)
    c.model.encoder_kwargs.kernel_sizes = (4, 4)
    c.model.encoder_kwargs.strides = (4, 4)
    c.model.encoder_kwargs.hidden = 16
    c.model.encoder_kwargs.latent_dim = 3
    c.model.vae_decoder.hidden = 16
    c.model.vae_decoder.start_shape = (4, 4, 4)
    c.model.vae_decoder.widths = (4,)
    c.model.vae_decoder.stride = 4
    c.optimizer.base_learning_rate = 1e-3
    return c


TINY_SCORES = dict(num_train=10, num_eval=5, batch_size=8)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """``(workdir, report)`` of a 2-step tiny VAE evaluated with every metric."""
    from ssljax.training.loop import train_and_evaluate

    mp = pytest.MonkeyPatch()
    mp.setattr(dsprites.DSpritesBuilder, "_split_generators", small_generators)
    try:
        data_dir = str(tmp_path_factory.mktemp("tfds"))
        workdir = str(tmp_path_factory.mktemp("vae_run"))
        result = train_and_evaluate(tiny_vae_config(data_dir), workdir, progress=False)
        assert result["status"] == "completed" and result["step"] == 2
    finally:
        mp.undo()
    report = ed.evaluate_workdir(
        workdir,
        num_train=40,
        num_test=20,
        overrides={
            "beta_vae": TINY_SCORES,
            "factor_vae": dict(TINY_SCORES, num_variance_estimate=100),
        },
        embedding_points=100,
        statistics_points=64,
    )
    return workdir, report


def test_report_holds_every_metric_and_is_written_atomically(evaluated):
    workdir, report = evaluated
    with open(os.path.join(workdir, ed.REPORT_FILE)) as f:
        on_disk = json.load(f)
    assert on_disk == json.loads(json.dumps(report))
    assert not os.path.exists(os.path.join(workdir, ed.REPORT_FILE + ".tmp"))
    assert set(report["metrics"]) == set(dis.METRICS)
    assert report["checkpoint_step"] == 2 and report["objective"] == "vae"
    # The reduced counts were used (and recorded); downstream sizes capped at num_train.
    assert report["settings"]["mig"]["num_train"] == 40
    assert report["settings"]["dci"]["num_test"] == 20
    assert report["settings"]["beta_vae"]["num_train"] == 10
    assert report["settings"]["downstream_logistic_regression"]["num_train"] == [10]
    summary = report["summary"]
    for key in (
        "beta_vae",
        "factor_vae",
        "mig",
        "dci_disentanglement",
        "sap",
        "modularity",
        "explicitness",
        "irs",
        "lr10_accuracy",
        "gbt10_accuracy",
    ):
        assert 0.0 <= summary[key] <= 1.0, key
    # Latent statistics of the 3-latent VAE: KL per latent sums to the KL, recon in nats.
    latents = report["latents"]
    assert len(latents["kl_per_latent"]) == 3
    # Sums of positive terms in two orders: means over the 64 images, sums over 3 latents.
    assert sum(latents["kl_per_latent"]) == pytest.approx(latents["kl"], rel=f32_sum_tol(64 + 3))
    assert 0 <= summary["active_units"] <= 3
    assert 0 < summary["reconstruction_nll"] < 4096 * math.log(2) * 2


def test_figures_are_written_as_png(evaluated):
    workdir, report = evaluated
    assert report["figures"] == list(ed.FIGURE_FILES)
    for name in ed.FIGURE_FILES:
        with open(os.path.join(workdir, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name


def test_representation_is_the_posterior_mean(evaluated):
    from ssljax.evaluation.checkpoint_eval import encoder_of
    from ssljax.training.loop import restore_for_eval

    workdir, _ = evaluated
    config, setup, state, _ = restore_for_eval(workdir)
    encoder, variables = encoder_of(setup, state.params, state.model_state)
    represent = ed.representation_fn(encoder, variables, batch_size=8)
    images = dsprites.render_images(np.arange(13)).astype(np.float32)  # 13: padded last chunk
    mean, _ = setup.eval_model.apply({"params": state.params}, images, train=False, method="encode")
    # Chunks of 8 against 13 images may reorder conv1 (4 x 4), conv2 (4 x 4 x 4), dense (64),
    # heads (16).
    assert_close(represent(images), mean, rtol=f32_sum_tol(16 + 64 + 64 + 16))


def test_sample_overrides_and_summary():
    o = ed.sample_overrides(1000, 300)
    assert o["beta_vae"] == dict(num_train=1000, num_eval=300)
    assert o["factor_vae"]["num_variance_estimate"] == 1000
    assert o["downstream_gradient_boosting"]["num_train"] == (10, 100, 1000)
    assert ed.sample_overrides(5)["downstream_logistic_regression"]["num_train"] == (5,)
    assert ed.sample_overrides() == {}
    with pytest.raises(ValueError, match="num_test=0 is invalid"):
        ed.sample_overrides(10, 0)
    summary = ed.summary_scores(
        {
            "mig": {"discrete_mig": 0.25},
            "dci": {"disentanglement": 0.5, "completeness": 0.4, "informativeness_test": 0.9},
            "downstream_logistic_regression": {
                "10:mean_test_accuracy": 0.2,
                "100:mean_test_accuracy": 0.4,
                "statistical_efficiency": 0.5,
            },
        }
    )
    assert summary == {
        "mig": 0.25,
        "dci_disentanglement": 0.5,
        "dci_completeness": 0.4,
        "dci_informativeness": 0.9,
        "lr100_accuracy": 0.4,
        "lr_efficiency": 0.5,
    }


def test_latent_statistics_and_reconstruction_errors():
    mean = np.array([[0.0, 1.0], [0.0, -1.0]])  # latent 0 never varies: inactive
    log_var = np.zeros((2, 2))
    stats = ed.latent_statistics(mean, log_var)
    np.testing.assert_allclose(stats["kl_per_latent"], [0.0, 0.5])
    assert stats["active_units"] == 1 and stats["kl"] == pytest.approx(0.5)
    images = np.array([[1.0, 0.0]]).reshape(1, 1, 2, 1)
    logits = np.array([[2.0, 1.0]]).reshape(1, 1, 2, 1)
    err = ed.reconstruction_errors(images, logits, likelihood="bernoulli", gaussian_std=1.0)
    want = -(math.log(1 / (1 + math.exp(-2.0))) + math.log(1 - 1 / (1 + math.exp(-1.0))))
    assert err["nll"] == pytest.approx(want)
    assert err["pixel_error"] == 0.5  # the second pixel is on the wrong side of 0.5


def test_traversal_grid_changes_only_the_traversed_latent():
    codes = np.random.default_rng(0).normal(size=(100, 3))
    seen = []
    grid = ed.traversal_grid(
        lambda z: (seen.append(z.copy()) or z)[:, None, None, :1],
        codes[0],
        codes,
        order=[2, 0],
        steps=5,
    )
    assert grid.shape == (2, 5, 1, 1, 1)
    z = seen[0]
    np.testing.assert_allclose(z[:, :2], np.repeat(codes[0][None, :2], 5, axis=0), rtol=1e-6)
    lo, hi = np.quantile(codes[:, 2], [0.02, 0.98])
    np.testing.assert_allclose(z[:, 2], np.linspace(lo, hi, 5), rtol=1e-6)


def test_errors_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint in"):
        ed.evaluate_workdir(str(tmp_path))
    with pytest.raises(ValueError, match="unknown disentanglement metric 'migg'"):
        ed.evaluate_workdir(str(tmp_path), metrics=["migg"])
    with pytest.raises(ValueError, match="num_train=-3 is invalid"):
        ed.evaluate_workdir(str(tmp_path), num_train=-3)
