"""Accounts: who a requester is (mail, ssh public keys, groups), from the account system
the site policy names (``accounts.source``).

* ``fasjson`` — the Fedora Account System, read through its JSON API (FASJSON): a user
  (e-mail, ssh public keys), the user's groups, and a group's members.  FASJSON answers
  ``{"result": ...}`` and pages lists with ``page_size`` / ``page_number``
  (``{"page": {"total_pages": N}}``).  Production FASJSON authenticates with Kerberos:
  pass a ``requests`` session with a GSSAPI auth (``requests-gssapi``) as ``session``;
  tests serve the endpoints from a local HTTP server without auth.
* ``file`` — a directory of YAML files, one per user, named ``<username>.yaml``::

      human_name: Demo User
      emails: [demo@example.org]
      sshpubkeys: ["ssh-ed25519 AAAA... demo@laptop"]
      groups: [packager]

  for a site without FAS (and for the demo).  Every file is checked when read; a user
  is looked up by name in what was read, never by building a path from the name.

:func:`client_for` gives the client the policy names; both have the same reads.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jsonschema
import requests
import yaml

from ..context import run_input
from ..errors import ConfigError, PolicyError, ServiceError
from ..shown import shown

__all__ = ["Account", "AccountSource", "FasjsonClient", "FileAccounts", "UnknownUser",
           "client_for", "account_for", "ACCOUNTS_INPUT", "ACCOUNT_FILE_SCHEMA"]

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


class AccountSource(Protocol):
    """What the SOPs read of an account system."""

    def account(self, username: str) -> Account: ...

    def user_groups(self, username: str) -> list[str]: ...

    def group_members(self, group: str) -> list[str]: ...


def account_for(policy: Any, username: str, client: "AccountSource | None" = None) -> Account:
    """``username``'s account: the one the caller of this run already read (a ticket run
    hands it in, so the account system is asked once per run), else from the account
    system the policy names."""
    handed = run_input(ACCOUNTS_INPUT)
    if isinstance(handed, dict) and isinstance(handed.get(username), dict):
        return Account.from_dict(handed[username])
    return (client or client_for(policy)).account(username)


def client_for(policy: Any) -> "AccountSource":
    """The account system the site policy describes (``accounts`` section): a
    :class:`FileAccounts` for ``source: file``, else a :class:`FasjsonClient`.

    ``auth: gssapi`` authenticates with Kerberos through ``requests-gssapi`` (install it
    on the operator hosts: ``pip install requests-gssapi``; it needs a ticket from kinit).
    """
    if getattr(policy, "accounts_source", "fasjson") == "file":
        return FileAccounts(policy.accounts_path)
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
            raise UnknownUser(f"requester {shown(username)} is not a user of the account "
                              f"system ({self.url})", requester=username)
        return Account(
            username=rec.get("username", username),
            emails=tuple(rec.get("emails") or ()),
            sshpubkeys=tuple(k.strip() for k in (rec.get("sshpubkeys") or ()) if k.strip()),
            groups=tuple(self.user_groups(username)),
            human_name=rec.get("human_name") or "",
        )


#: what one account file holds
ACCOUNT_FILE_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "human_name": {"type": "string", "maxLength": 200},
        "emails": {"type": "array", "maxItems": 20,
                   "items": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$",
                             "maxLength": 254}},
        "sshpubkeys": {"type": "array", "maxItems": 50,
                       "items": {"type": "string", "maxLength": 16384}},
        "groups": {"type": "array", "maxItems": 500,
                   "items": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]*$",
                             "maxLength": 64}},
    },
}
_USERNAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


class FileAccounts:
    """Accounts kept as ``<username>.yaml`` files in one directory (``accounts.source:
    file`` in the site policy).  The directory is read once, every file checked against
    :data:`ACCOUNT_FILE_SCHEMA`; a bad file is a :class:`ConfigError` naming it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"file:{self.path}"  # named in messages like FASJSON's URL
        self._users: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._users is not None:
            return self._users
        if not self.path.is_dir():
            raise ConfigError(f"accounts.path: {self.path} is not a directory of account files")
        validator = jsonschema.Draft202012Validator(ACCOUNT_FILE_SCHEMA)
        users: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        for f in sorted(self.path.glob("*.y*ml")):
            name = f.name.rsplit(".", 1)[0]
            if not _USERNAME.fullmatch(name):
                problems.append(f"{f.name}: {name!r} is not a user name (lower-case letters, "
                                f"digits, '_', '.', '-')")
                continue
            try:
                data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError, ValueError) as exc:
                problems.append(f"{f.name}: cannot be read as YAML: "
                                f"{' '.join(str(exc).split())[:200]}")
                continue
            errors = [f"{f.name}: {'.'.join(map(str, e.absolute_path)) or '(top level)'}: "
                      f"{e.message[:200]}" for e in validator.iter_errors(data)]
            if errors:
                problems += errors
                continue
            users[name] = data
        if problems:
            raise ConfigError(f"account files in {self.path} are invalid:\n  "
                              + "\n  ".join(problems), path=str(self.path), problems=problems)
        self._users = users
        return users

    def user(self, username: str) -> dict[str, Any] | None:
        """The user's record, or None when there is no file for them."""
        return self._load().get(username)

    def user_groups(self, username: str) -> list[str]:
        return list((self.user(username) or {}).get("groups") or [])

    def group_members(self, group: str) -> list[str]:
        return sorted(u for u, rec in self._load().items() if group in (rec.get("groups") or ()))

    def account(self, username: str) -> Account:
        """Everything the SOP needs about ``username``; :class:`UnknownUser` if unknown."""
        rec = self.user(username)
        if rec is None:
            raise UnknownUser(f"requester {shown(username)} is not a user of the account "
                              f"system ({self.url})", requester=username)
        return Account(username=username, emails=tuple(rec.get("emails") or ()),
                       sshpubkeys=tuple(k.strip() for k in rec.get("sshpubkeys") or ()
                                        if k.strip()),
                       groups=tuple(rec.get("groups") or ()),
                       human_name=rec.get("human_name") or "")
