"""fedcloud: runbooks for operating a small OpenStack private cloud.

The public API a runbook or a tool uses is re-exported here.  Names are imported on
first use (PEP 562), so that ``fedcloud runs list`` does not pay for openstacksdk or
nbformat.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "FedcloudError": "errors", "ConfigError": "errors", "ParameterError": "errors",
    "PolicyError": "errors", "ServiceError": "errors", "CloudError": "errors",
    "CheckFailed": "errors", "RunbookError": "errors", "StalePlan": "errors",
    "ArchiveError": "errors", "LockError": "errors",
    "Step": "plan", "Plan": "plan", "Handlers": "plan", "StopAfterPlan": "plan",
    "require_approval": "plan", "walk": "plan", "planning_time": "plan",
    "record": "archive.results", "read_results": "archive.results",
    "current_run": "context",
    "form": "lab.form", "archive_run": "lab.archive",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fedcloud_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
