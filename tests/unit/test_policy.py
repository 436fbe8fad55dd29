"""Site policy: loading, validation errors, request checks."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from fedcloud_lib.errors import ConfigError, PolicyError
from fedcloud_lib.instance import request as ireq
from fedcloud_lib.site import policy as pol

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def site() -> pol.Policy:
    return pol.load(pol.DEFAULT_POLICY_PATH)


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(pol.DEFAULT_POLICY_PATH.read_text())


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_site_policy_loads_with_the_four_classes(site):
    assert {"dev", "qa", "test", "builder"} <= set(site.classes)
    assert site.classes["dev"].persistent and site.classes["dev"].max_lifetime_h is None
    assert site.classes["dev"].default_lifetime_h is None
    assert not site.classes["qa"].persistent and site.classes["qa"].max_lifetime_h
    assert site.classes["builder"].max_lifetime_h == 24
    assert site.network.ingress_tcp == (22, 80, 443)
    assert {"sysadmin-main", "sysadmin-cloud"} <= set(site.admin_groups)
    assert {k.name for k in site.root_keys} == {"sysadmin-main", "sysadmin-cloud"}
    assert site.quota_for("production").instances == 60
    assert site.quota_for("nonesuch") == site.quotas["default"]


def test_env_variable_selects_the_policy_file(tmp_path, raw, monkeypatch):
    raw["classes"]["dev"]["max_volume_gb"] = 7
    monkeypatch.setenv("FEDCLOUD_POLICY", str(write(tmp_path, raw)))
    assert pol.load().classes["dev"].max_volume_gb == 7


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.pop("classes"), "'classes' is a required property"),
    (lambda d: d["classes"]["dev"].update(max_volume_gb=-1), "classes.dev.max_volume_gb"),
    (lambda d: d["classes"]["dev"].update(colour="red"), "'colour' was unexpected"),
    (lambda d: d["classes"]["qa"].update(max_lifetime_h=None, default_lifetime_h=None),
     "classes.qa.max_lifetime_h: a transient class needs a bounded lifetime"),
    (lambda d: d["classes"]["test"].update(default_image="rawhide"),
     "classes.test.default_image: 'rawhide' is not one of its images"),
    (lambda d: d["classes"]["qa"].update(default_lifetime_h=9999),
     "classes.qa.default_lifetime_h: 9999 must be set and at most max_lifetime_h (720)"),
    (lambda d: d["network"].update(ingress_tcp=[22, 80, 443, 5432]),
     "network.ingress_tcp: [22, 80, 443, 5432]"),
    (lambda d: d["mail"].update({"from": "not-an-address"}), "mail.from"),
    (lambda d: d["root_keys"].append({"name": "x", "key": "-----BEGIN PRIVATE KEY-----"}),
     "root_keys.2.key"),
])
def test_invalid_policy_is_refused_naming_the_field(tmp_path, raw, mutate, expected):
    mutate(raw)
    with pytest.raises(ConfigError) as e:
        pol.load(write(tmp_path, raw))
    assert expected in str(e.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        pol.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        pol.load(bad)


def request(site, **kw):
    args = dict(ticket="101", requester="alice", purpose="web app", instance_class="dev",
                name="web-1", now=NOW)
    args.update(kw)
    return ireq.check_request(site, **args)


def test_defaults_come_from_the_class(site):
    r = request(site)
    assert (r.flavor, r.image, r.volume_gb, r.expires_at) == ("m1.small", "fedora-cloud-test",
                                                              0, None)
    q = request(site, instance_class="qa")
    assert q.expires_at == NOW + dt.timedelta(hours=site.classes["qa"].default_lifetime_h)
    b = request(site, instance_class="builder")
    assert b.flavor == "m1.builder" and b.expires_at == NOW + dt.timedelta(hours=24)


@pytest.mark.parametrize("expires, hours", [("36h", 36), ("14d", 336), ("2w", 336),
                                            ("2026-12-01", 6 * 24 + 12),
                                            ("2026-11-25T12:00:00Z", 24)])
def test_expiry_forms(site, expires, hours):
    r = request(site, instance_class="qa", expires=expires)
    assert r.expires_at - NOW == dt.timedelta(hours=hours)


@pytest.mark.parametrize("kw, expected", [
    (dict(name="Web_1"), "name: 'Web_1' is not a valid DNS label"),
    (dict(name="-web"), "not a valid DNS label"),
    (dict(name="a" * 64), "not a valid DNS label"),
    (dict(flavor="m1.builder"), "flavor: 'm1.builder' is not allowed for class dev; allowed: "
                                "m1.tiny, m1.small, m1.medium"),
    (dict(image="windows"), "image: 'windows' is not allowed for class dev; allowed: "
                            "fedora-cloud-test"),
    (dict(volume_gb=101), "volume_gb: 101 is outside what class dev allows (0 to 100 GiB)"),
    (dict(instance_class="builder", volume_gb=1), "(0 to 0 GiB)"),
    (dict(instance_class="builder", expires="25h"), "beyond the class lifetime; at most 24 h"),
    (dict(instance_class="test", expires="never"), "'never' is not allowed"),
    (dict(instance_class="qa", expires="2020-01-01"), "is in the past"),
    (dict(instance_class="qa", expires="soonish"), "neither a duration"),
])
def test_requests_outside_the_class_are_refused(site, kw, expected):
    with pytest.raises(PolicyError) as e:
        request(site, **kw)
    assert expected in str(e.value)


def test_unknown_class_names_the_allowed_ones(site):
    with pytest.raises(PolicyError, match="allowed: builder, dev, qa, test"):
        request(site, instance_class="gpu")


def test_every_problem_is_reported_at_once(site):
    with pytest.raises(PolicyError) as e:
        request(site, name="X", flavor="huge", volume_gb=999)
    assert len(e.value.problems) == 3


def account(keys=("ssh-ed25519 AAAA alice",), groups=("packager",)):
    return SimpleNamespace(username="alice", sshpubkeys=keys, groups=groups)


def test_requester_checks(site):
    ireq.check_requester(site, site.classes["dev"], account())
    with pytest.raises(PolicyError, match="has no ssh public key"):
        ireq.check_requester(site, site.classes["dev"], account(keys=()))
    with pytest.raises(PolicyError, match=r"in none of the groups allowed to request a builder "
                                          r"instance \(copr-admins, releng"):
        ireq.check_requester(site, site.classes["builder"], account())


@pytest.mark.parametrize("example", sorted((pol.DEFAULT_POLICY_PATH.parent /
                                            "instance-for-ticket").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_example_parameter_files_pass_the_engine_and_the_policy(site, example):
    from fedcloud_lib import tickets
    from fedcloud_lib.run import values as engine

    data = yaml.safe_load(example.read_text())
    if "body" in data:  # a ticket for the file source
        values = tickets.parse(tickets.FileSource(example).get(None)).values
    else:
        values = data
    v = engine.validate("instance-for-ticket", values)
    req = ireq.check_request(site, ticket=v["ticket"], requester=v["requester"],
                            purpose=v["purpose"], instance_class=v["instance_class"],
                            name=v["name"], flavor=v["flavor"], image=v["image"],
                            volume_gb=v["volume_gb"], expires=v["expires"])
    assert req.name == v["name"] and req.klass.name == v["instance_class"]


# ------------------------------------------------------------------ issue 8
@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["classes"]["dev"].update(max_lifetime_h=10**20, default_lifetime_h=10**20),
     "classes.dev.default_lifetime_h: 100000000000000000000 is greater than the maximum of 87600"),
    (lambda d: d["quotas"]["default"].update(instances=10**40), "quotas.default.instances"),
    (lambda d: d["classes"]["dev"].update(max_volume_gb=2**40), "classes.dev.max_volume_gb"),
    (lambda d: d["accounts"].update(timeout_s=float("inf")), "accounts.timeout_s: inf is greater"),
    (lambda d: d["mail"].update(timeout_s=1e300), "mail.timeout_s"),
    (lambda d: d["tickets"].update(open_statuses=[]), "tickets.open_statuses"),
    (lambda d: d["accounts"].update(source="file"), "'path' is a required property"),
    (lambda d: d["accounts"].pop("fasjson_url"), "'fasjson_url' is a required property"),
    (lambda d: d["accounts"].update(source="ldap"), "'ldap' is not one of ['fasjson', 'file']"),
])
def test_numbers_and_sources_are_bounded(tmp_path, raw, mutate, expected):
    """Policy numbers reach date arithmetic and socket timeouts: a huge one must be a
    refusal of the policy, not an OverflowError in a run."""
    mutate(raw)
    with pytest.raises(ConfigError) as e:
        pol.load(write(tmp_path, raw))
    assert expected in str(e.value)


def test_unbounded_class_with_huge_default_cannot_overflow(site):
    dev = site.classes["dev"]
    huge = pol.InstanceClass(**{**dev.__dict__, "default_lifetime_h": 10**12,
                                "max_lifetime_h": 10**12})
    with pytest.raises(PolicyError, match="at most 168 h|beyond"):
        ireq.parse_expiry("99999999999999d", huge, NOW)
    assert ireq.parse_expiry("", huge, NOW) == NOW + dt.timedelta(hours=pol.MAX_LIFETIME_H)


def test_open_statuses_default_and_case(raw, tmp_path):
    raw.pop("tickets")
    p = pol.load(write(tmp_path, raw))
    assert p.tickets.open_statuses == ("Open",)
    assert p.tickets.is_open("open") and p.tickets.is_open(" Open ")
    assert not p.tickets.is_open("Closed") and not p.tickets.is_open("") \
        and not p.tickets.is_open(None)


def test_file_accounts_source_resolves_its_directory(raw, tmp_path):
    (tmp_path / "people").mkdir()
    raw["accounts"] = {"source": "file", "path": "people"}
    p = pol.load(write(tmp_path, raw))
    assert p.accounts_source == "file" and p.accounts_path == str(tmp_path / "people")
    assert p.fasjson_url == ""
    raw["accounts"]["path"] = "nowhere"
    with pytest.raises(ConfigError, match="accounts.path: 'nowhere' is not a directory"):
        pol.load(write(tmp_path, raw))


def test_repo_policy_names_its_account_source_and_open_statuses(site):
    assert site.accounts_source == "fasjson" and site.tickets.open_statuses == ("Open",)


def test_a_site_without_builders_needs_no_burst_section():
    """Found by the demo: its policy (classes dev and test, no burst section) was refused
    because the burst defaults name a 'builder' class it does not have."""
    data = yaml.safe_load(pol.DEFAULT_POLICY_PATH.read_text())
    data.pop("burst", None)
    data["classes"] = {k: v for k, v in data["classes"].items() if k in ("dev", "test")}
    data.pop("images", None)
    site = pol.from_dict(data)
    assert site.burst.profiles == ()
    data["burst"] = {"profiles": ["builder"]}  # named explicitly, it must exist
    with pytest.raises(ConfigError, match="'builder' is not a class of the policy"):
        pol.from_dict(data)
