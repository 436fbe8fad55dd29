"""Mail through a real SMTP server on loopback (aiosmtpd)."""
from __future__ import annotations

import dataclasses

import pytest

from fedcloud_lib.errors import ConfigError, ServiceError
from fedcloud_lib.instance import notify
from fedcloud_lib.site import mail
from fedcloud_lib.site.policy import MailSettings
from tests.fakes.smtp import LocalSmtp

pytestmark = pytest.mark.unit


def test_instance_mail_reaches_requester_and_admins():
    with LocalSmtp() as smtp:
        settings = MailSettings(host="127.0.0.1", port=smtp.port, sender="fedcloud@example.test",
                                admins=("admin@example.test",))
        body = notify.instance_ready_body(
            requester="Alice", ticket="42", name="web-1", address="10.0.0.5", login_user="fedora",
            instance_class="qa", flavor="m1.small", image="fedora-cloud-test",
            expires_at="2026-12-01T00:00:00Z", volume="10 GiB on /srv", run_id="RUN1")
        msg = mail.compose(settings, to=["alice@example.test"], cc=settings.admins,
                           subject="[fedcloud] ticket 42", body=body)
        accepted = mail.send(settings, msg)
    assert accepted == ["alice@example.test", "admin@example.test"]
    [got] = smtp.messages
    assert set(got["rcpt"]) == {"alice@example.test", "admin@example.test"}
    text = LocalSmtp.body(got["message"])
    assert "ssh fedora@10.0.0.5" in text and "2026-12-01T00:00:00Z" in text
    for reminder in ("rebooted at any time", "Save your data often", "22 (ssh), 80 (http) and 443"):
        assert reminder in text
    assert got["message"]["Cc"] == "admin@example.test"


def test_login_needs_the_password_from_the_environment(monkeypatch):
    monkeypatch.delenv("FEDCLOUD_TEST_SMTP_PW", raising=False)
    with LocalSmtp() as smtp:
        settings = MailSettings(host="127.0.0.1", port=smtp.port, sender="f@example.test",
                                username="bot", password_env="FEDCLOUD_TEST_SMTP_PW")
        msg = mail.compose(settings, to=["a@example.test"], subject="s", body="b")
        with pytest.raises(ConfigError, match=r"needs a password in \$FEDCLOUD_TEST_SMTP_PW"):
            mail.send(settings, msg)
    assert smtp.messages == []


def test_unreachable_relay_is_a_service_error():
    with LocalSmtp() as smtp:
        port = smtp.port
    settings = MailSettings(host="127.0.0.1", port=port, sender="f@example.test", timeout_s=2)
    msg = mail.compose(settings, to=["a@example.test"], subject="s", body="b")
    with pytest.raises(ServiceError, match="failed") as e:
        mail.send(dataclasses.replace(settings), msg)
    assert e.value.exit_code == 4
