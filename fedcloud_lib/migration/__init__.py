"""migrate-instances: move servers, their volumes and metadata from one cloud to another.

The runbook calls one module per step: :mod:`.request` (parameters; no cloud call) →
:mod:`.facts` (both clouds, read only) → :mod:`.plan` (inventory, mappings, quota,
estimate, steps; refusals) → :func:`fedcloud_lib.require_approval` → :mod:`.apply` (walk
the approved plan; :mod:`.transfer` streams images, :mod:`.verify` checks, rollback) →
:mod:`.report`.  :mod:`.tags` says how what it makes is found again, :mod:`.journal`
records each server's states, :mod:`.quotas` carries quotas and policy tags.
"""
from . import (apply, facts, journal, plan, quotas, report, request, tags,  # noqa: E402
               transfer, verify)

__all__ = ["apply", "facts", "journal", "plan", "quotas", "report", "request", "tags",
           "transfer", "verify"]
