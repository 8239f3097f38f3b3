"""evallib: evaluate image classifiers and embedding models from ONNX files.

Torch is never imported here: the data, inference and metrics paths do not pay for it.
"""

__version__ = "0.1.0"

from .data import (  # noqa: E402
    Dataset,
    Pairs,
    classes_from_metadata,
    list_images,
    load_image,
    preprocess,
    read_pairs,
    sort_labels,
)
from .data.overrides import LabelOverrides, read_label_overrides  # noqa: E402
from .errors import DataError, EvallibError, ModelError, ParamsError  # noqa: E402
from .inference import (  # noqa: E402
    DeviceChoice,
    DeviceError,
    available_providers,
    model_facts,
    open_session,
    predict,
    select_providers,
    session_device,
)
from .metrics import (  # noqa: E402
    ClassificationMetrics,
    ClassificationResult,
    ClassOrderCheck,
    DegenerateWarning,
    ImageIssues,
    NoiseFloor,
    ThresholdChoice,
    ThresholdSweep,
    VerificationMetrics,
    VerificationResult,
    bootstrap_classification,
    bootstrap_verification,
    class_order_check,
    cross_model_compatibility,
    discover_weak_slices,
    evaluate_classification,
    evaluate_identification,
    evaluate_template_identification,
    evaluate_template_verification,
    evaluate_verification,
    exact_duplicates,
    group_det_curves,
    hash_distance,
    image_issues,
    infer_score_type,
    label_issues,
    lfw_accuracy,
    mcnemar,
    metrics_by_slice,
    models_by_slice,
    near_duplicates,
    nfr_against_floor,
    pair_flips,
    paired_comparison,
    perceptual_duplicates,
    perceptual_hash,
    pool_templates,
    ranking_sensitivity,
    threshold_sweep,
    verification_at_group_thresholds,
    verification_by_group,
    version_regression,
)
from .params import Params, load_params, parse_params  # noqa: E402
from .run import load_predictions, run_many, run_model  # noqa: E402
from .versions import FloorComparison, PairComparison, VersionComparison, compare_versions  # noqa: E402

# Grad-CAM needs torch and reports need matplotlib: their names load on first use (PEP 562), so
# ``import evallib`` stays light.
_DISPLAYS = ("ConfusionDisplay", "RocDisplay", "PrecisionRecallDisplay", "ReliabilityDisplay", "PerClassDisplay",
             "HeadlineDisplay", "ScoreHistogramDisplay", "ThresholdMetricsDisplay", "VerificationDisplay",
             "ThresholdSliderDisplay", "TrainingCurvesDisplay", "TSNEMapDisplay", "GalleryDisplay",
             "LeaderboardDisplay", "PairedComparisonDisplay", "Comparison",
             "SliceDisplay", "WeakSliceDiscoveryDisplay", "SliceComparisonDisplay", "GroupVerificationDisplay",
             "RegressionTableDisplay", "FlipTransitionsDisplay", "FlipGalleryDisplay", "PairFlipsDisplay",
             "CompatibilityDisplay", "LabelIssuesDisplay", "DuplicatesDisplay", "CmcDisplay", "DetDisplay",
             "IdentificationDisplay", "IdentificationMissesDisplay", "TemplatePairGalleryDisplay",
             "GroupDetDisplay", "GroupThresholdDisplay", "ModelsBySliceDisplay", "SliceMistakesDisplay",
             "LabelReviewDisplay", "ImageIssuesDisplay", "NoiseFloorDisplay")
_LAZY = {"load": "report", "write_label_reviews": "report.label_review", **{n: "report" for n in _DISPLAYS},
         **{n: "explain.cam" for n in ("grad_cam", "cam_route", "CamRoute", "ClassTarget", "SimilarityTarget")}}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'evallib' has no attribute {name!r}")


__all__ = [
    "Dataset", "Pairs", "classes_from_metadata", "list_images", "load_image", "preprocess", "read_pairs",
    "sort_labels",
    "DataError", "EvallibError", "ModelError", "ParamsError",
    "model_facts", "open_session", "predict", "DeviceChoice", "DeviceError", "available_providers",
    "select_providers", "session_device",
    "ClassificationMetrics", "ClassificationResult", "DegenerateWarning", "ThresholdChoice", "ThresholdSweep",
    "VerificationMetrics", "VerificationResult", "bootstrap_classification", "bootstrap_verification",
    "evaluate_classification", "evaluate_verification", "lfw_accuracy", "mcnemar", "paired_comparison",
    "threshold_sweep", "ClassOrderCheck", "class_order_check", "infer_score_type",
    "metrics_by_slice", "discover_weak_slices", "verification_by_group", "version_regression",
    "cross_model_compatibility", "pair_flips", "label_issues", "ranking_sensitivity", "near_duplicates",
    "exact_duplicates", "evaluate_identification", "pool_templates", "evaluate_template_verification",
    "evaluate_template_identification", "group_det_curves", "verification_at_group_thresholds",
    "models_by_slice", "ImageIssues", "image_issues", "perceptual_hash", "perceptual_duplicates", "hash_distance",
    "LabelOverrides", "read_label_overrides", "NoiseFloor", "nfr_against_floor", "FloorComparison", "PairComparison",
    "Params", "load_params", "parse_params",
    "load_predictions", "run_many", "run_model", "VersionComparison", "compare_versions",
    *_LAZY,
]
