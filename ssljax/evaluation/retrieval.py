"""Retrieval and clustering metrics of an embedding (Musgrave, Belongie & Lim 2020).

"A Metric Learning Reality Check" scores an embedding by how well cosine nearest
neighbours retrieve examples of the query's class, and by how well k-means recovers the
classes:

* **R@1** (Recall@1): the fraction of queries whose nearest neighbour has their class.
* **R-Precision**: for a query with ``R`` relevant gallery items (the other examples of its
  class), the fraction of its ``R`` nearest neighbours that are relevant.
* **MAP@R**: mean average precision over the first ``R`` ranks,
  ``MAP@R = 1/R * sum_{i=1}^{R} P(i) rel(i)``, where ``rel(i)`` is 1 if the neighbour at rank
  ``i`` is relevant and ``P(i)`` the precision of the first ``i`` ranks. Unlike R-Precision it
  rewards relevant items ranked first.
* **NMI**: normalised mutual information between k-means clusters (``k`` = number of
  classes) and the labels.

Conventions:

* Neighbours are ranked by cosine similarity: features are L2-normalised (an all-zero row
  stays zero and has similarity 0 with everything). Ties are broken by lower gallery index
  (``jax.lax.top_k``).
* Without a gallery every example queries all the *other* examples (leave-one-out: the query
  itself is excluded), so ``R`` = its class size - 1. With ``gallery_features`` /
  ``gallery_labels`` (e.g. test queries against a train gallery) nothing is excluded and
  ``R`` = the number of gallery items of the query's class.
* **Lone queries**: a query whose class has no other example in the gallery has ``R = 0``, so
  R-Precision and MAP@R are undefined for it. As pytorch-metric-learning's
  ``AccuracyCalculator`` does, such queries are left out of *every* metric (R@1 included, so
  all metrics average over the same queries) and counted in ``num_lone_queries``; with
  ``lone_queries='raise'`` they are a ValueError instead. If every query is lone, it is a
  ValueError either way.
* ``max_r`` caps ``R`` at ``max_r`` (R-Precision and MAP@R then look at the first
  ``min(R, max_r)`` ranks), bounding the neighbours ranked per query for huge classes.
* The ranking runs on the device in chunks of ``chunk_rows`` queries: each chunk computes a
  ``[chunk_rows, gallery_size]`` block of similarities and keeps its ``jax.lax.top_k``; the
  full ``N x N`` matrix is never built.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.evaluation.validation import (
    check_label_values,
    check_labels,
    check_matrix,
    check_nonempty,
    check_vector,
)

_HIGHEST = jax.lax.Precision.HIGHEST
LONE_QUERY_CHOICES = ("skip", "raise")
DEFAULT_CHUNK_ROWS = 256


@jax.jit
def _l2_normalize(x: jax.Array) -> jax.Array:
    """Row-wise L2 normalisation of ``[N, D]`` features (zero rows stay zero)."""
    x = x.astype(jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def metrics_from_relevance(relevance, r) -> dict[str, jax.Array]:
    """Per-query R@1, R-Precision and MAP@R from ranked relevance.

    Args:
      relevance: ``[Q, K]`` bool, ``relevance[q, i]`` whether the neighbour at rank ``i + 1``
        of query ``q`` has the query's class.
      r: ``[Q]`` int, the number of relevant items ``R`` of each query, ``0 <= R <= K``
        (ranks beyond ``R`` are ignored; a query with ``R = 0`` scores 0).

    Returns:
      ``{'recall_at_1', 'r_precision', 'map_at_r'}``, each ``[Q]`` float32.
    """
    chex.assert_rank([relevance, r], [2, 1])
    chex.assert_equal_shape_prefix([relevance, r], 1)
    rel = jnp.asarray(relevance).astype(jnp.float32)
    r = jnp.asarray(r)
    ranks = jnp.arange(1, rel.shape[1] + 1, dtype=jnp.float32)  # i = 1..K
    within = (ranks[None, :] <= r[:, None]).astype(jnp.float32)  # i <= R
    precision_at_i = jnp.cumsum(rel, axis=1) / ranks[None, :]  # P(i)
    denom = jnp.maximum(r, 1).astype(jnp.float32)
    return {
        "recall_at_1": rel[:, 0] * (r > 0),
        "r_precision": jnp.sum(rel * within, axis=1) / denom,
        "map_at_r": jnp.sum(precision_at_i * rel * within, axis=1) / denom,
    }


@functools.partial(jax.jit, static_argnames=("k", "exclude_self"))
def _chunk_neighbours(gallery_xn, query_chunk, offset, *, k: int, exclude_self: bool):
    """Top-``k`` cosine neighbours of one query chunk: ``(indices [B, k], sims [B, k])``.

    With ``exclude_self``, query row ``b`` is gallery row ``offset + b`` and is excluded.
    """
    chex.assert_rank([gallery_xn, query_chunk], 2)
    sims = jnp.dot(_l2_normalize(query_chunk), gallery_xn.T, precision=_HIGHEST)  # [B, N]
    if exclude_self:
        rows = jnp.arange(query_chunk.shape[0])
        # Rows past the gallery (padding of the last chunk) scatter out of bounds: dropped.
        sims = sims.at[rows, offset + rows].set(-jnp.inf, mode="drop")
    top_sims, top_idx = jax.lax.top_k(sims, k)
    return top_idx, top_sims


@functools.partial(jax.jit, static_argnames=("k", "exclude_self"))
def _chunk_metrics(gallery_xn, gallery_y, query_chunk, query_y, r, offset, *, k, exclude_self):
    """Per-query metrics of one chunk (the ranked labels never leave the device)."""
    top_idx, _ = _chunk_neighbours(gallery_xn, query_chunk, offset, k=k, exclude_self=exclude_self)
    relevance = gallery_y[top_idx] == query_y[:, None]
    return metrics_from_relevance(relevance, r)


def _as_features(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    check_matrix(name, x)
    check_nonempty(name, x)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return x


def _as_labels(name: str, labels, num_rows: int, rows_name: str) -> np.ndarray:
    labels = np.asarray(labels)
    check_vector(name, labels)
    if labels.shape[0] != num_rows:
        raise ValueError(f"{name} has {labels.shape[0]} labels but {rows_name} has {num_rows} rows")
    check_label_values(name, labels)
    return labels


def _check_chunk_rows(chunk_rows) -> int:
    if int(chunk_rows) < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return int(chunk_rows)


def nearest_neighbours(
    query_features,
    gallery_features=None,
    *,
    k: int,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar gallery rows of every query, computed in chunks.

    Args:
      query_features: ``[Q, D]`` features.
      gallery_features: ``[N, D]`` features; None ranks the queries against each other,
        leaving each query itself out.
      k: neighbours per query, ``1 <= k <=`` the number of candidates (``N``, or ``Q - 1``
        without a gallery).
      chunk_rows: queries per device step (each holds ``[chunk_rows, N]`` similarities).

    Returns:
      ``(indices int32 [Q, k], similarities float32 [Q, k])``, nearest first.
    """
    query = _as_features("query_features", query_features)
    exclude_self = gallery_features is None
    gallery = query if exclude_self else _as_features("gallery_features", gallery_features)
    if gallery.shape[1] != query.shape[1]:
        raise ValueError(
            f"feature dims differ: query_features has {query.shape[1]}, "
            f"gallery_features has {gallery.shape[1]}"
        )
    candidates = gallery.shape[0] - int(exclude_self)
    if not 1 <= int(k) <= candidates:
        raise ValueError(f"k must be in [1, {candidates}] (the candidates per query), got {k}")
    chunk_rows = _check_chunk_rows(chunk_rows)
    gallery_xn = _l2_normalize(jnp.asarray(gallery))
    indices, sims = [], []
    for start, chunk in _chunks(query, chunk_rows):
        idx, sim = _chunk_neighbours(
            gallery_xn, jnp.asarray(chunk), start, k=int(k), exclude_self=exclude_self
        )
        indices.append(np.asarray(idx))
        sims.append(np.asarray(sim))
    n = query.shape[0]
    return np.concatenate(indices)[:n], np.concatenate(sims)[:n]


def _chunks(x: np.ndarray, rows: int):
    """``(start, chunk)`` over ``x`` in ``rows``-row chunks, the last one zero-padded (one
    compiled shape; padded rows are dropped by the caller)."""
    rows = min(rows, x.shape[0])
    for start in range(0, x.shape[0], rows):
        chunk = x[start : start + rows]
        pad = rows - chunk.shape[0]
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
        yield start, chunk


def retrieval_metrics(
    features,
    labels,
    *,
    gallery_features=None,
    gallery_labels=None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_r: int | None = None,
    lone_queries: str = "skip",
    nmi: bool = True,
    seed: int = 0,
) -> dict:
    """R@1, R-Precision, MAP@R (and k-means NMI) of an embedding (Musgrave et al. 2020).

    Args:
      features: ``[Q, D]`` query features.
      labels: ``[Q]`` integer query labels.
      gallery_features: ``[N, D]`` features to retrieve from; None: leave-one-out over
        ``features`` (each query retrieves among the other queries).
      gallery_labels: ``[N]`` integer gallery labels (given together with
        ``gallery_features``).
      chunk_rows: queries per device step (each holds ``[chunk_rows, N]`` similarities).
      max_r: cap on ``R`` (None: no cap).
      lone_queries: ``'skip'`` leaves queries with ``R = 0`` out of every metric;
        ``'raise'`` makes them a ValueError.
      nmi: also compute :func:`kmeans_nmi` of ``features`` and ``labels``.
      seed: k-means seed.

    Returns:
      ``{'recall_at_1', 'r_precision', 'map_at_r', ['nmi'], 'num_queries'`` (scored),
      ``'num_lone_queries', 'mean_r'}`` (``mean_r``: mean ``R`` after ``max_r``).
    """
    query = _as_features("features", features)
    query_y = _as_labels("labels", labels, query.shape[0], "features")
    if (gallery_features is None) != (gallery_labels is None):
        raise ValueError("gallery_features and gallery_labels must be given together")
    exclude_self = gallery_features is None
    if exclude_self:
        gallery, gallery_y = query, query_y
    else:
        gallery = _as_features("gallery_features", gallery_features)
        gallery_y = _as_labels("gallery_labels", gallery_labels, gallery.shape[0], "gallery")
        if gallery.shape[1] != query.shape[1]:
            raise ValueError(
                f"feature dims differ: features has {query.shape[1]}, "
                f"gallery_features has {gallery.shape[1]}"
            )
    if max_r is not None and int(max_r) < 1:
        raise ValueError(f"max_r must be None or >= 1, got {max_r}")
    if lone_queries not in LONE_QUERY_CHOICES:
        raise ValueError(f"lone_queries must be one of {LONE_QUERY_CHOICES}, got {lone_queries!r}")
    chunk_rows = _check_chunk_rows(chunk_rows)

    # Labels of both sets as indices into their union; R from the gallery's class sizes.
    classes, inverse = np.unique(np.concatenate([query_y, gallery_y]), return_inverse=True)
    qy = inverse[: query_y.shape[0]].astype(np.int32)
    gy = inverse[query_y.shape[0] :].astype(np.int32)
    r = np.bincount(gy, minlength=classes.shape[0])[qy] - int(exclude_self)
    if max_r is not None:
        r = np.minimum(r, int(max_r))
    lone = r == 0
    if lone.all():
        raise ValueError(
            "no query has another example of its class in the gallery (R = 0 for all "
            f"{r.shape[0]} queries): retrieval metrics are undefined"
        )
    if lone.any() and lone_queries == "raise":
        q = int(np.flatnonzero(lone)[0])
        raise ValueError(
            f"query {q} (label {query_y[q]}) has no other example of its class in the gallery "
            "(R = 0); pass lone_queries='skip' to leave such queries out"
        )
    k = int(r.max())

    gallery_xn = _l2_normalize(jnp.asarray(gallery))
    gy_dev = jnp.asarray(gy)
    per_query = {"recall_at_1": [], "r_precision": [], "map_at_r": []}
    for start, chunk in _chunks(query, chunk_rows):
        rows = chunk.shape[0]
        chunk_y = np.zeros(rows, np.int32)
        chunk_r = np.zeros(rows, np.int32)
        real = min(rows, query.shape[0] - start)
        chunk_y[:real] = qy[start : start + real]
        chunk_r[:real] = r[start : start + real]
        out = _chunk_metrics(
            gallery_xn,
            gy_dev,
            jnp.asarray(chunk),
            jnp.asarray(chunk_y),
            jnp.asarray(chunk_r),
            start,
            k=k,
            exclude_self=exclude_self,
        )
        for name in per_query:
            per_query[name].append(np.asarray(out[name])[:real])

    keep = ~lone
    report = {
        name: float(np.mean(np.concatenate(values)[keep], dtype=np.float64))
        for name, values in per_query.items()
    }
    if nmi:
        report["nmi"] = kmeans_nmi(query, query_y, seed=seed)
    report.update(
        num_queries=int(keep.sum()),
        num_lone_queries=int(lone.sum()),
        mean_r=float(r[keep].mean()),
    )
    return report


def recall_at_1(features, labels, **kwargs) -> float:
    """R@1 (Musgrave et al. 2020); arguments as :func:`retrieval_metrics`."""
    return retrieval_metrics(features, labels, nmi=False, **kwargs)["recall_at_1"]


def r_precision(features, labels, **kwargs) -> float:
    """R-Precision (Musgrave et al. 2020); arguments as :func:`retrieval_metrics`."""
    return retrieval_metrics(features, labels, nmi=False, **kwargs)["r_precision"]


def map_at_r(features, labels, **kwargs) -> float:
    """MAP@R (Musgrave et al. 2020); arguments as :func:`retrieval_metrics`."""
    return retrieval_metrics(features, labels, nmi=False, **kwargs)["map_at_r"]


def kmeans_nmi(
    features,
    labels,
    *,
    num_clusters: int | None = None,
    seed: int = 0,
    normalize: bool = True,
) -> float:
    """NMI between k-means clusters of ``features`` and ``labels`` (Musgrave et al. 2020).

    scikit-learn's ``KMeans`` (k-means++ initialisation, its default ``n_init``, ``seed`` as
    ``random_state``) and ``normalized_mutual_info_score`` (arithmetic normalisation).

    Args:
      features: ``[N, D]`` features.
      labels: ``[N]`` integer labels.
      num_clusters: ``k`` (None: the number of distinct labels).
      seed: k-means seed.
      normalize: L2-normalise the rows first, so that clusters follow the cosine geometry
        the retrieval metrics use.

    Returns:
      NMI in ``[0, 1]``.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    x = _as_features("features", features)
    y = np.asarray(labels)
    check_labels("labels", y, x.shape[0])
    k = len(np.unique(y)) if num_clusters is None else int(num_clusters)
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"num_clusters must be in [1, {x.shape[0]}] (the examples), got {k}")
    if normalize:
        x = np.asarray(_l2_normalize(jnp.asarray(x)))
    clusters = KMeans(n_clusters=k, random_state=seed).fit_predict(x.astype(np.float64))
    return float(normalized_mutual_info_score(y, clusters))
