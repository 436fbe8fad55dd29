#!/usr/bin/env python3
"""The headline SOP end to end on the local cloudlet: a ticket becomes an instance.

``make demo`` runs this after installing the cloudlet.  It shows what an operator does:

1. a request ticket is filed (a local ticket file, a fresh ticket number each time);
2. ``fedcloud ticket show`` — what the ticket asks for, checked against the site policy
   and the account system (here ``accounts.source: file``: parameters/demo/accounts/);
3. ``fedcloud ticket run N`` — a dry run: the plan is answered on the ticket;
4. ``fedcloud ticket run N --approve-plan RUN_ID`` — exactly that plan is applied: the
   instance is made on the cloudlet, the requester is mailed (a local SMTP sink started
   here keeps the mail), and the ticket is answered;
5. the ticket is closed: asking again is refused, ``--retire`` retires the instance;
6. ``fedcloud runs list`` (today's runs) and ``fedcloud runs verify``.

Everything lives in ``demo-work/<ticket>/`` (the ticket file and its answers, the policy
copy, the mails in ``mail.txt``); the runs go to the archive (``outputs/``).  The SMTP sink
is stopped whatever happens, and an instance made by a demo that fails halfway is
retired on the way out, so the demo can be run again at once.
"""
from __future__ import annotations

import argparse
import json
import mailbox
import os
import socket
import subprocess
import sys
import time
from email import policy as email_policy
from pathlib import Path

import yaml
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "parameters" / "demo"
FEDCLOUD = [sys.executable, "-m", "fedcloud_lib.cli"]
CLOUD = "fedcloud-testing"
OPERATOR = "demo-operator"


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def fedcloud(*args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """Run ``fedcloud ARGS`` as an operator would, its output streaming to this terminal."""
    print("$ fedcloud " + " ".join(args), flush=True)
    r = subprocess.run([*FEDCLOUD, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(r.stdout)
    sys.stdout.flush()
    if r.returncode not in expect:
        raise SystemExit(f"demo: `fedcloud {' '.join(args)}` exited {r.returncode} "
                         f"(expected {' or '.join(map(str, expect))})")
    return r


class SmtpSink:
    """aiosmtpd in its own process, keeping every mail in a maildir."""

    def __init__(self, folder: Path) -> None:
        self.maildir = folder / "maildir"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None

    @retry(retry=retry_if_exception_type(OSError), stop=stop_after_delay(15), wait=wait_fixed(0.2),
           reraise=True)
    def _accepts(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise SystemExit(f"demo: the SMTP sink exited ({self.proc.returncode})")
        socket.create_connection(("127.0.0.1", self.port), timeout=1).close()

    def __enter__(self) -> "SmtpSink":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._accepts()
        print(f"SMTP sink (aiosmtpd, pid {self.proc.pid}) on 127.0.0.1:{self.port}; "
              f"mails kept in {self.maildir}", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        print(f"SMTP sink stopped (pid {self.proc.pid if self.proc else '-'})", flush=True)

    def mails(self) -> list:
        if not self.maildir.exists():
            return []
        box = mailbox.Maildir(self.maildir, factory=None, create=False)
        return sorted((m for m in box), key=lambda m: m.get("Date", ""))


def show_mail(msg, keep: Path) -> None:
    from email import message_from_bytes

    parsed = message_from_bytes(msg.as_bytes(), policy=email_policy.default)
    body = parsed.get_body(preferencelist=("plain",))
    text = (f"From: {parsed['From']}\nTo: {parsed['To']}\nCc: {parsed.get('Cc', '')}\n"
            f"Subject: {parsed['Subject']}\n\n{body.get_content() if body else ''}")
    print("\n".join("  | " + line for line in text.splitlines()), flush=True)
    with keep.open("a", encoding="utf-8") as f:
        f.write(text + "\n" + "-" * 72 + "\n")


def last_answer(ticket_file: Path) -> str:
    comments = yaml.safe_load(ticket_file.read_text()).get("comments") or []
    return comments[-1] if comments else "(no answer)"


def show_answer(ticket_file: Path) -> None:
    print(f"-- the answer on the ticket ({ticket_file.name}):")
    print("\n".join("  > " + line for line in last_answer(ticket_file).splitlines()), flush=True)


def set_status(ticket_file: Path, status: str) -> None:
    data = yaml.safe_load(ticket_file.read_text())
    data["status"] = status
    ticket_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def latest_run(ticket: str, runbook: str) -> dict:
    r = subprocess.run([*FEDCLOUD, "runs", "list", "--ticket", ticket, "--runbook", runbook,
                        "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
    runs = json.loads(r.stdout)
    if not runs:
        raise SystemExit(f"demo: no {runbook} run for ticket {ticket} in the archive")
    return max(runs, key=lambda x: x["started"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ticket", help="ticket number (default: a fresh one)")
    ap.add_argument("--keep", action="store_true", help="leave the instance (retire it later "
                    "with the command printed at the end)")
    ap.add_argument("--work", default=os.environ.get("FEDCLOUD_DEMO_DIR", str(ROOT / "demo-work")),
                    help="work folder (default: demo-work/)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    ticket = args.ticket or time.strftime("%m%d%H%M%S")
    work = Path(args.work) / ticket
    work.mkdir(parents=True, exist_ok=True)
    ticket_file = work / "ticket.yaml"
    policy_file = work / "policy.yaml"
    mail_file = work / "mail.txt"
    os.environ.setdefault("FEDCLOUD_OPERATOR", OPERATOR)
    made = retired = False
    with SmtpSink(work) as smtp:
        pol = yaml.safe_load((DEMO / "policy.yaml").read_text())
        pol["accounts"]["path"] = str(DEMO / "accounts")
        pol["mail"]["port"] = smtp.port
        policy_file.write_text(yaml.safe_dump(pol, sort_keys=False))
        if not ticket_file.exists():
            data = yaml.safe_load((DEMO / "ticket.yaml").read_text())
            data["id"] = int(ticket)
            ticket_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        src = ["--file", str(ticket_file), "--policy", str(policy_file)]
        try:
            banner(f"1. ticket {ticket} asks for an instance (filed by 'demo')")
            print(yaml.safe_load(ticket_file.read_text())["body"])
            banner("2. what would run: checked against the policy and the account files, "
                   "no cloud call")
            fedcloud("ticket", "show", ticket, *src)
            banner("3. dry run: the plan, answered on the ticket")
            fedcloud("ticket", "run", ticket, *src, "--cloud", CLOUD)
            show_answer(ticket_file)
            plan_run = latest_run(ticket, "instance-for-ticket")["run_id"]
            banner(f"4. the operator approves exactly that plan (run {plan_run})")
            made = True
            fedcloud("ticket", "run", ticket, *src, "--approve-plan", plan_run)
            show_answer(ticket_file)
            mails = smtp.mails()
            print(f"-- {len(mails)} mail(s) in the SMTP sink (kept in {mail_file}):")
            for m in mails:
                show_mail(m, mail_file)
            if args.keep:
                banner("5. the instance stays (--keep)")
            else:
                banner("5. the ticket is closed: no new instance for it, only its retirement")
                set_status(ticket_file, "Closed")
                fedcloud("ticket", "run", ticket, *src, "--approve", expect=(2,))
                fedcloud("ticket", "run", ticket, *src, "--retire", "--delete-volume",
                         "--approve", "--cloud", CLOUD)
                retired = True
                show_answer(ticket_file)
                for m in smtp.mails()[len(mails):]:
                    show_mail(m, mail_file)
            banner("6. the audit record")
            fedcloud("runs", "list", "--since", time.strftime("%Y-%m-%d"))
            fedcloud("runs", "verify")
        finally:
            if made and not retired and not args.keep:
                print(f"demo: retiring what ticket {ticket} got before stopping", flush=True)
                set_status(ticket_file, "Closed")
                subprocess.run([*FEDCLOUD, "ticket", "run", ticket, *src, "--retire",
                                "--delete-volume", "--approve", "--cloud", CLOUD,
                                "--no-comment"], cwd=ROOT)
    banner(f"done in {time.monotonic() - t0:.0f} s")
    print(f"ticket file and answers: {ticket_file}\nmails: {mail_file}")
    if args.keep:
        print(f"retire the instance with: fedcloud ticket run {ticket} --file {ticket_file} "
              f"--policy {policy_file} --retire --delete-volume --approve --cloud {CLOUD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
