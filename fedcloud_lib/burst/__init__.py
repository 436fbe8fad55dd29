"""mass-rebuild-burst: rebuild a package set on as many builders as quota allows.

The runbook calls one module per step: :mod:`.request` (parameters, files and policy; no
cloud call) → :mod:`.facts` (quota, leftovers, earlier runs of the burst) → :mod:`.plan`
(builder count, LPT order, expected schedule) → :func:`fedcloud_lib.require_approval` →
:mod:`.apply` (provision with :mod:`.provision`, build with :mod:`.executor`, results with
:mod:`.results`, teardown always; :mod:`.watchdog` if the kernel dies) → :mod:`.report`.
:mod:`.schedule` is the LPT scheduler; :mod:`.sweep` finds leftover builders
(``fedcloud burst sweep``).
"""
from . import apply, facts, plan, report, request, results, schedule  # noqa: E402 - for the runbook

__all__ = ["apply", "facts", "plan", "report", "request", "results", "schedule"]
