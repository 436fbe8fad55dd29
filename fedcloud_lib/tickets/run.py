"""Run what a ticket asks for: check the request, run the runbook headless with the
engine, answer on the ticket.

Only a ticket whose status the site policy counts as open (``tickets.open_statuses``)
may get an instance; any other ticket is only ever retired (``--retire``).  Reading and
checking the request is bounded in time (:data:`CHECK_SECONDS`): a ticket that takes
longer is refused.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..errors import FedcloudError, ParameterError, PolicyError
from ..instance.request import prepare as instance_prepare
from ..shown import prefix, shown
from ..run import engine as run_engine
from ..run.values import validate as engine_validate
from ..site.accounts import ACCOUNTS_INPUT, Account, client_for
from ..site.policy import Policy
from .comment import format_outcome, format_refusal, scrubber_for
from .request import TicketRequest, check, parse
from .sources import Ticket, TicketSource

__all__ = ["TicketOutcome", "PreparedRequest", "run_ticket", "prepare_request", "retire_request",
           "CHECK_SECONDS", "time_limit"]

#: the ``kind`` of the refusal of a ticket that is not open (only retired)
NOT_OPEN = "not-open"
#: the longest time reading and checking one ticket's request may take (seconds, CPU
#: and wall clock; the account system's own timeouts bound its calls)
CHECK_SECONDS = 20.0


class _TooSlow(BaseException):  # not swallowed by an `except Exception` on the way
    pass


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Refuse (:class:`ParameterError`) what takes longer than ``seconds`` in the block.

    Uses a real-time interval timer (SIGALRM), so it bounds pure-Python work on hostile
    input; outside the main thread (where signals cannot be used) the block runs unbounded.
    """
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _TooSlow()

    old = signal.signal(signal.SIGALRM, on_alarm)
    previous = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _TooSlow:
        raise ParameterError(f"ticket request refused: {what} took longer than {seconds:g} s; "
                             f"make the request block smaller and plainer") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if previous[0]:  # someone else's timer: give it back what is left
            signal.setitimer(signal.ITIMER_REAL, *previous)


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
    subclass naming what is wrong; makes no cloud call.  A ticket that is not open (site
    policy ``tickets.open_statuses``) is refused unless it is retired.  The account system
    is asked once per user; what it said is handed to the run (the kernel does not ask
    again).
    """
    if retire is None and not policy.tickets.is_open(ticket.status):
        tid = prefix(str(ticket.id))
        raise PolicyError(
            f"ticket {tid} is {shown(ticket.status)}, not open "
            f"({', '.join(policy.tickets.open_statuses)}): a ticket that is not open gets no "
            f"instance; its instance is only retired (fedcloud ticket run {tid} --retire "
            f"--approve)", ticket=str(ticket.id), status=ticket.status, kind=NOT_OPEN)
    accounts = _AccountsOnce(fasjson or client_for(policy))
    with time_limit(CHECK_SECONDS, "reading the request block"):
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
    engine_check = validate or engine_validate

    def bounded_validate(runbook: str, values: dict) -> dict:
        with time_limit(CHECK_SECONDS, "checking the request's parameters"):
            return engine_check(runbook, values)

    checked = check(req, policy, validate=bounded_validate,
                    groups_of=accounts.user_groups, prepare=prep)
    return PreparedRequest(checked, dict(accounts.seen))


@dataclass(frozen=True)
class TicketOutcome:
    """The exit code of a ticket run, the answer posted (markdown, every value escaped),
    the same answer for a terminal (``text``), and the run it made (if any)."""

    exit_code: int
    comment: str
    run_id: str | None = None
    status: str | None = None
    text: str = ""


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
        answer = format_refusal(ticket, exc, scrub=scrub)
        if comment:
            source.comment(ticket.id, answer)
        return TicketOutcome(exc.exit_code or 2, answer,
                             text=format_refusal(ticket, exc, scrub=scrub, markdown=False))
    result = run(prepared.runbook, prepared.values, approve=approve, approve_plan=approve_plan,
                 operator=operator, cloud=cloud, progress=progress,
                 inputs={ACCOUNTS_INPUT: {u: a.to_dict() for u, a in prepared.accounts.items()}})
    approved = approve or bool(approve_plan)
    answer = format_outcome(prepared.request, result, approved, scrub=scrub)
    if comment:
        source.comment(ticket.id, answer)
    return TicketOutcome(result.exit_code, answer, result.run_id, result.status,
                         text=format_outcome(prepared.request, result, approved, scrub=scrub,
                                             markdown=False))
