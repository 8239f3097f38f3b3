"""The comparison of two model versions as views and as one self-contained page.

:func:`version_views` turns a :class:`evallib.versions.VersionComparison` into the regression table,
the NFR against the noise floor (when one is given), the heat map of old → new predictions over the
negative flips, the negative-flip gallery (each model's Grad-CAM beside the other's where a route
exists, drawn by each model's own report), the verification pairs that flipped (at a matched FAR and
at each model's own threshold) and BCT's cross-test of the embeddings.
:func:`comparison_page` puts them on one HTML page that needs nothing from the network;
:func:`write_version_comparison` is what ``evallib compare`` runs; :func:`baseline_view` is the
"What changed since <baseline>" view of a report whose params name ``report.baseline``.
"""

from __future__ import annotations

import html
import os
import warnings
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ..errors import EvallibError
from ..metrics.stats import format_interval
from ..outputs import COMPARE_HTML, FLIPS_CSV, REPORT_HTML, comparison_dir, write_comparison
from ._base import HtmlDisplay, Section
from .flips import (
    CompatibilityDisplay,
    FlipGalleryDisplay,
    FlipTransitionsDisplay,
    NoiseFloorDisplay,
    PairFlipsDisplay,
    RegressionTableDisplay,
    ratio_words,
)
from .html import CSS, Markup, class_filter, guide, render_template, short_message

_QUIET = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _cams(cmp, reports):
    """``(images, cam_old, cam_new, facts)`` for the gallery, through each model's report (rows mapped)."""
    rep_old, rep_new = reports
    index_old, index_new = cmp.index_old, cmp.index_new

    def images(sel):
        return rep_new.images([index_new[i] for i in sel])

    route_old, route_new = rep_old.cam_route("scores"), rep_new.cam_route("scores")
    if route_old is None or route_new is None:
        why = [rep.cam_reason for rep in reports if rep.cam_reason]
        return images, None, None, [["no heat maps", short_message(w, limit=400)] for w in why[:1]]

    def mapped(rep, index):
        cam, done = rep.heat_maps, {}  # a flip shown twice (gallery, class filter) is drawn once

        def draw(sel, targets):
            todo = [(int(i), int(t)) for i, t in zip(sel, targets) if (int(i), int(t)) not in done]
            if todo:
                for key, tile in zip(todo, cam([int(index[i]) for i, _ in todo], [t for _, t in todo])):
                    done[key] = tile
            return [done[(int(i), int(t))] for i, t in zip(sel, targets)]
        return draw

    facts = [[f"{name}: route", f"{route.route}, {route.method} at {route.layer}"]
             for name, route in ((cmp.old, route_old), (cmp.new, route_new))]
    return images, mapped(rep_old, index_old), mapped(rep_new, index_new), facts


def class_filter_view(cmp, gallery_source, *, max_classes: int = 12, per_class: int = 8):
    """The negative flips of one true class at a time, picked from a list: the gallery's filter by class.

    The ``max_classes`` classes that lose the most images are offered (each with its count), each with
    its ``per_class`` most striking flips; ``gallery_source`` is ``(images, cam_old, cam_new)``. The page
    holds every class's gallery and a few lines of script show the one picked (no network, no kernel).
    """
    r = cmp.result
    lost = r.transitions.sum(axis=1)
    order = [int(c) for c in np.lexsort((np.arange(len(lost)), -lost)) if lost[c] > 0][:max_classes]
    title = "Negative flips by class"
    if not order:
        return HtmlDisplay("<p><i>No negative flips.</i></p>", title=title)
    images, cam_old, cam_new = gallery_source
    options, boxes = [], []
    for k, c in enumerate(order):
        g = FlipGalleryDisplay.from_result(r, cmp.y, images=images, classes=cmp.classes, cam_old=cam_old,
                                           cam_new=cam_new, only_classes=[cmp.classes[c]], max_flips=per_class)
        g.title, g.facts = f"Negative flips of {cmp.classes[c]}", []  # how the maps were drawn is said above
        options.append((k, f"{cmp.classes[c]} ({int(lost[c]):,} negative flips)"))
        boxes.append(f'<div class="evallib-flip-class evallib-filter-item" data-class="{k}"'
                     f'{"" if k == 0 else " hidden"}>{g._repr_html_().replace(CSS, "")}</div>')
    n_lost = int((lost > 0).sum())
    which = (f"the {len(order)} classes (of {n_lost:,} with negative flips) that lose the most images"
             if n_lost > len(order) else "the one class with negative flips" if n_lost == 1 else
             f"each of the {n_lost:,} classes with negative flips")
    return HtmlDisplay(guide(f"Pick a true class to see its negative flips, the most striking first: {which}; "
                             f"{FLIPS_CSV} lists every flip.")
                       + class_filter(options, "".join(boxes), label="True class", count=False, group="flips",
                                      cls="evallib-flip-filter-box", select_cls="evallib-flip-filter"),
                       title=title)


def floor_view(cmp):
    """The candidate's NFR against the noise floor (:class:`NoiseFloorDisplay`), each NFR with the interval of
    its own regression table when both were computed on the images the floor comparison pairs."""
    f, r = cmp.floor, cmp.result
    a = f.against
    same_images = a.n == r.overall.n == f.result.overall.n
    return NoiseFloorDisplay.from_result(a, candidate=f"{cmp.old} → {cmp.new}", floor=f"{f.old} → {f.new}",
                                         nfr_interval=r.overall.intervals["nfr"] if same_images else None,
                                         floor_interval=f.result.overall.intervals["nfr"] if same_images else None)


def pair_views(cmp, images=None, *, max_pairs: int = 6) -> list:
    """The verification pairs that flipped, at a matched FAR and at each model's own operating point: two
    :class:`PairFlipsDisplay` (pair galleries when ``images(indices)`` loads the comparison's images)."""
    pc = cmp.pairs
    m = pc.matched
    thresholds = {"old": pc.own.threshold_old, "new": pc.own.threshold_new}
    own = "; ".join(f"{name} at its {pc.policies[role]} threshold {thresholds[role]:.4f} (from "
                    f"{pc.threshold_sources[role]})" for name, role in ((cmp.old, "old"), (cmp.new, "new")))
    common = dict(pairs=pc.pairs, images=images, max_pairs=max_pairs)
    far = m.far
    return [PairFlipsDisplay.from_result(m, pc.scores_old, pc.scores_new, **common,
                                         title=f"Verification pairs that flipped at FAR {far:g}",
                                         operating_point=f"each model at its own threshold for FAR {far:g}: "
                                                         f"{cmp.old} {m.threshold_old:.4f}, {cmp.new} "
                                                         f"{m.threshold_new:.4f} (the same share of impostors let "
                                                         f"in, so a shift of operating point is not counted)"),
            PairFlipsDisplay.from_result(pc.own, pc.scores_old, pc.scores_new, **common,
                                         title="Verification pairs that flipped at each model's own threshold",
                                         operating_point=f"each model at its own operating point: {own}")]


def version_views(cmp, *, reports=None, max_flips: int = 24, only_classes=None, filter_classes: int = 0,
                  max_pairs: int = 6) -> list:
    """The views of a comparison: regression table, noise floor, old → new heat map, negative-flip gallery,
    verification pairs that flipped, BCT's cross-test.

    Parameters
    ----------
    cmp : VersionComparison
    reports : (Report, Report), optional
        The old and the new model's reports (:func:`evallib.load`): they load the images and draw the
        heat maps. Without them the galleries are left out.
    max_flips : int, default 24
        Flips shown in the gallery (every flip is in ``flips.csv``).
    only_classes : sequence, optional
        Show the flips of these true classes only.
    filter_classes : int, default 0
        Adds :func:`class_filter_view` over this many classes (0: none).
    max_pairs : int, default 6
        Pairs of each kind shown in each pair gallery (every flipped pair is in ``compare.json``).

    Returns
    -------
    list of Display
    """
    r = cmp.result
    views = []
    if r is not None:
        views.append(RegressionTableDisplay.from_result(r, old_name=cmp.old, new_name=cmp.new))
        if cmp.floor is not None:
            views.append(floor_view(cmp))
        views.append(FlipTransitionsDisplay.from_result(r, classes=cmp.classes))
    if reports is not None and r is not None:
        images, cam_old, cam_new, facts = _cams(cmp, reports)
        gallery = FlipGalleryDisplay.from_result(r, cmp.y, images=images, classes=cmp.classes, cam_old=cam_old,
                                                 cam_new=cam_new, only_classes=only_classes, max_flips=max_flips)
        gallery.facts = [*gallery.facts, *facts]
        views.append(gallery)
        if filter_classes:
            views.append(class_filter_view(cmp, (images, cam_old, cam_new), max_classes=filter_classes))
    if cmp.pairs is not None:
        load = None
        if reports is not None:
            def load(sel):
                return reports[1].images([cmp.index_new[i] for i in sel])
        views += pair_views(cmp, load, max_pairs=max_pairs)
    if cmp.compatibility is not None:
        views.append(CompatibilityDisplay.from_result(cmp.compatibility))
    return views


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ old }} → {{ new }}: what changed</title>
{{ css }}
<style>
body {font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px;
      padding: 0 16px; color: #222;}
h1 {font-size: 24px; margin-bottom: 4px;} h2 {margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px;}
.evallib-gate-pass {color: #1d6b2f; background: #e8f5ea; padding: 6px 10px; border-radius: 4px;}
.evallib-gate-fail {color: #8c1d1d; background: #fbeaea; padding: 6px 10px; border-radius: 4px;}
.evallib-table td {font-variant-numeric: tabular-nums; white-space: nowrap;}
nav a {margin-right: 12px;}
.evallib-scroll {overflow-x: auto;}
</style></head>
<body>
<h1>{{ old }} → {{ new }}: what the new version breaks</h1>
<p>{{ lede }}</p>
<nav>{% for id, title in toc %}<a href="#{{ id }}">{{ title }}</a>{% endfor %}{{ links }}</nav>
{% if gate %}<p class="{{ gate_class }}">{{ gate }}</p>{% endif %}
{{ body }}
{% if notes %}<h2 id="notes">Notes</h2><ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
</body></html>
"""


def _link(target, base, text):
    return f'<a href="{html.escape(quote(Path(os.path.relpath(target, base)).as_posix()))}">{html.escape(text)}</a>'


def gate_message(cmp, max_nfr, failing, *, max_nfr_over_floor=None) -> str:
    """The gate's verdict in one sentence: what passed, or which rows broke the budget by how much, and with
    ``max_nfr_over_floor`` how far the NFR is above the noise floor against that margin."""
    parts, passed = [], not failing
    if max_nfr is not None and not failing:
        parts.append(f"the upper bound of NFR's 95% interval is within the budget {max_nfr:g} overall "
                     f"({cmp.result.overall.nfr_upper():.4f}) and in every class and slice flagged as a regression")
    elif max_nfr is not None:
        rows = "; ".join(f"{'all images' if r.kind == 'overall' else f'{r.kind} {r.name}'}: NFR {r.nfr:.4f}, upper "
                         f"bound {r.nfr_upper():.4f}" for r in failing[:10])
        more = f" and {len(failing) - 10} more" if len(failing) > 10 else ""
        parts.append(f"NFR above the budget {max_nfr:g} in {len(failing)} row(s): {rows}{more}")
    if max_nfr_over_floor is not None and cmp.floor is not None:
        a = cmp.floor.against
        over = a.over_margin(max_nfr_over_floor)
        passed = passed and not over
        parts.append(f"NFR − noise floor {a.difference:.4f}, upper bound of its 95% interval "
                     f"{a.intervals['difference'][1]:.4f}, {'above' if over else 'within'} the margin "
                     f"{max_nfr_over_floor:g}")
    return ("Gate passed: " if passed else "Gate failed: ") + "; ".join(parts) + "."


def floor_line(cmp) -> str:
    """The candidate's NFR against the noise floor in one line, as the command prints it."""
    f, o = cmp.floor, cmp.result.overall
    a = f.against
    return (f"NFR {o.nfr:.4f} {format_interval(*o.intervals['nfr'])}, {ratio_words(a.ratio)} the noise floor "
            f"{f.nfr:.4f} {format_interval(*f.result.overall.intervals['nfr'])} ({f.old} -> {f.new}); NFR - floor "
            f"{a.difference:.4f} {format_interval(*a.intervals['difference'])}, exact McNemar p {a.p_value:.3g} "
            f"(one-sided)")


def pairs_line(cmp) -> str:
    """The verification pairs that flipped, in one sentence."""
    pc = cmp.pairs
    m, own = pc.matched, pc.own
    if np.isfinite(m.threshold_old) and np.isfinite(m.threshold_new):
        at_far = (f"at FAR {m.far:g}, genuine pairs lost {len(m.genuine_lost):,} and impostor pairs let in "
                  f"{len(m.impostor_gained):,}")
    else:
        at_far = f"no threshold at FAR {m.far:g} (its {m.n_impostor:,} impostor pairs cannot resolve it)"
    return (f"Verification pairs ({len(pc.same):,}, of which {int(pc.same.sum()):,} genuine): {at_far}; at each "
            f"model's own threshold, genuine pairs lost {len(own.genuine_lost):,} and impostor pairs let in "
            f"{len(own.impostor_gained):,}.")


_ANCHORS = {"What the new model breaks": "regression", "Against the noise floor": "floor",
            "Negative flips: old prediction → new prediction": "transitions", "Negative flips": "gallery",
            "Negative flips by class": "by-class", "Backward compatibility of the embeddings": "embeddings"}


def _anchor(title, k):
    if title in _ANCHORS:
        return _ANCHORS[title]
    if title.startswith("Verification pairs that flipped at FAR"):
        return "pairs-far"
    if title.startswith("Verification pairs that flipped at each model's own"):
        return "pairs-own"
    return f"view-{k}"


def comparison_page(cmp, views, *, page_dir, max_nfr=None, max_nfr_over_floor=None, notes=()) -> str:
    """One self-contained HTML page of a comparison: the gate, the regression table, then the gallery.

    Parameters
    ----------
    cmp : VersionComparison
    views : list of Display
        From :func:`version_views`.
    page_dir : Path
        The folder the page is written to (links to the reports start there).
    max_nfr, max_nfr_over_floor : float, optional
        The gate's budgets, shown at the top.
    notes : sequence of str
    """
    if cmp.result is not None:
        o = cmp.result.overall
        lede = (f"{o.n:,} images of {len(cmp.classes):,} classes evaluated by both models (data fingerprint "
                f"{cmp.data_key[:12]}). {cmp.old}: accuracy {o.accuracy_old:.4f}; {cmp.new}: accuracy "
                f"{o.accuracy_new:.4f}. {o.negative_flips:,} negative flips (NFR {o.nfr:.4f}) and "
                f"{o.positive_flips:,} positive flips (PFR {o.pfr:.4f}); {len(cmp.result.flagged()):,} row(s) "
                f"flagged as regressions.")
        if cmp.floor is not None:
            lede += (f" The NFR is {ratio_words(cmp.floor.against.ratio)} the noise floor {cmp.floor.nfr:.4f} of two "
                     f"runs of one recipe ({cmp.floor.old} → {cmp.floor.new}).")
    else:
        lede = (f"{len(cmp.y):,} images of {len(cmp.classes):,} identities evaluated by both models (data "
                f"fingerprint {cmp.data_key[:12]}). Both are embedding models (no class scores): what changed is "
                f"which verification pairs each accepts, and whether the new embeddings can be searched against the "
                f"old ones.")
    if cmp.pairs is not None:
        lede += " " + pairs_line(cmp)
    sections = [(_anchor(v.title, k), v.title, v._repr_html_().replace(CSS, "")) for k, v in enumerate(views)]
    body = "".join(f'<h2 id="{i}">{html.escape(t)}</h2>\n<div class="evallib-scroll">{b}</div>\n'
                   for i, t, b in sections)
    links = [_link(Path(d) / REPORT_HTML, page_dir, f"{name} report") for name, d in ((cmp.old, cmp.old_dir),
                                                                                       (cmp.new, cmp.new_dir))
             if (Path(d) / REPORT_HTML).exists()]
    if cmp.result is not None:
        links.append(f'<a href="{FLIPS_CSV}">{FLIPS_CSV} (every flip)</a>')
    gate, gate_class = "", ""
    verdict = cmp.gate(max_nfr=max_nfr, max_nfr_over_floor=max_nfr_over_floor)
    if verdict is not None:
        failing = cmp.over_budget(max_nfr) if max_nfr is not None else []
        gate = gate_message(cmp, max_nfr, failing, max_nfr_over_floor=max_nfr_over_floor)
        gate_class = "evallib-gate-pass" if verdict["passed"] else "evallib-gate-fail"
    return render_template(_PAGE, old=cmp.old, new=cmp.new, css=Markup(CSS), lede=lede,
                           toc=[(i, t) for i, t, _ in sections], links=Markup("".join(links)), gate=gate,
                           gate_class=gate_class, body=Markup(body), notes=[*cmp.notes, *notes])


def _reports(cmp, notes):
    """Both models' reports (to load images and draw heat maps), or None with the reason in ``notes``."""
    from .report import load

    try:
        return load(cmp.old_dir), load(cmp.new_dir)
    except EvallibError as exc:
        notes.append(f"No gallery: a model's report could not be loaded ({short_message(exc, limit=300)})")
        return None


def write_version_comparison(old, new, *, out_root="outputs", max_nfr=None, max_nfr_over_floor=None, floor=None,
                             far=1e-3, n_boot=1000, seed=0, alpha=0.05, groups=None, max_flips=24, filter_classes=12,
                             max_pairs=6, page=True):
    """Compare two evaluated models and publish ``compare.json``, ``flips.csv`` and ``compare.html``.

    What ``evallib compare OLD NEW`` runs (see :func:`evallib.versions.compare_versions` for the
    arguments, and :meth:`evallib.versions.VersionComparison.gate` for the budgets).

    Returns
    -------
    cmp : VersionComparison
    failing : list of RegressionRow
        The rows over the NFR budget (empty without ``max_nfr``).
    folder : Path
        ``out_root/compare/<old>__<new>``.
    """
    from ..versions import compare_versions

    for name, value in (("max_nfr", max_nfr), ("max_nfr_over_floor", max_nfr_over_floor)):
        if value is not None and not 0 <= value <= 1:
            raise EvallibError(f"{name}: expected a rate in [0, 1]; got {value!r}")
    if max_nfr_over_floor is not None and floor is None:
        raise EvallibError("max_nfr_over_floor: expected a noise floor to hold the NFR against (floor=(A, B), "
                           "--floor A B); got none")
    if max_nfr_over_floor is not None and n_boot == 0:
        raise EvallibError("max_nfr_over_floor: expected bootstrap resamples for the interval it is held to "
                           "(n_boot > 0); got n_boot=0")
    cmp = compare_versions(old, new, out_root=out_root, groups=groups, n_boot=n_boot, seed=seed, alpha=alpha,
                           far=far, floor=floor)
    failing = cmp.over_budget(max_nfr) if max_nfr is not None else []
    text = None
    if page:
        notes = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reports = _reports(cmp, notes)
            views = version_views(cmp, reports=reports, max_flips=max_flips, filter_classes=filter_classes,
                                  max_pairs=max_pairs)
            for v in views:
                v._repr_html_()
        notes += [f"{short_message(w.message, limit=300)}" for w in caught if not issubclass(w.category, _QUIET)]
        if reports is not None:
            notes += [f"{rep.name}: {m}" for rep in reports for m in rep.render_notes]
        text = comparison_page(cmp, views, page_dir=comparison_dir(out_root, cmp.old, cmp.new), max_nfr=max_nfr,
                               max_nfr_over_floor=max_nfr_over_floor, notes=list(dict.fromkeys(notes)))
    summary = cmp.to_dict(max_nfr=max_nfr, max_nfr_over_floor=max_nfr_over_floor)
    folder = write_comparison(out_root, cmp.old, cmp.new, summary=summary, flips=cmp.flip_rows(), page=text)
    return cmp, failing, folder


def baseline_view(rep):
    """A report's "What changed since <baseline>" view: the comparison with the model ``report.baseline`` names.

    The baseline must have been evaluated on the same data (the data fingerprint); otherwise, or when
    it is missing, the view says why. Computed when the report is drawn, since the baseline's
    predictions exist only once every model of the run has been evaluated.
    """
    from ..versions import compare_versions
    from .report import load

    base = rep.params.report.baseline
    title = f"What changed since {base}" if base else "What changed since the baseline"
    if not base:
        return HtmlDisplay("<p><i>No baseline to compare with (set report.baseline to another model's name).</i></p>",
                           title=title)
    if base == rep.name:
        return HtmlDisplay("<p><i>This model is its own baseline: nothing to compare.</i></p>", title=title)
    out_root = rep.out_dir.parent
    try:
        cmp = compare_versions(out_root / base, rep.out_dir, out_root=out_root, n_boot=rep.params.report.bootstrap,
                               seed=rep.params.report.seed)
        old_rep = load(cmp.old_dir)
    except EvallibError as exc:
        return HtmlDisplay(f'<p class="evallib-warn">No comparison with the baseline {html.escape(base)}: '
                           f"{html.escape(short_message(exc, limit=600))}</p>", title=title)
    views = version_views(cmp, reports=(old_rep, rep), max_flips=max(rep.params.report.gallery_size, 1) * 3)
    page = comparison_dir(out_root, cmp.old, cmp.new) / COMPARE_HTML
    more = (f' The whole comparison, with every flip in {FLIPS_CSV}: '
            f'{_link(page, rep.out_dir, f"{cmp.old} → {cmp.new}")}.' if page.exists() else
            f" <code>evallib compare {html.escape(base)} {html.escape(rep.name)}</code> writes the comparison page "
            f"and {FLIPS_CSV}.")
    head = HtmlDisplay(guide(f"This model against its baseline {base}, image by image on the same "
                             f"{len(cmp.y):,} images: which images {base} got right and {rep.name} gets wrong.")
                       + f"<p>{more.strip()}</p>")
    return Section([head, *views], title=title)


def write_baseline_comparisons(params, out_root, *, page=True):
    """Write the version comparison of every evaluated model whose params name a ``report.baseline``.

    What ``evallib compare BASELINE MODEL`` writes (``compare.json``, ``flips.csv`` and, with ``page``,
    ``compare.html`` under ``out_root/compare/BASELINE__MODEL``), with the model's ``report.bootstrap``
    and ``report.seed``. A pair whose models were not both evaluated without error is left out.

    Parameters
    ----------
    params : sequence of Params
        The models; those without a baseline (or their own) are skipped.
    out_root : str or Path

    Returns
    -------
    list of Path
        The comparison folders written.
    """
    from ..errors import EvallibError
    from ..outputs import load_run

    out_root = Path(out_root)
    written = []
    for p in params:
        base = p.report.baseline
        if not base or base == p.name:
            continue
        runs = [load_run(out_root / name) for name in (base, p.name)]
        if not all(r is not None and r.get("status") == "ok" for r in runs):
            continue
        try:
            _, _, folder = write_version_comparison(base, p.name, out_root=out_root, n_boot=p.report.bootstrap,
                                                    seed=p.report.seed, page=page)
        except EvallibError:
            continue
        written.append(folder)
    return written
