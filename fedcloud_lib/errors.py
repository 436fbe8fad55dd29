"""One exception tree for the whole project.

Every error an operator can meet derives from :class:`FedcloudError` and is split by the
phase it belongs to.  Each carries structured context (``.context``) and a message that
says what is wrong and what to do; SDK exceptions are chained with ``raise ... from``.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "FedcloudError",
    "ConfigError",
    "ParameterError",
    "PolicyError",
    "CloudError",
    "RunbookError",
    "ArchiveError",
    "LockError",
]


class FedcloudError(Exception):
    """Root of every fedcloud error.

    ``exit_code`` is what the ``fedcloud`` command exits with when this error ends it.
    """

    exit_code = 1

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:  # keep the message readable, context is for machines
        return self.message


class ConfigError(FedcloudError):
    """Site configuration (clouds.yaml, settings, policy files) is missing or invalid."""

    exit_code = 2


class ParameterError(FedcloudError):
    """A runbook parameter is unknown, of the wrong type, or outside what is allowed.

    ``problems`` lists one readable line per bad parameter.
    """

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None, **context: Any):
        super().__init__(message, **context)
        self.problems = problems or [message]


class PolicyError(FedcloudError):
    """A request is well-formed but site policy does not allow it."""

    exit_code = 2


class CloudError(FedcloudError):
    """The cloud refused or failed a call (wraps openstacksdk's exceptions)."""


class RunbookError(FedcloudError):
    """A runbook is malformed, or its execution failed."""


class ArchiveError(FedcloudError):
    """The audit archive cannot be written, read or verified."""


class LockError(FedcloudError):
    """Another run holds the lock for this (runbook, ticket)."""

    exit_code = 3
