"""instance-retire: retire the instance made for a ticket (closed ticket, expired instance).

:mod:`.facts` (the ticket's servers, volumes, keypair use, the requester's account) →
:mod:`.plan` (who may retire; snapshot, delete, keep) → :func:`fedcloud_lib.require_approval`
→ :mod:`.apply` (walk the approved plan's steps) → :mod:`.notify` (the mail step).
"""
from . import apply, facts, notify, plan  # noqa: E402 - one module per step, for the runbook

__all__ = ['apply', 'facts', 'notify', 'plan']
