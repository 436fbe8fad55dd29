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


# ---------------------------------------------------------------- issue 7
def test_boolean_short_and_small_number_env_values_are_not_secrets():
    env = {"PASSWORD_STORE_ENABLE_EXTENSIONS": "true", "GIT_TOKEN_OFF": "False",
           "TOKEN_TTL": "3600", "SECRET_YEAR": "2026", "MY_PASSWORD": "short",
           "SMTP_PASSWORD": "s3cret-enough", "FEDCLOUD_SECRETS_DIR": "/etc/fedcloud/secrets",
           "OS_CLIENT_SECRET_FILE": "/root/.secret-file", "TOKEN_ENV": "PAGURE_API_TOKEN"}
    found = collect_secrets(environ=env)
    assert "s3cret-enough" in found
    assert not {"true", "False", "3600", "2026", "short", "/etc/fedcloud/secrets",
                "/root/.secret-file", "PAGURE_API_TOKEN"} & set(found)
    s = Scrubber(["s3cret-enough"])
    assert s.data({"approve": True, "x": "true", "year": "2026"}) == \
        {"approve": True, "x": "true", "year": "2026"}


def test_each_string_leaf_of_a_list_or_dict_secret_is_registered():
    s = Scrubber(collect_secrets([["tok-alpha-1", "tok-beta-22"], {"db": "DbPw-x1", "n": 3}],
                                 environ={}))
    assert s.text("only one: tok-beta-22.") == f"only one: {MARKER}."
    assert s.text("db DbPw-x1 n 3") == f"db {MARKER} n 3"


def test_truncated_and_wrapped_pieces_of_a_long_secret_are_replaced():
    import pprint

    import pandas as pd

    token = "Zq8" + "".join(chr(ord("a") + (i * 7) % 26) for i in range(61))  # 64 chars
    s = Scrubber([token])
    shown = repr(pd.DataFrame({"t": [token]}))  # pandas cuts it to ~50 characters
    assert token not in shown and token[:40] in shown  # pandas cut it short
    out = s.text(shown)
    assert all(token[i:i + 12] not in out for i in range(len(token) - 11))
    phrase = "correct horse battery staple and a much longer passphrase than usual here"
    wrapped = pprint.pformat({"p": phrase}, width=30)
    assert "'\n" in wrapped  # pprint did wrap it into pieces
    out = Scrubber([phrase]).text(wrapped)
    assert "battery" not in out and "longer" not in out and "passphrase" not in out
    # a short piece of a short secret is ordinary text
    assert Scrubber(["hunter22hunter22"]).text("hunter2") == "hunter2"


def test_matching_is_one_automaton_pass_not_a_loop_of_replaces():
    import fedcloud_lib.scrub as scrub_mod

    secrets = [f"secret-number-{i:04d}-abcdefgh" for i in range(300)]
    s = Scrubber(secrets)
    text = "x " * 50_000 + secrets[123] + " y"
    assert s.text(text).endswith(f"x {MARKER} y")
    assert not hasattr(s, "_literal_re") and scrub_mod.ahocorasick  # the automaton is used


def test_json_with_ensure_ascii_false_of_a_secret_with_quotes_and_non_ascii():
    pw = 'pä"ss\\wörd€-x'
    s = Scrubber([pw])
    for text in (json.dumps({"pw": pw}, ensure_ascii=False), json.dumps({"pw": pw}),
                 repr(pw), ascii(pw)):
        assert "ss" not in s.text(text).replace("pw", ""), text


def test_pgp_private_key_blocks_and_cut_short_key_blocks():
    s = Scrubber()
    pgp = ("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGSecretKeyMaterial\n=abcd\n"
           "-----END PGP PRIVATE KEY BLOCK-----")
    out = s.text(f"before\n{pgp}\nafter")
    assert "lQOYBGSecretKeyMaterial" not in out and out.startswith("before") and out.endswith("after")
    cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA..."
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in s.text(cut)


def test_headers_in_a_value_keep_the_quote_that_follows():
    s = Scrubber()
    out = s.text('X-Auth-Token: abc123def"')
    assert out == f'X-Auth-Token: {MARKER}"'
    assert "abc123" not in s.text("Authorization: Bearer abc123def")


def test_a_short_secret_does_not_rename_the_keys_of_recorded_results():
    """Found by the property test: a declared secret ``k`` turned the result key ``ok``
    into ``o***``. Keys are replaced only by a long secret in them, or when they are the
    secret."""
    s = Scrubber(["k", "hunter2-long-enough"])
    got = s.data({"ok": True, "k": 1, "the hunter2-long-enough key": 2, "v": "ok k"})
    assert got["ok"] is True and got[MARKER] == 1 and got["v"] == f"o{MARKER} {MARKER}"
    [long_key] = [k for k in got if k.startswith("the ")]
    assert "hunter2" not in long_key  # a key holding a long secret is scrubbed like text
