"""Site policy as data: ``parameters/policy.yaml`` loaded, validated and frozen.

The file is checked against :data:`SCHEMA` (jsonschema) and then for the rules a schema
cannot say (a class's default image must be one of its images, ...).  Every problem is
reported at once, each line naming the field, the value and what is allowed.

:func:`check_request` applies the policy to an instance request (class, name, flavor,
image, volume, expiry) without touching the cloud or the account system;
:func:`check_requester` applies the group rules to an account fetched from FASJSON.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from .errors import ConfigError, PolicyError

__all__ = [
    "DEFAULT_POLICY_PATH",
    "SCHEMA",
    "InstanceClass",
    "Quota",
    "NetworkPolicy",
    "MailSettings",
    "TicketSettings",
    "RootKey",
    "Policy",
    "InstanceRequest",
    "load",
    "policy_path",
    "check_request",
    "check_requester",
    "parse_expiry",
    "DNS_LABEL",
]

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[1] / "parameters" / "policy.yaml"
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")

_name = {"type": "string", "minLength": 1}
_names = {"type": "array", "items": _name, "minItems": 1, "uniqueItems": True}
_hours = {"type": ["integer", "null"], "minimum": 1}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "accounts", "admin_groups", "root_keys", "network", "quotas",
                 "classes", "mail"],
    "properties": {
        "version": {"const": 1},
        "accounts": {
            "type": "object", "additionalProperties": False, "required": ["fasjson_url"],
            "properties": {
                "fasjson_url": {"type": "string", "pattern": "^https?://"},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0},
                "auth": {"enum": ["none", "gssapi"]},
            },
        },
        "admin_groups": _names,
        "root_keys": {
            "type": "array",
            "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "key"],
                "properties": {
                    "name": _name,
                    "key": {"type": "string",
                            "pattern": r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+) \S+"},
                },
            },
        },
        "network": {
            "type": "object", "additionalProperties": False,
            "required": ["security_group", "ingress_tcp"],
            "properties": {
                "security_group": _name,
                "ingress_tcp": {"type": "array", "uniqueItems": True, "minItems": 1,
                                "items": {"type": "integer", "minimum": 1, "maximum": 65535}},
                "network": {"type": ["string", "null"]},
            },
        },
        "quotas": {
            "type": "object",
            "additionalProperties": {
                "type": "object", "additionalProperties": False,
                "required": ["instances", "cores", "ram_mb", "volumes", "volume_gb"],
                "properties": {k: {"type": "integer", "minimum": 0}
                               for k in ("instances", "cores", "ram_mb", "volumes", "volume_gb")},
            },
        },
        "classes": {
            "type": "object", "minProperties": 1,
            "propertyNames": {"pattern": "^[a-z][a-z0-9_-]*$"},
            "additionalProperties": {
                "type": "object", "additionalProperties": False,
                "required": ["persistent", "groups", "images", "flavors", "max_volume_gb",
                             "max_lifetime_h"],
                "properties": {
                    "description": {"type": "string"},
                    "persistent": {"type": "boolean"},
                    "groups": _names,
                    "images": _names,
                    "default_image": _name,
                    "flavors": _names,
                    "default_flavor": _name,
                    "max_volume_gb": {"type": "integer", "minimum": 0},
                    "default_lifetime_h": _hours,
                    "max_lifetime_h": _hours,
                    "volume_delete_on_retire": {"type": "boolean"},
                },
            },
        },
        "mail": {
            "type": "object", "additionalProperties": False, "required": ["host", "from"],
            "properties": {
                "host": _name,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "starttls": {"type": "boolean"},
                "username": {"type": ["string", "null"]},
                "password_env": {"type": ["string", "null"]},
                "from": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$"},
                "admins": {"type": "array", "items": {"type": "string",
                                                      "pattern": "^[^@\\s]+@[^@\\s]+$"}},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "tickets": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "pagure_url": {"type": "string", "pattern": "^https?://"},
                "repo": _name,
                "token_env": _name,
            },
        },
    },
}


@dataclass(frozen=True)
class InstanceClass:
    name: str
    persistent: bool
    groups: tuple[str, ...]
    images: tuple[str, ...]
    flavors: tuple[str, ...]
    default_image: str
    default_flavor: str
    max_volume_gb: int
    default_lifetime_h: int | None
    max_lifetime_h: int | None
    volume_delete_on_retire: bool = False
    description: str = ""


@dataclass(frozen=True)
class Quota:
    instances: int
    cores: int
    ram_mb: int
    volumes: int
    volume_gb: int


@dataclass(frozen=True)
class NetworkPolicy:
    security_group: str
    ingress_tcp: tuple[int, ...]
    network: str | None = None


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int = 25
    sender: str = ""
    admins: tuple[str, ...] = ()
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout_s: float = 30.0

    def password(self) -> str | None:
        """The SMTP password from the environment (never stored in the policy)."""
        return os.environ.get(self.password_env) if self.password_env else None


@dataclass(frozen=True)
class TicketSettings:
    pagure_url: str = "https://pagure.io"
    repo: str = "fedora-infrastructure"
    token_env: str = "PAGURE_API_TOKEN"


@dataclass(frozen=True)
class RootKey:
    name: str
    key: str


@dataclass(frozen=True)
class Policy:
    path: str
    fasjson_url: str
    fasjson_timeout_s: float
    fasjson_auth: str
    admin_groups: tuple[str, ...]
    root_keys: tuple[RootKey, ...]
    network: NetworkPolicy
    quotas: Mapping[str, Quota]
    classes: Mapping[str, InstanceClass]
    mail: MailSettings
    tickets: TicketSettings = field(default_factory=TicketSettings)

    def instance_class(self, name: str) -> InstanceClass:
        try:
            return self.classes[name]
        except KeyError:
            raise PolicyError(
                f"instance class {name!r} is not in the site policy; allowed: "
                f"{', '.join(sorted(self.classes))}",
                parameter="instance_class", value=name) from None

    def quota_for(self, project: str | None) -> Quota | None:
        """The policy ceiling for ``project`` (or ``default``), None when there is none."""
        if project and project in self.quotas:
            return self.quotas[project]
        return self.quotas.get("default")


def policy_path(path: str | os.PathLike | None = None) -> Path:
    """The policy file to use: ``path``, else ``$FEDCLOUD_POLICY``, else the repo's."""
    if path:
        return Path(path)
    if os.environ.get("FEDCLOUD_POLICY"):
        return Path(os.environ["FEDCLOUD_POLICY"])
    return DEFAULT_POLICY_PATH


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def load(path: str | os.PathLike | None = None) -> Policy:
    """Read and validate the site policy; raise :class:`ConfigError` listing every problem."""
    p = policy_path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"site policy {p} does not exist", path=str(p)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"site policy {p} is not valid YAML: {exc}", path=str(p)) from exc
    return from_dict(data, source=str(p))


def from_dict(data: Any, source: str = "<policy>") -> Policy:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    problems = [f"{_where(e)}: {e.message}"
                for e in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))]
    if problems:
        raise ConfigError(f"site policy {source} is invalid:\n  " + "\n  ".join(problems),
                          path=source, problems=problems)

    classes: dict[str, InstanceClass] = {}
    for cname, c in data["classes"].items():
        default_image = c.get("default_image", c["images"][0])
        default_flavor = c.get("default_flavor", c["flavors"][0])
        max_h, default_h = c["max_lifetime_h"], c.get("default_lifetime_h", c["max_lifetime_h"])
        if default_image not in c["images"]:
            problems.append(f"classes.{cname}.default_image: {default_image!r} is not one of "
                            f"its images {c['images']}")
        if default_flavor not in c["flavors"]:
            problems.append(f"classes.{cname}.default_flavor: {default_flavor!r} is not one of "
                            f"its flavors {c['flavors']}")
        if not c["persistent"] and max_h is None:
            problems.append(f"classes.{cname}.max_lifetime_h: a transient class needs a "
                            f"bounded lifetime")
        if max_h is not None and (default_h is None or default_h > max_h):
            problems.append(f"classes.{cname}.default_lifetime_h: {default_h} must be set and "
                            f"at most max_lifetime_h ({max_h})")
        classes[cname] = InstanceClass(
            name=cname, persistent=c["persistent"], groups=tuple(c["groups"]),
            images=tuple(c["images"]), flavors=tuple(c["flavors"]),
            default_image=default_image, default_flavor=default_flavor,
            max_volume_gb=c["max_volume_gb"], default_lifetime_h=default_h,
            max_lifetime_h=max_h,
            volume_delete_on_retire=c.get("volume_delete_on_retire", False),
            description=c.get("description", ""))
    net = data["network"]
    if sorted(net["ingress_tcp"]) != [22, 80, 443]:
        # the site rule: only ssh and web are ever opened by the standard group
        problems.append(f"network.ingress_tcp: {net['ingress_tcp']} — the standard group opens "
                        f"exactly tcp 22, 80 and 443")
    if problems:
        raise ConfigError(f"site policy {source} is invalid:\n  " + "\n  ".join(problems),
                          path=source, problems=problems)
    m = data["mail"]
    t = data.get("tickets", {})
    return Policy(
        path=source,
        fasjson_url=data["accounts"]["fasjson_url"].rstrip("/"),
        fasjson_timeout_s=float(data["accounts"].get("timeout_s", 20)),
        fasjson_auth=data["accounts"].get("auth", "none"),
        admin_groups=tuple(data["admin_groups"]),
        root_keys=tuple(RootKey(k["name"], k["key"]) for k in data["root_keys"]),
        network=NetworkPolicy(security_group=net["security_group"],
                              ingress_tcp=tuple(sorted(net["ingress_tcp"])),
                              network=net.get("network")),
        quotas={k: Quota(**v) for k, v in data["quotas"].items()},
        classes=classes,
        mail=MailSettings(host=m["host"], port=m.get("port", 25), sender=m["from"],
                          admins=tuple(m.get("admins", ())), starttls=m.get("starttls", False),
                          username=m.get("username"), password_env=m.get("password_env"),
                          timeout_s=float(m.get("timeout_s", 30))),
        tickets=TicketSettings(**{k: v for k, v in t.items()}),
    )


# --------------------------------------------------------------------------- requests

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
    when no zone is given).  Returns None for no expiry.
    """
    now = _utc(now)
    v = (value or "").strip().lower()
    limit = klass.max_lifetime_h
    allowed = (f"at most {limit} h ({limit / 24:g} days) for class {klass.name}"
               if limit is not None else f"any lifetime for class {klass.name}")
    if v in ("", "default"):
        h = klass.default_lifetime_h
        return None if h is None else now + dt.timedelta(hours=h)
    if v in ("never", "none"):
        if limit is not None:
            raise PolicyError(f"expires: {value!r} is not allowed; {allowed}",
                              parameter="expires", value=value)
        return None
    m = _DURATION.fullmatch(v)
    if m:
        expires = now + dt.timedelta(hours=int(m[1]) * _UNIT_H[m[2]])
    else:
        try:
            expires = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PolicyError(
                f"expires: {value!r} is neither a duration (36h, 14d, 2w) nor an ISO date",
                parameter="expires", value=value) from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.timezone.utc)
        expires = expires.astimezone(dt.timezone.utc)
    if expires <= now:
        raise PolicyError(f"expires: {value!r} is in the past", parameter="expires", value=value)
    if limit is not None and expires - now > dt.timedelta(hours=limit):
        raise PolicyError(f"expires: {value!r} is beyond the class lifetime; {allowed}",
                          parameter="expires", value=value)
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
        return f"{self.name}-srv"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket, "requester": self.requester, "purpose": self.purpose,
            "instance_class": self.klass.name, "name": self.name, "flavor": self.flavor,
            "image": self.image, "volume_gb": self.volume_gb,
            "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
        }


def iso(value: dt.datetime | None) -> str:
    return "never" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_request(policy: Policy, *, ticket: str, requester: str, purpose: str,
                  instance_class: str, name: str, flavor: str = "", image: str = "",
                  volume_gb: int = 0, expires: str = "",
                  now: dt.datetime | None = None) -> InstanceRequest:
    """Apply the site policy to a request; raise :class:`PolicyError` listing every problem."""
    problems: list[str] = []
    if instance_class not in policy.classes:
        raise PolicyError(
            f"instance_class: {instance_class!r} is not a class of the site policy; allowed: "
            f"{', '.join(sorted(policy.classes))}",
            problems=[f"instance_class: {instance_class!r} unknown"])
    k = policy.classes[instance_class]
    if not str(ticket).strip():
        problems.append("ticket: a ticket number is required")
    if not requester:
        problems.append("requester: an account name is required")
    if not DNS_LABEL.fullmatch(name or ""):
        problems.append(f"name: {name!r} is not a valid DNS label (lower-case letters, digits "
                        f"and '-', starting with a letter, not ending with '-', at most 63)")
    flavor = flavor or k.default_flavor
    image = image or k.default_image
    if flavor not in k.flavors:
        problems.append(f"flavor: {flavor!r} is not allowed for class {k.name}; allowed: "
                        f"{', '.join(k.flavors)}")
    if image not in k.images:
        problems.append(f"image: {image!r} is not allowed for class {k.name}; allowed: "
                        f"{', '.join(k.images)}")
    if volume_gb < 0 or volume_gb > k.max_volume_gb:
        problems.append(f"volume_gb: {volume_gb} is outside what class {k.name} allows "
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

    ``account`` is a :class:`fedcloud_lib.accounts.Account`.
    """
    if not account.sshpubkeys:
        raise PolicyError(
            f"requester {account.username!r} has no ssh public key in the account system; "
            f"they must add one before an instance can be made for them",
            requester=account.username)
    if not set(account.groups) & set(klass.groups):
        raise PolicyError(
            f"requester {account.username!r} is in none of the groups allowed to request a "
            f"{klass.name} instance ({', '.join(klass.groups)}); their groups: "
            f"{', '.join(sorted(account.groups)) or 'none'}",
            requester=account.username)
