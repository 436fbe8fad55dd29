"""migrate-instances, the request: every bad parameter refused before any cloud call."""
from __future__ import annotations

import pytest

from fedcloud_lib.errors import ParameterError
from fedcloud_lib.migration.request import migration_id, prepare

pytestmark = pytest.mark.unit
CLOUDS = ["fedcloud-admin", "fedcloud-production", "fedcloud-testing"]


def req(**kw):
    args = {"source_cloud": "fedcloud-testing", "target_cloud": "fedcloud-production",
            "servers": ["web-1"], "known_clouds": CLOUDS, **kw}
    return prepare(**args)


def refused(**kw) -> str:
    with pytest.raises(ParameterError) as e:
        req(**kw)
    assert e.value.exit_code == 2
    return str(e.value)


def test_a_good_request_and_its_stable_id():
    r = req(flavor_map={"m1.small": "m2.small"}, network_map={"old": "provider"})
    assert r.selection.servers == ("web-1",) and r.boot_disk == "copy"
    assert r.stop_source and not r.delete_source and r.keep_boot_image
    assert r.migration_id.startswith("mig-") and len(r.migration_id) == 14
    # the same clouds and selection give the same id (a re-run finds its own work) ...
    assert req(stop_source=False).migration_id == r.migration_id
    assert req(servers=["web-1"]).migration_id == migration_id(
        "fedcloud-testing", "fedcloud-production", r.selection)
    # ... another selection or direction another one
    assert req(servers=["web-2"]).migration_id != r.migration_id
    assert req(source_cloud="fedcloud-production", target_cloud="fedcloud-testing"
               ).migration_id != r.migration_id
    assert req(migration="mig-by-hand").migration_id == "mig-by-hand"
    d = r.to_dict()
    assert d["migration_id"] == r.migration_id and d["flavor_map"] == {"m1.small": "m2.small"}
    assert d["admin_cloud"] == ""  # only recorded when it is used


@pytest.mark.parametrize("kw, expected", [
    ({"source_cloud": "nowhere"}, "source_cloud: 'nowhere' is not an entry of clouds.yaml; "
                                  "known: fedcloud-admin, fedcloud-production, fedcloud-testing"),
    ({"target_cloud": ""}, "target_cloud: a clouds.yaml entry is required"),
    ({"target_cloud": "fedcloud-testing"}, "is the source cloud too"),
    ({"servers": []}, "say which servers to migrate"),
    ({"match": {"fedcloud_class": "dev"}}, "servers, match: choose one way of selecting"),
    ({"servers": [], "ticket": "12", "whole_project": True},
     "ticket, whole_project: choose one way"),
    ({"servers": ["a", "a"]}, "servers: a server is named twice"),
    ({"servers": [""]}, "servers: '' is not a server name or id"),
    ({"servers": [], "ticket": "12a"}, "ticket: '12a' is not a ticket number"),
    ({"flavor_map": {"m1.small": ""}}, "flavor_map: 'm1.small': '' — both names must be"),
    ({"image_map": ["x"]}, "image_map: expected a mapping"),
    ({"network_map": {"a" * 300: "b"}}, "network_map: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'..."
                                        " (300 chars): names are at most 255"),
    ({"boot_disk": "volume"}, "boot_disk: 'volume' is not one of copy, image"),
    ({"delete_source": True, "stop_source": False}, "delete_source: deleting the source needs"),
    ({"estimate_mbs": 0}, "estimate_mbs: '0' must be a positive number"),
    ({"timeout": 5}, "timeout: '5' must be 30..86400"),
    ({"migration": "Mig 1"}, "migration_id: 'Mig 1' does not match"),
    ({"copy_quotas": True, "admin_cloud": "root-cloud"},
     "admin_cloud: 'root-cloud' is not an entry of clouds.yaml"),
])
def test_bad_input_is_refused_naming_the_parameter(kw, expected):
    assert expected in refused(**kw)


def test_every_problem_is_listed_at_once():
    with pytest.raises(ParameterError) as e:
        req(source_cloud="x", servers=[], boot_disk="y")
    assert len(e.value.problems) == 3


def test_other_selections():
    assert req(servers=[], match={"fedcloud_class": "dev"}).selection.describe() == \
        "servers with fedcloud_class=dev"
    assert req(servers=[], ticket="42").selection.describe() == "the servers of ticket 42"
    assert req(servers=[], whole_project=True).selection.describe() == \
        "every server of the project"


def test_selection_matches():
    class S:
        def __init__(self, id, name, metadata):
            self.id, self.name, self.metadata = id, name, metadata
    a = S("1", "web-1", {"fedcloud_class": "dev", "fedcloud_ticket": "42"})
    b = S("2", "db-1", {"fedcloud_class": "qa"})
    assert [s.id for s in (a, b) if req(servers=[], match={"fedcloud_class": "dev"})
            .selection.matches(s)] == ["1"]
    assert [s.id for s in (a, b) if req(servers=[], ticket="42").selection.matches(s)] == ["1"]
    assert [s.id for s in (a, b) if req(servers=["2"]).selection.matches(s)] == ["2"]
    assert [s.id for s in (a, b) if req(servers=[], whole_project=True)
            .selection.matches(s)] == ["1", "2"]


@pytest.mark.parametrize("name", ["testing-to-production.yaml", "dev-class-to-new-cloudlet.yaml"])
def test_the_example_parameter_files_are_valid(name):
    from pathlib import Path

    from fedcloud_lib.params import load_value_files
    from fedcloud_lib.run.values import validate

    path = Path(__file__).resolve().parents[2] / "parameters" / "migrate-instances" / name
    values = validate("migrate-instances", load_value_files([path]))
    r = prepare(source_cloud=values["source_cloud"], target_cloud=values["target_cloud"],
                servers=values["servers"], match=values["match"], ticket=values["ticket"],
                whole_project=values["whole_project"], flavor_map=values["flavor_map"],
                copy_quotas=values["copy_quotas"], admin_cloud=values["admin_cloud"],
                delete_source=values["delete_source"], known_clouds=CLOUDS)
    assert r.migration_id.startswith("mig-")
