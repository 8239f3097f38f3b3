"""One model's report: metrics from cached predictions, and the sections the notebook shows.

``Report.load(params_path, out_root)`` reads (or makes) the predictions, computes every
metric once, writes ``metrics.json``, and offers one method per report section. Each method
displays its tables and figures (with a one-line reading guide) and returns nothing, so the
notebook stays a list of calls.
"""

from __future__ import annotations

import html
import json
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ._io import to_jsonable, write_json
from .data import describe_class_order
from .display import CSS, figure_image, guide, html_table
from .metrics import (DegenerateWarning, bootstrap_classification, evaluate_classification, evaluate_verification,
                      infer_score_type, threshold_sweep)
from .params import load_params
from .outputs import METRICS, PREDICTIONS, RUN, load_predictions
from .run import run_model

TSNE_MIN_SCORES = 3  # a t-SNE map of this many class scores or fewer is not drawn
PRIMARY = {
    "accuracy": ("classification", "accuracy"), "macro_f1": ("classification", "macro_f1"),
    "top_5": ("classification", "top_5"), "roc_auc_macro": ("classification", "roc_auc_macro"),
    "auc": ("verification", "auc"), "tar_at_far": ("verification", "tar_at_far"),
    "lfw_accuracy": ("verification", "lfw_accuracy"),
}


def _display(*objs):
    from IPython.display import HTML, display

    for o in objs:
        display(HTML(o) if isinstance(o, str) else o)


def _thin(x, y, n=400):
    x, y = np.asarray(x), np.asarray(y)
    if len(x) > n:
        idx = np.unique(np.r_[np.linspace(0, len(x) - 1, n).round().astype(int)])
        x, y = x[idx], y[idx]
    return {"fpr": x.tolist(), "tpr": y.tolist()}


def macro_roc(y, probs, grid=np.linspace(0, 1, 201)):
    """Macro-average one-vs-rest ROC: per-class TPR interpolated on a common FPR grid, averaged."""
    tprs = []
    for k in range(probs.shape[1]):
        pos = y == k
        if pos.any() and not pos.all():
            fpr, tpr, _ = threshold_sweep(pos, probs[:, k]).roc()
            tprs.append(np.interp(grid, fpr, tpr))
    return grid, np.mean(tprs, axis=0) if tprs else np.full(len(grid), np.nan)


class _Explain:
    """Grad-CAM and t-SNE sections (mixed into :class:`Report`)."""

    def _views(self, idx):
        """Center-crop model inputs (NCHW) and display images of dataset rows ``idx``."""
        from .cam import to_display
        from .data import load_views
        from .inference import input_dtype

        pre = {**self.params.preprocess, "tta": "none"}
        pre["dtype"] = input_dtype(self.run["model"]["inputs"][0]["type"], dtype=pre["dtype"])
        root = Path(self.pred["root"])
        x = np.concatenate([load_views(root / self.pred["paths"][i], pre)[0] for i in idx]).astype(np.float32)
        top = 255.0 if pre["scale"] == "byte" or pre["dtype"] == "uint8" else 1.0
        shown = [to_display(v, pre["mean"], pre["std"], top=top, bgr=pre["channels"] == "bgr") for v in x]
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
            nhwc = _layout(model["inputs"][0]["shape"], shape, self.params.preprocess["layout"]) == "nhwc"
            cache[output] = cam_route(self.params.model, input_shape=shape, method=rep["cam_method"],
                                      layer=rep["cam_layer"], output=self.params.outputs[output], output_names=names,
                                      nhwc=nhwc, fallback=rep["torch_model"], factory=rep["torch_model_factory"])
        except (ModelError, ValueError) as exc:
            cache[output] = None
            if not self.__dict__.get("_cam_reason_shown"):
                self._cam_reason_shown = True
                _display(CSS + f'<p class="evallib-warn">No heat maps: {html.escape(str(exc))}. The galleries '
                               f'show their images alone.</p>')
        return cache[output]

    def _cam_intro(self, route):
        if self.__dict__.get("_cam_intro_shown"):
            return
        self._cam_intro_shown = True
        rows = [["route", route.route], ["model used", route.source], ["target layer", route.layer],
                ["method", route.method]]
        if route.method != self.params.report["cam_method"]:
            rows.append(["note", f"{self.params.report['cam_method']} needs gradients, which no route gave; "
                                 f"{route.method} needs none and drew these maps (the same map for every target)"])
        rows += [["why not an earlier route", n] for n in route.notes]
        self.metrics["cam"] = {"route": route.route, "method": route.method, "layer": route.layer}
        self.save()
        _display(CSS + html_table(rows, ["Heat maps", ""]))

    def _heat(self, route, x, targets, shown):
        """Tiles' images: each shown image with its heat map over it, or alone when there is no route."""
        from .cam import overlay

        if route is None:
            return list(shown)
        return [overlay(img, cam) for img, cam in zip(shown, route(x, targets))]

    def grad_cam_gallery(self):
        """Per class the most confident correct images and the mistakes, each with its heat map."""
        from .plots import plot_tiles

        if self.classification is None or self.params.report["gallery_size"] == 0:
            return self._verification_gallery()
        route = self.cam_route("scores")
        if route is not None:
            self._cam_intro(route)
        size = self.params.report["gallery_size"]
        probs = self.probs
        pred, conf, y = probs.argmax(1), probs.max(1), self.y
        n_ok, n_bad = max(1, size // 2), max(1, size // 4)
        picks = []  # (row, index, target class, caption)
        for k, name in enumerate(self.classes):
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
        _display(guide("Each row is one true class: its most confident correct images, then its mistakes as pairs "
                       "(heat map for the wrong prediction, then for the true class). Red areas drove the score; "
                       "captions read true → predicted (probability)."), figure_image(fig, dpi=80))
        self._verification_gallery()

    def _verification_gallery(self):
        from .cam import SimilarityTarget
        from .metrics.verification import extreme_pairs
        from .plots import plot_tiles

        if self.verification is None or self.params.report["gallery_size"] == 0:
            return
        k = max(1, self.params.report["gallery_size"] // 2)
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

    def cam_explorer(self, interactive=False):
        """In JupyterLab: pick an image (by index or among the mistakes) and see its CAM."""
        if not interactive or self.classification is None:
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
                _display(figure_image(fig))

        pick.observe(lambda ch: setattr(index, "value", ch["new"]), names="value")
        index.observe(show, names="value")
        show()
        _display(w.VBox([w.HBox([index, pick]), out]))

    def tsne_map(self):
        """t-SNE map of the embedding output with thumbnails and trustworthiness.

        Without an embedding output the class scores are mapped when there are more than
        ``TSNE_MIN_SCORES`` of them; otherwise the section says why there is no map.
        """
        from .data import load_image
        from .tsne import plot_tsne, tsne_map

        outs = self.params.outputs
        if "embeddings" in self.pred:
            feats, source = self.pred["embeddings"], f"output {outs['embedding']!r}"
        elif "scores" in self.pred and self.pred["scores"].shape[1] > TSNE_MIN_SCORES:
            kind = "class probabilities" if self.pred.get("scores_are") == "probabilities" else "class scores"
            feats, source = self.pred["scores"], f"output {outs['scores']!r} ({kind})"
        else:
            n = self.pred["scores"].shape[1] if "scores" in self.pred else 0
            why = ("No t-SNE map: the model has no embedding output"
                   + (f", and a map of its {n} class scores would show nothing the scores themselves do not "
                      f"(a map needs more than {TSNE_MIN_SCORES})" if n else "") + ".")
            self.metrics["tsne"] = {"skipped": why}
            self.save()
            _display(f"<p><i>{html.escape(why)}</i></p>")
            return
        rep = self.params.report
        m = tsne_map(feats, seed=rep["seed"], perplexity=rep["tsne_perplexity"])
        mistakes = None
        if "scores" in self.pred and self.classification is not None:
            mistakes = self.pred["scores"].argmax(1) != self.y
        root = Path(self.pred["root"])
        mode = self.params.preprocess["mode"]

        def thumb(i):
            from PIL import Image

            img = load_image(root / self.pred["paths"][i], mode)
            scale = 32 / max(img.size)
            if scale > 1:  # tiny images are upsampled so a thumbnail is legible
                img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)), Image.BILINEAR)
            else:
                img.thumbnail((32, 32))
            return np.asarray(img, dtype=np.float32) / 255.0

        ax, placed = plot_tsne(m, self.y, self.classes, thumbnails=thumb, mistakes=mistakes,
                               max_thumbnails=rep["tsne_thumbnails"], seed=rep["seed"])
        self.metrics["tsne"] = {"source": source, "trustworthiness": m.trustworthiness, "method": m.method,
                                "trust_sample": m.trust_sample, "points": len(feats), "thumbnails": placed}
        self.save()
        note = (f"{len(feats):,} points from {source}; {placed} thumbnails on points spread out so none overlap; "
                f"trustworthiness (k = 10) {m.trustworthiness:.3f}"
                + (f" measured on {m.trust_sample:,} random points" if m.trust_sample < len(feats) else "")
                + ": near 1 means neighbours on the map are neighbours in the embedding.")
        _display(guide("Images the model finds similar sit close together; a thumbnail inside another class's "
                       "cluster is an image the model confuses. Black rings mark misclassified images."),
                 figure_image(ax.figure, dpi=80), CSS + f"<p>{html.escape(note)}</p>")


@dataclass
class Report(_Explain):
    """Everything one model's report shows; built by :meth:`load`."""

    params: object
    out_dir: Path
    run: dict
    pred: dict
    classification: object = None
    cls_intervals: dict = field(default_factory=dict)
    cls_center: object = None
    verification: object = None
    verification_pairs: object = None
    ver_center: object = None
    metrics: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    write: bool = True

    # ------------------------------------------------------------------ building
    @classmethod
    def load(cls, params_path, out_root="outputs", *, write=True, progress=True):
        """Read predictions (running inference if they are missing), compute metrics, write metrics.json."""
        params = load_params(params_path)
        out_dir = Path(out_root) / params.name
        if not (out_dir / PREDICTIONS).exists() or not (out_dir / RUN).exists():
            run_model(params, out_root, progress=progress)
        run = json.loads((out_dir / RUN).read_text())
        if run.get("status") != "ok":
            run = run_model(params, out_root, progress=progress)
        rep = cls(params=params, out_dir=out_dir, run=run, pred=load_predictions(out_dir), write=write)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DegenerateWarning)
            rep._compute()
        rep.warnings = sorted({str(w.message) for w in caught if issubclass(w.category, DegenerateWarning)})
        rep.metrics = rep._metrics_dict()
        rep.save()
        return rep

    def save(self):
        """Write ``metrics.json`` (atomically), unless the report was loaded with ``write=False``."""
        if self.write:
            write_json(self.out_dir / METRICS, self.metrics)

    @property
    def classes(self):
        return self.pred["classes"]

    @cached_property
    def probs(self):
        """Class probabilities, ndarray of shape (n_samples, n_classes) (softmax of logits)."""
        return _probs(self.pred["scores"], self.pred.get("scores_are", "logits"))

    @cached_property
    def onehot(self):
        """True class of each sample as a boolean ndarray of shape (n_samples, n_classes)."""
        out = np.zeros(self.probs.shape, dtype=bool)
        out[np.arange(len(self.y)), self.y] = True
        return out

    @cached_property
    def micro_sweep(self):
        """The micro-average sweep: every (sample, class) cell as one binary decision."""
        return threshold_sweep(self.onehot.ravel(), self.probs.ravel())

    @property
    def y(self):
        return self.pred["labels"]

    def _compute(self):
        p, rep = self.pred, self.params.report
        if "classification" in self.params.tasks and "scores" in p:
            kind = p.get("scores_are", self.params.outputs["scores_are"])
            names = np.asarray(self.classes)[self.y]
            self.classification = evaluate_classification(names, p["scores"], scores_are=kind, classes=self.classes,
                                                          top_k=(1, rep["top_k"]))
            self.cls_intervals = bootstrap_classification(self.y, p["scores"], scores_are=kind,
                                                          n_boot=rep["bootstrap"], seed=rep["seed"],
                                                          ks=(rep["top_k"],))
            if "scores_center" in p:
                raw_kind = p.get("raw_scores_are") or infer_score_type(p["scores_center"])[0]
                self.cls_center = evaluate_classification(names, p["scores_center"], classes=self.classes,
                                                          scores_are=raw_kind, top_k=(1, rep["top_k"]))
        if "verification" in self.params.tasks and "embeddings" in p:
            kw = dict(policy_far=rep["far_target"], threads=self.params.runtime["threads"])
            self.verification = evaluate_verification(p["embeddings"], self.y, n_bootstrap=rep["bootstrap"],
                                                      seed=rep["seed"], **kw)
            if "embeddings_center" in p:
                self.ver_center = evaluate_verification(p["embeddings_center"], self.y, **kw)
            if self.params.data.get("pairs"):
                self.verification_pairs = self._pair_list(**kw)

    def _pair_list(self, **kw):
        from .data import Dataset, read_pairs

        ds = Dataset(Path(self.pred["root"]), self.pred["paths"], self.y, self.classes)
        pairs = read_pairs(self.params.data["pairs"], ds)
        return evaluate_verification(self.pred["embeddings"], self.y, pairs=(pairs.i, pairs.j, pairs.same, pairs.fold),
                                     n_bootstrap=self.params.report["bootstrap"], seed=self.params.report["seed"], **kw)

    def primary(self, name=None):
        """``(metric name, value, [low, high])`` of the primary metric."""
        name = name or self.params.report["primary_metric"] or (
            "macro_f1" if self.classification is not None else "auc")
        m = self.metrics or self._metrics_dict()
        task, key = PRIMARY.get(name, (None, None))
        if task is None:
            raise ValueError(f"report.primary_metric: expected one of {', '.join(PRIMARY)}; got {name!r}")
        h = m.get("headline", {}).get(name)
        return (name, h["value"], h["interval"]) if h else (name, float("nan"), [float("nan")] * 2)

    def _headline(self):
        out = {}
        c, iv = self.classification, self.cls_intervals
        if c is not None:
            k = self.params.report["top_k"]
            out["accuracy"] = {"value": c.accuracy, "interval": iv.get("accuracy")}
            out["macro_f1"] = {"value": c.macro_f1, "interval": iv.get("macro_f1")}
            if k in c.top_k:
                out[f"top_{k}"] = {"value": c.top_k[k], "interval": iv.get(f"top_{k}")}
            out["roc_auc_macro"] = {"value": c.roc_auc_macro, "interval": iv.get("roc_auc_macro")}
        v = self.verification
        if v is not None:
            far = self.params.report["far_target"]
            out["auc"] = {"value": v.auc, "interval": v.intervals.get("auc")}
            out["tar_at_far"] = {"value": v.tar_at_far.get(far, {}).get("tar", float("nan")),
                                 "interval": v.intervals.get(f"tar_at_far_{far:g}"), "far": far}
            out["eer"] = {"value": v.eer, "interval": None}
        if self.verification_pairs is not None and self.verification_pairs.lfw:
            lfw = self.verification_pairs.lfw
            out["lfw_accuracy"] = {"value": lfw["mean"], "interval": None, "std": lfw["std"]}
        return out

    def _metrics_dict(self):
        m = {"name": self.params.name, "status": "ok", "task": list(self.params.tasks),
             "headline": self._headline(), "run": self.run, "warnings": self.warnings}
        if self.classification is not None:
            c = self.classification.to_dict()
            c["intervals"] = self.cls_intervals
            fpr, tpr, _ = self.micro_sweep.roc()
            c["roc_micro"] = _thin(fpr, tpr)
            if self.cls_center is not None:
                c["center_crop"] = self.cls_center.to_dict()
            m["classification"] = c
        if self.verification is not None:
            v = self.verification.to_dict()
            fpr, tpr, _ = self.verification.sweep.roc()
            v["roc"] = _thin(fpr, tpr)
            if self.ver_center is not None:
                v["center_crop"] = {"auc": self.ver_center.auc, "eer": self.ver_center.eer,
                                    "tar_at_far": {f"{k:g}": x for k, x in self.ver_center.tar_at_far.items()}}
            m["verification"] = v
        if self.verification_pairs is not None:
            m["pairs"] = self.verification_pairs.to_dict()
        return to_jsonable(m)

    # ------------------------------------------------------------------ sections
    def header(self):
        """Model facts, dataset, skipped files, run time."""
        model, ds, inf = self.run["model"], self.run["dataset"], self.run["inference"]
        io_rows = [["input", i["name"], str(i["shape"]), i["type"]] for i in model["inputs"]] + \
                  [["output", o["name"], str(o["shape"]), o["type"]] for o in model["outputs"]]
        facts = [["model file", model["path"]], ["size", f"{model['size_bytes'] / 1e6:.2f} MB"],
                 ["sha256", model["sha256"]], ["producer", model["producer"]],
                 ["opset", ", ".join(f"{k} {v}" for k, v in model["opset"].items())],
                 ["task", ", ".join(self.params.tasks)], ["test-time augmentation", self.params.preprocess["tta"]]]
        facts += [[f"metadata: {k}", v] for k, v in model["metadata"].items()]
        speed = inf.get("images_per_second")
        run_rows = [["images evaluated", len(self.y)], ["classes", len(self.classes)]]
        if ds.get("class_order"):
            run_rows.append(["class order", describe_class_order(self.classes, ds["class_order"])])
        st = self.run.get("score_type")
        if st:
            how = "detected" if st["declared"] == "auto" else f"declared; detected {st['detected']}"
            run_rows.append(["score type", f"{st['used']} ({how}: {st['evidence']})"])
        run_rows += [["skipped files", len(ds["skipped"])],
                     ["inference time", f"{inf.get('seconds', float('nan')):.2f} s" + (" (earlier run; cached)" if inf.get("cached") else "")],
                     ["images/s", f"{speed:.0f}" if speed else "n/a"]]
        counts = [[k, v] for k, v in ds["counts"].items()]
        parts = [CSS, f"<h3>{html.escape(self.params.name)}</h3>"]
        parts += [f'<p class="evallib-warn"><b>Warning:</b> {html.escape(w)}</p>' for w in self.run.get("warnings", [])]
        parts += [html_table(facts, ["model", ""]),
                  html_table(io_rows, ["", "name", "shape", "type"]), html_table(run_rows, ["run", ""]),
                  "<details><summary>images per class</summary>" + html_table(counts, ["class", "images"]) + "</details>"]
        if ds["skipped"]:
            parts.append("<details open><summary>skipped files</summary>" + html_table(
                [[s["path"], s["reason"]] for s in ds["skipped"][:200]], ["file", "reason"]) + "</details>")
        for w in self.warnings:
            parts.append(f'<p class="evallib-warn">{html.escape(w)}</p>')
        _display("".join(parts))

    def _need(self, what):
        obj = getattr(self, what)
        if obj is None:
            _display(f"<p><i>Not part of this model's evaluation (task: {html.escape(', '.join(self.params.tasks))}).</i></p>")
        return obj

    def classification_summary(self):
        """Headline metrics with intervals, the center-crop comparison, per-class table."""
        c = self._need("classification")
        if c is None:
            return
        iv = self.cls_intervals
        k = self.params.report["top_k"]

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
            tta = self.params.preprocess["tta"]
            rows = [[m, a, b, b - a] for m, a, b in (
                ("accuracy", cc.accuracy, c.accuracy), ("macro F1", cc.macro_f1, c.macro_f1),
                (f"top-{k}", cc.top_k.get(k, float("nan")), c.top_k.get(k, float("nan"))),
                ("macro ROC AUC", cc.roc_auc_macro, c.roc_auc_macro), ("test loss", cc.log_loss, c.log_loss))]
            parts += [f"<h4>Center crop vs {html.escape(tta)}</h4>",
                      guide(f"The same model on the single center crop and with {tta} test-time augmentation; "
                            "a positive change means augmentation helps (for loss, lower is better)."),
                      html_table(rows, ["metric", "center crop", tta, "change"])]
        per = [[cls, c.precision[i], c.recall[i], c.f1[i], int(c.support[i]), c.roc_auc[i]]
               for i, cls in enumerate(c.classes)]
        parts += ["<h4>Per class</h4>", html_table(per, ["class", "precision", "recall", "F1", "images", "ROC AUC"])]
        if c.undefined:
            parts.append(html_table([[u["metric"], ", ".join(u["classes"][:20]), u["reason"]] for u in c.undefined],
                                    ["undefined metric", "classes", "reason"]))
        _display("".join(parts))

    def confusion(self):
        """Confusion heat map (counts and row percentages) and the most confused pairs."""
        from .plots import plot_confusion

        c = self._need("classification")
        if c is None:
            return
        ax = plot_confusion(c.confusion, c.classes, title=f"Confusion matrix: {self.params.name}")
        rows = [[m["true"], m["predicted"], m["count"], m["rate"]] for m in c.most_confused]
        _display(guide("Rows are the true class, columns the prediction; the diagonal is correct. "
                       "Each cell shows the count and the share of its row; dark cells off the diagonal are "
                       "the model's typical mistakes."), figure_image(ax.figure),
                 CSS + "<h4>Most confused pairs</h4>" + html_table(rows, ["true", "predicted as", "images", "share of true class"]))

    def curves(self):
        """ROC and precision-recall curves: micro and macro averages, per class when few."""
        from matplotlib.figure import Figure

        from .plots import plot_pr, plot_roc

        c = self._need("classification")
        if c is None:
            return
        probs, onehot, micro = self.probs, self.onehot, self.micro_sweep
        grid, mtpr = macro_roc(self.y, probs)
        roc = {f"micro average (AUC {micro.auc():.3f})": micro,
               f"macro average (AUC {c.roc_auc_macro:.3f})": (grid, mtpr)}
        pr = {f"micro average (AP {micro.average_precision():.3f})": micro}
        if len(self.classes) <= 10:
            for k, name in enumerate(self.classes):
                if onehot[:, k].any():
                    s = threshold_sweep(onehot[:, k], probs[:, k])
                    roc[f"class {name} ({c.roc_auc[k]:.3f})"] = s
                    pr[f"class {name} ({c.average_precision[k]:.3f})"] = s
        fig = Figure(figsize=(12, 5), layout="constrained")
        a1, a2 = fig.subplots(1, 2)
        plot_roc(roc, ax=a1, title="ROC, one class vs the rest")
        plot_pr(pr, ax=a2, title="Precision-recall, one class vs the rest")
        _display(guide("The closer a curve hugs the top-left (ROC) or top-right (precision-recall) corner, the "
                       "better the model separates that class from the others; the diagonal is guessing."),
                 figure_image(fig))

    def reliability(self):
        """Reliability diagram with expected calibration error."""
        from .plots import plot_reliability

        c = self._need("classification")
        if c is None:
            return
        ax = plot_reliability(c.reliability, ece=c.ece)
        _display(guide("Each bar is how often the model is right among images with that confidence; the red mark "
                       "is their mean confidence. A bar below its mark means over-confident, above it "
                       "under-confident. The number in a bar is its count of images."), figure_image(ax.figure))

    def classification_slider(self, interactive=False):
        """Threshold slider on each class's probability (one class vs the rest)."""
        c = self._need("classification")
        if c is None:
            return
        probs = self.probs
        support = np.bincount(self.y, minlength=len(self.classes))
        order = [int(k) for k in np.argsort(-support, kind="stable")[:20] if support[k] > 0]
        if len(self.classes) == 2:
            order = [1]
        sweeps = {f"class {self.classes[k]} vs rest": threshold_sweep(self.y == k, probs[:, k]) for k in order}
        note = "" if len(order) == len(self.classes) or len(self.classes) == 2 else \
            f" (the {len(order)} classes with most images)"
        self._slider(sweeps, 0.5, f"Probability threshold per class{note}", interactive,
                     positive="class", negative="other classes")

    def _slider(self, sweeps, initial, title, interactive, positive, negative):
        from .plots import plot_roc
        from .slider import live_slider, static_slider_html, sweep_payload

        _display(guide("Move the slider to see what a decision threshold would do: the counts of right and "
                       "wrong decisions and the rates they give."))
        if interactive:
            def curve(sweep, t):
                c = sweep.table([t])
                return plot_roc({"ROC": sweep}, marker=(float(c["far"][0]), float(c["recall"][0]))).figure
            _display(live_slider(sweeps, initial=initial, curve_plot=curve))
        else:
            _display(static_slider_html([sweep_payload(s, name=n, positive=positive, negative=negative)
                                         for n, s in sweeps.items()], initial=initial, title=title))

    def verification_summary(self):
        """Score histograms, ROC with log FAR, metrics against threshold, tables and policies."""
        from matplotlib.figure import Figure

        from .plots import plot_roc, plot_score_histograms, plot_threshold_metrics

        v = self._need("verification")
        if v is None:
            return
        policy = self.params.report["threshold_policy"]
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
        iv = v.intervals
        far = self.params.report["far_target"]
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

    def verification_slider(self, interactive=False):
        v = self._need("verification")
        if v is None:
            return
        policy = self.params.report["threshold_policy"]
        t = v.policies[policy].threshold if policy in v.policies else 0.5
        self._slider({"all pairs": v.sweep}, t, "Similarity threshold (accept as same identity)", interactive,
                     positive="genuine", negative="impostor")

    def training_curves(self):
        """Training and validation curves when the params name a training log."""
        from .plots import plot_training_curves
        from .training_log import read_training_log

        path = self.params.report.get("training_log")
        if not path:
            _display("<p><i>No training log given (report.training_log).</i></p>")
            return
        log = read_training_log(path)
        axes = plot_training_curves(log, title=self.params.name)
        _display(guide("Training and validation loss falling together means the model is still learning; "
                       "validation loss rising while training loss falls means over-fitting."),
                 figure_image(axes[0].figure))


def _probs(scores, scores_are):
    from .metrics.classification import to_probabilities

    return to_probabilities(np.asarray(scores, dtype=np.float64), scores_are)
