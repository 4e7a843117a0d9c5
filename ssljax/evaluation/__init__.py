"""Evaluation of frozen features: linear probe, weighted kNN and accuracy metrics."""

from ssljax.evaluation.knn import knn_evaluate, knn_scores
from ssljax.evaluation.linear_probe import (
    fit_linear_probe,
    linear_probe_logits,
    standardize,
    train_linear_classifier,
)
from ssljax.evaluation.metrics import accuracy_report, topk_accuracy

__all__ = [
    "accuracy_report",
    "fit_linear_probe",
    "knn_evaluate",
    "knn_scores",
    "linear_probe_logits",
    "standardize",
    "topk_accuracy",
    "train_linear_classifier",
]
