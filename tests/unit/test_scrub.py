import json

import pytest

from fedcloud_lib.scrub import MARKER, Scrubber, collect_secrets

pytestmark = pytest.mark.unit


def test_literal_secrets_are_replaced_in_all_their_written_forms():
    s = Scrubber(['pa"ss<w>\\rd'])
    raw = 'pa"ss<w>\\rd'
    for text in (raw, json.dumps(raw), "&lt;" + raw.replace("<", "&lt;").replace(">", "&gt;"),
                 repr(raw)):
        assert "ss<w" not in s.text(text) and "ss&lt;w" not in s.text(text)
        assert MARKER in s.text(text)


def test_longer_secret_containing_a_shorter_one_is_replaced_whole():
    s = Scrubber(["abcd", "abcdefgh"])
    assert s.text("x abcdefgh y") == f"x {MARKER} y"


def test_shapes_private_keys_and_tokens():
    s = Scrubber()
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
    out = s.text(f"key:\n{key}\nend")
    assert "MIIEow" not in out and out.endswith("end")
    for header in ("X-Auth-Token: abc123def", "'X-Auth-Token': 'abc123def'",
                   '"x-subject-token": "abc123def"'):
        assert "abc123def" not in s.text(header)
    fernet = "gAAAAAB" + "x" * 60
    assert fernet not in s.text(f"token={fernet}")


def test_public_keys_and_ordinary_text_survive():
    s = Scrubber(["hunter22"])
    text = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI alice@example  and the word hunter"
    assert s.text(text) == text


def test_data_scrubs_nested_strings_and_keys():
    s = Scrubber(["topsecret"])
    data = {"a": ["x topsecret y", {"topsecret": 1}], "n": 3}
    assert s.data(data) == {"a": [f"x {MARKER} y", {MARKER: 1}], "n": 3}


def test_collect_secrets_from_env_clouds_yaml_and_secret_files(tmp_path, monkeypatch):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  c1:\n    auth: {username: bob, password: CloudPw123}\n"
                      "  c2:\n    auth: {application_credential_secret: AppCredS3cret}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    sdir = tmp_path / "secrets"
    sdir.mkdir()
    (sdir / "testing.yaml").write_text("mysql: DbRootPw99\nnested: {rabbit: RabbitPw77}\n")
    env = {"PAGURE_API_TOKEN": "PagureTok55", "SMTP_PASSWORD": "ab", "HOME": "/root"}
    found = set(collect_secrets(["declared!"], secrets_dir=sdir, environ=env))
    assert {"declared!", "CloudPw123", "AppCredS3cret", "DbRootPw99", "RabbitPw77",
            "PagureTok55"} <= found
    assert "bob" not in found and "/root" not in found
    assert "ab" not in found  # too short to scrub as an ambient value
