"""instance-for-ticket: the instance a request ticket asks for.

The runbook calls one module per step: :mod:`.request` (policy and account checks, no
cloud call) → :mod:`.facts` (read the cloud) → :mod:`.plan` (what to create, reuse or
repair; quota headroom) → :func:`fedcloud_lib.require_approval` → :mod:`.apply` (walk the
approved plan's steps) → :mod:`.notify` (the mail step's handler).
"""
from . import apply, facts, notify, plan, request  # noqa: E402 - one module per step, for the runbook

__all__ = ['apply', 'facts', 'notify', 'plan', 'request']
