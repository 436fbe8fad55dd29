"""instance-for-ticket, step 5: tell the requester — one mail per instance, cc the admins,
remembered in the server's metadata (``fedcloud_mailed``) so a re-run does not mail again.

:func:`send_ready_mail` is the handler of the plan's ``mail`` step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..cloud import call
from ..context import current_run, utcnow
from ..plan import Step
from ..site import mail
from .facts import META, server_address
from .request import iso

__all__ = ["MailOutcome", "REMINDERS", "instance_ready_body", "send_ready_mail"]

LOGIN_USER = "fedora"


@dataclass(frozen=True)
class MailOutcome:
    """What became of a mail: sent (to, cc, accepted, subject, stamp) or why not."""

    sent: bool
    to: str | None = None
    cc: tuple[str, ...] = ()
    accepted: tuple[str, ...] = ()
    subject: str = ""
    stamp: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON."""
        return {"sent": self.sent, "to": self.to, "cc": list(self.cc),
                "accepted": list(self.accepted), "subject": self.subject, "stamp": self.stamp,
                "reason": self.reason}


REMINDERS = (
    "Instances may be rebooted at any time (maintenance, updates, hardware); plan for it.",
    "Save your data often: only the /srv volume survives the instance, and nothing is "
    "backed up for you.",
    "Only ports 22 (ssh), 80 (http) and 443 (https) are open to the instance.",
)


def instance_ready_body(*, requester: str, ticket: str, name: str, address: str | None,
                        login_user: str, instance_class: str, flavor: str, image: str,
                        expires_at: str, volume: str | None, run_id: str | None) -> str:
    """The text of the "your instance is ready" mail: how to log in, expiry, /srv, the policy reminders."""
    login = (f"ssh {login_user}@{address}" if address else
             "(no address yet; the admins will tell you)")
    pairs = [("ticket", ticket), ("name", name), ("address", address or "none yet"),
             ("class", instance_class), ("flavor", flavor), ("image", image),
             ("expires", expires_at), ("/srv volume", volume or "none"),
             ("fedcloud run", run_id or "interactive")]
    reminders = "\n".join(f"  * {r}" for r in REMINDERS)
    return (f"Hello {requester},\n\nthe instance you asked for in ticket {ticket} is ready.\n\n"
            f"{mail.lines(pairs)}\n\nLog in with the ssh key you have in the Fedora Account "
            f"System:\n\n  {login}\n\n"
            + (f"It will be deleted after {expires_at}; ask in the ticket for more time.\n\n"
               if expires_at != "never" else "It has no expiry date.\n\n")
            + f"Please remember:\n{reminders}\n\n-- \nfedcloud (Fedora Infrastructure cloud)\n")


def send_ready_mail(st: Any, step: Step) -> str:
    """Handler of ``create mail``: mail the requester about ``st.server`` (once)."""
    server = st.server
    have = (server.metadata or {}).get(META["mailed"])
    if have:  # mailed by an earlier run that was killed right after
        st.mail = MailOutcome(sent=False, to=step.inputs["to"], stamp=have,
                              reason=f"already mailed at {have}")
        return st.mail.reason
    i = step.inputs
    address = st.fip.floating_ip_address if st.fip is not None else server_address(server)
    meta = server.metadata or {}
    body = instance_ready_body(
        requester=i["human_name"], ticket=i["ticket"], name=server.name, address=address,
        login_user=LOGIN_USER, instance_class=i["instance_class"], flavor=i["flavor"],
        image=i["image"], expires_at=meta.get(META["expires_at"], "never"),
        volume=(f"{i['volume_gb']} GiB on /srv" if i.get("volume_gb") else None),
        run_id=current_run().run_id)
    msg = mail.compose(st.policy.mail, to=[i["to"]], cc=i["cc"],
                       subject=f"[fedcloud] ticket {i['ticket']}: instance {server.name} is ready",
                       body=body, headers={"X-Fedcloud-Ticket": i["ticket"]})
    accepted = mail.send(st.policy.mail, msg)
    stamp = iso(utcnow())
    call(lambda: st.conn.compute.set_server_metadata(server, **{META["mailed"]: stamp}),
         "record the mail in the server metadata")
    st.mail = MailOutcome(sent=True, to=i["to"], cc=tuple(i["cc"]), accepted=tuple(accepted),
                          subject=str(msg["Subject"]), stamp=stamp)
    return f"to {i['to']}"

