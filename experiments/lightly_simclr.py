"""lightly's SimCLR recipe on Fashion-MNIST for a fixed wall-clock budget, probed as ssljax's demo.

The peer of ``make demo`` in an equal-seconds comparison: a user of lightly
(https://github.com/lightly-ai/lightly, Susmelj et al. 2020) who runs its SimCLR (Chen et al.
2020) example with the library's defaults, on the demo's ConvNet, for ``--seconds`` of
pretraining; then the very probe ``ssljax.linear_eval`` runs on the demo's checkpoint.

  python experiments/lightly_simclr.py --seconds 600 --probe_at 0,300 --out runs/lightly_600.json

What is lightly's (``examples/pytorch/simclr.py`` and docs tutorial 3,
``tutorial_simclr_clothing.py``; lightly 1.6.0 installed):

* ``SimCLRProjectionHead(256, 512, 128)``: the example's ``(512, 512, 128)`` with the input
  width of this backbone (256) instead of ResNet-18's 512; hidden 512 and output 128 as the
  example (and as ssljax's demo projector). Linear -> BatchNorm1d -> ReLU -> Linear.
* ``NTXentLoss()``: temperature 0.5, its default, as in the example and the tutorial.
* ``SimCLRTransform(input_size=28, gaussian_blur=0.0, normalize=GREY_NORMALIZE)`` (``--transform
  example``): the example's CIFAR-10 transform ``SimCLRTransform(input_size=32,
  gaussian_blur=0.0)`` at Fashion-MNIST's size. Everything else stays the default: random
  resized crop of scale (0.08, 1), horizontal flip 0.5, colour jitter with probability 0.8
  (brightness 0.8, contrast 0.8, saturation 0.8, hue 0.2), random grey 0.2.
  ``--transform tutorial`` is the tutorial's ``SimCLRTransform(input_size=28, vf_prob=0.5,
  rr_prob=0.5)`` (blur 0.5 with sigma in (0.1, 2), vertical flips, 90-degree rotations).
* ``torch.optim.SGD(lr=0.06, momentum=0.9, weight_decay=5e-4)`` with cosine annealing to zero
  (``--optimizer tutorial``, the default): the tutorial's optimizer and its
  ``CosineAnnealingLR`` over the whole run. A wall-clock budget has no epoch count, so the
  cosine runs over the budget: ``lr = 0.06 * (1 + cos(pi * elapsed / seconds)) / 2``, set
  before every step. ``--optimizer example`` is the example's ``SGD(lr=0.06)``: no momentum,
  no weight decay, constant rate.
* batch 256, ``DataLoader(shuffle=True, drop_last=True, num_workers=<cores>)`` as the example
  (which uses 8 workers on a GPU machine; a user sets the machine's cores), new epochs until
  the budget is spent. ``torch.set_num_threads`` stays at torch's default (the machine's
  cores): neither the example nor the tutorial sets it, so the loader's workers and torch's
  compute threads share the cores as they would for that user.

Deviations that the data forces, and why:

* 28x28 single-channel images: ``input_size=28``; the ConvNet's first convolution reads one
  channel (as ssljax's), so both libraries train the same network.
* ``normalize=GREY_NORMALIZE`` (mean 0.449, std 0.226: the averages of lightly's
  ``IMAGENET_NORMALIZE`` over its three channels). With the default three-channel
  ``IMAGENET_NORMALIZE``, torchvision's (v2) ``Normalize`` broadcasts a grey ``[1, H, W]``
  view into three differently scaled copies ``[3, H, W]``, which a one-channel network cannot
  read; the same normalisation is applied when features are extracted.
* Colour jitter's saturation and hue, and random grey, do nothing to grey images (PIL mode
  ``'L'``): left on, as a lightly user's call would leave them.
* The backbone: a torch port of ``ssljax.models.convnet.ConvNet`` with the demo's settings
  (``ssljax.config_base.demo_convnet``: widths 32-64-128-256, strides 2, 2, 1, 1, 3x3
  convolutions without bias, symmetric padding 1, BatchNorm (momentum 0.1 in torch's
  convention = ssljax's 0.9, eps 1e-5), ReLU, global average pooling to 256-d) instead of the
  example's ResNet-18, with torch's default initialisation.

The clock (``seconds``) starts just before the first batch is requested from the loader, as
ssljax's ``train_and_evaluate`` starts it before its first ``next(data)``: worker start-up, data
loading and augmentation of every epoch are inside it. It is read after every step, and
training stops at the first step that ends at or after ``--seconds`` (``seconds_elapsed`` says
by how much it ran over). ``--probe_at`` snapshots the backbone (weights and BatchNorm running
statistics) at the first step ending at or after each listed time (0: the initialisation),
so one run also reports earlier budgets; under the cosine schedule such a snapshot is taken
mid-schedule, not the end of a shorter run.

After the budget (not timed): the backbone in eval mode computes ``eval.layer`` (block4,
``[N, 7, 7, 256]``) of the 60,000 train and 10,000 test images, read with ssljax's own loader
(``load_split_arrays``) exactly as the demo's evaluation reads them; ssljax's
``spatial_pool`` pools them to ``eval.grid`` (3x3: 2,304 features) and
``ssljax.evaluation.checkpoint_eval.evaluate_features`` runs the probe ``linear_eval`` runs
(standardise, L-BFGS multinomial logistic regression, L2 from ``eval.l2_grid`` chosen on a
held-out ``eval.val_fraction`` of train with seed 0, refit on all of train; weighted kNN) with
the ``eval`` settings of ``configs/simclr.py:fashion_mnist``.

Prints one JSON line (and writes it to ``--out``, never over an existing file).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# torchvision (imported by lightly's modules) loads triton's LLVM, which crashes the process
# when TensorFlow's LLVM is already loaded (torch 2.14, tensorflow-cpu 2.21): these come before
# anything that imports TensorFlow (ssljax's data loader does).
import lightly  # noqa: E402
import lightly.loss  # noqa: E402
import lightly.models.modules  # noqa: E402
import lightly.transforms  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(ROOT, "configs", "simclr.py") + ":fashion_mnist"

# lightly.transforms.utils.IMAGENET_NORMALIZE averaged over its three channels.
GREY_NORMALIZE = {"mean": [0.449], "std": [0.226]}
OPTIMIZERS = ("tutorial", "example")
TRANSFORMS = ("example", "tutorial")
BASE_LR = 0.06


# --------------------------------------------------------------------------
# The demo's ConvNet in torch
# --------------------------------------------------------------------------


class TorchConvNet(nn.Module):
    """``ssljax.models.convnet.ConvNet`` (batch norm) in torch: ``Conv -> BN -> ReLU`` blocks
    (3x3 by default, no bias, symmetric ``kernel_size // 2`` padding), then global average
    pooling. Images are NCHW here; ``feature_maps`` returns each block's output."""

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128, 256),
        strides: Sequence[int] = (2, 2, 1, 1),
        kernel_size: int = 3,
        in_channels: int = 1,
    ):
        super().__init__()
        if len(widths) != len(strides):
            raise ValueError(
                f"widths {tuple(widths)} and strides {tuple(strides)} must have the same length"
            )
        blocks, channels = [], in_channels
        for width, stride in zip(widths, strides):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(
                        channels,
                        width,
                        kernel_size,
                        stride=stride,
                        padding=kernel_size // 2,
                        bias=False,
                    ),
                    nn.BatchNorm2d(width, eps=1e-5, momentum=0.1),
                    nn.ReLU(),
                )
            )
            channels = width
        self.blocks = nn.ModuleList(blocks)
        self.out_dim = channels

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[B, C, H, W]`` images -> every block's ``[B, widths[i], H_i, W_i]`` output."""
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, widths[-1]]`` (global average pool of the last block)."""
        return self.feature_maps(x)[-1].mean(dim=(2, 3))


def block_index(layer: str, num_blocks: int) -> int:
    """Index into ``feature_maps`` of ssljax's sown layer name ``'blockN'``."""
    match = re.fullmatch(r"block(\d+)", layer)
    if not match or not 1 <= int(match.group(1)) <= num_blocks:
        choices = [f"block{i + 1}" for i in range(num_blocks)]
        raise ValueError(f"unknown layer {layer!r}; choose one of {choices}")
    return int(match.group(1)) - 1


def load_flax_convnet(net: TorchConvNet, variables) -> TorchConvNet:
    """Copies a flax ``ConvNet``'s ``{'params', 'batch_stats'}`` into ``net`` (in place).

    Convolution kernels go from flax's HWIO to torch's OIHW; BatchNorm ``scale``/``bias`` become
    ``weight``/``bias`` and ``mean``/``var`` the running statistics.
    """
    params, stats = variables["params"], variables["batch_stats"]
    with torch.no_grad():
        for i, block in enumerate(net.blocks):
            conv, bn = block[0], block[1]
            kernel = np.asarray(params[f"conv{i + 1}"]["kernel"], np.float32)
            conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            for name, source in (
                ("weight", params[f"bn{i + 1}"]["scale"]),
                ("bias", params[f"bn{i + 1}"]["bias"]),
                ("running_mean", stats[f"bn{i + 1}"]["mean"]),
                ("running_var", stats[f"bn{i + 1}"]["var"]),
            ):
                getattr(bn, name).copy_(torch.from_numpy(np.asarray(source, np.float32)))
    return net


class SimCLRNet(nn.Module):
    """Backbone + ``SimCLRProjectionHead``, as the lightly example's ``SimCLR`` module."""

    def __init__(self, backbone: TorchConvNet, hidden_dim: int = 512, output_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        self.projection_head = lightly.models.modules.SimCLRProjectionHead(
            backbone.out_dim, hidden_dim, output_dim
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


# --------------------------------------------------------------------------
# Data and recipe
# --------------------------------------------------------------------------


class UInt8Images(torch.utils.data.Dataset):
    """``uint8 [N, H, W, 1]`` images and ``[N]`` labels as ``(transform(PIL image), label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        if images.ndim != 4 or images.shape[-1] != 1 or images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 [N, H, W, 1], got {images.dtype} {images.shape}"
            )
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.images[index, :, :, 0])  # 2-D uint8: mode "L"
        return self.transform(image), int(self.labels[index])


def simclr_transform(kind: str, input_size: int = 28):
    """lightly's ``SimCLRTransform`` as the example (``'example'``) or tutorial 3
    (``'tutorial'``) calls it, at ``input_size`` with one-channel normalisation."""
    if kind == "example":
        kwargs = dict(gaussian_blur=0.0)
    elif kind == "tutorial":
        kwargs = dict(vf_prob=0.5, rr_prob=0.5)
    else:
        raise ValueError(f"unknown transform {kind!r}; choose one of {TRANSFORMS}")
    return lightly.transforms.SimCLRTransform(
        input_size=input_size, normalize=GREY_NORMALIZE, **kwargs
    )


def make_optimizer(kind: str, params) -> torch.optim.Optimizer:
    """SGD at lr 0.06: with momentum 0.9 and weight decay 5e-4 (``'tutorial'``) or plain
    (``'example'``)."""
    if kind == "tutorial":
        return torch.optim.SGD(params, lr=BASE_LR, momentum=0.9, weight_decay=5e-4)
    if kind == "example":
        return torch.optim.SGD(params, lr=BASE_LR)
    raise ValueError(f"unknown optimizer {kind!r}; choose one of {OPTIMIZERS}")


def cosine_lr(elapsed: float, seconds: float, base: float = BASE_LR) -> float:
    """Cosine annealing from ``base`` at 0 to 0 at ``seconds`` (held at 0 after)."""
    fraction = min(max(elapsed / seconds, 0.0), 1.0)
    return base * 0.5 * (1.0 + math.cos(math.pi * fraction))


def parse_probe_at(text: str, seconds: float) -> list[float]:
    """Sorted distinct snapshot times from ``'a,b,...'``, each in ``[0, seconds]``, plus
    ``seconds`` itself."""
    times = {float(seconds)}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--probe_at value {item!r} is not a number") from None
        if not 0.0 <= value <= seconds:
            raise ValueError(f"--probe_at value {value:g} is outside [0, --seconds={seconds:g}]")
        times.add(value)
    return sorted(times)


# --------------------------------------------------------------------------
# Timed pretraining
# --------------------------------------------------------------------------


def pretrain(
    model: SimCLRNet,
    loader,
    *,
    seconds: float,
    optimizer: torch.optim.Optimizer,
    cosine: bool,
    probe_at: Sequence[float] = (),
    log_every: int = 0,
) -> dict:
    """Trains ``model`` on ``loader``'s view pairs for ``seconds`` of wall-clock time.

    Returns ``{'steps', 'epochs', 'seconds_elapsed', 'last_loss', 'snapshots'}``, where
    ``snapshots`` maps each ``probe_at`` time to ``{'steps', 'seconds_elapsed',
    'backbone'}`` (a copy of the backbone's state dict taken at the first step boundary at or
    after that time).
    """
    criterion = lightly.loss.NTXentLoss()
    pending = sorted(probe_at)
    snapshots: dict[float, dict] = {}

    def snapshot(elapsed: float, steps: int) -> None:
        while pending and elapsed >= pending[0]:
            snapshots[pending.pop(0)] = dict(
                steps=steps,
                seconds_elapsed=elapsed,
                backbone=copy.deepcopy(model.backbone.state_dict()),
            )

    snapshot(0.0, 0)
    model.train()
    steps, epochs, losses, elapsed = 0, 0, [], 0.0
    t0 = time.perf_counter()
    while elapsed < seconds:
        epochs += 1
        for (x0, x1), _ in loader:
            if cosine:
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(time.perf_counter() - t0, seconds)
            loss = criterion(model(x0), model(x1))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
            losses.append(float(loss.detach()))
            elapsed = time.perf_counter() - t0
            snapshot(elapsed, steps)
            if log_every and steps % log_every == 0:
                print(
                    f"[lightly_simclr] step {steps} epoch {epochs} {elapsed:.0f} s "
                    f"loss {np.mean(losses[-log_every:]):.4f}",
                    file=sys.stderr,
                    flush=True,
                )
            if elapsed >= seconds:
                break
        if steps == 0:
            raise ValueError("the loader gave no batch: fewer images than one batch")
    return dict(
        steps=steps,
        epochs=epochs,
        seconds_elapsed=elapsed,
        last_loss=float(np.mean(losses[-50:])),
        snapshots=snapshots,
    )


# --------------------------------------------------------------------------
# Frozen features and ssljax's probe
# --------------------------------------------------------------------------


def to_input(images: np.ndarray, normalize=GREY_NORMALIZE) -> torch.Tensor:
    """``uint8 [N, H, W, C]`` -> float32 ``[N, C, H, W]`` as the training views are made:
    torchvision's ``ToTensor`` (``/ 255``) then ``Normalize(mean, std)``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(normalize["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(normalize["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


def probe_features(
    backbone: TorchConvNet,
    images: np.ndarray,
    *,
    layer: str,
    grid: int,
    normalize=GREY_NORMALIZE,
    batch_size: int = 1000,
) -> np.ndarray:
    """``uint8 [N, H, W, C]`` images -> float32 ``[N, grid * grid * C_layer]`` features.

    The images get the training transform's ``ToTensor`` (``/ 255``) and normalisation; the
    backbone runs in eval mode without gradients; ``layer``'s NCHW map is turned NHWC and
    pooled by ssljax's own ``spatial_pool`` (as ``ssljax.models.extract_features``).
    """
    import jax

    from ssljax.models.layers import spatial_pool

    pool = jax.jit(spatial_pool, static_argnums=1)
    index = block_index(layer, len(backbone.blocks))
    backbone.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_input(images[start : start + batch_size], normalize)
            fmap = backbone.feature_maps(x)[index].permute(0, 2, 3, 1).contiguous().numpy()
            out.append(np.asarray(pool(fmap, grid), np.float32))
    return np.concatenate(out, axis=0)


def run_probe(backbone, data: dict, eval_cfg, *, num_classes: int, knn: bool) -> dict:
    """ssljax's ``evaluate_features`` (the probe of ``linear_eval``) on the backbone's
    ``eval_cfg.layer`` features pooled to ``eval_cfg.grid``."""
    from ssljax.evaluation.checkpoint_eval import evaluate_features

    t = time.perf_counter()
    kwargs = dict(layer=str(eval_cfg.layer), grid=int(eval_cfg.grid))
    train_x = probe_features(backbone, data["train_images"], **kwargs)
    test_x = probe_features(backbone, data["test_images"], **kwargs)
    features_seconds = time.perf_counter() - t
    report = evaluate_features(
        train_x,
        data["train_labels"],
        test_x,
        data["test_labels"],
        num_classes=num_classes,
        eval_cfg=eval_cfg,
        knn=knn,
    )
    report.update(
        layer=str(eval_cfg.layer),
        grid=int(eval_cfg.grid),
        features_seconds=features_seconds,
        probe_seconds=time.perf_counter() - t - features_seconds,
    )
    if knn:
        report["knn_top1"] = float(report["knn"]["top1"])
    return report


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def machine() -> dict:
    """CPU model (``lscpu``'s model name), cores and platform."""
    model = platform.processor() or "unknown"
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        found = re.search(r"^Model name:\s*(.+)$", text, flags=re.M)
        model = found.group(1).strip() if found else model
    except (OSError, subprocess.CalledProcessError):
        pass
    return dict(cpu=model, cores=os.cpu_count(), platform=platform.platform())


def versions() -> dict:
    return dict(
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        lightly=lightly.__version__,
        python=platform.python_version(),
    )


def load_data(data_dir: str | None, train_examples: int | None, test_examples: int | None):
    """Fashion-MNIST through ssljax's loader: uint8 ``[N, 28, 28, 1]`` images, int labels."""
    from ssljax.data.input_pipeline import load_split_arrays

    train_images, train_labels = load_split_arrays(
        "fashion_mnist", "train", data_dir=data_dir, max_examples=train_examples
    )
    test_images, test_labels = load_split_arrays(
        "fashion_mnist", "test", data_dir=data_dir, max_examples=test_examples
    )
    return dict(
        train_images=np.ascontiguousarray(train_images),
        train_labels=np.asarray(train_labels),
        test_images=np.ascontiguousarray(test_images),
        test_labels=np.asarray(test_labels),
    )


def run(args: argparse.Namespace) -> dict:
    """Pretrains for ``args.seconds``, probes every snapshot, returns the JSON report."""
    from ssljax import config_base

    if not args.seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.out and os.path.exists(args.out):
        raise ValueError(f"--out {args.out} exists; choose a new file (nothing is overwritten)")
    probe_at = parse_probe_at(args.probe_at, args.seconds)
    config = config_base.load_config(DEMO_CONFIG)
    eval_cfg, widths = config.eval, tuple(config.model.encoder_kwargs.widths)
    strides = tuple(config.model.encoder_kwargs.strides)
    num_workers = os.cpu_count() if args.num_workers is None else args.num_workers
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = load_data(args.data_dir, args.train_examples, args.test_examples)
    dataset = UInt8Images(
        data["train_images"], data["train_labels"], simclr_transform(args.transform)
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=num_workers
    )
    model = SimCLRNet(TorchConvNet(widths, strides))
    optimizer = make_optimizer(args.optimizer, model.parameters())
    result = pretrain(
        model,
        loader,
        seconds=args.seconds,
        optimizer=optimizer,
        cosine=args.optimizer == "tutorial",
        probe_at=probe_at,
        log_every=args.log_every,
    )

    probes = []
    for at, snap in sorted(result["snapshots"].items()):
        backbone = TorchConvNet(widths, strides)
        backbone.load_state_dict(snap["backbone"])
        report = run_probe(backbone, data, eval_cfg, num_classes=10, knn=not args.no_knn)
        report.pop("knn", None)
        probes.append(
            dict(probe_at=at, steps=snap["steps"], seconds_elapsed=snap["seconds_elapsed"]) | report
        )
        print(
            f"[lightly_simclr] {at:g} s ({snap['steps']} steps): top1 {report['top1']:.4f}",
            file=sys.stderr,
            flush=True,
        )
    final = probes[-1]
    out = dict(
        seconds=float(args.seconds),
        seconds_elapsed=result["seconds_elapsed"],
        steps=result["steps"],
        steps_per_second=result["steps"] / result["seconds_elapsed"],
        epochs=result["epochs"],
        last_loss=result["last_loss"],
        top1=final["top1"],
        top5=final["top5"],
        val_top1=final["val_top1"],
        l2=final["l2"],
        knn_top1=final.get("knn_top1"),
        probes=probes,
        recipe=dict(
            transform=args.transform,
            optimizer=args.optimizer,
            schedule="cosine over the budget" if args.optimizer == "tutorial" else "constant",
            base_lr=BASE_LR,
            temperature=0.5,
            projection_head=[widths[-1], 512, 128],
            normalize=GREY_NORMALIZE,
            batch_size=args.batch_size,
            num_workers=num_workers,
            torch_threads=torch.get_num_threads(),
            seed=args.seed,
            widths=list(widths),
            strides=list(strides),
        ),
        num_train=len(data["train_labels"]),
        num_test=len(data["test_labels"]),
        versions=versions(),
        machine=machine(),
    )
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "x") as f:
            json.dump(out, f, indent=1)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, required=True, help="pretraining wall-clock budget")
    p.add_argument("--probe_at", default="", help="extra snapshot times in seconds, e.g. 0,300")
    p.add_argument("--out", default=None, help="JSON report file (must not exist)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="tutorial")
    p.add_argument("--transform", choices=TRANSFORMS, default="example")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--num_workers", type=int, default=None, help="default: os.cpu_count()")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_dir", default=None, help="TFDS data_dir for ssljax's loader")
    p.add_argument("--train_examples", type=int, default=None, help="first N train images")
    p.add_argument("--test_examples", type=int, default=None, help="first N test images")
    p.add_argument("--no_knn", action="store_true", help="skip the kNN probe")
    p.add_argument("--log_every", type=int, default=50, help="steps between log lines (0: off)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    report = run(parse_args(argv))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
