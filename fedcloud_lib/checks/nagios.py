"""The Nagios plugin API, with the ``nagiosplugin`` library: thresholds, one status line
with performance data, exit 0 OK / 1 WARNING / 2 CRITICAL / 3 UNKNOWN.

A check is a :class:`Probe` (a ``nagiosplugin.Resource`` that yields metrics and says in
words what it saw); :func:`run` evaluates it against the thresholds and returns the exit
code and the text.  Nothing here prints a traceback: bad input, an unreachable API, a
timeout or an unexpected error is one readable UNKNOWN (or CRITICAL) line.
"""
from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nagiosplugin
from keystoneauth1 import exceptions as ksa_exc
from nagiosplugin.output import Output
from nagiosplugin.platform import with_timeout

from ..cloud import connect
from ..errors import FedcloudError

__all__ = ["OK", "WARNING", "CRITICAL", "UNKNOWN", "BadInput", "CloudUnreachable", "Thresholds",
           "Probe", "api_unreachable", "parse_thresholds", "readable", "cloud_for", "run", "guarded",
           "status_line"]

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
_STATES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


class BadInput(Exception):
    """A check was asked for wrongly (unknown check, thresholds): UNKNOWN, exit 3."""


@dataclass(frozen=True)
class Thresholds:
    """``warning`` and ``critical`` upper bounds (None: not checked)."""

    warning: float | None
    critical: float | None

    def ranges(self) -> tuple[str | None, str | None]:
        """As Nagios ranges (``N``: alert above N)."""
        return tuple(None if v is None else f"{v:g}" for v in (self.warning, self.critical))


def _number(text: str | None, option: str, upper: float | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadInput(f"{option} {str(text)[:20]!r} is not a number") from None
    if math.isnan(value) or value < 0:
        raise BadInput(f"{option} {str(text)[:20]} is negative; give a value >= 0")
    if upper is not None and value > upper:
        raise BadInput(f"{option} {value:g} is above {upper:g}")
    return value


def parse_thresholds(warning: str | None, critical: str | None,
                     defaults: tuple[float | None, float | None],
                     upper: float | None = None) -> Thresholds:
    """Thresholds from the command line (defaults for the ones not given); refuses a
    value that is not a number, a negative one, one above ``upper``, and a warning above
    the critical threshold."""
    w = _number(warning, "--warning", upper)
    c = _number(critical, "--critical", upper)
    w = defaults[0] if warning in (None, "") else w
    c = defaults[1] if critical in (None, "") else c
    if w is not None and c is not None and w > c:
        raise BadInput(f"thresholds in the wrong order: --warning {w:g} is above "
                       f"--critical {c:g} (a warning comes before the critical state)")
    return Thresholds(w, c)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def readable(exc: BaseException) -> str:
    """One short line saying why a cloud call failed (no object reprs, no traceback)."""
    chain, e = [], exc
    while e is not None and len(chain) < 12:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, ksa_exc.ConnectFailure):
            url = re.search(r"connection to (\S+?):? ", str(e))
            why = _ERRNO.search(str(e))
            return (f"cannot connect to {url.group(1) if url else 'the API'}: "
                    f"{why.group(1).strip() if why else 'connection failed'}")
        if isinstance(e, ksa_exc.ConnectTimeout):
            return "the API did not answer in time (connect timeout)"
        if isinstance(e, ksa_exc.Unauthorized):
            return "the cloud refused the credentials (HTTP 401)"
    text = " ".join(str(exc).split())
    return text if len(text) <= 240 else text[:237] + "..."


def api_unreachable(exc: BaseException) -> bool:
    """Whether a failed call means the API itself is down: no connection, no answer in
    time, or a gateway saying its backend is gone (HTTP 502/503/504)."""
    e, seen = exc, 0
    while e is not None and seen < 12:
        if isinstance(e, (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout)):
            return True
        if getattr(e, "status_code", None) in (502, 503, 504) or \
                getattr(e, "http_status", None) in (502, 503, 504):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


class CloudUnreachable(Exception):
    """The cloud API could not be reached (or is not configured: ``config``)."""

    def __init__(self, message: str, config: bool = False) -> None:
        super().__init__(message)
        self.config = config


def cloud_for(name: str | None) -> Any:
    """A connection for a check (authorized at once, so an unreachable API is caught
    here); :class:`CloudUnreachable` names why."""
    # keystoneauth logs its failed version discovery on stderr; the status line says it
    logging.getLogger("keystoneauth").setLevel(logging.CRITICAL)
    try:
        return connect(name or None, authorize=True)
    except FedcloudError as exc:
        raise CloudUnreachable(readable(exc), config=exc.exit_code == 2) from exc


class Probe(nagiosplugin.Resource):
    """A check's measurement.  Subclasses set ``name`` and implement :meth:`measure`,
    returning the metrics and setting ``self.text`` (what was seen, in words)."""

    name = "check"
    #: the metric the thresholds apply to
    metric = "value"
    #: upper bound of a threshold (100 for percentages), None for counts
    upper: float | None = None
    #: (warning, critical) when not given
    defaults: tuple[float | None, float | None] = (None, 0)
    #: an unreachable API is CRITICAL for a check of the services, else UNKNOWN
    api_down_state = UNKNOWN

    def __init__(self) -> None:
        self.text = ""

    def measure(self) -> list[nagiosplugin.Metric]:  # pragma: no cover - abstract
        raise NotImplementedError

    def probe(self) -> list[nagiosplugin.Metric]:
        return self.measure()


class _Summary(nagiosplugin.Summary):
    def __init__(self, probe: Probe) -> None:
        self.p = probe

    def ok(self, results: Any) -> str:
        return self.p.text

    def problem(self, results: Any) -> str:
        worst = results.most_significant_state
        if worst == nagiosplugin.state.Unknown:
            first = results.most_significant[0]
            return str(first.hint or first)
        return self.p.text


def status_line(name: str, code: int, text: str, perf: str = "") -> str:
    """A status line in the plugin API's form, for the cases nagiosplugin does not reach."""
    text = " ".join(text.replace("|", "/").split())
    return f"FEDCLOUD {name.upper()} {_STATES[code]} - {text}" + (f" | {perf}" if perf else "")


def run(probe: Probe, thresholds: Thresholds, *, timeout: float = 30) -> tuple[int, str]:
    """Evaluate ``probe`` against ``thresholds``: (exit code, output text)."""
    warning, critical = thresholds.ranges()
    check = nagiosplugin.Check(
        probe, nagiosplugin.ScalarContext(probe.metric, warning, critical),
        nagiosplugin.ScalarContext("info"), _Summary(probe))
    check.name = f"fedcloud {probe.name}"
    try:
        if timeout and timeout > 0:
            with_timeout(max(1, int(math.ceil(timeout))), check)
        else:
            check()
    except CloudUnreachable as exc:
        code = UNKNOWN if exc.config else probe.api_down_state
        what = "cloud not configured" if exc.config else "cloud API unreachable"
        return code, status_line(probe.name, code, f"{what}: {exc}") + "\n"
    except nagiosplugin.Timeout:
        return UNKNOWN, status_line(probe.name, UNKNOWN, f"no answer within {timeout:g} s "
                                                         f"(--timeout)") + "\n"
    except FedcloudError as exc:
        return UNKNOWN, status_line(probe.name, UNKNOWN, readable(exc)) + "\n"
    except Exception as exc:  # noqa: BLE001 - a plugin never shows a traceback
        return UNKNOWN, status_line(probe.name, UNKNOWN,
                                    f"{type(exc).__name__}: {readable(exc)}") + "\n"
    chan = logging.StreamHandler(io.StringIO())
    out = Output(chan)
    out.add(check)
    return check.exitcode, str(out)


def guarded(fn: Callable[[], tuple[int, str]], name: str) -> tuple[int, str]:
    """``fn()``, with bad input as one UNKNOWN line."""
    try:
        return fn()
    except BadInput as exc:
        return UNKNOWN, status_line(name, UNKNOWN, str(exc)) + "\n"
