"""instance-retire, notify: the mail step's handler (the requester, admins copied)."""
from __future__ import annotations

from typing import Any

from ..context import current_run
from ..plan import Step
from ..site import mail

__all__ = ["instance_retired_body", "send_retired_mail"]


def instance_retired_body(*, requester: str, ticket: str, name: str, snapshot: str | None,
                          volume: str | None, volume_deleted: bool, run_id: str | None) -> str:
    """The text of the "your instance was retired" mail."""
    vol = ("none" if not volume else
           f"{volume} (deleted)" if volume_deleted else f"{volume} (kept; ask to delete it)")
    pairs = [("ticket", ticket), ("name", name), ("final snapshot", snapshot or "none"),
             ("/srv volume", vol), ("fedcloud run", run_id or "interactive")]
    return (f"Hello {requester},\n\nthe instance made for ticket {ticket} has been retired "
            f"and deleted.\n\n{mail.lines(pairs)}\n\n-- \nfedcloud (Fedora Infrastructure cloud)\n")


def send_retired_mail(st: Any, step: Step) -> str:
    """Handler of ``create mail``: tell the requester what was retired."""
    i = step.inputs
    body = instance_retired_body(
        requester=i["human_name"], ticket=i["ticket"], name=", ".join(i["servers"]) or "-",
        snapshot=", ".join(i["snapshots"]) or None, volume=", ".join(i["volumes"]) or None,
        volume_deleted=i["volume_deleted"], run_id=current_run().run_id)
    msg = mail.compose(st.policy.mail, to=[i["to"]], cc=i["cc"],
                       subject=f"[fedcloud] ticket {i['ticket']}: instance retired",
                       body=body, headers={"X-Fedcloud-Ticket": i["ticket"]})
    mail.send(st.policy.mail, msg)
    st.mail = {"to": i["to"], "subject": str(msg["Subject"])}
    return f"to {i['to']}"
