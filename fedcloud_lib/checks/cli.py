"""``fedcloud check services|hypervisors|capacity|expiry|archive [--warning W --critical C]``:
Nagios plugins (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one status line with
performance data).  Wire with ``fedcloud_lib.checks.cli.register(subparsers)``.

Bad input — an unknown check, a threshold that is not a number, negative, or a warning
above the critical one — is UNKNOWN (exit 3), as the plugin API says, before any cloud
call.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

# nagiosplugin and the cloud modules are imported by the command itself (cmd_check), so
# that `fedcloud --help` lists this plugin without loading them

__all__ = ["CHECKS", "OptionError", "register", "options_parser", "make_probe", "cmd_check", "main"]

CHECKS = {
    "services": "Nova services, Neutron agents and Cinder services up; the APIs answer",
    "hypervisors": "every nova-compute up and enabled",
    "capacity": "fullest host (vCPU/RAM/disk) and project quota, in %",
    "expiry": "hours the most overdue server is past its deadline (is the reaper keeping up?)",
    "archive": "the run archive verifies (manifests and hash chain)",
}


class OptionError(Exception):
    """A check's options are wrong (reported as UNKNOWN, exit 3)."""


def make_probe(args: argparse.Namespace) -> Any:
    """The probe for ``args.check`` (imports only that check's module)."""
    from .nagios import BadInput

    name = args.check
    if name == "services":
        from .services import ServicesProbe
        return ServicesProbe(args.cloud)
    if name == "hypervisors":
        from .hypervisors import HypervisorsProbe
        return HypervisorsProbe(args.cloud)
    if name == "capacity":
        from .capacity import CapacityProbe
        return CapacityProbe(args.cloud, project=args.project or "")
    if name == "expiry":
        from .expiry import ExpiryProbe
        if args.window < 0:
            raise BadInput(f"--window {args.window} is negative; give hours >= 0")
        return ExpiryProbe(args.cloud, name_prefix=args.name_prefix or "",
                           policy_file=args.policy or "", window_h=args.window)
    if name == "archive":
        from .archive import ArchiveProbe
        return ArchiveProbe(args.outputs)
    raise BadInput(f"unknown check {str(name)[:30]!r}; the checks are: {', '.join(CHECKS)}")


class _Parser(argparse.ArgumentParser):
    """The options of a check; a mistake in them is UNKNOWN (exit 3), not argparse's 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionError(f"{message} (see fedcloud check --help)")


def options_parser() -> argparse.ArgumentParser:
    """The options every check takes (the ones a check does not use are ignored)."""
    p = _Parser(prog="fedcloud check CHECK", add_help=False)
    p.add_argument("-w", "--warning", metavar="W", help="WARNING above W (a number >= 0)")
    p.add_argument("-c", "--critical", metavar="C", help="CRITICAL above C (>= W)")
    p.add_argument("--cloud", help="clouds.yaml entry (default: $OS_CLOUD); services, "
                   "hypervisors and capacity need admin credentials")
    p.add_argument("-t", "--timeout", type=float, default=30.0, metavar="S",
                   help="UNKNOWN after S seconds (default 30)")
    p.add_argument("--project", help="capacity: only this project's quota")
    p.add_argument("--name-prefix", help="expiry: only servers whose names start with this")
    p.add_argument("--window", type=int, default=24, metavar="H",
                   help="expiry: also count servers expiring within H hours (default 24)")
    p.add_argument("--policy", metavar="PATH", help="expiry: site policy file (builder "
                   "lifetime; default $FEDCLOUD_POLICY or parameters/policy.yaml)")
    p.add_argument("--outputs", metavar="DIR", help="archive: the archive to verify "
                   "(default $FEDCLOUD_OUTPUTS or ./outputs)")
    return p


def cmd_check(args: argparse.Namespace) -> int:
    """Run one check; print its status line; return the plugin exit code."""
    from .nagios import BadInput, guarded, parse_thresholds, run

    name = args.check or ""

    def go() -> tuple[int, str]:
        if name not in CHECKS:
            raise BadInput(f"unknown check {name[:30]!r}; the checks are: {', '.join(CHECKS)}"
                           if name else f"which check? one of {', '.join(CHECKS)}")
        try:
            opts = options_parser().parse_args(args.options or [],
                                               namespace=argparse.Namespace(check=name))
        except OptionError as exc:
            raise BadInput(str(exc)) from None
        probe = make_probe(opts)
        thresholds = parse_thresholds(opts.warning, opts.critical, probe.defaults, probe.upper)
        if opts.timeout <= 0:
            raise BadInput(f"--timeout {opts.timeout:g} must be above 0 seconds")
        return run(probe, thresholds, timeout=opts.timeout)

    code, text = guarded(go, name if name in CHECKS else "check")
    sys.stdout.write(text)
    sys.stdout.flush()
    return code


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``check`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "check", help="Nagios checks: " + ", ".join(CHECKS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A Nagios plugin: prints one status line with performance data and "
                    "exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n\nchecks:\n"
                    + "\n".join(f"  {k:<12} {v}" for k, v in CHECKS.items()),
        epilog=options_parser().format_help().replace("usage: ", "options of a check: ", 1))
    p.add_argument("check", metavar="CHECK", nargs="?", help="|".join(CHECKS))
    p.add_argument("options", nargs=argparse.REMAINDER, help="the check's options (below)")
    p.set_defaults(func=cmd_check)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedcloud")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
