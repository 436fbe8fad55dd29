"""Mail to requesters (and the cloud admins), with the stdlib's smtplib and email.

SMTP settings come from the site policy's ``mail`` section; the password, if any, from
the environment variable it names.  Nothing here prints or records the password.
"""
from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Iterable

from .errors import ConfigError
from .policy import MailSettings

__all__ = ["compose", "send", "instance_ready_body", "instance_retired_body", "REMINDERS"]

REMINDERS = (
    "Instances may be rebooted at any time (maintenance, updates, hardware); plan for it.",
    "Save your data often: only the /srv volume survives the instance, and nothing is "
    "backed up for you.",
    "Only ports 22 (ssh), 80 (http) and 443 (https) are open to the instance.",
)


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
        raise ConfigError(f"mail to {', '.join(recipients)} via {settings.host}:"
                          f"{settings.port} failed: {exc}") from exc
    return [r for r in recipients if r not in refused]


def _lines(pairs: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"  {k + ':':<{width + 1}} {v}" for k, v in pairs)


def instance_ready_body(*, requester: str, ticket: str, name: str, address: str | None,
                        login_user: str, instance_class: str, flavor: str, image: str,
                        expires_at: str, volume: str | None, run_id: str | None) -> str:
    login = (f"ssh {login_user}@{address}" if address else
             "(no address yet; the admins will tell you)")
    pairs = [("ticket", ticket), ("name", name), ("address", address or "none yet"),
             ("class", instance_class), ("flavor", flavor), ("image", image),
             ("expires", expires_at), ("/srv volume", volume or "none"),
             ("fedcloud run", run_id or "interactive")]
    reminders = "\n".join(f"  * {r}" for r in REMINDERS)
    return (f"Hello {requester},\n\nthe instance you asked for in ticket {ticket} is ready.\n\n"
            f"{_lines(pairs)}\n\nLog in with the ssh key you have in the Fedora Account "
            f"System:\n\n  {login}\n\n"
            + (f"It will be deleted after {expires_at}; ask in the ticket for more time.\n\n"
               if expires_at != "never" else "It has no expiry date.\n\n")
            + f"Please remember:\n{reminders}\n\n-- \nfedcloud (Fedora Infrastructure cloud)\n")


def instance_retired_body(*, requester: str, ticket: str, name: str, snapshot: str | None,
                          volume: str | None, volume_deleted: bool, run_id: str | None) -> str:
    vol = ("none" if not volume else
           f"{volume} (deleted)" if volume_deleted else f"{volume} (kept; ask to delete it)")
    pairs = [("ticket", ticket), ("name", name), ("final snapshot", snapshot or "none"),
             ("/srv volume", vol), ("fedcloud run", run_id or "interactive")]
    return (f"Hello {requester},\n\nthe instance made for ticket {ticket} has been retired "
            f"and deleted.\n\n{_lines(pairs)}\n\n-- \nfedcloud (Fedora Infrastructure cloud)\n")
