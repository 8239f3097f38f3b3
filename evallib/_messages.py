"""Messages for people: warnings and errors as short lines without machine paths, and the skipped-file list.

The lowest layer: the metrics step, the CLI and the report layer all say these the same way.
"""

from __future__ import annotations

import re

# an absolute path (/a/b/c, ~/a/b, C:\a\b) of at least two parts: shown as its last part
_PATH = re.compile(r"(?<![\w.])(?:~|[A-Za-z]:)?[/\\](?:[^\s/\\'\"<>:]+[/\\])+([^\s/\\'\"<>:,;)]*)")


def short_message(text, *, limit=240):
    """A warning or error as one short line for a shared page: first line only, no machine paths.

    >>> short_message("cannot read /home/ana/data/cat_1.png: truncated")
    'cannot read cat_1.png: truncated'
    """
    lines = str(text).strip().splitlines()
    line = _PATH.sub(lambda m: m.group(1) or "…", lines[0] if lines else "")
    return line if len(line) <= limit else line[:limit - 1] + "…"


def skipped_files(skipped, *, shown=3):
    """``"N files"`` and the first ``shown`` of them with their reasons (``"a.png (why); ...; and K more"``)."""
    first = "; ".join(f"{s['path']} ({s['reason']})" for s in skipped[:shown])
    more = f"; and {len(skipped) - shown:,} more" if len(skipped) > shown else ""
    return f"{len(skipped):,} file{'s' if len(skipped) != 1 else ''}", first + more


def skipped_warnings(skipped, *, shown=3):
    """One message for the files the run skipped: how many, and the first few (paths relative to the data)."""
    if not skipped:
        return []
    count, first = skipped_files(skipped, shown=shown)
    more = " (see Model and data)" if len(skipped) > shown else ""
    return [f"skipped files: {count} not evaluated: {first}" + more]
