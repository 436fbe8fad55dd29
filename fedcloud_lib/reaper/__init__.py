"""lifetime-reaper: enforce instance lifetimes and list what nothing accounts for.

:mod:`.facts` (every server's deadline in scope, the orphans, the owners' accounts) →
:mod:`.plan` (delete the expired, tell the owners of what expires soon, delete only the
orphans a parameter names) → :func:`fedcloud_lib.require_approval` → :mod:`.apply` (walk
the approved plan) → :mod:`.notify` (the notice mail's handler).
"""
from . import apply, facts, notify, plan  # noqa: E402 - one module per step, for the runbook

__all__ = ['apply', 'facts', 'notify', 'plan']
