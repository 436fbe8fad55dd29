"""Hostile runs (issue 7): real kernels on the `probe` fixture, which executes the Python it
is given with secrets of every shape at hand; assertions on the archive, the log, the
terminal, the kernel's IPython directory and the processes left behind."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml

from fedcloud_lib.archive.index import Archive
from tests.conftest import FEDCLOUD, ROOT, run_cli, start_cli

pytestmark = pytest.mark.runbook

TOKEN = "tk_" + "".join("abcdefghjkmnpqrstuvwxyz23456789"[(i * 7) % 31] for i in range(61))  # 64


def probe(code: str, *args: str, env: dict | None = None, timeout: float = 180, **kw):
    """`fedcloud run probe` as an operator runs it: without pytest's PYTEST_CURRENT_TEST in
    the environment (ipykernel does not capture a child process's output under pytest)."""
    full = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    return subprocess.run([*FEDCLOUD, "run", "probe", "-p", "code", code, *args, "--no-progress"],
                          capture_output=True, text=True, timeout=timeout,
                          env={**full, **(env or {})}, cwd=ROOT, **kw)


def only_run(outputs: Path) -> Path:
    (folder,) = sorted(outputs.glob("probe/*/*"))
    return folder


def archived_text(outputs: Path) -> str:
    """Every byte the archive holds (the run folders, the index, the log), as text."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace")
                     for p in sorted(outputs.rglob("*")) if p.is_file() and not p.is_symlink())


def wait_for(path: Path, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.2)
    raise AssertionError(f"{path} did not appear in {timeout}s")


def gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


# ---------------------------------------------------------------- 2: files keep parsing
def test_scrubbing_keeps_every_archived_file_valid(outputs):
    year = time.strftime("%Y")
    env = {"PASSWORD_STORE_ENABLE_EXTENSIONS": "true"}
    r = probe("print('X-Auth-Token: gAAAAAnotfernet\"')\nprint(f'year {password}')\n"
              "fc.record('flag', {'approve': approve, 'ok': True})",
              "-p", "password", year, "--approve", env=env)
    assert r.returncode == 0, r.stderr
    folder = only_run(outputs)
    rec = json.loads((folder / "record.json").read_text())
    nb = json.loads((folder / "notebook.ipynb").read_text())
    events = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
    assert rec["run_id"] == folder.name and rec["started"].startswith(year)
    assert rec["approve"] is True and rec["results"]["flag"] == {"approve": True, "ok": True}
    assert nb["metadata"]["papermill"]["start_time"].startswith(year)
    assert all(e["time"].startswith(year) for e in events)
    out = json.dumps(nb["cells"])
    assert "gAAAAAnotfernet" not in out and "year ***" in out
    assert yaml.safe_load((folder / "parameters.yaml").read_text())["approve"] is True
    assert run_cli("runs", "verify").returncode == 0


# ---------------------------------------------------------------- 3: the head is witnessed
def test_every_run_prints_its_head_and_a_cut_tail_is_caught(outputs, tmp_path):
    log = tmp_path / "loghost" / "heads.log"
    log.parent.mkdir()
    env = {"FEDCLOUD_HEAD_LOG": str(log)}
    assert probe("print(1)", env=env).returncode == 0
    r = probe("print(2)", env=env)
    assert r.returncode == 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("archive head 2:")
    head = last.split()[2]
    seq, digest = head.split(":")
    assert Archive(outputs).head() == (2, digest) and len(log.read_text().splitlines()) == 2
    assert run_cli("runs", "verify", "--head", head, env=env).returncode == 0
    # the newest run is removed (folder and index row) and the index rebuilt
    newest = Archive(outputs).list()[-1]
    import shutil
    import sqlite3

    shutil.rmtree(newest.path)
    con = sqlite3.connect(outputs / "index.sqlite")
    con.execute("DELETE FROM runs WHERE seq = 2")
    con.commit()
    con.close()
    assert run_cli("runs", "reindex").returncode == 0
    assert run_cli("runs", "verify").returncode == 0  # without a witness nothing shows
    r = run_cli("runs", "verify", "--head", head)
    assert r.returncode == 1 and "head missing" in r.stdout and "tail truncation" in r.stdout
    r = run_cli("runs", "verify", env=env)
    assert r.returncode == 1 and "the head log (line 2) witnessed #2" in r.stdout
    assert run_cli("runs", "verify", "--head", "2:zz").returncode == 2


def test_the_ticket_answer_carries_the_head():
    from types import SimpleNamespace

    from fedcloud_lib.tickets.comment import format_outcome

    req = SimpleNamespace(runbook="probe", ticket=SimpleNamespace(id="42"))
    result = SimpleNamespace(run_id="r1", status="succeeded", results={}, error=None,
                             head="7:" + "ab" * 32)
    assert "7:" + "ab" * 32 in format_outcome(req, result, True)


# ---------------------------------------------------------------- 4-7: no secret anywhere
def test_ipython_keeps_no_history_of_the_parameters(outputs, tmp_path):
    ipython = tmp_path / "ipython"
    secret = "Hist0ry-Secret-Value"
    r = probe("print('hello')", "-p", "password", secret, env={"IPYTHONDIR": str(ipython)})
    assert r.returncode == 0, r.stderr
    files = [p for p in ipython.rglob("*") if p.is_file()]
    for p in files:
        assert secret.encode() not in p.read_bytes(), f"the secret is kept in {p}"
    assert not [p for p in files if p.name.startswith("history")]


def test_secrets_in_every_shape_stay_out_of_the_archive_log_and_terminal(outputs, tmp_path):
    pw = 'Pä"ss\\wörd€-Quoted-Secret-42'
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"tokens": ["tok-alpha-000111", "tok-beta-222333"],
                                      "creds": {"user": "bob", "pw": "CredPw-998877"},
                                      "password": TOKEN}))
    code = "\n".join([
        "import pprint, pandas as pd",
        "print('one token:', tokens[1])",
        "print('cred:', creds['pw'])",
        "print(pd.DataFrame({'token': [password]}))",  # pandas cuts the 64 characters short
        "pprint.pprint({'phrase': password + ' and ' + password[::-1]}, width=40)",
        f"print(json.dumps({{'pw': {pw!r}}}, ensure_ascii=False))",
        "print('-----BEGIN PGP PRIVATE KEY BLOCK-----\\n\\nlQOYBGPgpSecretMaterial\\n"
        "-----END PGP PRIVATE KEY BLOCK-----')",
        "os.system('echo child says ' + password)",
        "time.sleep(0.5)  # the kernel forwards a child's output from its own thread,",
        "print('after the child')  # and sends it with the next write of the cell",
        "pathlib.Path(fc.current_run().run_dir, 'report.csv').write_text("
        "'host,token\\ndb1,' + password + '\\n')",
    ])
    r = probe(code, "-f", str(params), env={"EXTRA_PASSWORD": pw})
    assert r.returncode == 0, r.stderr
    folder = only_run(outputs)
    text = archived_text(outputs)
    needles = ["tok-beta-222333", "CredPw-998877", TOKEN[:20], TOKEN[20:40], TOKEN[-20:],
               "Quoted-Secret", "lQOYBGPgpSecretMaterial"]
    for n in needles:
        assert n not in text, f"{n} reached the archive"
        assert n not in r.stdout + r.stderr, f"{n} reached the terminal"
    assert "child says" not in r.stdout + r.stderr  # the kernel's own output is not ours
    assert "child says ***" in (folder / "notebook.ipynb").read_text()
    assert (folder / "report.csv").read_text() == "host,token\ndb1,***\n"
    assert "report.csv" in (folder / "MANIFEST.sha256").read_text()
    assert run_cli("runs", "verify").returncode == 0


def test_a_yaml_error_does_not_quote_the_secret_line(outputs, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ticket: '1'\npassword: Leaky-Line-Secret: [oops\n")
    r = run_cli("run", "probe", "-f", str(bad))
    assert r.returncode == 2 and "line 2" in r.stderr
    assert "Leaky-Line-Secret" not in r.stderr
    assert "Leaky-Line-Secret" not in (outputs / "fedcloud.log").read_text()


# ---------------------------------------------------------------- 8-10: bad values
@pytest.mark.parametrize("args,needle", [
    (["-p", "ratio", ".nan"], "ratio: "),
    (["-p", "count", "7" * 5000], "count: "),
    (["-p", "count", "0123"], "octal"),
])
def test_bad_values_are_refused_with_exit_2_and_logged(outputs, args, needle):
    r = run_cli("run", "probe", *args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr and len(r.stderr) < 2000
    logged = (outputs / "fedcloud.log").read_text().splitlines()
    assert json.loads(logged[-1])["event"] == "refused"


@pytest.mark.parametrize("content,needle", [
    (b"ticket: caf\xe9\n", "not UTF-8"),
    (b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
     b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nident: *c\n", "alias"),
])
def test_hostile_parameter_files_are_refused_at_once(outputs, tmp_path, content, needle):
    f = tmp_path / "p.yaml"
    f.write_bytes(content)
    t = time.monotonic()
    r = run_cli("run", "probe", "-f", str(f), timeout=60)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert time.monotonic() - t < 30
    assert json.loads((outputs / "fedcloud.log").read_text().splitlines()[-1])["event"] == "refused"


def test_str_values_are_read_as_written_and_long_tickets_run(outputs, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("ticket: 0123\nident: 12:30\n")
    r = probe("fc.record('seen', [ticket, ident])", "-f", str(f))
    assert r.returncode == 0, r.stderr
    rec = json.loads((only_run(outputs) / "record.json").read_text())
    assert rec["ticket"] == "0123" and rec["results"]["seen"] == ["0123", "12:30"]
    r = probe("print(len(ticket))", "-p", "ticket", "T" * 300)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- 11: no process survives
SPAWN = ("child = subprocess.Popen(['sleep', '300'])\n"
         "pathlib.Path(os.environ['PROBE_MARKER']).write_text(f'{os.getpid()} {child.pid}')\n"
         "time.sleep(300)")


@pytest.mark.parametrize("victim", ["fedcloud", "kernel"])
def test_a_runbooks_child_process_dies_with_the_run(outputs, tmp_path, victim):
    marker = tmp_path / "pids"
    p = start_cli("run", "probe", "-p", "code", SPAWN, "-p", "ticket", "77",
                  env={"PROBE_MARKER": str(marker)})
    try:
        kernel_pid, child_pid = map(int, wait_for(marker).split())
        os.kill(p.pid if victim == "fedcloud" else kernel_pid, signal.SIGKILL)
        p.wait(timeout=60)
        assert gone(child_pid), f"the runbook's child {child_pid} survived"
        assert gone(kernel_pid)
    finally:
        p.kill()
        p.wait()
    r = run_cli("run", "probe", "-p", "ticket", "77", "-p", "code", "print(1)")
    assert r.returncode == 0, r.stderr  # the lock is free once the group is gone
    statuses = [e.status for e in Archive(outputs).list()]
    assert statuses == (["abandoned", "succeeded"] if victim == "fedcloud"
                        else ["failed", "succeeded"])


# ---------------------------------------------------------------- 12: failures, named right
def test_a_handled_traceback_does_not_fail_the_run(outputs):
    r = probe("try:\n    1 / 0\nexcept ZeroDivisionError:\n    get_ipython().showtraceback()\n"
              "print('carried on')")
    assert r.returncode == 0, r.stderr
    rec = json.loads((only_run(outputs) / "record.json").read_text())
    assert rec["status"] == "succeeded" and rec["error"] is None


def test_an_archive_write_failure_ends_the_run_failed_without_a_traceback(outputs):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    r = probe("print('x' * 1_200_000)\ntime.sleep(0.5)\nprint('after')", preexec_fn=limit,
              timeout=300)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "archive could not be" in r.stderr
    rec = json.loads((only_run(outputs) / "record.json").read_text())
    assert rec["status"] == "failed" and "File too large" in rec["error"]
    assert not list(only_run(outputs).glob(".*.tmp"))
    r = run_cli("runs", "list", "--json")
    assert [x["status"] for x in json.loads(r.stdout)] == ["failed"]  # not abandoned later


def test_sigterm_is_archived_quietly(outputs, tmp_path):
    marker = tmp_path / "pid"
    p = start_cli("run", "probe", "-p", "code",
                  "pathlib.Path(os.environ['PROBE_MARKER']).write_text('1')\ntime.sleep(300)",
                  env={"PROBE_MARKER": str(marker)})
    wait_for(marker)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "never retrieved" not in err, err
    assert err.strip().splitlines()[-1].startswith("archive head 1:")
    rec = json.loads((only_run(outputs) / "record.json").read_text())
    assert rec["status"] == "interrupted" and rec["error"] == "terminated (SIGTERM)"


# ---------------------------------------------------------------- huge outputs
def test_a_cell_printing_a_flood_keeps_head_and_tail_and_succeeds(outputs):
    mb = 60
    r = probe(f"for i in range({mb}):\n    sys.stdout.write(f'chunk {{i}} ' + 'y' * (1 << 20))\n"
              "print('THE END')", timeout=600)
    assert r.returncode == 0, r.stderr
    folder = only_run(outputs)
    nb_size = (folder / "notebook.ipynb").stat().st_size
    assert nb_size < 3 << 20
    text = (folder / "notebook.ipynb").read_text()
    assert "chunk 0 " in text and "THE END" in text and "left out here" in text
    capped = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()
              if '"output-capped"' in x]
    assert capped and capped[0]["bytes"] > mb << 20


def test_run_folder_and_archive_stay_private(outputs):
    outputs.mkdir()
    os.chmod(outputs, 0o777)
    assert probe("print(1)").returncode == 0
    assert stat.S_IMODE(outputs.stat().st_mode) == 0o700
