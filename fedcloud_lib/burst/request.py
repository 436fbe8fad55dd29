"""mass-rebuild-burst, step 1: the request — parameters and files checked against the
site policy before any cloud call.

:func:`prepare` is what the runbook calls.  It reads the package list (one package a line,
or a CSV with historical build durations), the skip list, checks the builder profile
against the policy's ``burst`` section and classes, the command template's placeholders,
the durations (per-build timeout, builder lifetime, deadline) and the ssh key, and returns
a frozen :class:`BurstRequest`.  Every problem is reported at once
(:class:`~fedcloud_lib.errors.ParameterError` for malformed input,
:class:`~fedcloud_lib.errors.PolicyError` for what the site policy does not allow); a skip
list naming packages that are not in the list is only a warning.  Values from files are
hostile: messages show at most a short prefix of a value and its length.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import CHECKOUT
from ..errors import ParameterError, PolicyError
from ..shown import shown
from ..site.policy import InstanceClass, Policy

__all__ = ["PLACEHOLDERS", "Package", "SshSettings", "BurstRequest", "parse_duration",
           "read_package_list", "read_skip_list", "check_template", "prepare",
           "resolve_file", "iso", "MAX_PACKAGES"]

PLACEHOLDERS = ("package", "builder", "workdir")
PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
TICKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
MAX_PACKAGES = 100_000
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_CSV_DURATION_COLUMNS = ("duration_s", "duration", "seconds", "build_s")


def iso(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(value: Any, parameter: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``5h``, ``1d``, ``1h30m`` (a number is seconds)."""
    if isinstance(value, bool):
        raise ParameterError(f"{parameter}: {shown(value)} is not a duration (e.g. 90s, 30m, 5h)",
                             parameter=parameter)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not text or "".join(n + u for n, u in parts) != text:
                raise ParameterError(f"{parameter}: {shown(value)} is not a duration "
                                     f"(a number of seconds, or e.g. 90s, 30m, 5h, 1h30m)",
                                     parameter=parameter) from None
            seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if seconds <= 0:
        raise ParameterError(f"{parameter}: {shown(value)} must be longer than 0 s",
                             parameter=parameter)
    return seconds


def resolve_file(value: str, parameter: str) -> Path:
    """A file named by a parameter: absolute, or relative to the working directory, or to
    the checkout (a runbook's kernel runs in ``runbooks/``)."""
    if not str(value).strip():
        raise ParameterError(f"{parameter}: a file is required", parameter=parameter)
    p = Path(str(value)).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, CHECKOUT / p]
    for c in candidates:
        if c.is_file():
            return c
    raise ParameterError(f"{parameter}: file {shown(value)} does not exist (relative paths "
                         f"are taken from the working directory or the checkout)",
                         parameter=parameter)


@dataclass(frozen=True)
class Package:
    """One package to rebuild and how long its build is expected to take."""

    name: str
    expected_s: float
    source: str  # history | default

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "expected_s": self.expected_s, "source": self.source}


def _check_names(names: list[tuple[int, str]], parameter: str, problems: list[str]) -> None:
    bad = [(line, n) for line, n in names if not PACKAGE_NAME.fullmatch(n)]
    for line, n in bad[:5]:
        problems.append(f"{parameter}: line {line}: {shown(n)} is not a package name (letters, "
                        f"digits and . _ + -, starting with a letter or digit, at most 200)")
    if len(bad) > 5:
        problems.append(f"{parameter}: and {len(bad) - 5} more lines that are not package names")


def _duplicates(names: list[tuple[int, str]], parameter: str, problems: list[str]) -> None:
    seen: dict[str, int] = {}
    dups = []
    for line, n in names:
        if n in seen:
            dups.append(f"{shown(n)} (lines {seen[n]} and {line})")
        else:
            seen[n] = line
    if dups:
        problems.append(f"{parameter}: duplicate package{'s' if len(dups) > 1 else ''}: "
                        + ", ".join(dups[:10]) + (f" and {len(dups) - 10} more" if len(dups) > 10 else ""))


def _is_csv(path: Path, text: str) -> bool:
    if path.suffix.lower() == ".csv":
        return True
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    return "," in first and "package" in first.lower()


def read_package_list(path: Path, default_s: float, parameter: str = "packages"
                      ) -> tuple[list[Package], list[str]]:
    """The packages of a list file and the problems found (empty when it is good).

    A plain file holds one package a line (``#`` comments and blank lines ignored); a CSV
    (``.csv``, or a header naming ``package``) has a ``package`` column and optionally a
    duration column (``duration_s``, ``duration``, ``seconds`` or ``build_s``: seconds or
    ``1h30m``) with the package's historical build time.  Packages without one are
    expected to take ``default_s``.
    """
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{parameter}: cannot read {path}: {exc}", parameter=parameter) from exc
    rows: list[tuple[int, str, float | None]] = []
    if _is_csv(path, text):
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "package" not in fields:
            raise ParameterError(f"{parameter}: {path} is a CSV without a 'package' column "
                                 f"(columns: {shown(', '.join(fields))})", parameter=parameter)
        dcol = next((c for c in _CSV_DURATION_COLUMNS if c in fields), None)
        for i, raw in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()
                   if isinstance(v, str)}
            name = row.get("package", "")
            if not name:
                continue
            seconds = None
            if dcol and row.get(dcol):
                try:
                    seconds = parse_duration(row[dcol], f"{parameter}: line {i}: {dcol}")
                except ParameterError as exc:
                    problems.append(exc.message)
            rows.append((i, name, seconds))
    else:
        for i, line in enumerate(text.splitlines(), start=1):
            name = line.split("#", 1)[0].strip()
            if name:
                rows.append((i, name, None))
    if len(rows) > MAX_PACKAGES:
        raise ParameterError(f"{parameter}: {path} lists {len(rows)} packages; at most "
                             f"{MAX_PACKAGES} per burst", parameter=parameter)
    named = [(line, n) for line, n, _ in rows]
    _check_names(named, parameter, problems)
    _duplicates(named, parameter, problems)
    if not rows and not problems:
        problems.append(f"{parameter}: {path} lists no package")
    pkgs = [Package(n, float(s) if s is not None else float(default_s),
                    "history" if s is not None else "default") for _, n, s in rows]
    return pkgs, problems


def read_skip_list(path: Path, parameter: str = "skip_list") -> tuple[list[str], list[str]]:
    """Package names to skip (one a line, ``#`` comments), and the problems found."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{parameter}: cannot read {path}: {exc}", parameter=parameter) from exc
    named = [(i, ln.split("#", 1)[0].strip()) for i, ln in enumerate(text.splitlines(), 1)]
    named = [(i, n) for i, n in named if n]
    problems: list[str] = []
    _check_names(named, parameter, problems)
    return [n for _, n in named], problems


def check_template(template: str, parameter: str = "command") -> list[str]:
    """Problems of a build command template (empty when it is good): only the placeholders
    {package}, {builder} and {workdir}, plain (no format spec), and {package} used."""
    if not template.strip():
        return [f"{parameter}: a build command is required (placeholders "
                f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)})"]
    problems = []
    used = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"{parameter}: {shown(template)} is not a valid template: {exc} (write a "
                f"literal brace as {{{{ or }}}})"]
    for _, fname, spec, conv in parsed:
        if fname is None:
            continue
        if fname not in PLACEHOLDERS:
            problems.append(f"{parameter}: unknown placeholder {{{shown(fname, 20)[1:-1]}}}; "
                            f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        elif spec or conv:
            problems.append(f"{parameter}: placeholder {{{fname}}} takes no format or "
                            f"conversion")
        used.add(fname)
    if "package" not in used and not problems:
        problems.append(f"{parameter}: the command must name the package ({{package}})")
    return problems


@dataclass(frozen=True)
class SshSettings:
    """How the ssh executor reaches builders (the private key stays a path)."""

    user: str
    key_file: str
    public_key: str
    port: int = 22
    address_map: tuple[tuple[str, str], ...] = ()
    known_hosts: str = ""
    connect_timeout_s: float = 30.0

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "key_file": self.key_file, "port": self.port,
                "address_map": dict(self.address_map), "known_hosts": self.known_hosts,
                "connect_timeout_s": self.connect_timeout_s}


@dataclass(frozen=True)
class BurstRequest:
    """A policy-checked burst request (no cloud facts yet)."""

    ticket: str
    packages: tuple[Package, ...]
    skipped: tuple[str, ...]
    profile: InstanceClass
    flavor: str
    image: str
    max_builders: int | None  # None: auto
    command: str
    build_timeout_s: float
    builder_lifetime_s: float
    deadline: dt.datetime | None
    planned_at: dt.datetime
    workdir: str
    boot_method: str
    ssh: SshSettings
    warnings: tuple[str, ...] = field(default=())

    @property
    def burst_id(self) -> str:
        """What ties the runs of one burst together (the tracking ticket)."""
        return self.ticket

    def as_dict(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "packages": len(self.packages),
                "with_history": sum(p.source == "history" for p in self.packages),
                "skipped": list(self.skipped), "profile": self.profile.name,
                "flavor": self.flavor, "image": self.image,
                "max_builders": self.max_builders if self.max_builders is not None else "auto",
                "command": self.command, "build_timeout_s": self.build_timeout_s,
                "builder_lifetime_s": self.builder_lifetime_s, "deadline": iso(self.deadline),
                "workdir": self.workdir, "boot_method": self.boot_method,
                "ssh": self.ssh.to_dict(), "warnings": list(self.warnings)}


def _public_key(key_file: str, problems: list[str]) -> str:
    import asyncssh

    p = Path(key_file).expanduser()
    try:
        key = asyncssh.read_private_key(str(p))
    except (OSError, ValueError, asyncssh.KeyImportError) as exc:
        problems.append(f"ssh_key: {shown(key_file)} is not a readable private key without a "
                        f"passphrase ({type(exc).__name__})")
        return ""
    return key.export_public_key("openssh").decode().strip()


def _address_map(value: Any, problems: list[str]) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        problems.append("ssh_address_map: must be a mapping of builder name (or glob) to host[:port]")
        return ()
    out = []
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str) or not re.fullmatch(
                r"[A-Za-z0-9.:\[\]_-]+", v):
            problems.append(f"ssh_address_map: {shown(k)} -> {shown(v)} is not name -> host[:port]")
            continue
        out.append((k, v))
    return tuple(out)


def prepare(policy: Policy, *, ticket: str, packages: str, skip_list: str = "",
            skip: list[str] | tuple[str, ...] = (), profile: str = "builder", flavor: str = "",
            image: str = "", max_builders: str | int = "auto", command: str = "",
            build_timeout: str = "5h", builder_lifetime: str = "24h", deadline: str = "",
            default_duration: str = "", workdir: str = "/var/tmp/burst",
            boot_method: str = "auto", ssh_user: str = "root", ssh_key: str = "",
            ssh_port: int = 22, ssh_address_map: dict | None = None, known_hosts: str = "",
            now: dt.datetime | None = None) -> BurstRequest:
    """Check every parameter of a burst; no cloud call.  Raises ParameterError (malformed)
    or PolicyError (the site policy says no), each listing every problem.

    ``now`` is when the plan counts from (:func:`fedcloud_lib.planning_time`).
    """
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(microsecond=0)
    bp = policy.burst
    problems: list[str] = []
    policy_problems: list[str] = []
    warnings: list[str] = []

    ticket = str(ticket or "").strip()
    if not TICKET.fullmatch(ticket):
        problems.append(f"ticket: {shown(ticket)} is not a ticket id (letters, digits, . _ -; "
                        f"at most 63): the burst is known by its tracking ticket")

    # the builder profile: a class of the policy that bursts may use
    klass = policy.classes.get(profile)
    if profile not in bp.profiles or klass is None:
        raise PolicyError(f"profile: {shown(profile)} is not a builder profile of the site "
                          f"policy; allowed: {', '.join(bp.profiles)}", parameter="profile")
    flavor, image, not_allowed = klass.flavor_and_image(flavor, image, what="profile")
    policy_problems += not_allowed

    # builder count
    n_builders: int | None = None
    mb = str(max_builders).strip().lower()
    if mb != "auto":
        if not mb.isdigit() or int(mb) < 1:
            problems.append(f"max_builders: {shown(max_builders)} must be a number of builders "
                            f"(1 or more) or 'auto'")
        else:
            n_builders = int(mb)
            if n_builders > bp.max_builders:
                policy_problems.append(f"max_builders: {n_builders} is above the policy's "
                                       f"burst ceiling of {bp.max_builders} builders")

    # durations
    durations: dict[str, float] = {}
    for pname, value in (("build_timeout", build_timeout), ("builder_lifetime", builder_lifetime)):
        try:
            durations[pname] = parse_duration(value, pname)
        except ParameterError as exc:
            problems.append(exc.message)
    default_s = float(bp.default_build_s)
    if str(default_duration or "").strip():
        try:
            default_s = parse_duration(default_duration, "default_duration")
        except ParameterError as exc:
            problems.append(exc.message)
    max_life_s = float(min(klass.max_lifetime_h or 24, 24) * 3600)
    life = durations.get("builder_lifetime")
    if life is not None and life > max_life_s:
        policy_problems.append(f"builder_lifetime: {shown(builder_lifetime)} is beyond the "
                               f"{klass.name} lifetime ({max_life_s / 3600:g} h)")
    tmo = durations.get("build_timeout")
    if tmo is not None and tmo > bp.max_build_timeout_h * 3600:
        policy_problems.append(f"build_timeout: {shown(build_timeout)} is above the policy's "
                               f"ceiling ({bp.max_build_timeout_h:g} h)")
    if tmo is not None and life is not None and tmo >= life:
        problems.append(f"build_timeout: {shown(build_timeout)} must be shorter than "
                        f"builder_lifetime ({shown(builder_lifetime)}): a build must fit in "
                        f"a builder's life")
    deadline_at = None
    if str(deadline or "").strip():
        text = str(deadline).strip()
        try:
            deadline_at = now + dt.timedelta(seconds=parse_duration(text, "deadline"))
        except ParameterError:
            try:
                deadline_at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                if deadline_at.tzinfo is None:
                    deadline_at = deadline_at.replace(tzinfo=dt.timezone.utc)
                deadline_at = deadline_at.astimezone(dt.timezone.utc)
            except ValueError:
                problems.append(f"deadline: {shown(deadline)} is neither a duration (48h) nor an "
                                f"ISO date-time")
        if deadline_at is not None and deadline_at <= now:
            problems.append(f"deadline: {shown(deadline)} is in the past")
            deadline_at = None

    problems += check_template(command or "")
    if boot_method not in ("auto", "multi", "pool"):
        problems.append(f"boot_method: {shown(boot_method)}; allowed: auto, multi, pool")
    if not str(workdir).startswith("/") or not re.fullmatch(r"[A-Za-z0-9/._-]+", str(workdir)):
        problems.append(f"workdir: {shown(workdir)} must be an absolute path of letters, "
                        f"digits and / . _ -")

    # ssh
    addr = _address_map(ssh_address_map or {}, problems)
    pub = ""
    if not str(ssh_key or "").strip():
        problems.append("ssh_key: the private key the builders accept is required")
    else:
        pub = _public_key(str(ssh_key), problems)
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", str(ssh_user or "")):
        problems.append(f"ssh_user: {shown(ssh_user)} is not a user name")
    if known_hosts and not Path(known_hosts).expanduser().is_file():
        problems.append(f"known_hosts: {shown(known_hosts)} does not exist")

    # the package list and the skip list
    pkgs: list[Package] = []
    skipped: list[str] = []
    if not str(packages or "").strip():
        problems.append("packages: a package list file is required")
    else:
        try:
            pkgs, more = read_package_list(resolve_file(packages, "packages"), default_s)
            problems += more
        except ParameterError as exc:
            problems.append(exc.message)
    skip_names = [str(s).strip() for s in skip or () if str(s).strip()]
    if str(skip_list or "").strip():
        try:
            names, more = read_skip_list(resolve_file(skip_list, "skip_list"))
            skip_names += names
            problems += more
        except ParameterError as exc:
            problems.append(exc.message)
    if skip_names and pkgs:
        listed = {p.name for p in pkgs}
        unknown = sorted(set(skip_names) - listed)
        if unknown:
            warnings.append(f"skip list: {len(unknown)} package(s) not in the package list: "
                            + ", ".join(shown(n, 30) for n in unknown[:10])
                            + (" ..." if len(unknown) > 10 else ""))
        skip_set = set(skip_names)
        skipped = [p.name for p in pkgs if p.name in skip_set]
        pkgs = [p for p in pkgs if p.name not in skip_set]
        if not pkgs and not problems:
            problems.append("packages: every package of the list is on the skip list")
    if problems:
        raise ParameterError("the burst request is not valid:\n  " + "\n  ".join(problems),
                             problems=problems)
    if policy_problems:
        raise PolicyError("the burst request breaks the site policy:\n  "
                          + "\n  ".join(policy_problems), problems=policy_problems)
    return BurstRequest(
        ticket=ticket, packages=tuple(pkgs), skipped=tuple(skipped), profile=klass,
        flavor=flavor, image=image, max_builders=n_builders, command=command,
        build_timeout_s=durations["build_timeout"], builder_lifetime_s=durations["builder_lifetime"],
        deadline=deadline_at, planned_at=now, workdir=str(workdir).rstrip("/") or "/",
        boot_method=boot_method,
        ssh=SshSettings(user=ssh_user, key_file=str(Path(ssh_key).expanduser()), public_key=pub,
                        port=int(ssh_port), address_map=addr, known_hosts=known_hosts),
        warnings=tuple(warnings))
