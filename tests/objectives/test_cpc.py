"""CPC: the loss against a numpy transcription, multi-device equality, causality, configs, a run."""

import json
import math
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ssljax import objectives, parallel
from ssljax.models import ConvNet
from ssljax.models.cpc import ContextNetwork, CPCNetwork
from ssljax.models.patches import PatchGridEncoder
from ssljax.objectives import CPC, DatasetFacts, Run, cpc_loss
from tests.tolerances import assert_close, f32_sum_tol


def numpy_cpc(pred, tgt):
    """InfoNCE of CPC with explicit loops: positive k rows below, all patches as candidates."""
    pred, tgt = np.asarray(pred, np.float64), np.asarray(tgt, np.float64)
    steps, n, rows, cols, _ = pred.shape
    total, correct, count = 0.0, 0, 0
    for k in range(1, steps + 1):
        for b in range(n):
            for i in range(rows - k):
                for j in range(cols):
                    scores = [
                        pred[k - 1, b, i, j] @ tgt[bb, ii, jj]
                        for bb in range(n)
                        for ii in range(rows)
                        for jj in range(cols)
                    ]
                    pos = (b * rows + i + k) * cols + j
                    log_norm = math.log(sum(math.exp(s) for s in scores))
                    total += log_norm - scores[pos]
                    correct += int(np.argmax(scores) == pos)
                    count += 1
    return total / count, correct / count


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(2, 3, 4, 3, 5))
    tgt = rng.normal(size=(3, 4, 3, 5))
    # Make some predictions right, so the accuracy is neither 0 nor 1.
    pred[0, :, :3] += 3 * tgt[:, 1:]
    loss, acc = cpc_loss(jnp.asarray(pred, jnp.float32), jnp.asarray(tgt, jnp.float32))
    ref_loss, ref_acc = numpy_cpc(pred, tgt)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-5)
    assert float(acc) == pytest.approx(ref_acc, abs=1e-6)
    assert 0.0 < ref_acc < 1.0


def test_pinned_values():
    # Zero predictions score every candidate alike: loss = log(number of patches), exactly.
    tgt = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 3, 4)), jnp.float32)
    loss, _ = cpc_loss(jnp.zeros((2, 2, 3, 3, 4)), tgt)
    assert float(loss) == pytest.approx(math.log(2 * 3 * 3), rel=1e-6)
    # One-hot patch codes predicted exactly and scaled up: loss -> 0, accuracy 1.
    codes = jnp.eye(18).reshape(2, 3, 3, 18)
    pred = jnp.stack([jnp.pad(codes[:, k:], ((0, 0), (0, k), (0, 0), (0, 0))) for k in (1, 2)])
    loss, acc = cpc_loss(30.0 * pred, codes)
    assert float(loss) < 1e-6 and float(acc) == 1.0


def test_shape_errors():
    with pytest.raises(ValueError, match=r"prediction steps K=3 < grid rows 3"):
        cpc_loss(jnp.zeros((3, 1, 3, 3, 2)), jnp.zeros((1, 3, 3, 2)))
    with pytest.raises(ValueError, match="do not match"):
        cpc_loss(jnp.zeros((1, 1, 3, 3, 2)), jnp.zeros((1, 3, 4, 2)))


@pytest.mark.parametrize("driver", ["shard_map", "pmap"])
def test_multi_device_loss_and_grads_equal_single_device(driver):
    n_dev = jax.device_count()
    assert n_dev == 8
    rng = np.random.default_rng(2)
    pred = jnp.asarray(rng.normal(size=(2, 16, 3, 2, 4)), jnp.float32)
    tgt = jnp.asarray(rng.normal(size=(16, 3, 2, 4)), jnp.float32)
    ref_loss, ref_grads = jax.value_and_grad(lambda p, t: cpc_loss(p, t)[0], argnums=(0, 1))(
        pred, tgt
    )
    _, ref_acc = cpc_loss(pred, tgt)

    def per_device(p, t):
        (loss, acc), grads = jax.value_and_grad(
            lambda a, b: cpc_loss(a, b, axis_name="batch"), argnums=(0, 1), has_aux=True
        )(p, t)
        # Per-device means over equal counts: the global loss is the device mean.
        return (
            jax.lax.pmean(loss, "batch"),
            jax.lax.pmean(acc, "batch"),
            jax.tree.map(lambda g: g / n_dev, grads),
        )

    if driver == "shard_map":
        mesh = parallel.make_mesh()
        fn = jax.jit(
            jax.shard_map(
                per_device,
                mesh=mesh,
                in_specs=(P(None, "batch"), P("batch")),
                out_specs=(P(), P(), (P(None, "batch"), P("batch"))),
                check_vma=False,
            )
        )
        loss, acc, grads = fn(pred, tgt)
    else:
        fn = jax.pmap(per_device, axis_name="batch", in_axes=(1, 0))
        loss, acc, grads = fn(pred.reshape(2, 8, 2, 3, 2, 4), tgt.reshape(8, 2, 3, 2, 4))
        loss, acc = loss[0], acc[0]
        grads = (jnp.moveaxis(grads[0], 0, 1).reshape(pred.shape), grads[1].reshape(tgt.shape))
    # Reordered chain: dot products over d=4, log-sum-exp over the 96 patch embeddings of
    # the batch, mean over the 96 predictions; scores are unnormalised, so their scale is
    # d * max|pred| * max|tgt|.
    scale = 4 * float(jnp.max(jnp.abs(pred)) * jnp.max(jnp.abs(tgt)))
    tol = f32_sum_tol(4 + 2 * 96, magnitude=scale)
    assert_close(loss, ref_loss, rtol=tol)
    assert float(acc) == pytest.approx(float(ref_acc), abs=1e-6)  # a count: exact
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, rtol=tol)


def test_context_network_is_causal_over_rows():
    net = ContextNetwork(width=8, num_blocks=2, kernel_size=(2, 3))
    grid = jnp.asarray(np.random.default_rng(3).normal(size=(1, 5, 4, 3)), jnp.float32)
    variables = net.init(jax.random.PRNGKey(0), grid)
    # d c[0, i] / d z[0, r] is exactly zero for every row r > i and not for r <= i
    # (two blocks with 2-row kernels reach two rows up).
    jac = jax.jacrev(lambda z: net.apply(variables, z))(grid)[0, :, :, :, 0]  # [5,4,8, 5,4,3]
    reach = np.abs(np.asarray(jac)).sum(axis=(1, 2, 4, 5))  # [row of c, row of z]
    for i in range(5):
        assert np.all(reach[i, i + 1 :] == 0.0), i
        assert np.all(reach[i, max(0, i - 2) : i + 1] > 0.0), i


def _tiny_cpc_network(directions=4):
    encoder = PatchGridEncoder(
        encoder=ConvNet(widths=(4, 6), strides=(1, 2), norm="layer"), patch_size=4, patch_stride=2
    )
    return CPCNetwork(
        encoder=encoder,
        context=ContextNetwork(width=8, num_blocks=1),
        prediction_steps=2,
        directions=directions,
    )


def test_cpc_network_predictions_only_see_rows_above():
    # Image 10x10, patches 4 at stride 2 -> 4x4 grid. Grid row i covers image rows
    # 2i .. 2i+3, so predictions from row i (top->bottom) cannot depend on image rows >= 2i+4.
    net = _tiny_cpc_network()
    x = jnp.asarray(np.random.default_rng(4).uniform(size=(2, 10, 10, 1)), jnp.float32)
    variables = net.init(jax.random.PRNGKey(0), x, train=False)
    out = net.apply(variables, x, train=True)
    assert len(out["predictions"]) == 4 and out["features"].shape == (2, 6)
    assert out["predictions"][0].shape == (2, 2, 4, 4, 6)
    for r in range(4):
        np.testing.assert_array_equal(out["targets"][r], jnp.rot90(out["grid"], r, axes=(1, 2)))
    x2 = x.at[:, 6:].set(0.5)  # changes grid rows >= 2 (image rows >= 6 = 2*1 + 4)
    out2 = net.apply(variables, x2, train=True)
    np.testing.assert_array_equal(out["predictions"][0][:, :, :2], out2["predictions"][0][:, :, :2])
    assert not np.allclose(out["predictions"][0][:, :, 2:], out2["predictions"][0][:, :, 2:])
    # Bottom->top (rotation 2) predictions from the rotated grid's top rows do see them.
    assert not np.allclose(out["predictions"][2][:, :, :2], out2["predictions"][2][:, :, :2])
    # Image columns 0..3 only reach grid columns 0 and 1: right->left predictions (rotation 1)
    # from the two rightmost columns ignore them, left->right ones (rotation 3) do not.
    x3 = x.at[:, :, :4].set(0.5)
    out3 = net.apply(variables, x3, train=True)
    np.testing.assert_array_equal(out["predictions"][1][:, :, :2], out3["predictions"][1][:, :, :2])
    assert not np.allclose(out["predictions"][3][:, :, :2], out3["predictions"][3][:, :, :2])


def _cpc_config(data_dir=None):
    from ssljax import config_base

    c = config_base.load_config(
        str(Path(__file__).parents[2] / "configs" / "cpc.py") + ":fashion_mnist"
    )
    c.batch_size = 16
    c.total_steps = 3
    c.dataset.data_dir = data_dir
    c.model.encoder_kwargs.widths = (4, 8)
    c.model.encoder_kwargs.strides = (1, 2)
    c.model.context.width = 8
    c.model.context.num_blocks = 1
    c.objective.prediction_steps = 2
    c.objective.patch_flip_prob = 0.5
    c.optimizer.warmup_steps = 1
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
    c.eval.grid = 2
    c.eval.batch_size = 32
    c.eval.l2_grid = (1e-4, 1e-2)
    c.eval.knn_k = 5
    return c


FASHION_MNIST = DatasetFacts(
    name="fashion_mnist", image_shape=(28, 28, 1), num_examples=60000, num_classes=10
)


def check(config):
    """Builds the objective of ``config`` and runs its checks against Fashion-MNIST's facts."""
    objective = objectives.build(config.objective)
    objective.check(Run.from_config(config, FASHION_MNIST))
    return objective


def test_registry_and_bad_configs_fail_in_one_line():
    assert "cpc" in objectives.names()
    assert objectives.get("cpc") is CPC
    config = _cpc_config()
    assert check(config) == CPC(prediction_steps=2, directions=4, patch_flip_prob=0.5)
    config.model.patches.size = 40
    with pytest.raises(ValueError, match=r"size=40.*28x28") as err:
        check(config)
    assert "\n" not in str(err.value)
    config = _cpc_config()
    config.objective.prediction_steps = 6  # the 28x28 image gives a 6x6 grid
    with pytest.raises(ValueError, match=r"prediction_steps=6 must be smaller than the 6x6") as err:
        check(config)
    assert "\n" not in str(err.value)
    config.objective.directions = 3
    with pytest.raises(
        ValueError, match=r"unknown objective.directions 3; choose one of \[1, 2, 4\]"
    ):
        check(config)
    config = _cpc_config()
    del config.model["patches"]
    with pytest.raises(ValueError, match="model.patches"):
        check(config)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(prediction_steps=0),
            r"objective.prediction_steps=0 is invalid; valid: an integer >= 1",
        ),
        (dict(prediction_steps=2.5), r"objective.prediction_steps=2.5 is invalid"),
        (
            dict(patch_flip_prob=1.5),
            r"objective.patch_flip_prob=1.5 is invalid; valid: 0.0 <= "
            r"patch_flip_prob <= 1.0",
        ),
        (dict(patch_color_drop_prob=-0.1), r"objective.patch_color_drop_prob=-0.1 is invalid"),
    ],
)
def test_bad_hyperparameters_fail_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        CPC(**kwargs)
    assert "\n" not in str(err.value)


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(ValueError) as err:
        CPC.from_config({"name": "cpc", "prediction_step": 3})
    assert str(err.value) == (
        "unknown key objective.prediction_step for objective 'cpc'; valid keys: "
        "prediction_steps, directions, patch_flip_prob, patch_color_drop_prob"
    )


def test_defaults_and_old_configs_load_with_the_same_values():
    """Every CPC objective stored before the typed objectives loads, with the same values, so
    stored runs resume; a missing key takes its default."""
    assert CPC() == CPC(
        prediction_steps=3, directions=4, patch_flip_prob=0.0, patch_color_drop_prob=0.0
    )
    old = json.load(open(Path(__file__).parents[1] / "data" / "configs_before_redesign.json"))
    stored = {k: c["objective"] for k, c in old.items() if c["objective"]["name"] == "cpc"}
    assert set(stored) == {"cpc_cifar10", "cpc_fashion_mnist", "cpc_imagenet2012"}
    for objective in stored.values():
        loaded = objectives.build(objective)
        assert isinstance(loaded, CPC)
        assert loaded.hyperparameters() == objective
    assert objectives.build({"name": "cpc"}) == CPC()


def test_views_are_patch_grids_with_per_patch_flips():
    from ssljax.objectives.cpc import augment_patches

    config = _cpc_config()
    objective, run = objectives.build(config.objective), Run.from_config(config, FASHION_MNIST)
    images = jnp.asarray(np.random.default_rng(5).integers(0, 255, (4, 28, 28, 1)), jnp.uint8)
    make_views = jax.jit(lambda r, x: objective.make_views(r, x, run))
    (patches,) = make_views(jax.random.PRNGKey(0), images)
    assert patches.shape == (4, 6, 6, 8, 8, 1) and patches.dtype == jnp.float32
    rgb = jnp.asarray(np.random.default_rng(6).uniform(size=(2, 3, 3, 4, 4, 3)), jnp.float32)
    flipped = augment_patches(jax.random.PRNGKey(1), rgb, flip_prob=1.0)
    np.testing.assert_array_equal(flipped, rgb[:, :, :, :, ::-1])
    dropped = augment_patches(jax.random.PRNGKey(1), rgb, color_drop_prob=1.0)
    kept = np.asarray(jnp.any(dropped != 0, axis=(3, 4)))  # [2, 3, 3, channels]
    assert np.all(kept.sum(-1) == 1)  # one channel survives in every patch


def test_objective_loss_is_the_mean_over_directions():
    """``CPC.loss`` on the model's outputs: the mean of ``cpc_loss`` over the four directions,
    with the per-direction losses and the mean accuracy as metrics."""
    from ssljax.models.cpc import DIRECTION_NAMES, ROTATIONS
    from ssljax.objectives import LossContext

    config = _cpc_config()
    objective, run = objectives.build(config.objective), Run.from_config(config, FASHION_MNIST)
    model = objective.build_model(run, None)
    images = jnp.asarray(np.random.default_rng(7).integers(0, 255, (4, 28, 28, 1)), jnp.uint8)
    views = objective.make_views(jax.random.PRNGKey(0), images, run)
    variables = jax.jit(lambda v: model.init(jax.random.PRNGKey(1), v, train=False))(views[0])
    params = variables.pop("params")
    ctx = LossContext(model=model, state=None, batch={"image": images}, axis_name=None, run=run)
    loss, aux = jax.jit(lambda p: objective.loss(p, variables, views, jax.random.PRNGKey(2), ctx))(
        params
    )
    out = jax.jit(
        lambda p: model.apply(
            {"params": p, **variables}, views[0], train=True, mutable=list(variables)
        )[0]
    )(params)
    losses, accuracies = zip(*(cpc_loss(p, t) for p, t in zip(out["predictions"], out["targets"])))
    assert_close(loss, np.mean(losses), rtol=1e-5)
    assert_close(aux.metrics["cpc_accuracy"], np.mean(accuracies), rtol=1e-6)
    for rotation, want in zip(ROTATIONS[4], losses):
        assert_close(aux.metrics[f"loss_{DIRECTION_NAMES[rotation]}"], want, rtol=1e-5)
    np.testing.assert_allclose(aux.outputs.embedding, out["features"], rtol=1e-5, atol=1e-6)


def test_tiny_cpc_run_then_linear_eval(tiny_fashion_mnist, tmp_path):
    from ssljax.evaluation.checkpoint_eval import evaluate_workdir
    from ssljax.training.loop import train_and_evaluate

    config = _cpc_config(tiny_fashion_mnist)
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(config, workdir, progress=False)
    assert result["status"] == "completed" and result["step"] == 3
    metrics = result["last_metrics"]
    assert np.isfinite(metrics["loss"]) and 0.0 <= metrics["cpc_accuracy"] <= 1.0
    assert {"loss_top_to_bottom", "loss_left_to_right", "effective_rank"} <= set(metrics)
    report = evaluate_workdir(workdir)
    on_disk = json.load(open(os.path.join(workdir, "linear_eval.json")))
    assert on_disk["checkpoint_step"] == report["checkpoint_step"] == 3
    assert on_disk["objective"] == "cpc" and on_disk["layer"] == "grid"
    assert on_disk["feature_dim"] == 2 * 2 * 8  # 'grid' pooled to 2x2, 8-d patch features
    for key in ("top1", "top5"):
        assert 0.0 <= on_disk[key] <= 1.0 and 0.0 <= on_disk["random_init"][key] <= 1.0
