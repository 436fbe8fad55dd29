"""``fedcloud ticket show|run``: wire with ``fedcloud_lib.tickets.cli.register(subparsers)``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import FedcloudError
from ..shown import prefix, shown
from ..site import policy as policy_mod

__all__ = ["register", "source_from_args", "cmd_show", "cmd_run", "main"]


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("ticket", help="ticket number (or the path of a one-ticket file)")
    g = p.add_argument_group("ticket source (default: Pagure, from the site policy)")
    g.add_argument("--file", metavar="PATH", help="read the ticket from a local JSON/YAML file "
                   "(answers are appended to it)")
    g.add_argument("--pagure-url", metavar="URL", help="Pagure instance (default: policy)")
    g.add_argument("--repo", help="Pagure project holding the tickets (default: policy)")
    p.add_argument("--policy", metavar="PATH", help="site policy file (default: "
                   "$FEDCLOUD_POLICY or parameters/policy.yaml)")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ticket`` (``show``, ``run``) to an argparse subparsers object."""
    ticket = subparsers.add_parser(
        "ticket", help="run the runbook a ticket asks for and answer on the ticket",
        description="Tickets drive runs: a fenced ```yaml block in the ticket body names the "
                    "runbook and its parameters; the ticket number and reporter fill "
                    "'ticket' and 'requester'.")
    sub = ticket.add_subparsers(dest="ticket_command", metavar="COMMAND", required=True)
    show = sub.add_parser("show", help="print what the ticket would run (checks it; no cloud "
                                       "call, no comment)")
    _add_source_args(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_show)
    run = sub.add_parser("run", help="check the ticket's request, run it headless, answer on "
                                     "the ticket (a dry run without --approve)")
    _add_source_args(run)
    run.add_argument("--approve", action="store_true", help="apply the plan (otherwise the "
                     "run stops after the plan and the ticket gets the plan)")
    run.add_argument("--approve-plan", metavar="RUN_ID", help="apply exactly the plan recorded "
                     "by that dry run of this ticket (refused if the facts changed since)")
    run.add_argument("--operator", help="who runs it (recorded; default: your login)")
    run.add_argument("--cloud", help="clouds.yaml entry (default: $OS_CLOUD)")
    run.add_argument("--no-comment", action="store_true", help="do not answer on the ticket")
    ret = run.add_argument_group("retire (ticket closed or instance expired)")
    ret.add_argument("--retire", action="store_true", help="run instance-retire for the "
                     "ticket instead of what its body requests")
    ret.add_argument("--snapshot", action="store_true", help="with --retire: final snapshot")
    ret.add_argument("--delete-volume", action="store_true", help="with --retire: delete the "
                     "/srv volume too (only if the instance's class allows it)")
    run.set_defaults(func=cmd_run)
    return ticket


def source_from_args(args: argparse.Namespace, pol: policy_mod.Policy) -> tuple[Any, str]:
    from .sources import FileSource, PagureSource

    if args.file:
        return FileSource(args.file), args.ticket
    if Path(args.ticket).is_file():
        src = FileSource(args.ticket)
        return src, src.get(None).id
    return (PagureSource(args.pagure_url or pol.tickets.pagure_url, args.repo or pol.tickets.repo,
                         token_env=pol.tickets.token_env), args.ticket)


def _fail(exc: FedcloudError) -> int:
    print(f"fedcloud ticket: {exc}", file=sys.stderr)
    problems = exc.problems
    if len(problems) > 1:
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
    return exc.exit_code or 1


def cmd_show(args: argparse.Namespace) -> int:
    from .comment import scrubber_for
    from .request import parse
    from .run import CHECK_SECONDS, prepare_request, time_limit

    try:
        pol = policy_mod.load(args.policy)
        source, tid = source_from_args(args, pol)
        ticket = source.get(tid)
        print(f"ticket {prefix(ticket.id)} ({source.name}): {shown(ticket.title, 80)}")
        print(f"reporter: {shown(ticket.reporter)}   status: {shown(ticket.status)}")
        with time_limit(CHECK_SECONDS, "reading the request block"):
            req = parse(ticket)
        print(f"runbook: {req.runbook}")
        checked = prepare_request(ticket, pol)
    except FedcloudError as exc:
        return _fail(exc)
    if args.json:
        print(scrubber_for(pol).text(json.dumps({"ticket": ticket.id, "runbook": checked.runbook,
                                                 "parameters": checked.values},
                                                indent=2, default=str)))
    else:
        print("parameters:")
        width = max(len(k) for k in checked.values)
        scrub = scrubber_for(pol)
        for k, v in checked.values.items():
            print(f"  {k:<{width}}  {shown(scrub.data(v), 80)}")
        print(f"would run: fedcloud ticket run {ticket.id} (dry run; --approve to apply)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import os

    from .run import run_ticket

    try:
        pol = policy_mod.load(args.policy)
        if args.policy:  # the runbook's kernel reads the same policy
            os.environ["FEDCLOUD_POLICY"] = str(Path(args.policy).resolve())
        source, tid = source_from_args(args, pol)
        outcome = run_ticket(source, tid, pol, approve=args.approve,
                             approve_plan=args.approve_plan, operator=args.operator,
                             cloud=args.cloud, comment=not args.no_comment, progress=True,
                             retire=({"snapshot": args.snapshot,
                                      "delete_volume": args.delete_volume}
                                     if args.retire else None))
    except FedcloudError as exc:
        return _fail(exc)
    print(outcome.text or outcome.comment)
    if not args.no_comment:
        print(f"(answered on ticket {tid} in {source.name})")
    return outcome.exit_code


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m fedcloud_lib.tickets.cli run|show ...``), the same
    sub-commands ``fedcloud ticket`` has once wired into the main command."""
    parser = argparse.ArgumentParser(prog="fedcloud")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ticket", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
