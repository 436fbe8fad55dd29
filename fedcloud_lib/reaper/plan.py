"""lifetime-reaper, plan: which servers are deleted, who is told, which orphans go.

* a server past its deadline: ``delete server`` (its /srv volume is kept unless
  ``delete_volumes`` and its class allows it);
* a server whose deadline falls within ``notice_h`` hours and whose owner was not told
  yet: one ``create mail`` per owner listing their servers (builders are not told: their
  24 h are the policy);
* an orphan: only listed, unless its id is in ``delete_orphans``.

``mode`` picks what the plan holds: ``both``, ``notify`` (mails only: safe to schedule
with ``--approve``), ``reap`` (deletions only: a dry run for an operator to approve).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError
from ..instance.request import iso
from ..plan import Plan, Step
from ..site.policy import Policy
from .facts import Orphan, ReaperFacts, ServerFact

__all__ = ["MODES", "ReaperPlan", "state_of", "make_plan", "EXPIRY_COLUMNS", "ORPHAN_COLUMNS"]

MODES = ("both", "notify", "reap")
EXPIRY_COLUMNS = ["name", "id", "state", "deadline", "why", "owner", "class", "ticket",
                  "status", "notice_sent"]
ORPHAN_COLUMNS = ["kind", "name", "id", "reason", "detail", "action"]


def state_of(f: ServerFact, now: dt.datetime, notice_h: int) -> str:
    """``expired``, ``notice due``, ``noticed``, ``ok``, ``never`` or ``bad metadata``."""
    if f.deadline is None:
        return "bad metadata" if f.deadline_reason.startswith("bad") else "never"
    if f.deadline <= now:
        return "expired"
    if f.deadline <= now + dt.timedelta(hours=notice_h) and not f.builder:
        return "noticed" if f.notice_sent else "notice due"
    return "ok"


@dataclass(frozen=True)
class ReaperPlan:
    """The plan, with the tables an operator reads beside it."""

    plan: Plan
    expiry: tuple[dict[str, Any], ...]
    orphans: tuple[dict[str, Any], ...]
    now: str
    notice_h: int

    def expiry_table(self) -> Any:
        """Every managed server in scope: its deadline and state, soonest first."""
        import pandas as pd

        return pd.DataFrame(list(self.expiry), columns=EXPIRY_COLUMNS)

    def orphan_table(self) -> Any:
        """The orphans and what happens to them (listed, or deleted when named)."""
        import pandas as pd

        return pd.DataFrame(list(self.orphans), columns=ORPHAN_COLUMNS)

    def summary(self) -> dict[str, Any]:
        """Counts for the record: expired, notices, orphans by kind."""
        states: dict[str, int] = {}
        for r in self.expiry:
            states[r["state"]] = states.get(r["state"], 0) + 1
        kinds: dict[str, int] = {}
        for o in self.orphans:
            kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
        return {"as_of": self.now, "notice_h": self.notice_h, "servers": states,
                "orphans": kinds, "plan": self.plan.summary()}


def _volume_steps(policy: Policy, f: ServerFact, delete_volumes: bool) -> list[Step]:
    if not f.volume_id:
        return []
    klass = policy.classes.get(f.klass or "")
    if delete_volumes and klass is not None and klass.volume_delete_on_retire:
        return [Step("delete", "volume", f"{f.name}-srv", f"/srv volume of expired {f.name}",
                     {"id": f.volume_id})]
    why = ("pass delete_volumes to delete it" if not delete_volumes else
           f"class {f.klass or 'unknown'} keeps its volume")
    return [Step("keep", "volume", f"{f.name}-srv", f"/srv volume of {f.name} kept: {why}",
                 {"id": f.volume_id})]


def _mail_steps(policy: Policy, facts: ReaperFacts, due: list[ServerFact],
                notice_h: int) -> list[Step]:
    by_owner: dict[str, list[ServerFact]] = {}
    for f in due:
        by_owner.setdefault(f.requester or "", []).append(f)
    steps = []
    for owner, servers in sorted(by_owner.items()):
        names = ", ".join(s.name for s in servers)
        account = facts.accounts.get(owner) if owner else None
        if account is None or not account.email:
            why = ("no owner in the metadata" if not owner else
                   f"{owner} has no address in the account system")
            steps.append(Step("keep", "mail", owner or "-", f"no notice for {names}: {why}"))
            continue
        listed = [{"id": s.id, "name": s.name, "deadline": iso(s.deadline),
                   "ticket": s.ticket or ""} for s in sorted(servers, key=lambda s: s.deadline)]
        steps.append(Step("create", "mail", account.email,
                          f"notice to {owner}: {names} expire(s) within {notice_h} h",
                          {"to": account.email, "cc": list(policy.mail.admins), "owner": owner,
                           "human_name": account.human_name or owner, "servers": listed}))
    return steps


def _orphan_row(o: Orphan, action: str) -> dict[str, Any]:
    return {**o.to_dict(), "action": action}


def make_plan(policy: Policy, facts: ReaperFacts, *, mode: str = "both", notice_h: int = 48,
              delete_orphans: Iterable[str] = (), delete_volumes: bool = False) -> ReaperPlan:
    """The reaper's plan; refuses an unknown mode, a negative notice window and an
    orphan id to delete that is not an orphan in scope."""
    if mode not in MODES:
        raise ParameterError(f"mode: {str(mode)[:20]!r} is not one of {', '.join(MODES)}",
                             parameter="mode")
    if not isinstance(notice_h, int) or notice_h < 0:
        raise ParameterError(f"notice_h: {notice_h!r} must be a whole number of hours >= 0",
                             parameter="notice_h")
    named = [str(x) for x in delete_orphans or ()]
    known = {o.id: o for o in facts.orphans}
    unknown = [x for x in named if x not in known]
    if unknown:
        raise ParameterError(
            f"delete_orphans: {len(unknown)} id(s) are not orphans in scope "
            f"({facts.scope.describe()}): " + ", ".join(f"{x[:36]!r}" for x in unknown[:5])
            + "; only an orphan the dry run listed can be deleted", parameter="delete_orphans")
    now = facts.now
    rows, expired, due = [], [], []
    for f in sorted(facts.servers, key=lambda f: (f.deadline is None, f.deadline or now, f.name)):
        if not f.managed:
            continue  # listed with the orphans
        state = state_of(f, now, notice_h)
        rows.append({"name": f.name, "id": f.id, "state": state,
                     "deadline": iso(f.deadline) if f.deadline else None,
                     "why": f.deadline_reason, "owner": f.requester, "class": f.klass,
                     "ticket": f.ticket, "status": f.status, "notice_sent": f.notice_sent})
        if state == "expired":
            expired.append(f)
        elif state == "notice due":
            due.append(f)
    steps: list[Step] = []
    if mode in ("both", "reap"):
        for f in expired:
            late = now - f.deadline
            steps.append(Step("delete", "server", f.name,
                              f"expired {iso(f.deadline)} ({f.deadline_reason}; "
                              f"{late.total_seconds() / 3600:.1f} h ago), owner "
                              f"{f.requester or '?'}",
                              {"id": f.id, "deadline": iso(f.deadline)}))
            steps += _volume_steps(policy, f, delete_volumes)
    if mode in ("both", "notify"):
        steps += _mail_steps(policy, facts, due, notice_h)
    orphan_rows = []
    for o in facts.orphans:
        if o.id in named and mode in ("both", "reap"):
            steps.append(Step("delete", o.kind, o.name or o.id, f"orphan: {o.reason}",
                              {"id": o.id}))
            orphan_rows.append(_orphan_row(o, "delete"))
        else:
            orphan_rows.append(_orphan_row(o, "listed"))
    title = f"lifetime reaper as of {iso(now)} ({facts.scope.describe()}, mode {mode})"
    return ReaperPlan(plan=Plan.of(title, steps), expiry=tuple(rows),
                      orphans=tuple(orphan_rows), now=iso(now), notice_h=notice_h)
