"""The ``fedcloud`` command line.

Exit codes: 0 success (or a dry run that stopped after its plan), 1 the notebook failed
(or verify found problems, or the approved plan was stale), 2 refused input, 3 refused by
a lock, 4 a service the run needs is unreachable, 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from .errors import FedcloudError

# Sub-commands contributed by other parts of the library: command -> module exposing
# register(subparsers). A plugin is imported only when its command (or help) is asked for,
# so that `fedcloud run` does not pay for importing every part of the product.
PLUGINS = {"cloudlet": "fedcloud_lib.cloudlet.cli", "ticket": "fedcloud_lib.tickets.cli",
           "burst": "fedcloud_lib.burst.cli",
           "check": "fedcloud_lib.checks.cli", "lab": "fedcloud_lib.lab.cli"}
CORE_COMMANDS = {"runbooks", "describe", "run", "runs"}


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(str(r.get(c, "") if r.get(c) is not None else "")) for r in rows))
              for c in columns}
    line = "  ".join(c.upper().ljust(widths[c]) for c in columns)
    out = [line.rstrip()]
    for r in rows:
        out.append("  ".join(str(r.get(c) if r.get(c) is not None else "").ljust(widths[c])
                             for c in columns).rstrip())
    return "\n".join(out)


# ------------------------------------------------------------------ runbooks / describe
def cmd_runbooks(args) -> int:
    from .runbooks import list_runbooks

    rows = [{"runbook": r.name, "purpose": r.purpose} for r in list_runbooks()]
    print(json.dumps(rows, indent=2) if args.json else _table(rows, ["runbook", "purpose"]))
    return 0


def cmd_describe(args) -> int:
    from .runbooks import get_runbook

    rb = get_runbook(args.runbook)
    params = [p.to_dict() for p in rb.parameters]
    if args.json:
        print(json.dumps({"runbook": rb.name, "title": rb.title, "purpose": rb.purpose,
                          "path": str(rb.path), "parameters": params}, indent=2, default=str))
        return 0
    print(f"{rb.name}: {rb.title}\n{rb.purpose}\n{rb.path}\n")
    rows = []
    for p in rb.parameters:
        flags = [f for f, on in (("required", p.required), ("secret", p.secret)) if on]
        allowed = p.allowed + (f" ({', '.join(flags)})" if flags else "")
        default = p.to_dict()["default"] if p.secret else repr(p.default)
        rows.append({"name": p.name, "type": str(p.type), "default": default,
                     "allowed": allowed, "help": p.help})
    print(_table(rows, ["name", "type", "default", "allowed", "help"]))
    return 0


# ------------------------------------------------------------------ run
def cmd_run(args) -> int:
    from .run.engine import run_runbook

    result = run_runbook(args.runbook, files=args.file or [],
                         overrides=[tuple(p) for p in args.param or []], approve=args.approve,
                         approve_plan=args.approve_plan,
                         operator=args.operator, cloud=args.cloud, timeout=args.timeout,
                         progress=not args.no_progress)
    msg = f"run {result.run_id}: {result.status} (exit {result.exit_code}); archived in {result.run_dir}"
    print(msg, file=sys.stderr)
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    if result.head:  # the last line: the chain head, to be kept outside the archive
        print(f"archive head {result.head}  (check: fedcloud runs verify --head {result.head})",
              file=sys.stderr)
    return result.exit_code


# ------------------------------------------------------------------ runs
def _entry_row(e) -> dict[str, Any]:
    return {"run_id": e.run_id, "runbook": e.runbook, "status": e.status,
            "started": e.started[:19].replace("T", " "), "duration": e.duration,
            "operator": e.operator, "ticket": e.ticket, "cloud": e.cloud}


def _sweep(archive) -> None:
    from .archive.abandoned import sweep_abandoned
    from .config import settings
    from .scrub import Scrubber, collect_secrets

    scrub = Scrubber(collect_secrets(secrets_dir=settings().secrets_dir))
    for run_id in sweep_abandoned(archive, scrub):
        print(f"note: run {run_id} was left unfinished by a dead process; archived as abandoned",
              file=sys.stderr)


def cmd_runs_list(args) -> int:
    from .archive.index import Archive

    arch = Archive()
    _sweep(arch)
    entries = arch.list(runbook=args.runbook, ticket=args.ticket, status=args.status,
                        operator=args.operator, cloud=args.cloud, since=args.since,
                        resource=args.resource)
    rows = [_entry_row(e) for e in entries]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        from .archive.display import human_duration

        for r in rows:
            r["duration"] = human_duration(r["duration"])
        print(_table(rows, ["run_id", "runbook", "status", "started", "duration", "operator",
                            "ticket", "cloud"]))
    return 0


def _when(stamp: str | None) -> str:
    """An archived ISO time as read by people: to the second, UTC named."""
    if not stamp:
        return "-"
    return stamp[:19].replace("T", " ") + (" UTC" if stamp.endswith("+00:00") else "")


def cmd_runs_show(args) -> int:
    import yaml

    from .archive.display import human_duration, result_lines
    from .archive.index import Archive

    arch = Archive()
    e = arch.find(args.run_id)
    applied_by = [a.run_id for a in arch.applied_by(e.run_id)]
    params_path = e.path / "parameters.yaml"
    params = yaml.safe_load(params_path.read_text()) if params_path.exists() else {}
    if args.json:  # everything, unformatted: seconds as numbers, results whole
        print(json.dumps({**_entry_row(e), "started": e.started, "seq": e.seq, "host": e.host,
                          "error": e.error, "exit_code": e.exit_code,
                          "ended": e.ended, "parameters": params, "results": e.results,
                          "plan_of": e.plan_of, "plan_applied_by": applied_by,
                          "path": str(e.path), "files": sorted(e.manifest),
                          "manifest": e.manifest, "manifest_hash": e.manifest_hash,
                          "prev_hash": e.prev_hash, "entry_hash": e.entry_hash},
                         indent=2, default=str))
        return 0
    print(f"run       {e.run_id}  (#{e.seq})")
    print(f"runbook   {e.runbook}")
    print(f"status    {e.status} (exit {e.exit_code})" + (f": {e.error}" if e.error else ""))
    print(f"when      {_when(e.started)} .. {_when(e.ended)} ({human_duration(e.duration)})")
    print(f"who       {e.operator} on {e.host}; cloud {e.cloud or '-'}; ticket {e.ticket or '-'}")
    if e.plan_of:
        print(f"plan      applies the plan recorded by dry run {e.plan_of}")
    if applied_by:
        print(f"plan      applied by run(s) {', '.join(applied_by)}")
    print("parameters:")
    for k, v in (params or {}).items():
        print(f"  {k}: {v!r}")
    print("results:" if e.results else "results:  (none recorded)")
    for k, v in e.results.items():
        print("\n".join(result_lines(k, v)))
    print(f"files     {e.path}/")
    for name in sorted(e.manifest):
        print(f"  {name}")
    return 0


def cmd_runs_verify(args) -> int:
    from .archive.index import Archive, parse_head
    from .errors import ParameterError

    head = None
    if args.head:
        try:
            head = parse_head(args.head)
        except ValueError as e:
            raise ParameterError(f"--head: {e}") from e
    arch = Archive()
    _sweep(arch)
    problems = arch.verify(head=head)
    n = len(arch.list())
    if not problems:
        now = arch.head()
        witnessed = [f"head #{head[0]} witnessed" if head else "",
                     f"head log {arch.head_log} checked" if arch.head_log and
                     arch.head_log.exists() else ""]
        print(f"archive {arch.root}: {n} run(s) verified, chain intact"
              + "".join(f"; {w}" for w in witnessed if w)
              + (f"; head now {now[0]}:{now[1]}" if now else ""))
        return 0
    for p in problems:
        print(f"PROBLEM {p}")
    print(f"archive {arch.root}: {len(problems)} problem(s) in {n} indexed run(s)")
    return 1


def cmd_runs_reindex(args) -> int:
    from .archive.index import Archive

    arch = Archive()
    _sweep(arch)
    n, problems = arch.reindex()
    for p in problems:
        print(f"could not verify: {p}")
    print(f"index rebuilt from {arch.root}: {n} run(s); {len(problems)} could not be verified")
    return 1 if problems else 0


# ------------------------------------------------------------------ parser
def _wanted_plugins(argv: list[str] | None) -> list[str]:
    args = sys.argv[1:] if argv is None else argv
    words = [a for a in args if not a.startswith("-")]
    if not words and "--version" in args:
        return []
    if words and words[0] in CORE_COMMANDS:
        return []
    if words and words[0] in PLUGINS:
        return [PLUGINS[words[0]]]
    return list(PLUGINS.values())  # help, or an unknown command: show everything


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fedcloud", description=__doc__.split("\n")[0])
    ap.add_argument("--version", action="version", version=f"fedcloud {_version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("runbooks", help="list the runbooks with their purpose")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runbooks)

    p = sub.add_parser("describe", help="show a runbook's parameters")
    p.add_argument("runbook")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("run", help="run a runbook headless and archive it")
    p.add_argument("runbook")
    p.add_argument("-f", "--file", action="append", metavar="PARAMS.yaml",
                   help="YAML parameter file (repeatable, merged in order)")
    p.add_argument("-p", "--param", action="append", nargs=2, metavar=("NAME", "VALUE"),
                   help="set one parameter (after the files)")
    p.add_argument("--approve", action="store_true", help="apply the plan (default: dry run)")
    p.add_argument("--approve-plan", metavar="RUN_ID",
                   help="apply exactly the plan recorded by that dry run, with its parameters "
                        "(refused if the archive does not verify or the facts changed)")
    p.add_argument("--cloud", help="clouds.yaml entry to use (sets OS_CLOUD for the run)")
    p.add_argument("--operator", help="who runs this (default: $FEDCLOUD_OPERATOR or $USER)")
    p.add_argument("--timeout", type=float, help="per-cell timeout in seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="the archive of runs").add_subparsers(
        dest="runs_command", required=True, metavar="SUBCOMMAND")
    p = runs.add_parser("list", help="list archived runs")
    for opt in ("runbook", "ticket", "status", "operator", "cloud", "resource"):
        p.add_argument(f"--{opt}")
    p.add_argument("--since", help="date or time (ISO 8601), e.g. 2026-11-01")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs_list)
    p = runs.add_parser("show", help="show one run")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs_show)
    p = runs.add_parser("verify", help="prove the archive was not edited, removed or reordered")
    p.add_argument("--head", metavar="SEQ:HASH",
                   help="a chain head kept outside the archive (printed by `fedcloud run`): "
                        "the archive must still hold it (catches removed newest runs)")
    p.set_defaults(func=cmd_runs_verify)
    p = runs.add_parser("reindex", help="rebuild the index from the run folders")
    p.set_defaults(func=cmd_runs_reindex)

    for mod in _wanted_plugins(argv):
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and mod.startswith(e.name):
                continue  # that part of the product is not installed
            raise
        module.register(sub)
    return ap


def _version() -> str:
    from . import __version__

    return __version__


def _skip_iri_grammars() -> None:
    """jsonschema (which nbformat imports) loads the rfc3987-syntax package for its optional
    "iri" format checker, and that compiles some 40 lark grammars at import: seconds on every
    `fedcloud run`, for a format no schema of ours (nor nbformat's) uses.  The command does
    without it (jsonschema skips the checker when the import fails)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    _skip_iri_grammars()
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FedcloudError as e:
        print(f"fedcloud: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("fedcloud: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
