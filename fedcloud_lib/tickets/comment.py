"""What fedcloud answers on a ticket: a refusal, a plan, or an outcome (markdown).

A ticket answer is a public comment that Pagure renders as markdown (with HTML).  Nothing
in it that comes from outside — values, error messages (they quote values), plan
details, names, the ticket's own id — may render as something else, so every such text
goes through :func:`md_text`: secrets are scrubbed from the whole value first
(:func:`scrubber_for`), then it is cut to a short prefix plus its length, put on one
line, and every character markdown or HTML acts on (``\\ ` * _ [ ] < > # | ~ @ &``) is
written as an HTML entity, so ``<img src=x>`` or a ```` ``` ```` fence shows as text.
The error tail of a failed run is an indented code block (every line indented: there is
no fence to close).  An answer is at most :data:`MAX_COMMENT_CHARS` long.

The same answers for a terminal (``markdown=False``) are scrubbed and shortened, not
escaped.
"""
from __future__ import annotations

import os
import re
import unicodedata
from typing import Any

from ..errors import FedcloudError
from ..scrub import Scrubber, collect_secrets
from ..site.policy import Policy
from .request import TicketRequest
from .sources import Ticket

__all__ = ["format_refusal", "format_outcome", "scrubber_for", "plan_rows", "md_text",
           "MAX_COMMENT_CHARS"]

#: the longest answer posted (characters); a longer one is cut, naming the archived run
MAX_COMMENT_CHARS = 16000
CELL_CHARS = 120  # one table cell
LINE_CHARS = 300  # one line of a message
MAX_ROWS = 40  # rows of one table
_ENTITIES = {c: f"&#{ord(c)};" for c in "\\`*_[]#|~@"}
_ENTITIES.update({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ESCAPE = re.compile("[" + re.escape("".join(_ENTITIES)) + "]")
# what would start a block at the beginning of a line: a list, a quote, a heading rule
_LEADING = re.compile(r"^(\s*)(?:([-+=])|(\d+)([.)])(?=\s|$))")
_CODE_OK = re.compile(r"[A-Za-z0-9_.:/ -]{1,200}")


def scrubber_for(policy: Policy | None = None, secrets_dir: Any = None) -> Scrubber:
    """The scrubber for ticket answers: every secret a run knows of (clouds.yaml, the
    site's secret files, secret-named environment variables) plus the values of the
    policy's Pagure token and SMTP password variables, whatever their names."""
    extra = []
    if policy is not None:
        for name in (policy.tickets.token_env, policy.mail.password_env):
            if name and os.environ.get(name):
                extra.append(os.environ[name])
    return Scrubber(collect_secrets(extra, secrets_dir=secrets_dir))


def _one_line(text: str) -> str:
    """Control, format and line-separator characters (newlines, bidi overrides, zero
    widths) become spaces."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
                   for c in text)


def _short_line(text: str, limit: int) -> str:
    if len(text) <= limit:
        return _one_line(text)
    return f"{_one_line(text[: max(limit - 8, 8)])}... ({len(text)} characters)"


def md_text(value: Any, limit: int = LINE_CHARS, scrub: Scrubber | None = None) -> str:
    """``value`` as inert markdown text on one line: scrubbed, cut to ``limit``
    characters (plus its length), every markdown/HTML character an entity."""
    text = str("" if value is None else value)
    if scrub is not None:
        text = scrub.text(text)
    text = _ESCAPE.sub(lambda m: _ENTITIES[m.group(0)], _short_line(text, limit))
    return _LEADING.sub(lambda m: m.group(1) + (f"&#{ord(m.group(2))};" if m.group(2)
                                                else f"{m.group(3)}&#{ord(m.group(4))};"),
                        text, count=1)


class _Writer:
    """How one answer writes outside text: escaped markdown, or plain for a terminal."""

    def __init__(self, scrub: Scrubber | None, markdown: bool) -> None:
        self.scrub = scrub or Scrubber()
        self.markdown = markdown

    def text(self, value: Any, limit: int = LINE_CHARS) -> str:
        if self.markdown:
            return md_text(value, limit, self.scrub)
        return _short_line(self.scrub.text(str("" if value is None else value)), limit)

    def code(self, value: str) -> str:
        """Our own tokens (run ids, runbook names, commands) as inline code; anything
        that could close a code span is written as text instead."""
        if _CODE_OK.fullmatch(value):
            return f"`{value}`"
        return self.text(value, 80)

    def block(self, text: str, lines: int = 12) -> list[str]:
        """The last ``lines`` lines of ``text`` as an indented code block."""
        tail = self.scrub.text(text).splitlines()[-lines:]
        return ["    " + _short_line(line, LINE_CHARS) for line in tail]

    def table(self, rows: list[dict[str, Any]], columns: list[str]) -> str:
        out = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        for r in rows[:MAX_ROWS]:
            cells = [self.text(r.get(c), CELL_CHARS).replace("|", "\\|") for c in columns]
            out.append("| " + " | ".join(cells) + " |")
        if len(rows) > MAX_ROWS:
            out.append(f"\n({len(rows) - MAX_ROWS} more rows in the archived run)")
        return "\n".join(out)

    def finish(self, lines: list[str], run_id: str | None = None) -> str:
        text = self.scrub.text("\n".join(lines).rstrip() + "\n")
        if len(text) <= MAX_COMMENT_CHARS:
            return text
        cut = text.rfind("\n", 0, MAX_COMMENT_CHARS - 200)
        where = f"the archived run {run_id}" if run_id else "the operator's terminal"
        return text[: max(cut, 0)] + (f"\n\n(answer cut at {MAX_COMMENT_CHARS} characters; "
                                      f"the rest is in {where})\n")


def plan_rows(plan: Any) -> list[dict[str, Any]]:
    """The rows of a recorded plan (a Plan's dict, or the rows of an older run)."""
    if isinstance(plan, dict) and isinstance(plan.get("steps"), list):
        return [{k: s.get(k, "") for k in ("action", "kind", "name", "detail")}
                for s in plan["steps"] if isinstance(s, dict)]
    if isinstance(plan, list):
        return [r for r in plan if isinstance(r, dict)]
    return []


def format_refusal(ticket: Ticket, error: FedcloudError, *, scrub: Scrubber | None = None,
                   markdown: bool = True) -> str:
    """The answer to a refused request: what was wrong, one line per problem."""
    w = _Writer(scrub, markdown)
    problems = error.problems
    head = str(error).split("\n")[0]
    lines = ["**fedcloud** cannot act on this ticket: the request was refused before "
             "anything was created.", "", w.text(head)]
    if len(problems) > 1 or (problems and problems[0] not in head):
        lines += [""] + [f"* {w.text(p)}" for p in problems[:MAX_ROWS]]
        if len(problems) > MAX_ROWS:
            lines.append(f"* and {len(problems) - MAX_ROWS} more problems")
    if error.context.get("kind") == "not-open":
        lines += ["", "Nothing new is made for a ticket that is not open; an operator retires "
                      "what it got with " + w.code(f"fedcloud ticket run {ticket.id} --retire") + "."]
    else:
        lines += ["", "Fix the request block in the ticket and ask again."]
    return w.finish(lines)


def format_outcome(req: TicketRequest, result: Any, approved: bool, *,
                   scrub: Scrubber | None = None, markdown: bool = True) -> str:
    """The answer after a run: its status and run id, the plan (a dry run), the quota
    headroom, the instance made or what was retired, or why the run did not finish."""
    w = _Writer(scrub, markdown)
    res = getattr(result, "results", None) or {}
    status = str(getattr(result, "status", "?"))
    run_id = str(result.run_id)
    tid = str(req.ticket.id)
    head = (f"**fedcloud** ran {w.code(req.runbook)} for ticket {w.text(tid, 40)}: "
            f"**{w.text(status, 40)}** (run {w.code(run_id)})")
    lines = [head, ""]
    lines += [f"Archive chain head after this run: `{result.head}`", ""] if getattr(result, "head", None) else []
    if status == "planned" or (not approved and status == "succeeded"):
        lines += ["This was a dry run: the plan below is what an approved run will do. "
                  "An operator approves exactly this plan with "
                  f"{w.code(f'fedcloud ticket run {tid} --approve-plan {run_id}')} "
                  "(refused if the cloud changed since).", ""]
    plan = plan_rows(res.get("plan"))
    if plan:
        lines += ["Plan:", "", w.table(plan, ["action", "kind", "name", "detail"]), ""]
    quota = res.get("quota")
    if isinstance(quota, list) and quota:
        lines += ["Quota headroom in the project after this request:", "",
                  w.table([q for q in quota if isinstance(q, dict)],
                          ["resource", "used", "requested", "limit", "headroom_after"]), ""]
    inst = res.get("instance")
    if isinstance(inst, dict) and status == "succeeded":
        lines += ["Instance:", "",
                  w.table([inst], [c for c in ("name", "address", "status", "flavor", "image",
                                               "instance_class", "expires_at", "volume_id")
                                   if c in inst]), ""]
    retired = res.get("retired")
    if isinstance(retired, dict) and status == "succeeded":
        parts = []
        for k, v in list(retired.items())[:MAX_ROWS]:
            if k in ("ticket", "steps") or not v:
                continue
            if isinstance(v, dict):  # e.g. the mail: to whom
                v = v.get("to") or v.get("name") or ""
            elif isinstance(v, list):
                v = ", ".join(str(x) for x in v[:MAX_ROWS] if not isinstance(x, (dict, list)))
            if v:
                parts.append(f"{w.text(str(k).replace('_', ' '), 40)}: {w.text(v, CELL_CHARS)}")
        lines += ["Retired: " + "; ".join(parts), ""]
    if status not in ("succeeded", "planned"):
        err = (getattr(result, "error", None) or "see the archived run").strip()
        lines += ["The run did not finish:", "", *w.block(err), "",
                  f"The run is archived as {w.code(run_id)}. Re-running the ticket finishes "
                  f"what is missing without duplicating anything.", ""]
    return w.finish(lines, run_id)

