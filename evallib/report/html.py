"""HTML helpers of the report layer: figures and thumbnails as embedded PNG, escaped tables, folded tables,
reading guides, and the filter by class that every page offering one shares."""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np

from .._messages import short_message  # noqa: F401  (the report layer shows messages short)


def figure_png(fig, *, dpi=100):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def figure_image(fig, *, dpi=100):
    """An IPython Image of a matplotlib Figure (embedded as PNG in the rendered HTML)."""
    from IPython.display import Image

    return Image(data=figure_png(fig, dpi=dpi))


def fmt(value, digits=4):
    """A number for a table: NaN as 'n/a', integers with thousands separators."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


class Markup(str):
    """Markup built by evallib itself (a link); ``html_table`` inserts it unescaped."""


def _cell(c):
    return c if isinstance(c, Markup) else html.escape(fmt(c))


def html_table(rows, header=None, *, cls="evallib-table"):
    """An HTML table; every cell is escaped text (data never becomes markup) unless it is :class:`Markup`."""
    out = [f'<table class="{cls}">']
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _env():
    import jinja2

    return jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)


def render_template(source, **values):
    """Render a Jinja2 template string with every value escaped (unless it is :class:`Markup`)."""
    import markupsafe

    values = {k: markupsafe.Markup(v) if isinstance(v, Markup) else v for k, v in values.items()}
    return _env().from_string(source).render(**values)


# a sorter shared by every sortable table of the page: one listener, numbers by their data-v value, blanks last
SORT_SCRIPT = """<script>
(function () {
  if (window.evallibSortTables) { return; }
  window.evallibSortTables = true;
  document.addEventListener("click", function (ev) {
    var th = ev.target.closest ? ev.target.closest("table.evallib-sortable th") : null;
    if (!th) { return; }
    var table = th.closest("table"), col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute("data-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-sort"); });
    th.setAttribute("data-sort", asc ? "ascending" : "descending");
    function key(row) {
      var cell = row.cells[col], v = cell.getAttribute("data-v");
      return v === null ? cell.textContent : (v === "" ? NaN : parseFloat(v));
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (typeof x === "number") {
        if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
        return asc ? x - y : y - x;
      }
      return asc ? x.localeCompare(y) : y.localeCompare(x);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
})();
</script>"""

_FOLDED = """<table class="evallib-table">
<thead><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows[:shown] %}<tr>{% for c in row %}<td>{{ c.text }}</td>{% endfor %}</tr>
{% endfor %}
</tbody></table>
<details class="evallib-fold">\
<summary>All {{ "{:,}".format(rows | length) }} {{ what }}: click a column header to sort</summary>
<table class="evallib-table evallib-sortable">
<thead><tr>{% for h in header %}<th title="sort by {{ h }}">{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr>{% for c in row %}\
<td{% if c.v is not none %} data-v="{{ c.v }}"{% endif %}>{{ c.text }}</td>{% endfor %}</tr>
{% endfor %}
</tbody></table>
</details>"""


def _sort_value(c):
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        return None
    if isinstance(c, int):
        return str(c)
    return "" if math.isnan(c) else f"{c:.6g}"


def folded_table(rows, header, *, shown=25, what="rows"):
    """The first ``shown`` rows as a table, then every row in a collapsible block that sorts on a click.

    ``rows`` come in the order to show (e.g. worst first). Numbers sort by value, text by its
    letters; n/a sorts last. With at most ``shown`` rows this is :func:`html_table`.
    """
    rows = [list(r) for r in rows]
    if len(rows) <= shown:
        return html_table(rows, header)
    cells = [[{"text": fmt(c), "v": _sort_value(c)} for c in r] for r in rows]
    return render_template(_FOLDED, rows=cells, header=[str(h) for h in header], shown=shown, what=what) + SORT_SCRIPT


def figure_with_hover(fig, points, titles, *, dpi=100, radius=6):
    """HTML of a figure as an embedded PNG with a hover title over each point.

    Parameters
    ----------
    fig : matplotlib Figure
        Drawn (``fig.draw_without_rendering()``) after its last change, so ``points`` are final.
    points : ndarray of shape (n_points, 2)
        Display coordinates of the points, pixels at ``fig.dpi`` from the bottom-left corner
        (``ax.transData.transform(xy)``).
    titles : sequence of str
        One hover text per point.

    An SVG of transparent circles lies over the image and scales with it; nothing is fetched.
    """
    png = base64.b64encode(figure_png(fig, dpi=dpi)).decode("ascii")
    w, h = fig.bbox.width, fig.bbox.height
    circles = "".join(f'<circle cx="{x:.1f}" cy="{h - y:.1f}" r="{radius}"><title>{html.escape(str(t))}</title>'
                      f"</circle>" for (x, y), t in zip(points, titles))
    return (f'<div class="evallib-hover" style="position:relative; display:inline-block; max-width:100%;">'
            f'<img src="data:image/png;base64,{png}" style="display:block; max-width:100%; height:auto;" alt="">'
            f'<svg viewBox="0 0 {w:.1f} {h:.1f}" preserveAspectRatio="none" '
            f'style="position:absolute; left:0; top:0; width:100%; height:100%;">'
            f'<g fill="transparent" pointer-events="all">{circles}</g></svg></div>')


def guide(text):
    """A one-line reading guide shown above a plot."""
    return f'<p class="evallib-guide"><i>How to read this:</i> {html.escape(text)}</p>'


CSS = """<style>
.evallib-table {border-collapse: collapse; margin: 6px 0 12px 0; font-size: 13px;}
.evallib-table th, .evallib-table td {border: 1px solid #ddd; padding: 3px 8px; text-align: left;}
.evallib-table th {background: #f4f4f4;}
.evallib-guide {color: #444; margin: 4px 0;}
.evallib-warn {color: #8a4b00; background: #fff4e0; padding: 4px 8px; border-radius: 4px;}
.evallib-sortable th {cursor: pointer;}
.evallib-sortable th[data-sort=ascending]::after {content: " \\25B2";}
.evallib-sortable th[data-sort=descending]::after {content: " \\25BC";}
.evallib-fold > summary {cursor: pointer; color: #1f4e8c; margin: 4px 0;}
</style>"""


def thumbnail_html(image, *, side=96):
    """An (H, W) or (H, W, 3) image in [0, 1] as an inline PNG ``<img>`` whose longer side is ``side`` pixels.

    Larger images are shrunk (bilinear) before encoding; tiny ones are scaled up by the page without
    smoothing (``image-rendering: pixelated`` in the page's style). Nothing is fetched.
    """
    from PIL import Image

    a = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise ValueError(f"image: expected shape (H, W) or (H, W, 3); got {a.shape}")
    img = Image.fromarray((a.squeeze() * 255 + 0.5).astype(np.uint8))
    if max(img.size) > side:
        img.thumbnail((side, side), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    w, h = img.size
    scale = side / max(w, h)
    return Markup(f'<img src="data:image/png;base64,{data}" width="{round(w * scale)}" height="{round(h * scale)}" '
                  f'alt="">')


# the filter by class shared by every page that offers one (the label review, the negative-flip gallery): one
# listener for the whole page; a box holds its controls and its items, each item naming its classes in
# data-<side> attributes; a side button restricts the match to one attribute
CLASS_FILTER_SCRIPT = """<script>
(function () {
  if (window.evallibClassFilter) { return; }
  window.evallibClassFilter = true;
  function apply(box) {
    var select = box.querySelector("select.evallib-class-filter");
    if (!select) { return; }
    var c = select.value, sides = (box.getAttribute("data-sides") || "class").split(" ");
    var side = box.querySelector("input.evallib-class-side:checked");
    var use = side && side.value !== "any" ? [side.value] : sides;
    var items = box.querySelectorAll(".evallib-filter-item"), shown = 0;
    items.forEach(function (el) {
      var keep = c === "" || use.some(function (s) { return el.getAttribute("data-" + s) === c; });
      el.hidden = !keep;
      if (keep) { shown += 1; }
    });
    var count = box.querySelector(".evallib-filter-count");
    if (count) { count.textContent = "showing " + shown.toLocaleString() + " of " + items.length.toLocaleString(); }
  }
  document.addEventListener("change", function (ev) {
    var t = ev.target, box = t.closest ? t.closest(".evallib-filter-box") : null;
    if (box && (t.classList.contains("evallib-class-filter") || t.classList.contains("evallib-class-side"))) {
      apply(box);
    }
  });
  function init() { document.querySelectorAll(".evallib-filter-box").forEach(apply); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
</script>"""

_FILTER = """<div class="evallib-filter-box{% if cls %} {{ cls }}{% endif %}" data-sides="{{ sides | join(' ') }}">
<div class="evallib-filter-controls">
<label>{{ label }}: <select class="evallib-class-filter{% if select_cls %} {{ select_cls }}{% endif %}">
{% if all_label %}<option value="">{{ all_label }}</option>
{% endif %}
{% for value, text in options %}<option value="{{ value }}">{{ text }}</option>
{% endfor %}
</select></label>
{% if side_names %}{% for value, text in side_names %}<label><input type="radio" class="evallib-class-side" \
name="{{ group }}-side" value="{{ value }}"{% if loop.first %} checked{% endif %}> {{ text }}</label>
{% endfor %}{% endif %}
{% if count %}<span class="evallib-filter-count"></span>{% endif %}
</div>
{{ body }}
</div>"""


def class_filter(options, body, *, sides=("class",), side_names=None, label="Class", all_label=None, count=True,
                 group="filter", cls="", select_cls=""):
    """A filter by class around ``body``: a list of classes, and which items of ``body`` it shows.

    Every element of ``body`` with the class ``evallib-filter-item`` is an item; it names its classes in
    ``data-<side>`` attributes (``data-given="cat" data-suggested="dog"``). The item shows when one of
    its ``sides`` (or the side picked with the buttons) equals the class chosen, or when "all" is chosen.

    Parameters
    ----------
    options : sequence of (value, text)
        The classes offered, in order; ``value`` is what the items' attributes hold.
    body : str
        The items' markup (:class:`Markup`, inserted as it is).
    sides : sequence of str
        The attributes an item is matched on (``data-<side>``).
    side_names : sequence of (value, text), optional
        Radio buttons to match one side only; the value ``"any"`` matches every side. The first is checked.
    label : str
    all_label : str, optional
        The text of a first option that shows every item; without it the first class is shown first.
    count : bool
        Show "showing k of n".
    group : str
        Names the radio buttons (unique on the page).
    cls, select_cls : str
        More classes of the box and of the list.

    Returns
    -------
    Markup
        The box and the page's one copy of the script (:data:`CLASS_FILTER_SCRIPT`; later copies do nothing).
    """
    return Markup(render_template(_FILTER, options=[(str(v), str(t)) for v, t in options], body=Markup(body),
                                  sides=list(sides), side_names=list(side_names or []), label=label,
                                  all_label=all_label, count=count, group=group, cls=cls, select_cls=select_cls)
                  + CLASS_FILTER_SCRIPT)
