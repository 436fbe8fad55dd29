"""How an archived run reads on a terminal (``fedcloud runs show``, ``runs list``).

Recorded results are shown by shape: a list of flat records (what a DataFrame is
recorded as) as a table, a recorded plan as its steps, a flat mapping as ``key: value``
lines, anything else as indented JSON, each cut to a screenful (``--json`` gives all of
it).  Durations read as ``11 min 50 s``.
"""
from __future__ import annotations

import json
from typing import Any

__all__ = ["human_duration", "text_table", "result_lines", "MAX_ROWS", "CELL_CHARS"]

MAX_ROWS = 40  # rows of one result table
CELL_CHARS = 60  # characters of one cell
MAX_JSON_LINES = 30
_DURATION_COLUMNS = {"seconds", "duration", "duration_s"}
_SCALARS = (str, int, float, bool, type(None))
# columns that read best first and last (the index keeps a record's keys sorted)
_FIRST = ("step", "action", "kind", "name", "host", "task", "check", "service", "resource",
          "status")
_LAST = ("detail", "note", "message", "error")


def human_duration(seconds: Any) -> str:
    """``709.702`` → ``11 min 50 s``; ``3.25`` → ``3.2 s``; ``3725`` → ``1 h 2 min 5 s``;
    anything not a number is shown as it is (``-`` for none)."""
    if seconds is None or seconds == "":
        return "-"
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return str(seconds)
    if seconds < 0 or seconds != seconds:  # negative or NaN: not a duration
        return str(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m} min {s} s"
    return f"{m} min {s} s"


def _cell(column: str, value: Any) -> str:
    if column in _DURATION_COLUMNS and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        return human_duration(value)
    text = "" if value is None else (value if isinstance(value, str)
                                     else json.dumps(value, default=str))
    text = " ".join(text.split())
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 3] + "..."


def text_table(rows: list[dict[str, Any]], columns: list[str] | None = None,
               indent: str = "") -> str:
    """Rows as an aligned text table (column names upper-cased), at most
    :data:`MAX_ROWS` rows."""
    if not rows:
        return indent + "(none)"
    if columns is None:
        seen: list[str] = []
        for r in rows:
            seen += [c for c in r if c not in seen]
        columns = ([c for c in _FIRST if c in seen]
                   + [c for c in seen if c not in _FIRST and c not in _LAST]
                   + [c for c in _LAST if c in seen])
    shown = rows[:MAX_ROWS]
    cells = [[_cell(c, r.get(c)) for c in columns] for r in shown]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    out = [indent + "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    out += [indent + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
            for row in cells]
    if len(rows) > MAX_ROWS:
        out.append(f"{indent}... {len(rows) - MAX_ROWS} more rows (--json for all)")
    return "\n".join(out)


def _flat_records(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(r, dict) and all(isinstance(v, _SCALARS) for v in r.values())
                    for r in value))


def _inline(value: Any, key: str = "") -> str | None:
    """A mapping's value on one line: a scalar, a list of scalars, a flat mapping; None
    for anything deeper."""
    if isinstance(value, _SCALARS):
        return _cell(key, value)
    if isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value):
        return _cell("", ", ".join(str(v) for v in value)) if value else "(none)"
    if isinstance(value, dict) and all(isinstance(v, _SCALARS) for v in value.values()):
        return _cell("", ", ".join(f"{k} {v}" for k, v in value.items())) if value else "(none)"
    return None


def result_lines(name: str, value: Any) -> list[str]:
    """One recorded result as lines for a terminal."""
    if isinstance(value, _SCALARS):
        return [f"  {name}: {_cell(name, value)}"]
    if isinstance(value, dict) and isinstance(value.get("steps"), list):  # a recorded plan
        title = value.get("title", "")
        rows = [s for s in value["steps"] if isinstance(s, dict)]
        head = f"  {name}: {title} ({len(rows)} steps" + (
            f", made {value['planned_at']}" if value.get("planned_at") else "") + ")"
        return [head, text_table(rows, ["action", "kind", "name", "detail"], indent="    ")]
    if _flat_records(value):
        return [f"  {name}: ({len(value)} rows)", text_table(value, indent="    ")]
    if isinstance(value, dict) and value and all(_inline(v) is not None
                                                 for v in value.values()):
        width = max(len(str(k)) for k in value)
        return [f"  {name}:"] + [f"    {str(k):<{width}}  {_inline(v, str(k))}"
                                 for k, v in value.items()]
    if isinstance(value, list) and not value:
        return [f"  {name}: (none)"]
    text = json.dumps(value, indent=2, default=str).splitlines()
    lines = [f"  {name}:"] + ["    " + line for line in text[:MAX_JSON_LINES]]
    if len(text) > MAX_JSON_LINES:
        lines.append(f"    ... {len(text) - MAX_JSON_LINES} more lines (--json for all)")
    return lines
