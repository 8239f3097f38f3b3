"""The report layer: displays built from arrays or from what the pipeline wrote, and the pages made of them.

Every view is a display in scikit-learn's shape (:mod:`evallib.report._base`): ``from_predictions``
(or ``from_embeddings``) from plain arrays, ``from_result`` from evallib's results, ``plot(ax=None)``
returning the display with ``ax_`` and ``figure_`` set, and ``_repr_html_`` for the page.
"""

from ._base import Display, HtmlDisplay, Panel, Section
from .classification import (
    ConfusionDisplay,
    Curve,
    HeadlineDisplay,
    PerClassDisplay,
    PrecisionRecallDisplay,
    ReliabilityDisplay,
    RocDisplay,
    worst_first,
)
from .compare import Comparison, LeaderboardDisplay, PairedComparisonDisplay
from .explorer import CamExplorer
from .flips import (
    CompatibilityDisplay,
    FlipGalleryDisplay,
    FlipTransitionsDisplay,
    NoiseFloorDisplay,
    PairFlipsDisplay,
    RegressionTableDisplay,
)
from .gallery import GalleryDisplay, TileDisplay
from .identification import (
    CmcDisplay,
    DetDisplay,
    IdentificationDisplay,
    IdentificationMissesDisplay,
    TemplatePairGalleryDisplay,
)
from .label_quality import DuplicatesDisplay, ImageIssuesDisplay, LabelIssuesDisplay, LabelReviewDisplay
from .report import Report, StaleOutputsError, load
from .slices import (
    GroupDetDisplay,
    GroupThresholdDisplay,
    GroupVerificationDisplay,
    ModelsBySliceDisplay,
    SliceComparisonDisplay,
    SliceDisplay,
    SliceMistakesDisplay,
    WeakSliceDiscoveryDisplay,
)
from .slider import ThresholdSliderDisplay
from .training import TrainingCurvesDisplay
from .tsne_map import TSNEMapDisplay
from .verification import PairListDisplay, ScoreHistogramDisplay, ThresholdMetricsDisplay, VerificationDisplay

__all__ = [
    "Display", "HtmlDisplay", "Panel", "Section",
    "ConfusionDisplay", "Curve", "HeadlineDisplay", "PerClassDisplay", "PrecisionRecallDisplay", "ReliabilityDisplay",
    "RocDisplay", "worst_first",
    "Comparison", "LeaderboardDisplay", "PairedComparisonDisplay",
    "CamExplorer", "GalleryDisplay", "TileDisplay", "Report", "StaleOutputsError", "load", "ThresholdSliderDisplay",
    "TrainingCurvesDisplay", "TSNEMapDisplay",
    "PairListDisplay", "ScoreHistogramDisplay", "ThresholdMetricsDisplay", "VerificationDisplay",
    "GroupVerificationDisplay", "SliceComparisonDisplay", "SliceDisplay", "WeakSliceDiscoveryDisplay",
    "GroupDetDisplay", "GroupThresholdDisplay", "ModelsBySliceDisplay", "SliceMistakesDisplay",
    "CompatibilityDisplay", "FlipGalleryDisplay", "FlipTransitionsDisplay", "NoiseFloorDisplay", "PairFlipsDisplay",
    "RegressionTableDisplay",
    "DuplicatesDisplay", "LabelIssuesDisplay", "LabelReviewDisplay", "ImageIssuesDisplay",
    "CmcDisplay", "DetDisplay", "IdentificationDisplay", "IdentificationMissesDisplay", "TemplatePairGalleryDisplay",
]
