"""FASJSON's read endpoints (v1 users, user groups, group members) from a dict of users.

Same shapes as the real API: ``{"result": ...}`` and, for lists, ``page`` with
``page_size`` / ``page_number`` paging.
"""
from __future__ import annotations

from typing import Any

from .http import LocalServer


class FakeFasjson(LocalServer):
    def __init__(self, users: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        # username -> {"emails": [...], "sshpubkeys": [...], "groups": [...], "human_name"}
        self.users: dict[str, dict[str, Any]] = dict(users or {})
        self.route("GET", r"/v1/users/(?P<u>[^/]+)/?", self._user)
        self.route("GET", r"/v1/users/(?P<u>[^/]+)/groups/?", self._groups)
        self.route("GET", r"/v1/groups/(?P<g>[^/]+)/members/?", self._members)

    def add(self, username: str, *, emails=None, sshpubkeys=None, groups=(),
            human_name: str = "") -> None:
        self.users[username] = {"emails": list(emails if emails is not None
                                              else [f"{username}@example.test"]),
                                "sshpubkeys": list(sshpubkeys or []), "groups": list(groups),
                                "human_name": human_name or username.title()}

    @staticmethod
    def _page(items: list[Any], q: dict[str, str]) -> dict[str, Any]:
        size = int(q.get("page_size", 40))
        number = int(q.get("page_number", 1))
        total = max(1, -(-len(items) // size))
        return {"result": items[(number - 1) * size: number * size],
                "page": {"total_results": len(items), "page_size": size,
                         "page_number": number, "total_pages": total}}

    def _user(self, req: dict[str, Any]) -> tuple[int, Any]:
        u = self.users.get(req["match"]["u"])
        if u is None:
            return 404, {"name": "Not Found", "message": f"{req['match']['u']} not found"}
        return 200, {"result": {"username": req["match"]["u"], "emails": u["emails"],
                                "sshpubkeys": u["sshpubkeys"], "human_name": u["human_name"],
                                "locked": False}}

    def _groups(self, req: dict[str, Any]) -> tuple[int, Any]:
        u = self.users.get(req["match"]["u"])
        if u is None:
            return 404, {"name": "Not Found", "message": "user not found"}
        return 200, self._page([{"groupname": g} for g in u["groups"]], req["query"])

    def _members(self, req: dict[str, Any]) -> tuple[int, Any]:
        g = req["match"]["g"]
        members = [{"username": n} for n, u in sorted(self.users.items()) if g in u["groups"]]
        return 200, self._page(members, req["query"])
