"""Tickets drive runs: read a ticket, check its request, run the runbook headless with
the engine, answer on the ticket.

``fedcloud ticket show TICKET`` prints what would run; ``fedcloud ticket run TICKET``
runs it (a dry run unless ``--approve``).  :mod:`.request` reads the request block,
:mod:`.sources` the ticket sources (file, Pagure), :mod:`.run` runs it,
:mod:`.comment` writes the answer, :mod:`.cli` is the command.
"""
from .comment import MAX_COMMENT_CHARS, format_outcome, format_refusal, md_text, scrubber_for
from .request import (FORBIDDEN, MAX_BLOCK_CHARS, MAX_BODY_CHARS, TICKET_RUNBOOKS, TicketRequest,
                      check, fenced_blocks, parse)
from .run import (CHECK_SECONDS, PreparedRequest, TicketOutcome, prepare_request, retire_request,
                  run_ticket)
from .sources import FileSource, PagureSource, Ticket, TicketSource

__all__ = [
    "Ticket", "TicketSource", "FileSource", "PagureSource", "TicketRequest", "parse", "check",
    "TICKET_RUNBOOKS", "FORBIDDEN", "prepare_request", "PreparedRequest", "format_outcome",
    "format_refusal", "scrubber_for", "TicketOutcome", "run_ticket", "retire_request",
    "MAX_COMMENT_CHARS", "MAX_BODY_CHARS", "MAX_BLOCK_CHARS", "CHECK_SECONDS", "md_text",
    "fenced_blocks",
]
