"""What fedcloud answers on a ticket: a refusal, a plan, or an outcome (markdown).

A ticket answer is a public comment: every text goes through the run's scrubber
(:func:`scrubber_for`) before it is posted.
"""
from __future__ import annotations

import os
from typing import Any

from ..errors import FedcloudError
from ..scrub import Scrubber, collect_secrets
from ..site.policy import Policy
from .request import TicketRequest
from .sources import Ticket

__all__ = ["format_refusal", "format_outcome", "scrubber_for", "plan_rows"]


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


def plan_rows(plan: Any) -> list[dict[str, Any]]:
    """The rows of a recorded plan (a Plan's dict, or the rows of an older run)."""
    if isinstance(plan, dict) and isinstance(plan.get("steps"), list):
        return [{k: s.get(k, "") for k in ("action", "kind", "name", "detail")}
                for s in plan["steps"] if isinstance(s, dict)]
    if isinstance(plan, list):
        return [r for r in plan if isinstance(r, dict)]
    return []


def _md_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:
        return ("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    out += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(out)


def format_refusal(ticket: Ticket, error: FedcloudError) -> str:
    problems = error.problems
    lines = ["**fedcloud** cannot act on this ticket: the request was refused before "
             "anything was created.", "", str(error).split("\n")[0]]
    if len(problems) > 1 or (problems and problems[0] not in str(error).split("\n")[0]):
        lines += [""] + [f"* {p}" for p in problems]
    lines += ["", "Fix the request block in the ticket and ask again."]
    return "\n".join(lines)


def format_outcome(req: TicketRequest, result: Any, approved: bool) -> str:
    res = getattr(result, "results", None) or {}
    status = getattr(result, "status", "?")
    head = (f"**fedcloud** ran `{req.runbook}` for ticket {req.ticket.id}: **{status}** "
            f"(run `{result.run_id}`)")
    lines = [head, ""]
    lines += [f"Archive chain head after this run: `{result.head}`", ""] if getattr(result, "head", None) else []
    if status == "planned" or (not approved and status == "succeeded"):
        lines += ["This was a dry run: the plan below is what an approved run will do. "
                  "An operator approves exactly this plan with "
                  f"`fedcloud ticket run {req.ticket.id} --approve-plan {result.run_id}` "
                  "(refused if the cloud changed since).", ""]
    plan = plan_rows(res.get("plan"))
    if plan:
        lines += ["Plan:", "", _md_table(plan, ["action", "kind", "name", "detail"]), ""]
    quota = res.get("quota")
    if isinstance(quota, list) and quota:
        lines += ["Quota headroom in the project after this request:", "",
                  _md_table(quota, ["resource", "used", "requested", "limit",
                                    "headroom_after"]), ""]
    inst = res.get("instance")
    if isinstance(inst, dict) and status == "succeeded":
        lines += ["Instance:", "",
                  _md_table([inst], [c for c in ("name", "address", "status", "flavor", "image",
                                                  "instance_class", "expires_at", "volume_id")
                                     if c in inst]), ""]
    retired = res.get("retired")
    if isinstance(retired, dict) and status == "succeeded":
        lines += ["Retired: " + ", ".join(f"{k}: {v}" for k, v in retired.items()
                                          if v and k != "ticket"), ""]
    if status not in ("succeeded", "planned"):
        err = (getattr(result, "error", None) or "see the archived run").strip()
        tail = "\n".join(err.splitlines()[-12:])
        lines += ["The run did not finish:", "", "```", tail, "```", "",
                  f"The run is archived as `{result.run_id}`. Re-running the ticket finishes "
                  f"what is missing without duplicating anything.", ""]
    return "\n".join(lines).rstrip() + "\n"
