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

A ticket is hostile input.  The body is read only up to :data:`MAX_BODY_CHARS`, a
request block only up to :data:`MAX_BLOCK_CHARS`; fences are found in one pass over the
lines; the block is plain YAML: anchors, aliases and tags (``&a``, ``*a``, ``!!python``)
are refused before anything is built from it, so a few hundred bytes cannot expand into
millions of values; dates stay text.  Messages show at most a short prefix of a value
and its length (:func:`fedcloud_lib.shown.shown`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import yaml

from ..errors import ParameterError, PolicyError
from ..shown import prefix, shown
from ..site.policy import Policy
from .sources import Ticket

__all__ = ["TICKET_RUNBOOKS", "FORBIDDEN", "MAX_BODY_CHARS", "MAX_BLOCK_CHARS", "TicketRequest",
           "parse", "check", "load_block", "fenced_blocks"]

#: runbooks a ticket may ask for (nothing that installs or tears down a cloudlet)
TICKET_RUNBOOKS = ("instance-for-ticket", "instance-retire")
#: parameters a ticket may not set: approval and site configuration are the operator's
FORBIDDEN = {
    "approve": "approval is given by the operator (fedcloud ticket run --approve), "
               "not by the ticket",
    "policy_file": "the site policy is the operator's, not the ticket's",
    "cloud": "the cloud is chosen by the operator (--cloud), not by the ticket",
}
#: the longest ticket body read (characters); a longer one is refused
MAX_BODY_CHARS = 65536
#: the longest request block (characters); a request needs a few hundred
MAX_BLOCK_CHARS = 8192
#: how deep a request block may nest (runbook: / parameters: / a list of mappings)
MAX_DEPTH = 6
_PARAM_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_LANGS = ("yaml", "yml", "fedcloud", "")
_OPEN = re.compile(r"(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*")


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


def fenced_blocks(body: str) -> Iterator[tuple[str, str]]:
    """``(language, text)`` of every fenced code block of a markdown text, in one pass
    over its lines (a fence is three or more backticks or tildes; an unclosed block runs
    to the end, as markdown renders it)."""
    fence, lang, lines = None, "", []
    for line in body.splitlines():
        if fence is None:
            m = _OPEN.fullmatch(line.rstrip())
            if m:
                fence, lang, lines = m.group(1), m.group(2).lower(), []
            continue
        stripped = line.strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            yield lang, "\n".join(lines) + "\n"
            fence = None
        else:
            lines.append(line)
    if fence is not None:
        yield lang, "\n".join(lines) + ("\n" if lines else "")


class _Unsafe(ValueError):
    """A request block uses YAML beyond plain mappings, lists and scalars."""


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader without timestamps: an unquoted ``2026-12-01`` stays text."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _check_events(text: str) -> None:
    """Refuse anchors, aliases, explicit tags and deep nesting, reading the event stream
    (linear in the text, before any value is built)."""
    depth = 0
    for ev in yaml.parse(text, Loader=_PlainLoader):
        if isinstance(ev, yaml.AliasEvent):
            raise _Unsafe(f"YAML aliases (*{prefix(str(ev.anchor), 20)}) are not allowed in a "
                          f"request block; write every value out")
        if getattr(ev, "anchor", None) is not None:
            raise _Unsafe(f"YAML anchors (&{prefix(str(ev.anchor), 20)}) are not allowed in a "
                          f"request block; write every value out")
        tag = getattr(ev, "tag", None)
        if tag is not None and isinstance(ev, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            raise _Unsafe(f"YAML tags ({prefix(str(tag), 30)}) are not allowed in a request "
                          f"block; plain values only")
        if isinstance(ev, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Unsafe(f"the request block nests deeper than {MAX_DEPTH} levels")
        elif isinstance(ev, yaml.CollectionEndEvent):
            depth -= 1


def load_block(text: str) -> Any:
    """Read a request block: plain YAML (mappings, lists, scalars; no anchors, aliases or
    tags; dates stay text).  Raises ``_Unsafe`` or ``yaml.YAMLError``/``ValueError``."""
    _check_events(text)
    return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass


def _first_line(exc: BaseException) -> str:
    return prefix(" ".join(str(exc).split()), 160)


def parse(ticket: Ticket) -> TicketRequest:
    """Find and read the request block; raise :class:`ParameterError` naming the problem."""
    body = ticket.body or ""
    if len(body) > MAX_BODY_CHARS:
        raise _bad(f"the ticket body has {len(body)} characters; at most {MAX_BODY_CHARS} are "
                   f"read: put the request block in a short ticket")
    requests_ = []
    for lang, text in fenced_blocks(body):
        if lang not in _LANGS:
            continue
        asks = "runbook" in text  # a block that is meant as the request: problems are refused
        if len(text) > MAX_BLOCK_CHARS:
            if asks:
                raise _bad(f"the request block has {len(text)} characters; at most "
                           f"{MAX_BLOCK_CHARS} allowed")
            continue
        try:
            data = load_block(text)
        except _Unsafe as exc:
            if asks:
                raise _bad(str(exc)) from None
            continue
        except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
            if asks:
                raise _bad(f"the request block is not valid YAML: {_first_line(exc)}") from None
            continue
        if isinstance(data, dict) and "runbook" in data:
            requests_.append(data)
    if not requests_:
        raise _bad("the ticket body has no request block: a fenced ```yaml block with "
                   "'runbook:' and 'parameters:'")
    if len(requests_) > 1:
        raise _bad(f"the ticket body has {len(requests_)} request blocks; exactly one allowed")
    data = requests_[0]
    unknown = [k for k in data if k not in ("runbook", "parameters")]
    if unknown:
        raise _bad(f"unknown key(s) in the request block: "
                   f"{', '.join(shown(k) for k in unknown[:5])}"
                   f"{f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''}; "
                   f"allowed: runbook, parameters")
    runbook = data["runbook"]
    if runbook not in TICKET_RUNBOOKS:
        raise _bad(f"runbook {shown(runbook)} cannot be requested by ticket; allowed: "
                   f"{', '.join(TICKET_RUNBOOKS)}")
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad("'parameters' must be a mapping of parameter names to values")
    names = [k for k in params if not (isinstance(k, str) and _PARAM_NAME.fullmatch(k))]
    if names:
        raise _bad(f"parameter name(s) {', '.join(shown(k) for k in names[:5])} are not "
                   f"names: lower-case letters, digits and '_', at most 64 characters")
    problems = [f"{k}: {why}" for k, why in FORBIDDEN.items() if k in params]
    if "ticket" in params and str(params["ticket"]) != str(ticket.id):
        problems.append(f"ticket: {shown(params['ticket'])} differs from this ticket "
                        f"({shown(str(ticket.id))}); the ticket number is filled in from the "
                        f"ticket")
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
    names); ``groups_of`` reads an account's groups (the account system); ``prepare`` is
    the runbook's own policy check (for instance-for-ticket: :func:`instances.prepare`).
    """
    reporter = req.ticket.reporter
    if req.requester != reporter:
        groups = set(groups_of(reporter))
        if not groups & set(policy.admin_groups):
            raise PolicyError(
                f"reporter {shown(reporter)} asks on behalf of {shown(req.requester)} but is "
                f"not an admin (member of {', '.join(policy.admin_groups)}); only the "
                f"requester or an admin may file the request",
                reporter=reporter, requester=req.requester)
    values = validate(req.runbook, dict(req.values))
    if prepare is not None:
        prepare(values)
    return TicketRequest(ticket=req.ticket, runbook=req.runbook, values=values)
