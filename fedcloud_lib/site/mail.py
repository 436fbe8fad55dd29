"""Mail to requesters (and the cloud admins), with the stdlib's smtplib and email.

SMTP settings come from the site policy's ``mail`` section; the password, if any, from
the environment variable it names.  Nothing here prints or records the password.
"""
from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Iterable

from ..errors import ConfigError, ServiceError
from .policy import MailSettings

__all__ = ["compose", "send", "lines"]

def compose(settings: MailSettings, *, to: Iterable[str], subject: str, body: str,
            cc: Iterable[str] = (), headers: dict[str, str] | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = ", ".join(to)
    cc = [a for a in cc if a]
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.sender.split("@")[-1])
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg


def send(settings: MailSettings, msg: EmailMessage) -> list[str]:
    """Send ``msg``; return the recipients the server accepted."""
    recipients = [a.strip() for h in ("To", "Cc") for a in (msg.get(h) or "").split(",")
                  if a.strip()]
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                password = settings.password()
                if password is None:
                    raise ConfigError(
                        f"SMTP user {settings.username!r} needs a password in "
                        f"${settings.password_env}, which is not set")
                smtp.login(settings.username, password)
            refused = smtp.send_message(msg, to_addrs=recipients)
    except (OSError, smtplib.SMTPException) as exc:
        raise ServiceError(f"mail to {', '.join(recipients)} via {settings.host}:"
                           f"{settings.port} failed: {exc}") from exc
    return [r for r in recipients if r not in refused]


def lines(pairs: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"  {k + ':':<{width + 1}} {v}" for k, v in pairs)
