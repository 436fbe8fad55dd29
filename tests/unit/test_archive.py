import csv
import datetime as dt
import io
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcloud_lib.archive.index import Archive
from fedcloud_lib.archive.writer import RunWriter
from fedcloud_lib.errors import ArchiveError
from fedcloud_lib.scrub import MARKER, Scrubber
from tests.conftest import FEDCLOUD, FIXTURE_RUNBOOKS, ROOT

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


# ---------------------------------------------------------------- issue 7



def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _abandoned_run(root, run_id="abandoned1"):
    started = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.timezone.utc)
    folder = root / "probe" / "2026-11-20" / run_id
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(root, 0o700)
    nb = {"cells": [{"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {},
                     "outputs": [{"name": "stdout", "output_type": "stream", "text": "half\n"}],
                     "source": "print('half')"}],
          "metadata": {"kernelspec": {"name": "fedcloud", "display_name": "f", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (folder / "notebook.ipynb").write_text(json.dumps(nb))
    (folder / "parameters.yaml").write_text("ticket: ''\n")
    (folder / "events.jsonl").write_text(json.dumps({"event": "run", "status": "started"}) + "\n")
    (folder / "record.json").write_text(json.dumps({
        "run_id": run_id, "runbook": "probe", "started": started.isoformat(), "status": "running",
        "pid": _dead_pid(), "pid_started": 1.0, "host": socket.gethostname(), "results": {},
        "operator": "op", "ticket": None, "cloud": None}))
    return folder


def test_concurrent_sweeps_finalise_an_abandoned_run_exactly_once(tmp_path):
    out = tmp_path / "outputs"
    _abandoned_run(out)
    env = {**os.environ, "FEDCLOUD_OUTPUTS": str(out), "FEDCLOUD_RUNBOOKS": str(FIXTURE_RUNBOOKS),
           "FEDCLOUD_SECRETS_DIR": str(tmp_path / "none")}
    procs = [subprocess.Popen([*FEDCLOUD, "runs", "list", "--json"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert [r["status"] for r in json.loads(stdout)] == ["abandoned"]
    assert sum("archived as abandoned" in err for _, _, err in results) == 1
    arch = Archive(out)
    assert arch.verify() == [] and len(arch.list()) == 1
    events = (arch.list()[0].path / "events.jsonl").read_text().splitlines()
    assert sum('"abandoned"' in e for e in events) == 1


def test_append_refuses_a_run_already_indexed_before_writing_anything(tmp_path):
    arch, ids = make_runs(tmp_path, n=2)
    e = arch.find("run1")
    before = {p.name: p.read_bytes() for p in e.path.iterdir()}
    rec = json.loads((e.path / "record.json").read_text())
    with pytest.raises(ArchiveError, match="already archived"):
        arch.append(e.path, dict(rec), lambda r: (e.path / "record.json").write_text("forged"))
    assert {p.name: p.read_bytes() for p in e.path.iterdir()} == before
    assert arch.verify() == []


def _cut_newest(arch):
    import shutil

    newest = arch.list()[-1]
    shutil.rmtree(newest.path)
    con = sqlite3.connect(arch.db_path)
    con.execute("DELETE FROM runs WHERE run_id = ?", (newest.run_id,))
    con.commit()
    con.close()


def test_a_cut_tail_verifies_alone_but_not_against_its_witnessed_head(tmp_path):
    from fedcloud_lib.archive.index import parse_head

    arch, ids = make_runs(tmp_path)
    head = arch.head()
    assert head[0] == 4 and arch.verify(head=head) == []
    assert arch.verify(head=(4, head[1][:12])) == []
    _cut_newest(arch)
    assert arch.verify() == []  # the chain that is left is intact: only the witness tells
    assert ("run #4", "head missing") in kinds(arch.verify(head=head))
    arch.reindex()
    assert ("run #4", "head missing") in kinds(arch.verify(head=head))
    assert parse_head(f"4:{head[1]}") == (4, head[1])
    for bad in ("4", "x:abc", "4:xyz", "4:abc"):
        with pytest.raises(ValueError):
            parse_head(bad)


def test_a_rewritten_head_is_detected(tmp_path):
    arch, ids = make_runs(tmp_path)
    head = arch.head()
    _cut_newest(arch)
    started = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    folder = arch.run_folder("demo", "forged", started)
    arch.append(folder, {"run_id": "forged", "runbook": "demo", "started": started.isoformat(),
                         "status": "succeeded"},
                lambda r: (folder / "record.json").write_text(json.dumps(r)))
    assert arch.verify() == []
    assert ("forged", "head rewritten") in kinds(arch.verify(head=head))


def test_the_head_log_witnesses_every_run_and_is_checked(tmp_path):
    log = tmp_path / "loghost" / "heads.log"
    log.parent.mkdir()
    arch = Archive(tmp_path / "outputs", head_log=log)
    arch.ensure()
    for i in range(3):
        started = dt.datetime(2026, 11, 1 + i, tzinfo=dt.timezone.utc)
        folder = arch.run_folder("demo", f"r{i}", started)
        arch.append(folder, {"run_id": f"r{i}", "runbook": "demo", "started": started.isoformat(),
                             "status": "succeeded"},
                    lambda r, f=folder: (f / "record.json").write_text(json.dumps(r)))
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(x["seq"], x["run_id"]) for x in lines] == [(1, "r0"), (2, "r1"), (3, "r2")]
    assert lines[-1]["hash"] == arch.head()[1]
    assert arch.verify() == []
    _cut_newest(arch)
    arch.reindex()
    assert ("run #3", "head missing") in kinds(arch.verify())
    # another archive's lines in a shared log are not ours to check
    other = Archive(tmp_path / "other", head_log=log)
    other.ensure()
    assert other.verify() == []


def test_the_archive_root_is_tightened_and_links_are_never_followed(tmp_path):
    root = tmp_path / "outputs"
    root.mkdir(mode=0o777)
    os.chmod(root, 0o777)
    target = tmp_path / "elsewhere.txt"
    target.write_text("untouched\n")
    (root / "fedcloud.log").symlink_to(target)
    arch = Archive(root)
    arch.ensure()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    with pytest.raises(OSError):
        arch.log_event({"event": "x"})
    assert target.read_text() == "untouched\n"
    (tmp_path / "evil").mkdir()
    (root / "demo").symlink_to(tmp_path / "evil")
    with pytest.raises(ArchiveError, match="symbolic link"):
        arch.run_folder("demo", "r1", dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc))
    assert list((tmp_path / "evil").iterdir()) == []
    (root / "index.sqlite").symlink_to(tmp_path / "evil.sqlite")
    with pytest.raises(ArchiveError, match="symbolic link"):
        arch.list()


def test_a_link_planted_in_a_run_folder_is_reported(tmp_path):
    arch, ids = make_runs(tmp_path, n=2)
    folder = arch.find("run1").path
    (folder / "notebook.ipynb").unlink()
    (folder / "notebook.ipynb").symlink_to(tmp_path / "x")
    assert ("run1", "file edited") in kinds(arch.verify()) or \
        ("run1", "file missing") in kinds(arch.verify())


def test_cli_refusal_with_a_world_writable_archive_and_a_planted_log_link(tmp_path):
    root = tmp_path / "outputs"
    root.mkdir()
    os.chmod(root, 0o777)
    target = tmp_path / "victim.txt"
    target.write_text("untouched\n")
    (root / "fedcloud.log").symlink_to(target)
    env = {**os.environ, "FEDCLOUD_OUTPUTS": str(root), "FEDCLOUD_RUNBOOKS": str(FIXTURE_RUNBOOKS),
           "FEDCLOUD_SECRETS_DIR": str(tmp_path / "none")}
    r = subprocess.run([*FEDCLOUD, "run", "probe", "-p", "ratio", "2"], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "ratio" in r.stderr and "Traceback" not in r.stderr
    assert target.read_text() == "untouched\n"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_commands_that_run_no_notebook_import_no_notebook_machinery(tmp_path):
    out = tmp_path / "outputs"
    make_runs(out, n=2)
    code = ("import sys\nfrom fedcloud_lib.cli import main\n"
            "for argv in (['runs', 'list'], ['runs', 'verify'], ['runs', 'show', 'run1']):\n"
            "    assert main(argv) in (0, 1), argv\n"
            "heavy = {'nbformat', 'papermill', 'openstack', 'nbconvert', 'nbclient'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    env = {**os.environ, "FEDCLOUD_OUTPUTS": str(out), "FEDCLOUD_SECRETS_DIR": str(tmp_path / "n")}
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", "import sys\nfrom fedcloud_lib.cli import main\n"
                        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
                        "assert not {'nbformat', 'papermill', 'openstack'} & set(sys.modules)"],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- the writer: values, not syntax



RUN_ID = "20261126T101500-abc123"
STARTED = "2026-11-26T10:15:00+00:00"


def _executed_notebook(secret: str) -> dict:
    lines = [f"X-Auth-Token: {secret}\"", f"password is {secret}", json.dumps({"pw": secret}),
             json.dumps({"pw": secret}, ensure_ascii=False), repr({"pw": secret}), "approve true"]
    return {"cells": [
        {"cell_type": "code", "execution_count": 1, "id": "cell-1",
         "metadata": {"papermill": {"start_time": STARTED, "status": "completed"}, "tags": []},
         "source": f"print({secret!r})",
         "outputs": [{"name": "stdout", "output_type": "stream", "text": "\n".join(lines)},
                     {"output_type": "display_data", "metadata": {},
                      "data": {"text/plain": f"{secret}", "text/html": f"<b>{secret}</b>",
                               "application/vnd.fedcloud.record+json":
                                   {"name": "creds", "value": {"pw": secret, "ok": True}}}},
                     {"output_type": "error", "ename": "ValueError", "evalue": secret,
                      "traceback": [f"ValueError: {secret}"]}]}],
        "metadata": {"papermill": {"start_time": STARTED, "parameters": {}},
                     "kernelspec": {"name": "fedcloud", "display_name": "f", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}


def _write_run(folder: Path, secret: str) -> RunWriter:
    rec = {"run_id": RUN_ID, "runbook": "probe", "started": STARTED, "status": "running",
           "approve": True, "operator": "op", "ticket": "1", "cloud": None,
           "error": f"cell 2: ValueError: {secret}\"", "results": {"pw": secret}}
    w = RunWriter(folder, Scrubber([secret]), rec)
    w.write_record()
    w.notebook(_executed_notebook(secret), {"password": "***", "approve": True}, None)
    w.event(event="run", status="failed", run_id=RUN_ID, error=f"X-Auth-Token: {secret}\"")
    return w


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


SECRETS = st.one_of(
    st.sampled_from(["true", "false", "null", "2026", '"', "\\", '\\"', "X-Auth-Token", ":",
                     "\n", "***x", "run_id", "approve", "é€\"'<>&"]),
    st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and s != MARKER))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=SECRETS)
def test_every_archived_file_parses_whatever_the_secret(tmp_path_factory, secret):
    folder = tmp_path_factory.mktemp("run")
    _write_run(folder, secret)
    rec = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    nb = json.loads((folder / "notebook.ipynb").read_text(encoding="utf-8"))
    events = [json.loads(x) for x in (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    # the run's own metadata is never scrubbed, and values keep their types
    assert rec["run_id"] == RUN_ID and rec["started"] == STARTED and rec["approve"] is True
    assert nb["metadata"]["fedcloud"]["run_id"] == RUN_ID
    assert nb["cells"][0]["id"] == "cell-1" and nb["cells"][0]["outputs"][0]["output_type"] == "stream"
    assert nb["metadata"]["fedcloud"]["results"]["creds"]["ok"] is True
    assert events[0]["run_id"] == RUN_ID
    if len(secret.strip()) >= 4:  # shorter ones may legitimately appear inside other words
        user_values = [rec["error"], *_strings(rec["results"]), events[0]["error"],
                       *_strings(nb["cells"][0]["outputs"]), nb["cells"][0]["source"]]
        assert not any(secret in v for v in user_values), secret


def test_ambient_boolean_and_year_values_leave_every_file_intact(tmp_path):
    from fedcloud_lib.scrub import collect_secrets

    amb = collect_secrets(environ={"PASSWORD_STORE_ENABLE_EXTENSIONS": "true", "TOKEN_YEAR": "2026"})
    w = RunWriter(tmp_path, Scrubber(amb), {"run_id": RUN_ID, "runbook": "p", "started": STARTED,
                                            "approve": True, "error": None})
    w.write_record()
    assert json.loads((tmp_path / "record.json").read_text()) == {
        "run_id": RUN_ID, "runbook": "p", "started": STARTED, "approve": True, "error": None}


def test_finishing_scrubs_the_files_the_kernel_wrote_and_keeps_them_parseable(tmp_path):
    arch = Archive(tmp_path / "outputs")
    started = dt.datetime(2026, 11, 26, 10, 15, tzinfo=dt.timezone.utc)
    folder = arch.run_folder("probe", RUN_ID, started)
    secret = 'Sekr1t,"quoted"-value'
    w = _write_run(folder, secret)
    buf = io.StringIO()
    csv.writer(buf).writerows([["host", "password"], ["db1", secret], ["db2", "plain"]])
    (folder / "report.csv").write_text(buf.getvalue())
    (folder / "data.json").write_text(json.dumps({"pw": secret, "n": 1, "flag": True}))
    (folder / "notes.txt").write_text(f"remember {secret}\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "list.yaml").write_text(yaml.safe_dump({"creds": [secret, "x"]}))
    (folder / "blob.bin").write_bytes(b"\xff\xfe" + secret.encode() + b"\x00")
    (folder / "link").symlink_to("/etc/hostname")
    entry = w.finish(arch, "failed", 1, "boom", started)
    rows = list(csv.reader(io.StringIO((folder / "report.csv").read_text())))
    assert rows == [["host", "password"], ["db1", MARKER], ["db2", "plain"]]
    assert json.loads((folder / "data.json").read_text()) == {"pw": MARKER, "n": 1, "flag": True}
    assert (folder / "notes.txt").read_text() == f"remember {MARKER}\n"
    assert yaml.safe_load((folder / "sub" / "list.yaml").read_text()) == {"creds": [MARKER, "x"]}
    assert not (folder / "blob.bin").exists() and not (folder / "link").is_symlink()
    assert {"report.csv", "data.json", "notes.txt", "sub/list.yaml"} <= set(entry.manifest)
    events = (folder / "events.jsonl").read_text()
    assert "blob.bin: withheld" in events and "link: removed" in events
    assert arch.verify() == []


def test_a_write_failure_while_finishing_ends_the_run_failed(tmp_path, monkeypatch):
    import errno

    import fedcloud_lib.archive.writer as writer_mod

    arch = Archive(tmp_path / "outputs")
    started = dt.datetime(2026, 11, 26, 10, 15, tzinfo=dt.timezone.utc)
    folder = arch.run_folder("probe", RUN_ID, started)
    w = _write_run(folder, "s3cret-value")
    real = writer_mod.write_private

    def full_disk(path, text):
        if path.name == "notebook.html":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(writer_mod, "write_private", full_disk)
    entry = w.finish(arch, "succeeded", 0, None, started)
    rec = json.loads((folder / "record.json").read_text())
    assert entry.status == "failed" and rec["status"] == "failed" and rec["exit_code"] == 1
    assert "No space left on device" in rec["error"] and "notebook.html" in rec["error"]
    assert not list(folder.glob(".*.tmp"))
    assert arch.verify() == []


def test_a_head_log_that_cannot_be_written_is_loud_but_the_run_is_archived(tmp_path):
    arch = Archive(tmp_path / "outputs", head_log=tmp_path / "missing-dir" / "heads.log")
    arch.ensure()
    started = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    folder = arch.run_folder("demo", "r0", started)
    with pytest.raises(ArchiveError, match="head log") as e:
        arch.append(folder, {"run_id": "r0", "runbook": "demo", "started": started.isoformat(),
                             "status": "succeeded"},
                    lambda r: (folder / "record.json").write_text(json.dumps(r)))
    assert f"1:{arch.head()[1]}" in str(e.value)
    assert [x.run_id for x in arch.list()] == ["r0"] and arch.verify() == []
    assert '"head-log"' in (arch.root / "fedcloud.log").read_text()
