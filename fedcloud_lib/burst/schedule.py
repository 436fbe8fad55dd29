"""Scheduling a burst: longest-expected-first, handed to the next free builder.

Planning (:func:`simulate`) and running (:class:`WorkQueue`) use the same rule, LPT list
scheduling: the packages are ordered by expected duration, longest first, and whenever a
builder is free it takes the first package left.  Graham's bound makes LPT at most
``4/3 - 1/(3m)`` times the optimum; on real package sets (thousands of short builds and a
few giants) it lands within a percent or two of the lower bound
``max(Σd / builders, max d)`` (``bench/burst_schedule.py``).

:func:`simulate` also models a builder's lifetime the way the run enforces it: a builder
takes a package only if the per-build timeout still ends before the builder expires;
otherwise it is drained and a replacement boots (``boot_s`` later).
"""
from __future__ import annotations

import heapq
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "Schedule", "lpt_order", "lower_bound", "simulate", "WorkItem", "WorkQueue"]


@dataclass(frozen=True)
class Job:
    name: str
    expected_s: float


def lpt_order(jobs: Iterable[Any]) -> list[Any]:
    """Longest expected first (ties by name, so the order is reproducible).

    ``jobs`` have ``name`` and ``expected_s``."""
    return sorted(jobs, key=lambda j: (-j.expected_s, j.name))


def lower_bound(durations: Sequence[float], builders: int) -> float:
    """No schedule on ``builders`` identical builders is shorter than this."""
    if not durations or builders < 1:
        return 0.0
    return max(sum(durations) / builders, max(durations))


@dataclass(frozen=True)
class Schedule:
    """The expected outcome of LPT list scheduling (what the plan shows)."""

    builders: int
    makespan_s: float
    lower_bound_s: float
    total_s: float
    longest_s: float
    replacements: int  # builders drained at the end of their life and replaced
    # per job in LPT order: (name, builder slot, start, end); a slot is one builder's life
    assignments: tuple[tuple[str, int, float, float], ...] = field(repr=False, default=())
    slots: tuple[tuple[int, int, float, float], ...] = field(repr=False, default=())  # (slot, lane, born, retired)
    unplaceable: tuple[str, ...] = ()  # longer than a builder can ever run them

    @property
    def ratio(self) -> float:
        return self.makespan_s / self.lower_bound_s if self.lower_bound_s else 1.0

    def summary(self) -> dict[str, Any]:
        return {"builders": self.builders, "makespan_s": round(self.makespan_s, 1),
                "lower_bound_s": round(self.lower_bound_s, 1), "ratio": round(self.ratio, 4),
                "total_build_s": round(self.total_s, 1), "longest_s": round(self.longest_s, 1),
                "replacements": self.replacements, "unplaceable": list(self.unplaceable)}


def simulate(jobs: Sequence[Any], builders: int, *, lifetime_s: float | None = None,
             timeout_s: float | None = None, boot_s: float = 0.0,
             keep_assignments: bool = True) -> Schedule:
    """LPT list scheduling of ``jobs`` (``name``, ``expected_s``) on ``builders`` lanes.

    Times count from the start of the builds (the first boot is not included, ``boot_s``
    is the time a replacement takes).  With ``lifetime_s`` a builder stops taking work
    when ``timeout_s`` (or, without one, the package's expected duration) would run past
    its life, and is replaced.
    """
    order = lpt_order(jobs)
    durations = [float(j.expected_s) for j in order]
    if builders < 1 or not order:
        return Schedule(max(builders, 0), 0.0, 0.0, sum(durations), max(durations, default=0.0), 0)
    # heap of (free_at, lane, slot, born_at)
    heap = [(0.0, lane, lane, 0.0) for lane in range(builders)]
    heapq.heapify(heap)
    next_slot = builders
    assignments: list[tuple[str, int, float, float]] = []
    slots: list[tuple[int, int, float, float]] = []
    unplaceable: list[str] = []
    makespan = 0.0
    replacements = 0
    usable = None if lifetime_s is None else lifetime_s
    for job, d in zip(order, durations):
        need = timeout_s if timeout_s is not None else d
        if usable is not None and max(need, d) > usable:
            unplaceable.append(job.name)
            continue
        free_at, lane, slot, born = heapq.heappop(heap)
        if usable is not None and free_at + need > born + usable:
            slots.append((slot, lane, born, free_at))
            replacements += 1
            born = free_at + boot_s
            free_at, slot = born, next_slot
            next_slot += 1
        end = free_at + d
        makespan = max(makespan, end)
        if keep_assignments:
            assignments.append((job.name, slot, free_at, end))
        heapq.heappush(heap, (end, lane, slot, born))
    for free_at, lane, slot, born in heap:
        slots.append((slot, lane, born, free_at))
    skip = set(unplaceable)
    placed = [d for j, d in zip(order, durations) if j.name not in skip] if skip else durations
    return Schedule(builders=builders, makespan_s=makespan,
                    lower_bound_s=lower_bound(placed, builders), total_s=sum(placed),
                    longest_s=max(placed, default=0.0), replacements=replacements,
                    assignments=tuple(assignments), slots=tuple(sorted(slots)),
                    unplaceable=tuple(unplaceable))


# --------------------------------------------------------------------------- at run time

@dataclass
class WorkItem:
    """A package waiting for (or being given to) a builder."""

    name: str
    expected_s: float
    attempts: int = 0
    avoid: set[str] = field(default_factory=set)  # builders it failed on (infrastructure)


class WorkQueue:
    """The packages still to build, longest expected first, for builder threads.

    :meth:`take` hands the next free builder the first package it may take (not one that
    failed on that builder) and blocks while nothing is left but packages in flight may
    come back (an infrastructure error puts a package back, to be built elsewhere).  It
    returns None when nothing is left for that builder, or the queue was closed.
    """

    def __init__(self, items: Iterable[Any]):
        self._items = [WorkItem(i.name, float(i.expected_s)) for i in lpt_order(items)]
        self._in_flight = 0
        self._closed = False
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def pending(self) -> list[WorkItem]:
        """What is left and not in flight (for the report when a run stops early)."""
        with self._cond:
            return list(self._items)

    def take(self, builder: str, *, wait: float | None = None,
             fits: Any = None) -> WorkItem | None:
        """The next package for ``builder``; None when there is none for it.

        ``fits(item) -> bool`` may refuse packages (e.g. past the deadline).  ``wait``
        bounds how long to block for packages in flight to come back (None: as long as
        any are in flight)."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                for i, item in enumerate(self._items):
                    if builder in item.avoid or (fits is not None and not fits(item)):
                        continue
                    del self._items[i]
                    item.attempts += 1
                    self._in_flight += 1
                    return item
                if self._in_flight == 0:
                    return None
                if not self._cond.wait(timeout=wait) and wait is not None:
                    return None

    def done(self, item: WorkItem) -> None:
        """``item`` has its final status."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def put_back(self, item: WorkItem, avoid: str | None = None) -> None:
        """``item`` is to be built again (elsewhere than ``avoid``), in LPT position."""
        with self._cond:
            self._in_flight -= 1
            if avoid:
                item.avoid.add(avoid)
            pos = next((i for i, it in enumerate(self._items)
                        if (-it.expected_s, it.name) > (-item.expected_s, item.name)),
                       len(self._items))
            self._items.insert(pos, item)
            self._cond.notify_all()

    def drop_all(self) -> list[WorkItem]:
        """Take everything not in flight out (nothing more will be started)."""
        with self._cond:
            left, self._items = self._items, []
            self._cond.notify_all()
            return left

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return not self._items and self._in_flight == 0
