"""ssljax: self-supervised representation learning in JAX."""

import os as _os

# TensorFlow only reads data here (decode, crop, batch). Its start-up notices (oneDNN's
# "custom operations are on", and absl's pre-InitializeLog line it triggers) are not
# actionable for ssljax users; oneDNN only changes TF's own matmuls and convolutions,
# which the input pipeline does not run. A user's explicit setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"

__all__ = ["load_encoder"]


def __getattr__(name: str):
    # ``ssljax.load_encoder`` is imported on first use, so ``import ssljax`` stays light
    # (no JAX models, no TensorFlow).
    if name == "load_encoder":
        from ssljax.encoder import load_encoder

        return load_encoder
    raise AttributeError(f"module 'ssljax' has no attribute {name!r}")
