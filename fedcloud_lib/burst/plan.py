"""mass-rebuild-burst, step 3: the plan — how many builders, which packages in which order.

The builder count is decided here, once: the smallest of ``max_builders`` (or, for
``auto``, the policy's burst ceiling), what the project's quota leaves (instances, cores
and RAM against real usage, the site policy's project ceiling too, counting the leftover
builders this plan deletes as freed), and the number of packages left.  The packages left
(not on the skip list, not attempted by an earlier run of the burst) are ordered longest
expected first and simulated on that many builders (:func:`.schedule.simulate`): expected
makespan, the lower bound ``max(Σd / builders, max d)`` and their ratio, and whether the
builders' lifetime and the deadline hold.  ``max_builders`` above the quota or the policy is
refused here, before anything is created.

Steps: delete leftover builders; the burst's keypair; the standard security group; create
the builders; build the packages; delete the builders (the teardown, which also runs
whatever happens).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..errors import PolicyError
from ..plan import Plan, Step
from ..site.policy import Policy
from .facts import Facts, key_body, keypair_name
from .request import BurstRequest, Package, iso
from .schedule import Schedule, lpt_order, simulate
from .sweep import META, ROLE

__all__ = ["BurstPlan", "make_plan", "headroom", "BOOT_ESTIMATE_S", "QUOTA_COLUMNS"]

#: what the plan expects a builder's boot to take (replacements, the deadline check)
BOOT_ESTIMATE_S = 120.0
QUOTA_COLUMNS = ["resource", "limit", "used", "freed", "per_builder", "builders_that_fit"]


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s:02d} s" if m else f"{s} s")


@dataclass(frozen=True)
class BurstPlan:
    """The plan of one burst run, with its quota arithmetic and expected schedule."""

    request: BurstRequest
    plan: Plan
    builders: int
    quota: tuple[dict[str, Any], ...]
    schedule: Schedule
    remaining: tuple[Package, ...]  # to build in this run, LPT order
    done_earlier: int
    over_timeout: tuple[str, ...]  # expected to take longer than the per-build timeout
    expected_end: dt.datetime | None

    @property
    def lifetime_holds(self) -> bool:
        s = self.schedule
        return not s.unplaceable and s.replacements == 0

    @property
    def deadline_holds(self) -> bool | None:
        d = self.request.deadline
        if d is None:
            return None
        return self.expected_end is not None and self.expected_end <= d

    def summary(self) -> dict[str, Any]:
        """The figures the operator approves (the plan's table)."""
        r, s = self.request, self.schedule
        return {
            "ticket": r.ticket, "packages listed": len(r.packages) + len(r.skipped),
            "skipped (skip list)": len(r.skipped), "attempted by earlier runs": self.done_earlier,
            "to build now": len(self.remaining), "builders": self.builders,
            "flavor / image": f"{r.flavor} / {r.image}",
            "expected makespan": _hms(s.makespan_s),
            "lower bound max(Σd/builders, max d)": _hms(s.lower_bound_s),
            "makespan / lower bound": round(s.ratio, 4),
            "Σ expected build time": _hms(s.total_s),
            "longest expected build": _hms(s.longest_s),
            "builder lifetime": _hms(r.builder_lifetime_s),
            "lifetime holds": ("yes" if self.lifetime_holds else
                               f"no: builders replaced {s.replacements} time(s)"
                               + (f"; {len(s.unplaceable)} package(s) longer than a builder "
                                  f"lives" if s.unplaceable else "")),
            "per-build timeout": _hms(r.build_timeout_s),
            "expected to time out": len(self.over_timeout),
            "deadline": iso(r.deadline) or "none",
            "expected end": iso(self.expected_end) if self.remaining else "-",
            "deadline holds": {None: "no deadline", True: "yes", False: "no"}[self.deadline_holds],
        }

    def table(self) -> Any:
        """:meth:`summary` as a two-column DataFrame (what, value) for the notebook."""
        import pandas as pd

        return pd.DataFrame([{"what": k, "value": str(v)} for k, v in self.summary().items()])

    def quota_table(self) -> Any:
        """The quota arithmetic: per resource the limit, usage, freed, builders that fit."""
        import pandas as pd

        return pd.DataFrame(list(self.quota), columns=QUOTA_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "schedule": self.schedule.summary(),
                "quota": list(self.quota), "over_timeout": list(self.over_timeout[:100])}


def _limit(cloud_max: int | None, ceiling: int | None) -> int | None:
    values = [v for v in (cloud_max, ceiling) if v is not None and v >= 0]
    return min(values) if values else None


def headroom(policy: Policy, facts: Facts) -> tuple[int | None, list[dict[str, Any]]]:
    """How many builders of the request's flavor fit in the project (None: no limit),
    and the arithmetic as rows (limit, used, freed by deleting leftovers, per builder)."""
    lim, fl = facts.limits, facts.flavor
    ceiling = policy.quota_for(facts.project)
    gone = facts.to_delete
    rows = []
    fits: list[int] = []
    for resource, cloud_max, used, ceil, per, freed in (
            ("instances", lim.instances, lim.instances_used, ceiling and ceiling.instances, 1,
             len(gone)),
            ("cores", lim.total_cores, lim.total_cores_used, ceiling and ceiling.cores, fl.vcpus,
             sum(b.vcpus or fl.vcpus for b in gone)),
            ("ram_mb", lim.total_ram, lim.total_ram_used, ceiling and ceiling.ram_mb, fl.ram,
             sum(b.ram_mb or fl.ram for b in gone))):
        limit = _limit(cloud_max, ceil)
        n = None if limit is None or not per else max(0, (limit - (used or 0) + freed) // per)
        if n is not None:
            fits.append(n)
        rows.append({"resource": resource, "limit": limit, "used": used, "freed": freed,
                     "per_builder": per, "builders_that_fit": n})
    return (min(fits) if fits else None), rows


def _steps(policy: Policy, f: Facts, req: BurstRequest, builders: int,
           remaining: list[Package]) -> list[Step]:
    net, bp = policy.network, policy.burst
    steps: list[Step] = []
    for b in f.to_delete:
        steps.append(Step("delete", "server", b.name, f"burst builder {b.status}: {b.reason}",
                          {"id": b.id}))
    if not remaining:
        steps.append(Step("keep", "builds", "0 packages",
                          f"nothing left to build: {len(f.previous.attempted)} attempted by "
                          f"earlier runs, {len(req.skipped)} skipped"))
        return steps
    kp = keypair_name(req.ticket)
    if f.keypair is None:
        steps.append(Step("create", "keypair", kp, "the burst's ssh key (public half)",
                          {"public_key": req.ssh.public_key}))
    elif key_body(f.keypair.public_key) != key_body(req.ssh.public_key):
        steps.append(Step("update", "keypair", kp, "replace: the burst's ssh key changed",
                          {"public_key": req.ssh.public_key}))
    else:
        steps.append(Step("reuse", "keypair", kp, f.keypair.fingerprint or "",
                          {"fingerprint": f.keypair.fingerprint or ""}))
    sg = f.secgroup
    sg_action = {"create": "create", "repair": "update", "reuse": "reuse"}[sg.action]
    steps.append(Step(sg_action, "security group", sg.name,
                      ("drift repair: " if sg_action == "update" else "") + sg.detail(),
                      {"ports": list(net.ingress_tcp)}))
    metadata = {META["burst"]: req.burst_id, META["ticket"]: req.ticket, META["role"]: ROLE,
                META["class"]: req.profile.name}
    steps.append(Step(
        "create", "builders", f"{builders} x {req.flavor}",
        f"{req.image}, group {net.security_group}, live at most {_hms(req.builder_lifetime_s)}; "
        f"at most {bp.boot_ceiling} booting at once (fewer when boots fail), method {req.boot_method}",
        {"count": builders, "flavor": req.flavor, "flavor_id": f.flavor.id, "image": req.image,
         "image_id": f.image.id, "network_id": f.network.id if f.network is not None else None,
         "keypair": kp, "security_group": net.security_group, "metadata": metadata,
         "lifetime_s": req.builder_lifetime_s, "boot_method": req.boot_method,
         "boot_ceiling": bp.boot_ceiling, "min_boot_ceiling": bp.min_boot_ceiling,
         "boot_timeout_s": bp.boot_timeout_s, "max_boot_failures": bp.max_boot_failures,
         "ticket": req.ticket}))
    steps.append(Step(
        "create", "builds", f"{len(remaining)} packages",
        f"longest expected first, each to the next free builder; timeout "
        f"{_hms(req.build_timeout_s)} each"
        + (f"; none started after {iso(req.deadline)}" if req.deadline else ""),
        {"ticket": req.ticket, "packages": [[p.name, p.expected_s] for p in remaining],
         "command": req.command, "timeout_s": req.build_timeout_s,
         "deadline": iso(req.deadline), "workdir": req.workdir, "ssh": req.ssh.to_dict(),
         "infra_retries": bp.infra_retries}))
    steps.append(Step("delete", "builders", "every builder of this run",
                      "teardown after the builds (also when the run fails or is interrupted)",
                      {"ticket": req.ticket}))
    return steps


def make_plan(policy: Policy, facts: Facts) -> BurstPlan:
    """The plan: builder count from quota and policy, LPT order, expected schedule.

    Raises :class:`PolicyError` when ``max_builders`` is above what the quota or the
    policy allows, or not even one builder fits."""
    req = facts.request
    attempted = facts.previous.attempted
    remaining = lpt_order([p for p in req.packages if p.name not in attempted])
    done_earlier = sum(1 for p in req.packages if p.name in attempted)
    fit, quota = headroom(policy, facts)
    ceiling = policy.burst.max_builders
    allowed = ceiling if fit is None else min(fit, ceiling)
    if req.max_builders is not None and req.max_builders > allowed:
        lines = [f"max_builders: {req.max_builders} is above what this project allows now: "
                 f"{allowed} (policy burst ceiling {ceiling})"]
        lines += [f"  {q['resource']}: limit {q['limit']}, used {q['used']}, freed {q['freed']}, "
                  f"{q['per_builder']} per builder -> {q['builders_that_fit']} builders"
                  for q in quota if q["builders_that_fit"] is not None]
        raise PolicyError("\n".join(lines), problems=lines, quota=quota)
    builders = 0
    if remaining:
        if allowed < 1:
            raise PolicyError(f"no room for a single {req.flavor} builder in project "
                              f"{facts.project}: " + "; ".join(
                                  f"{q['resource']} limit {q['limit']}, used {q['used']}"
                                  for q in quota), quota=quota)
        builders = min(req.max_builders or allowed, allowed, len(remaining))
    schedule = simulate(remaining, builders, lifetime_s=req.builder_lifetime_s,
                        timeout_s=req.build_timeout_s, boot_s=BOOT_ESTIMATE_S)
    over = tuple(p.name for p in remaining if p.expected_s > req.build_timeout_s)
    expected_end = (req.planned_at + dt.timedelta(seconds=BOOT_ESTIMATE_S + schedule.makespan_s)
                    if remaining else None)
    title = f"mass rebuild burst {req.ticket}: {len(remaining)} packages on {builders} builders"
    plan = Plan.of(title, _steps(policy, facts, req, builders, remaining))
    return BurstPlan(request=req, plan=plan, builders=builders, quota=tuple(quota),
                     schedule=schedule, remaining=tuple(remaining), done_earlier=done_earlier,
                     over_timeout=over, expected_end=expected_end)
