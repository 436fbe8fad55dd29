"""Builders left behind, found by their metadata, and deleted.

Every builder a burst makes carries ``fedcloud_role=burst-builder``, its burst
(``fedcloud_burst``, the tracking ticket), the run that made it (``fedcloud_run_id``) and
an expiry (``fedcloud_expires_at``, at most 24 h after its creation).  A builder is left
behind when the run that made it could not delete it (the machine died, the kernel and
its watchdog were killed).  :func:`leftovers` says which builders of a project may go:

* those of the same burst (one run of a burst at a time: the engine's lock);
* those whose run is finished according to the archive (any status but running);
* those past their expiry, whoever made them.

Builders of a run the archive does not know (another operator's machine) that are not
expired are left alone and reported.  The next run's plan deletes the leftovers,
the watchdog (:mod:`.watchdog`) deletes a dead run's builders at once, and
``fedcloud burst sweep`` does it by hand.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..archive.index import Archive
from ..cloud import CLOUD_ERRORS, GONE, call
from ..errors import ArchiveError
from .connections import ThreadConnections
from .results import RUNBOOK

__all__ = ["PREFIX", "META", "ROLE", "Leftover", "burst_builders", "leftovers",
           "run_builders", "delete_servers", "finished_runs"]

PREFIX = "fedcloud_"
META = {k: PREFIX + k for k in ("ticket", "burst", "role", "run_id", "operator", "class",
                                "created_at", "expires_at")}
ROLE = "burst-builder"


@dataclass(frozen=True)
class Leftover:
    """A builder an earlier run left, and why it may be deleted (empty: it may not)."""

    id: str
    name: str
    status: str
    burst: str
    run_id: str
    expires_at: str
    reason: str
    vcpus: int = 0
    ram_mb: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def burst_builders(conn: Any) -> list[Any]:
    """Every burst builder of the connection's project that is not deleted."""
    return call(lambda: [s for s in conn.compute.servers(details=True)
                         if (s.metadata or {}).get(META["role"]) == ROLE and s.status not in GONE],
                "list the burst builders")


def run_builders(conn: Any, run_id: str) -> list[Any]:
    """The builders one run made."""
    return [s for s in burst_builders(conn) if (s.metadata or {}).get(META["run_id"]) == run_id]


def finished_runs(archive: Archive | None = None) -> dict[str, str]:
    """run id -> status of every archived burst run that is over."""
    archive = archive or Archive()
    try:
        return {e.run_id: e.status for e in archive.list(runbook=RUNBOOK) if e.status != "running"}
    except sqlite3.Error as exc:
        raise ArchiveError(f"cannot read the archive index {archive.db_path}: {exc}") from exc


def _expired(value: str, now: dt.datetime) -> bool:
    try:
        at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return False
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return at <= now


def leftovers(servers: Iterable[Any], *, burst: str | None, finished: dict[str, str],
              now: dt.datetime, current_run: str | None = None) -> list[Leftover]:
    """Classify burst builders: each with the reason it may be deleted, or '' to keep it."""
    out = []
    for s in servers:
        m = s.metadata or {}
        run, b, exp = m.get(META["run_id"], ""), m.get(META["burst"], ""), m.get(META["expires_at"], "")
        if current_run and run == current_run:
            continue
        if burst is not None and b == burst:
            reason = f"left by run {run or '?'} of this burst"
        elif run in finished:
            reason = f"run {run} is over ({finished[run]})"
        elif _expired(exp, now):
            reason = f"expired at {exp}"
        else:
            reason = ""
        flavor = s.flavor if isinstance(s.flavor, dict) else {}
        out.append(Leftover(id=s.id, name=s.name, status=s.status, burst=b, run_id=run,
                            expires_at=exp, reason=reason, vcpus=int(flavor.get("vcpus") or 0),
                            ram_mb=int(flavor.get("ram") or 0)))
    return out


def delete_servers(conns: ThreadConnections, ids: Iterable[str], *, wait: float = 300,
                   workers: int = 8) -> list[str]:
    """Delete servers by id (the calls in parallel, then the SDK's waits until each is
    gone).  Returns the problems (empty when every one is gone)."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return []
    problems: list[str] = []

    def delete(sid: str) -> Any:
        try:
            conn = conns.get()
            server = conn.compute.find_server(sid, ignore_missing=True)
            if server is not None:
                conn.compute.delete_server(server, ignore_missing=True)
            return server
        except CLOUD_ERRORS as exc:
            problems.append(f"server {sid}: {exc}")
            return None

    def gone(server: Any) -> None:
        try:
            conns.get().compute.wait_for_delete(server, wait=wait, interval=2)
        except CLOUD_ERRORS as exc:
            problems.append(f"server {server.id}: {exc}")

    with ThreadPoolExecutor(max(1, min(workers, len(ids))), thread_name_prefix="burst-delete") as ex:
        servers = [s for s in ex.map(delete, ids) if s is not None]
        list(ex.map(gone, servers))
    return problems
