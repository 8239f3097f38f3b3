"""HTML helpers of the report layer: figures as embedded PNG, escaped tables, folded tables, reading guides."""

from __future__ import annotations

import base64
import html
import io
import math

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
