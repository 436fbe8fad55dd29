"""``fedcloud cloudlet start|stop|status [--service NAME]``: operate the local cloudlet."""
from __future__ import annotations

import argparse
import time

from ..errors import FedcloudError
from . import supervisor
from .programs import log_of
from .wipe import wipe


def _start(args: argparse.Namespace) -> int:
    return supervisor.start(only=args.service)


def _stop(args: argparse.Namespace) -> int:
    return supervisor.stop(only=args.service)


def _status(args: argparse.Namespace) -> int:
    if not supervisor.installed():
        print(f"the local cloudlet is not installed ({supervisor.PROGRAMS_CONF} missing): "
              "run `make cloudlet` or the cloudlet-install runbook")
        return 2
    rows = supervisor.status()
    if not rows:
        print("supervisord is not running: the cloudlet is stopped (`fedcloud cloudlet start`)")
        return 3
    if args.service:
        rows = [r for r in rows if r.name == args.service]
        if not rows:
            print(f"no program {args.service!r}")
            return 2
    mem = supervisor.memory_mb() if args.memory else {}
    width = max(len(r.name) for r in rows)
    for r in rows:
        extra = f"  {mem.get(r.name, 0):7.1f} MB" if args.memory else ""
        print(f"{r.name:<{width}}  {r.state:<8}{extra}  {r.detail}")
    if args.memory:
        print(f"{'total':<{width}}  {'':<8}  {sum(mem.values()):7.1f} MB (PSS: shared pages counted once)")
    bad = [r for r in rows if r.state != "RUNNING"]
    for r in bad:
        print(f"{r.name} is {r.state}: see {log_of(r.name)}")
    return 1 if bad else 0


def _wipe(args: argparse.Namespace) -> int:
    if not args.yes:
        print("wipe drops the cloudlet's databases, keys, images and secrets; "
              "give --yes to do it")
        return 2
    return wipe(cloudlet=args.cloudlet)


def _timed(func):
    def run(args: argparse.Namespace) -> int:
        t = time.monotonic()
        try:
            return func(args)
        except FedcloudError as exc:
            print(f"error: {exc}")
            return exc.exit_code
        finally:
            if getattr(args, "verbose_time", False):
                print(f"({time.monotonic() - t:.1f}s)")
    return run


def register(subparsers) -> None:
    """Add ``cloudlet`` with start, stop and status to an argparse subparsers object."""
    p = subparsers.add_parser("cloudlet", help="start, stop or show the local cloudlet's services")
    sub = p.add_subparsers(dest="cloudlet_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("start", _start, "start supervisord and the programs in order (databases first)"),
        ("stop", _stop, "stop the programs in reverse order (services before databases)"),
        ("status", _status, "show each program's state (exit 1 if any is not running)"),
    ):
        sp = sub.add_parser(name, help=text, description=text)
        sp.add_argument("--service", metavar="NAME", help="only this program, e.g. glance-api")
        if name == "status":
            sp.add_argument("--memory", action="store_true", help="show memory per program")
        sp.set_defaults(func=_timed(func))
    sp = sub.add_parser("wipe", help="drop databases, keys, images and secrets of the local "
                        "cloudlet (packages stay): for install-from-nothing tests")
    sp.add_argument("--yes", action="store_true", help="really do it")
    sp.add_argument("--cloudlet", default="testing", help="whose secrets file to remove")
    sp.set_defaults(func=_timed(_wipe))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedcloud")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
