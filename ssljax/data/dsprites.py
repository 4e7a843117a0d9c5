"""dSprites rendered from its factor grid, with no download.

dSprites (Matthey et al. 2017, used by beta-VAE and by Locatello et al. 2019) is
every combination of five factors, each rendered once as a 64x64 binary image:

======================  ======  ===========================================
factor                  values  value grid
======================  ======  ===========================================
shape                   3       square, ellipse, heart (values 1, 2, 3)
scale                   6       ``linspace(0.5, 1, 6)``
orientation             40      ``2 pi k / 40``, k = 0..39 (in [0, 2 pi))
x position              32      ``linspace(0, 1, 32)``
y position              32      ``linspace(0, 1, 32)``
======================  ======  ===========================================

3 * 6 * 40 * 32 * 32 = 737,280 images. Image ``index = dot(factor_indices,
FACTOR_BASES)`` with the factors in the order above (y position varies fastest),
as in the original ``.npz`` and in disentanglement_lib.

Our rendering (the original file is not reproduced pixel for pixel; these are
our choices):

* a pixel is on when its centre lies inside the sprite (binary, no antialiasing);
* a scale-1 square has half side :data:`BASE_HALF_SIZE_PX` = 10 pixels, the
  ellipse has semi-axes 1.3 and 0.65 of that unit, the heart is the curve
  ``(x^2 + y^2 - 1)^3 <= x^2 y^3`` (centred on its bounding box);
* orientation rotates the sprite counter-clockwise as seen in the image; the
  original lists 40 orientations in the closed interval [0, 2 pi], whose first
  and last value give the same image; ours are 40 distinct angles in [0, 2 pi);
* the sprite centre is at pixel coordinates ``(16 + i_x, 16 + i_y)`` (pixel
  corners, ``x`` to the right, ``y`` downwards), i.e. position value ``p`` maps
  to ``16 + 31 p``: one pixel per position step, and the largest rotated sprite
  stays inside the frame.

Because every sprite centre is a pixel corner, moving the sprite by one
position step moves its mask by exactly one pixel, and rotating by a quarter
turn (10 orientation steps) rotates the mask exactly (quarter turns are done by
swapping coordinates, not with ``cos``/``sin``). So the 720 masks of
(shape, scale, orientation) are rasterised once on a 32x32 window, and every
image is its window pasted at its position: :func:`render_images` renders any
batch of indices by one gather, and the whole set (``iter_all_images``) in
1.8 s (numpy on 2 shared CPU cores; the 720 windows take 0.2 s of it). The
per-pixel reference :func:`render_direct` needs about 2 ms per image, i.e.
about 25 minutes for the set.

Two ways to use it:

* :class:`DSprites` -- the ground-truth-data interface the disentanglement
  metrics use (``factor_sizes``, ``num_factors``, ``sample_factors``,
  ``sample_observations_from_factors``, ``sample``), rendering on demand.
* :class:`DSpritesBuilder` -- a TFDS builder registered as ``dsprites`` (``tfds.load(
  'dsprites')`` and ``ssljax.data.input_pipeline`` with the ``dsprites`` dataset
  spec), one ``train`` split of all images in index order. Images are stored as
  0/255 so that ``augment.to_float`` (uint8 / 255) gives exactly {0, 1}. TFDS
  takes a builder's registered name from its ``name`` attribute when the class
  sets one (else from the class name in snake case), so the class name is free.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import tensorflow_datasets as tfds

from ssljax.data.fashion_mnist import encode_png_gray

FACTOR_NAMES = ("shape", "scale", "orientation", "x_position", "y_position")
FACTOR_SIZES = (3, 6, 40, 32, 32)
NUM_FACTORS = len(FACTOR_SIZES)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280
# index = dot(factor_indices, FACTOR_BASES): (245760, 40960, 1024, 32, 1).
FACTOR_BASES = tuple(int(NUM_IMAGES // np.prod(FACTOR_SIZES[: i + 1])) for i in range(NUM_FACTORS))
SHAPE_NAMES = ("square", "ellipse", "heart")
IMAGE_SIZE = 64
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)

# Rendering geometry (ours; see the module docstring).
BASE_HALF_SIZE_PX = 10.0
ELLIPSE_SEMI_AXES = (1.3, 0.65)
HEART_Y_SHIFT = 0.118  # centres the heart's bounding box (y in [-1, 1.236]) on 0
WINDOW = 32  # side of the window every sprite is rasterised on
FIRST_CENTER_PX = WINDOW // 2  # sprite centre at position index 0
QUARTER_TURN = FACTOR_SIZES[2] // 4  # orientation steps in 90 degrees

_ORIENTATION_STEP = 2.0 * np.pi / FACTOR_SIZES[2]


def factor_values() -> dict[str, np.ndarray]:
    """The value grid of every factor (float64), keyed by :data:`FACTOR_NAMES`."""
    return {
        "shape": np.arange(1.0, FACTOR_SIZES[0] + 1.0),
        "scale": np.linspace(0.5, 1.0, FACTOR_SIZES[1]),
        "orientation": _ORIENTATION_STEP * np.arange(FACTOR_SIZES[2]),
        "x_position": np.linspace(0.0, 1.0, FACTOR_SIZES[3]),
        "y_position": np.linspace(0.0, 1.0, FACTOR_SIZES[4]),
    }


def _check_factors(factors: np.ndarray) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.shape[-1:] != (NUM_FACTORS,):
        raise ValueError(
            f"factors must have a last axis of {NUM_FACTORS}, got shape {factors.shape}"
        )
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factor indices must be integers, got dtype {factors.dtype}")
    bad = (factors < 0) | (factors >= np.asarray(FACTOR_SIZES))
    if bad.any():
        j = int(np.argwhere(bad)[0][-1])
        value = int(factors[..., j][bad[..., j]][0])
        raise ValueError(
            f"factor {FACTOR_NAMES[j]} index {value} is out of range; valid: 0..{FACTOR_SIZES[j] - 1}"
        )
    return factors.astype(np.int64)


def factors_to_index(factors: np.ndarray) -> np.ndarray:
    """Image indices ``dot(factors, FACTOR_BASES)`` of integer factors ``[..., 5]``."""
    return _check_factors(factors) @ np.asarray(FACTOR_BASES, np.int64)


def index_to_factors(index: np.ndarray) -> np.ndarray:
    """Factor indices ``[..., 5]`` (int64) of image indices (inverse of :func:`factors_to_index`)."""
    index = np.asarray(index)
    if not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"image indices must be integers, got dtype {index.dtype}")
    if index.size and (index.min() < 0 or index.max() >= NUM_IMAGES):
        raise ValueError(f"image index out of range; valid: 0..{NUM_IMAGES - 1}")
    index = index.astype(np.int64)
    return np.stack(
        [(index // base) % size for base, size in zip(FACTOR_BASES, FACTOR_SIZES)], axis=-1
    )


def factor_values_of(factors: np.ndarray) -> np.ndarray:
    """Float values ``[..., 5]`` of integer factor indices (see :func:`factor_values`)."""
    factors = _check_factors(factors)
    grids = factor_values()
    return np.stack([grids[name][factors[..., j]] for j, name in enumerate(FACTOR_NAMES)], axis=-1)


# --------------------------------------------------------------------------
# Rasterising.


def _quarter_turns(
    x: np.ndarray, y: np.ndarray, turns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rotates points clockwise by ``turns`` quarter turns, exactly (coordinate swaps)."""
    turns = np.broadcast_to(turns % 4, np.broadcast_shapes(x.shape, y.shape, np.shape(turns)))
    x, y = np.broadcast_to(x, turns.shape), np.broadcast_to(y, turns.shape)
    # Clockwise quarter turn: (x, y) -> (y, -x).
    new_x = np.select([turns == 0, turns == 1, turns == 2], [x, y, -x], -y)
    new_y = np.select([turns == 0, turns == 1, turns == 2], [y, -x, -y], x)
    return new_x, new_y


def sprite_mask(
    shape: np.ndarray,
    scale: np.ndarray,
    orientation: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
) -> np.ndarray:
    """Whether pixel centres at offsets ``(dx, dy)`` from a sprite centre are inside it.

    The single rasteriser every image comes from. All arguments broadcast
    against each other.

    Args:
      shape, scale, orientation: integer factor indices.
      dx: pixel-centre offset to the right of the sprite centre, in pixels.
      dy: pixel-centre offset below the sprite centre, in pixels.

    Returns:
      A boolean array of the broadcast shape.
    """
    shape, scale, orientation = (np.asarray(a, np.int64) for a in (shape, scale, orientation))
    # Image offsets -> a y-up frame, then undo the sprite's rotation: quarter
    # turns exactly, the remaining angle (< 90 degrees) with cos/sin.
    x = np.asarray(dx, np.float64)
    y = -np.asarray(dy, np.float64)
    x, y = _quarter_turns(x, y, orientation // QUARTER_TURN)
    angle = _ORIENTATION_STEP * (orientation % QUARTER_TURN)
    c, s = np.cos(angle), np.sin(angle)
    unit = BASE_HALF_SIZE_PX * factor_values()["scale"][scale]
    u = (c * x + s * y) / unit
    v = (c * y - s * x) / unit

    square = np.maximum(np.abs(u), np.abs(v)) <= 1.0
    a, b = ELLIPSE_SEMI_AXES
    ellipse = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    hy = v + HEART_Y_SHIFT
    heart = (u**2 + hy**2 - 1.0) ** 3 - u**2 * hy**3 <= 0.0
    return np.select([shape == 0, shape == 1], [square, ellipse], heart)


def render_windows() -> np.ndarray:
    """The 720 sprite masks on their 32x32 window: bool ``[3, 6, 40, 32, 32]``.

    The sprite centre is the window's central pixel corner (16, 16).
    """
    offsets = np.arange(WINDOW) + 0.5 - FIRST_CENTER_PX
    shape, scale, orientation = np.meshgrid(
        *(np.arange(n) for n in FACTOR_SIZES[:3]), indexing="ij"
    )
    return sprite_mask(
        shape[..., None, None],
        scale[..., None, None],
        orientation[..., None, None],
        offsets[None, None, None, None, :],
        offsets[None, None, None, :, None],
    )


def render_direct(factors: np.ndarray) -> np.ndarray:
    """Reference renderer: rasterises each whole 64x64 image from its factors.

    Slower than :func:`render_images` (every pixel of every image is tested) and
    independent of its window pasting; used to check it.

    Returns:
      uint8 ``[..., 64, 64, 1]`` with values in {0, 1}.
    """
    factors = _check_factors(factors)
    centres = FIRST_CENTER_PX + factors[..., 3:5].astype(np.float64)
    pixel = np.arange(IMAGE_SIZE) + 0.5
    dx = pixel[None, :] - centres[..., 0, None, None]
    dy = pixel[:, None] - centres[..., 1, None, None]
    f = factors[..., None, None, :]
    mask = sprite_mask(f[..., 0], f[..., 1], f[..., 2], dx, dy)
    return mask.astype(np.uint8)[..., None]


class Renderer:
    """Renders dSprites images by index from the 720 pre-rasterised windows.

    Each window is padded into a 96x96 canvas with the sprite at [32:64, 32:64];
    the image with the sprite's top-left window corner at (row, col) = (i_y, i_x)
    is the 64x64 crop of that canvas starting at (32 - i_y, 32 - i_x). A strided
    view of all crops lets :meth:`images` gather any batch in one indexing op.
    """

    def __init__(self):
        windows = render_windows().reshape(-1, WINDOW, WINDOW)
        pad = IMAGE_SIZE - WINDOW  # 32
        side = WINDOW + 2 * pad  # 96
        canvas = np.zeros((len(windows), side, side), np.uint8)
        canvas[:, pad : pad + WINDOW, pad : pad + WINDOW] = windows
        self._windows = windows
        self._canvas = canvas
        # [720, 33, 33, 64, 64] view (no copy).
        self._crops = np.lib.stride_tricks.sliding_window_view(
            canvas, (IMAGE_SIZE, IMAGE_SIZE), axis=(1, 2)
        )

    @property
    def windows(self) -> np.ndarray:
        """uint8 ``[720, 32, 32]`` masks, index ``shape * 240 + scale * 40 + orientation``."""
        return self._windows

    def images(self, index: np.ndarray) -> np.ndarray:
        """uint8 images ``[len(index), 64, 64, 1]`` with values in {0, 1}."""
        factors = index_to_factors(np.asarray(index).reshape(-1))
        return self.images_from_factors(factors)

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """uint8 images ``[n, 64, 64, 1]`` in {0, 1} of integer factors ``[n, 5]``."""
        factors = _check_factors(factors).reshape(-1, NUM_FACTORS)
        sprite = (factors[:, 0] * FACTOR_SIZES[1] + factors[:, 1]) * FACTOR_SIZES[2] + factors[:, 2]
        pad = IMAGE_SIZE - WINDOW
        return self._crops[sprite, pad - factors[:, 4], pad - factors[:, 3]][..., None]


def render_images(index: np.ndarray, renderer: Optional[Renderer] = None) -> np.ndarray:
    """uint8 ``[n, 64, 64, 1]`` images in {0, 1} of image indices (see :class:`Renderer`)."""
    return (renderer or Renderer()).images(index)


def index_chunks(
    chunk_size: int = 4096, start: int = 0, stop: int = NUM_IMAGES
) -> Iterator[np.ndarray]:
    """Consecutive index ranges covering ``[start, stop)`` exactly once, in order."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if not 0 <= start <= stop <= NUM_IMAGES:
        raise ValueError(f"need 0 <= start <= stop <= {NUM_IMAGES}, got start={start}, stop={stop}")
    for first in range(start, stop, chunk_size):
        yield np.arange(first, min(first + chunk_size, stop), dtype=np.int64)


def iter_all_images(
    chunk_size: int = 4096, renderer: Optional[Renderer] = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields ``(indices, images)`` chunks that render all 737,280 images once, in index order."""
    renderer = renderer or Renderer()
    for indices in index_chunks(chunk_size):
        yield indices, renderer.images(indices)


# --------------------------------------------------------------------------
# Ground-truth-data interface (as disentanglement_lib's GroundTruthData).


def as_random_state(random_state) -> np.random.RandomState:
    """``np.random.RandomState`` from a RandomState (returned as is) or an int seed."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    raise ValueError(
        f"random_state must be a numpy RandomState or an int seed, got {type(random_state).__name__}"
    )


class FactorGridData:
    """Ground-truth data on a full grid of discrete factors.

    The interface of disentanglement_lib's ``GroundTruthData``: factors are
    integer indices sampled independently and uniformly, one factor after the
    other with ``random_state.randint(size, size=num)`` (so a given
    ``RandomState`` draws the same factors as disentanglement_lib does).
    Subclasses define :meth:`sample_observations_from_factors`.
    """

    def __init__(self, factor_sizes, factor_names: Optional[tuple[str, ...]] = None):
        sizes = tuple(int(s) for s in factor_sizes)
        if not sizes or min(sizes) < 1:
            raise ValueError(f"factor_sizes must be positive integers, got {factor_sizes}")
        self._factor_sizes = sizes
        self._factor_names = tuple(factor_names or (f"factor_{i}" for i in range(len(sizes))))
        if len(self._factor_names) != len(sizes):
            raise ValueError(f"{len(self._factor_names)} factor names for {len(sizes)} factors")

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        """Number of values of each factor."""
        return self._factor_sizes

    @property
    def factor_names(self) -> tuple[str, ...]:
        return self._factor_names

    @property
    def num_factors(self) -> int:
        return len(self._factor_sizes)

    @property
    def factors_num_values(self) -> list[int]:
        """disentanglement_lib's name for :attr:`factor_sizes`."""
        return list(self._factor_sizes)

    def sample_factors(self, num: int, random_state) -> np.ndarray:
        """``num`` factor tuples, int64 ``[num, num_factors]``, uniform and independent."""
        random_state = as_random_state(random_state)
        factors = np.zeros((num, self.num_factors), np.int64)
        for j, size in enumerate(self._factor_sizes):
            factors[:, j] = random_state.randint(size, size=num)
        return factors

    def sample_observations_from_factors(self, factors: np.ndarray, random_state) -> np.ndarray:
        """The observations of ``factors``; each dataset (``DSprites``) renders its own."""
        raise NotImplementedError(
            f"{type(self).__name__} does not render observations; use a dataset class such "
            "as DSprites"
        )

    def sample(self, num: int, random_state) -> tuple[np.ndarray, np.ndarray]:
        """``(factors [num, num_factors], observations [num, ...])``."""
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state) -> np.ndarray:
        return self.sample(num, random_state)[1]


class DSprites(FactorGridData):
    """dSprites as ground-truth data: five factors, observations rendered on demand.

    Observations are float32 ``[n, 64, 64, 1]`` with values in {0, 1} (as
    disentanglement_lib's ``DSprites``); rendering uses no randomness, so
    ``random_state`` is only used for sampling factors.
    """

    observation_shape = IMAGE_SHAPE

    def __init__(self):
        super().__init__(FACTOR_SIZES, FACTOR_NAMES)
        self._renderer = Renderer()

    @property
    def renderer(self) -> Renderer:
        return self._renderer

    def images(self, index: np.ndarray) -> np.ndarray:
        """uint8 images in {0, 1} of image indices."""
        return self._renderer.images(index)

    def sample_observations_from_factors(
        self, factors: np.ndarray, random_state=None
    ) -> np.ndarray:
        del random_state  # Rendering is deterministic.
        return self._renderer.images_from_factors(factors).astype(np.float32)


# --------------------------------------------------------------------------
# TFDS builder.


class DSpritesBuilder(tfds.core.GeneratorBasedBuilder):
    """dSprites rendered in code (registered as ``dsprites`` by its ``name``; nothing
    downloaded).

    Takes the name of TFDS's own (downloading) ``dsprites`` builder and keeps its
    feature names; differences: images are 0/255 (TFDS's are 0/1), the rendering
    is ours (see the module docstring), and an ``index`` feature gives each
    image's position. One ``train`` split in index order.
    """

    name = "dsprites"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "dSprites rendered from its factor grid by ssljax."}
    url_infos = None  # Nothing downloaded (see fashion_mnist.FashionMnistLocal).
    GENERATED_IN_CODE = True  # preparing it needs no network, even under SSLJAX_NO_DOWNLOAD

    # Examples per rendered chunk in _generate_examples.
    CHUNK_SIZE = 4096

    def _info(self) -> tfds.core.DatasetInfo:
        features = {"image": tfds.features.Image(shape=IMAGE_SHAPE), "index": np.int64}
        for name, size in zip(FACTOR_NAMES, FACTOR_SIZES):
            if name == "shape":
                features["label_shape"] = tfds.features.ClassLabel(names=list(SHAPE_NAMES))
            else:
                features[f"label_{name}"] = tfds.features.ClassLabel(num_classes=size)
            features[f"value_{name}"] = tfds.features.Tensor(shape=(), dtype=np.float32)
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "dSprites: 737,280 64x64 binary images of a square, ellipse or heart at every "
                "combination of 6 scales, 40 orientations and 32x32 positions, rendered in code."
            ),
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label_shape"),
            homepage="https://github.com/deepmind/dsprites-dataset",
            disable_shuffling=True,  # Keep index order: position in split == image index.
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing is downloaded.
        return {"train": self._generate_examples(0, NUM_IMAGES)}

    def _generate_examples(self, start: int, stop: int) -> Iterator[tuple[int, dict]]:
        renderer = Renderer()
        values = factor_values()
        for indices in index_chunks(self.CHUNK_SIZE, start, stop):
            factors = index_to_factors(indices)
            pngs = encode_png_gray(renderer.images_from_factors(factors) * np.uint8(255))
            for index, f, png in zip(indices.tolist(), factors.tolist(), pngs):
                example = {"image": png, "index": index}
                for j, name in enumerate(FACTOR_NAMES):
                    example[f"label_{name}"] = f[j]
                    example[f"value_{name}"] = np.float32(values[name][f[j]])
                yield index, example
