"""FASJSON client against a local HTTP server speaking FASJSON's endpoints."""
from __future__ import annotations

import pytest

from fedcloud_lib.errors import ConfigError, ServiceError
from fedcloud_lib.site.accounts import FasjsonClient, UnknownUser
from tests.fakes.fasjson import FakeFasjson

pytestmark = pytest.mark.unit


@pytest.fixture
def fas():
    with FakeFasjson() as f:
        f.add("alice", sshpubkeys=["ssh-ed25519 AAAAC3Nza alice@laptop", "  "],
              groups=[f"g{i}" for i in range(7)] + ["packager"], human_name="Alice A")
        f.add("bob", emails=[], sshpubkeys=[], groups=[])
        yield f


def test_account_reads_user_keys_and_all_group_pages(fas):
    client = FasjsonClient(fas.url, page_size=3)
    acct = client.account("alice")
    assert acct.username == "alice" and acct.email == "alice@example.test"
    assert acct.sshpubkeys == ("ssh-ed25519 AAAAC3Nza alice@laptop",)
    assert set(acct.groups) == {f"g{i}" for i in range(7)} | {"packager"}
    group_calls = [r for r in fas.requests if r["path"] == "/v1/users/alice/groups/"]
    assert [r["query"]["page_number"] for r in group_calls] == ["1", "2", "3"]
    assert client.group_members("packager") == ["alice"]


def test_unknown_user_and_empty_account(fas):
    client = FasjsonClient(fas.url)
    with pytest.raises(UnknownUser, match="'mallory' is not a user of the account system"):
        client.account("mallory")
    bob = client.account("bob")
    assert bob.sshpubkeys == () and bob.email is None and bob.groups == ()


def test_unreachable_account_system_is_a_service_error_not_bad_input():
    with FakeFasjson() as f:
        url = f.url
    with pytest.raises(ServiceError, match="cannot be reached") as e:
        FasjsonClient(url, timeout=2).account("alice")
    assert e.value.exit_code == 4


def test_policy_chooses_the_client_auth(fas):
    from types import SimpleNamespace

    from fedcloud_lib.site.accounts import client_for

    plain = client_for(SimpleNamespace(fasjson_url=fas.url, fasjson_timeout_s=5,
                                       fasjson_auth="none"))
    assert plain.session.auth is None and plain.account("alice").username == "alice"
    try:
        import requests_gssapi  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="requests-gssapi is not installed"):
            client_for(SimpleNamespace(fasjson_url=fas.url, fasjson_timeout_s=5,
                                       fasjson_auth="gssapi"))
    else:
        kerberos = client_for(SimpleNamespace(fasjson_url=fas.url, fasjson_timeout_s=5,
                                              fasjson_auth="gssapi"))
        assert kerberos.session.auth is not None


# ------------------------------------------------------------------ accounts.source: file
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1Y2lkLWFsaWNlLWtleS1mb3ItZmVkY2xvdWQtdGVz d@x"


def _people(tmp_path):
    import yaml

    d = tmp_path / "people"
    d.mkdir()
    (d / "dana.yaml").write_text(yaml.safe_dump({
        "human_name": "Dana D", "emails": ["dana@example.org"], "sshpubkeys": [KEY, " "],
        "groups": ["packager", "qa"]}))
    (d / "eve.yml").write_text(yaml.safe_dump({"emails": [], "groups": ["qa"]}))
    (d / "README.txt").write_text("not an account")
    return d


def test_file_accounts_read_users_groups_and_members(tmp_path):
    from fedcloud_lib.site.accounts import FileAccounts

    src = FileAccounts(_people(tmp_path))
    dana = src.account("dana")
    assert dana.emails == ("dana@example.org",) and dana.sshpubkeys == (KEY,)
    assert dana.groups == ("packager", "qa") and dana.human_name == "Dana D"
    assert src.account("eve").sshpubkeys == () and src.user_groups("eve") == ["qa"]
    assert src.group_members("qa") == ["dana", "eve"]
    with pytest.raises(UnknownUser, match="'mallory' is not a user of the account system"):
        src.account("mallory")


def test_file_accounts_never_build_a_path_from_the_name(tmp_path):
    from fedcloud_lib.site.accounts import FileAccounts

    d = _people(tmp_path)
    (tmp_path / "secret.yaml").write_text("emails: [root@example.org]\n")
    for name in ("../secret", "/etc/passwd", "dana/../../secret", "x" * 5000):
        with pytest.raises(UnknownUser) as e:
            FileAccounts(d).account(name)
        assert len(str(e.value)) < 200


@pytest.mark.parametrize("name, text, expected", [
    ("bad.yaml", "emails: [not-an-address]\n", "bad.yaml: emails.0: 'not-an-address' does not match"),
    ("bad.yaml", "groups: [Admins!]\n", "bad.yaml: groups.0"),
    ("bad.yaml", "password: hunter2\n", "'password' was unexpected"),
    ("bad.yaml", "emails: [a@b\n", "bad.yaml: cannot be read as YAML"),
    ("Not A User.yaml", "emails: []\n", "'Not A User' is not a user name"),
])
def test_bad_account_files_are_a_config_error_naming_the_file(tmp_path, name, text, expected):
    from fedcloud_lib.site.accounts import FileAccounts

    d = _people(tmp_path)
    (d / name).write_text(text)
    with pytest.raises(ConfigError) as e:
        FileAccounts(d).account("dana")
    assert expected in str(e.value)


def test_policy_with_file_source_gives_file_accounts(tmp_path, monkeypatch):
    import yaml

    from fedcloud_lib.site import policy as pol
    from fedcloud_lib.site.accounts import FileAccounts, account_for, client_for

    d = _people(tmp_path)
    data = yaml.safe_load(pol.DEFAULT_POLICY_PATH.read_text())
    data["accounts"] = {"source": "file", "path": d.name}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    site = pol.load(path)
    client = client_for(site)
    assert isinstance(client, FileAccounts) and client.path == d
    monkeypatch.delenv("FEDCLOUD_RUN_DIR", raising=False)
    assert account_for(site, "dana").email == "dana@example.org"
