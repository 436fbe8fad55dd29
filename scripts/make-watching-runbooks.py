#!/usr/bin/env python3
"""Write runbooks/lifetime-reaper.ipynb and runbooks/capacity-report.ipynb with nbformat
(committed without outputs).  Re-run after editing the cells here."""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
META = {"kernelspec": {"display_name": "fedcloud (Python 3)", "language": "python",
                       "name": "fedcloud"}, "language_info": {"name": "python"}}


def params(src: str):
    cell = new_code_cell(src.strip("\n"))
    cell.metadata["tags"] = ["parameters"]
    return cell


def md(src: str):
    return new_markdown_cell(src.strip("\n"))


def code(src: str):
    return new_code_cell(src.strip("\n"))


REAPER = [
    md("""
# Lifetime reaper

Enforces instance lifetimes and lists what nothing accounts for.

It deletes the servers past their `fedcloud_expires_at` (builders: 24 h from creation, whatever their metadata says) and tells owners before that happens.

* **Notices**: the owner (`fedcloud_requester`, address from the account system) of a server that expires within `notice_h` hours gets one mail listing their servers, admins copied; each server remembers it in its `fedcloud_expiry_notice` metadata, so nobody is told twice.
* **Deletions** of expired servers need approval: the dry run lists them (`--approve-plan RUN_ID` applies exactly that list). The `/srv` volume is kept unless `delete_volumes` and the class allows it.
* **Orphans** are only listed: volumes attached to nothing and made by no run, snapshots of servers that no longer exist, floating IPs held by nothing, servers without fedcloud metadata. One is deleted only when its id is in `delete_orphans`.

`mode` splits the chores for scheduling: `notify` (safe to run with `--approve` every hour), `reap` (a daily dry run for an operator to approve). `name_prefix` and `match_metadata` limit the scope; by default it is everything in the cloud's project.
"""),
    params("""
cloud: str = ""              # clouds.yaml entry; empty for $OS_CLOUD
policy_file: str = ""        # site policy file; empty for $FEDCLOUD_POLICY or parameters/policy.yaml
mode: str = "both"           # both: notices and deletions; notify: notices only; reap: deletions only [choices=both|notify|reap]
notice_h: int = 48           # tell owners this many hours before expiry (once per server) [min=0; max=720]
name_prefix: str = ""        # only resources whose names start with this; empty for all [max=64]
match_metadata: dict = {}    # only servers, volumes and images whose metadata holds all these pairs
delete_orphans: list = []    # ids of orphans listed by a dry run to delete; no other orphan is ever deleted
delete_volumes: bool = False # also delete an expired server's /srv volume (only if its class allows it)
as_of: str = ""              # plan as if it were this UTC time (ISO 8601); empty for now [pattern=(|\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d(:\\d\\d)?(Z|[+-]\\d\\d:\\d\\d)?)]
approve: bool = False        # apply the plan; without it the run stops after the plan
"""),
    code("""
import fedcloud_lib
from fedcloud_lib import reaper
from fedcloud_lib.cloud import connect
from fedcloud_lib.site import policy as site_policy

policy = site_policy.load(policy_file or None)
"""),
    md("""
## Facts

Every server in scope with its deadline, and the orphans. The time is `as_of` if given, else now — or, when a recorded plan is being approved, the time that plan was made, so that both agree.
"""),
    code("""
conn = connect(cloud)
now = reaper.facts.as_of(as_of, fedcloud_lib.planning_time())
scope = reaper.facts.Scope(name_prefix=name_prefix, metadata=match_metadata)
facts = reaper.facts.gather(conn, policy, now=now, scope=scope, notice_h=notice_h)
"""),
    md("""
## Plan

Each managed server's deadline and state (`expired`, `notice due`, `noticed`, `ok`, `never`, `bad metadata`), the orphans, and the plan. Without `approve` the run stops here: nothing is mailed or deleted.
"""),
    code("""
proposal = reaper.plan.make_plan(policy, facts, mode=mode, notice_h=notice_h,
                                 delete_orphans=delete_orphans, delete_volumes=delete_volumes)
fedcloud_lib.record("summary", proposal.summary())
fedcloud_lib.record("expiry", proposal.expiry_table())
fedcloud_lib.record("orphans", proposal.orphan_table())
approved = fedcloud_lib.require_approval(proposal.plan, approve)
"""),
    md("""
## Apply

Reached only with `approve` (or when the plan changes nothing). Each step is idempotent: a server already gone counts as deleted, a server already told is not told again.
"""),
    code("""
fedcloud_lib.record("reaped", reaper.apply.apply(conn, policy, approved))
"""),
]

REPORT = [
    md("""
# Capacity and usage report

Reports how full the cloud is and who uses it.

Hypervisors (vCPU, RAM, disk used and total, up or down), each project's quota and usage, instances by class, owner, project and age, and servers created and deleted per week — as tables, plots and CSV files next to the run.

Projects near a quota (`quota_warn_pct`) and hosts near full or down (`host_warn_pct`) are flagged. With admin credentials it covers every host and project; with a project's own credentials, that project. It changes nothing.
"""),
    params("""
cloud: str = ""              # clouds.yaml entry (admin: every host and project); empty for $OS_CLOUD
project: str = ""            # report on this project only (name or id); empty for every project [max=64]
weeks: int = 12              # weeks of servers created and deleted to show [min=1; max=104]
quota_warn_pct: int = 80     # flag a project using this % of a quota [min=1; max=100]
host_warn_pct: int = 80      # flag a host using this % of its vCPU, RAM or disk [min=1; max=100]
csv_dir: str = ""            # where the CSV and PNG files go; empty for the run folder
"""),
    code("""
import fedcloud_lib
from fedcloud_lib import report
from fedcloud_lib.cloud import connect
"""),
    md("""
## Inventory

Hosts (Nova services and Placement), projects with quota and usage, live servers and the ones deleted in the window. An unknown `project` stops here.
"""),
    code("""
conn = connect(cloud)
inventory = report.facts.gather(conn, project=project, weeks=weeks)
rep = report.capacity.build(inventory, quota_warn_pct=quota_warn_pct, host_warn_pct=host_warn_pct)
fedcloud_lib.record("summary", rep.summary())
"""),
    md("""
## Tables

Each table is recorded with the run (`fedcloud runs show RUN_ID`) and written as CSV.
"""),
    code("""
for name, table in rep.tables().items():
    fedcloud_lib.record(name, table)
"""),
    md("""
## Plots
"""),
    code("""
images = report.plots.show(report.plots.figures(rep, quota_warn_pct=quota_warn_pct,
                                                host_warn_pct=host_warn_pct))
fedcloud_lib.record("files", report.output.write(rep, report.output.target_dir(csv_dir), images))
"""),
]

for name, cells in (("lifetime-reaper", REAPER), ("capacity-report", REPORT)):
    nb = new_notebook(cells=cells, metadata=META)
    nbformat.validate(nb)
    nbformat.write(nb, ROOT / "runbooks" / f"{name}.ipynb")
    print(f"wrote runbooks/{name}.ipynb")
