"""Views cut on the host: Inception-style crops taken from the encoded image, one per view.

The random resized crop of Szegedy et al. 2015 ("Going deeper with convolutions", the
"Inception crop") is the first and most important augmentation of SimCLR (Chen et al. 2020)
and BYOL (Grill et al. 2020). Their reference pipelines (SimCLR's TF code, deepmind-research
``byol/utils/dataset.py``) take it on the host, per view, from the encoded JPEG:

1. ``tf.image.extract_jpeg_shape`` reads the image's size from the JPEG header;
2. ``tf.image.stateless_sample_distorted_bounding_box`` samples a window of area fraction in
   ``scale`` and aspect ratio (width / height) in ``ratio`` (here: :func:`crop_window`);
3. ``tf.io.decode_and_crop_jpeg`` decodes only that window;
4. the window is resized to the view's side (:func:`inception_crop`).

Training cuts all views of an image from one decode of it (:func:`example_views`): the
pixels are the same bit for bit, and with two or more views one decode costs less than one
partial decode per view.

So a crop sees the whole image (not only a central square) and a small crop keeps the
image's full resolution. Colour, blur, flips and solarisation stay on the device
(:func:`ssljax.views.augment.post_crop_augment`). Images in other formats (PNG in image
folders) are decoded whole and the same sampled window is cut out.

Multi-crop (Caron et al. 2020, SwAV; Caron et al. 2021, DINO) adds small "local" crops
(e.g. 6 x 96 pixels of area fraction 0.05-0.14) beside the global ones: a
:class:`HostViews` holds the global :class:`CropSpec` and optionally a local one.

The window sampler (TensorFlow's ``GenerateRandomCrop``), for each of ``MAX_ATTEMPTS``
attempts: an aspect ratio ``r ~ U[ratio]`` (uniform, not log-uniform), a height uniform
over the integers from ``round(sqrt(min_area / r))`` to ``round(sqrt(max_area / r))``
(clipped so the window fits the image), width ``round(h * r)``; the first window whose
area lies in ``[scale] * H * W`` is placed at a uniform random position (top uniform on
``{0, ..., H - h - 1}``, left likewise). So the area fraction is not uniform on ``scale``
(the height is): for a given ``r`` its density falls as ``1 / sqrt(area)``, small crops
being more frequent than torchvision's uniform area would make them. ``min_object_covered`` is 0 here, so ``scale[0]`` is the true lower bound (the
reference codes pass 0.1, which raises their lower bound from 0.08 to 0.1 of the image).
When every attempt fails TensorFlow returns the whole image; that window is then replaced
by the central window whose aspect ratio is the image's clamped into ``ratio`` and whose
area is the largest at most ``scale[1]`` of the image (the whole image when its aspect lies
in ``ratio`` and ``scale[1] = 1``, as torchvision's ``RandomResizedCrop`` falls back).

Resizing is bicubic without anti-aliasing by default, as in both reference pipelines
(SimCLR's ``tf.image.resize_bicubic``, BYOL's ``tf.image.resize(..., BICUBIC)``).
``augment.host_resize = 'bilinear'`` resizes bilinearly instead (also without
anti-aliasing), as big_vision's ``inception_crop`` does by default, a little cheaper on the
host (``experiments/benchmark_input.md``). Bicubic keeps edges sharper than bilinear
when a window is enlarged. On a typical ImageNet image (500x375) with 224 views, 42% of
the windows are enlarged (geometric-mean side below 224; sides 107-500 pixels) and the rest
shrunk, by at most 2.2x (24% by more than 1.5x), where the missing anti-aliasing aliases
fine texture a little, as in the references (``antialias=True`` would differ from them by up
to 76 levels on noise at a 1.33x shrink). Bicubic overshoots, so values are clipped to
[0, 255] before rounding to ``uint8``.

``augment.host_resize_backend`` chooses the library that resizes: ``'opencv'`` (the
default; OpenCV's 8-bit fixed-point kernels, called once per image and crop kind through
``tf.numpy_function`` on numpy views of the decoded image, with the GIL released while it
resizes) or ``'tensorflow'`` (float32 kernels: BYOL's pipeline's pixels exactly; the only
one before the key existed). OpenCV's bilinear views are within one level of
TensorFlow's; its bicubic kernel is Keys' with a = -0.75, the kernel of SimCLR's TF1
``resize_bicubic``, where TensorFlow 2's is a = -0.5 (a little softer), both with
half-pixel centres. On a 2-core host OpenCV resizes in half (bilinear) to a third
(bicubic) of TensorFlow's time and the pipeline delivers 10-18% more views
(``experiments/benchmark_input.md``).

Randomness is stateless: the views of the example at ``position`` of an epoch's stream use
``stateless_split(stateless_fold_in(crop_seed(seed, epoch, process), position), n)``, so
the views of one image come from independent windows, every epoch draws new windows, and a
resumed run (which skips the same stream positions) cuts exactly the same crops.

The configuration types and :func:`host_views_from_config` need no TensorFlow; the
functions that cut crops import it when called.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import numpy as np

CROP_ON_CHOICES = ("auto", "host", "device")
# Keys of ``config.augment`` read here, with their defaults (stored configs may lack them).
HOST_AUGMENT_DEFAULTS = {
    "crop_on": "auto",
    "host_resize": "bicubic",
    # Stored configs that predate the key (TensorFlow's resize) read it too: a resumed host-
    # crop run continues with OpenCV's (bilinear within one level; bicubic a = -0.75).
    "host_resize_backend": "opencv",
    "local_crops": 0,
    "local_crop_size": 96,
    "local_crop_scale": (0.05, 0.14),
}
# Kernels of the host resize (``augment.host_resize``), both without anti-aliasing.
RESIZE_CHOICES = ("bicubic", "bilinear")
# Libraries that run it (``augment.host_resize_backend``): TensorFlow's float32 kernels, or
# OpenCV's 8-bit fixed-point ones (a third to a half of TensorFlow's time on the host).
RESIZE_BACKENDS = ("tensorflow", "opencv")
# Global views made by the objectives that take host crops (two-view methods).
GLOBAL_VIEWS = 2
# Attempts of the window sampler before the central fallback (the reference codes' value).
MAX_ATTEMPTS = 10

__all__ = [
    "CROP_ON_CHOICES",
    "CropSpec",
    "HOST_AUGMENT_DEFAULTS",
    "HostViews",
    "RESIZE_BACKENDS",
    "RESIZE_CHOICES",
    "crop_seed",
    "crop_window",
    "example_views",
    "host_views_for_config",
    "host_views_from_config",
    "inception_crop",
    "resize_windows_opencv",
    "view_seeds",
    "views_map_fn",
]


def _pair(name: str, value: Any, *, upper: Optional[float]) -> tuple[float, float]:
    """``value`` as ``(lo, hi)`` floats with ``0 < lo <= hi (<= upper)``; one-line error."""
    bound = "" if upper is None else f" <= {upper:g}"
    message = f"{name}={value!r} is invalid; valid: a pair (lo, hi) with 0 < lo <= hi{bound}"
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not (0.0 < lo <= hi) or (upper is not None and hi > upper):
        raise ValueError(message)
    return lo, hi


def _positive_int(name: str, value: Any, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= {low}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """``count`` crops of side ``size`` with area fraction in ``scale`` and aspect ratio
    (width / height) in ``ratio``.

    Attributes:
      count: number of crops (views) of this kind per image, >= 1.
      size: side of the square ``uint8`` crop in pixels, >= 1.
      scale: ``(lo, hi)`` with ``0 < lo <= hi <= 1``: area fraction of the image.
      ratio: ``(lo, hi)`` with ``0 < lo <= hi``: aspect ratio range.
    """

    count: int
    size: int
    scale: tuple[float, float]
    ratio: tuple[float, float]

    def __post_init__(self):
        object.__setattr__(self, "count", _positive_int("CropSpec.count", self.count))
        object.__setattr__(self, "size", _positive_int("CropSpec.size", self.size))
        object.__setattr__(self, "scale", _pair("CropSpec.scale", self.scale, upper=1.0))
        object.__setattr__(self, "ratio", _pair("CropSpec.ratio", self.ratio, upper=None))


@dataclasses.dataclass(frozen=True)
class HostViews:
    """The crops the host cuts from every training image.

    Attributes:
      crops: the global crops (e.g. ``CropSpec(2, 224, (0.08, 1), (3/4, 4/3))``), then
        optionally the local crops of multi-crop (e.g. ``CropSpec(6, 96, (0.05, 0.14),
        (3/4, 4/3))``, Caron et al. 2020/2021).
      resize: the kernel every crop is resized with, one of :data:`RESIZE_CHOICES`
        (module docstring).
      resize_backend: the library that resizes, one of :data:`RESIZE_BACKENDS` (module
        docstring).
    """

    crops: tuple[CropSpec, ...]
    resize: str = "bicubic"
    resize_backend: str = "opencv"

    def __post_init__(self):
        crops = tuple(self.crops) if isinstance(self.crops, (list, tuple)) else None
        if not crops or len(crops) > 2 or not all(isinstance(c, CropSpec) for c in crops):
            raise ValueError(
                f"HostViews.crops={self.crops!r} is invalid; valid: one CropSpec (global "
                "crops) or two (global, local)"
            )
        object.__setattr__(self, "crops", crops)
        if self.resize not in RESIZE_CHOICES:
            raise ValueError(
                f"augment.host_resize={self.resize!r} is invalid; valid: "
                f"{', '.join(RESIZE_CHOICES)}"
            )
        if self.resize_backend not in RESIZE_BACKENDS:
            raise ValueError(
                f"augment.host_resize_backend={self.resize_backend!r} is invalid; valid: "
                f"{', '.join(RESIZE_BACKENDS)}"
            )

    @property
    def global_crops(self) -> CropSpec:
        return self.crops[0]

    @property
    def local_crops(self) -> Optional[CropSpec]:
        return self.crops[1] if len(self.crops) > 1 else None

    @property
    def num_views(self) -> int:
        """All crops of one image, global and local."""
        return sum(c.count for c in self.crops)


# ---------------------------------------------------------------------------------------------
# config.augment -> HostViews


def _get(cfg: Any, key: str) -> Any:
    if cfg is None:
        return HOST_AUGMENT_DEFAULTS.get(key)
    get = getattr(cfg, "get", None)
    value = get(key, None) if get is not None else None
    return HOST_AUGMENT_DEFAULTS.get(key) if value is None else value


def _square_side(value: Any, what: str) -> int:
    """The side of a square size given as an int or ``(h, w)``; one-line error otherwise."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        side = (int(value), int(value))
    else:
        try:
            side = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            side = ()
    if len(side) != 2 or side[0] != side[1] or side[0] < 1:
        raise ValueError(
            f"{what}={value!r} cannot be the side of host crops; valid: a positive int or a "
            "square (S, S)"
        )
    return side[0]


def varies_in_size(spec) -> bool:
    """Whether ``spec``'s training images are resized on the host from images of their own
    sizes (ImageNet, image folders, TFDS datasets given ``dataset.image_size``), rather than
    being fixed-size images (Fashion-MNIST, CIFAR, STL-10, also when resized by an
    ``image_size`` override)."""
    from ssljax.data.datasets import DATASETS

    registered = DATASETS.get(spec.name) if spec.folder is None else None
    if registered is not None:
        return registered.train_preprocess is not None
    return spec.train_preprocess is not None


def _host_crop_objectives() -> list[str]:
    from ssljax import objectives

    return [n for n in objectives.names() if getattr(objectives.get(n), "host_crops", False)]


def host_views_from_config(augment_cfg: Any, spec, objective) -> Optional[HostViews]:
    """The host crops ``config.augment`` asks for, or None for crops on the device.

    ``augment.crop_on``: ``'device'`` -> None; ``'host'`` -> host crops (the objective must
    take them); ``'auto'`` -> host crops for datasets whose images vary in size
    (:func:`varies_in_size`: ImageNet, image folders, variable-size TFDS datasets) when the
    objective takes them, else the device. Host crops: ``GLOBAL_VIEWS`` global crops of side
    ``augment.output_size`` (default: the dataset's evaluation image side, 224 for
    ImageNet), area ``augment.crop_scale``, aspect ``augment.crop_ratio``; with
    ``augment.local_crops = n > 0`` also ``n`` local crops of side
    ``augment.local_crop_size`` and area ``augment.local_crop_scale``; all resized with
    ``augment.host_resize`` (:data:`RESIZE_CHOICES`).

    Args:
      augment_cfg: ``config.augment`` (missing keys take :data:`HOST_AUGMENT_DEFAULTS` or
        the SimCLR defaults).
      spec: the pretraining data's :class:`~ssljax.data.datasets.DatasetSpec`.
      objective: the objective (class or instance); its ``host_crops`` says whether its
        views can be made from host crops.

    Raises:
      ValueError: one line: a bad ``crop_on`` (listing the choices), host crops for an
        objective that cannot take them (naming those that can), local crops without host
        crops, or a bad size / range.
    """
    crop_on = _get(augment_cfg, "crop_on")
    if crop_on not in CROP_ON_CHOICES:
        raise ValueError(
            f"augment.crop_on={crop_on!r} is invalid; valid: {', '.join(CROP_ON_CHOICES)}"
        )
    local = _positive_int("augment.local_crops", _get(augment_cfg, "local_crops"), low=0)
    takes = bool(getattr(objective, "host_crops", False))
    name = getattr(objective, "name", type(objective).__name__)
    if crop_on == "host" and not takes:
        raise ValueError(
            f"augment.crop_on='host': objective {name!r} cannot take host crops; objectives "
            f"that can: {', '.join(_host_crop_objectives())} (or set augment.crop_on to "
            "'auto' or 'device')"
        )
    host = crop_on == "host" or (crop_on == "auto" and takes and varies_in_size(spec))
    if not host:
        if local:
            raise ValueError(
                f"augment.local_crops={local} needs crops made on the host, but augment."
                f"crop_on={crop_on!r} resolves to the device for dataset {spec.name!r} and "
                f"objective {name!r}; set augment.local_crops=0 or augment.crop_on='host'"
            )
        return None
    output_size = _get(augment_cfg, "output_size")
    if output_size is None:
        size = _square_side(tuple(spec.image_shape[:2]), f"dataset {spec.name!r} image size")
    else:
        size = _square_side(output_size, "augment.output_size")
    scale = _get(augment_cfg, "crop_scale") or (0.08, 1.0)
    ratio = _get(augment_cfg, "crop_ratio") or (3.0 / 4.0, 4.0 / 3.0)
    crops = [CropSpec(count=GLOBAL_VIEWS, size=size, scale=tuple(scale), ratio=tuple(ratio))]
    if local:
        crops.append(
            CropSpec(
                count=local,
                size=_positive_int("augment.local_crop_size", _get(augment_cfg, "local_crop_size")),
                scale=tuple(_get(augment_cfg, "local_crop_scale")),
                ratio=tuple(ratio),
            )
        )
    return HostViews(
        crops=tuple(crops),
        resize=_get(augment_cfg, "host_resize"),
        resize_backend=_get(augment_cfg, "host_resize_backend"),
    )


def host_views_for_config(config, spec=None) -> Optional[HostViews]:
    """:func:`host_views_from_config` of a run's config: its ``augment``, its dataset's spec
    (``spec_from_config(config.dataset)`` unless given) and its objective. A config without
    an objective (only a dataset) takes no host crops."""
    from ssljax import objectives

    if config.get("objective") is None:
        return None
    if spec is None:
        from ssljax.data.datasets import spec_from_config

        spec = spec_from_config(config.dataset)
    objective = objectives.build(config.objective)
    return host_views_from_config(config.get("augment"), spec, objective)


# ---------------------------------------------------------------------------------------------
# Crops (TensorFlow, host side).


def crop_seed(seed: int, epoch: int, process_index: int = 0) -> np.ndarray:
    """The stateless base seed ``int64 [2]`` of one epoch's crops on one process, derived
    from ``(seed, epoch, process_index)`` (independent of the epoch's shuffle seed)."""
    entropy = [int(seed) % 2**64, int(epoch), int(process_index), 0x63726F70]  # "crop"
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint64)
    return (state >> np.uint64(1)).astype(np.int64)


def view_seeds(base_seed, position, num_views: int):
    """``int64 [num_views, 2]`` stateless seeds of the views of the example at ``position``
    of the stream: ``stateless_split(stateless_fold_in(base_seed, position), num_views)``."""
    import tensorflow as tf

    example = tf.random.experimental.stateless_fold_in(
        tf.cast(base_seed, tf.int64), tf.cast(position, tf.int64)
    )
    return tf.random.experimental.stateless_split(example, num=int(num_views))


def _central_window(height, width, max_area: float, ratio: tuple[float, float]):
    """The fallback window (module docstring): central, aspect ratio clamped to ``ratio``,
    area at most ``max_area`` of the image. Int32 scalars ``(top, left, h, w)``."""
    import tensorflow as tf

    h_img = tf.cast(height, tf.float32)
    w_img = tf.cast(width, tf.float32)
    aspect = tf.clip_by_value(w_img / h_img, ratio[0], ratio[1])
    area = max_area * h_img * w_img
    w = tf.sqrt(area * aspect)
    h = tf.sqrt(area / aspect)
    shrink = tf.minimum(1.0, tf.minimum(w_img / w, h_img / h))
    h = tf.clip_by_value(tf.cast(tf.round(h * shrink), tf.int32), 1, height)
    w = tf.clip_by_value(tf.cast(tf.round(w * shrink), tf.int32), 1, width)
    return (height - h) // 2, (width - w) // 2, h, w


def crop_window(
    image_shape_hw,
    seed,
    *,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    max_attempts: int = MAX_ATTEMPTS,
):
    """Samples one Inception-style window (Szegedy et al. 2015) of an image, statelessly.

    ``tf.image.stateless_sample_distorted_bounding_box`` over the whole image (no object
    boxes, ``min_object_covered=0``), with the central fallback of the module docstring.

    Args:
      image_shape_hw: ``int32 [>= 2]``, the image's ``(H, W, ...)``.
      seed: stateless seed, ``int [2]``.
      scale: ``(lo, hi)`` area fraction, ``0 < lo <= hi <= 1``.
      ratio: ``(lo, hi)`` aspect ratio (width / height).
      max_attempts: windows tried before the fallback.

    Returns:
      ``(offset_y, offset_x, h, w)``, int32 scalars.
    """
    import tensorflow as tf

    scale = _pair("scale", scale, upper=1.0)
    ratio = _pair("ratio", ratio, upper=None)
    shape = tf.cast(image_shape_hw, tf.int32)
    height, width = shape[0], shape[1]
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.stack([height, width, 1]),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]], tf.float32),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=int(max_attempts),
        use_image_if_no_bounding_boxes=True,
    )
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    failed = tf.logical_and(tf.equal(size[0], height), tf.equal(size[1], width))
    fallback = tf.stack(_central_window(height, width, scale[1], ratio))
    window = tf.where(failed, fallback, window)
    return window[0], window[1], window[2], window[3]


def inception_crop(
    encoded,
    seed,
    *,
    size: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    channels: int,
    resize: str = "bicubic",
):
    """One view: a :func:`crop_window` of an encoded image, decoded and resized to ``size``.

    JPEGs are decoded only inside the window (``tf.io.decode_and_crop_jpeg``, with one
    column of margin each side so that the pixels equal those of a full decode; the window
    comes from ``tf.image.extract_jpeg_shape``); other formats (PNG, ...) are decoded whole
    and cropped to the same window. Resizing is TensorFlow's, without anti-aliasing: this is
    the reference pipelines' per-view path (module docstring).

    Args:
      encoded: a scalar string tensor, the image file's bytes.
      seed: stateless seed ``int [2]`` of this view.
      size: output side.
      scale, ratio: the window's area fraction and aspect ratio ranges.
      channels: 1 or 3; images are converted to it (grey replicated, alpha dropped).
      resize: the resize kernel, one of :data:`RESIZE_CHOICES`.

    Returns:
      ``uint8 [size, size, channels]``.
    """
    import tensorflow as tf

    def from_jpeg():
        shape = tf.image.extract_jpeg_shape(encoded)
        top, left, h, w = crop_window(shape, seed, scale=scale, ratio=ratio)
        # libjpeg upsamples subsampled chroma (4:2:0) treating the cut's first and last
        # columns as image edges; one more column each side (where the image has one),
        # dropped after decoding, gives exactly the pixels of a full decode.
        before = tf.minimum(left, 1)
        after = tf.minimum(shape[1] - left - w, 1)
        window = tf.stack([top, left - before, h, w + before + after])
        wide = tf.image.decode_and_crop_jpeg(encoded, window, channels=channels)
        return wide[:, before : before + w]

    def from_other():
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
        top, left, h, w = crop_window(tf.shape(image), seed, scale=scale, ratio=ratio)
        return image[top : top + h, left : left + w]

    crop = tf.cond(tf.io.is_jpeg(encoded), from_jpeg, from_other)
    return resize_view(crop, size, channels, resize)


def _check_resize(resize: str) -> None:
    """One-line error for a resize kernel not in :data:`RESIZE_CHOICES`."""
    if resize not in RESIZE_CHOICES:
        raise ValueError(f"resize={resize!r} is invalid; valid: {', '.join(RESIZE_CHOICES)}")


def resize_view(crop, size: int, channels: int, resize: str = "bicubic"):
    """A cut window resized to ``uint8 [size, size, channels]`` with the kernel ``resize``
    (:data:`RESIZE_CHOICES`; no anti-aliasing), rounded and clipped to [0, 255] (module
    docstring)."""
    import tensorflow as tf

    _check_resize(resize)
    resized = tf.image.resize(crop, [size, size], method=resize, antialias=False)
    # saturate_cast clips to [0, 255] as it casts: one op fewer than clip_by_value + cast.
    out = tf.saturate_cast(tf.round(resized), tf.uint8)
    return tf.ensure_shape(out, (size, size, channels))


def example_views(encoded, seeds, host_views: HostViews, *, channels: int) -> dict:
    """All views of one encoded image, cut from one decode of it.

    The image is decoded once and every view's window (:func:`crop_window`, sampled from
    the image's shape exactly as :func:`inception_crop` samples it) is cut from the decoded
    pixels, so with the TensorFlow backend each view equals ``inception_crop`` with its seed
    bit for bit (OpenCV resizes the same window with its own kernel). With two or
    more views per image this is cheaper than decoding per view: ``decode_and_crop_jpeg``
    still entropy-decodes every row above a window's bottom edge, and two windows of area
    0.08-1 overlap often (two partial decodes measured 1.60 ms per image against 1.14 ms for
    one decode and both cuts; ``experiments/benchmark_input.md``).

    Args:
      encoded: scalar string tensor, the image file.
      seeds: ``int [host_views.num_views, 2]`` one stateless seed per view
        (:func:`view_seeds`): the global crops take the first ones, the local crops the
        rest.
      host_views: the crops to cut.
      channels: output channels.

    Returns:
      ``{'image': uint8 [n_global, S, S, C]}`` plus ``'local_image': uint8 [n_local, s, s,
      C]`` when ``host_views`` has local crops.
    """
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    shape = tf.shape(image)
    out, first = {}, 0
    for key, spec in zip(("image", "local_image"), host_views.crops):
        windows = [
            crop_window(shape, seeds[first + i], scale=spec.scale, ratio=spec.ratio)
            for i in range(spec.count)
        ]
        if host_views.resize_backend == "opencv":
            # One call cuts and resizes all windows of this kind: the cuts are numpy views
            # of the decoded image (no copies), and OpenCV releases the GIL as it resizes.
            views = tf.numpy_function(
                functools.partial(resize_windows_opencv, size=spec.size, resize=host_views.resize),
                [image, tf.stack([tf.stack(w) for w in windows])],
                tf.uint8,
                stateful=False,
            )
            out[key] = tf.ensure_shape(views, (spec.count, spec.size, spec.size, channels))
        else:
            out[key] = tf.stack(
                [
                    resize_view(
                        image[top : top + h, left : left + w],
                        spec.size,
                        channels,
                        host_views.resize,
                    )
                    for top, left, h, w in windows
                ]
            )
        first += spec.count
    return out


def resize_windows_opencv(image: np.ndarray, windows: np.ndarray, *, size: int, resize: str):
    """Windows of an image resized by OpenCV: ``uint8 [H, W, C]`` and ``int [V, 4]`` rows
    ``(top, left, height, width)`` -> ``uint8 [V, size, size, C]``.

    OpenCV's 8-bit kernels (``cv2.INTER_LINEAR``, ``cv2.INTER_CUBIC``) use half-pixel centres
    and no anti-aliasing, as TensorFlow's, with fixed-point weights: bilinear views are
    within one level of TensorFlow's; bicubic uses Keys' kernel with a = -0.75 (OpenCV's)
    where TensorFlow uses a = -0.5, so edges are a little sharper. Values saturate to
    [0, 255].
    """
    import cv2

    _check_resize(resize)
    kernel = cv2.INTER_LINEAR if resize == "bilinear" else cv2.INTER_CUBIC
    windows = np.asarray(windows)
    out = np.empty((len(windows), size, size, image.shape[-1]), np.uint8)
    for i, (top, left, h, w) in enumerate(windows):
        crop = image[top : top + h, left : left + w]
        out[i] = cv2.resize(crop, (size, size), interpolation=kernel).reshape(out.shape[1:])
    return out


def views_map_fn(host_views: HostViews, *, channels: int, base_seed) -> Callable:
    """A ``tf.data`` map function ``(position, example) -> example`` replacing the encoded
    ``example['image']`` by its views (:func:`example_views`), seeded by ``base_seed``
    (:func:`crop_seed`) and the example's ``position`` in the epoch's stream."""
    import tensorflow as tf

    base = tf.constant(np.asarray(base_seed, np.int64))

    # Plain TensorFlow ops (no Python control flow on tensors): AutoGraph's conversion,
    # which would only cost seconds per epoch's pipeline, is skipped.
    @tf.autograph.experimental.do_not_convert
    def fn(position, example):
        seeds = view_seeds(base, position, host_views.num_views)
        return dict(
            example, **example_views(example["image"], seeds, host_views, channels=channels)
        )

    return fn
