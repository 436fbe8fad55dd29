"""Turn a ticket into a runbook request, and check it before anything runs.

A ticket asks for a run with one fenced YAML block in its body::

    ```yaml
    runbook: instance-for-ticket
    parameters:
      name: copr-dev-7
      instance_class: dev
      purpose: testing copr backend changes
    ```

The ticket's number fills ``ticket``; its reporter fills ``requester`` unless the block
names another requester, which only an admin (a member of the policy's admin groups)
may do.  Approval is the operator's (``fedcloud ticket run --approve``), never the
ticket's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import yaml

from ..errors import ParameterError, PolicyError
from ..site.policy import Policy
from .sources import Ticket

__all__ = ["TICKET_RUNBOOKS", "FORBIDDEN", "TicketRequest", "parse", "check"]

#: runbooks a ticket may ask for (nothing that installs or tears down a cloudlet)
TICKET_RUNBOOKS = ("instance-for-ticket", "instance-retire")
#: parameters a ticket may not set: approval and site configuration are the operator's
FORBIDDEN = {
    "approve": "approval is given by the operator (fedcloud ticket run --approve), "
               "not by the ticket",
    "policy_file": "the site policy is the operator's, not the ticket's",
    "cloud": "the cloud is chosen by the operator (--cloud), not by the ticket",
}

_FENCE = re.compile(r"^(```|~~~)[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^\1[ \t]*$",
                    re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class TicketRequest:
    ticket: Ticket
    runbook: str
    values: dict[str, Any]

    @property
    def requester(self) -> str:
        return str(self.values.get("requester", ""))


def _bad(msg: str, problems: list[str] | None = None) -> ParameterError:
    return ParameterError(f"ticket request refused: {msg}", problems=problems or [msg])


def parse(ticket: Ticket) -> TicketRequest:
    """Find and read the request block; raise :class:`ParameterError` naming the problem."""
    blocks = [m for m in _FENCE.finditer(ticket.body or "")
              if m.group(2).lower() in ("yaml", "yml", "fedcloud", "")]
    requests_ = []
    for m in blocks:
        try:
            data = yaml.safe_load(m.group(3))
        except yaml.YAMLError as exc:
            if "runbook:" in m.group(3):
                raise _bad(f"the request block is not valid YAML: {exc}") from exc
            continue
        if isinstance(data, dict) and "runbook" in data:
            requests_.append(data)
    if not requests_:
        raise _bad("the ticket body has no request block: a fenced ```yaml block with "
                   "'runbook:' and 'parameters:'")
    if len(requests_) > 1:
        raise _bad(f"the ticket body has {len(requests_)} request blocks; exactly one allowed")
    data = requests_[0]
    unknown = sorted(set(data) - {"runbook", "parameters"})
    if unknown:
        raise _bad(f"unknown key(s) in the request block: {', '.join(unknown)}; allowed: "
                   f"runbook, parameters")
    runbook = data["runbook"]
    if runbook not in TICKET_RUNBOOKS:
        raise _bad(f"runbook {runbook!r} cannot be requested by ticket; allowed: "
                   f"{', '.join(TICKET_RUNBOOKS)}")
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad("'parameters' must be a mapping of parameter names to values")
    problems = [f"{k}: {why}" for k, why in FORBIDDEN.items() if k in params]
    if "ticket" in params and str(params["ticket"]) != str(ticket.id):
        problems.append(f"ticket: {params['ticket']!r} differs from this ticket ({ticket.id}); "
                        f"the ticket number is filled in from the ticket")
    if problems:
        raise _bad("; ".join(problems), problems)
    values = {**params, "ticket": str(ticket.id)}
    values.setdefault("requester", ticket.reporter)
    return TicketRequest(ticket=ticket, runbook=runbook, values=values)


def check(req: TicketRequest, policy: Policy, *,
          validate: Callable[[str, dict], dict],
          groups_of: Callable[[str], list[str]],
          prepare: Callable[..., Any] | None = None) -> TicketRequest:
    """Validate ``req`` fully before any cloud call.

    ``validate`` is the engine's parameter validation (types, constraints, unknown
    names); ``groups_of`` reads an account's groups (FASJSON); ``prepare`` is the
    runbook's own policy check (for instance-for-ticket: :func:`instances.prepare`).
    """
    reporter = req.ticket.reporter
    if req.requester != reporter:
        groups = set(groups_of(reporter))
        if not groups & set(policy.admin_groups):
            raise PolicyError(
                f"reporter {reporter!r} asks on behalf of {req.requester!r} but is not an admin "
                f"(member of {', '.join(policy.admin_groups)}); only the requester or an admin "
                f"may file the request", reporter=reporter, requester=req.requester)
    values = validate(req.runbook, dict(req.values))
    if prepare is not None:
        prepare(values)
    return TicketRequest(ticket=req.ticket, runbook=req.runbook, values=values)
