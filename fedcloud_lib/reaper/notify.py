"""lifetime-reaper, notify: the expiry notice — one mail per owner, sent once per server
(remembered in the server's ``fedcloud_expiry_notice`` metadata)."""
from __future__ import annotations

from typing import Any

from ..cloud import call
from ..context import current_run, utcnow
from ..instance.request import iso
from ..plan import Step
from ..site import mail
from .facts import NOTICE_KEY

__all__ = ["expiry_notice_body", "send_notice"]


def expiry_notice_body(*, owner: str, servers: list[dict[str, Any]], run_id: str | None) -> str:
    """The text of the "your instance(s) will be deleted" mail."""
    listed = "\n".join(f"  * {s['name']} (ticket {s.get('ticket') or '-'}): deleted after "
                       f"{s['deadline']}" for s in servers)
    return (f"Hello {owner},\n\nthe following instance(s) reach the end of their lifetime "
            f"and will be deleted:\n\n{listed}\n\nSave what you need from them before then "
            f"(only a /srv volume survives its instance). To keep an instance longer, ask in "
            f"its ticket before it expires.\n\n  fedcloud run: {run_id or 'interactive'}\n\n"
            f"-- \nfedcloud (Fedora Infrastructure cloud)\n")


def send_notice(st: Any, step: Step) -> str:
    """Handler of ``create mail``: tell the owner once about the servers not yet told
    (a server told by an earlier, killed run is skipped), then stamp each server."""
    i = step.inputs
    pending = []
    for s in i["servers"]:
        server = call(lambda: st.conn.compute.find_server(s["id"], ignore_missing=True),
                      f"look up server {s['name']}")
        if server is None:
            continue  # deleted meanwhile: nothing to tell
        server = call(lambda: st.conn.compute.get_server(server.id), f"read server {s['name']}")
        if not (server.metadata or {}).get(NOTICE_KEY):
            pending.append((server, s))
    if not pending:
        return "already told"
    listed = [s for _, s in pending]
    names = ", ".join(s["name"] for s in listed)
    subject = (f"[fedcloud] instances {names} expire soon" if len(listed) > 1
               else f"[fedcloud] instance {names} expires soon")
    body = expiry_notice_body(owner=i["human_name"], servers=listed,
                              run_id=current_run().run_id)
    msg = mail.compose(st.policy.mail, to=[i["to"]], cc=i["cc"], subject=subject, body=body,
                       headers={"X-Fedcloud-Notice": "expiry"})
    mail.send(st.policy.mail, msg)
    stamp = iso(utcnow())
    for server, s in pending:
        call(lambda: st.conn.compute.set_server_metadata(server, **{NOTICE_KEY: stamp}),
             f"record the notice on {s['name']}")
    st.mailed.append({"to": i["to"], "servers": [s["name"] for s in listed],
                      "subject": str(msg["Subject"]), "at": stamp})
    return f"to {i['to']}: {', '.join(s['name'] for s in listed)}"
