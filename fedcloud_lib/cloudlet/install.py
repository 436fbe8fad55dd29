"""The cloudlet-install procedure: facts, plan, apply (ansible), content, timings."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from .. import progress
from ..plan import Plan, Step
from . import content, supervisor
from .programs import log_of
from .runner import PlaybookRun, require_success, run_playbook
from .secrets import ensure_secrets
from .settings import STATE_DIR, CloudletSettings, programs_for


def facts(settings: CloudletSettings) -> list[dict[str, Any]]:
    """What is there now, per host (local hosts are inspected; remote ones are not)."""
    rows = []
    running = {p.name: p.state for p in supervisor.status()} if settings.local else {}
    for h in settings.hosts:
        progs = programs_for(h.roles, h.compute_names)
        if h.local:
            done = STATE_DIR / "done"
            rows.append({
                "host": h.name,
                "packages": "installed" if Path("/usr/bin/nova-manage").exists() else "missing",
                "configured": "yes" if supervisor.PROGRAMS_CONF.exists() or (done / "nova-db").exists() else "no",
                "databases": ", ".join(sorted(p.name[:-3] for p in done.glob("*-db"))) if done.exists() else "",
                "running": f"{sum(1 for p in progs if running.get(p) == 'RUNNING')}/{len(progs)}",
                "not running": ", ".join(p for p in progs if running.get(p) != "RUNNING"),
            })
        else:
            rows.append({"host": h.name, "packages": "unknown (remote: see the check-mode plan)",
                         "configured": "unknown", "databases": "", "running": "unknown",
                         "not running": ""})
    rows_extra = {
        "secrets file": "present" if settings.secrets_file.exists() else "missing",
        "clouds.yaml": "present" if content.CLOUDS_YAML.exists() else "missing",
    }
    for r in rows:
        r.update(rows_extra)
    return rows


def installed(settings: CloudletSettings, host_facts: list[dict[str, Any]]) -> bool:
    return settings.secrets_file.exists() and all(
        f["configured"] in ("yes", "unknown") for f in host_facts)


def plan(settings: CloudletSettings, host_facts: list[dict[str, Any]],
         out: Callable[[str], None] | None = None) -> tuple[Plan, PlaybookRun | None]:
    """The plan: a fresh install lists hosts, roles and programs; an installed cloudlet
    is compared by a check-mode ansible run (what ansible would change)."""
    actions: list[Step] = []
    check_run = None
    if not settings.secrets_file.exists():
        actions.append(Step("create", "secrets file", str(settings.secrets_file),
                              "generated passwords, root only (0600), never printed"))
    if not installed(settings, host_facts):
        for h in settings.hosts:
            progs = programs_for(h.roles, h.compute_names)
            actions.append(Step("create", "host", h.name,
                                  f"{', '.join(h.roles)} via {'local connection' if h.local else 'ssh'}: "
                                  f"packages, configuration, {len(progs)} programs"))
            for p in progs:
                actions.append(Step("create", "program", f"{h.name}/{p}",
                                      f"{settings.service_mode}; log {log_of(p)}"))
    else:
        check_run = run_playbook(settings, check=True,
                                 out=out or (lambda s: progress.say(f"check: {s}")))
        require_success(check_run)
        for t in check_run.changed:
            if t.task.startswith(("Which ", "Is ", "Wait ")):
                continue
            actions.append(Step("update", "ansible task", f"{t.host}: {t.task}", "would change"))
        for f in host_facts:
            if f.get("not running"):
                actions.append(Step("update", "programs", f["host"], "start: " + f["not running"]))
        if not actions:
            actions.append(Step("keep", "cloudlet", settings.cloudlet,
                                  "installed, configured and running: re-run re-verifies"))
    actions.append(Step("create" if not content.CLOUDS_YAML.exists() else "keep", "clouds.yaml",
                          str(content.CLOUDS_YAML),
                          "entries fedcloud-admin, fedcloud-production, fedcloud-testing (0600)"))
    actions.append(Step("keep" if installed(settings, host_facts) else "create", "content",
                          "projects production/testing",
                          "users, quotas, flavors m1.*, image fedora-cloud-test, network provider "
                          "(created when missing)"))
    return Plan.of(f"cloudlet {settings.cloudlet} install", actions), check_run


def apply(settings: CloudletSettings, out: Callable[[str], None] | None = None) -> PlaybookRun:
    """Generate missing secrets, run the playbook, fail with the failed tasks named."""
    ensure_secrets(settings.secrets_file)
    run = run_playbook(settings, out=out)
    return require_success(run)


def setup_content(settings: CloudletSettings, out: Callable[[str], None] | None = None):
    """clouds.yaml and the cloudlet content; returns rows for a table."""
    import pandas as pd

    changed = content.write_clouds_yaml(settings)
    rows = [{"kind": "clouds.yaml", "name": str(content.CLOUDS_YAML),
             "action": "updated" if changed else "present"}]
    rows += [{"kind": r.kind, "name": r.name, "action": r.action}
             for r in content.ensure_content(settings, out=out)]
    return pd.DataFrame(rows, columns=["kind", "name", "action"])


class Timer:
    """Named wall-clock timings for the closing table."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._t: dict[str, float] = {}

    def start(self, name: str) -> None:
        self._t[name] = time.monotonic()

    def stop(self, name: str, note: str = "") -> float:
        s = round(time.monotonic() - self._t.pop(name), 1)
        self.rows.append({"step": name, "seconds": s, "note": note})
        return s


def ansible_timings(run: PlaybookRun) -> list[dict[str, Any]]:
    """Split an install run's wall time into apt (the packages task) and the rest."""
    apt = sum(t.seconds for t in run.tasks if t.task.startswith("Install the OpenStack packages"))
    return [
        {"step": "ansible: packages (apt)", "seconds": round(apt, 1), "note": "task 'Install the OpenStack packages'"},
        {"step": "ansible: configuration and services", "seconds": round(run.seconds - apt, 1),
         "note": f"{len(run.changed)} tasks changed"},
    ]
