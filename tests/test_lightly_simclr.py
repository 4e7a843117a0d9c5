"""experiments/lightly_simclr.py: the torch port of the demo's ConvNet computes what ssljax's
computes, and a tiny timed run goes from data to ssljax's probe and its JSON report.

lightly is an optional extra, needed only for this peer comparison: without it the tests are
skipped. Everything torch runs in a child process: torchvision loads triton, whose LLVM
crashes a process that has TensorFlow loaded (as the test session has), so the test process
never imports torch or lightly (the skip asks ``find_spec``, which imports nothing).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import struct
import subprocess
import sys

import jax
import numpy as np
import pytest

from ssljax.models.convnet import ConvNet
from tests.tolerances import F32_EPS, assert_close, f32_reorder_rtol

if importlib.util.find_spec("lightly") is None or importlib.util.find_spec("torch") is None:
    pytest.skip("lightly (optional comparison extra) is not installed", allow_module_level=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "lightly_simclr.py")
WIDTHS, STRIDES = (32, 64, 128, 256), (2, 2, 1, 1)  # ssljax.config_base.demo_convnet
NUM_IMAGES = 8
# Roundings of one BatchNorm in eval mode, per implementation, relative to its terms: x - mean,
# rsqrt(var + eps) (a few ulps), the two products and the offset; two implementations differ
# by at most their sum. In units of F32_EPS (= 2 u).
BN_ULPS = 4.0

# Runs in a fresh process: loads the flax variables into the torch port and returns (NHWC)
# every block's map from the images; every block's output from ssljax's output of the block
# before it, with a worst-case float32 bound on its difference from any other float32
# evaluation of that block (computed in float64); block4 of a port whose kernels were copied
# with H and W swapped (a layout bug); and checks of the probe's input transform and of the
# cosine schedule.
CHILD = r"""
import copy, importlib.util, sys
import numpy as np

spec = importlib.util.spec_from_file_location("lightly_simclr", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

eps, bn_ulps = float(sys.argv[4]), float(sys.argv[5])
data = dict(np.load(sys.argv[2]))
variables = {"params": {}, "batch_stats": {}}
for key, value in data.items():
    if "/" in key:
        collection, layer, name = key.split("/")
        variables[collection].setdefault(layer, {})[name] = value
net = mod.TorchConvNet(tuple(data["widths"]), tuple(data["strides"])).eval()
mod.load_flax_convnet(net, variables)
nchw = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()
nhwc = lambda t: t.permute(0, 2, 3, 1).numpy()
x = nchw(data["x"])
out = {}
with torch.no_grad():
    for i, m in enumerate(net.feature_maps(x)):
        out[f"map{i + 1}"] = nhwc(m)
    wrong = copy.deepcopy(net)
    for block in wrong.blocks:
        block[0].weight.copy_(block[0].weight.transpose(2, 3).clone())
    out["wrong4"] = nhwc(wrong.feature_maps(x)[-1])
    net64 = copy.deepcopy(net).double()
    for i, (block, block64) in enumerate(zip(net.blocks, net64.blocks)):
        a = x if i == 0 else nchw(data[f"flax{i}"])
        out[f"step{i + 1}"] = nhwc(block(a))
        # One convolution of K = 9 C_in terms and one BatchNorm: |fl(c) - fl'(c)| <= K eps
        # conv(|a|, |W|) (f32_sum_tol), times the BN scale s = gamma / sqrt(var + eps_bn),
        # plus the BN roundings; ReLU does not increase a difference.
        conv, bn = block64[0], block64[1]
        a = a.double()
        k = conv.weight[0].numel()
        c = conv(a)
        size = F.conv2d(a.abs(), conv.weight.abs(), stride=conv.stride, padding=conv.padding)
        s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).abs().view(1, -1, 1, 1)
        m, b = bn.running_mean.abs().view(1, -1, 1, 1), bn.bias.abs().view(1, -1, 1, 1)
        bound = s * k * eps * size + bn_ulps * eps * ((c.abs() + m) * s + b)
        out[f"bound{i + 1}"] = nhwc(bound)
        out[f"k{i + 1}"] = np.asarray(k)
images = data["images"]
ref = torch.stack([T.Compose([T.ToTensor(), T.Normalize(**mod.GREY_NORMALIZE)])(
    Image.fromarray(im[:, :, 0])) for im in images])
out["input_diff"] = np.asarray((mod.to_input(images) - ref).abs().max().item())
out["cosine"] = np.asarray([mod.cosine_lr(t, 10.0) for t in (0.0, 5.0, 10.0, 20.0)])
np.savez(sys.argv[3], **out)
"""


def flax_convnet(seed: int = 0):
    """The demo's ConvNet with random kernels and BatchNorm scales, offsets and statistics
    (drawn into the shapes ``init`` traces, without running it), its images and block maps."""
    net = ConvNet(widths=WIDTHS, strides=STRIDES)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (NUM_IMAGES, 28, 28, 1), dtype=np.uint8)
    x = images.astype(np.float32) / 255.0  # as ssljax's encoder_feature_fn
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), x, train=False))
    variables = {"params": {}, "batch_stats": {}}
    for i, width in enumerate(WIDTHS):
        kernel = shapes["params"][f"conv{i + 1}"]["kernel"].shape  # HWIO
        fan_in = kernel[0] * kernel[1] * kernel[2]
        variables["params"][f"conv{i + 1}"] = {
            "kernel": rng.normal(0.0, fan_in**-0.5, kernel).astype(np.float32)
        }
        variables["params"][f"bn{i + 1}"] = {
            "scale": rng.uniform(0.5, 1.5, width).astype(np.float32),
            "bias": rng.normal(0.0, 0.2, width).astype(np.float32),
        }
        variables["batch_stats"][f"bn{i + 1}"] = {
            "mean": rng.normal(0.0, 0.2, width).astype(np.float32),
            "var": rng.uniform(0.05, 0.5, width).astype(np.float32),
        }
    assert jax.tree.map(np.shape, variables) == jax.tree.map(lambda a: a.shape, shapes)
    apply = jax.jit(lambda v, x: net.apply(v, x, train=False, mutable=["intermediates"])[1])
    sown = apply(variables, x)["intermediates"]
    maps = {k: np.asarray(v[-1]) for k, v in sown.items()}
    return variables, images, x, maps


@pytest.fixture(scope="module")
def ported(tmp_path_factory):
    """``(flax block maps, torch child's outputs)`` for the same variables and images."""
    tmp = tmp_path_factory.mktemp("lightly_port")
    variables, images, x, maps = flax_convnet()
    flat = {
        f"{col}/{layer}/{name}": value
        for col in ("params", "batch_stats")
        for layer, leaves in variables[col].items()
        for name, value in leaves.items()
    }
    np.savez(
        tmp / "in.npz",
        x=x,
        images=images,
        widths=np.asarray(WIDTHS),
        strides=np.asarray(STRIDES),
        **{f"flax{i + 1}": maps[f"block{i + 1}"] for i in range(len(WIDTHS) - 1)},
        **flat,
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            SCRIPT,
            str(tmp / "in.npz"),
            str(tmp / "out.npz"),
            repr(F32_EPS),
            repr(BN_ULPS),
        ],
        check=True,
        timeout=300,
    )
    return maps, dict(np.load(tmp / "out.npz"))


def test_torch_feature_maps_have_ssljax_shapes(ported):
    maps, torch_out = ported
    for i in range(len(WIDTHS)):
        assert torch_out[f"map{i + 1}"].shape == maps[f"block{i + 1}"].shape
    assert torch_out["map4"].shape == (NUM_IMAGES, 7, 7, 256)


def test_each_block_matches_ssljax_within_its_float32_bound(ported):
    """Block i of the port on ssljax's block i-1 output equals ssljax's block i elementwise
    within the worst-case bound of one reordered convolution plus BatchNorm roundings: the
    kernel layout, stride, padding and BatchNorm mapping of every layer, checked alone."""
    maps, torch_out = ported
    for i in range(len(WIDTHS)):
        flax_map = maps[f"block{i + 1}"].astype(np.float64)
        diff = np.abs(torch_out[f"step{i + 1}"] - flax_map)
        bound = torch_out[f"bound{i + 1}"]
        worst = np.unravel_index(np.argmax(diff - bound), diff.shape)
        assert np.all(diff <= bound), (
            f"block{i + 1}: |torch - flax| {diff[worst]:.3e} > bound {bound[worst]:.3e} at {worst}"
        )
        # K eps (sum of |terms|) stays far below the O(1) differences of a wrong layer.
        assert bound.max() < 1e-2 * np.abs(flax_map).max(), f"block{i + 1}: bound too loose"


def test_copied_parameters_give_ssljax_block4_features(ported):
    """From the same images, the port's block4 equals ssljax's within the float32 tolerance of
    the chain of its four convolutions (f32_reorder_rtol of their summed lengths, normwise);
    kernels copied with H and W swapped are far outside it."""
    maps, torch_out = ported
    chain = sum(int(torch_out[f"k{i + 1}"]) for i in range(len(WIDTHS)))  # 9+288+576+1152
    rtol = f32_reorder_rtol(chain)
    assert_close(torch_out["map4"], maps["block4"], rtol=rtol)
    wrong = np.abs(torch_out["wrong4"] - maps["block4"]).max()
    assert wrong > 100 * rtol * np.abs(maps["block4"]).max(), "a transposed-kernel port passes"


def test_probe_input_is_the_training_transform_and_cosine_schedule(ported):
    _, torch_out = ported
    # (x / 255 - mean) / std with mean and std of order 0.2-0.5: a few roundings of values < 3.
    assert float(torch_out["input_diff"]) <= 4 * F32_EPS * 3.0
    np.testing.assert_allclose(torch_out["cosine"], [0.06, 0.03, 0.0, 0.0], atol=1e-12)


def write_idx_gz(path, array: np.ndarray) -> None:
    """``array`` (uint8) in Fashion-MNIST's gzip-compressed idx format."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
        ">" + "I" * array.ndim, *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_tiny_timed_run_reports_ssljax_probe(tmp_path):
    """512 generated images (class c: a bright bar at rows 2c..2c+4), 2 s of pretraining
    with a snapshot at 0 s, ssljax's probe on both, the JSON report on stdout and in --out."""
    src = tmp_path / "fmnist"
    src.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 512), ("t10k", 128)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c + 2 : 2 * c + 6, 4:24] = 220
        write_idx_gz(src / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_gz(src / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    out = tmp_path / "report.json"
    env = dict(os.environ, SSLJAX_FASHION_MNIST_DIR=str(src))
    cmd = [sys.executable, SCRIPT, "--seconds", "2", "--probe_at", "0", "--batch_size", "64"]
    cmd += ["--data_dir", str(tmp_path / "tfds"), "--out", str(out), "--no_knn"]
    cmd += ["--log_every", "0"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == json.loads(out.read_text())
    assert report["seconds"] == 2.0 and report["seconds_elapsed"] >= 2.0
    assert report["steps"] >= 1
    assert report["steps_per_second"] == pytest.approx(report["steps"] / report["seconds_elapsed"])
    grid = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)  # configs/simclr.py:fashion_mnist's eval.l2_grid
    assert set(report["val_top1"]) == {str(v) for v in grid}
    assert report["l2"] in grid
    assert 0.0 <= report["top1"] <= 1.0
    assert report["num_train"] == 512 and report["num_test"] == 128
    assert [p["probe_at"] for p in report["probes"]] == [0.0, 2.0]
    assert report["probes"][0]["steps"] == 0
    assert report["probes"][-1]["top1"] == report["top1"]
    assert all(p["feature_dim"] == 2304 and p["layer"] == "block4" for p in report["probes"])
    assert report["versions"]["lightly"] and report["versions"]["torch"]
    assert report["machine"]["cpu"]
