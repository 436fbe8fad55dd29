"""The Fedora Account System, read through its JSON API (FASJSON).

Only the three reads the instance SOP needs: a user (e-mail, ssh public keys), the
user's groups, and a group's members.  FASJSON answers ``{"result": ...}`` and pages
lists with ``page_size`` / ``page_number`` (``{"page": {"total_pages": N}}``).

Production FASJSON authenticates with Kerberos: pass a ``requests`` session with a
GSSAPI auth (``requests-gssapi``) as ``session``; tests serve the endpoints from a local
HTTP server without auth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from ..context import run_input
from ..errors import ConfigError, PolicyError, ServiceError

__all__ = ["Account", "FasjsonClient", "UnknownUser", "client_for", "account_for", "ACCOUNTS_INPUT"]

#: the run input under which the engine hands a run the accounts its caller already read
ACCOUNTS_INPUT = "accounts"


class UnknownUser(PolicyError):
    """The account system does not know this user."""


@dataclass(frozen=True)
class Account:
    """What the SOPs need of a user: mail addresses, ssh public keys, groups."""

    username: str
    emails: tuple[str, ...]
    sshpubkeys: tuple[str, ...]
    groups: tuple[str, ...]
    human_name: str = ""

    @property
    def email(self) -> str | None:
        return self.emails[0] if self.emails else None

    def to_dict(self) -> dict[str, Any]:
        return {"username": self.username, "emails": list(self.emails),
                "sshpubkeys": list(self.sshpubkeys), "groups": list(self.groups),
                "human_name": self.human_name}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Account":
        return cls(username=d["username"], emails=tuple(d.get("emails") or ()),
                   sshpubkeys=tuple(d.get("sshpubkeys") or ()), groups=tuple(d.get("groups") or ()),
                   human_name=d.get("human_name") or "")


def account_for(policy: Any, username: str, client: "FasjsonClient | None" = None) -> Account:
    """``username``'s account: the one the caller of this run already read (a ticket run
    hands it in, so the account system is asked once per run), else from the account
    system the policy names."""
    handed = run_input(ACCOUNTS_INPUT)
    if isinstance(handed, dict) and isinstance(handed.get(username), dict):
        return Account.from_dict(handed[username])
    return (client or client_for(policy)).account(username)


def client_for(policy: Any) -> "FasjsonClient":
    """The FASJSON client the site policy describes (``accounts`` section).

    ``auth: gssapi`` authenticates with Kerberos through ``requests-gssapi`` (install it
    on the operator hosts: ``pip install requests-gssapi``; it needs a ticket from kinit).
    """
    session = requests.Session()
    if getattr(policy, "fasjson_auth", "none") == "gssapi":
        try:
            from requests_gssapi import OPTIONAL, HTTPSPNEGOAuth  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError("accounts.auth is gssapi but requests-gssapi is not installed "
                              "(pip install requests-gssapi)") from exc
        session.auth = HTTPSPNEGOAuth(mutual_authentication=OPTIONAL)
    return FasjsonClient(policy.fasjson_url, timeout=policy.fasjson_timeout_s, session=session)


class FasjsonClient:
    def __init__(self, url: str, *, timeout: float = 20.0,
                 session: requests.Session | None = None, page_size: int = 100) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.page_size = page_size

    def _get(self, path: str, **params: Any) -> requests.Response:
        try:
            return self.session.get(f"{self.url}/v1/{path}", params=params or None,
                                    timeout=self.timeout,
                                    headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise ServiceError(f"the account system at {self.url} cannot be reached: {exc}",
                               url=self.url) from exc

    def _result(self, resp: requests.Response, what: str) -> Any:
        if resp.status_code != 200:
            raise ServiceError(f"the account system answered {resp.status_code} for {what}",
                               url=resp.url, status=resp.status_code)
        try:
            return resp.json()
        except ValueError as exc:
            raise ServiceError(f"the account system sent invalid JSON for {what}",
                               url=resp.url) from exc

    def _paged(self, path: str, what: str) -> list[Any]:
        out: list[Any] = []
        page = 1
        while True:
            body = self._result(self._get(path, page_size=self.page_size, page_number=page),
                                what)
            out.extend(body.get("result") or [])
            total = (body.get("page") or {}).get("total_pages", 1)
            if page >= total:
                return out
            page += 1

    def user(self, username: str) -> dict[str, Any] | None:
        """The user's record, or None when the account system does not know them."""
        resp = self._get(f"users/{username}/")
        if resp.status_code == 404:
            return None
        return self._result(resp, f"user {username}")["result"]

    def user_groups(self, username: str) -> list[str]:
        return [g["groupname"] for g in self._paged(f"users/{username}/groups/",
                                                     f"groups of {username}")]

    def group_members(self, group: str) -> list[str]:
        return [u["username"] for u in self._paged(f"groups/{group}/members/",
                                                    f"members of {group}")]

    def account(self, username: str) -> Account:
        """Everything the SOP needs about ``username``; :class:`UnknownUser` if unknown."""
        rec = self.user(username)
        if rec is None:
            raise UnknownUser(f"requester {username!r} is not a user of the account system "
                              f"({self.url})", requester=username)
        return Account(
            username=rec.get("username", username),
            emails=tuple(rec.get("emails") or ()),
            sshpubkeys=tuple(k.strip() for k in (rec.get("sshpubkeys") or ()) if k.strip()),
            groups=tuple(self.user_groups(username)),
            human_name=rec.get("human_name") or "",
        )
