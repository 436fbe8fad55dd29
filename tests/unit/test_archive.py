import datetime as dt
import json
import sqlite3

import pytest

from fedcloud_lib.archive.index import Archive
from fedcloud_lib.errors import ArchiveError

pytestmark = pytest.mark.unit


def make_runs(root, n=4):
    arch = Archive(root)
    arch.ensure()
    ids = []
    for i in range(n):
        started = dt.datetime(2026, 11, 1 + i, 12, 0, tzinfo=dt.timezone.utc)
        run_id = f"run{i}"
        folder = arch.run_folder("demo" if i % 2 else "other", run_id, started)
        (folder / "notebook.ipynb").write_text(json.dumps({"cells": [], "i": i}))
        (folder / "parameters.yaml").write_text(f"ticket: '{i}'\n")
        rec = {"run_id": run_id, "runbook": "demo" if i % 2 else "other",
               "started": started.isoformat(), "ended": started.isoformat(),
               "status": "succeeded" if i != 2 else "failed", "operator": "op%d" % (i % 2),
               "ticket": str(i), "cloud": "fedcloud-testing", "results": {"server": f"srv-{i}"}}
        arch.append(folder, rec, lambda r, f=folder: (f / "record.json").write_text(json.dumps(r)))
        ids.append(run_id)
    return arch, ids


def kinds(problems):
    return {(p.run_id, p.kind) for p in problems}


def test_intact_archive_verifies_and_folders_are_private(tmp_path):
    arch, ids = make_runs(tmp_path)
    assert arch.verify() == []
    for e in arch.list():
        assert oct(e.path.stat().st_mode & 0o777) == "0o700"
        assert (e.path / "MANIFEST.sha256").exists()
    assert [e.seq for e in arch.list()] == [1, 2, 3, 4]


def test_list_filters(tmp_path):
    arch, ids = make_runs(tmp_path)
    assert [e.run_id for e in arch.list(runbook="demo")] == ["run1", "run3"]
    assert [e.run_id for e in arch.list(status="failed")] == ["run2"]
    assert [e.run_id for e in arch.list(ticket="3")] == ["run3"]
    assert [e.run_id for e in arch.list(operator="op0")] == ["run0", "run2"]
    assert [e.run_id for e in arch.list(since="2026-11-03")] == ["run2", "run3"]
    assert [e.run_id for e in arch.list(resource="srv-1")] == ["run1"]
    assert arch.find("run2").status == "failed"
    with pytest.raises(ArchiveError, match="no archived run"):
        arch.find("nope")
    with pytest.raises(ArchiveError, match="matches 4 runs"):
        arch.find("run")


def test_edited_file_is_detected_naming_run_and_file(tmp_path):
    arch, ids = make_runs(tmp_path)
    nb = arch.find("run1").path / "notebook.ipynb"
    nb.write_text(nb.read_text().replace('"i": 1', '"i": 9'))
    assert kinds(arch.verify()) == {("run1", "file edited")}
    assert "notebook.ipynb" in str(arch.verify()[0])


def test_edited_file_and_manifest_is_still_detected(tmp_path):
    from fedcloud_lib.archive.files import compute_manifest, manifest_text

    arch, ids = make_runs(tmp_path)
    folder = arch.find("run1").path
    (folder / "parameters.yaml").write_text("ticket: 'forged'\n")
    (folder / "MANIFEST.sha256").write_text(manifest_text(compute_manifest(folder)))
    found = kinds(arch.verify())
    assert ("run1", "file edited") in found


def test_deleted_run_folder_is_detected(tmp_path):
    import shutil

    arch, ids = make_runs(tmp_path)
    shutil.rmtree(arch.find("run2").path)
    assert ("run2", "run folder missing") in kinds(arch.verify())


def test_deleted_index_entry_is_detected(tmp_path):
    arch, ids = make_runs(tmp_path)
    con = sqlite3.connect(arch.db_path)
    con.execute("DELETE FROM runs WHERE run_id = 'run1'")
    con.commit()
    con.close()
    found = kinds(arch.verify())
    assert ("run1", "removed from index") in found
    assert ("run2", "chain broken") in found


def test_swapped_entries_are_detected(tmp_path):
    arch, ids = make_runs(tmp_path)
    con = sqlite3.connect(arch.db_path)
    con.execute("UPDATE runs SET seq = 100 WHERE run_id = 'run1'")
    con.execute("UPDATE runs SET seq = 2 WHERE run_id = 'run2'")
    con.execute("UPDATE runs SET seq = 3 WHERE run_id = 'run1'")
    con.commit()
    con.close()
    found = kinds(arch.verify())
    assert ("run2", "chain broken") in found and ("run1", "chain broken") in found


def test_edited_index_field_is_detected(tmp_path):
    arch, ids = make_runs(tmp_path)
    con = sqlite3.connect(arch.db_path)
    con.execute("UPDATE runs SET status = 'succeeded' WHERE run_id = 'run2'")
    con.commit()
    con.close()
    assert ("run2", "index entry edited") in kinds(arch.verify())


def test_reindex_rebuilds_an_intact_chain(tmp_path):
    arch, ids = make_runs(tmp_path)
    before = [(e.run_id, e.entry_hash) for e in arch.list()]
    arch.db_path.unlink()
    n, problems = arch.reindex()
    assert n == 4 and problems == []
    assert [(e.run_id, e.entry_hash) for e in arch.list()] == before
    assert arch.verify() == []


def test_reindex_says_what_it_cannot_verify(tmp_path):
    import shutil

    arch, ids = make_runs(tmp_path)
    (arch.find("run3").path / "notebook.ipynb").write_text("{}")
    shutil.rmtree(arch.find("run1").path)
    n, problems = arch.reindex()
    assert n == 3
    found = kinds(problems)
    assert ("run3", "cannot verify") in found
    assert ("run2", "chain broken") in found
    # the rebuilt index keeps the evidence: verify still fails
    assert arch.verify() != []


def test_unindexed_folder_is_reported(tmp_path):
    arch, ids = make_runs(tmp_path, n=2)
    started = dt.datetime(2026, 11, 9, tzinfo=dt.timezone.utc)
    f = arch.run_folder("demo", "stray", started)
    (f / "record.json").write_text(json.dumps({"run_id": "stray", "status": "succeeded"}))
    assert ("stray", "not in index") in kinds(arch.verify())
