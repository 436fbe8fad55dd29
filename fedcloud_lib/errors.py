"""One exception tree for the whole project.

Every error an operator can meet derives from :class:`FedcloudError` and is split by the
phase it belongs to.  Each carries structured context (``.context``), a list of readable
``problems`` (one line per thing wrong; a single-problem error lists its message) and a
message that says what is wrong and what to do; SDK exceptions are chained with
``raise ... from``.  ``exit_code`` is what the ``fedcloud`` command exits with::

    FedcloudError                 1   root
    ├── ConfigError               2   site configuration (clouds.yaml, settings, policy) missing or invalid
    ├── ParameterError            2   a runbook parameter (or a ticket's request) is not allowed
    ├── PolicyError               2   well-formed, but the site policy says no
    ├── ServiceError              4   an outside service (accounts, mail, tickets) is unreachable or failing
    ├── CloudError                1   the cloud refused or failed a call (openstacksdk, keystoneauth)
    │   └── CheckFailed           1   a verification check failed; names the service and host
    ├── RunbookError              1   a runbook is malformed, or its execution failed
    │   └── StalePlan             1   the facts changed since the approved plan was made
    ├── ArchiveError              1   the audit archive cannot be written, read or verified
    └── LockError                 3   another run holds the lock for this (runbook, ticket)

Exit 2 means "fix the input and ask again"; exit 4 means "nothing was wrong with the
request: try again when the service is back".
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "FedcloudError",
    "ConfigError",
    "ParameterError",
    "PolicyError",
    "ServiceError",
    "CloudError",
    "CheckFailed",
    "RunbookError",
    "StalePlan",
    "ArchiveError",
    "LockError",
]


class FedcloudError(Exception):
    """Root of every fedcloud error.

    ``problems`` lists one readable line per thing wrong (at least the message itself);
    ``context`` holds structured details for machines.
    """

    exit_code = 1

    def __init__(self, message: str, problems: list[str] | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems) if problems else [message]
        self.context = context

    def __str__(self) -> str:  # keep the message readable, context is for machines
        return self.message


class ConfigError(FedcloudError):
    """Site configuration (clouds.yaml, settings, policy files) is missing or invalid."""

    exit_code = 2


class ParameterError(FedcloudError):
    """A runbook parameter is unknown, of the wrong type, or outside what is allowed."""

    exit_code = 2


class PolicyError(FedcloudError):
    """A request is well-formed but site policy does not allow it."""

    exit_code = 2


class ServiceError(FedcloudError):
    """An outside service the run needs (FASJSON, SMTP, Pagure) is unreachable or failing.

    Not bad input: the same request may succeed once the service is back.
    """

    exit_code = 4


class CloudError(FedcloudError):
    """The cloud refused or failed a call (wraps openstacksdk's exceptions)."""


class CheckFailed(CloudError):
    """A verification check failed: ``service`` (and ``host`` where one is known) say where
    to look."""

    def __init__(self, message: str, *, service: str = "", host: str = "", **context: Any):
        super().__init__(message, service=service, host=host, **context)
        self.service, self.host = service, host


class RunbookError(FedcloudError):
    """A runbook is malformed, or its execution failed."""


class StalePlan(RunbookError):
    """The plan made from today's facts differs from the plan being applied.

    Nothing was changed; ``approved`` and ``current`` hold both plans' steps.
    """


class ArchiveError(FedcloudError):
    """The audit archive cannot be written, read or verified."""


class LockError(FedcloudError):
    """Another run holds the lock for this (runbook, ticket)."""

    exit_code = 3
