"""Tickets drive runs: read a ticket, check its request, run the runbook headless with the
engine, answer on the ticket.

``fedcloud ticket show TICKET`` prints what would run; ``fedcloud ticket run TICKET``
runs it (a dry run unless ``--approve``).  See :mod:`.request` for the request format
and :mod:`.sources` for the ticket sources (file, Pagure).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import FedcloudError, RunbookError
from ..policy import Policy
from .request import FORBIDDEN, TICKET_RUNBOOKS, TicketRequest, check, parse
from .sources import FileSource, PagureSource, Ticket, TicketSource

__all__ = [
    "Ticket", "TicketSource", "FileSource", "PagureSource", "TicketRequest", "parse", "check",
    "TICKET_RUNBOOKS", "FORBIDDEN", "prepare_request", "format_outcome", "format_refusal",
    "scrub", "TicketOutcome", "run_ticket", "retire_request",
]


def _engine() -> Any:
    try:
        from .. import engine
    except ImportError as exc:  # the engine is a separate module of the library
        raise RunbookError("the runbook engine (fedcloud_lib.engine) is not available") \
            from exc
    return engine


def _instance_prepare(policy: Policy, fasjson: Any) -> Callable[[dict], Any]:
    from .. import instances

    def prepare(values: dict) -> Any:
        return instances.prepare(
            policy, ticket=values["ticket"], requester=values["requester"],
            purpose=values.get("purpose", ""), instance_class=values.get("instance_class", ""),
            name=values.get("name", ""), flavor=values.get("flavor", ""),
            image=values.get("image", ""), volume_gb=int(values.get("volume_gb", 0) or 0),
            expires=values.get("expires", "") or "", fasjson=fasjson)

    return prepare


def retire_request(ticket: Ticket, *, snapshot: bool = False,
                   delete_volume: bool = False) -> TicketRequest:
    """The retire counterpart of a ticket (closed or expired): ``instance-retire`` on the
    ticket's number, asked by its reporter; the body's request block is not needed."""
    return TicketRequest(ticket=ticket, runbook="instance-retire",
                         values={"ticket": str(ticket.id), "requester": ticket.reporter,
                                 "snapshot": snapshot, "delete_volume": delete_volume})


def prepare_request(ticket: Ticket, policy: Policy, *, fasjson: Any = None,
                    validate: Callable[[str, dict], dict] | None = None,
                    retire: dict | None = None) -> TicketRequest:
    """Parse and fully check a ticket's request (engine validation, policy, accounts).

    ``retire`` (``{"snapshot": bool, "delete_volume": bool}``) asks for the ticket's
    retirement instead of what its body requests.  Raises a :class:`FedcloudError`
    subclass naming what is wrong; makes no cloud call.
    """
    from ..accounts import client_for

    fasjson = fasjson or client_for(policy)
    req = retire_request(ticket, **retire) if retire is not None else parse(ticket)
    prep = _instance_prepare(policy, fasjson) if req.runbook == "instance-for-ticket" else None
    return check(req, policy, validate=validate or _engine().validate,
                 groups_of=fasjson.user_groups, prepare=prep)


def scrub(text: str, policy: Policy | None = None) -> str:
    """Replace the values of known secret environment variables by ``***``."""
    names = {"PAGURE_API_TOKEN", "FEDCLOUD_SMTP_PASSWORD"}
    if policy is not None:
        names |= {policy.tickets.token_env, policy.mail.password_env or ""}
    for name in names:
        value = os.environ.get(name) if name else None
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def _md_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:
        return ("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    out += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(out)


def format_refusal(ticket: Ticket, error: FedcloudError) -> str:
    problems = getattr(error, "problems", None) or error.context.get("problems") or []
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
    if status == "planned" or (not approved and status == "succeeded"):
        lines += ["This was a dry run: the plan below is what an approved run will do. "
                  "An operator approves it with "
                  f"`fedcloud ticket run {req.ticket.id} --approve`.", ""]
    plan = res.get("plan")
    if isinstance(plan, list) and plan:
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


@dataclass(frozen=True)
class TicketOutcome:
    exit_code: int
    comment: str
    run_id: str | None = None
    status: str | None = None


def run_ticket(source: TicketSource, ticket_id: str, policy: Policy, *, approve: bool = False,
               operator: str | None = None, cloud: str | None = None, comment: bool = True,
               fasjson: Any = None, engine: Any = None, progress: bool = False,
               retire: dict | None = None) -> TicketOutcome:
    """Read, check, run, answer.  Refusals are answered on the ticket too."""
    engine = engine or _engine()
    ticket = source.get(ticket_id)
    try:
        req = prepare_request(ticket, policy, fasjson=fasjson, validate=engine.validate,
                              retire=retire)
    except FedcloudError as exc:
        text = scrub(format_refusal(ticket, exc), policy)
        if comment:
            source.comment(ticket.id, text)
        return TicketOutcome(exc.exit_code or 2, text)
    result = engine.run_runbook(req.runbook, req.values, approve=approve, operator=operator,
                                cloud=cloud, progress=progress)
    text = scrub(format_outcome(req, result, approve), policy)
    if comment:
        source.comment(ticket.id, text)
    code = getattr(result, "exit_code", 0 if result.status == "succeeded" else 1)
    return TicketOutcome(code, text, result.run_id, result.status)
