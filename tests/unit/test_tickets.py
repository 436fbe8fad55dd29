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
    ("runbook: instance-for-ticket\nparams: {}\n", "unknown key(s) in the request block: 'params'"),
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


# ------------------------------------------------------------------ hostile tickets (issue 8)
def _file_ticket(tmp_path, params, *, status=None, tid=21, reporter="alice", raw_body=None):
    path = tmp_path / f"t{tid}.yaml"
    t = {"id": tid, "title": "t", "reporter": reporter,
         "body": raw_body if raw_body is not None else body(params)}
    if status is not None:
        t["status"] = status
    path.write_text(yaml.safe_dump(t))
    return tickets.FileSource(path), path


@pytest.mark.parametrize("status", ["Closed", "closed", "Fixed", ""])
def test_a_ticket_that_is_not_open_never_creates(site, tmp_path, status):
    src, path = _file_ticket(tmp_path, GOOD, status=status)
    eng = StubEngine()
    for approve_plan in (None, "20261124T120000-abcdef"):
        out = tickets.run_ticket(src, "21", site, engine=eng, approve=True,
                                 approve_plan=approve_plan)
        assert out.exit_code == 2 and out.run_id is None
    assert eng.calls == []  # nothing ran: no kernel, no cloud call
    comment = yaml.safe_load(path.read_text())["comments"][-1]
    assert "not open" in comment and "`fedcloud ticket run 21 --retire`" in comment
    assert "Fix the request block" not in comment
    # retiring it is what a closed ticket gets
    retired = tickets.run_ticket(src, "21", site, engine=RetireEngine(), approve=True,
                                 retire={"snapshot": False, "delete_volume": False})
    assert retired.exit_code == 0
    assert "Retired: servers deleted: web-1; mail: alice@example.test\n" in retired.text


def test_open_statuses_come_from_the_site_policy(fas, tmp_path, monkeypatch):
    path = policy_copy(tmp_path, fasjson_url=fas.url,
                       tickets__open_statuses=["Open", "In Progress"])
    site = pol.load(path)
    assert site.tickets.open_statuses == ("Open", "In Progress")
    src, _ = _file_ticket(tmp_path, GOOD, status="In Progress")
    eng = StubEngine()
    assert tickets.run_ticket(src, "21", site, engine=eng).exit_code == 0
    assert len(eng.calls) == 1
    src, _ = _file_ticket(tmp_path, GOOD, status="Open", tid=22)
    strict = pol.load(policy_copy(tmp_path, fasjson_url=fas.url,
                                  tickets__open_statuses=["Approved"]))
    assert tickets.run_ticket(src, "22", strict, engine=StubEngine()).exit_code == 2


def test_pagure_closed_issue_is_refused(site, monkeypatch):
    monkeypatch.setenv("PAGURE_API_TOKEN", "tok-123456")
    with FakePagure(token="tok-123456") as pagure:
        pagure.add_issue(8, reporter="alice", content=body(GOOD), status="Closed")
        eng = StubEngine()
        out = tickets.run_ticket(tickets.PagureSource(pagure.url, "fedora-infrastructure"),
                                 "8", site, engine=eng, approve=True)
        assert out.exit_code == 2 and eng.calls == []
        assert "is 'Closed', not open (Open)" in pagure.comments(8)[0]


class RetireEngine(StubEngine):
    def run_runbook(self, runbook, values, **kw):
        self.calls.append((runbook, values, kw))
        return SimpleNamespace(run_id="20261124T130000-abcdef", status="succeeded", exit_code=0,
                               results={"retired": {
                                   "ticket": "21", "servers_deleted": ["web-1"],
                                   "volumes_deleted": [], "mail": {"to": "alice@example.test"},
                                   "steps": [{"index": 1, "action": "delete"}]}}, error=None)


ABSURD_EXPIRY = ["99999999999999d", "9" * 5000 + "h", "99999-01-01", "9999-12-31T23:59:59-23:59",
                 "0001-01-01T00:00+23:59", "2026-13-45", "876001h"]


@pytest.mark.parametrize("expires", ABSURD_EXPIRY, ids=lambda v: v[:20])
@pytest.mark.parametrize("klass", ["dev", "test"])
def test_absurd_expiry_is_refused_naming_the_range(site, expires, klass):
    with pytest.raises(PolicyError) as e:
        tickets.prepare_request(ticket({**GOOD, "instance_class": klass, "volume_gb": 0,
                                        "expires": expires}), site)
    msg = str(e.value)
    assert "expires: " in msg and "at most " in msg, msg
    assert ("87600 h (10 years)" if klass == "dev" else "168 h (7 days)") in msg
    assert len(msg) < 600


def test_absurd_expiry_through_the_cli_is_a_refusal_not_a_traceback(site, tmp_path, capsys):
    src, path = _file_ticket(tmp_path, {**GOOD, "expires": "99999999999999d"})
    assert ticket_cli.main(["run", "21", "--file", str(path), "--no-comment"]) == 2
    err = capsys.readouterr()
    assert "Traceback" not in err.out + err.err
    assert "expires: '99999999999999d' is beyond the longest lifetime" in err.out


def _alias_bomb(levels: int = 7, width: int = 9) -> str:
    """Anchors in the parameters (unknown names, echoed by the refusal) and a purpose that
    expands to width**levels values."""
    lines = ["runbook: instance-for-ticket", "parameters:", "  name: web-1",
             f"  l0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"  l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"  purpose: *a{levels - 1}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("block, expected", [
    (_alias_bomb(), "YAML anchors (&a0) are not allowed"),
    ("runbook: instance-for-ticket\nparameters: {name: *x}\n", "YAML aliases"),
    ("runbook: instance-for-ticket\nparameters: !!python/object:os.system {name: x}\n",
     "YAML tags (tag:yaml.org,2002:pyth"),
    ("runbook: instance-for-ticket\nparameters: {name: !custom web-1}\n", "YAML tags (!custom)"),
    ("runbook: instance-for-ticket\nparameters: {name: !!str web-1}\n", "YAML tags"),
    ("runbook: instance-for-ticket\nparameters: {x: " + "[" * 50 + "]" * 50 + "}\n",
     "nests deeper than 6 levels"),
    ("runbook: instance-for-ticket\nparameters: {volume_gb: " + "9" * 5000 + "}\n",
     "not valid YAML: Exceeds the limit (4300 digits)"),
    ("runbook: instance-for-ticket\nparameters:\n  purpose: '" + "x" * 9000 + "'\n",
     "the request block has 9"),
])
def test_unsafe_request_blocks_are_refused_without_being_built(site, tmp_path, block, expected):
    src, path = _file_ticket(tmp_path, None, raw_body=f"please\n\n```yaml\n{block}```\n")
    eng = StubEngine()
    out = tickets.run_ticket(src, "21", site, engine=eng)
    assert out.exit_code == 2 and eng.calls == []
    comment = yaml.safe_load(path.read_text())["comments"][0]
    assert len(comment) < 2000, len(comment)
    plain = out.text
    assert expected in plain, plain


def test_alias_bomb_answer_is_short_and_quick_to_make(site, tmp_path):
    """The issue's bomb: seven levels of anchors in a few hundred bytes (9**7 values
    once expanded).  Refused from the event stream, before a value is built."""
    block = _alias_bomb()
    assert len(block) < 500
    src, path = _file_ticket(tmp_path, None, raw_body=f"```yaml\n{block}```\n")
    with pytest.raises(ParameterError, match="anchors"):
        tickets.parse(src.get("21"))
    out = tickets.run_ticket(src, "21", site, engine=StubEngine())
    assert out.exit_code == 2 and len(out.comment) < 1000


def test_an_oversized_body_is_refused(site):
    big = body(GOOD) + "x" * tickets.MAX_BODY_CHARS
    with pytest.raises(ParameterError, match=r"the ticket body has \d+ characters; at most 65536"):
        tickets.parse(tickets.Ticket("1", "t", big, "alice"))


def test_fences_are_found_in_one_pass_and_dates_stay_text():
    # every opener made the old pattern rescan the rest of the body for its closer
    t = tickets.Ticket("4242", "t", "```yaml runbook\n" * 4000, "alice")
    with pytest.raises(ParameterError, match="the request block has 63984 characters"):
        tickets.parse(t)
    req = tickets.parse(tickets.Ticket("4242", "t", body(
        "runbook: instance-for-ticket\nparameters: {name: web-1, expires: 2026-12-01}\n"),
        "alice"))
    assert req.values["expires"] == "2026-12-01"
    assert [lang for lang, _ in tickets.fenced_blocks("~~~~yaml\na\n~~~\n~~~~\n```\nb")] \
        == ["yaml", ""]


def test_request_checks_are_bounded_in_time(site, tmp_path, monkeypatch):
    import time as _time

    from fedcloud_lib.tickets import run as ticket_run

    monkeypatch.setattr(ticket_run, "CHECK_SECONDS", 0.3)
    eng = StubEngine()
    slow = eng.validate

    def validate(runbook, values):
        _time.sleep(30)  # what a pathological input would cost
        return slow(runbook, values)

    eng.validate = validate
    src, path = _file_ticket(tmp_path, GOOD)
    t0 = _time.monotonic()
    out = tickets.run_ticket(src, "21", site, engine=eng)
    assert _time.monotonic() - t0 < 25  # refused by the limit, not by the sleep ending
    assert out.exit_code == 2 and eng.calls == []
    assert "took longer than 0.3 s" in out.text


LONG = "x" * 6_000  # within the block size: each check has to shorten it


@pytest.mark.parametrize("params, reporter", [
    ({**GOOD, "purpose": LONG}, "alice"),  # the engine's validation (max=255)
    ({**GOOD, "flavor": LONG}, "alice"),  # the policy check
    ({**GOOD, "expires": LONG}, "alice"),
    ({**GOOD, "requester": "a" * 6_000}, "sysop"),  # the account system
    ({**GOOD, "requester": "b" * 6_000}, "alice"),  # not an admin
    ({**GOOD, "colour": LONG}, "alice"),  # unknown parameter
    ({**GOOD, "ticket": LONG}, "alice"),
])
def test_refusals_show_a_short_prefix_and_the_length(site, tmp_path, params, reporter, capsys):
    src, path = _file_ticket(tmp_path, params, reporter=reporter)
    assert ticket_cli.main(["run", "21", "--file", str(path)]) == 2
    comment = yaml.safe_load(path.read_text())["comments"][0]
    terminal = capsys.readouterr()
    for text in (comment, terminal.out + terminal.err):
        assert "x" * 100 not in text and "a" * 100 not in text and "b" * 100 not in text
        assert "(6000 characters)" in text, text
        assert len(text) < 2500


def test_a_10000_character_purpose_is_refused_in_a_few_lines(site, tmp_path):
    src, path = _file_ticket(tmp_path, {**GOOD, "purpose": "x" * 10_000})
    out = tickets.run_ticket(src, "21", site, engine=StubEngine())
    assert out.exit_code == 2 and "x" * 100 not in out.comment and len(out.comment) < 400


def test_runbook_name_and_keys_are_shortened(site):
    for block, n in (("runbook: " + "r" * 5000 + "\nparameters: {}\n", 5000),
                     ("runbook: instance-for-ticket\n" + "k" * 1000 + ": 1\nparameters: {}\n",
                      1000),
                     ("runbook: instance-for-ticket\nparameters: {" + "Q" * 1000 + ": 1}\n",
                      1000)):
        with pytest.raises(ParameterError) as e:
            tickets.parse(tickets.Ticket("1", "t", body(block), "alice"))
        assert len(str(e.value)) < 400 and f"({n} characters)" in str(e.value), str(e.value)


# ------------------------------------------------------------------ answers are inert markdown
def _render(text: str) -> tuple[list[str], str]:
    """How Pagure shows a comment (python-markdown with Pagure's extensions): the HTML
    tags it makes, and the text a reader sees."""
    from html.parser import HTMLParser

    import markdown

    html_out = markdown.markdown(text, extensions=[
        "def_list", "fenced_code", "tables", "admonition", "sane_lists", "nl2br"])

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.tags, self.text = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)

        def handle_data(self, data):
            self.text.append(data)

    c = Collect()
    c.feed(html_out)
    return c.tags, "".join(c.text)


HOSTILE = ["<img src=//e.vil/x onerror=alert(1)>", "```\nfenced\n```",
           "[click](https://e.vil)", "**bold** _it_ ~~gone~~ `code`", "| a | b |",
           "# heading", "@sysadmin-main see #123", "&lt;b&gt;entity&lt;/b&gt;", "- item",
           "1. first", "<script>alert(1)</script>", "line\u202eRTL\nbreak"]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_refusal_answer_shows_hostile_values_as_text(site, value):
    t = ticket({**GOOD, "flavor": value, "image": value})
    with pytest.raises(PolicyError) as e:
        tickets.prepare_request(t, site)
    comment = tickets.format_refusal(t, e.value)
    tags, seen = _render(comment)
    assert set(tags) <= {"p", "strong", "ul", "li", "br"}, (tags, comment)
    assert f"flavor: {value!r} is not allowed" in seen, (value, seen)  # the message's repr


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_outcome_answer_shows_hostile_values_as_text(value):
    req = tickets.TicketRequest(tickets.Ticket("7", "t", "", "alice"), "instance-for-ticket",
                                {"name": "web-1"})
    ok = SimpleNamespace(run_id="20261124T120000-abcdef", status="succeeded", error=None,
                         results={"plan": [{"action": "create", "kind": "server",
                                            "name": value, "detail": value}],
                                  "instance": {"name": value, "address": "10.0.0.9",
                                               "status": "ACTIVE"},
                                  "quota": [{"resource": value, "used": 1, "requested": 1,
                                             "limit": 9, "headroom_after": 7}]})
    tags, seen = _render(tickets.format_outcome(req, ok, True))
    assert set(tags) <= {"p", "strong", "code", "table", "thead", "tbody", "tr", "th", "td",
                         "br"}, tags
    assert seen.count(value.replace("\n", " ").replace("\u202e", " ")) == 4
    failed = SimpleNamespace(run_id="20261124T120000-abcdef", status="failed",
                             error=f"PolicyError: {value}\nmore {value}", results={})
    comment = tickets.format_outcome(req, failed, True)
    tags, seen = _render(comment)
    assert tags.count("pre") == 1 and "img" not in tags and "script" not in tags, tags
    assert value.split("\n")[0].replace("\u202e", " ") in seen


def test_secrets_are_scrubbed_before_values_are_escaped(site, monkeypatch):
    monkeypatch.setenv("PAGURE_API_TOKEN", "tok_en*with<marks>")
    scrub = tickets.scrubber_for(site)
    t = ticket({**GOOD, "flavor": "tok_en*with<marks>"})
    with pytest.raises(PolicyError) as e:
        tickets.prepare_request(t, site)
    comment = tickets.format_refusal(t, e.value, scrub=scrub)
    _, seen = _render(comment)
    assert "tok_en*with<marks>" not in seen and "***" in seen


def test_an_answer_is_capped(site):
    req = tickets.TicketRequest(tickets.Ticket("7", "t", "", "alice"), "instance-for-ticket", {})
    rows = [{"action": "create", "kind": "server", "name": f"n{i}", "detail": "d" * 500}
            for i in range(1000)]
    res = SimpleNamespace(run_id="20261124T120000-abcdef", status="planned", error=None,
                          results={"plan": rows})
    text = tickets.format_outcome(req, res, False)
    assert len(text) <= tickets.MAX_COMMENT_CHARS + 200
    assert "960 more rows in the archived run" in text
