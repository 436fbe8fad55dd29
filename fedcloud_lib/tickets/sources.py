"""Where tickets come from and where answers go: a local JSON/YAML file, or Pagure.

A :class:`TicketSource` (a small Protocol) reads one ticket and posts a comment on it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests
import yaml

from ..errors import ConfigError, ParameterError, ServiceError

__all__ = ["Ticket", "TicketSource", "FileSource", "PagureSource"]


@dataclass(frozen=True)
class Ticket:
    id: str
    title: str
    body: str
    reporter: str
    status: str = "Open"
    source: str = ""
    comments: tuple[str, ...] = field(default=())


class TicketSource(Protocol):
    name: str

    def get(self, ticket_id: str) -> Ticket: ...

    def comment(self, ticket_id: str, text: str) -> None: ...


class FileSource:
    """Tickets kept in a local JSON or YAML file.

    The file holds one ticket (``{id, title, reporter, body, status?, comments?}``) or
    ``{tickets: [ticket, ...]}``.  Comments are appended to the ticket's ``comments``
    list in the same file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"

    def _load(self) -> Any:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"ticket file {self.path} does not exist") from None
        try:
            return json.loads(text) if self.path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"ticket file {self.path} is not valid "
                              f"{'JSON' if self.path.suffix == '.json' else 'YAML'}: {exc}") \
                from exc

    def _save(self, data: Any) -> None:
        text = (json.dumps(data, indent=2) + "\n" if self.path.suffix == ".json"
                else yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.path)

    @staticmethod
    def _tickets(data: Any) -> list[dict[str, Any]]:
        if isinstance(data, dict) and isinstance(data.get("tickets"), list):
            return data["tickets"]
        if isinstance(data, dict) and "body" in data:
            return [data]
        raise ConfigError("a ticket file holds one ticket (id, title, reporter, body) or "
                          "'tickets: [...]'")

    def _find(self, data: Any, ticket_id: str | None) -> dict[str, Any]:
        tickets = self._tickets(data)
        if ticket_id is None and len(tickets) == 1:
            return tickets[0]
        for t in tickets:
            if str(t.get("id")) == str(ticket_id):
                return t
        raise ConfigError(f"ticket {ticket_id} is not in {self.path}; it has: "
                          f"{', '.join(str(t.get('id')) for t in tickets)}")

    def get(self, ticket_id: str | None) -> Ticket:
        t = self._find(self._load(), ticket_id)
        missing = [k for k in ("id", "reporter", "body") if not t.get(k)]
        if missing:
            raise ConfigError(f"ticket in {self.path} lacks {', '.join(missing)}")
        return Ticket(id=str(t["id"]), title=str(t.get("title", "")), body=str(t["body"]),
                      reporter=str(t["reporter"]), status=str(t.get("status", "Open")),
                      source=self.name,
                      comments=tuple(str(c) for c in t.get("comments") or ()))

    def comment(self, ticket_id: str, text: str) -> None:
        data = self._load()
        t = self._find(data, ticket_id)
        t.setdefault("comments", []).append(text)
        self._save(data)


class PagureSource:
    """Issues of a Pagure project (``/api/0/<repo>/issue/<id>`` and ``.../comment``).

    The API token is read from the environment variable ``token_env`` when needed and
    never printed; reading public issues works without it, commenting needs it.
    """

    def __init__(self, url: str, repo: str, *, token_env: str = "PAGURE_API_TOKEN",
                 timeout: float = 30.0, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.repo = repo.strip("/")
        self.token_env = token_env
        self.timeout = timeout
        self.session = session or requests.Session()
        self.name = f"pagure:{self.url}/{self.repo}"

    def _headers(self, need_token: bool) -> dict[str, str]:
        token = os.environ.get(self.token_env)
        if need_token and not token:
            raise ConfigError(f"posting to Pagure needs an API token in ${self.token_env} "
                              f"(scope issue_comment); it is not set")
        return {"Accept": "application/json",
                **({"Authorization": f"token {token}"} if token else {})}

    def _issue_url(self, ticket_id: str) -> str:
        return f"{self.url}/api/0/{self.repo}/issue/{ticket_id}"

    def _check(self, resp: requests.Response, what: str) -> Any:
        if resp.status_code != 200:
            try:
                detail = resp.json().get("error", "")
            except ValueError:
                detail = ""
            text = f"Pagure answered {resp.status_code} to {what}" + (f": {detail}" if detail else "")
            if resp.status_code == 404:  # no such issue: the operator gave a wrong number
                raise ParameterError(text, status=resp.status_code)
            if resp.status_code in (401, 403):  # the token is wrong or lacks a scope
                raise ConfigError(text, status=resp.status_code)
            raise ServiceError(text, status=resp.status_code)
        try:
            return resp.json()
        except ValueError as exc:
            raise ServiceError(f"Pagure sent invalid JSON for {what}") from exc

    def get(self, ticket_id: str) -> Ticket:
        what = f"reading issue {ticket_id} of {self.repo}"
        try:
            resp = self.session.get(self._issue_url(ticket_id), headers=self._headers(False),
                                    timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceError(f"Pagure at {self.url} cannot be reached: {exc}") from exc
        issue = self._check(resp, what)
        return Ticket(id=str(issue["id"]), title=issue.get("title", ""),
                      body=issue.get("content", ""),
                      reporter=(issue.get("user") or {}).get("name", ""),
                      status=issue.get("status", ""), source=self.name,
                      comments=tuple(c.get("comment", "") for c in issue.get("comments") or ()))

    def comment(self, ticket_id: str, text: str) -> None:
        what = f"commenting on issue {ticket_id} of {self.repo}"
        try:
            resp = self.session.post(f"{self._issue_url(ticket_id)}/comment",
                                     data={"comment": text}, headers=self._headers(True),
                                     timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceError(f"Pagure at {self.url} cannot be reached: {exc}") from exc
        self._check(resp, what)
