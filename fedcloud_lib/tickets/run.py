"""Run what a ticket asks for: check the request, run the runbook headless with the
engine, answer on the ticket.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import FedcloudError
from ..instance.request import prepare as instance_prepare
from ..run import engine as run_engine
from ..run.values import validate as engine_validate
from ..site.accounts import ACCOUNTS_INPUT, Account, client_for
from ..site.policy import Policy
from .comment import format_outcome, format_refusal, scrubber_for
from .request import TicketRequest, check, parse
from .sources import Ticket, TicketSource

__all__ = ["TicketOutcome", "PreparedRequest", "run_ticket", "prepare_request", "retire_request"]


def retire_request(ticket: Ticket, *, snapshot: bool = False,
                   delete_volume: bool = False) -> TicketRequest:
    """The retire counterpart of a ticket (closed or expired): ``instance-retire`` on the
    ticket's number, asked by its reporter; the body's request block is not needed."""
    return TicketRequest(ticket=ticket, runbook="instance-retire",
                         values={"ticket": str(ticket.id), "requester": ticket.reporter,
                                 "snapshot": snapshot, "delete_volume": delete_volume})


class _AccountsOnce:
    """The account system, asked at most once per user for this ticket run."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.seen: dict[str, Account] = {}

    def account(self, username: str) -> Account:
        if username not in self.seen:
            self.seen[username] = self.client.account(username)
        return self.seen[username]

    def user_groups(self, username: str) -> list[str]:
        return list(self.account(username).groups)


@dataclass(frozen=True)
class PreparedRequest:
    """A checked ticket request and the accounts read to check it (handed to the run)."""

    request: TicketRequest
    accounts: dict[str, Account]

    @property
    def runbook(self) -> str:
        return self.request.runbook

    @property
    def values(self) -> dict[str, Any]:
        return self.request.values


def prepare_request(ticket: Ticket, policy: Policy, *, fasjson: Any = None,
                    validate: Callable[[str, dict], dict] | None = None,
                    retire: dict | None = None) -> PreparedRequest:
    """Parse and fully check a ticket's request (engine validation, policy, accounts).

    ``retire`` (``{"snapshot": bool, "delete_volume": bool}``) asks for the ticket's
    retirement instead of what its body requests.  Raises a :class:`FedcloudError`
    subclass naming what is wrong; makes no cloud call.  The account system is asked
    once per user; what it said is handed to the run (the kernel does not ask again).
    """
    accounts = _AccountsOnce(fasjson or client_for(policy))
    req = retire_request(ticket, **retire) if retire is not None else parse(ticket)
    prep = None
    if req.runbook == "instance-for-ticket":
        def prep(values: dict) -> Any:
            return instance_prepare(
                policy, ticket=values["ticket"], requester=values["requester"],
                purpose=values.get("purpose", ""),
                instance_class=values.get("instance_class", ""), name=values.get("name", ""),
                flavor=values.get("flavor", ""), image=values.get("image", ""),
                volume_gb=int(values.get("volume_gb", 0) or 0),
                expires=values.get("expires", "") or "", fasjson=accounts)
    checked = check(req, policy, validate=validate or engine_validate,
                    groups_of=accounts.user_groups, prepare=prep)
    return PreparedRequest(checked, dict(accounts.seen))


@dataclass(frozen=True)
class TicketOutcome:
    """The exit code of a ticket run, the answer posted, and the run it made (if any)."""

    exit_code: int
    comment: str
    run_id: str | None = None
    status: str | None = None


def run_ticket(source: TicketSource, ticket_id: str, policy: Policy, *, approve: bool = False,
               approve_plan: str | None = None, operator: str | None = None,
               cloud: str | None = None, comment: bool = True, fasjson: Any = None,
               engine: Any = None, progress: bool = False,
               retire: dict | None = None) -> TicketOutcome:
    """Read, check, run, answer.  Refusals are answered on the ticket too.

    ``engine`` is anything with the engine's ``validate`` and ``run_runbook`` (tests give
    a recording one); by default the real engine.
    """
    validate = engine.validate if engine is not None else engine_validate
    run = engine.run_runbook if engine is not None else run_engine.run_runbook
    scrub = scrubber_for(policy)
    ticket = source.get(ticket_id)
    try:
        prepared = prepare_request(ticket, policy, fasjson=fasjson, validate=validate,
                                   retire=retire)
    except FedcloudError as exc:
        text = scrub.text(format_refusal(ticket, exc))
        if comment:
            source.comment(ticket.id, text)
        return TicketOutcome(exc.exit_code or 2, text)
    result = run(prepared.runbook, prepared.values, approve=approve, approve_plan=approve_plan,
                 operator=operator, cloud=cloud, progress=progress,
                 inputs={ACCOUNTS_INPUT: {u: a.to_dict() for u, a in prepared.accounts.items()}})
    text = scrub.text(format_outcome(prepared.request, result, approve or bool(approve_plan)))
    if comment:
        source.comment(ticket.id, text)
    return TicketOutcome(result.exit_code, text, result.run_id, result.status)
