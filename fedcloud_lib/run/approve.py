"""Approving a recorded plan (``fedcloud run --approve-plan RUN_ID``).

The terraform ``plan -out`` / ``apply planfile`` contract: the dry run ``RUN_ID`` recorded
its plan in the archive; this run applies exactly that plan, with the parameters that run
was made with, and only if

* the run is a dry run of the same runbook (status ``planned``) that recorded a plan;
* the archive verifies up to and including that run (its files, its index entry and every
  link of the chain before it), so the plan is the one the reviewer saw;
* (in the kernel) the plan made again from today's facts agrees with it step for step
  (:func:`fedcloud_lib.plan.require_approval`); otherwise the run ends ``stale-plan``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ..archive.index import Archive, RunEntry
from ..archive.results import read_results
from ..errors import ArchiveError, ParameterError
from ..params import SECRET_MARKER, ParamSpec

__all__ = ["RecordedPlan", "recorded_plan", "parameters_for"]


@dataclass(frozen=True)
class RecordedPlan:
    """A dry run's archived plan and the parameters it was made with."""

    entry: RunEntry
    plan: dict[str, Any]
    parameters: dict[str, Any]


def recorded_plan(archive: Archive, run_id: str, runbook: str) -> RecordedPlan:
    """The plan recorded by dry run ``run_id`` of ``runbook``, from a verified archive."""
    try:
        entry = archive.find(run_id)
    except ArchiveError as exc:
        raise ParameterError(f"approve_plan: {exc}", run_id=run_id) from exc
    if entry.runbook != runbook:
        raise ParameterError(f"approve_plan: run {entry.run_id} is a run of {entry.runbook}, "
                             f"not of {runbook}", run_id=entry.run_id)
    if entry.status != "planned":
        raise ParameterError(f"approve_plan: run {entry.run_id} ended {entry.status}; only the "
                             f"plan of a dry run (status planned) can be approved",
                             run_id=entry.run_id)
    problems = archive.verify(upto=entry.seq)
    if problems:
        raise ArchiveError(
            f"approve_plan: the archive does not verify up to run {entry.run_id}, so its plan "
            f"cannot be trusted: " + "; ".join(str(p) for p in problems[:5]),
            problems=[str(p) for p in problems], run_id=entry.run_id)
    plan = read_results(entry.run_id, archive.root).get("plan")
    if not (isinstance(plan, dict) and isinstance(plan.get("steps"), list)):
        raise ParameterError(f"approve_plan: run {entry.run_id} recorded no plan",
                             run_id=entry.run_id)
    plan = {**plan, "run_id": entry.run_id}
    try:
        params = yaml.safe_load((entry.path / "parameters.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ArchiveError(f"approve_plan: cannot read the parameters of run {entry.run_id}: "
                           f"{exc}", run_id=entry.run_id) from exc
    return RecordedPlan(entry=entry, plan=plan, parameters=params)


def parameters_for(recorded: RecordedPlan, specs: list[ParamSpec],
                   given: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of the applying run: the planned run's, with ``approve`` on.

    ``given`` (files, ``-p``, a ticket's values) may repeat them and must then agree; it
    must supply secret parameters again (the archive holds them as ``***``).
    """
    out = dict(recorded.parameters)
    problems = []
    by_name = {s.name: s for s in specs}
    for name, value in given.items():
        spec = by_name.get(name)
        if name == "approve":
            continue
        if spec is not None and spec.secret and out.get(name) == SECRET_MARKER:
            out[name] = value
            continue
        if name not in out or _same(out[name], value):
            out.setdefault(name, value)
            continue
        problems.append(f"{name}: {_short(value)} differs from the planned run's "
                        f"{_short(out[name])}")
    missing = [s.name for s in specs if s.secret and out.get(s.name) == SECRET_MARKER]
    problems += [f"{n}: a secret parameter is not archived; give it again (-p {n} ...)"
                 for n in missing]
    if problems:
        raise ParameterError(
            f"approve_plan: a recorded plan is applied with the parameters it was made with "
            f"(run {recorded.entry.run_id}):\n  " + "\n  ".join(problems), problems=problems)
    if "approve" in by_name:
        out["approve"] = True
    return out


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str) \
        or str(a) == str(b)


def _short(v: Any, n: int = 40) -> str:
    s = repr(v)
    return s if len(s) <= n else f"{s[:n]}... ({len(s)} chars)"
