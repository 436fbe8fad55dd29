"""Tickets: finding the request, refusing bad ones before any cloud call, sources, CLI."""
from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import pytest
import yaml

from fedcloud_lib import tickets
from fedcloud_lib.errors import ConfigError, FedcloudError, ParameterError, PolicyError
from fedcloud_lib.site import policy as pol
from fedcloud_lib.tickets import cli as ticket_cli
from tests.fakes.fasjson import FakeFasjson
from tests.fakes.pagure import FakePagure
from tests.fakes.site import policy_copy, standard_users

pytestmark = pytest.mark.unit


def body(params: dict | str, runbook: str = "instance-for-ticket", extra: str = "") -> str:
    block = params if isinstance(params, str) else yaml.safe_dump(
        {"runbook": runbook, "parameters": params}, sort_keys=False)
    return f"Hi, I need a box for my work.\n\n```yaml\n{block}```\n{extra}\nThanks!\n"


def ticket(params, reporter="alice", tid="4242", **kw) -> tickets.Ticket:
    return tickets.Ticket(id=tid, title="please", body=body(params, **kw), reporter=reporter)


GOOD = {"name": "web-1", "instance_class": "dev", "purpose": "copr frontend tests",
        "volume_gb": 10}


@pytest.fixture
def fas():
    with FakeFasjson() as f:
        standard_users(f)
        yield f


@pytest.fixture
def site(fas, tmp_path, monkeypatch):
    path = policy_copy(tmp_path, fasjson_url=fas.url)
    monkeypatch.setenv("FEDCLOUD_POLICY", str(path))
    return pol.load(path)


def test_parse_fills_ticket_and_requester_from_the_ticket():
    req = tickets.parse(ticket(GOOD))
    assert req.runbook == "instance-for-ticket"
    assert req.values == {**GOOD, "ticket": "4242", "requester": "alice"}


def test_parse_ignores_other_code_blocks():
    t = ticket(GOOD, extra="```\n$ dnf install foo\n```\n```yaml\nnot: a request\n```")
    assert tickets.parse(t).values["name"] == "web-1"


@pytest.mark.parametrize("text, expected", [
    ("just words, no block", "has no request block"),
    ("runbook: instance-for-ticket\nparameters: [unclosed\n", "is not valid YAML"),
    ("runbook: cloudlet-install\nparameters: {}\n", "runbook 'cloudlet-install' cannot be "
                                                    "requested by ticket; allowed: "
                                                    "instance-for-ticket, instance-retire"),
    ("runbook: instance-for-ticket\nparams: {}\n", "unknown key(s) in the request block: params"),
    ("runbook: instance-for-ticket\nparameters: [1, 2]\n", "'parameters' must be a mapping"),
    ("runbook: instance-for-ticket\nparameters: {approve: true}\n",
     "approval is given by the operator"),
    ("runbook: instance-for-ticket\nparameters: {ticket: '7'}\n", "differs from this ticket"),
    ("runbook: instance-for-ticket\nparameters: {policy_file: /tmp/p.yaml}\n",
     "the site policy is the operator's"),
])
def test_malformed_requests_are_refused(text, expected):
    t = tickets.Ticket(id="4242", title="t", reporter="alice",
                       body="x" if "no block" in expected else body(text))
    with pytest.raises(ParameterError) as e:
        tickets.parse(t)
    assert expected in str(e.value)


def test_two_request_blocks_are_refused():
    t = tickets.Ticket(id="1", title="t", reporter="alice",
                       body=body(GOOD) + body({"name": "other"}))
    with pytest.raises(ParameterError, match="2 request blocks"):
        tickets.parse(t)


@pytest.mark.parametrize("params, reporter, error, expected", [
    ({**GOOD, "bogus": 1}, "alice", ParameterError, "bogus: unknown parameter"),
    ({**GOOD, "name": "Web_1"}, "alice", ParameterError, "name: 'Web_1'"),
    ({**GOOD, "flavor": "m1.builder"}, "alice", PolicyError,
     "flavor: 'm1.builder' is not allowed for class dev; allowed: m1.tiny, m1.small, m1.medium"),
    ({**GOOD, "image": "rhel-9"}, "alice", PolicyError, "image: 'rhel-9' is not allowed"),
    ({**GOOD, "volume_gb": 500}, "alice", PolicyError, "volume_gb: 500 is outside"),
    ({**GOOD, "instance_class": "test", "expires": "30d"}, "alice", PolicyError,
     "beyond the class lifetime; at most 168 h"),
    ({**GOOD, "requester": "alice"}, "carol", PolicyError,
     "reporter 'carol' asks on behalf of 'alice' but is not an admin"),
    (GOOD, "mallory", PolicyError, "'mallory' is not a user of the account system"),
    (GOOD, "bob", PolicyError, "'bob' has no ssh public key"),
    (GOOD, "carol", PolicyError, "'carol' is in none of the groups allowed"),
])
def test_bad_requests_are_refused_before_any_cloud_call(site, fas, params, reporter, error,
                                                         expected):
    with pytest.raises(error) as e:
        tickets.prepare_request(ticket(params, reporter=reporter), site)
    assert expected in str(e.value)


def test_admin_may_file_for_someone_else(site):
    req = tickets.prepare_request(ticket({**GOOD, "requester": "alice"}, reporter="sysop"), site)
    assert req.values["requester"] == "alice" and req.values["volume_gb"] == 10
    assert req.values["approve"] is False


def test_file_source_reads_and_appends_comments(tmp_path):
    path = tmp_path / "tickets.json"
    path.write_text(json.dumps({"tickets": [
        {"id": 1, "title": "a", "reporter": "alice", "body": body(GOOD)},
        {"id": 2, "title": "b", "reporter": "bob", "body": "nothing"}]}))
    src = tickets.FileSource(path)
    assert src.get("2").reporter == "bob"
    src.comment("1", "done")
    assert json.loads(path.read_text())["tickets"][0]["comments"] == ["done"]
    with pytest.raises(ConfigError, match="ticket 3 is not in"):
        src.get("3")


def test_pagure_source_reads_issue_and_posts_comment(monkeypatch):
    with FakePagure(token="s3cr3t-token") as pagure:
        pagure.add_issue(77, reporter="alice", content=body(GOOD))
        src = tickets.PagureSource(pagure.url, "fedora-infrastructure")
        monkeypatch.delenv("PAGURE_API_TOKEN", raising=False)
        t = src.get("77")
        assert (t.id, t.reporter) == ("77", "alice") and "web-1" in t.body
        with pytest.raises(ConfigError, match=r"needs an API token in \$PAGURE_API_TOKEN"):
            src.comment("77", "hello")
        monkeypatch.setenv("PAGURE_API_TOKEN", "wrong-token")
        with pytest.raises(ConfigError, match="401"):
            src.comment("77", "hello")
        monkeypatch.setenv("PAGURE_API_TOKEN", "s3cr3t-token")
        src.comment("77", "hello")
        assert pagure.comments(77) == ["hello"]
        with pytest.raises(ParameterError, match="404"):  # no such issue: a wrong number
            src.get("78")


class StubEngine:
    """The engine's contract (validate is the real one), recording what would run."""

    def __init__(self, status="planned"):
        from fedcloud_lib.run import values as engine

        self.validate = engine.validate
        self.status = status
        self.calls = []

    def run_runbook(self, runbook, values, **kw):
        self.calls.append((runbook, values, kw))
        plan = [{"action": "create", "kind": "server", "name": values["name"], "detail": "x"}]
        inst = {"name": values["name"], "address": "10.0.0.9", "status": "ACTIVE"}
        return SimpleNamespace(run_id="20261124T120000-abcdef", status=self.status,
                               exit_code=0, results={"plan": plan, "instance": inst},
                               error=None)


def test_run_ticket_answers_with_plan_and_never_the_token(site, tmp_path, monkeypatch):
    monkeypatch.setenv("PAGURE_API_TOKEN", "s3cr3t-token")
    with FakePagure(token="s3cr3t-token") as pagure:
        pagure.add_issue(5, reporter="alice",
                         content=body({**GOOD, "purpose": "s3cr3t-token leaks?"}))
        src = tickets.PagureSource(pagure.url, "fedora-infrastructure")
        eng = StubEngine("planned")
        out = tickets.run_ticket(src, "5", site, engine=eng)
        [(runbook, values, kw)] = eng.calls
        assert runbook == "instance-for-ticket" and values["ticket"] == "5"
        assert kw["approve"] is False
        [comment] = pagure.comments(5)
    assert out.exit_code == 0 and out.run_id == "20261124T120000-abcdef"
    assert "dry run" in comment and "| create | server | web-1 | x |" in comment
    assert "20261124T120000-abcdef" in comment and "s3cr3t-token" not in comment


def test_run_ticket_refusal_is_answered_and_nothing_runs(site, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"id": 9, "title": "t", "reporter": "alice",
                                    "body": body({**GOOD, "flavor": "m1.huge"})}))
    eng = StubEngine()
    out = tickets.run_ticket(tickets.FileSource(path), "9", site, engine=eng)
    assert eng.calls == [] and out.exit_code == 2
    [comment] = yaml.safe_load(path.read_text())["comments"]
    assert "refused before anything was created" in comment and "m1.huge" in comment


def test_cli_show_prints_the_checked_parameters(site, tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"id": 12, "title": "t", "reporter": "alice",
                                    "body": body(GOOD)}))
    parser = argparse.ArgumentParser(prog="fedcloud")
    ticket_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["ticket", "show", "12", "--file", str(path), "--json"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    shown = json.loads(out[out.index("{"):])
    assert shown["runbook"] == "instance-for-ticket"
    assert shown["parameters"]["ticket"] == "12" and shown["parameters"]["flavor"] == ""
    assert "comments" not in yaml.safe_load(path.read_text())  # show never answers

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"id": 13, "title": "t", "reporter": "alice",
                                   "body": body({**GOOD, "volume_gb": 1000})}))
    args = parser.parse_args(["ticket", "show", str(bad)])
    assert args.func(args) == 2
    assert "volume_gb: 1000" in capsys.readouterr().err


def test_format_refusal_lists_every_problem():
    err = PolicyError("the request breaks the site policy:\n  a\n  b", problems=["a", "b"])
    text = tickets.format_refusal(tickets.Ticket("1", "t", "b", "alice"), err)
    assert "* a" in text and "* b" in text
    assert isinstance(err, FedcloudError)


def test_retire_request_uses_the_ticket_not_its_body(site):
    t = tickets.Ticket(id="31", title="done", body="closed, thanks", reporter="alice")
    req = tickets.prepare_request(t, site, retire={"snapshot": True, "delete_volume": False})
    assert req.runbook == "instance-retire"
    assert req.values == {"ticket": "31", "requester": "alice", "snapshot": True,
                          "delete_volume": False, "cloud": "", "policy_file": "",
                          "approve": False}
