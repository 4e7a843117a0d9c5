"""Hand-written JAX image ops against DeepMind's dm_pix, op by op and in the whole pipeline.

  python experiments/benchmark_augment.py [--repeats 7] [--seconds 0.25] [--ops hue,flip]

For each op the same inputs go through ours and through dm_pix, both under ``jax.jit``.
"Ours" is ``ssljax.views.augment``'s function for the ops it keeps by hand, and a reference
copy of the former hand-written code (below) for the ops it now takes from dm_pix (HSV
conversions, hue, flip).  Prints a Markdown table: op, shape, max |diff| between the two
outputs, the median milliseconds per call of each over ``--repeats`` interleaved repeats (each
repeat runs the op for about ``--seconds``), and the ratio dm_pix / ours.

Shapes: ``fmnist`` is the demo's batch (512 x 28 x 28 x 1, Fashion-MNIST), ``cifar`` a
CIFAR-like batch (256 x 32 x 32 x 3), ``stl`` a 96-pixel batch (64 x 96 x 96 x 3, where the
SimCLR pipeline turns blur on).  Single-channel images only reach flip, crop, brightness and
contrast (the colour ops with a hue need RGB).  Rows marked ``(semantics differ)`` compare ops
that dm_pix defines differently (see experiments/augment_ops.md); their diff is the size of
that difference, not rounding.

The pipeline rows run ``simclr_augment`` / ``make_views`` on uint8 images with the former
hand-written hue and flip patched into the module ("ours") against the dm_pix ones (the
module's choice), and once more with dm_pix's grayscale and blur patched in as well (what
adopting every equivalent dm_pix op would cost), so they compare the choices whatever the
module currently uses.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.views import augment as aug

SHAPES = {"fmnist": (512, 28, 28, 1), "cifar": (256, 32, 32, 3), "stl": (64, 96, 96, 3)}


# ---------------------------------------------------------------------------
# Hand-written ops (reference copies)
# ---------------------------------------------------------------------------


def _wrap(x, period):
    return x - period * jnp.floor(x / period)


def hand_rgb_to_hsv(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = jnp.maximum(jnp.maximum(r, g), b)
    delta = value - jnp.minimum(jnp.minimum(r, g), b)
    has_chroma = delta > 0
    safe_delta = jnp.where(has_chroma, delta, 1.0)
    saturation = jnp.where(value > 0, delta / jnp.where(value > 0, value, 1.0), 0.0)
    hue_r = _wrap((g - b) / safe_delta, 6.0)
    hue_g = (b - r) / safe_delta + 2.0
    hue_b = (r - g) / safe_delta + 4.0
    hue = jnp.where(value == r, hue_r, jnp.where(value == g, hue_g, hue_b))
    hue = _wrap(jnp.where(has_chroma, hue / 6.0, 0.0), 1.0)
    return jnp.stack([hue, saturation, value], axis=-1)


def hand_hsv_to_rgb(hsv):
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    hue6 = hue * 6.0

    def channel(n):
        k = _wrap(n + hue6, 6.0)
        ramp = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
        return value - value * saturation * ramp

    return jnp.stack([channel(5.0), channel(3.0), channel(1.0)], axis=-1)


def hand_adjust_hue(images, delta):
    if images.shape[-1] == 1:
        return images
    hsv = hand_rgb_to_hsv(images)
    hue = _wrap(hsv[..., 0] + jnp.asarray(delta, images.dtype)[..., None, None], 1.0)
    rgb = hand_hsv_to_rgb(jnp.concatenate([hue[..., None], hsv[..., 1:]], axis=-1))
    return jnp.clip(rgb, 0.0, 1.0)


def _expand(factor, images):
    return jnp.asarray(factor, images.dtype)[..., None, None, None]


def _per_image_uniform(rng, batch):
    keys = jax.random.split(rng, batch)
    return jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(keys)


def hand_random_flip_left_right(rng, images, *, prob=0.5):
    images = aug.to_float(images)
    flip = _per_image_uniform(rng, images.shape[0]) < prob
    return jnp.clip(jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images), 0.0, 1.0)


# ---------------------------------------------------------------------------
# dm_pix ops, batched with per-image parameters
# ---------------------------------------------------------------------------


def pix_rgb_to_grayscale(images):
    return pix.rgb_to_grayscale(images)


def pix_adjust_hue(images, delta):
    out = pix.adjust_hue(images, jnp.asarray(delta, images.dtype)[..., None, None])
    return jnp.clip(out, 0.0, 1.0)


def pix_adjust_brightness_additive(images, factor):
    # tf.image.adjust_brightness: x + delta; the nearest additive shift is delta = factor - 1.
    return jnp.clip(pix.adjust_brightness(images, _expand(factor, images) - 1.0), 0.0, 1.0)


def pix_adjust_brightness_gain(images, factor):
    # gain * x ** 1: the multiplicative brightness through dm_pix's gamma op.
    return jnp.clip(pix.adjust_gamma(images, 1.0, gain=_expand(factor, images)), 0.0, 1.0)


def pix_adjust_contrast(images, factor):
    return jnp.clip(pix.adjust_contrast(images, _expand(factor, images)), 0.0, 1.0)


def pix_adjust_saturation(images, factor):
    return jnp.clip(
        pix.adjust_saturation(images, jnp.asarray(factor, images.dtype)[..., None, None]), 0.0, 1.0
    )


def pix_random_flip_left_right(rng, images, *, prob=0.5):
    images = aug.to_float(images)
    keys = jax.random.split(rng, images.shape[0])
    flipped = jax.vmap(lambda k, x: pix.random_flip_left_right(k, x, probability=prob))(
        keys, images
    )
    return jnp.clip(flipped, 0.0, 1.0)


def pix_gaussian_blur_fixed(images, sigma, kernel_size):
    images = aug.to_float(images)
    radius = kernel_size // 2
    padded = jnp.pad(images, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="reflect")
    sigma = jnp.maximum(jnp.asarray(sigma, jnp.float32), 1e-6)
    out = jax.vmap(lambda x, s: pix.gaussian_blur(x, s, kernel_size, padding="VALID"))(
        padded, sigma
    )
    return jnp.clip(out, 0.0, 1.0)


def pix_gaussian_blur_same(images, sigma, kernel_size):
    """dm_pix's own padding (zero, 'SAME'), as in SimCLR's reference code."""
    out = jax.vmap(lambda x, s: pix.gaussian_blur(x, s, kernel_size))(images, sigma)
    return jnp.clip(out, 0.0, 1.0)


def pix_crop_and_resize(images, boxes, output_size):
    """Crop + bilinear resize as one affine map per image (dm_pix.affine_transform).

    affine_transform's output has its input's shape, so ``output_size`` must be ``(H, W)``.
    """
    out_h, out_w = output_size

    def one(image, box):
        top, left, h, w = (box[i].astype(jnp.float32) for i in range(4))
        sy, sx = h / out_h, w / out_w
        matrix = jnp.diag(jnp.stack([sy, sx, jnp.float32(1.0)]))
        offset = jnp.stack([top + 0.5 * sy - 0.5, left + 0.5 * sx - 0.5, jnp.float32(0.0)])
        return pix.affine_transform(image, matrix, offset=offset, order=1, mode="nearest")

    return jnp.clip(jax.vmap(one)(images, boxes), 0.0, 1.0)


# ---------------------------------------------------------------------------
# Pipeline with either set of ops patched in
# ---------------------------------------------------------------------------

# The ops augment.py takes from dm_pix, and the ones it keeps by hand that dm_pix also has in an
# equivalent form (grayscale; blur through reflect padding + 'VALID').
_HAND_OPS = {
    "rgb_to_hsv": hand_rgb_to_hsv,
    "hsv_to_rgb": hand_hsv_to_rgb,
    "adjust_hue": hand_adjust_hue,
    "random_flip_left_right": hand_random_flip_left_right,
}


def _pix_hue(images, delta):
    return images if images.shape[-1] == 1 else pix_adjust_hue(images, delta)


_PIX_OPS = {
    "rgb_to_hsv": pix.rgb_to_hsv,
    "hsv_to_rgb": pix.hsv_to_rgb,
    "adjust_hue": _pix_hue,
    "random_flip_left_right": pix_random_flip_left_right,
}
_ALL_PIX_OPS = {
    **_PIX_OPS,
    "rgb_to_grayscale": pix_rgb_to_grayscale,
    "gaussian_blur_fixed": pix_gaussian_blur_fixed,
}


@contextlib.contextmanager
def _patched(ops: dict[str, Callable]) -> Iterator[None]:
    saved = {name: getattr(aug, name) for name in ops}
    try:
        for name, fn in ops.items():
            setattr(aug, name, fn)
        yield
    finally:
        for name, fn in saved.items():
            setattr(aug, name, fn)


def _pipeline(ops: dict[str, Callable], fn: Callable) -> Callable:
    """Jits ``fn`` with ``ops`` patched into the module while it is traced.

    A fresh wrapper per call: ``jax.jit`` caches traces per function object, and two
    patched versions of one ``fn`` must not share a trace.
    """
    jitted = jax.jit(lambda *args: fn(*args))

    def call(*args):
        with _patched(ops):
            return jitted(*args)

    return call


# ---------------------------------------------------------------------------
# Cases and timing
# ---------------------------------------------------------------------------


def _cases(names: set[str] | None):
    """``(label, shape name, ours, dm_pix, args)`` per comparison; ``ours`` is the module's
    function for the ops it keeps by hand and the reference copy for the ops it swapped."""
    rs = np.random.RandomState(0)
    cases = []

    def add(op, shape_name, ours, theirs, args, note=""):
        if names is None or op in names:
            cases.append((op + note, shape_name, ours, theirs, args))

    for shape_name, shape in SHAPES.items():
        x = jnp.asarray(rs.rand(*shape).astype(np.float32))
        batch, height, width, channels = shape
        factors = jnp.asarray(rs.uniform(0.2, 1.8, batch).astype(np.float32))
        deltas = jnp.asarray(rs.uniform(-0.2, 0.2, batch).astype(np.float32))
        key = jax.random.key(0)
        if shape_name != "stl":
            add("flip", shape_name, hand_random_flip_left_right, pix_random_flip_left_right,
                (key, x))  # fmt: skip
            add("brightness", shape_name, aug.adjust_brightness, pix_adjust_brightness_gain,
                (x, factors), " (dm_pix adjust_gamma, gamma 1, gain f)")  # fmt: skip
            add("brightness", shape_name, aug.adjust_brightness, pix_adjust_brightness_additive,
                (x, factors), " (dm_pix additive, delta f - 1; semantics differ)")  # fmt: skip
            add("contrast", shape_name, aug.adjust_contrast, pix_adjust_contrast, (x, factors),
                "" if channels == 1 else " (dm_pix per-channel mean; semantics differ)")  # fmt: skip
            boxes = jax.jit(aug.sample_crop_boxes, static_argnums=(1, 2, 3))(
                key, batch, height, width
            )
            add(
                "crop_and_resize",
                shape_name,
                lambda x, b, hw=(height, width): aug.crop_and_resize(x, b, hw),
                lambda x, b, hw=(height, width): pix_crop_and_resize(x, b, hw),
                (x, boxes),
                " (dm_pix affine_transform; clamps to image, not box)",
            )
        if channels == 3 and shape_name != "stl":
            add("rgb_to_grayscale", shape_name, aug.rgb_to_grayscale, pix_rgb_to_grayscale, (x,))
            add("rgb_to_hsv", shape_name, hand_rgb_to_hsv, pix.rgb_to_hsv, (x,))
            hsv = jax.jit(hand_rgb_to_hsv)(x)
            add("hsv_to_rgb", shape_name, hand_hsv_to_rgb, pix.hsv_to_rgb, (hsv,))
            add("hue", shape_name, hand_adjust_hue, pix_adjust_hue, (x, deltas))
            add("saturation", shape_name, aug.adjust_saturation, pix_adjust_saturation,
                (x, factors), " (dm_pix HSV scaling; semantics differ)")  # fmt: skip
        if shape_name != "fmnist":
            sigmas = jnp.asarray(rs.uniform(0.1, 2.0, batch).astype(np.float32))
            ksize = aug.blur_kernel_size(height, width)
            add(
                "blur",
                shape_name,
                lambda x, s, k=ksize: aug.gaussian_blur_fixed(x, s, k),
                lambda x, s, k=ksize: pix_gaussian_blur_fixed(x, s, k),
                (x, sigmas),
                f" (k={ksize}; dm_pix on reflect-padded, 'VALID')",
            )
            add(
                "blur",
                shape_name,
                lambda x, s, k=ksize: aug.gaussian_blur_fixed(x, s, k),
                lambda x, s, k=ksize: pix_gaussian_blur_same(x, s, k),
                (x, sigmas),
                f" (k={ksize}; dm_pix zero 'SAME' pad; semantics differ at borders)",
            )
        if names is None or "pipeline" in names:
            cfg = aug.augment_config(height, blur_prob=0.5 if shape_name == "stl" else 0.0)
            images = jnp.asarray(rs.randint(0, 256, shape).astype(np.uint8))
            augment = lambda k, x, c=cfg: aug.simclr_augment(k, x, c)
            views = lambda k, x, c=cfg: aug.make_views(k, x, c)
            rows = [
                ("simclr_augment", augment, _PIX_OPS),
                ("make_views (2 views)", views, _PIX_OPS),
            ]
            if channels == 3:
                rows.append(("make_views, also dm_pix grayscale + blur", views, _ALL_PIX_OPS))
            for label, fn, pix_ops in rows:
                ours, theirs = _pipeline(_HAND_OPS, fn), _pipeline(pix_ops, fn)
                cases.append((label, shape_name, ours, theirs, (key, images)))
    return cases


def _max_diff(a, b) -> float:
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(leaves_a, leaves_b, strict=True))


def _calls_per_repeat(fn: Callable, args: tuple, seconds: float) -> int:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))


def _time_ms(fn: Callable, args: tuple, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return 1e3 * (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="Interleaved timing repeats.")
    parser.add_argument("--seconds", type=float, default=0.25, help="Time per repeat and op.")
    parser.add_argument(
        "--ops",
        default="",
        help="Comma-separated subset: flip, brightness, contrast, crop_and_resize, "
        "rgb_to_grayscale, rgb_to_hsv, hsv_to_rgb, hue, saturation, blur, pipeline.",
    )
    args = parser.parse_args()
    if args.repeats < 1 or args.seconds <= 0:
        raise ValueError(f"--repeats={args.repeats}, --seconds={args.seconds}; valid: >= 1, > 0")
    names = {n.strip() for n in args.ops.split(",") if n.strip()} or None
    print(
        f"jax {jax.__version__}, dm_pix {pix.__version__}, backend {jax.default_backend()}, "
        f"{platform.processor() or platform.machine()}; median of {args.repeats} repeats"
    )
    print("| op | shape | max abs diff | ours ms | dm_pix ms | dm_pix / ours |")
    print("|---|---|---|---|---|---|")
    for op, shape_name, ours, theirs, call_args in _cases(names):
        ours_j = ours if op.startswith(("simclr", "make_views")) else jax.jit(ours)
        theirs_j = theirs if op.startswith(("simclr", "make_views")) else jax.jit(theirs)
        diff = _max_diff(ours_j(*call_args), theirs_j(*call_args))
        n_ours = _calls_per_repeat(ours_j, call_args, args.seconds)
        n_theirs = _calls_per_repeat(theirs_j, call_args, args.seconds)
        t_ours, t_theirs = [], []
        for _ in range(args.repeats):
            t_ours.append(_time_ms(ours_j, call_args, n_ours))
            t_theirs.append(_time_ms(theirs_j, call_args, n_theirs))
        m_ours, m_theirs = statistics.median(t_ours), statistics.median(t_theirs)
        shape = "x".join(str(s) for s in SHAPES[shape_name])
        print(
            f"| {op} | {shape} | {diff:.2e} | {m_ours:.3f} | {m_theirs:.3f} | "
            f"{m_theirs / m_ours:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
