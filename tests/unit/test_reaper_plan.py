"""lifetime-reaper: deadlines (builders' hard 24 h), states, and the plan (no cloud)."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from fedcloud_lib.errors import ParameterError
from fedcloud_lib.reaper.facts import (NOTICE_KEY, Orphan, ReaperFacts, Scope, as_of,
                                       builder_hours, server_fact)
from fedcloud_lib.reaper.plan import make_plan, state_of
from fedcloud_lib.site import policy as site_policy
from fedcloud_lib.site.accounts import Account

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc)
POLICY = site_policy.load()


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def server(name, *, created=NOW - dt.timedelta(hours=1), flavor="m1.small", **meta):
    return SimpleNamespace(id=f"id-{name}", name=name, status="ACTIVE", created_at=iso(created),
                           flavor={"original_name": flavor},
                           metadata={f"fedcloud_{k}": v for k, v in meta.items()})


def fact(s):
    return server_fact(s, builder_flavors=("m1.builder",), builder_hours=24)


def facts_of(*servers, orphans=(), accounts=None):
    return ReaperFacts(now=NOW, scope=Scope(), project="testing",
                       servers=tuple(fact(s) for s in servers), orphans=tuple(orphans),
                       accounts=accounts or {}, builder_hours=24, builder_class="builder")


def test_deadline_is_the_expiry_metadata():
    f = fact(server("a", expires_at="2026-11-30T00:00:00Z", **{"class": "qa"}))
    assert f.deadline == dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    assert f.deadline_reason == "metadata" and f.managed and not f.builder


def test_builder_lives_24_hours_from_creation_whatever_its_metadata_says():
    created = NOW - dt.timedelta(hours=25)
    by_class = fact(server("b1", created=created, expires_at="2027-01-01T00:00:00Z",
                           **{"class": "builder"}))
    assert by_class.builder and by_class.deadline == created + dt.timedelta(hours=24)
    assert by_class.deadline_reason.startswith("builder")
    by_flavor = fact(server("b2", created=created, flavor="m1.builder", expires_at="never"))
    assert by_flavor.builder and by_flavor.deadline == created + dt.timedelta(hours=24)
    assert state_of(by_class, NOW, 48) == "expired"
    # an earlier expiry in the metadata still counts
    early = fact(server("b3", created=created, expires_at=iso(created + dt.timedelta(hours=2)),
                        **{"class": "builder"}))
    assert early.deadline == created + dt.timedelta(hours=2)


def test_builder_hours_come_from_the_policy():
    assert builder_hours(POLICY) == POLICY.classes["builder"].max_lifetime_h == 24


def test_never_missing_and_bad_metadata():
    assert fact(server("n", expires_at="never")).deadline is None
    missing = fact(server("m", requester="bob"))
    assert missing.deadline is None and state_of(missing, NOW, 48) == "never"
    bad = fact(server("x", expires_at="soon"))
    assert bad.deadline is None and state_of(bad, NOW, 48) == "bad metadata"
    unmanaged = server_fact(SimpleNamespace(id="u", name="u", status="ACTIVE", created_at=None,
                                            flavor=None, metadata={"owner": "x"}))
    assert not unmanaged.managed


def test_states_around_now():
    soon = fact(server("s", expires_at=iso(NOW + dt.timedelta(hours=10))))
    assert state_of(soon, NOW, 48) == "notice due"
    assert state_of(soon, NOW, 5) == "ok"
    told = fact(server("t", expires_at=iso(NOW + dt.timedelta(hours=10)),
                       expiry_notice="2026-11-26T00:00:00Z"))
    assert told.notice_sent and state_of(told, NOW, 48) == "noticed"
    builder = fact(server("b", created=NOW - dt.timedelta(hours=20), **{"class": "builder"}))
    assert state_of(builder, NOW, 48) == "ok"  # builders are not told


def test_as_of_parses_or_refuses():
    assert as_of("", NOW) == NOW
    assert as_of("2026-11-27T13:00:00Z", NOW) == NOW + dt.timedelta(hours=25)
    assert as_of("2026-11-27T14:00:00+01:00", NOW) == NOW + dt.timedelta(hours=25)
    with pytest.raises(ParameterError, match="as_of"):
        as_of("tomorrow", NOW)


def test_scope_matches_prefix_and_metadata():
    s = Scope(name_prefix="it-1-", metadata={"fedcloud_ticket": 42})
    assert s.matches("it-1-a", {"fedcloud_ticket": "42"})
    assert not s.matches("it-2-a", {"fedcloud_ticket": "42"})
    assert not s.matches("it-1-a", {"fedcloud_ticket": "43"})
    assert Scope().matches(None, None) and Scope().describe() == "everything"
    with pytest.raises(ParameterError, match="match_metadata"):
        Scope(metadata={"a": {"nested": 1}})


def alice():
    return Account(username="alice", human_name="Alice L", emails=("alice@example.test",),
                   sshpubkeys=(), groups=())


def test_plan_deletes_the_expired_and_tells_owners_of_what_expires_soon():
    expired = server("old", expires_at=iso(NOW - dt.timedelta(hours=3)), requester="alice",
                     **{"class": "qa"})
    soon1 = server("soon1", expires_at=iso(NOW + dt.timedelta(hours=10)), requester="alice")
    soon2 = server("soon2", expires_at=iso(NOW + dt.timedelta(hours=5)), requester="alice")
    later = server("later", expires_at=iso(NOW + dt.timedelta(days=30)), requester="alice")
    told = server("told", expires_at=iso(NOW + dt.timedelta(hours=1)), requester="alice",
                  expiry_notice="2026-11-25T00:00:00Z")
    p = make_plan(POLICY, facts_of(expired, soon1, soon2, later, told,
                                   accounts={"alice": alice()}), notice_h=48)
    labels = [s.label() for s in p.plan.steps]
    assert labels == ["delete server old", "create mail alice@example.test"]
    assert p.plan.steps[0].inputs == {"id": "id-old",
                                      "deadline": iso(NOW - dt.timedelta(hours=3))}
    mail = p.plan.steps[1]
    assert [s["name"] for s in mail.inputs["servers"]] == ["soon2", "soon1"]  # soonest first
    assert mail.inputs["cc"] == list(POLICY.mail.admins)
    states = {r["name"]: r["state"] for r in p.expiry}
    assert states == {"old": "expired", "soon1": "notice due", "soon2": "notice due",
                      "later": "ok", "told": "noticed"}
    assert p.summary()["servers"]["notice due"] == 2


def test_modes_split_notices_from_deletions():
    expired = server("old", expires_at=iso(NOW - dt.timedelta(hours=3)))
    soon = server("soon", expires_at=iso(NOW + dt.timedelta(hours=3)), requester="alice")
    f = facts_of(expired, soon, accounts={"alice": alice()})
    assert [s.kind for s in make_plan(POLICY, f, mode="notify").plan.steps] == ["mail"]
    assert [s.kind for s in make_plan(POLICY, f, mode="reap").plan.steps] == ["server"]
    with pytest.raises(ParameterError, match="mode"):
        make_plan(POLICY, f, mode="all")


def test_negative_notice_window_is_refused():
    with pytest.raises(ParameterError, match="notice_h: -1"):
        make_plan(POLICY, facts_of(), notice_h=-1)


def test_owner_without_an_address_gets_no_mail_step():
    soon = server("soon", expires_at=iso(NOW + dt.timedelta(hours=3)), requester="ghost")
    nobody = server("nobody", expires_at=iso(NOW + dt.timedelta(hours=3)))
    p = make_plan(POLICY, facts_of(soon, nobody, accounts={"ghost": None}))
    assert [(s.action, s.kind) for s in p.plan.steps] == [("keep", "mail"), ("keep", "mail")]
    assert not p.plan.changes


def test_volume_of_an_expired_server_is_kept_unless_asked_and_allowed():
    qa = server("q", expires_at=iso(NOW - dt.timedelta(hours=1)), volume="vol-1",
                **{"class": "qa"})
    keep = make_plan(POLICY, facts_of(qa)).plan.steps
    assert [s.label() for s in keep] == ["delete server q", "keep volume q-srv"]
    gone = make_plan(POLICY, facts_of(qa), delete_volumes=True).plan.steps
    assert gone[1].label() == "delete volume q-srv" and gone[1].inputs == {"id": "vol-1"}
    builder = server("b", created=NOW - dt.timedelta(hours=30), volume="vol-2",
                     **{"class": "builder"})
    assert make_plan(POLICY, facts_of(builder), delete_volumes=True).plan.steps[1].action == "keep"


def test_orphans_are_listed_and_deleted_only_when_named():
    orphans = [Orphan("volume", "v-1", "stray", "attached to nothing and made by no run"),
               Orphan("floating ip", "ip-1", "192.0.2.7", "held by nothing"),
               Orphan("server", "s-1", "handmade", "no fedcloud metadata")]
    unmanaged = SimpleNamespace(id="s-1", name="handmade", status="ACTIVE", created_at=None,
                                flavor=None, metadata={})
    f = facts_of(unmanaged, orphans=orphans)
    listed = make_plan(POLICY, f)
    assert listed.plan.steps == () and {o["action"] for o in listed.orphans} == {"listed"}
    assert listed.expiry == ()  # an unmanaged server is an orphan, not a deadline
    named = make_plan(POLICY, f, delete_orphans=["ip-1"])
    assert [s.label() for s in named.plan.steps] == ["delete floating ip 192.0.2.7"]
    assert {o["id"]: o["action"] for o in named.orphans}["ip-1"] == "delete"
    # a notify run never deletes, not even a named orphan
    assert make_plan(POLICY, f, mode="notify", delete_orphans=["ip-1"]).plan.steps == ()


def test_deleting_something_that_is_not_an_orphan_is_refused():
    f = facts_of(orphans=[Orphan("volume", "v-1", "stray", "x")])
    with pytest.raises(ParameterError, match="delete_orphans: 1 id") as e:
        make_plan(POLICY, f, delete_orphans=["v-1", "someone-elses-server"])
    assert "someone-elses-server" in str(e.value) and e.value.exit_code == 2


def test_same_facts_same_plan_decisions():
    a = make_plan(POLICY, facts_of(server("old", expires_at=iso(NOW - dt.timedelta(hours=1)))))
    b = make_plan(POLICY, facts_of(server("old", expires_at=iso(NOW - dt.timedelta(hours=1)))))
    assert a.plan.decisions() == b.plan.decisions()


def test_notice_key_is_a_fedcloud_key():
    assert NOTICE_KEY.startswith("fedcloud_")
