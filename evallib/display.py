"""Small display helpers for notebooks: figures as embedded PNG, escaped HTML tables, reading guides."""

from __future__ import annotations

import html
import io
import math


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


def guide(text):
    """A one-line reading guide shown above a plot."""
    return f'<p class="evallib-guide"><i>How to read this:</i> {html.escape(text)}</p>'


CSS = """<style>
.evallib-table {border-collapse: collapse; margin: 6px 0 12px 0; font-size: 13px;}
.evallib-table th, .evallib-table td {border: 1px solid #ddd; padding: 3px 8px; text-align: left;}
.evallib-table th {background: #f4f4f4;}
.evallib-guide {color: #444; margin: 4px 0;}
.evallib-warn {color: #8a4b00; background: #fff4e0; padding: 4px 8px; border-radius: 4px;}
</style>"""


def show(*objs):
    """Display each object in the notebook: a str as HTML, anything else as IPython shows it."""
    from IPython.display import HTML, display

    for o in objs:
        display(HTML(o) if isinstance(o, str) else o)
