"""One way to talk to the cloud: openstacksdk, configured by ``clouds.yaml`` / ``OS_CLOUD``.

:func:`connect` opens (and authenticates) a connection to a clouds.yaml entry;
:func:`call` and :func:`mapped` turn the SDK's and keystoneauth's exceptions into a
:class:`~fedcloud_lib.errors.CloudError` that says what was being done, chained with
``from``.  Waits and retries are the SDK's own (``wait_for_status``, ``wait_for_delete``,
``wait_for_server``), never a polling loop of ours.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as os_exc

from .errors import CloudError, ConfigError

__all__ = ["CLOUD_ERRORS", "GONE", "connect", "call", "mapped", "server_gone", "volume_gone"]

#: what a cloud call can raise: the SDK's errors, and keystoneauth's for an unreachable API
CLOUD_ERRORS = (os_exc.SDKException, ksa_exc.ClientException)
#: server states that count as gone
GONE = ("DELETED", "SOFT_DELETED")

T = TypeVar("T")


def connect(cloud: str | None = None, *, authorize: bool = False) -> Any:
    """An openstacksdk connection to clouds.yaml entry ``cloud`` (default ``$OS_CLOUD``).

    ``authorize`` logs in at once, so that a wrong password or a stopped Keystone is
    reported here rather than at the first call.  Raises :class:`ConfigError` for an
    unknown entry, :class:`CloudError` when the cloud cannot be reached.
    """
    import openstack

    name = cloud or os.environ.get("OS_CLOUD") or None
    try:
        conn = openstack.connect(cloud=name)
        if authorize:
            conn.authorize()
        return conn
    except os_exc.ConfigException as exc:
        raise ConfigError(f"cloud {name!r} is not an entry of clouds.yaml ({exc}); "
                          f"run cloudlet-install or set OS_CLOUD", cloud=name) from exc
    except CLOUD_ERRORS as exc:
        raise CloudError(f"cannot connect to cloud {name!r}: {exc}. Is it running? "
                         f"(`fedcloud cloudlet status`)", cloud=name) from exc


def call(fn: Callable[[], T], what: str, **context: Any) -> T:
    """``fn()``, with a cloud failure reported as ``cannot <what>: <reason>``."""
    try:
        return fn()
    except CLOUD_ERRORS as exc:
        raise CloudError(f"cannot {what}: {exc}", **context) from exc


@contextmanager
def mapped(what: str, hint: str = "", **context: Any) -> Iterator[None]:
    """A block whose cloud failures become one :class:`CloudError` (``what`` failed)."""
    try:
        yield
    except CLOUD_ERRORS as exc:
        raise CloudError(f"{what} failed: {exc}" + (f"; {hint}" if hint else ""),
                         **context) from exc


def server_gone(conn: Any, server_id: str, timeout: int = 600) -> bool:
    """Delete server ``server_id`` and wait until it is gone; True if it existed.

    Idempotent: a server already gone is fine (the handler of a re-run finds nothing).
    """
    server = conn.compute.find_server(server_id, ignore_missing=True)
    if server is None:
        return False
    conn.compute.delete_server(server, ignore_missing=True)
    conn.compute.wait_for_delete(server, wait=timeout)
    return True


def volume_gone(conn: Any, volume_id: str, timeout: int = 600) -> bool:
    """Delete volume ``volume_id`` (after its detachment finishes) and wait until it is
    gone; True if it existed.  Idempotent like :func:`server_gone`."""
    volume = conn.block_storage.find_volume(volume_id, ignore_missing=True)
    if volume is None:
        return False
    if volume.status in ("in-use", "detaching"):
        volume = conn.block_storage.wait_for_status(volume, "available", failures=["error"],
                                                    wait=timeout)
    conn.block_storage.delete_volume(volume, ignore_missing=True)
    conn.block_storage.wait_for_delete(volume, wait=timeout)
    return True
