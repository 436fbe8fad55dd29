"""migrate-instances: the journal of each server's states, earlier runs read back from a
real archive, and the quota copy (never lowering)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from fedcloud_lib.archive.index import Archive
from fedcloud_lib.archive.results import RECORD_MIME
from fedcloud_lib.migration import journal
from fedcloud_lib.migration.quotas import QuotaFacts, quota_changes, raised, tag_changes

pytestmark = pytest.mark.unit


def _notebook(results: dict) -> dict:
    outputs = [{"output_type": "display_data", "metadata": {},
                "data": {RECORD_MIME: {"name": k, "value": v}}} for k, v in results.items()]
    return {"cells": [{"cell_type": "code", "outputs": outputs, "source": "", "metadata": {}}],
            "metadata": {"fedcloud": {"results": results}}, "nbformat": 4,
            "nbformat_minor": 5}


def _archive_run(arch: Archive, run_id: str, status: str, results: dict, day: int,
                 journal_lines: list[str] | None = None) -> None:
    started = dt.datetime(2026, 11, day, 12, tzinfo=dt.timezone.utc)
    folder = arch.run_folder(journal.RUNBOOK, run_id, started)
    (folder / "notebook.ipynb").write_text(json.dumps(_notebook(results)))
    if journal_lines is not None:
        (folder / journal.JOURNAL).write_text("".join(journal_lines))
    rec = {"run_id": run_id, "runbook": journal.RUNBOOK, "started": started.isoformat(),
           "ended": started.isoformat(), "status": status, "results": results}
    arch.append(folder, rec, lambda r, f=folder: (f / "record.json").write_text(json.dumps(r)))


def _plan(*stopped: str) -> dict:
    steps = [{"action": "update", "kind": "source server", "name": f"n{i}",
              "inputs": {"id": sid, "stop": True}} for i, sid in enumerate(stopped)]
    steps.append({"action": "create", "kind": "snapshot", "name": "x", "inputs": {}})
    return {"title": "t", "steps": steps}


def test_the_journal_is_written_as_it_goes(tmp_path):
    j = journal.Journal(tmp_path)
    j.write("web-1", "s1", "stopped", "before the copy")
    j.write("web-1", "s1", "snapshotted")
    lines = (tmp_path / journal.JOURNAL).read_text().splitlines()
    assert [json.loads(line)["state"] for line in lines] == ["stopped", "snapshotted"]
    assert oct((tmp_path / journal.JOURNAL).stat().st_mode & 0o777) == "0o600"
    assert j.last_states() == {"s1": "snapshotted"}
    outside = journal.Journal(None)  # no run folder (JupyterLab): kept in memory
    outside.path = None
    outside.write("web-1", "s1", "planned")
    assert outside.entries and outside.path is None


def test_earlier_runs_tell_which_sources_they_stopped(tmp_path, monkeypatch):
    monkeypatch.delenv("FEDCLOUD_RUN_ID", raising=False)
    arch = Archive(tmp_path)
    arch.ensure()
    mine = {"migration_id": "mig-a"}
    # a dry run (never applied), another migration, a killed run, a finished one
    _archive_run(arch, "r1", "planned", {"request": mine, "plan": _plan("s9")}, 1)
    _archive_run(arch, "r2", "succeeded", {"request": {"migration_id": "mig-b"},
                                           "plan": _plan("s8")}, 2)
    cut = json.dumps({"source_id": "s2", "state": "stopped"}) + "\n" + '{"source_id": "s3", "st'
    _archive_run(arch, "r3", "abandoned", {"request": mine, "plan": _plan("s1")}, 3, [cut])
    _archive_run(arch, "r4", "failed", {"request": mine}, 4)
    runs = journal.earlier_runs("mig-a", tmp_path)
    assert [r.run_id for r in runs] == ["r3", "r4"]
    assert runs[0].stopped == ("s1",) and len(runs[0].journal) == 1  # the cut line is skipped
    assert journal.stopped_by_earlier_runs(runs) == {"s1", "s2"}
    # the current run is not an earlier one
    monkeypatch.setenv("FEDCLOUD_RUN_ID", "r4")
    assert [r.run_id for r in journal.earlier_runs("mig-a", tmp_path)] == ["r3"]


def test_no_archive_no_earlier_runs(tmp_path):
    assert journal.earlier_runs("mig-a", tmp_path / "none") == []


def test_quotas_are_raised_never_lowered():
    assert raised(10, 30) == 30 and raised(30, 10) == 30
    assert raised(10, -1) == -1 and raised(-1, 10) == -1
    q = QuotaFacts("p1", "p2",
                   source={"compute": {"instances": 30, "cores": 10, "ram": -1},
                           "volume": {"volumes": 5}},
                   target={"compute": {"instances": 10, "cores": 20, "ram": 4096},
                           "volume": {"volumes": 5}},
                   source_tags=("fedcloud-class-persistent", "team-x"),
                   target_tags=("fedcloud-class-persistent",))
    assert quota_changes(q) == {"compute": {"instances": 30, "ram": -1}}
    assert tag_changes(q) == []  # the only policy tag is there already
    q2 = QuotaFacts("p1", "p2", {}, {}, source_tags=("fedcloud-x", "other"), target_tags=("y",))
    assert tag_changes(q2) == ["y", "fedcloud-x"]
