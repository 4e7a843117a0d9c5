"""A pretrained encoder as a Python object: ``ssljax.load_encoder(workdir).embed(images)``.

``load_encoder`` reads a workdir's checkpoint and the config stored beside it (any filesystem
``etils.epath`` reads, gs:// included), cuts the encoder out of the objective's network, and
returns an :class:`Encoder`. ``Encoder.embed`` takes images of any size and channel count
(``uint8``, or float in ``[0, 1]``), brings them to the encoder's input shape with
:func:`ssljax.evaluation.adapt.adapt_images`, and computes frozen features of any sown layer
on all local devices, exactly as ``python -m ssljax.linear_eval`` extracts them.

Importing this module loads neither JAX's models nor TensorFlow; they are imported when an
encoder is loaded.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ssljax.evaluation.adapt import adapt_images, as_nhwc


class Encoder:
    """A frozen pretrained encoder (see :func:`load_encoder`).

    Attributes:
      config: the run's stored ``ml_collections.ConfigDict``.
      step: the checkpoint's training step.
      image_shape: ``(H, W, C)`` the encoder takes: its dataset's evaluation input, as
        ``linear_eval`` reads it (the training shape, except where the training crop differs,
        e.g. ImageNet's 256 training crop against the 224 evaluation crop).
      layers: the names the encoder sows, in forward order (e.g. ``('block1', ..., 'pooled')``).
      module: the Flax encoder module.
      variables: its variables (``'params'`` and, with BatchNorm, ``'batch_stats'``), on host.
      devices: the devices ``embed`` splits each batch over.
    """

    def __init__(self, *, config, step, image_shape, layers, module, variables, devices):
        self.config = config
        self.step = int(step)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.layers = tuple(layers)
        self.module = module
        self.variables = variables
        self.devices = tuple(devices)
        self._extractors: dict[tuple[str, int], tuple[Any, int]] = {}

    def __repr__(self) -> str:
        return (
            f"Encoder({self.config.model.encoder} trained with {self.config.objective.name} "
            f"on {self.config.dataset.name}, step {self.step}, input {self.image_shape}, "
            f"{len(self.devices)} device(s))"
        )

    def extractor(self, layer: str, grid: int):
        """``(extract, dim)`` for ``layer`` / ``grid``, built once (one copy of the variables
        per device, one compilation per batch size)."""
        key = (layer, grid)
        if key not in self._extractors:
            from ssljax.evaluation import features as feats
            from ssljax.evaluation.checkpoint_eval import encoder_feature_fn

            fn = encoder_feature_fn(self.module, layer=layer, grid=grid)
            mesh = feats.local_mesh(self.devices)
            extract = feats.device_extractor(feats.shard_rows(fn, mesh), self.variables, mesh)
            dim = feats.output_dim(fn, self.variables, self.image_shape)
            self._extractors[key] = (extract, dim)
        return self._extractors[key]

    def embed(
        self, images, layer: str = "pooled", batch_size: int = 256, grid: int = 1
    ) -> np.ndarray:
        """Frozen features of ``images``: ``float32 [N, D]``.

        Args:
          images: ``uint8`` in [0, 255] or float in [0, 1], ``[N, h, w, c]`` or ``[N, h, w]``
            (grey), any size: brought to :attr:`image_shape` by
            :func:`~ssljax.evaluation.adapt.adapt_images` (float images are rounded to 8
            bits, the precision the encoder was trained on).
          layer: one of :attr:`layers` (``'pooled'``: the representation after global
            pooling).
          batch_size: images per step, rounded up to a multiple of the device count; the last
            batch is padded. The result does not depend on it.
          grid: feature maps are average pooled to ``grid x grid`` (``D = grid**2 * C``);
            ignored for vector layers.

        Raises:
          ValueError: a layer the encoder does not sow, a bad ``batch_size`` / ``grid``, or
            images ``adapt_images`` rejects (one line each).
        """
        from ssljax.evaluation.features import round_up

        if layer not in self.layers:
            raise ValueError(f"unknown layer {layer!r}; the encoder sows {list(self.layers)}")
        for name, value in (("batch_size", batch_size), ("grid", grid)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        images = as_nhwc(images)  # rank, dtype and range checked before any work
        adapt_images(images[:1], self.image_shape)  # and the channels
        extract, dim = self.extractor(layer, int(grid))
        n = images.shape[0]
        batch = round_up(min(int(batch_size), max(n, 1)), len(self.devices))
        out = np.empty((n, dim), np.float32)
        pending = None  # the previous batch's result, copied out after the next is dispatched
        for start in range(0, n, batch):
            chunk = adapt_images(images[start : start + batch], self.image_shape)
            rows = chunk.shape[0]
            if rows < batch:
                pad = np.zeros((batch - rows, *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            result = extract(chunk)
            if pending is not None:
                out[pending[0] : pending[0] + pending[1]] = np.asarray(pending[2])[: pending[1]]
            pending = (start, rows, result)
        if pending is not None:
            out[pending[0] : pending[0] + pending[1]] = np.asarray(pending[2])[: pending[1]]
        return out


def load_encoder(
    workdir: str, step: int | None = None, *, devices: Sequence[Any] | None = None
) -> Encoder:
    """The pretrained encoder of ``workdir``'s checkpoint, ready to :meth:`Encoder.embed`.

    Args:
      workdir: a pretraining run directory (local or ``gs://``), as written by
        ``python -m ssljax.train``.
      step: the checkpoint step (default: the newest readable one).
      devices: the devices ``embed`` uses (default: all of this process's devices).

    Raises:
      ValueError: (one line) no checkpoint in the workdir (naming the directory searched),
        or the requested step cannot be read.
    """
    from ssljax.training.loop import restore_for_eval

    config, setup, state, step = restore_for_eval(str(workdir), step)
    return encoder_from_state(config, setup, state, step, devices=devices)


def encoder_from_state(
    config, setup, state, step: int, *, devices: Sequence[Any] | None = None
) -> Encoder:
    """The :class:`Encoder` of a restored checkpoint (``restore_for_eval``'s values)."""
    import jax

    from ssljax.data.datasets import spec_from_config
    from ssljax.evaluation.checkpoint_eval import encoder_of
    from ssljax.models import encoder_layer_names

    module, variables = encoder_of(setup, state.params, state.model_state)
    # The evaluation input, as linear_eval reads it (ImageNet: the 224 centre crop).
    image_shape = tuple(spec_from_config(config.dataset).image_shape)
    sample = jax.ShapeDtypeStruct((1, *image_shape), jax.numpy.float32)
    layers = encoder_layer_names(module, variables, sample)
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device, got an empty list")
    return Encoder(
        config=config,
        step=step,
        image_shape=image_shape,
        layers=layers,
        module=module,
        variables=variables,
        devices=devices,
    )
