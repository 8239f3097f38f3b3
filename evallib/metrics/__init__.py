"""Metrics: exact, streamed classification and verification metrics, intervals and model comparison."""

from .bootstrap import bootstrap_classification, bootstrap_verification, mcnemar, paired_comparison
from .class_order import ClassOrderCheck, class_order_check
from .classification import ClassificationMetrics, ClassificationResult, evaluate_classification, infer_score_type
from .confusion import cluster_order, confusion_distance, most_confused_classes
from .sweep import DegenerateWarning, ThresholdChoice, ThresholdSweep, threshold_sweep
from .verification import VerificationMetrics, VerificationResult, evaluate_verification, lfw_accuracy

__all__ = [
    "ClassificationMetrics", "ClassificationResult", "evaluate_classification", "infer_score_type",
    "ClassOrderCheck", "class_order_check",
    "cluster_order", "confusion_distance", "most_confused_classes",
    "DegenerateWarning", "ThresholdChoice", "ThresholdSweep", "threshold_sweep",
    "VerificationMetrics", "VerificationResult", "evaluate_verification", "lfw_accuracy",
    "bootstrap_classification", "bootstrap_verification", "mcnemar", "paired_comparison",
]
