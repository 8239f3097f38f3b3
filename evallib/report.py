"""One model's report: sections drawn from what the pipeline wrote, as display objects.

``evallib.load(model_dir)`` reads a model's output folder (run facts, predictions and the metrics of
:mod:`evallib.evaluation`) and offers one :class:`~evallib.display.Section` per part of the report:
``rep.summary``, ``rep.confusion``, ``rep.curves``... Each is built when it is first asked for; it
shows itself in JupyterLab (``_repr_html_``, or live widgets), and ``.plot(ax=...)`` draws its main
figure again on any Axes. Nothing here runs inference, computes a metric or writes a file, except
:meth:`Report.save_facts`, which ``evallib run`` calls to keep what the drawing found (the Grad-CAM route).
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

from ._io import write_json
from .data import describe_class_order
from .display import CSS, Section, figure_image, folded_table, guide, html_table, short_message
from .display import show as _show
from .errors import EvallibError
from .evaluation import Evaluation, probabilities, read_evaluation
from .metrics import threshold_sweep
from .outputs import METRICS, METRICS_ARRAYS, REPORT_FACTS, load_predictions, load_run

TABLE_ROWS = 25  # a per-class table longer than this shows its worst rows and folds the rest
CONFUSION_ANNOTATED = 30  # up to this many classes the confusion heat map shows every class with its counts
CONFUSED_CLASSES = 25  # above that: the most confused classes' submatrix
GALLERY_CLASSES = 10  # above this many classes the gallery has rows for the worst classes only
HOVER_POINTS = 5000  # t-SNE points with a hover title in the HTML (mistakes first)
STATIC_SLIDER_CLASSES = 50  # classes the static per-class slider embeds (the worst ones, above this)
STATIC_SLIDER_POINTS = 300  # thresholds per curve in a static slider of many curves (plus tp's steps)

_QUIET = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)  # for developers
_BUILDING = []  # the sections being built, innermost last: what _display adds to


class StaleOutputsError(EvallibError):
    """The output folder was made with other settings than the params file now holds."""


def _display(*objs):
    """Add to the section being built (a section shows its parts when it is displayed); else show now."""
    if _BUILDING:
        _BUILDING[-1].parts.extend(objs)
    else:
        _show(*objs)


def _plot(fn):
    """Give the section being built its ``.plot(ax=...)``: ``fn(ax)`` draws the main figure on ``ax``."""
    if _BUILDING:
        _BUILDING[-1].plot_fn = fn


def _section(title):
    """A report section: a property that builds a :class:`Section` from what the method displays.

    The warnings the method raises go to the report's notes, never to the page; deprecation
    warnings (for developers, not readers) are dropped. A section is built once per report.
    """
    def wrap(method):
        @functools.wraps(method)
        def build(self):
            cache = self.__dict__.setdefault("_sections", {})
            if method.__name__ in cache:
                return cache[method.__name__]
            sec = Section(title)
            _BUILDING.append(sec)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    method(self)
                finally:
                    _BUILDING.pop()
                    for w in caught:
                        if not issubclass(w.category, _QUIET):
                            self.note(f"{title}: {w.message}")
            cache[method.__name__] = sec
            return sec
        return property(build)
    return wrap


def worst_first(f1, support):
    """Class indices from the lowest F1 up; among equal F1 the class with more images comes first.

    Parameters
    ----------
    f1 : array-like of shape (n_classes,)
        NaN sorts last.
    support : array-like of shape (n_classes,)
        Images per class.

    Returns
    -------
    ndarray of shape (n_classes,)
    """
    f1 = np.asarray(f1, dtype=np.float64)
    support = np.asarray(support)
    if f1.shape != support.shape:
        raise ValueError(f"support: expected one count per class ({f1.shape[0]}); got shape {support.shape}")
    return np.lexsort((np.arange(len(f1)), -support, np.where(np.isnan(f1), np.inf, f1)))


class _Explain:
    """Grad-CAM and t-SNE sections (mixed into :class:`Report`)."""

    def _views(self, idx):
        """Center-crop model inputs (NCHW) and display images of dataset rows ``idx``."""
        from .cam import to_display
        from .data import load_views
        from .inference import input_dtype

        pre = dataclasses.replace(self.params.preprocess, tta="none")
        pre = dataclasses.replace(pre, dtype=input_dtype(self.run["model"]["inputs"][0]["type"], dtype=pre.dtype))
        root = Path(self.pred["root"])
        x = np.concatenate([load_views(root / self.pred["paths"][i], pre)[0] for i in idx]).astype(np.float32)
        top = 255.0 if pre.scale == "byte" or pre.dtype == "uint8" else 1.0
        shown = [to_display(v, pre.mean, pre.std, top=top, bgr=pre.channels == "bgr") for v in x]
        return x, shown

    def cam_route(self, output="scores"):
        """How heat maps are drawn for ``output`` (an :class:`evallib.cam.CamRoute`), or ``None``.

        When no route serves, the reason is shown once and the galleries show their images alone.
        """
        from .cam import cam_route
        from .errors import ModelError
        from .inference import _layout

        cache = self.__dict__.setdefault("_cam_routes", {})
        if output in cache:
            return cache[output]
        rep, model = self.params.report, self.run["model"]
        names = [o["name"] for o in model["outputs"]]
        shape = self._views([0])[0].shape[1:]  # one view as the model gets it: (C, H, W)
        try:
            nhwc = _layout(model["inputs"][0]["shape"], shape, self.params.preprocess.layout) == "nhwc"
            cache[output] = cam_route(self.params.model, input_shape=shape, method=rep.cam_method,
                                      layer=rep.cam_layer, output=getattr(self.params.outputs, output),
                                      output_names=names, nhwc=nhwc, fallback=rep.torch_model,
                                      factory=rep.torch_model_factory, allow_pickle=rep.allow_pickle)
        except (ModelError, ValueError) as exc:
            cache[output] = None
            if not self.__dict__.get("_cam_reason_shown"):
                self._cam_reason_shown = True
                _display(CSS + f'<p class="evallib-warn">No heat maps: {html.escape(short_message(exc, limit=600))}. '
                               f'The galleries show their images alone.</p>')
        return cache[output]

    def _cam_intro(self, route):
        if self.__dict__.get("_cam_intro_shown"):
            return
        self._cam_intro_shown = True
        rows = [["route", route.route], ["model used", route.source], ["target layer", route.layer],
                ["method", route.method]]
        if route.method != self.params.report.cam_method:
            rows.append(["note", f"{self.params.report.cam_method} needs gradients, which no route gave; "
                                 f"{route.method} needs none and drew these maps (the same map for every target)"])
        rows += [["why not an earlier route", short_message(n, limit=600)] for n in route.notes]
        self.facts["cam"] = {"route": route.route, "method": route.method, "layer": route.layer}
        _display(CSS + html_table(rows, ["Heat maps", ""]))

    def _heat(self, route, x, targets, shown):
        """Tiles' images: each shown image with its heat map over it, or alone when there is no route."""
        from .cam import overlay

        if route is None:
            return list(shown)
        return [overlay(img, cam) for img, cam in zip(shown, route(x, targets))]

    @_section("Grad-CAM gallery")
    def grad_cam_gallery(self):
        """Per class the most confident correct images and the mistakes, each with its heat map.

        Above ``GALLERY_CLASSES`` classes only the worst classes (lowest F1) have rows.
        """
        from .plots import plot_tiles

        if self.classification is None or self.params.report.gallery_size == 0:
            return self._verification_gallery()
        route = self.cam_route("scores")
        if route is not None:
            self._cam_intro(route)
        size = self.params.report.gallery_size
        probs = self.probs
        pred, conf, y = probs.argmax(1), probs.max(1), self.y
        n_ok, n_bad = max(1, size // 2), max(1, size // 4)
        rows_for, which = range(len(self.classes)), "Each row is one true class"
        if len(self.classes) > GALLERY_CLASSES:
            c = self.classification
            rows_for = [k for k in worst_first(c.f1, c.support) if c.support[k] > 0][:GALLERY_CLASSES]
            which = (f"Each row is one of the {GALLERY_CLASSES} true classes with the lowest F1 (of "
                     f"{len(self.classes):,}), worst first")
        picks = []  # (row, index, target class, caption)
        for k in rows_for:
            k, name = int(k), self.classes[k]
            ok = np.nonzero((y == k) & (pred == k))[0]
            bad = np.nonzero((y == k) & (pred != k))[0]
            row = [(i, k, f"{name} → {name} ({conf[i]:.2f})") for i in ok[np.argsort(-conf[ok], kind="stable")][:n_ok]]
            for i in bad[np.argsort(-conf[bad], kind="stable")][:n_bad]:
                row.append((i, int(pred[i]), f"{name} → {self.classes[pred[i]]} ({conf[i]:.2f})"))
                row.append((i, k, f"true class {name}"))
            if row:
                picks.append(row)
        flat = [t for row in picks for t in row]
        x, shown = self._views([i for i, _, _ in flat])
        images = self._heat(route, x, [t for _, t, _ in flat], shown)
        tiles, j = [], 0
        for row in picks:
            tiles.append([(images[j + m], cap) for m, (_, _, cap) in enumerate(row)])
            j += len(row)
        title = "Grad-CAM: where the model looks" if route is not None else "Gallery (no heat maps)"
        fig = plot_tiles(tiles, ncols=max(len(r) for r in tiles), title=title)
        _display(guide(f"{which}: its most confident correct images, then its mistakes as pairs "
                       "(heat map for the wrong prediction, then for the true class). Red areas drove the score; "
                       "captions read true → predicted (probability)."), figure_image(fig, dpi=80))
        self._verification_gallery()

    def _verification_gallery(self):
        from .cam import SimilarityTarget
        from .metrics.verification import extreme_pairs
        from .plots import plot_tiles

        if self.verification is None or self.params.report.gallery_size == 0:
            return
        k = max(1, self.params.report.gallery_size // 2)
        emb = self.pred["embeddings"]
        rejects, accepts = extreme_pairs(emb, self.y, k)
        pairs = [(i, j, s, "false reject") for i, j, s in rejects] + [(i, j, s, "false accept") for i, j, s in accepts]
        if not pairs:
            return
        route = self.cam_route("embedding")
        if route is not None:
            self._cam_intro(route)
        idx = [i for i, j, _, _ in pairs] + [j for i, j, _, _ in pairs]
        x, shown = self._views(idx)
        e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        targets = [SimilarityTarget(e[j]) for i, j, _, _ in pairs] + [SimilarityTarget(e[i]) for i, j, _, _ in pairs]
        heat = self._heat(route, x, targets, shown)
        n = len(pairs)
        tiles = []
        for m, (i, j, s, kind) in enumerate(pairs):
            a, b = self.classes[self.y[i]], self.classes[self.y[j]]
            tiles.append([(shown[m], f"{kind}: {a}"), (heat[m], f"similarity {s:.3f}"),
                          (heat[n + m], f"{b}"), (shown[n + m], f"{b}")])
        fig = plot_tiles(tiles, ncols=4, title="Verification: the hardest pairs")
        _display(guide("Top rows: pairs of the same identity the model finds least similar (false rejects); bottom "
                       "rows: pairs of different identities it finds most similar (false accepts). The heat maps "
                       "show what drives the similarity to the other image."), figure_image(fig, dpi=80))

    @_section("Grad-CAM explorer")
    def cam_explorer(self):
        """In JupyterLab: pick an image (by index or among the mistakes) and see its CAM."""
        if not self.interactive or self.classification is None:
            return
        import ipywidgets as w

        from .plots import plot_tiles

        route = self.cam_route("scores")
        if route is None:
            return
        probs = self.probs
        pred = probs.argmax(1)
        wrong = [int(i) for i in np.nonzero(pred != self.y)[0]]
        options = [(f"#{i}: {self.classes[self.y[i]]} → {self.classes[pred[i]]}", i) for i in wrong]
        index = w.BoundedIntText(value=wrong[0] if wrong else 0, min=0, max=len(self.y) - 1, description="image #")
        pick = w.Dropdown(options=options or [("no mistakes", 0)], description="mistakes")
        out = w.Output()

        def show(*_):
            i = int(index.value)
            x, shown = self._views([i, i])
            heat = self._heat(route, x, [int(pred[i]), int(self.y[i])], shown)
            fig = plot_tiles([[(shown[0], self.pred["paths"][i]),
                               (heat[0], f"predicted {self.classes[pred[i]]}"),
                               (heat[1], f"true {self.classes[self.y[i]]}")]], ncols=3,
                             title=f"{route.method} ({route.route})", tile_inches=2.5)
            out.clear_output(wait=True)
            with out:
                _show(figure_image(fig))

        pick.observe(lambda ch: setattr(index, "value", ch["new"]), names="value")
        index.observe(show, names="value")
        show()
        _display(w.VBox([w.HBox([index, pick]), out]))

    @_section("t-SNE map")
    def tsne_map(self):
        """t-SNE map (computed in the metrics step) with thumbnails and trustworthiness.

        Without a map (no embedding output and too few class scores) the section says why. In the
        HTML each point (up to ``HOVER_POINTS``, mistakes first) has a hover title: its class, the
        prediction when wrong, and its file.
        """
        from .data import load_image
        from .display import figure_with_hover
        from .tsne import MAX_LEGEND, TSNEMap, plot_tsne

        t = self.evaluation.tsne or {"skipped": "No t-SNE map was computed."}
        if "skipped" in t:
            _display(f"<p><i>{html.escape(t['skipped'])}</i></p>")
            return
        rep = self.params.report
        index = np.asarray(t["index"])
        m = TSNEMap(np.asarray(t["coords"]), t["trustworthiness"], t["trust_sample"], t["method"], t["seed"])
        y = self.y[index]
        mistakes = None
        if "scores" in self.pred and self.classification is not None:
            mistakes = self.pred["scores"][index].argmax(1) != y
        root = Path(self.pred["root"])
        mode = self.params.preprocess.mode

        def thumb(i):
            from PIL import Image

            img = load_image(root / self.pred["paths"][index[i]], mode)
            scale = 32 / max(img.size)
            if scale > 1:  # tiny images are upsampled so a thumbnail is legible
                img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)), Image.BILINEAR)
            else:
                img.thumbnail((32, 32))
            return np.asarray(img, dtype=np.float32) / 255.0

        def draw(ax=None, thumbnails=None):
            return plot_tsne(m, y, self.classes, thumbnails=thumbnails, mistakes=mistakes, ax=ax,
                             max_thumbnails=rep.tsne_thumbnails, seed=rep.seed)

        _plot(lambda ax: draw(ax)[0])
        ax, placed = draw(thumbnails=thumb)
        fig = ax.figure
        fig.draw_without_rendering()  # the final layout, so the hover points sit on the drawn ones
        n = len(index)
        wrong = np.zeros(n, bool) if mistakes is None else mistakes
        rng = np.random.default_rng(rep.seed)
        hover = np.argsort(-(wrong + rng.random(n)), kind="stable")[:HOVER_POINTS]
        pred = self.pred["scores"][index].argmax(1) if mistakes is not None else None
        titles = [f"{self.classes[y[i]]}" + (f" → predicted {self.classes[pred[i]]}" if wrong[i] else "")
                  + f" ({self.pred['paths'][index[i]]})" for i in hover]
        n_cls = len(self.classes)
        colours = (f"Colours by class; {n_cls:,} classes" if n_cls > MAX_LEGEND else "Colours by class (legend)")
        sample = (f" (a random sample of the {t['images']:,} images, mistakes first)" if n < t["images"] else "")
        note = (f"{colours}; {n:,} points{sample} from {t['source']}; {placed} thumbnails on points spread out so "
                f"none overlap; trustworthiness (k = 10) {m.trustworthiness:.3f}"
                + (f" measured on {m.trust_sample:,} random points" if m.trust_sample < n else "")
                + ": near 1 means neighbours on the map are neighbours in the embedding. Hover over a point for its "
                  "class and file" + (f" ({len(hover):,} of the points, mistakes first)." if len(hover) < n
                                      else "."))
        _display(guide("Images the model finds similar sit close together; a thumbnail inside another class's "
                       "cluster is an image the model confuses. Black rings mark misclassified images."),
                 figure_with_hover(fig, ax.transData.transform(m.coords[hover]), titles, dpi=80),
                 CSS + f"<p>{html.escape(note)}</p>")


@dataclass
class Report(_Explain):
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
                                  "verification_pairs", "metrics", "warnings"})

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

    # ------------------------------------------------------------------ sections
    @_section("Summary")
    def summary(self):
        """The top of the page: headline metrics with intervals, the decision rule, the rank among the
        models evaluated on the same data, the warnings, and the contents."""
        from .compare import Comparison
        from .summary import SECTIONS, left_out_text, rank_among, summary_html

        ds = self.run["dataset"]
        primary = self.primary()[0]
        ranking = None
        try:
            peers = Comparison.load(self.out_dir.parent, primary_metric=primary).ok
            ranking = rank_among(self.params.name, {**peers, self.params.name: self.metrics}, primary)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.note(f"Summary: no ranking: the other models' metrics could not be read ({exc})")
        has = {"classification": self.classification is not None, "verification": self.verification is not None,
               "training_log": bool(self.params.report.training_log)}
        lede = (f"{self.params.name}: {Path(self.run['model']['path']).name} evaluated on {len(self.y):,} images "
                f"of {len(self.classes):,} classes from {Path(ds['root']).name}/ "
                f"({' and '.join(self.params.tasks)}).")
        _display(summary_html(name=self.params.name, lede=lede, headline=self.metrics["headline"], primary=primary,
                              decision=self._decision(), ranking=ranking, warnings=self.warnings,
                              toc=[(i, t) for i, t, need in SECTIONS if need is None or has[need]],
                              left_out=left_out_text([{**s, "reason": short_message(s["reason"])}
                                                      for s in ds["skipped"]], len(self.y))))

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

    @_section("Notes")
    def notes(self):
        """Warnings raised while the sections were drawn, as short messages with no paths."""
        if not self.render_notes:
            _display(CSS + "<p>No warnings while this report was drawn.</p>")
            return
        items = "".join(f"<li>{html.escape(m)}{f' ({n} times)' if n > 1 else ''}</li>"
                        for m, n in self.render_notes.items())
        _display(CSS + guide("Warnings the libraries raised while this report was drawn; they rarely change a "
                             "number, but say where a figure may be off.") + f"<ul>{items}</ul>")

    @_section("Model and data")
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
        run_rows += [["skipped files", len(ds["skipped"])],
                     ["inference time", f"{inf.get('seconds', float('nan')):.2f} s" + (" (earlier run; cached)" if inf.get("cached") else "")],
                     ["images/s", f"{speed:.0f}" if speed else "n/a"]]
        counts = [[k, v] for k, v in ds["counts"].items()]
        parts = [CSS, f"<h3>{html.escape(self.params.name)}</h3>"]
        parts += [html_table(facts, ["model", ""]),
                  html_table(io_rows, ["", "name", "shape", "type"]), html_table(run_rows, ["run", ""]),
                  "<details><summary>images per class</summary>" + html_table(counts, ["class", "images"]) + "</details>"]
        if ds["skipped"]:
            parts.append("<details open><summary>skipped files</summary>" + html_table(
                [[s["path"], short_message(s["reason"])] for s in ds["skipped"][:200]], ["file", "reason"])
                + (f"<p>and {len(ds['skipped']) - 200:,} more</p>" if len(ds["skipped"]) > 200 else "") + "</details>")
        _display("".join(parts))

    def _need(self, what):
        obj = getattr(self, what)
        if obj is None:
            _display(f"<p><i>Not part of this model's evaluation (task: {html.escape(', '.join(self.params.tasks))}).</i></p>")
        return obj

    @_section("Classification")
    def classification_summary(self):
        """Headline metrics with intervals, the center-crop comparison, per-class table."""
        c = self._need("classification")
        if c is None:
            return
        iv = self.cls_intervals
        k = self.params.report.top_k

        def ci(name):
            lo_hi = iv.get(name)
            return f"[{lo_hi[0]:.4f}, {lo_hi[1]:.4f}]" if lo_hi else "n/a"

        rows = [["accuracy (top-1)", c.accuracy, ci("accuracy")], ["macro F1", c.macro_f1, ci("macro_f1")]]
        if k in c.top_k:
            rows.append([f"top-{k} accuracy", c.top_k[k], ci(f"top_{k}")])
        rows += [["macro ROC AUC (one-vs-rest)", c.roc_auc_macro, ci("roc_auc_macro")],
                 ["macro average precision", c.average_precision_macro, ""],
                 ["test loss (cross-entropy)", c.log_loss, ""], ["expected calibration error", c.ece, ""]]
        parts = [CSS, guide("95% intervals come from resampling the images (bootstrap); "
                            "when two models' intervals overlap a lot, the difference may be noise."),
                 html_table(rows, ["metric", "value", "95% interval"])]
        if self.cls_center is not None:
            cc = self.cls_center
            tta = self.params.preprocess.tta
            rows = [[m, a, b, b - a] for m, a, b in (
                ("accuracy", cc.accuracy, c.accuracy), ("macro F1", cc.macro_f1, c.macro_f1),
                (f"top-{k}", cc.top_k.get(k, float("nan")), c.top_k.get(k, float("nan"))),
                ("macro ROC AUC", cc.roc_auc_macro, c.roc_auc_macro), ("test loss", cc.log_loss, c.log_loss))]
            parts += [f"<h4>Center crop vs {html.escape(tta)}</h4>",
                      guide(f"The same model on the single center crop and with {tta} test-time augmentation; "
                            "a positive change means augmentation helps (for loss, lower is better)."),
                      html_table(rows, ["metric", "center crop", tta, "change"])]
        n = len(c.classes)
        order = np.arange(n) if n <= TABLE_ROWS else worst_first(c.f1, c.support)
        per = [[str(c.classes[i]), c.precision[i], c.recall[i], c.f1[i], int(c.support[i]), c.roc_auc[i]]
               for i in order]
        head = ["class", "precision", "recall", "F1", "images", "ROC AUC"]
        parts.append("<h4>Per class</h4>")
        if n <= TABLE_ROWS:
            parts.append(html_table(per, head))
        else:
            parts += [guide(f"The {TABLE_ROWS} classes with the lowest F1 of {n:,}, worst first (equal F1: more "
                            f"images first). Open the full table below; a click on a column header sorts it."),
                      folded_table(per, head, shown=TABLE_ROWS, what="classes")]
        if c.undefined:
            parts.append(html_table([[u["metric"], ", ".join(u["classes"][:20])
                                      + (f" and {len(u['classes']) - 20:,} more" if len(u["classes"]) > 20 else ""),
                                      u["reason"]] for u in c.undefined], ["undefined metric", "classes", "reason"]))
        _display("".join(parts))

    @_section("Confusion matrix")
    def confusion(self):
        """Confusion heat map (counts and row percentages) and the most confused pairs.

        Above ``CONFUSION_ANNOTATED`` classes: the submatrix of the most confused classes (ordered
        so that confusions sit next to each other), then the whole matrix as one image ordered by
        hierarchical clustering, then the pairs.
        """
        from .metrics.confusion import cluster_order, most_confused_classes
        from .plots import plot_confusion, plot_confusion_image

        c = self._need("classification")
        if c is None:
            return
        rows = [[m["true"], m["predicted"], m["count"], m["rate"]] for m in c.most_confused]
        pairs = CSS + "<h4>Most confused pairs</h4>" + html_table(rows, ["true", "predicted as", "images",
                                                                         "share of true class"])
        n = len(c.classes)
        if n <= CONFUSION_ANNOTATED:
            _plot(lambda ax: plot_confusion(c.confusion, c.classes, ax=ax, title=f"Confusion matrix: {self.params.name}"))
            ax = plot_confusion(c.confusion, c.classes, title=f"Confusion matrix: {self.params.name}")
            _display(guide("Rows are the true class, columns the prediction; the diagonal is correct. "
                           "Each cell shows the count and the share of its row; dark cells off the diagonal are "
                           "the model's typical mistakes."), figure_image(ax.figure), pairs)
            return
        shown = []
        idx = most_confused_classes(c.confusion, max_classes=CONFUSED_CLASSES)
        if len(idx) >= 2:
            ax = plot_confusion(c.confusion[np.ix_(idx, idx)], [c.classes[i] for i in idx],
                                row_totals=c.confusion.sum(axis=1)[idx],
                                title=f"The {len(idx)} most confused classes of {n:,}: {self.params.name}")
            shown += [guide(f"The {len(idx)} classes involved in the largest off-diagonal counts, of {n:,}; they are "
                            "ordered so that classes confused with each other sit side by side. Rows are the true "
                            "class, columns the prediction; each cell shows the count and the share of all of the "
                            "true class's images, so a row need not add up to 100%."), figure_image(ax.figure)]
        else:
            shown.append("<p><i>No class is confused with another: every image is classified correctly.</i></p>")
        order = cluster_order(c.confusion)
        title = f"All {n:,} classes, ordered by hierarchical clustering: {self.params.name}"
        _plot(lambda ax: plot_confusion_image(c.confusion, order=order, ax=ax, title=title))
        ax = plot_confusion_image(c.confusion, order=order, title=title)
        dpi = min(220, max(100, int(np.ceil(n / 9.0))))  # at least a pixel per class, up to 2,000 classes
        shown += [guide("The whole matrix, one pixel per pair of classes, rows and columns in the same order: "
                        "classes confused with each other are clustered together, so confusions appear as dark "
                        "squares along the diagonal; a dark point far from it is a confusion between otherwise "
                        "distinct groups. Colour is the share of the true class (row); empty cells are white."),
                  figure_image(ax.figure, dpi=dpi), pairs]
        _display(*shown)

    @_section("ROC and precision-recall")
    def curves(self):
        """ROC and precision-recall curves: micro and macro averages, per class when few."""
        from matplotlib.figure import Figure

        from .plots import plot_pr, plot_roc

        c = self._need("classification")
        if c is None:
            return
        cv = self.evaluation.curves
        micro, macro, pr_micro = cv["roc_micro"], cv["roc_macro"], cv["pr_micro"]
        roc = {f"micro average (AUC {micro['area']:.3f})": (micro["fpr"], micro["tpr"]),
               f"macro average (AUC {c.roc_auc_macro:.3f})": (macro["fpr"], macro["tpr"])}
        pr = {f"micro average (AP {pr_micro['area']:.3f})": (pr_micro["precision"], pr_micro["recall"])}
        if len(self.classes) <= 10:
            probs = self.probs
            for k, name in enumerate(self.classes):
                if (self.y == k).any():
                    sw = threshold_sweep(self.y == k, probs[:, k])
                    roc[f"class {name} ({c.roc_auc[k]:.3f})"] = sw
                    pr[f"class {name} ({c.average_precision[k]:.3f})"] = sw
        _plot(lambda ax: plot_roc(roc, ax=ax, title="ROC, one class vs the rest"))
        fig = Figure(figsize=(12, 5), layout="constrained")
        a1, a2 = fig.subplots(1, 2)
        plot_roc(roc, ax=a1, title="ROC, one class vs the rest")
        plot_pr(pr, ax=a2, title="Precision-recall, one class vs the rest")
        _display(guide("The closer a curve hugs the top-left (ROC) or top-right (precision-recall) corner, the "
                       "better the model separates that class from the others; the diagonal is guessing."),
                 figure_image(fig))

    @_section("Calibration")
    def reliability(self):
        """Reliability diagram with expected calibration error."""
        from .plots import plot_reliability

        c = self._need("classification")
        if c is None:
            return
        _plot(lambda ax: plot_reliability(c.reliability, ece=c.ece, ax=ax))
        ax = plot_reliability(c.reliability, ece=c.ece)
        _display(guide("Each bar is how often the model is right among images with that confidence; the red mark "
                       "is their mean confidence. A bar below its mark means over-confident, above it "
                       "under-confident. The number in a bar is its count of images."), figure_image(ax.figure))

    @_section("Class threshold slider")
    def classification_slider(self):
        """Threshold slider on each class's probability (one class vs the rest)."""
        c = self._need("classification")
        if c is None:
            return
        probs, n = self.probs, len(self.classes)
        present = [k for k in range(n) if c.support[k] > 0]
        keys, note = present, ""
        if n == 2:
            keys = [1]
        elif not self.interactive and len(present) > STATIC_SLIDER_CLASSES:
            keys = [k for k in worst_first(c.f1, c.support) if c.support[k] > 0][:STATIC_SLIDER_CLASSES]
            note = (f" (the {len(keys)} classes with the lowest F1 of {n:,}; in JupyterLab the live slider has "
                    f"every class)")
        keys = sorted(keys, key=lambda k: (str(self.classes[k]).casefold(), k))  # the chooser lists names A to Z

        def sweep(k):
            return lambda: threshold_sweep(self.y == k, probs[:, k])

        sweeps = {f"class {self.classes[k]} vs rest": sweep(k) for k in keys}
        self._slider(sweeps, 0.5, f"Probability threshold per class{note}", self.interactive,
                     positive="class", negative="other classes")

    def _slider(self, sweeps, initial, title, interactive, positive, negative):
        """``sweeps`` maps a curve's name to a ThresholdSweep, or to a function that makes it (the live
        slider makes it when the curve is chosen)."""
        from .plots import plot_roc
        from .slider import SEARCH_FROM, live_slider, static_slider_html, sweep_payload

        _display(guide("Move the slider to see what a decision threshold would do: the counts of right and "
                       "wrong decisions and the rates they give."))
        if interactive:
            def curve(sweep, t):
                c = sweep.table([t])
                return plot_roc({"ROC": sweep}, marker=(float(c["far"][0]), float(c["recall"][0]))).figure
            _display(live_slider(sweeps, initial=initial, curve_plot=curve, positive=positive, negative=negative))
        else:
            points = STATIC_SLIDER_POINTS if len(sweeps) > SEARCH_FROM else None
            _display(static_slider_html([sweep_payload(s() if callable(s) else s, name=n, positive=positive,
                                                       negative=negative, max_points=points)
                                         for n, s in sweeps.items()], initial=initial, title=title))

    @_section("Verification")
    def verification_summary(self):
        """Score histograms, ROC with log FAR, metrics against threshold, tables and policies."""
        from matplotlib.figure import Figure

        from .plots import plot_roc, plot_score_histograms, plot_threshold_metrics

        v = self._need("verification")
        if v is None:
            return
        policy = self.params.report.threshold_policy
        chosen = v.policies.get(policy)
        t = chosen.threshold if chosen else float("nan")
        fig = Figure(figsize=(12, 4.2), layout="constrained")
        a1, a2 = fig.subplots(1, 2)
        plot_score_histograms(v.histogram, ax=a1, threshold=t)
        curves = {f"{self.params.name} (AUC {v.auc:.4f})": v.sweep}
        if self.ver_center is not None:
            curves[f"center crop only (AUC {self.ver_center.auc:.4f})"] = self.ver_center.sweep
        plot_roc(curves, ax=a2, log_far=True, title="ROC (TAR against FAR)",
                 marker=(chosen.far, chosen.tar) if chosen else None)
        _plot(lambda ax: plot_roc(curves, ax=ax, log_far=True, title="ROC (TAR against FAR)",
                                  marker=(chosen.far, chosen.tar) if chosen else None))
        iv = v.intervals
        far = self.params.report.far_target
        head = [["pairs", f"{v.n_genuine:,} genuine, {v.n_impostor:,} impostor ({v.protocol}, "
                          f"{v.n_identities} identities)"],
                ["ROC AUC", f"{v.auc:.5f}" + (f"  [{iv['auc'][0]:.4f}, {iv['auc'][1]:.4f}]" if "auc" in iv else "")
                 + (f"  (within {v.auc_bound:.1e} of exact)" if not v.exact else "")],
                ["equal error rate", f"{v.eer:.4f} at threshold {v.eer_threshold:.4f}"]]
        key = f"tar_at_far_{far:g}"
        if key in iv:
            head.append([f"TAR at FAR {far:g}, 95% interval", f"[{iv[key][0]:.4f}, {iv[key][1]:.4f}]"])
        tar_rows = [[f"{f:g}", x["tar"] if x["supported"] else "not enough impostor pairs", x["threshold"]]
                    for f, x in v.tar_at_far.items()]
        pol_rows = [[("→ " if p == policy else "") + p, c.threshold, c.accuracy, c.precision, c.recall, c.f1, c.far]
                    for p, c in v.policies.items()]
        tab = v.table
        table_rows = [[tab["threshold"][i], int(tab["tp"][i]), int(tab["fp"][i]), int(tab["tn"][i]), int(tab["fn"][i]),
                       tab["accuracy"][i], tab["precision"][i], tab["recall"][i], tab["f1"][i]]
                      for i in range(len(tab["threshold"]))]
        fig2 = Figure(figsize=(7, 4), layout="constrained")
        plot_threshold_metrics(v.sweep, ax=fig2.add_subplot(), threshold=t)
        _display(CSS + html_table(head, ["verification", ""]) + "".join(
            f'<p class="evallib-warn">{html.escape(n)}</p>' for n in v.notes),
                 guide("Left: similarity of pairs of the same identity (green) and of different identities (red); "
                       "the less they overlap the better. Right: share of genuine pairs accepted (TAR) at each "
                       "rate of impostors accepted (FAR), FAR on a log scale."),
                 figure_image(fig),
                 guide("Accuracy, precision, recall and F1 of the accept/reject decision at every threshold; the "
                       "dashed line is the recommended threshold."),
                 figure_image(fig2),
                 CSS + f"<h4>Thresholds chosen by each policy (recommended: {html.escape(policy)})</h4>"
                 + html_table(pol_rows, ["policy", "threshold", "accuracy", "precision", "recall (TAR)", "F1", "FAR"])
                 + "<h4>TAR at FAR</h4>" + html_table(tar_rows, ["FAR", "TAR", "threshold"])
                 + "<h4>Threshold table</h4>" + html_table(
                     table_rows, ["threshold", "TP", "FP", "TN", "FN", "accuracy", "precision", "recall", "F1"]))
        if self.verification_pairs is not None:
            vp = self.verification_pairs
            rows = [["pairs", f"{vp.n_genuine} genuine, {vp.n_impostor} impostor"], ["ROC AUC", vp.auc],
                    ["EER", vp.eer]]
            if vp.lfw:
                rows.append(["10-fold accuracy", f"{vp.lfw['mean']:.4f} ± {vp.lfw['std']:.4f}"])
            _display(CSS + "<h4>Pair list protocol</h4>" + guide(
                "Accuracy on each fold uses the threshold that was best on the other nine folds (the LFW protocol).")
                + html_table(rows, ["pair list", ""]))

    @_section("Similarity threshold slider")
    def verification_slider(self):
        v = self._need("verification")
        if v is None:
            return
        policy = self.params.report.threshold_policy
        t = v.policies[policy].threshold if policy in v.policies else 0.5
        self._slider({"all pairs": v.sweep}, t, "Similarity threshold (accept as same identity)", self.interactive,
                     positive="genuine", negative="impostor")

    @_section("Training curves")
    def training_curves(self):
        """Training and validation curves when the params name a training log."""
        from .plots import plot_training_curves
        from .training_log import read_training_log

        path = self.params.report.training_log
        if not path:
            _display("<p><i>No training log given (report.training_log).</i></p>")
            return
        log = read_training_log(path)
        _plot(lambda ax: plot_training_curves(log, axes=(ax, ax), title=self.params.name)[0])
        axes = plot_training_curves(log, title=self.params.name)
        _display(guide("Training and validation loss falling together means the model is still learning; "
                       "validation loss rising while training loss falls means over-fitting."),
                 figure_image(axes[0].figure))


def _stale(params, params_path, run, model_dir):
    """Why ``model_dir`` no longer matches the params file ``params_path``, or None."""
    from .params import Params
    from ._keys import metrics_key, predictions_key

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
        ``rep.summary``, ``rep.confusion``, ``rep.curves``... are :class:`~evallib.display.Section`
        objects: ``evallib.load("outputs/cnn_wide").confusion.plot()``.
    """
    from .params import Params, load_params

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
