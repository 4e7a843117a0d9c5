"""Figures of a disentanglement evaluation: reconstructions, latent traversals and a 2-D
embedding of the representation coloured by each factor (PNG, on any filesystem)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

EMBEDDINGS = ("pca", "tsne")


def _save_figure(fig, path, dpi: int) -> None:
    """Writes ``fig`` as PNG to ``path`` on any filesystem (etils.epath; gs:// works)."""
    import io

    from etils import epath

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    epath.Path(path).write_bytes(buffer.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_reconstructions(path: str, images: np.ndarray, reconstructions: np.ndarray) -> None:
    """Two rows: images (top) and reconstructions (bottom), ``[n, H, W, 1]`` in [0, 1]."""
    plt = _pyplot()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.6), squeeze=False)
    for i in range(n):
        for row, img in enumerate((images[i], reconstructions[i])):
            ax = axes[row, i]
            ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("recon.")
    fig.tight_layout()
    _save_figure(fig, path, dpi=80)
    plt.close(fig)


def save_traversals(path: str, grid: np.ndarray, labels: Sequence[str]) -> None:
    """``grid [rows, cols, H, W, 1]`` of decoded traversals, one labelled row per latent."""
    plt = _pyplot()
    rows, cols = grid.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.0 * cols + 1.2, 1.0 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(grid[r, c, ..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(labels[r], rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path, dpi=70)
    plt.close(fig)


def embed_2d(codes: np.ndarray, method: str = "pca", random_state: int = 0) -> np.ndarray:
    """A 2-D embedding ``[n, 2]`` of ``codes`` by PCA or t-SNE (scikit-learn)."""
    if method not in EMBEDDINGS:
        raise ValueError(f"embedding={method!r} is invalid; choose one of {EMBEDDINGS}")
    codes = np.asarray(codes, np.float64)
    if codes.shape[1] < 2:
        return np.concatenate([codes, np.zeros_like(codes)], axis=1)[:, :2]
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(codes) - 1) / 3.0)))
        return TSNE(
            n_components=2, init="pca", perplexity=perplexity, random_state=random_state
        ).fit_transform(codes)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=random_state).fit_transform(codes)


def save_embedding(
    path: str, points: np.ndarray, factors: np.ndarray, factor_names: Sequence[str], method: str
) -> None:
    """One scatter panel per factor, points coloured by the factor's index."""
    plt = _pyplot()
    k = factors.shape[1]
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.2), squeeze=False)
    for j in range(k):
        ax = axes[0, j]
        few = int(factors[:, j].max()) < 10  # categorical colours, one per value
        sc = ax.scatter(
            points[:, 0],
            points[:, 1],
            c=factors[:, j],
            s=3,
            cmap="tab10" if few else "viridis",
            vmin=-0.5 if few else None,
            vmax=9.5 if few else None,
        )
        ax.set_title(factor_names[j], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle(f"{dict(pca='PCA', tsne='t-SNE')[method]} of the representation", fontsize=10)
    fig.tight_layout()
    _save_figure(fig, path, dpi=70)
    plt.close(fig)


def traversal_grid(
    decode_fn: Callable,
    code: np.ndarray,
    codes: np.ndarray,
    order: Sequence[int],
    *,
    steps: int = 9,
) -> np.ndarray:
    """Decoded traversals ``[len(order), steps, H, W, C]`` (probabilities): latent ``d`` of
    ``code`` set to ``steps`` values over the 2%-98% range of ``codes[:, d]``."""
    rows = []
    for d in order:
        lo, hi = np.quantile(codes[:, d], [0.02, 0.98])
        if hi - lo < 1e-6:
            lo, hi = lo - 1.0, hi + 1.0
        z = np.repeat(code[None], steps, axis=0).astype(np.float32)
        z[:, d] = np.linspace(lo, hi, steps)
        rows.append(decode_fn(z))
    logits = np.stack(rows)
    return 1.0 / (1.0 + np.exp(-logits))
