"""Site policy as data: ``parameters/policy.yaml`` loaded, validated and frozen.

The file is checked against :data:`SCHEMA` (jsonschema) and then for the rules a schema
cannot say (a class's default image must be one of its images, ...).  Every problem is
reported at once, each line naming the field, the value and what is allowed.

What the policy means for one SOP's request is that SOP's business (e.g.
:mod:`fedcloud_lib.instance.request`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from ..errors import ConfigError, PolicyError

__all__ = [
    "DEFAULT_POLICY_PATH",
    "SCHEMA",
    "InstanceClass",
    "Quota",
    "NetworkPolicy",
    "MailSettings",
    "TicketSettings",
    "RootKey",
    "BurstPolicy",
    "Policy",
    "load",
    "from_dict",
    "policy_path",
    "DNS_LABEL",
    "MAX_LIFETIME_H",
    "MAX_COUNT",
]

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "parameters" / "policy.yaml"
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")

_name = {"type": "string", "minLength": 1}
_names = {"type": "array", "items": _name, "minItems": 1, "uniqueItems": True}
#: the longest lifetime a class may allow or default to (10 years, in hours); beyond that
#: "no expiry" (null) says what is meant, and date arithmetic stays in range
MAX_LIFETIME_H = 87600
#: the largest quota or size figure (OpenStack keeps them as 32-bit integers)
MAX_COUNT = 2**31 - 1
_hours = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIFETIME_H}
_count = {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}
_seconds = {"type": "number", "exclusiveMinimum": 0, "maximum": 600}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "accounts", "admin_groups", "root_keys", "network", "quotas",
                 "classes", "mail"],
    "properties": {
        "version": {"const": 1},
        "accounts": {
            "type": "object", "additionalProperties": False,
            "properties": {
                # fasjson: the Fedora Account System's JSON API; file: a directory of
                # <username>.yaml files (emails, sshpubkeys, groups, human_name)
                "source": {"enum": ["fasjson", "file"]},
                "fasjson_url": {"type": "string", "pattern": "^https?://"},
                "path": _name,
                "timeout_s": _seconds,
                "auth": {"enum": ["none", "gssapi"]},
            },
            "if": {"required": ["source"], "properties": {"source": {"const": "file"}}},
            "then": {"required": ["path"]},
            "else": {"required": ["fasjson_url"]},
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
                "properties": {k: _count
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
                    "max_volume_gb": _count,
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
                "timeout_s": _seconds,
            },
        },
        "tickets": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "pagure_url": {"type": "string", "pattern": "^https?://"},
                "repo": _name,
                "token_env": _name,
                # ticket statuses that may get an instance; any other is only retired
                "open_statuses": _names,
            },
        },
    },
}

# ----------------------------------------------------------------- burst (mass-rebuild-burst)
# A section of its own, added to SCHEMA here so that it stays apart from the others.
SCHEMA["properties"]["burst"] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "profiles": _names,
        "max_builders": {"type": "integer", "minimum": 1},
        "boot_ceiling": {"type": "integer", "minimum": 1},
        "min_boot_ceiling": {"type": "integer", "minimum": 1},
        "max_boot_ceiling": {"type": "integer", "minimum": 1},
        "boot_timeout_s": {"type": "integer", "minimum": 30},
        "max_boot_failures": {"type": "integer", "minimum": 0},
        "infra_retries": {"type": "integer", "minimum": 0, "maximum": 10},
        "default_build_s": {"type": "integer", "minimum": 1},
        "max_build_timeout_h": {"type": "number", "exclusiveMinimum": 0},
    },
}


@dataclass(frozen=True)
class BurstPolicy:
    """How big and how fast a mass-rebuild burst may be (``burst:`` in the policy).

    ``profiles`` are the instance classes builders may be made from (their flavor, image
    and lifetime); ``max_builders`` is the ceiling of one burst whatever the quota allows;
    ``boot_ceiling`` is how many builders may boot at once to start with: halved when boots
    fail (never below ``min_boot_ceiling``: the throttling Copr did by hand), raised while
    boots succeed (never above ``max_boot_ceiling``).
    """

    profiles: tuple[str, ...] = ("builder",)
    max_builders: int = 30
    boot_ceiling: int = 12
    min_boot_ceiling: int = 2
    max_boot_ceiling: int = 40
    boot_timeout_s: int = 600
    max_boot_failures: int = 5
    infra_retries: int = 2
    default_build_s: int = 600
    max_build_timeout_h: float = 5.0


def _burst(data: Mapping[str, Any] | None, classes: Mapping[str, "InstanceClass"],
           problems: list[str]) -> BurstPolicy:
    b = BurstPolicy(**{k: (tuple(v) if isinstance(v, list) else v)
                       for k, v in (data or {}).items()})
    for name in b.profiles:
        k = classes.get(name)
        if k is None:
            problems.append(f"burst.profiles: {name!r} is not a class of the policy; "
                            f"classes: {', '.join(sorted(classes))}")
        elif k.persistent or k.max_lifetime_h is None or k.max_lifetime_h > 24:
            problems.append(f"burst.profiles: class {name!r} must be transient with a "
                            f"lifetime of at most 24 h (builders live at most a day)")
    if not b.min_boot_ceiling <= b.boot_ceiling <= b.max_boot_ceiling:
        problems.append(f"burst.boot_ceiling: {b.boot_ceiling} must be between "
                        f"min_boot_ceiling ({b.min_boot_ceiling}) and max_boot_ceiling "
                        f"({b.max_boot_ceiling})")
    if b.max_build_timeout_h > 24:
        problems.append(f"burst.max_build_timeout_h: {b.max_build_timeout_h} is longer than a "
                        f"builder lives (24 h)")
    return b


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
    open_statuses: tuple[str, ...] = ("Open",)

    def is_open(self, status: str | None) -> bool:
        """Whether a ticket with ``status`` may get an instance (case does not matter)."""
        return (status or "").strip().casefold() in {s.casefold() for s in self.open_statuses}


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
    #: where accounts come from: ``fasjson`` (``fasjson_url``) or ``file`` (``accounts_path``)
    accounts_source: str = "fasjson"
    #: the directory of ``<username>.yaml`` account files (``source: file``), absolute
    accounts_path: str | None = None
    burst: BurstPolicy = field(default_factory=BurstPolicy)

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
    acc = data["accounts"]
    accounts_path = None
    if acc.get("source") == "file":
        where = Path(acc["path"])
        if not where.is_absolute() and Path(source).is_file():
            where = Path(source).resolve().parent / where
        accounts_path = str(where)
        if not where.is_dir():
            problems.append(f"accounts.path: {acc['path']!r} is not a directory (of "
                            f"<username>.yaml account files; relative to the policy file)")
    net = data["network"]
    if sorted(net["ingress_tcp"]) != [22, 80, 443]:
        # the site rule: only ssh and web are ever opened by the standard group
        problems.append(f"network.ingress_tcp: {net['ingress_tcp']} — the standard group opens "
                        f"exactly tcp 22, 80 and 443")
    burst = _burst(data.get("burst"), classes, problems)
    if problems:
        raise ConfigError(f"site policy {source} is invalid:\n  " + "\n  ".join(problems),
                          path=source, problems=problems)
    m = data["mail"]
    t = data.get("tickets", {})
    return Policy(
        path=source,
        fasjson_url=acc.get("fasjson_url", "").rstrip("/"),
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
        tickets=TicketSettings(**{k: (tuple(v) if k == "open_statuses" else v)
                                  for k, v in t.items()}),
        accounts_source=acc.get("source", "fasjson"),
        accounts_path=accounts_path,
        burst=burst,
    )
