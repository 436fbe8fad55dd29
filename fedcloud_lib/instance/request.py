"""instance-for-ticket, step 1: the request, checked against the site policy and the
account system before any cloud call.

:func:`prepare` is what the runbook calls: :func:`check_request` (class, name, flavor,
image, volume, lifetime) then the requester's account (known, has an ssh key, in a group
allowed for the class) through :func:`check_requester`.  A bad request stops here with a
:class:`~fedcloud_lib.errors.PolicyError` naming every problem.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from ..errors import PolicyError
from ..shown import shown
from ..site.accounts import Account, AccountSource, account_for
from ..site.policy import DNS_LABEL, MAX_LIFETIME_H, InstanceClass, Policy

__all__ = ["InstanceRequest", "parse_expiry", "check_request", "check_requester", "prepare",
           "iso"]

_DURATION = re.compile(r"(\d+)\s*([hdw])")
_UNIT_H = {"h": 1, "d": 24, "w": 168}


def _utc(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.astimezone(dt.timezone.utc).replace(microsecond=0)


def parse_expiry(value: str, klass: InstanceClass,
                 now: dt.datetime | None = None) -> dt.datetime | None:
    """The expiry a request asks for, checked against the class lifetime.

    ``value`` is empty (the class default), ``never`` (only for classes without a
    lifetime bound), a duration (``36h``, ``14d``, ``2w``) or an ISO date / date-time (UTC
    when no zone is given).  Returns None for no expiry.  Whatever the value, the answer
    is a date or a :class:`PolicyError` naming the allowed range: a class without a
    lifetime bound still takes at most :data:`~fedcloud_lib.site.policy.MAX_LIFETIME_H`
    (10 years; ``never`` for longer), so no date arithmetic leaves the calendar.
    """
    now = _utc(now)
    v = (value or "").strip().lower()
    limit = klass.max_lifetime_h
    bound = min(limit if limit is not None else MAX_LIFETIME_H, MAX_LIFETIME_H)
    allowed = (f"at most {bound} h ({bound / 24:g} days) for class {klass.name}"
               if limit is not None else
               f"at most {bound} h ({bound // 8760} years) for class {klass.name}, or never")

    def refuse(why: str) -> PolicyError:
        return PolicyError(f"expires: {shown(value)} {why}; {allowed}", parameter="expires",
                           value=shown(value))

    if v in ("", "default"):
        h = klass.default_lifetime_h
        return None if h is None else now + dt.timedelta(hours=min(h, bound))
    if v in ("never", "none"):
        if limit is not None:
            raise refuse("is not allowed")
        return None
    m = _DURATION.fullmatch(v)
    if m:
        digits = m[1].lstrip("0") or "0"
        hours = int(digits) * _UNIT_H[m[2]] if len(digits) <= 9 else bound + 1
        if hours > bound:  # before any arithmetic: 99999999999999d stays a refusal
            raise refuse("is beyond the class lifetime" if limit is not None
                         else "is beyond the longest lifetime")
        expires = now + dt.timedelta(hours=hours)
    else:
        try:
            expires = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=dt.timezone.utc)
            expires = expires.astimezone(dt.timezone.utc)  # may leave the calendar
        except (ValueError, OverflowError):
            raise refuse("is neither a duration (36h, 14d, 2w) nor an ISO date "
                         "(2026-12-31 or 2026-12-31T18:00Z)") from None
    if expires <= now:
        raise refuse("is in the past")
    if expires - now > dt.timedelta(hours=bound):
        raise refuse("is beyond the class lifetime" if limit is not None
                     else "is beyond the longest lifetime")
    return expires


@dataclass(frozen=True)
class InstanceRequest:
    """A policy-checked instance request (no account or cloud facts yet)."""

    ticket: str
    requester: str
    purpose: str
    klass: InstanceClass
    name: str
    flavor: str
    image: str
    volume_gb: int
    created_at: dt.datetime
    expires_at: dt.datetime | None

    @property
    def volume_name(self) -> str:
        """The name of the request's /srv volume."""
        return f"{self.name}-srv"

    def as_dict(self) -> dict[str, Any]:
        """The request as JSON (what the run records)."""
        return {
            "ticket": self.ticket, "requester": self.requester, "purpose": self.purpose,
            "instance_class": self.klass.name, "name": self.name, "flavor": self.flavor,
            "image": self.image, "volume_gb": self.volume_gb,
            "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
        }


def iso(value: dt.datetime | None) -> str:
    """A UTC time as ``YYYY-MM-DDTHH:MM:SSZ`` (``never`` for None), the form of every stamp in metadata."""
    return "never" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_request(policy: Policy, *, ticket: str, requester: str, purpose: str,
                  instance_class: str, name: str, flavor: str = "", image: str = "",
                  volume_gb: int = 0, expires: str = "",
                  now: dt.datetime | None = None) -> InstanceRequest:
    """Apply the site policy to a request; raise :class:`PolicyError` listing every problem."""
    problems: list[str] = []
    if instance_class not in policy.classes:
        raise PolicyError(
            f"instance_class: {shown(instance_class)} is not a class of the site policy; "
            f"allowed: {', '.join(sorted(policy.classes))}",
            problems=[f"instance_class: {shown(instance_class)} unknown"])
    k = policy.classes[instance_class]
    if not str(ticket).strip():
        problems.append("ticket: a ticket number is required")
    if not requester:
        problems.append("requester: an account name is required")
    if not DNS_LABEL.fullmatch(name or ""):
        problems.append(f"name: {shown(name)} is not a valid DNS label (lower-case letters, digits "
                        f"and '-', starting with a letter, not ending with '-', at most 63)")
    flavor, image, chosen_problems = k.flavor_and_image(flavor, image)
    problems += chosen_problems
    if volume_gb < 0 or volume_gb > k.max_volume_gb:
        problems.append(f"volume_gb: {shown(volume_gb)} is outside what class {k.name} allows "
                        f"(0 to {k.max_volume_gb} GiB)")
    created = _utc(now)
    expires_at = None
    try:
        expires_at = parse_expiry(expires, k, created)
    except PolicyError as exc:
        problems.append(exc.message)
    if problems:
        raise PolicyError("the request breaks the site policy:\n  " + "\n  ".join(problems),
                          problems=problems)
    return InstanceRequest(ticket=str(ticket), requester=requester, purpose=purpose, klass=k,
                           name=name, flavor=flavor, image=image, volume_gb=volume_gb,
                           created_at=created, expires_at=expires_at)


def check_requester(policy: Policy, klass: InstanceClass, account: Any) -> None:
    """Refuse an account without ssh keys or outside the class's groups.

    ``account`` is a :class:`fedcloud_lib.site.accounts.Account`.
    """
    if not account.sshpubkeys:
        raise PolicyError(
            f"requester {shown(account.username)} has no ssh public key in the account system; "
            f"they must add one before an instance can be made for them",
            requester=account.username)
    if not set(account.groups) & set(klass.groups):
        raise PolicyError(
            f"requester {shown(account.username)} is in none of the groups allowed to request a "
            f"{klass.name} instance ({', '.join(klass.groups)}); their groups: "
            f"{', '.join(sorted(account.groups)) or 'none'}",
            requester=account.username)


def prepare(policy: Policy, *, ticket: str, requester: str, purpose: str, instance_class: str,
            name: str, flavor: str = "", image: str = "", volume_gb: int = 0,
            expires: str = "", fasjson: AccountSource | None = None,
            now: dt.datetime | None = None) -> tuple[InstanceRequest, Account]:
    """Policy and account checks; no cloud call.  Raises :class:`PolicyError`.

    ``now`` is when the request counts from (lifetimes): the time of the plan being
    approved when a recorded plan is applied, so that both plans agree.
    """
    req = check_request(policy, ticket=ticket, requester=requester, purpose=purpose,
                        instance_class=instance_class, name=name, flavor=flavor, image=image,
                        volume_gb=volume_gb, expires=expires, now=now)
    account = account_for(policy, requester, client=fasjson)
    check_requester(policy, req.klass, account)
    return req, account
