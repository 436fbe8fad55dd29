"""capacity-report over HTTP (a synthetic cloud): paging, tables, flags, plots, CSV."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from fedcloud_lib.cloud import connect
from fedcloud_lib.errors import ParameterError
from fedcloud_lib.report import capacity, facts, output, plots
from tests.fakes.openstack import PROJECT_ID, FakeOpenStack

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    with FakeOpenStack() as c:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", c.clouds_yaml(tmp_path / "clouds.yaml"))
        c.add_host("cmp1", vcpus=(100, 85), ram_mb=(1000, 100), disk_gb=(100, 10))
        c.add_host("cmp2", vcpus=(100, 10), ram_mb=(1000, 100), disk_gb=(100, 10))
        c.add_host("cmp3", state="down", forced_down=True)
        yield c


def test_every_page_is_read(cloud):
    cloud.synthetic(2345, deleted=10, projects=3, now=NOW)
    inv = facts.gather(connect("fake"), weeks=52, now=NOW)
    assert len(inv.servers) == 2345
    assert len({s["id"] for s in inv.servers}) == 2345
    pages = [r for r in cloud.requests if "/servers/detail" in r and "deleted" not in r]
    assert len(pages) == 3 and "marker=" in pages[1] and "marker=" in pages[2]


def test_tables_and_flags(cloud):
    cloud.projects.append({"id": "p2", "name": "busy"})
    cloud.quotas = {PROJECT_ID: {"instances": (10, 1), "cores": (20, 2), "ram": (10000, 100),
                                 "volumes": (10, 0), "gigabytes": (100, 0)},
                    "p2": {"instances": (10, 9), "cores": (20, 2), "ram": (10000, 100),
                           "volumes": (10, 0), "gigabytes": (100, 0)}}
    cloud.server("a", created=NOW - dt.timedelta(days=3), project_id="p2",
                 metadata={"fedcloud_class": "dev", "fedcloud_requester": "alice"})
    cloud.server("b", created=NOW - dt.timedelta(days=40), project_id="p2",
                 metadata={"fedcloud_class": "dev", "fedcloud_requester": "bob"})
    cloud.server("c", created=NOW - dt.timedelta(hours=2))
    cloud.server("gone", created=NOW - dt.timedelta(days=9), deleted_at=NOW - dt.timedelta(days=8))
    inv = facts.gather(connect("fake"), weeks=4, now=NOW)
    rep = capacity.build(inv, quota_warn_pct=85, host_warn_pct=80)
    hosts = rep.hosts.set_index("host")
    assert hosts.loc["cmp1", "vcpus_pct"] == 85.0 and hosts.loc["cmp1", "flag"] == "near full"
    assert hosts.loc["cmp2", "flag"] == "" and hosts.loc["cmp3", "flag"] == "down/enabled"
    assert "project busy: instances at 90 % of quota (9/10)" in rep.flags
    assert "host cmp3: down/enabled" in rep.flags and "host cmp1: near full" in rep.flags
    assert dict(zip(rep.by_class["class"], rep.by_class["instances"])) == {"dev": 2, "(none)": 1}
    assert dict(zip(rep.by_project["project"], rep.by_project["instances"])) == {"busy": 2,
                                                                                "admin": 1}
    ages = dict(zip(rep.by_age["age"], rep.by_age["instances"]))
    assert ages["< 1 day"] == 1 and ages["1-7 days"] == 1 and ages["30-90 days"] == 1
    assert rep.weekly["created"].sum() == 3  # b is older than the 4-week window
    assert rep.weekly["deleted"].sum() == 1


def test_one_project_and_an_unknown_one(cloud):
    cloud.quotas = {PROJECT_ID: {"instances": (10, 1)}}
    inv = facts.gather(connect("fake"), project="admin", now=NOW)
    assert inv.project == {"id": PROJECT_ID, "name": "admin"}
    assert "project_id=" + PROJECT_ID in " ".join(r for r in cloud.requests if "servers" in r)
    with pytest.raises(ParameterError, match="project: 'nosuch' .* is not a project") as e:
        facts.gather(connect("fake"), project="nosuch", now=NOW)
    assert e.value.exit_code == 2


def test_bad_thresholds_are_refused():
    inv = facts.Inventory(taken_at=NOW, since=NOW, project=None, projects=(), hosts=(),
                          quotas=(), servers=[], deleted=[])
    for bad in (0, 101, -5, True):
        with pytest.raises(ParameterError, match="quota_warn_pct"):
            capacity.build(inv, quota_warn_pct=bad)
    empty = capacity.build(inv)
    assert empty.flags == () and len(empty.hosts) == 0 and empty.weekly["created"].sum() == 0


def test_plots_and_csv_next_to_the_run(cloud, tmp_path):
    cloud.synthetic(50, deleted=5, projects=2, now=NOW)
    rep = capacity.build(facts.gather(connect("fake"), now=NOW))
    figs = plots.figures(rep)
    assert set(figs) == {"hosts", "quotas", "by_class", "by_age", "weekly"}
    images = {k: plots.png(f) for k, f in figs.items()}
    assert all(data.startswith(b"\x89PNG") for data in images.values())
    written = output.write(rep, tmp_path / "run", images)
    assert len(written) == 7 + 5
    back = pd.read_csv(tmp_path / "run" / "report" / "hosts.csv")
    assert list(back["host"]) == ["cmp1", "cmp2", "cmp3"]
    assert (tmp_path / "run" / "report" / "hosts.csv").stat().st_mode & 0o077 == 0
    assert output.write(rep, None) == []


def test_without_admin_rights_it_reports_on_its_own_project(cloud):
    cloud.forbidden = ("/compute/v2.1/os-services", "/placement")
    cloud.quotas = {PROJECT_ID: {"instances": (10, 1)}}
    cloud.server("mine", created=NOW - dt.timedelta(hours=1))
    inv = facts.gather(connect("fake"), now=NOW)
    rep = capacity.build(inv)
    assert inv.hosts == () and inv.project == {"id": PROJECT_ID, "name": "admin"}
    assert rep.scope == "project admin" and "hosts: not visible" in rep.notes[0]
    assert not any("/identity/v3/projects" in r for r in cloud.requests)
    assert rep.by_class["instances"].sum() == 1
