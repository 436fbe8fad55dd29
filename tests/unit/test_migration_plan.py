"""migrate-instances, the plan: facts in, plan out (pure).

Each server's state as the clouds show it decides its steps: a re-run's plan turns what
is done into reuse/keep.  Bad mappings and quotas are refused with exit 2.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace as NS

import pytest

from fedcloud_lib import secgroups
from fedcloud_lib.errors import ParameterError, PolicyError
from fedcloud_lib.migration import tags
from fedcloud_lib.migration.facts import MigrationFacts, ServerFacts, TargetFacts, VolumeFacts
from fedcloud_lib.migration.plan import GiB, make_plan, server_state
from fedcloud_lib.migration.quotas import QuotaFacts
from fedcloud_lib.migration.request import prepare
from fedcloud_lib.site import policy as pol

pytestmark = pytest.mark.unit
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop"
SRC = "fedcloud-testing"
DST = "fedcloud-production"


@pytest.fixture(scope="module")
def site():
    return pol.load(pol.DEFAULT_POLICY_PATH)


def image(id="i1", name="fedora-cloud-test", size=256 * 1024, status="active", **props):
    return NS(id=id, name=name, size=size, status=status, properties=props)


def source_server(status="ACTIVE", **kw):
    return NS(id="s1" + "0" * 30, name="web-1", status=status,
              flavor={"original_name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1},
              image={"id": "i1"}, key_name="alice", metadata={"fedcloud_class": "dev",
                                                             "purpose": "x"},
              security_groups=[{"name": "default"}], addresses={"provider": []},
              attached_volumes=[{"id": "v1"}], **kw)


def volume(**kw):
    return NS(**{"id": "v1", "name": "web-1-srv", "size": 2, "metadata": {"a": "b"},
                 "description": "data", "is_bootable": False, "status": "in-use",
                 "attachments": [], **kw})


def server_facts(**kw) -> ServerFacts:
    server = kw.pop("server", None) or source_server()
    vols = kw.pop("volumes", None)
    if vols is None:
        vols = (VolumeFacts(volume=volume()),)
    kw.setdefault("keypair", NS(public_key=KEY, fingerprint="aa"))
    return ServerFacts(server=server, flavor="m1.tiny",
                       flavor_size={"vcpus": 1, "ram": 512, "disk": 1}, image=image(),
                       networks=("provider",), volumes=tuple(vols), **kw)


def target(**kw) -> TargetFacts:
    d = dict(project="production", project_id="p2",
             flavors={"m1.tiny": NS(id="f1", name="m1.tiny", vcpus=1, ram=512, disk=1)},
             images={"fedora-cloud-test": image(id="ti1")},
             networks={"provider": NS(id="n1", name="provider")},
             keypairs={"alice": None},
             secgroup=secgroups.GroupState("fedcloud-standard", NS(id="g1")),
             compute_limits=NS(instances=60, instances_used=3, total_cores=175,
                               total_cores_used=3, total_ram=288300, total_ram_used=1536),
             volume_limits=NS(max_total_volumes=20, total_volumes_used=1,
                              max_total_volume_gigabytes=2000, total_gigabytes_used=10))
    d.update(kw)
    return TargetFacts(**d)


def facts(servers=None, tgt=None, quotas=None, done=(), **req) -> MigrationFacts:
    r = prepare(source_cloud=SRC, target_cloud=DST,
                **{"servers": ["web-1"], "known_clouds": [SRC, DST, "fedcloud-admin"], **req})
    return MigrationFacts(
        request=r, source_project="testing", source_project_id="p1",
        servers=tuple(servers if servers is not None else [server_facts()]), done=tuple(done),
        target=tgt or target(), quotas=quotas,
        source_volume_limits=NS(max_total_volumes=20, total_volumes_used=2,
                                max_total_volume_gigabytes=1000, total_gigabytes_used=4))


def rows(p):
    return [(s.action, s.kind, s.name) for s in p.plan.steps]


def step(p, kind, action=None, name=None):
    return next(s for s in p.plan.steps if s.kind == kind and action in (None, s.action)
                and name in (None, s.name))


def refused(site, f, exc=ParameterError) -> str:
    with pytest.raises(exc) as e:
        make_plan(site, f)
    assert e.value.exit_code == 2
    return str(e.value)


# --------------------------------------------------------------------------- a fresh migration

def test_a_fresh_migration_plans_the_whole_state_machine(site):
    p = make_plan(site, facts())
    assert rows(p) == [
        ("reuse", "security group", "fedcloud-standard"),
        ("create", "keypair", "alice"),
        ("update", "source server", "web-1"),
        ("create", "snapshot", "web-1/boot"),
        ("create", "volume image", "web-1/web-1-srv"),
        ("create", "transfer", "web-1/boot"),
        ("create", "transfer", "web-1/web-1-srv"),
        ("create", "server", "web-1"),
        ("create", "volume", "web-1/web-1-srv"),
        ("create", "verification", "web-1"),
        ("delete", "temporary images", "web-1"),
    ]
    sid = source_server().id
    assert step(p, "keypair").inputs == {"public_key": KEY}
    assert step(p, "source server").inputs == {"id": sid, "stop": True, "status_before": "ACTIVE"}
    server = step(p, "server", "create").inputs
    assert server["metadata"] == {"fedcloud_class": "dev", "purpose": "x",
                                  "fedcloud_migrated_from": f"{SRC}/{sid}",
                                  "fedcloud_migration": p.plan.title.split("(")[-1][:-1]}
    assert server["flavor_id"] == "f1" and server["network_ids"] == ["n1"]
    assert server["image_id"] is None and server["keypair"] == "alice"
    assert server["security_group"] == "fedcloud-standard"
    assert "not carried: default" in step(p, "server", "create").detail
    vol = step(p, "volume", "create").inputs
    assert vol["size_gb"] == 2 and vol["metadata"]["a"] == "b"
    assert vol["metadata"][tags.MIGRATED_FROM] == f"{SRC}/v1"
    check = step(p, "verification").inputs
    assert check["restart_source"] and check["metadata"] == {"fedcloud_class": "dev",
                                                             "purpose": "x"}
    assert check["volumes"] == [{"volume_id": "v1", "name": "web-1-srv", "size_gb": 2}]
    assert check["flavor"] == "m1.tiny" and not check["require_ssh"]
    assert [r["state"] for r in p.inventory] == ["planned"]
    assert p.inventory[0]["volumes"] == "web-1-srv (2 GiB)"
    # bytes: the boot image's size, the volume's size as an upper bound
    assert p.estimate["bytes_to_move"] == 256 * 1024 + 2 * GiB and p.estimate["upper_bound"]
    quota = {(q["project"], q["resource"]): q for q in p.quota}
    assert quota[("production", "instances")]["requested"] == 1
    assert quota[("production", "volume_gb")]["requested"] == 2
    assert quota[("testing (temporary clones)", "volume_gb")]["requested"] == 2
    assert {m["kind"]: m["how"] for m in p.mappings}["flavor"] == "same name"
    assert p.changes


def test_mappings_resolve_names(site):
    tgt = target(flavors={"m2.tiny": NS(id="f2", name="m2.tiny", vcpus=2, ram=1024, disk=10)},
                 networks={"public": NS(id="n2", name="public")})
    p = make_plan(site, facts(tgt=tgt, flavor_map={"m1.tiny": "m2.tiny"},
                              network_map={"provider": "public"}))
    server = step(p, "server", "create").inputs
    assert server["flavor_id"] == "f2" and server["flavor"] == "m2.tiny"
    assert server["network_ids"] == ["n2"]
    by = {(m["kind"], m["source"]): m for m in p.mappings}
    flavor = by[("flavor", "m1.tiny")]
    assert flavor["target"] == "m2.tiny" and flavor["how"] == "mapped"
    assert {q["resource"]: q["requested"] for q in p.quota if q["project"] == "production"
            }["cores"] == 2


def test_boot_from_a_mapped_image(site):
    tgt = target(images={"f40": image(id="ti9", name="f40")})
    p = make_plan(site, facts(tgt=tgt, boot_disk="image", image_map={"fedora-cloud-test": "f40"}))
    kinds = [s.kind for s in p.plan.steps]
    assert "snapshot" not in kinds and ("create", "transfer", "web-1/boot") not in rows(p)
    assert step(p, "server", "create").inputs["image_id"] == "ti9"
    assert step(p, "verification").inputs["copy_boot"] is False


# --------------------------------------------------------------------------- re-runs

def test_snapshotted_reuses_the_source_copies_and_does_not_stop_again(site):
    snap = image(id="snap", name="web-1-migrate-boot", size=300_000)
    vimg = image(id="vimg", name="web-1-migrate-vol", size=65536)
    sf = server_facts(server=source_server(status="SHUTOFF"), snapshot=snap,
                      volumes=[VolumeFacts(volume=volume(), image=vimg)], stopped_by_us=True)
    p = make_plan(site, facts([sf]))
    assert server_state(sf) == "snapshotted" and p.inventory[0]["state"] == "snapshotted"
    assert ("reuse", "snapshot", "web-1/boot") in rows(p)
    assert ("reuse", "volume image", "web-1/web-1-srv") in rows(p)
    assert not any(k == "source server" for _, k, _ in rows(p))  # nothing read: no stop
    assert step(p, "transfer", "create", "web-1/boot").action == "create"
    assert step(p, "verification").inputs["restart_source"]  # an earlier run stopped it
    assert p.estimate["bytes_to_move"] == 300_000 + 65536 and not p.estimate["upper_bound"]


def test_transferred_images_are_not_sent_again(site):
    sha = "ab" * 32
    boot = image(id="tb", size=300_000, **{tags.SHA256: sha, tags.PART: "boot"})
    vimg = image(id="tv", size=65536, **{tags.SHA256: sha})
    sf = server_facts(server=source_server(status="SHUTOFF"), snapshot=image(id="snap"),
                      target_image=boot,
                      volumes=[VolumeFacts(volume=volume(), target_image=vimg)])
    p = make_plan(site, facts([sf]))
    assert server_state(sf) == "transferred"
    assert step(p, "transfer", name="web-1/boot").action == "reuse"
    assert step(p, "transfer", name="web-1/web-1-srv").inputs["image_id"] == "tv"
    assert not any(k in ("snapshot", "volume image") for _, k, _ in rows(p))
    assert p.estimate["bytes_to_move"] == 0
    assert step(p, "server", "create") and step(p, "temporary images").action == "delete"


def test_a_half_sent_image_is_sent_again(site):
    half = image(id="tb", status="saving", **{tags.PART: "boot"})
    sf = server_facts(server=source_server(status="SHUTOFF"), snapshot=image(id="snap"),
                      target_image=half, volumes=[])
    p = make_plan(site, facts([sf]))
    assert server_state(sf) == "snapshotted"
    assert step(p, "transfer", name="web-1/boot").action == "create"


def test_created_server_is_reused_and_verified(site):
    ts = NS(id="t1", name="web-1", status="ACTIVE", metadata={})
    tv = volume(id="tv1", status="in-use", attachments=[{"server_id": "t1"}])
    sf = server_facts(server=source_server(status="SHUTOFF"), target_server=ts,
                      volumes=[VolumeFacts(volume=volume(), target_volume=tv)])
    p = make_plan(site, facts([sf]))
    assert server_state(sf) == "created"
    assert rows(p) == [("reuse", "server", "web-1"), ("reuse", "volume", "web-1/web-1-srv"),
                       ("create", "verification", "web-1")]
    # nothing left to create: no key pair, no security group, no quota asked
    assert all(q["requested"] == 0 for q in p.quota)


def test_an_unattached_copy_is_attached(site):
    ts = NS(id="t1", name="web-1", status="ACTIVE", metadata={})
    tv = volume(id="tv1", status="available", attachments=[])
    sf = server_facts(target_server=ts, volumes=[VolumeFacts(volume=volume(), target_volume=tv)])
    assert step(make_plan(site, facts([sf])), "volume").action == "update"


def test_verified_then_cleaned(site):
    ts = NS(id="t1", name="web-1", status="ACTIVE",
            metadata={tags.VERIFIED: "2026-01-01T00:00:00+00:00"})
    tv = volume(id="tv1", attachments=[{"server_id": "t1"}])
    leftover = image(id="snap")
    sf = server_facts(target_server=ts, snapshot=leftover,
                      volumes=[VolumeFacts(volume=volume(), target_volume=tv)])
    p = make_plan(site, facts([sf]))
    assert server_state(sf) == "verified"
    assert ("keep", "verification", "web-1") in rows(p)
    assert step(p, "temporary images").action == "delete"
    clean = dataclasses.replace(sf, snapshot=None)
    p = make_plan(site, facts([clean]))
    assert server_state(clean) == "cleaned" and not p.changes
    assert p.states() == {source_server().id: "cleaned"}


def test_a_copy_left_in_error_is_replaced(site):
    bad = NS(id="bad", status="ERROR")
    p = make_plan(site, facts([server_facts(target_errors=(bad,))]))
    assert step(p, "server", "delete").inputs == {"id": "bad", "source_id": source_server().id}
    order = rows(p)
    assert order.index(("delete", "server", "web-1")) < order.index(("create", "server", "web-1"))


def test_a_migrated_server_whose_source_is_gone_is_kept(site):
    ts = NS(id="t1", name="web-1", status="ACTIVE",
            metadata={tags.MIGRATED_FROM: f"{SRC}/s1"})
    p = make_plan(site, facts([], done=[ts]))
    assert rows(p) == [("keep", "server", "web-1")] and not p.changes
    assert p.inventory[0]["state"] == "cleaned"


# --------------------------------------------------------------------------- options

def test_stop_source_false_copies_while_running(site):
    p = make_plan(site, facts(stop_source=False))
    assert step(p, "source server").action == "keep"
    assert "copied while it runs" in step(p, "source server").detail
    assert not step(p, "verification").inputs["restart_source"]


def test_delete_source_comes_last_with_its_volumes(site):
    p = make_plan(site, facts(delete_source=True))
    last = p.plan.steps[-1]
    assert (last.action, last.kind) == ("delete", "source server")
    assert last.inputs == {"id": source_server().id, "volume_ids": ["v1"]}
    assert "only once the copy is verified" in last.detail


def test_require_ssh_and_keep_boot_image(site):
    p = make_plan(site, facts(require_ssh=True, keep_boot_image=False))
    assert step(p, "verification").inputs["require_ssh"]
    assert "target boot image" in step(p, "temporary images").detail
    assert step(p, "temporary images").inputs["keep_boot_image"] is False


# --------------------------------------------------------------------------- refusals

def test_an_unresolved_flavor_is_refused(site):
    msg = refused(site, facts(tgt=target(flavors={"m1.tiny": None})))
    assert ("flavor_map (unmapped: same name): server web-1's flavor 'm1.tiny' resolves to "
            "'m1.tiny', which the target cloud fedcloud-production does not have") in msg
    assert "flavor_map={m1.tiny: <target flavor>}" in msg


def test_a_mapping_to_a_missing_name_is_refused(site):
    msg = refused(site, facts(tgt=target(flavors={"m1.tiny": None, "m9": None}),
                              flavor_map={"m1.tiny": "m9"}))
    assert "flavor_map: server web-1's flavor 'm1.tiny' resolves to 'm9'" in msg


def test_an_unused_mapping_to_a_missing_name_is_refused(site):
    msg = refused(site, facts(tgt=target(networks={"provider": NS(id="n1"), "nope": None}),
                              network_map={"other": "nope"}))
    assert "network_map: 'other' maps to 'nope', which the target cloud" in msg


def test_an_unresolved_network_is_refused(site):
    msg = refused(site, facts(tgt=target(networks={"provider": None})))
    assert "network_map (unmapped: same name): server web-1's network 'provider'" in msg


def test_boot_disk_image_needs_the_image_in_the_target(site):
    msg = refused(site, facts(tgt=target(images={"fedora-cloud-test": None}), boot_disk="image"))
    assert "image_map (unmapped: same name): server web-1's image 'fedora-cloud-test'" in msg
    # with the boot disk copied the image is not needed
    make_plan(site, facts(tgt=target(images={"fedora-cloud-test": None})))


def test_key_pairs_that_cannot_be_recreated_are_refused(site):
    other = target(keypairs={"alice": NS(public_key="ssh-rsa BBBB other", fingerprint="cc")})
    assert "key pair 'alice' exists in the target with a different key" in refused(
        site, facts(tgt=other))
    assert "key pair 'alice' of the source cannot be read" in refused(
        site, facts([server_facts(keypair=None)]))
    same = target(keypairs={"alice": NS(public_key=KEY + " other-comment", fingerprint="aa")})
    assert step(make_plan(site, facts(tgt=same)), "keypair").action == "reuse"


def test_servers_that_cannot_be_copied_are_refused(site):
    assert "web-1 is ERROR; only ACTIVE or SHUTOFF" in refused(
        site, facts([server_facts(server=source_server(status="ERROR"))]))
    assert "web-1 boots from a volume" in refused(
        site, facts([server_facts(boot_from_volume=True)]))
    small = target(flavors={"m1.tiny": NS(id="f1", name="m1.tiny", vcpus=1, ram=512, disk=1)})
    big = dataclasses.replace(server_facts(), image=image(size=3 * GiB))
    assert "does not fit flavor m1.tiny (1 GiB)" in refused(site, facts([big], tgt=small))


def test_every_mapping_problem_at_once(site):
    with pytest.raises(ParameterError) as e:
        make_plan(site, facts(tgt=target(flavors={"m1.tiny": None}, networks={"provider": None})))
    assert len(e.value.problems) == 2


def test_over_quota_is_refused_with_the_numbers(site):
    full = target(compute_limits=NS(instances=3, instances_used=3, total_cores=175,
                                    total_cores_used=3, total_ram=288300, total_ram_used=1536))
    msg = refused(site, facts(tgt=full), PolicyError)
    assert "production: instances: 3 used + 1 requested > limit 3" in msg
    assert "copy_quotas=true raises the target's quotas" in msg


def test_the_policy_ceiling_counts(site):
    tight = target(volume_limits=NS(max_total_volumes=100, total_volumes_used=20,
                                    max_total_volume_gigabytes=2000, total_gigabytes_used=10))
    msg = refused(site, facts(tgt=tight), PolicyError)
    assert "production: volumes: 20 used + 1 requested > limit 20" in msg  # policy.yaml: 20


def test_the_temporary_clones_need_room_in_the_source(site):
    f = facts()
    f = dataclasses.replace(f, source_volume_limits=NS(
        max_total_volumes=2, total_volumes_used=2, max_total_volume_gigabytes=1000,
        total_gigabytes_used=4))
    assert "testing (temporary clones): volumes: 2 used + 1 requested > limit 2" in refused(
        site, f, PolicyError)


def test_copy_quotas_raises_the_target_and_copies_policy_tags(site):
    full = target(compute_limits=NS(instances=3, instances_used=3, total_cores=175,
                                    total_cores_used=3, total_ram=288300, total_ram_used=1536))
    q = QuotaFacts(source_project_id="p1", target_project_id="p2",
                   source={"compute": {"instances": 30, "cores": 70}, "volume": {"volumes": 5},
                           "network": {"ports": -1}},
                   target={"compute": {"instances": 3, "cores": 175}, "volume": {"volumes": 20},
                           "network": {"ports": 50}},
                   source_tags=("fedcloud-persistent", "other"), target_tags=("x",))
    p = make_plan(site, facts(tgt=full, quotas=q, copy_quotas=True, admin_cloud="fedcloud-admin"))
    qs = step(p, "quotas")
    assert qs.action == "update" and qs.inputs == {
        "project_id": "p2", "set": {"compute": {"instances": 30}, "network": {"ports": -1}}}
    assert "instances 3→30" in qs.detail
    assert step(p, "project tags").inputs == {"project_id": "p2",
                                              "tags": ["x", "fedcloud-persistent"]}
    inst = next(r for r in p.quota if r["resource"] == "instances")
    assert inst["limit"] == 30 and inst["headroom_after"] == 26
    assert rows(p)[:2] == [("update", "quotas", "production"),
                           ("update", "project tags", "production")]


def test_a_target_that_is_the_source_project_is_refused_before_reading_anything(site):
    from fedcloud_lib.migration.facts import gather

    def conn():  # only where it points: any listing would fail on these
        return NS(current_project_id="p1", config=NS(auth={"auth_url": "http://k:5000/v3"}))
    r = prepare(source_cloud=SRC, target_cloud=DST, servers=["web-1"],
                known_clouds=[SRC, DST])
    with pytest.raises(ParameterError, match="is the same project of the same cloud"):
        gather(conn(), conn(), site, r)
