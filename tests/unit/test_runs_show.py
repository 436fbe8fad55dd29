"""`fedcloud runs show`: results by shape (tables for DataFrame-shaped results), readable
durations, and --json with everything."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from fedcloud_lib import cli
from fedcloud_lib.archive.display import human_duration, result_lines, text_table
from fedcloud_lib.archive.index import Archive

pytestmark = pytest.mark.unit

CHANGES = [{"host": "vm", "task": f"task {i}", "status": "changed", "seconds": 0.5 + i}
           for i in range(50)]
RESULTS = {
    "ansible": {"playbook": "site.yml", "seconds": 709.702, "tasks": {"changed": 41, "ok": 27}},
    "ansible_changes": CHANGES,
    "plan": {"title": "cloudlet testing install", "planned_at": "2026-11-26T14:51:30+00:00",
             "steps": [{"action": "keep", "kind": "cloudlet", "name": "testing",
                        "detail": "installed", "inputs": {}}]},
    "server_id": "5b1c",
    "nested": {"a": {"b": [1, 2, {"c": 3}]}},
}


@pytest.fixture
def archive(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDCLOUD_OUTPUTS", str(tmp_path / "out"))
    monkeypatch.setenv("FEDCLOUD_SECRETS_DIR", str(tmp_path / "none"))
    arch = Archive(tmp_path / "out")
    arch.ensure()
    started = dt.datetime(2026, 11, 26, 14, 51, 21, 379343, tzinfo=dt.timezone.utc)
    folder = arch.run_folder("cloudlet-install", "r1", started)
    (folder / "parameters.yaml").write_text("cloudlet: testing\n")
    ended = started + dt.timedelta(seconds=709.702)
    rec = {"run_id": "r1", "runbook": "cloudlet-install", "started": started.isoformat(),
           "ended": ended.isoformat(), "duration": 709.702, "status": "succeeded",
           "exit_code": 0, "operator": "root", "results": RESULTS}
    arch.append(folder, rec, lambda r: (folder / "record.json").write_text(json.dumps(r)))
    return arch


@pytest.mark.parametrize("seconds, text", [
    (709.702, "11 min 50 s"), (3.25, "3.2 s"), (42.4, "42 s"), (60, "1 min 0 s"),
    (3725, "1 h 2 min 5 s"), (None, "-"), ("n/a", "n/a")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_runs_show_prints_tables_and_durations(archive, capsys):
    assert cli.main(["runs", "show", "r1"]) == 0
    out = capsys.readouterr().out
    assert "when      2026-11-26 14:51:21 UTC .. 2026-11-26 15:03:11 UTC (11 min 50 s)" in out
    assert "709.702" not in out
    lines = out.splitlines()
    head = lines.index("  ansible_changes: (50 rows)")
    assert lines[head + 1].split() == ["HOST", "TASK", "STATUS", "SECONDS"]
    assert lines[head + 2].split() == ["vm", "task", "0", "changed", "0.5", "s"]
    assert "    ... 10 more rows (--json for all)" in lines
    assert "    seconds   11 min 50 s" in lines and "    tasks     changed 41, ok 27" in lines
    assert "  plan: cloudlet testing install (1 steps, made 2026-11-26T14:51:30+00:00)" in lines
    assert lines[lines.index("  server_id: 5b1c") - 1].strip()  # scalars on one line
    assert '          "c": 3' in out  # deeper structures as indented JSON
    assert not any(line.startswith("  ansible_changes: [{") for line in lines)


def test_runs_show_json_is_complete(archive, capsys):
    assert cli.main(["runs", "show", "r1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["results"] == RESULTS and data["duration"] == 709.702
    assert data["seq"] == 1 and data["entry_hash"] and data["manifest"]
    assert data["parameters"] == {"cloudlet": "testing"}


def test_runs_list_durations_read_as_time(archive, capsys):
    assert cli.main(["runs", "list"]) == 0
    assert "11 min 50 s" in capsys.readouterr().out
    assert cli.main(["runs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["duration"] == 709.702


def test_tables_cut_long_cells_and_order_columns():
    rows = [{"detail": "x" * 100, "name": "a", "action": "create", "zeta": 1}]
    text = text_table(rows)
    assert text.splitlines()[0].split() == ["ACTION", "NAME", "ZETA", "DETAIL"]
    assert "x" * 57 + "..." in text and "x" * 61 not in text
    assert result_lines("empty", []) == ["  empty: (none)"]
