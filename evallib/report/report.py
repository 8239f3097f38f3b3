"""One model's report: views built from what the pipeline wrote.

``evallib.load(model_dir)`` reads a model's output folder (run facts, predictions and the metrics of
:mod:`evallib.evaluation`) and offers one view per part of the report: ``rep.summary``,
``rep.confusion``, ``rep.curves``... Each is a display (:mod:`evallib.report._base`) built when first
asked for, from the arrays and results the folder holds, by the same ``from_result`` /
``from_predictions`` a user calls; it shows itself in JupyterLab and ``.plot(ax=...)`` draws it again.
Nothing here runs inference or computes a metric; the one file it writes is ``report.json``
(:meth:`Report.save_facts`: the Grad-CAM route the drawing found).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .._io import write_json
from ..data import describe_class_order
from ..errors import EvallibError
from ..evaluation import Evaluation, probabilities, read_evaluation
from ..outputs import METRICS, METRICS_ARRAYS, REPORT_FACTS, load_predictions, load_run
from ._base import HtmlDisplay, Section
from .classification import (
    ConfusionDisplay,
    HeadlineDisplay,
    PerClassDisplay,
    PrecisionRecallDisplay,
    ReliabilityDisplay,
    RocDisplay,
    curves_panel,
)
from .gallery import GalleryDisplay
from .html import CSS, guide, html_table, short_message
from .slider import ThresholdSliderDisplay
from .training import TrainingCurvesDisplay
from .verification import PairListDisplay, VerificationDisplay

_QUIET = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)  # for developers


class StaleOutputsError(EvallibError):
    """The output folder was made with other settings than the params file now holds."""


def _view(title):
    """A report view: a property that builds its display once, drawing it for the page at once so that
    the warnings the drawing raises go to the report's notes (deprecation warnings, for developers,
    are dropped). A live view (a slider in JupyterLab) is drawn when shown instead."""
    def wrap(method):
        @functools.wraps(method)
        def build(self):
            cache = self.__dict__.setdefault("_built", {})
            if method.__name__ not in cache:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        disp = method(self)
                        disp.title = disp.title or title
                        if not disp.live:
                            disp._repr_html_()
                    finally:
                        for w in caught:
                            if not issubclass(w.category, _QUIET):
                                self.note(f"{title}: {w.message}")
                cache[method.__name__] = disp
            return cache[method.__name__]
        return property(build)
    return wrap


def _short(text, width=16):
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _absent(what, tasks):
    return HtmlDisplay(f"<p><i>Not part of this model's evaluation (task: {html.escape(', '.join(tasks))}).</i></p>",
                       title=what)


@dataclass
class Report:
    """Everything one model's report shows; made by :func:`load`.

    Attributes
    ----------
    params : Params
        The params the outputs were made with (from ``run.json``).
    out_dir : Path
    run : dict
        ``run.json``.
    pred : dict
        ``predictions.npz`` (:func:`evallib.outputs.load_predictions`).
    evaluation : Evaluation
        The metrics (:mod:`evallib.evaluation`).
    interactive : bool
        Live ipywidgets (JupyterLab) instead of the static HTML slider.
    """

    params: object
    out_dir: Path
    run: dict
    pred: dict
    evaluation: Evaluation
    interactive: bool = False
    render_notes: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)

    # the metrics, as the evaluation holds them: rep.classification, rep.verification, rep.metrics...
    _FROM_EVALUATION = frozenset({"classification", "cls_intervals", "cls_center", "verification", "ver_center",
                                  "verification_pairs", "metrics", "warnings", "curves", "tsne"})

    def __getattr__(self, name):
        if name in Report._FROM_EVALUATION and "evaluation" in self.__dict__:
            return getattr(self.__dict__["evaluation"], name)
        raise AttributeError(f"'Report' object has no attribute {name!r}")

    @property
    def classes(self):
        return self.pred["classes"]

    @cached_property
    def probs(self):
        """Class probabilities, ndarray of shape (n_samples, n_classes) (softmax of logits)."""
        return probabilities(self.pred)

    @property
    def y(self):
        return self.pred["labels"]

    @property
    def name(self):
        return self.params.name

    def save_facts(self):
        """Write what the drawing found (``report.json``: the Grad-CAM route) into the output folder."""
        write_json(self.out_dir / REPORT_FACTS, self.facts)

    def note(self, text):
        """Add a short message (no paths) to the Notes section at the end of the report."""
        msg = short_message(text)
        self.render_notes[msg] = self.render_notes.get(msg, 0) + 1

    def primary(self):
        """``(metric name, value, [low, high])`` of the primary metric."""
        name = self.metrics["primary_metric"]
        h = self.metrics.get("headline", {}).get(name)
        return (name, h["value"], h["interval"]) if h else (name, float("nan"), [float("nan")] * 2)

    # ------------------------------------------------------------------ the top and the facts
    @_view("Summary")
    def summary(self):
        """The top of the page: headline metrics with intervals, the decision rule, the rank among the
        models evaluated on the same data, the warnings, and the contents."""
        from ..peers import load_peers
        from .summary import SECTIONS, left_out_text, overrides_text, rank_among, summary_html

        ds = self.run["dataset"]
        primary = self.primary()[0]
        ranking = None
        try:
            peers = {n: m for n, m in load_peers(self.out_dir.parent).items() if m["status"] == "ok"}
            ranking = rank_among(self.name, {**peers, self.name: self.metrics}, primary)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.note(f"Summary: no ranking: the other models' metrics could not be read ({exc})")
        has = {"classification": self.classification is not None, "verification": self.verification is not None,
               "training_log": bool(self.params.report.training_log), "baseline": bool(self.params.report.baseline)}
        ident = self.evaluation.identification  # the contents list these sections only when computed
        has.update(identification=getattr(ident, "images", None) is not None,
                   templates=getattr(ident, "templates", None) is not None)
        lede = (f"{self.name}: {Path(self.run['model']['path']).name} evaluated on {len(self.y):,} images "
                f"of {len(self.classes):,} classes from {Path(ds['root']).name}/ "
                f"({' and '.join(self.params.tasks)}).")
        return HtmlDisplay(summary_html(
            name=self.name, lede=lede, headline=self.metrics["headline"], primary=primary, decision=self._decision(),
            ranking=ranking, warnings=self.warnings,
            toc=[(i, t) for i, t, need in SECTIONS if need is None or has[need]],
            left_out=left_out_text([{**s, "reason": short_message(s["reason"])} for s in ds["skipped"]],
                                   len(self.y)),
            labels=overrides_text(self.run.get("label_overrides"))))

    def _decision(self):
        from .summary import POLICY_TEXT

        out = []
        if self.classification is not None:
            out.append("Classification: each image gets the class with the highest score (no threshold; the "
                       "class threshold slider shows one class against the rest at any threshold).")
        v = self.verification
        if v is not None:
            policy = self.params.report.threshold_policy
            ch = v.policies.get(policy)
            if ch is None:
                out.append(f"Verification: the threshold policy {policy} has no threshold on these pairs.")
            else:
                target = f" (target {self.params.report.far_target:g})" if policy == "far" else ""
                out.append(f"Verification: two images show the same identity when their cosine similarity is at least "
                           f"{ch.threshold:.4f}, chosen by the policy {policy}{target}: {POLICY_TEXT[policy]}; "
                           f"there TAR {ch.recall:.4f}, FAR {ch.far:.4f}, accuracy {ch.accuracy:.4f}.")
        return " ".join(out) if out else "none."

    @property
    def notes(self):
        """Warnings raised while the views were drawn, as short messages with no paths (built each time:
        it shows the views drawn so far, so the notebook asks for it last)."""
        if not self.render_notes:
            return HtmlDisplay(CSS + "<p>No warnings while this report was drawn.</p>", title="Notes")
        items = "".join(f"<li>{html.escape(m)}{f' ({n} times)' if n > 1 else ''}</li>"
                        for m, n in self.render_notes.items())
        return HtmlDisplay(CSS + guide("Warnings the libraries raised while this report was drawn; they rarely change "
                                       "a number, but say where a figure may be off.") + f"<ul>{items}</ul>",
                           title="Notes")

    @_view("Model and data")
    def header(self):
        """Model facts (file name and sha256, never the machine's path), data folder, skipped files, run time."""
        model, ds, inf = self.run["model"], self.run["dataset"], self.run["inference"]
        io_rows = [["input", i["name"], str(i["shape"]), i["type"]] for i in model["inputs"]] + \
                  [["output", o["name"], str(o["shape"]), o["type"]] for o in model["outputs"]]
        facts = [["model file", Path(model["path"]).name], ["size", f"{model['size_bytes'] / 1e6:.2f} MB"],
                 ["sha256", model["sha256"]], ["producer", model["producer"]],
                 ["opset", ", ".join(f"{k} {v}" for k, v in model["opset"].items())],
                 ["task", ", ".join(self.params.tasks)], ["test-time augmentation", self.params.preprocess.tta]]
        facts += [[f"metadata: {k}", v] for k, v in model["metadata"].items()]
        speed = inf.get("images_per_second")
        run_rows = [["data folder", Path(ds["root"]).name], ["images evaluated", len(self.y)],
                    ["classes", len(self.classes)]]
        if ds.get("class_order"):
            run_rows.append(["class order", describe_class_order(self.classes, ds["class_order"])])
        st = self.run.get("score_type")
        if st:
            how = "detected" if st["declared"] == "auto" else f"declared {st['declared']}; detected {st['detected']}"
            run_rows.append(["score type", f"{st['used']} ({how}: {st['evidence']})"])
        seconds = f"{inf.get('seconds', float('nan')):.2f} s" + (" (earlier run; cached)" if inf.get("cached") else "")
        run_rows += [["skipped files", len(ds["skipped"])], ["inference time", seconds],
                     ["images/s", f"{speed:.0f}" if speed else "n/a"]]
        if inf.get("device"):  # where the model ran, and why runtime.device auto ran on the CPU
            run_rows += [["device", inf["device"]], ["execution providers", ", ".join(inf.get("providers") or [])]]
            run_rows += [["device note", inf["device_note"]]] if inf.get("device_note") else []
        counts = [[k, v] for k, v in ds["counts"].items()]
        parts = [f"<h3>{html.escape(self.name)}</h3>", html_table(facts, ["model", ""]),
                 html_table(io_rows, ["", "name", "shape", "type"]), html_table(run_rows, ["run", ""]),
                 "<details><summary>images per class</summary>" + html_table(counts, ["class", "images"])
                 + "</details>"]
        if ds["skipped"]:
            parts.append("<details open><summary>skipped files</summary>" + html_table(
                [[s["path"], short_message(s["reason"])] for s in ds["skipped"][:200]], ["file", "reason"])
                + (f"<p>and {len(ds['skipped']) - 200:,} more</p>" if len(ds["skipped"]) > 200 else "") + "</details>")
        return HtmlDisplay("".join(parts))

    # ------------------------------------------------------------------ classification
    @_view("Classification")
    def classification_summary(self):
        """Headline metrics with intervals, the center-crop comparison, the per-class table."""
        c = self.classification
        if c is None:
            return _absent("Classification", self.params.tasks)
        return Section([HeadlineDisplay.from_result(c, intervals=self.cls_intervals, center=self.cls_center,
                                                    tta=self.params.preprocess.tta, top_k=self.params.report.top_k),
                        PerClassDisplay.from_result(c)])

    @_view("Confusion matrix")
    def confusion(self):
        """Confusion heat map (counts and row shares) and the most confused pairs (above 30 classes: the most
        confused classes, then the whole matrix in clustered order)."""
        c = self.classification
        return _absent("Confusion matrix", self.params.tasks) if c is None else ConfusionDisplay.from_result(
            c, name=self.name)

    @_view("ROC and precision-recall")
    def curves(self):
        """ROC and precision-recall curves: micro and macro averages, each class's up to 10 classes, with
        95% bootstrap bands."""
        c = self.classification
        if c is None:
            return _absent("ROC and precision-recall", self.params.tasks)
        cv = self.evaluation.curves
        return curves_panel(RocDisplay.from_result(cv, c), PrecisionRecallDisplay.from_result(cv, c))

    @_view("Calibration")
    def reliability(self):
        """Reliability diagram with the expected calibration error."""
        c = self.classification
        return _absent("Calibration", self.params.tasks) if c is None else ReliabilityDisplay.from_result(c)

    @_view("Class threshold slider")
    def classification_slider(self):
        """Threshold slider on each class's probability (one class against the rest)."""
        if self.classification is None:
            return _absent("Class threshold slider", self.params.tasks)
        return ThresholdSliderDisplay.from_classes(self.y, self.probs, classes=list(self.classes),
                                                   scores_are="probabilities", interactive=self.interactive)

    # ------------------------------------------------------------------ verification
    @_view("Verification")
    def verification_summary(self):
        """Score histograms, ROC with log FAR, metrics against threshold, the policies' thresholds, the pair list."""
        v = self.verification
        if v is None:
            return _absent("Verification", self.params.tasks)
        rep = self.params.report
        main = VerificationDisplay.from_result(v, policy=rep.threshold_policy, far_target=rep.far_target,
                                               name=self.name, center=self.ver_center)
        if self.verification_pairs is None:
            return main
        return Section([main, PairListDisplay.from_result(self.verification_pairs)])

    @_view("Similarity threshold slider")
    def verification_slider(self):
        v = self.verification
        if v is None:
            return _absent("Similarity threshold slider", self.params.tasks)
        return ThresholdSliderDisplay.from_result(v, policy=self.params.report.threshold_policy,
                                                  interactive=self.interactive)

    # ------------------------------------------------------------------ where it fails (slices)
    @_view("Where it fails")
    def where_it_fails(self):
        """Accuracy by slice (metadata, folders, binned image properties, two-way intersections) with
        intervals and Benjamini–Hochberg; weak slices found on half of the images and confirmed on the other
        half; a strip of the mistakes in each of the weakest slices."""
        from .slices import SliceDisplay, WeakSliceDiscoveryDisplay

        found = self.evaluation.slices
        if found is None or found.by_slice is None:
            why = ("the model has no class scores" if found is not None else
                   "no metadata file (data.metadata), no folder slices (data.folder_slices), and image "
                   "properties that are all alike or were not measured")
            return HtmlDisplay(f"<p><i>No slices: {html.escape(why)}.</i></p>")
        shown = [SliceDisplay.from_result(found.by_slice)]
        if found.discovery is not None:
            shown.append(WeakSliceDiscoveryDisplay.from_result(found.discovery))
        elif "discovery" in found.skipped:
            shown.append(HtmlDisplay(f"<p><i>No search for weak slices: {html.escape(found.skipped['discovery'])}."
                                     f"</i></p>"))
        strip = self._slice_mistakes(found)
        if strip is not None:
            shown.append(strip)
        return Section(shown)

    def _slice_mistakes(self, found, *, slices=10, found_slices=3, per_slice=6):
        """For each weak slice the page lists (the ``slices`` weakest confirmed, and the ``found_slices`` weakest
        found without metadata and confirmed on held-out images), a strip of its mistakes and a strip of their
        heat maps; a slice whose mistakes an earlier row showed already is left out. Without a Grad-CAM route
        the strips show the images and say why."""
        from ..metrics.slices import slice_mask
        from .slices import SliceMistakesDisplay

        if self.params.report.gallery_size == 0:
            return None
        masks = {w.name: slice_mask(found.columns, w) for w in found.by_slice.weakest(slices)}
        disc = found.discovery
        for c in (disc.confirmed if disc is not None else ())[:found_slices]:
            if c.source == "embeddings" and disc.clusters is not None:
                masks.setdefault(f"{c.name} (found without metadata)", disc.clusters == int(c.name.split()[-1]))
            else:
                try:
                    masks.setdefault(c.name, slice_mask(found.columns, found.by_slice.row(c.name)))
                except KeyError:
                    continue
        if not masks:
            return None
        route = self.cam_route("scores")
        return SliceMistakesDisplay.from_predictions(
            self.y, self.pred["scores"], masks, images=self.images, classes=list(self.classes), per_slice=per_slice,
            cam=(lambda rows, targets: self.heat_maps(rows, targets)) if route is not None else None,
            cam_reason=self.cam_reason)

    @_view("Verification by group")
    def verification_groups(self):
        """False non-match and false match rates of each group at one global threshold (NISTIR 8280), with
        identity-bootstrap intervals, TAR at each group's own FAR and the between-group false match rates."""
        from .slices import GroupDetDisplay, GroupThresholdDisplay, GroupVerificationDisplay

        found = self.evaluation.slices
        if found is None or found.by_group is None:
            why = (found.skipped.get("by_group") if found is not None and "by_group" in found.skipped else
                   "no metadata column gives the identities' groups" if "verification" in self.params.tasks else
                   "not a verification model")
            return HtmlDisplay(f"<p><i>No verification by group: {html.escape(why)}.</i></p>")
        shown = [GroupVerificationDisplay.from_result(found.by_group)]
        if found.group_det is not None:
            shown += [HtmlDisplay("<h4>DET curves by group</h4>"),
                      GroupDetDisplay.from_result(found.group_det, threshold=found.by_group.threshold)]
        if found.group_thresholds is not None:
            shown += [HtmlDisplay("<h4>What if each group had its own threshold</h4>"),
                      GroupThresholdDisplay.from_result(found.group_thresholds)]
        return Section(shown, title=f"Verification by {found.group_column}")

    # ------------------------------------------------------------------ version comparison
    @_view("What changed since the baseline")
    def changes(self):
        """Against the model ``report.baseline`` names, on the same images: the regression table (negative and
        positive flips per class and slice, with intervals and tests), the old -> new heat map over the negative
        flips, and the negative-flip gallery with both models' heat maps."""
        from .versions import baseline_view

        return baseline_view(self)

    # ------------------------------------------------------------------ identification and templates
    def _rows_images(self, rows):
        """``images(indices)`` of a gallery display: the center-crop views of the prediction rows ``rows[indices]``."""
        rows = np.asarray(rows)
        return lambda idx: self._views(rows[np.asarray(idx, dtype=np.int64)].tolist())[1]

    @_view("Identification (1:N)")
    def identification_summary(self):
        """Probe images searched against gallery images (``data.role_column``): CMC and DET curves, rank-k and
        FNIR at FPIR with identity-level intervals, the open-set threshold slider and the hardest misses."""
        from .identification import IdentificationDisplay, IdentificationMissesDisplay

        ident = self.evaluation.identification
        r = None if ident is None else ident.images
        if r is None:
            return HtmlDisplay("<p><i>No 1:N identification: give each image a role (gallery or probe) in a column "
                               "of the data.csv manifest named by data.role_column.</i></p>")
        shown = [IdentificationDisplay.from_result(r, name=self.name)]
        if self.params.report.gallery_size:
            classes = np.asarray(self.classes)
            names = classes[self.y[ident.probe_rows]]
            named = dataclasses.replace(r, candidate_labels=classes[r.candidate_labels])  # class names, not indices
            shown.append(IdentificationMissesDisplay.from_result(
                named, probe_images=self._rows_images(ident.probe_rows),
                gallery_images=self._rows_images(ident.gallery_rows),
                probe_names=names, k=self.params.report.gallery_size))
        return Section(shown)

    @_view("Templates")
    def templates_summary(self):
        """IJB-style templates (``data.templates``): 1:1 template verification over ``data.template_pairs``
        with its hardest pairs, and 1:N template identification over ``data.gallery`` and ``data.probes``."""
        from .identification import IdentificationDisplay, TemplatePairGalleryDisplay

        ident = self.evaluation.identification
        if ident is None or ident.templates is None:
            return HtmlDisplay("<p><i>No templates: name an IJB-style *_face_tid_mid.txt file in data.templates, "
                               "with data.template_pairs and/or data.gallery and data.probes.</i></p>")
        t = ident.templates
        first = {}
        for row, tid in zip(ident.template_rows.tolist(), ident.template_of.tolist()):
            first.setdefault(tid, []).append(row)
        shown = [HtmlDisplay(html_table([["templates", f"{len(t.templates):,}"],
                                         ["images pooled", f"{int(t.n_images.sum()):,}"],
                                         ["media", f"{int(t.n_media.sum()):,}"]], ["templates", ""]))]
        v = ident.template_verification
        rep = self.params.report
        if v is not None:
            shown += [HtmlDisplay("<h4>1:1 template verification (data.template_pairs)</h4>"),
                      VerificationDisplay.from_result(v, policy=rep.threshold_policy, far_target=rep.far_target,
                                                      name=self.name)]
            if rep.gallery_size:
                pairs = ident.template_pairs
                shown.append(TemplatePairGalleryDisplay.from_templates(
                    t, pairs["t1"], pairs["t2"], pairs["same"], k=max(1, rep.gallery_size // 2),
                    template_images=lambda tid: self._views(first[tid][:2])[1]))
        if ident.template_identification is not None:
            shown += [HtmlDisplay("<h4>1:N template identification (data.gallery against data.probes)</h4>"),
                      IdentificationDisplay.from_result(ident.template_identification, name=self.name)]
        return Section(shown)

    # ------------------------------------------------------------------ explanations
    def _views(self, idx):
        """Center-crop model inputs (NCHW) and display images of dataset rows ``idx``."""
        from ..data import load_views
        from ..explain.cam import to_display
        from ..inference import input_dtype

        pre = dataclasses.replace(self.params.preprocess, tta="none")
        pre = dataclasses.replace(pre, dtype=input_dtype(self.run["model"]["inputs"][0]["type"], dtype=pre.dtype))
        root = Path(self.pred["root"])
        x = np.concatenate([load_views(root / self.pred["paths"][i], pre)[0] for i in idx]).astype(np.float32)
        top = 255.0 if pre.scale == "byte" or pre.dtype == "uint8" else 1.0
        shown = [to_display(v, pre.mean, pre.std, top=top, bgr=pre.channels == "bgr") for v in x]
        return x, shown

    def cam_route(self, output="scores"):
        """How heat maps are drawn for ``output`` (an :class:`evallib.explain.cam.CamRoute`), or ``None`` (the
        reason goes to the notes and the galleries show their images alone)."""
        from ..errors import ModelError
        from ..explain.cam import cam_route
        from ..inference import input_layout

        cache = self.__dict__.setdefault("_cam_routes", {})
        if output in cache:
            return cache[output]
        rep, model = self.params.report, self.run["model"]
        names = [o["name"] for o in model["outputs"]]
        shape = self._views([0])[0].shape[1:]  # one view as the model gets it: (C, H, W)
        try:
            nhwc = input_layout(model["inputs"][0]["shape"], shape, self.params.preprocess.layout) == "nhwc"
            cache[output] = cam_route(self.params.model, input_shape=shape, method=rep.cam_method,
                                      layer=rep.cam_layer, output=getattr(self.params.outputs, output),
                                      output_names=names,
                                      nhwc=nhwc, fallback=rep.torch_model, factory=rep.torch_model_factory,
                                      allow_pickle=rep.allow_pickle)
        except (ModelError, ValueError) as exc:
            cache[output] = None
            self.__dict__.setdefault("_cam_reasons", []).append(
                f"No heat maps: {short_message(exc, limit=600)}. The galleries show their images alone.")
        return cache[output]

    def _cam_facts(self, route):
        """How the heat maps were drawn, for the table above a gallery (and for ``report.json``)."""
        if route is None:
            return [["no heat maps", r] for r in self.__dict__.get("_cam_reasons", [])[:1]]
        rows = [["route", route.route], ["model used", route.source], ["target layer", route.layer],
                ["method", route.method]]
        if route.method != self.params.report.cam_method:
            rows.append(["note", f"{self.params.report.cam_method} needs gradients, which no route gave; "
                                 f"{route.method} needs none and drew these maps (the same map for every target)"])
        rows += [["why not an earlier route", short_message(n, limit=600)] for n in route.notes]
        self.facts["cam"] = {"route": route.route, "method": route.method, "layer": route.layer}
        return rows

    @property
    def cam_reason(self) -> str | None:
        """Why :meth:`cam_route` found no way to draw heat maps (None when it found one or was not asked)."""
        reasons = self.__dict__.get("_cam_reasons", [])
        return reasons[0] if reasons else None

    def images(self, rows) -> list:
        """The images of prediction rows ``rows`` as the model saw them (center crop), arrays in [0, 1]."""
        return self._views([int(i) for i in rows])[1]

    def heat_maps(self, rows, targets, output="scores") -> list | None:
        """The images of prediction rows ``rows``, each with its heat map for class ``targets[i]`` over it;
        None when no route draws heat maps for ``output`` (:attr:`cam_reason` says why)."""
        route = self.cam_route(output)
        return None if route is None else self._cam(route, lambda t: t)([int(i) for i in rows], list(targets))

    def _cam(self, route, targets_of):
        """``cam(indices, targets)`` for a gallery: each image with its heat map over it."""
        from ..explain.cam import overlay

        def cam(idx, targets):
            x, shown = self._views(idx)
            return [overlay(img, h) for img, h in zip(shown, route(x, targets_of(targets)))]
        return cam

    @_view("Grad-CAM gallery")
    def grad_cam_gallery(self):
        """Per class the most confident correct images and the mistakes, each with its heat map (above 10
        classes the worst classes only); for an embedding model, the hardest pairs too."""
        size = self.params.report.gallery_size
        if size == 0:
            return HtmlDisplay("<p><i>No gallery (report.gallery_size is 0).</i></p>")
        shown = []
        if self.classification is not None:
            route = self.cam_route("scores")
            shown.append(GalleryDisplay.from_predictions(
                self.y, self.probs, images=lambda idx: self._views(idx)[1], classes=list(self.classes),
                cam=self._cam(route, lambda t: t) if route else None, size=size, facts=self._cam_facts(route)))
        if self.verification is not None:
            from ..explain.cam import SimilarityTarget

            emb = self.pred["embeddings"]
            e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
            route = self.cam_route("embedding")
            shown.append(GalleryDisplay.from_embeddings(
                emb, self.y, images=lambda idx: self._views(idx)[1], classes=list(self.classes),
                cam=self._cam(route, lambda refs: [SimilarityTarget(e[j]) for j in refs]) if route else None,
                k=max(1, size // 2),
                facts=[] if self.classification is not None else self._cam_facts(route)))
        return Section(shown)

    @_view("Grad-CAM explorer")
    def cam_explorer(self):
        """In JupyterLab: pick an image (by index or among the mistakes) and see its heat maps."""
        from .explorer import CamExplorer

        if not self.interactive or self.classification is None:
            return HtmlDisplay("")
        route = self.cam_route("scores")
        if route is None:
            return HtmlDisplay("")
        return CamExplorer(self.y, self.probs.argmax(1), list(self.classes), list(self.pred["paths"]),
                           cam=self._cam(route, lambda t: t), images=lambda idx: self._views(idx)[1],
                           method=f"{route.method} ({route.route})")

    @_view("t-SNE map")
    def tsne_map(self):
        """The t-SNE map computed in the metrics step, with thumbnails, hover titles and trustworthiness."""
        from ..data import load_image
        from ..explain.tsne import TSNEMap
        from .tsne_map import TSNEMapDisplay

        t = self.evaluation.tsne or {"skipped": "No t-SNE map was computed."}
        if "skipped" in t:
            return HtmlDisplay(f"<p><i>{html.escape(t['skipped'])}</i></p>")
        rep = self.params.report
        index = np.asarray(t["index"])
        tmap = TSNEMap(np.asarray(t["coords"]), t["trustworthiness"], t["trust_sample"], t["method"], t["seed"])
        predictions = None
        if "scores" in self.pred and self.classification is not None:
            predictions = self.pred["scores"][index].argmax(1)
        root, mode = Path(self.pred["root"]), self.params.preprocess.mode

        def thumb(i):
            from PIL import Image

            img = load_image(root / self.pred["paths"][index[i]], mode)
            scale = 32 / max(img.size)
            if scale > 1:  # tiny images are upsampled so a thumbnail is legible
                img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)), Image.BILINEAR)
            else:
                img.thumbnail((32, 32))
            return np.asarray(img, dtype=np.float32) / 255.0

        return TSNEMapDisplay.from_result(tmap, self.y[index], list(self.classes), predictions=predictions,
                                          thumbnails=thumb, names=[str(self.pred["paths"][i]) for i in index],
                                          images=t["images"], source=t["source"],
                                          max_thumbnails=rep.tsne_thumbnails, seed=rep.seed)

    @_view("Training curves")
    def training_curves(self):
        """Training and validation curves when the params name a training log."""
        path = self.params.report.training_log
        if not path:
            return HtmlDisplay("<p><i>No training log given (report.training_log).</i></p>")
        return TrainingCurvesDisplay.from_log(path, name=self.name)


def _stale(params, params_path, run, model_dir):
    """Why ``model_dir`` no longer matches the params file ``params_path``, or None."""
    from .._keys import metrics_key, predictions_key
    from ..params import Params

    command = f"evallib run {params_path} --out {model_dir.parent}"
    now, then = params.settings(), Params.from_dict(run["params"]).settings()
    changed = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
    if changed:
        why = f"its settings differ from the params file ({', '.join(changed)})"
    elif predictions_key(params, model_dir=model_dir) != run.get("predictions_key"):
        why = "the model file or the images changed since"
    elif metrics_key(params, run["predictions_key"]) != run.get("metrics_key"):
        why = "its metrics were computed by another version of evallib"
    else:
        return None
    return (f"{model_dir}: these outputs were not made from {params_path} as it is now: {why}. Nothing from "
            f"them is shown. Bring them up to date with: {command}")


def load(model_dir, *, params=None, interactive=False):
    """A model's report, from its output folder: sections to show, built from what ``evallib run`` wrote.

    Parameters
    ----------
    model_dir : str or Path
        The model's output folder (``outputs/<name>``).
    params : str or Path, optional
        The params file the folder should match: when its settings, the model file or the images
        have changed since the run, :class:`StaleOutputsError` says so and gives the command that
        brings the folder up to date, instead of showing numbers made with other settings.
    interactive : bool, default False
        Live widgets (JupyterLab) instead of the static HTML slider.

    Returns
    -------
    Report
        ``rep.summary``, ``rep.confusion``, ``rep.curves``... are displays
        (:mod:`evallib.report._base`): ``evallib.load("outputs/cnn_wide").confusion.plot()``.
    """
    from ..params import Params, load_params

    model_dir = Path(model_dir)
    run = load_run(model_dir)
    if run is None:
        raise EvallibError(f"{model_dir}: expected a model's output folder with run.json; got none "
                           f"(run `evallib run <params file> --out {model_dir.parent}` first)")
    if run.get("status") != "ok":
        raise EvallibError(f"{model_dir}: the run failed: {run.get('error')}")
    if not (model_dir / METRICS).exists() or not (model_dir / METRICS_ARRAYS).exists() or "metrics_key" not in run:
        raise StaleOutputsError(f"{model_dir}: expected metrics.json and metrics.npz from the metrics step; got none "
                                f"(made by an older evallib?). Run `evallib run <params file> --out "
                                f"{model_dir.parent}` to compute them")
    run_params = Params.from_dict(run["params"])
    if params is not None:
        why = _stale(load_params(params), params, run, model_dir)
        if why:
            raise StaleOutputsError(why)
    evaluation = read_evaluation(model_dir)
    if evaluation.metrics.get("metrics_key") != run["metrics_key"]:
        raise StaleOutputsError(f"{model_dir}: metrics.json does not belong to run.json (another run wrote one of "
                                f"them); run `evallib run <params file> --out {model_dir.parent}` again")
    return Report(params=run_params, out_dir=model_dir, run=run, pred=load_predictions(model_dir),
                  evaluation=evaluation, interactive=interactive)
