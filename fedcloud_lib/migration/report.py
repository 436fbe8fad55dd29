"""migrate-instances, step 5: the report — each server's final state, what moved, how it
was verified; and the run's verdict.

:func:`servers_table` is what the runbook records; :func:`check` ends the run as failed
(exit 1) when a server had to be rolled back, naming it and why, after the other servers
were migrated.
"""
from __future__ import annotations

from typing import Any

from ..errors import CheckFailed
from .apply import MigrationOutcome

__all__ = ["servers_table", "summary", "check"]

COLUMNS = ["server", "state", "source_id", "target_id", "MiB_moved", "sha256", "checks",
           "notes"]


def _rows(outcome: MigrationOutcome) -> list[dict[str, Any]]:
    rows = []
    for s in outcome.servers:
        v = s.verification
        rows.append({
            "server": s.name, "state": s.state, "source_id": s.source_id,
            "target_id": s.target_id or "",
            "MiB_moved": round(sum(t.size for t in s.transfers) / 2**20, 1),
            "sha256": ", ".join(t.sha256[:12] for t in s.transfers),
            "checks": v.summary() if v is not None else "",
            "notes": "; ".join(s.notes + (["source deleted"] if s.source_deleted else [])),
        })
    return rows


def servers_table(outcome: MigrationOutcome) -> Any:
    """One row per server: final state, ids, bytes moved, sha256s, checks, notes."""
    import pandas as pd

    return pd.DataFrame(_rows(outcome), columns=COLUMNS)


def summary(outcome: MigrationOutcome) -> str:
    """One line: how many servers reached which state, and the bytes moved."""
    counts: dict[str, int] = {}
    for s in outcome.servers:
        counts[s.state] = counts.get(s.state, 0) + 1
    moved = sum(t.size for s in outcome.servers for t in s.transfers)
    return (f"{outcome.title}: " + (", ".join(f"{n} {k}" for k, n in counts.items())
                                    or "no server") + f"; {moved / 2**20:.1f} MiB moved")


def check(outcome: MigrationOutcome) -> str:
    """The summary; raises :class:`CheckFailed` when a server was rolled back."""
    bad = outcome.rolled_back
    if bad:
        lines = [f"{s.name}: {s.rolled_back}" for s in bad]
        raise CheckFailed(f"{len(bad)} of {len(outcome.servers)} server(s) failed "
                          f"verification and were rolled back (their sources kept):\n  "
                          + "\n  ".join(lines), problems=lines, service="migration")
    return summary(outcome)
