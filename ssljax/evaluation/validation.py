"""Input checks shared by the evaluation functions.

Each check raises a one-line ValueError naming the offending input and
returns None otherwise. Arrays only need ``ndim``, ``shape`` and ``dtype``;
:func:`check_labels` and :func:`check_label_values` additionally need NumPy
boolean indexing when ``num_classes`` is given (pass ``np.asarray`` labels).
"""

from __future__ import annotations

import numpy as np


def check_matrix(name: str, arr, dims: str = "[N, D]") -> None:
    """Requires ``arr`` to be 2-D; ``dims`` names the axes in the message."""
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D {dims}, got shape {tuple(arr.shape)}")


def check_nonempty(name: str, arr) -> None:
    """Requires ``arr`` to have at least one row."""
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")


def check_same_dim(train_x, test_x) -> None:
    """Requires ``[N, D]`` train and test features to share ``D``."""
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"feature dims differ: train_x has {train_x.shape[1]}, test_x has {test_x.shape[1]}"
        )


def check_vector(name: str, labels) -> None:
    """Requires ``labels`` to be 1-D."""
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D [N], got shape {tuple(labels.shape)}")


def check_label_values(name: str, labels, num_classes: int | None = None) -> None:
    """Requires an integer dtype and, if ``num_classes`` is given, values in
    ``[0, num_classes)``."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {labels.dtype}")
    if num_classes is not None:
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.size:
            raise ValueError(f"{name} contains label {bad[0]} outside [0, {num_classes})")


def check_labels(name: str, labels, num_rows: int, num_classes: int | None = None) -> None:
    """Requires ``[num_rows]`` integer labels (in ``[0, num_classes)`` if given)."""
    check_vector(name, labels)
    if labels.shape[0] != num_rows:
        raise ValueError(f"{name} has {labels.shape[0]} labels but features have {num_rows} rows")
    check_label_values(name, labels, num_classes)
