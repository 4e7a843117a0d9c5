"""Device-side view making: augmentations, corruptions and pretext transforms.

Everything here is a pure function of a PRNG key and a ``uint8`` batch, jit/vmap/shard_map
friendly, and imports neither TensorFlow nor TFDS; host-side input (reading, decoding,
shuffling, batching) lives in ``ssljax.data``.

  augment       SimCLR-style random crops, flips, colour jitter, blur (``make_views``).
  corruptions   masks, noise and colour-space transforms for the reconstruction tasks.
  pretext       rotations, jigsaw permutations and relative patch positions with labels.
"""
