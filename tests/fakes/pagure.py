"""Pagure's issue read and comment endpoints (``/api/0/<repo>/issue/<id>[/comment]``)."""
from __future__ import annotations

import itertools
from typing import Any

from .http import LocalServer


class FakePagure(LocalServer):
    def __init__(self, repo: str = "fedora-infrastructure", token: str = "") -> None:
        super().__init__()
        self.repo = repo
        self.token = token
        self.issues: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        base = rf"/api/0/{repo}/issue/(?P<id>\d+)"
        self.route("GET", base, self._get)
        self.route("POST", base + "/comment", self._comment)

    def add_issue(self, issue_id: int | str, *, reporter: str, content: str,
                  title: str = "instance request", status: str = "Open") -> None:
        self.issues[str(issue_id)] = {
            "id": int(issue_id), "title": title, "content": content, "status": status,
            "user": {"name": reporter, "fullname": reporter.title()}, "comments": [],
            "tags": [], "private": False}

    def comments(self, issue_id: int | str) -> list[str]:
        return [c["comment"] for c in self.issues[str(issue_id)]["comments"]]

    def _get(self, req: dict[str, Any]) -> tuple[int, Any]:
        issue = self.issues.get(req["match"]["id"])
        if issue is None:
            return 404, {"error": "Issue not found", "error_code": "ENOISSUE"}
        return 200, issue

    def _comment(self, req: dict[str, Any]) -> tuple[int, Any]:
        if req["headers"].get("Authorization") != f"token {self.token}":
            return 401, {"error": "Invalid or expired token", "error_code": "EINVALIDTOK"}
        issue = self.issues.get(req["match"]["id"])
        if issue is None:
            return 404, {"error": "Issue not found", "error_code": "ENOISSUE"}
        text = req["form"].get("comment", "")
        if not text:
            return 400, {"error": "Invalid or incomplete input submitted",
                         "error_code": "EINVALIDREQ"}
        issue["comments"].append({"id": next(self._ids), "comment": text,
                                  "user": {"name": "fedcloud-bot"}})
        return 200, {"message": "Comment added", "avatar_url": ""}
