"""Metrics: exact, streamed classification and verification metrics, intervals and model comparison."""

from .bootstrap import bootstrap_classification, bootstrap_verification, mcnemar, paired_comparison
from .class_order import ClassOrderCheck, class_order_check
from .classification import ClassificationMetrics, ClassificationResult, evaluate_classification, infer_score_type
from .confusion import cluster_order, confusion_distance, most_confused_classes
from .curves import Band, class_curves, curve_band
from .data_quality import ImageIssues, image_issues
from .duplicates import (
    DuplicatePairs,
    content_hash,
    exact_duplicates,
    hash_distance,
    near_duplicates,
    perceptual_duplicates,
    perceptual_hash,
)
from .flips import (
    CompatibilityResult,
    NoiseFloor,
    PairFlips,
    RegressionRow,
    VersionRegression,
    cross_model_compatibility,
    nfr_against_floor,
    pair_flips,
    rates_from_cells,
    version_regression,
)
from .identification import IdentificationResult, bootstrap_identification, evaluate_identification, split_by_role
from .label_quality import LabelIssues, RankingSensitivity, label_issues, ranking_sensitivity
from .slices import (
    DiscoveredSlice,
    GroupDetCurves,
    GroupThresholdResult,
    GroupThresholdRow,
    GroupVerificationResult,
    GroupVerificationRow,
    ModelsBySlice,
    SliceComparison,
    SliceComparisonRow,
    SliceResult,
    SliceRow,
    WeakSliceDiscovery,
    compare_by_slice,
    discover_weak_slices,
    group_det_curves,
    metrics_by_slice,
    models_by_slice,
    slice_mask,
    verification_at_group_thresholds,
    verification_by_group,
)
from .stats import benjamini_hochberg, format_interval, wilson_interval
from .sweep import DegenerateWarning, ThresholdChoice, ThresholdSweep, threshold_sweep
from .templates import (
    TemplateFeatures,
    evaluate_template_identification,
    evaluate_template_verification,
    pool_templates,
    template_pair_scores,
)
from .verification import VerificationMetrics, VerificationResult, evaluate_verification, lfw_accuracy

__all__ = [
    "ClassificationMetrics", "ClassificationResult", "evaluate_classification", "infer_score_type",
    "ClassOrderCheck", "class_order_check",
    "cluster_order", "confusion_distance", "most_confused_classes",
    "DegenerateWarning", "ThresholdChoice", "ThresholdSweep", "threshold_sweep",
    "VerificationMetrics", "VerificationResult", "evaluate_verification", "lfw_accuracy",
    "bootstrap_classification", "bootstrap_verification", "mcnemar", "paired_comparison",
    "benjamini_hochberg", "format_interval", "wilson_interval", "Band", "class_curves", "curve_band",
    "DiscoveredSlice", "GroupVerificationResult", "GroupVerificationRow", "SliceComparison", "SliceComparisonRow",
    "SliceResult", "SliceRow", "WeakSliceDiscovery", "compare_by_slice", "discover_weak_slices", "metrics_by_slice",
    "slice_mask", "verification_by_group", "GroupDetCurves", "GroupThresholdResult", "GroupThresholdRow",
    "ModelsBySlice", "group_det_curves", "models_by_slice", "verification_at_group_thresholds",
    "CompatibilityResult", "PairFlips", "RegressionRow", "VersionRegression", "cross_model_compatibility",
    "pair_flips", "rates_from_cells", "version_regression", "NoiseFloor", "nfr_against_floor",
    "LabelIssues", "RankingSensitivity", "label_issues", "ranking_sensitivity",
    "DuplicatePairs", "content_hash", "exact_duplicates", "near_duplicates", "perceptual_hash",
    "perceptual_duplicates", "hash_distance", "ImageIssues", "image_issues",
    "IdentificationResult", "bootstrap_identification", "evaluate_identification", "split_by_role",
    "TemplateFeatures", "evaluate_template_identification", "evaluate_template_verification", "pool_templates",
    "template_pair_scores",
]
