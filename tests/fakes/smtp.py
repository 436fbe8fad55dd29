"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""
from __future__ import annotations

import email
import email.policy
import socket
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class _Keep:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        self.messages.append({"from": envelope.mail_from, "rcpt": list(envelope.rcpt_tos),
                              "message": msg})
        return "250 OK"


class LocalSmtp:
    def __init__(self) -> None:
        self.handler = _Keep()
        # aiosmtpd's start() connects to its own port to check it is up, so it needs the
        # port up front: take a free ephemeral one from the kernel
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            free = sock.getsockname()[1]
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=free)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.handler.messages

    @property
    def port(self) -> int:
        return self.controller.port

    def __enter__(self) -> "LocalSmtp":
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()

    @staticmethod
    def body(msg: EmailMessage) -> str:
        return msg.get_body(preferencelist=("plain",)).get_content()
