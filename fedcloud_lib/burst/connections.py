"""One openstacksdk connection per thread, for the burst's worker threads.

The provisioner, the waits and the deletions run in thread pools; each thread gets its own
connection to the same cloud (made with :func:`fedcloud_lib.cloud.connect`'s config), so
no session is shared between threads.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import openstack.connection

__all__ = ["ThreadConnections", "factory_for"]


def factory_for(conn: Any) -> Callable[[], Any]:
    """A function making new connections with ``conn``'s cloud configuration."""
    config = conn.config

    def make() -> Any:
        return openstack.connection.Connection(config=config)

    return make


class ThreadConnections:
    """``get()`` gives the calling thread its own connection (made on first use)."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def get(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._factory()
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
