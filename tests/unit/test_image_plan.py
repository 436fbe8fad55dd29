"""image-create's decisions, without a cloud: the request check, the plan (facts in, plan
out), the update policy's retirement selection, the boot test's reading of a console."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from fedcloud_lib.errors import ConfigError, ParameterError
from fedcloud_lib.image import boottest, request
from fedcloud_lib.image.facts import META, Facts, FlavorRecord, ImageRecord, ServerRecord, Source
from fedcloud_lib.image.plan import boot_flavor, make_plan
from fedcloud_lib.image.retire import select, version_key
from fedcloud_lib.site import policy as pol
from fedcloud_lib.site.policy import UpdatePolicy

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
SHA = "ab" * 32
SITE = pol.load(pol.DEFAULT_POLICY_PATH)


def iso(days_ago: float) -> str:
    return (NOW - dt.timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- request

def qa_request(**kw):
    args = dict(profile="qa", version="41-1.4", source="https://example.test/q/x.qcow2",
                checksum=SHA)
    args.update(kw)
    return request.prepare(SITE, **args)


def test_defaults_come_from_the_profile():
    req = request.prepare(SITE, profile="qa", version="41-1.4")
    assert req.source.endswith("/releases/41/Cloud/x86_64/images/"
                               "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2")
    assert req.checksum.endswith("/Fedora-Cloud-41-1.4-x86_64-CHECKSUM")
    assert req.name == "fedcloud-qa-41-1.4" and req.visibility == "private"
    assert req.properties["os_version"] == "41" and req.signature_over is None


def test_signature_forms():
    req = request.prepare(SITE, profile="fedora-cloud", version="41-1.4", signature="clearsigned")
    assert req.signature_over == "checksum" and req.keyring == "fedora"
    img = qa_request(signature="https://example.test/x.qcow2.sig")
    assert img.signature_over == "image"


@pytest.mark.parametrize("kw, expected", [
    (dict(profile="nightly"), "profile: 'nightly' is not an image profile of the site policy"),
    (dict(checksum="abc123"), "checksum: 'abc123' is 6 hex digits; a sha256 has 64"),
    (dict(checksum="md5:0123"), "is neither a sha256 (64 hex digits) nor the URL or absolute "
                                "path of a CHECKSUM file"),
    (dict(checksum="/nonexistent/CHECKSUM"), "checksum: '/nonexistent/CHECKSUM' is not a file"),
    (dict(source="images/x.qcow2"), "source: 'images/x.qcow2' is neither an http(s) URL"),
    (dict(source="ftp://example.test/x.qcow2"), "is neither an http(s) URL"),
    (dict(source="https://example.test/x.qcow2", checksum=""), "checksum: required"),
    (dict(signature="clearsigned"), "but checksum is a bare sha256"),
    (dict(version="../etc"), "version: '../etc' is not a version"),
    (dict(visibility="everyone"), "visibility: 'everyone' is not one of"),
    (dict(ticket="12a"), "ticket: '12a' is not a ticket number"),
])
def test_bad_requests_name_the_parameter(kw, expected):
    with pytest.raises(ParameterError) as e:
        qa_request(**kw)
    assert expected in str(e.value), str(e.value)
    assert e.value.exit_code == 2


def test_profile_that_requires_a_signature():
    with pytest.raises(ParameterError) as e:
        request.prepare(SITE, profile="fedora-cloud", version="41-1.4")
    assert "signature: profile fedora-cloud requires a signature" in str(e.value)


def test_signature_needs_a_keyring(tmp_path):
    data = SITE.images.profiles["qa"]
    site = replace(SITE, images=replace(SITE.images, profiles={
        "qa": replace(data, keyring=None, require_signature=False)}))
    with pytest.raises(ParameterError) as e:
        request.prepare(site, profile="qa", version="1", source="https://x.test/a.qcow2",
                        checksum=SHA, signature="https://x.test/a.qcow2.sig")
    assert "profile qa names no keyring" in str(e.value)


def test_a_long_hostile_value_is_shortened_in_the_message():
    with pytest.raises(ParameterError) as e:
        qa_request(source="x" * 5000)
    assert "(5000 chars)" in str(e.value) and len(str(e.value)) < 400


# --------------------------------------------------------------------------- plan

QA = SITE.images.profiles["qa"]
TINY = FlavorRecord("f1", "m1.tiny", 1, 512, 1)
SMALL = FlavorRecord("f2", "m1.small", 1, 2048, 20)
MEDIUM = FlavorRecord("f3", "m1.medium", 2, 4096, 40)


def image(version: str, *, id=None, status="active", hidden=False, hidden_at=None,
          created_days_ago=10, sha=None, boot="passed 2026-11-01T00:00:00Z: ok",
          visibility="private") -> ImageRecord:
    return ImageRecord(id=id or f"id-{version}", name=f"fedcloud-qa-{version}", status=status,
                       visibility=visibility, hidden=hidden, created_at=iso(created_days_ago),
                       updated_at=iso(created_days_ago), profile="qa", version=version,
                       sha256=sha or (version.encode().hex() * 64)[:64], hidden_at=hidden_at,
                       boot_test=boot)


def facts(*, match=None, images=(), leftovers=(), usage=None, everywhere=False,
          flavors=(TINY, SMALL, MEDIUM), source=None) -> Facts:
    return Facts(project_id="p1",
                 source=source or Source(location="https://example.test/q/x.qcow2",
                                         file_name="x.qcow2", sha256=SHA,
                                         checksum_from="parameter", size=3 << 20),
                 match=match, profile_images=tuple(images), leftovers=tuple(leftovers),
                 usage=usage or {}, all_servers_visible=everywhere, flavors=tuple(flavors),
                 network_id="net-1", glance_hash_algo="sha512")


def labels(plan):
    return [s.label() for s in plan.plan.steps]


def test_new_image_is_downloaded_uploaded_and_boot_tested():
    req = qa_request(ticket="4242")
    p = make_plan(SITE, req, facts(), now=NOW)
    assert labels(p) == ["create download x.qcow2", "create image fedcloud-qa-41-1.4",
                         "create boot test fedcloud-qa-41-1.4-boottest"]
    dl, img, boot = p.plan.steps
    assert dl.inputs["sha256"] == SHA and dl.inputs["hash_algo"] == "sha512"
    assert dl.inputs["max_bytes"] > QA.min_disk_gb << 30
    props = img.inputs["properties"]
    assert props[META["sha256"]] == SHA and props[META["profile"]] == "qa"
    assert props[META["version"]] == "41-1.4" and props[META["ticket"]] == "4242"
    assert props[META["source"]] == req.source and props["os_distro"] == "fedora"
    assert props[META["instance_lifetime_h"]] == "720"
    # volatile stamps are the handler's, never the plan's (a recorded plan stays comparable)
    assert not {META["run_id"], META["created_by"], META["created_at"]} & set(props)
    assert img.inputs["min_disk"] == QA.min_disk_gb and img.inputs["visibility"] == "private"
    assert boot.inputs["flavor"] == "m1.small"  # smallest with disk >= min_disk 5 GiB
    assert boot.inputs["user_data"].startswith("#cloud-config")


def test_rerun_after_everything_changes_nothing():
    done = image("41-1.4", sha=SHA)
    p = make_plan(SITE, qa_request(), facts(match=done, images=[done]), now=NOW)
    assert labels(p) == ["reuse image fedcloud-qa-41-1.4",
                         "keep boot test fedcloud-qa-41-1.4-boottest"]
    assert not p.changes


def test_rerun_after_a_crash_before_the_boot_test_only_boot_tests():
    up = image("41-1.4", sha=SHA, boot=None)
    p = make_plan(SITE, qa_request(), facts(match=up, images=[up]), now=NOW)
    assert labels(p) == ["reuse image fedcloud-qa-41-1.4",
                         "create boot test fedcloud-qa-41-1.4-boottest"]


def test_a_hidden_image_imported_again_is_shown_again():
    hidden = image("41-1.4", sha=SHA, hidden=True, hidden_at=iso(1))
    p = make_plan(SITE, qa_request(), facts(match=hidden, images=[hidden]), now=NOW)
    assert labels(p)[:2] == ["reuse image fedcloud-qa-41-1.4", "update image fedcloud-qa-41-1.4"]
    assert p.plan.steps[1].inputs == {"id": hidden.id, "hide": False}


def test_deactivated_image_is_reactivated_and_tested_again():
    bad = image("41-1.4", sha=SHA, status="deactivated", boot="failed 2026-11-20: ERROR")
    p = make_plan(SITE, qa_request(), facts(match=bad, images=[bad]), now=NOW)
    assert labels(p)[:2] == ["update image fedcloud-qa-41-1.4",
                             "create boot test fedcloud-qa-41-1.4-boottest"]
    assert p.plan.steps[0].inputs == {"id": bad.id, "reactivate": True}


def test_leftovers_of_a_killed_upload_go_first():
    q = image("41-1.4", id="q1", sha=SHA, status="queued", boot=None)
    s = image("41-1.4", id="s1", sha=SHA, status="saving", boot=None)
    p = make_plan(SITE, qa_request(), facts(leftovers=[q, s]), now=NOW)
    assert labels(p)[:3] == ["delete image fedcloud-qa-41-1.4"] * 2 + ["create download x.qcow2"]
    assert [st.inputs for st in p.plan.steps[:2]] == [{"id": "q1"}, {"id": "s1"}]


def test_an_older_version_than_the_kept_ones_is_refused():
    imgs = [image("42"), image("43"), image("44")]
    with pytest.raises(ParameterError) as e:
        make_plan(SITE, qa_request(version="41"), facts(images=imgs), now=NOW)
    assert "version 41 is older than the 3 newest version(s) the profile keeps" in str(e.value)


def test_retirement_steps_name_the_servers_holding_an_image():
    keep1 = replace(QA, update=UpdatePolicy(keep=1, hidden_days=7))
    site = replace(SITE, images=replace(SITE.images, profiles={"qa": keep1}))
    old, older = image("40", created_days_ago=20), image("39", created_days_ago=30)
    usage = {older.id: (ServerRecord("s1", "web-1", "ACTIVE", older.id),)}
    p = make_plan(site, request.prepare(site, profile="qa", version="41", checksum=SHA,
                                        source="https://example.test/q/x.qcow2"),
                  facts(images=[old, older], usage=usage), now=NOW)
    steps = {s.name: s for s in p.plan.steps if s.kind == "image" and s.name != "fedcloud-qa-41"}
    assert steps["fedcloud-qa-40"].action == "update"
    assert steps["fedcloud-qa-40"].inputs == {"id": old.id, "hide": True}
    assert "hidden until 2026-12-01" in steps["fedcloud-qa-40"].detail
    assert steps["fedcloud-qa-39"].action == "keep"
    assert "held by web-1 (s1)" in steps["fedcloud-qa-39"].detail
    rows = {r["image"]: r for r in p.retirement_rows()}
    assert rows["fedcloud-qa-39"]["servers"] == "web-1 (s1)"


def test_boot_flavor_is_the_smallest_that_fits():
    assert boot_flavor((MEDIUM, SMALL, TINY), 5, 512, "qa") == SMALL
    assert boot_flavor((MEDIUM, SMALL, TINY), 1, 0, "qa") == TINY
    with pytest.raises(ConfigError) as e:
        boot_flavor((TINY,), 5, 512, "qa")
    assert "none of m1.tiny has min_disk 5 GiB" in str(e.value)


# --------------------------------------------------------------------------- retirement

def decide(images, new, *, keep=2, hidden_days=7, usage=None, everywhere=True):
    out = select(images, new, UpdatePolicy(keep, hidden_days), usage=usage or {}, now=NOW,
                 all_servers_visible=everywhere)
    return {d.image.version: d.action for d in out}


NEW = ImageRecord(id="", name="fedcloud-qa-45", status="new", version="45")


def test_keep_n_newest_by_version_not_by_age():
    imgs = [image("41-1.10", created_days_ago=50), image("41-1.9", created_days_ago=1),
            image("40", created_days_ago=2)]
    assert decide(imgs, NEW, keep=2) == {"45": "keep", "41-1.10": "keep", "41-1.9": "hide",
                                          "40": "hide"}


def test_hidden_images_are_deleted_after_the_grace_period_only():
    imgs = [image("44"), image("43", hidden=True, hidden_at=iso(8)),
            image("42", hidden=True, hidden_at=iso(3)), image("41", hidden=True, hidden_at=None)]
    assert decide(imgs, NEW, keep=2, hidden_days=7) == {
        "45": "keep", "44": "keep", "43": "delete", "42": "keep", "41": "delete"}


def test_no_grace_period_deletes_at_once():
    assert decide([image("44"), image("43")], NEW, keep=1, hidden_days=0) == {
        "45": "keep", "44": "delete", "43": "delete"}


def test_an_image_in_use_is_never_hidden_or_deleted():
    imgs = [image("44"), image("43", hidden=True, hidden_at=iso(30))]
    usage = {"id-44": (ServerRecord("s", "a", "ACTIVE", "id-44"),),
             "id-43": (ServerRecord("t", "b", "SHUTOFF", "id-43"),)}
    out = select(imgs, NEW, UpdatePolicy(1, 0), usage=usage, now=NOW, all_servers_visible=True)
    assert {d.image.version: d.action for d in out} == {"45": "keep", "44": "keep", "43": "keep"}
    assert all("in use by 1 server(s)" in d.reason for d in out if d.image.version != "45")


def test_a_hidden_image_among_the_newest_again_is_shown():
    imgs = [image("44", hidden=True, hidden_at=iso(1)), image("43")]
    assert decide(imgs, NEW, keep=3) == {"45": "keep", "44": "unhide", "43": "keep"}


def test_public_images_need_a_view_of_every_project_to_be_deleted():
    imgs = [image("44", visibility="public", hidden=True, hidden_at=iso(30))]
    assert decide(imgs, NEW, keep=1, everywhere=False) == {"45": "keep", "44": "keep"}
    assert decide(imgs, NEW, keep=1, everywhere=True) == {"45": "keep", "44": "delete"}


def test_deactivated_images_are_left_alone():
    imgs = [image("44", status="deactivated", boot="failed x")]
    assert decide(imgs, NEW, keep=1) == {"45": "keep", "44": "keep"}


def test_version_order():
    assert sorted(["41-1.10", "41-1.9", "42", "41", "rawhide"], key=version_key) == \
        ["rawhide", "41", "41-1.9", "41-1.10", "42"]


# --------------------------------------------------------------------------- boot test

@pytest.mark.parametrize("output, elapsed, expected", [
    ("Fedora Linux 41\nlocalhost login: ", 5, "login"),
    ("[    0.000000] Linux version 6.11.4 (mockbuild@...)\n", 5, "booting"),
    ("[    0.000000] Linux version 6.11.4\n", 500, "booting"),  # boots, no login: a failure later
    ("FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE", 1, "wait"),
    ("FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE", 61, "none"),  # Nova's fake driver
    ("", 61, "none"),
    (None, 0, "none"),                                       # no console API at all
])
def test_console_states(output, elapsed, expected):
    assert boottest.console_state(output, marker="login:", elapsed=elapsed, grace=60) == expected
