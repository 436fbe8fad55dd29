"""fedcloud: runbooks for operating a small OpenStack private cloud.

The public API a runbook or a tool uses is re-exported here.
"""
__version__ = "0.1.0"

from .errors import (ArchiveError, CloudError, ConfigError, FedcloudError, LockError,  # noqa: E402
                     ParameterError, PolicyError, RunbookError)
from .plan import Action, Plan, StopAfterPlan, require_approval  # noqa: E402
from .results import current_run, read_results, record  # noqa: E402

__all__ = [
    "__version__",
    "FedcloudError", "ConfigError", "ParameterError", "PolicyError", "CloudError",
    "RunbookError", "ArchiveError", "LockError",
    "Action", "Plan", "StopAfterPlan", "require_approval",
    "record", "read_results", "current_run",
]
