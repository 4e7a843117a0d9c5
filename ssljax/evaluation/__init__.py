"""Evaluation of frozen features: linear probe, weighted kNN, retrieval and accuracy metrics."""

from ssljax.evaluation.knn import knn_evaluate, knn_scores
from ssljax.evaluation.linear_probe import (
    fit_linear_probe,
    linear_probe_logits,
    standardize,
    train_linear_classifier,
)
from ssljax.evaluation.metrics import accuracy_report, topk_accuracy
from ssljax.evaluation.retrieval import (
    kmeans_nmi,
    map_at_r,
    nearest_neighbours,
    r_precision,
    recall_at_1,
    retrieval_metrics,
)

# word embeddings (word ids, not images): ssljax.evaluation.text
from ssljax.evaluation.text import (
    analogy_accuracy,
    analogy_predictions,
    empirical_pmi,
    evaluate_analogy_file,
    evaluate_word_similarity,
    normalize_rows,
    pmi_correlation,
    read_analogy_file,
    read_word_similarity,
    similarity_spearman,
)
from ssljax.evaluation.text import (
    nearest_neighbours as word_nearest_neighbours,
)

__all__ = [
    "analogy_accuracy",
    "analogy_predictions",
    "empirical_pmi",
    "evaluate_analogy_file",
    "evaluate_word_similarity",
    "normalize_rows",
    "pmi_correlation",
    "read_analogy_file",
    "read_word_similarity",
    "similarity_spearman",
    "word_nearest_neighbours",
    "accuracy_report",
    "fit_linear_probe",
    "kmeans_nmi",
    "knn_evaluate",
    "knn_scores",
    "linear_probe_logits",
    "map_at_r",
    "nearest_neighbours",
    "r_precision",
    "recall_at_1",
    "retrieval_metrics",
    "standardize",
    "topk_accuracy",
    "train_linear_classifier",
]
