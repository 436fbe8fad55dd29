"""The audit archive: one folder per run, an SQLite index, and a hash chain over both.

Layout (like ansible-runner's artifact tree)::

    <outputs>/<runbook>/<YYYY-MM-DD>/<run-id>/
        parameters.yaml   notebook.ipynb   notebook.html   record.json   events.jsonl
        MANIFEST.sha256   (sha256sum format: every other file of the folder)
    <outputs>/index.sqlite

Tamper evidence: when a run is finished it takes the next sequence number; its
``record.json`` names that number and the previous run's entry hash (``chain``), its
``MANIFEST.sha256`` covers every file (record.json included), and its entry hash covers
the manifest's hash, the previous entry hash and the run's summary.  Editing any archived
file, removing a run or reordering entries breaks a link that :meth:`Archive.verify`
reports, naming the run.  Folders are mode 0700 (an existing folder of ours is tightened,
a link or someone else's folder refused); the index is rebuilt from the folders by
:meth:`Archive.reindex`.

Removing the newest runs leaves a shorter chain that is intact: the **head** (sequence
number and entry hash of the newest entry) needs a witness outside the archive.  Every
run prints the head it made (``fedcloud run``'s last line, the ticket answer);
``verify(head=(seq, hash))`` checks the archive still holds that entry; and with the
``head_log`` setting every new head is appended to that file (e.g. on the log host, made
append-only there), which :meth:`Archive.verify` checks line by line when it exists.

Only one process at a time finalises runs: :meth:`Archive.append` runs under the index's
write transaction and refuses a run already indexed before writing anything, and
:meth:`Archive.sweep` reads and finalises abandoned runs under the sweep lock.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import socket
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..config import settings
from ..errors import ArchiveError
from .files import (MANIFEST, append_line, compute_manifest, manifest_text, parse_manifest,
                    private_dir, write_private)

__all__ = ["Archive", "RunEntry", "Problem", "GENESIS", "MANIFEST", "parse_head"]

GENESIS = "0" * 64
RECORD = "record.json"
_COLUMNS = ("seq", "run_id", "runbook", "path", "operator", "host", "cloud", "ticket",
            "status", "exit_code", "started", "ended", "duration", "error", "results",
            "manifest", "manifest_hash", "prev_hash", "entry_hash", "plan_of")
_INSERT = f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY, run_id TEXT UNIQUE NOT NULL, runbook TEXT NOT NULL,
    path TEXT NOT NULL, operator TEXT, host TEXT, cloud TEXT, ticket TEXT, status TEXT,
    exit_code INTEGER, started TEXT, ended TEXT, duration REAL, error TEXT, results TEXT,
    manifest TEXT NOT NULL, manifest_hash TEXT NOT NULL, prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL, plan_of TEXT);
CREATE INDEX IF NOT EXISTS runs_runbook ON runs(runbook);
CREATE INDEX IF NOT EXISTS runs_ticket ON runs(ticket);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
"""


@dataclass(frozen=True)
class RunEntry:
    """One indexed run."""

    seq: int
    run_id: str
    runbook: str
    path: Path
    operator: str | None
    host: str | None
    cloud: str | None
    ticket: str | None
    status: str
    exit_code: int | None
    started: str
    ended: str | None
    duration: float | None
    error: str | None
    results: dict
    manifest: dict
    manifest_hash: str
    prev_hash: str
    entry_hash: str
    plan_of: str | None = None  # the dry run whose recorded plan this run applied


@dataclass(frozen=True)
class Problem:
    """Something `verify` or `reindex` found wrong, naming the run."""

    run_id: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.run_id}: {self.kind}: {self.detail}"


def entry_hash(*, seq: int, run_id: str, path: str, manifest_hash: str, prev_hash: str,
               runbook: str, status: str, started: str, ended: str | None,
               operator: str | None, ticket: str | None, cloud: str | None,
               plan_of: str | None = None) -> str:
    fields = {"seq": seq, "run_id": run_id, "path": path, "manifest_hash": manifest_hash,
              "prev": prev_hash, "runbook": runbook, "status": status, "started": started,
              "ended": ended, "operator": operator, "ticket": ticket, "cloud": cloud}
    if plan_of is not None:  # absent from entries made before plans could be approved
        fields["plan_of"] = plan_of
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _pid_alive(pid: int | None, create_time: float | None, host: str | None) -> bool:
    if host and host != socket.gethostname():
        return True  # another machine's run: we cannot tell, so leave it alone
    if not pid:
        return False
    try:
        p = psutil.Process(pid)
        return create_time is None or abs(p.create_time() - create_time) < 1.0
    except Exception:  # psutil.NoSuchProcess, AccessDenied, ...
        return False


class Archive:
    def __init__(self, outputs: Path | None = None, head_log: Path | None | bool = True):
        cfg = settings() if outputs is None or head_log is True else None
        self.root = Path(outputs if outputs is not None else cfg.outputs)
        self.db_path = self.root / "index.sqlite"
        self.head_log: Path | None = cfg.head_log if head_log is True else (head_log or None)
        self._ensured = False

    # ------------------------------------------------------------------ plumbing
    def ensure(self) -> None:
        """Create the archive root (0700), or tighten ours; refuse a link or another's."""
        if self._ensured:
            return
        if not self.root.exists() and not self.root.is_symlink():
            self.root.parent.mkdir(parents=True, exist_ok=True)
        private_dir(self.root)
        self._ensured = True

    def log_event(self, event: dict, scrub: Callable[[dict], dict] = lambda e: e) -> None:
        """Append one event to ``fedcloud.log`` (refusals, sweeps, archive problems)."""
        self.ensure()
        event = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(), **event}
        safe = {k: v for k, v in scrub(event).items() if k != "time"}
        append_line(self.root / "fedcloud.log",
                    json.dumps({"time": event["time"], **safe}, sort_keys=True))

    @contextmanager
    def _sweep_lock(self) -> Iterator[None]:
        locks = private_dir(self.root / ".locks")
        fd = os.open(locks / "sweep.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.ensure()
        try:
            if stat.S_ISLNK(os.lstat(self.db_path).st_mode):
                raise ArchiveError(f"{self.db_path} is a symbolic link; the archive never "
                                   f"follows links", path=str(self.db_path))
        except FileNotFoundError:
            pass
        con = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            os.chmod(self.db_path, 0o600)
            con.executescript(_SCHEMA)
            cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
            if "plan_of" not in cols:  # an index made before plans could be approved
                con.execute("ALTER TABLE runs ADD COLUMN plan_of TEXT")
            yield con
        finally:
            con.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on the index (one writer at a time, across processes)."""
        with self._db() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def run_folder(self, runbook: str, run_id: str, started: _dt.datetime) -> Path:
        self.ensure()
        folder = self.root / runbook / started.strftime("%Y-%m-%d") / run_id
        for p in (self.root / runbook, folder.parent):
            private_dir(p)
        try:
            os.mkdir(folder, 0o700)
        except OSError as e:
            raise ArchiveError(f"cannot create run folder {folder}: {e.strerror or e}",
                               path=str(folder)) from e
        return folder

    def _row_to_entry(self, row: tuple) -> RunEntry:
        d = dict(zip(_COLUMNS, row))
        d["path"] = self.root / d["path"]
        d["results"] = json.loads(d["results"] or "{}")
        d["manifest"] = json.loads(d["manifest"] or "{}")
        return RunEntry(**d)

    # ------------------------------------------------------------------ writing
    def append(self, folder: Path, record: dict, write_record) -> RunEntry:
        """Give a finished run folder its place in the chain and index it.

        ``record`` is what is archived (already scrubbed); ``write_record(record)`` writes
        record.json.  Everything happens inside the index's write transaction, and nothing
        is written for a run the index already holds (ArchiveError): a run is finalised
        once.  The new head is then added to the head log, if one is configured.
        """
        rel = str(folder.relative_to(self.root))
        with self._write() as con:
            if con.execute("SELECT 1 FROM runs WHERE run_id = ?", (record["run_id"],)).fetchone():
                raise ArchiveError(f"run {record['run_id']} is already archived and indexed; "
                                   f"nothing was written", run_id=record["run_id"])
            row = con.execute("SELECT seq, entry_hash FROM runs ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            record["chain"] = {"seq": seq, "prev": prev}
            write_record(record)
            manifest = compute_manifest(folder)
            mtext = manifest_text(manifest)
            write_private(folder / MANIFEST, mtext)
            mhash = hashlib.sha256(mtext.encode()).hexdigest()
            values = self._values(record, rel, manifest, mhash, seq, prev)
            con.execute(_INSERT, values)
        entry = self._row_to_entry(values)
        self._witness(entry)
        return entry

    # ------------------------------------------------------------------ the head and its witness
    def head(self) -> tuple[int, str] | None:
        """(sequence number, entry hash) of the newest entry, or None for an empty archive."""
        with self._db() as con:
            row = con.execute("SELECT seq, entry_hash FROM runs ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    @property
    def identity(self) -> str:
        """How the head log names this archive (host and real path)."""
        return f"{socket.gethostname()}:{self.root.resolve()}"

    def _witness(self, entry: RunEntry) -> None:
        if self.head_log is None:
            return
        line = json.dumps({"archive": self.identity, "seq": entry.seq, "hash": entry.entry_hash,
                           "run_id": entry.run_id, "time": entry.ended or entry.started},
                          sort_keys=True)
        try:
            append_line(self.head_log, line)
        except OSError as e:  # the run is archived; say loudly that its head is not witnessed
            self.log_event({"event": "head-log", "status": "failed", "run_id": entry.run_id,
                            "message": f"cannot append to the head log {self.head_log}: "
                                       f"{e.strerror or e}"})
            raise ArchiveError(f"run {entry.run_id} is archived (exit 1: its head is not "
                               f"witnessed), but its head {entry.seq}:{entry.entry_hash} could "
                               f"not be added to the head log {self.head_log}: "
                               f"{e.strerror or e}", run_id=entry.run_id) from e

    def _check_head(self, seq: int, digest: str, by_seq: dict[int, "RunEntry"], where: str
                    ) -> list[Problem]:
        e = by_seq.get(seq)
        last = max(by_seq) if by_seq else 0
        if e is None:
            what = ("the archive ends at #%d: its newest run(s) were removed (tail truncation)"
                    % last if seq > last else "that entry was removed")
            return [Problem(f"run #{seq}", "head missing", f"{where} witnessed #{seq}; {what}")]
        if not e.entry_hash.startswith(digest.lower()):
            return [Problem(e.run_id, "head rewritten",
                            f"{where} witnessed #{seq} as {digest[:16]}..., the index holds "
                            f"{e.entry_hash[:16]}... (the run was replaced or re-chained)")]
        return []

    def _check_head_log(self, by_seq: dict[int, "RunEntry"]) -> list[Problem]:
        if self.head_log is None or not self.head_log.exists():
            return []
        problems: list[Problem] = []
        try:
            lines = self.head_log.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            return [Problem("head log", "unreadable", f"{self.head_log}: {e}")]
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                w = json.loads(line)
                if w.get("archive") != self.identity:
                    continue  # another archive's head
                seq, digest = int(w["seq"]), str(w["hash"])
            except (ValueError, KeyError, TypeError, AttributeError):
                problems.append(Problem("head log", "unreadable",
                                        f"{self.head_log} line {n} is not a head record"))
                continue
            problems += self._check_head(seq, digest, by_seq, f"the head log (line {n})")
        return problems

    @staticmethod
    def _values(record: dict, rel: str, manifest: dict, mhash: str, seq: int, prev: str) -> tuple:
        eh = entry_hash(seq=seq, run_id=record["run_id"], path=rel, manifest_hash=mhash,
                        prev_hash=prev, runbook=record["runbook"], status=record["status"],
                        started=record["started"], ended=record.get("ended"),
                        operator=record.get("operator"), ticket=record.get("ticket"),
                        cloud=record.get("cloud"), plan_of=record.get("plan_of"))
        return (seq, record["run_id"], record["runbook"], rel, record.get("operator"),
                record.get("host"), record.get("cloud"), record.get("ticket"), record["status"],
                record.get("exit_code"), record["started"], record.get("ended"),
                record.get("duration"), record.get("error"),
                json.dumps(record.get("results") or {}, sort_keys=True),
                json.dumps(manifest, sort_keys=True), mhash, prev, eh, record.get("plan_of"))

    # ------------------------------------------------------------------ reading
    def list(self, *, runbook: str | None = None, ticket: str | None = None,
             status: str | None = None, operator: str | None = None, cloud: str | None = None,
             since: str | None = None, resource: str | None = None) -> list[RunEntry]:
        where, args = [], []
        for col, val in (("runbook", runbook), ("ticket", ticket), ("status", status),
                         ("operator", operator), ("cloud", cloud)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if since is not None:
            where.append("started >= ?")
            args.append(since)
        if resource is not None:
            where.append("instr(results, ?) > 0")
            args.append(resource)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._db() as con:
            return [self._row_to_entry(r) for r in con.execute(sql + " ORDER BY seq", args)]

    def find(self, run_id: str) -> RunEntry:
        with self._db() as con:
            rows = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE run_id = ? "
                               f"OR run_id LIKE ?", (run_id, run_id + "%")).fetchall()
        if not rows:
            raise ArchiveError(f"no archived run {run_id!r} in {self.root} "
                               f"(`fedcloud runs list` shows the runs)", run_id=run_id)
        if len(rows) > 1:
            raise ArchiveError(f"{run_id!r} matches {len(rows)} runs; give more of the run id",
                               run_id=run_id)
        return self._row_to_entry(rows[0])

    def folders(self) -> list[Path]:
        """Every run folder on disk (those with a record.json)."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent for p in self.root.glob(f"*/*/*/{RECORD}"))

    @staticmethod
    def read_record(folder: Path) -> dict:
        try:
            return json.loads((folder / RECORD).read_text())
        except (OSError, ValueError) as e:
            raise ArchiveError(f"{folder}: unreadable {RECORD}: {e}", path=str(folder)) from e

    # ------------------------------------------------------------------ abandoned runs
    def _abandoned(self) -> list[tuple[Path, dict]]:
        out = []
        for folder in self.folders():
            try:
                rec = self.read_record(folder)
            except ArchiveError:
                continue
            if rec.get("status") != "running" or "chain" in rec:
                continue
            if _pid_alive(rec.get("pid"), rec.get("pid_started"), rec.get("host")):
                continue
            out.append((folder, rec))
        return out

    def sweep(self, finalize) -> list[str]:
        """Finish runs whose fedcloud process died (status 'running', process gone).

        ``finalize(folder, record)`` archives such a run as 'abandoned'.  Sweeps run one
        at a time (the sweep lock), and each run is read again and checked against the
        index under that lock, so concurrent commands never finalise a run twice.
        Returns the ids of the runs finalised here.
        """
        if not self._abandoned():  # the common case: nothing to do, no lock taken
            return []
        done = []
        with self._sweep_lock():
            for folder, rec in self._abandoned():
                with self._db() as con:
                    if con.execute("SELECT 1 FROM runs WHERE run_id = ?",
                                   (rec.get("run_id"),)).fetchone():
                        continue
                finalize(folder, rec)
                done.append(rec["run_id"])
        return done

    # ------------------------------------------------------------------ verification
    def applied_by(self, run_id: str) -> list[RunEntry]:
        """The runs that applied the plan recorded by ``run_id``."""
        with self._db() as con:
            return [self._row_to_entry(r) for r in con.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE plan_of = ? ORDER BY seq",
                (run_id,))]

    def verify(self, upto: int | None = None, head: tuple[int, str] | None = None
               ) -> list[Problem]:
        """Check every index entry, its folder and the chain; return what is wrong.

        ``upto``: check only the entries up to that sequence number (and the chain that
        leads to it), e.g. before trusting what that run recorded.  ``head``: a witnessed
        (sequence number, entry hash or a prefix of 12+ hex digits) that must still be in
        the archive.  The head log, when configured and present, is checked too.
        """
        problems: list[Problem] = []
        entries = self.list()
        by_seq = {e.seq: e for e in entries}
        if head is not None:
            problems += self._check_head(head[0], head[1], by_seq, "the given head")
        if upto is None:
            problems += self._check_head_log(by_seq)
        if upto is not None:
            entries = [e for e in entries if e.seq <= upto]
        on_disk = {str(f.relative_to(self.root)): f for f in self.folders()}
        by_seq_on_disk = {}
        for rel, f in on_disk.items():
            try:
                rec = self.read_record(f)
            except ArchiveError:
                continue
            if "chain" in rec:
                by_seq_on_disk[rec["chain"].get("seq")] = rec.get("run_id", rel)
        prev_hash, expected_seq = GENESIS, 1
        for e in entries:
            if e.seq != expected_seq:
                for missing in range(expected_seq, e.seq):
                    who = by_seq_on_disk.get(missing, f"run #{missing}")
                    problems.append(Problem(who, "removed from index",
                                            f"entry #{missing} is missing from the index"))
            if e.prev_hash != prev_hash:
                problems.append(Problem(e.run_id, "chain broken",
                                        f"entry #{e.seq} does not follow the entry before it "
                                        f"(entries reordered, removed or edited)"))
            recomputed = entry_hash(seq=e.seq, run_id=e.run_id, path=str(e.path.relative_to(self.root)),
                                    manifest_hash=e.manifest_hash, prev_hash=e.prev_hash,
                                    runbook=e.runbook, status=e.status, started=e.started,
                                    ended=e.ended, operator=e.operator, ticket=e.ticket,
                                    cloud=e.cloud, plan_of=e.plan_of)
            if recomputed != e.entry_hash:
                problems.append(Problem(e.run_id, "index entry edited",
                                        f"entry #{e.seq}'s fields do not match its hash"))
            problems += self._verify_folder(e)
            on_disk.pop(str(e.path.relative_to(self.root)), None)
            prev_hash, expected_seq = e.entry_hash, e.seq + 1
        if upto is not None:
            if expected_seq <= upto:
                problems.append(Problem(f"run #{upto}", "removed from index",
                                        f"entries #{expected_seq}..#{upto} are missing"))
            return problems
        for rel, folder in on_disk.items():
            try:
                rec = self.read_record(folder)
            except ArchiveError as err:
                problems.append(Problem(rel, "unreadable run folder", str(err)))
                continue
            if rec.get("status") == "running" and "chain" not in rec:
                continue  # still running
            problems.append(Problem(rec.get("run_id", rel), "not in index",
                                    f"{rel} is archived but not indexed (run `fedcloud runs reindex`)"))
        return problems

    def _verify_folder(self, e: RunEntry) -> list[Problem]:
        out: list[Problem] = []
        if not e.path.is_dir():
            return [Problem(e.run_id, "run folder missing", f"{e.path} was removed")]
        actual = compute_manifest(e.path)
        for name in sorted(set(e.manifest) | set(actual)):
            if name not in actual:
                out.append(Problem(e.run_id, "file missing", f"{name} was removed"))
            elif name not in e.manifest:
                out.append(Problem(e.run_id, "file added", f"{name} was added after archiving"))
            elif actual[name] != e.manifest[name]:
                out.append(Problem(e.run_id, "file edited", f"{name} was changed after archiving"))
        try:
            mtext = (e.path / MANIFEST).read_text()
            if hashlib.sha256(mtext.encode()).hexdigest() != e.manifest_hash:
                out.append(Problem(e.run_id, "file edited", f"{MANIFEST} was changed after archiving"))
        except OSError:
            out.append(Problem(e.run_id, "file missing", f"{MANIFEST} was removed"))
        try:
            chain = self.read_record(e.path).get("chain", {})
            if chain.get("seq") != e.seq or chain.get("prev") != e.prev_hash:
                out.append(Problem(e.run_id, "chain broken",
                                   f"record.json places the run at #{chain.get('seq')}, "
                                   f"the index at #{e.seq} (entries reordered)"))
        except ArchiveError as err:
            out.append(Problem(e.run_id, "file edited", str(err)))
        return out

    def reindex(self) -> tuple[int, list[Problem]]:
        """Rebuild the index from the run folders. Returns (runs indexed, problems found)."""
        problems: list[Problem] = []
        records = []
        for folder in self.folders():
            try:
                rec = self.read_record(folder)
            except ArchiveError as err:
                problems.append(Problem(str(folder.relative_to(self.root)), "unreadable", str(err)))
                continue
            if "chain" not in rec:
                if rec.get("status") != "running":
                    problems.append(Problem(rec.get("run_id", folder.name), "not chained",
                                            "finished but never indexed; left out"))
                continue
            records.append((rec["chain"]["seq"], folder, rec))
        records.sort(key=lambda t: t[0])
        rows, prev, expected, used = [], GENESIS, 1, set()
        for seq, folder, rec in records:
            rel = str(folder.relative_to(self.root))
            if seq in used:
                problems.append(Problem(rec["run_id"], "cannot verify",
                                        f"another run already claims #{seq}; left out"))
                continue
            used.add(seq)
            if seq != expected:
                problems.append(Problem(rec["run_id"], "chain broken",
                                        f"run #{seq} follows #{expected - 1}: "
                                        f"{seq - expected} run(s) missing before it"))
            if rec["chain"].get("prev") != prev:
                problems.append(Problem(rec["run_id"], "cannot verify",
                                        "its link to the previous run does not match "
                                        "(previous run removed, edited or reordered)"))
            try:
                mtext = (folder / MANIFEST).read_text()
            except OSError:
                problems.append(Problem(rec["run_id"], "cannot verify", f"{MANIFEST} is missing"))
                mtext = manifest_text(compute_manifest(folder))
            listed = parse_manifest(mtext)
            actual = compute_manifest(folder)
            for name in sorted(set(listed) | set(actual)):
                if listed.get(name) != actual.get(name):
                    problems.append(Problem(rec["run_id"], "cannot verify",
                                            f"{name} differs from the run's manifest"))
            mhash = hashlib.sha256(mtext.encode()).hexdigest()
            values = self._values(rec, rel, listed, mhash, seq, rec["chain"].get("prev", ""))
            rows.append(values)
            prev, expected = values[_COLUMNS.index("entry_hash")], seq + 1
        with self._write() as con:
            con.execute("DELETE FROM runs")
            con.executemany(_INSERT, rows)
        return len(rows), problems


def parse_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as ``fedcloud run`` prints it) as (seq, hash); ValueError if malformed."""
    seq, sep, digest = text.strip().lstrip("#").partition(":")
    digest = digest.strip().lower()
    if not sep or not seq.isdigit() or len(digest) < 12 or \
            any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{text[:80]!r} is not SEQ:HASH (a sequence number, a colon, and the "
                         f"entry hash or at least its first 12 hex digits)")
    return int(seq), digest
