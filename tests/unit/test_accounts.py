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
