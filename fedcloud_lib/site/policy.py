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
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from ..errors import ConfigError, ParameterError, PolicyError
from ..shown import shown

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
    # image-create (the ``images`` section)
    "IMAGES_SCHEMA",
    "IMAGE_VISIBILITIES",
    "UpdatePolicy",
    "FirstBoot",
    "BootTest",
    "ImageProfile",
    "ImagePolicy",
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
    given = {k: (tuple(v) if isinstance(v, list) else v) for k, v in (data or {}).items()}
    if "profiles" not in given:  # the default names classes a site may not have
        given["profiles"] = tuple(p for p in BurstPolicy.profiles if p in classes)
    b = BurstPolicy(**given)
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

    def flavor_and_image(self, flavor: str | None, image: str | None,
                         what: str = "class") -> tuple[str, str, list[str]]:
        """The flavor and image a request asks for (the class's defaults where it names
        none) and what is wrong with them: each must be one the class allows."""
        flavor = flavor or self.default_flavor
        image = image or self.default_image
        problems = []
        if flavor not in self.flavors:
            problems.append(f"flavor: {shown(flavor)} is not allowed for {what} {self.name}; "
                            f"allowed: {', '.join(self.flavors)}")
        if image not in self.images:
            problems.append(f"image: {shown(image)} is not allowed for {what} {self.name}; "
                            f"allowed: {', '.join(self.images)}")
        return flavor, image, problems


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
    images: ImagePolicy | None = None  # the images section (image-create), if present
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
    images = _images(data.get("images"), source, {k["name"] for k in data["root_keys"]},
                     problems)
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
        images=images,
        burst=burst,
    )


# --------------------------------------------------------------------------- images
# The ``images`` section: image profiles for image-create (what each kind of base image
# is, where it comes from, how it is verified, booted and retired).  Optional, so that a
# site without image-create keeps a valid policy.

IMAGE_VISIBILITIES = ("private", "shared", "community", "public")
IMAGE_FORMATS = ("qcow2", "raw")
_SOURCE_FIELDS = ("{version}", "{major}")  # placeholders allowed in default_source/checksum
_location = {"type": "string", "pattern": r"^(https?://\S+|/\S*)$"}

IMAGES_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["profiles"],
    "properties": {
        "work_dir": {"type": "string", "pattern": "^/"},
        "keyrings": {
            "type": "object", "propertyNames": {"pattern": "^[a-z][a-z0-9_-]*$"},
            "additionalProperties": _name,
        },
        "boot_test": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "login_marker": _name,
                "timeout_s": {"type": "integer", "minimum": 10},
                "console_grace_s": {"type": "integer", "minimum": 0},
            },
        },
        "profiles": {
            "type": "object", "minProperties": 1,
            "propertyNames": {"pattern": "^[a-z][a-z0-9_-]*$"},
            "additionalProperties": {
                "type": "object", "additionalProperties": False,
                "required": ["image_name", "contents", "root_key_groups", "update",
                             "properties", "boot_flavors"],
                "properties": {
                    "description": {"type": "string"},
                    "image_name": {"type": "string", "maxLength": 180,
                                   "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
                    "default_source": _location,
                    "default_checksum": {"type": "string",
                                         "pattern": r"^([0-9a-fA-F]{64}|https?://\S+|/\S*)$"},
                    "formats": {"type": "array", "minItems": 1, "uniqueItems": True,
                                "items": {"enum": list(IMAGE_FORMATS)}},
                    "visibility": {"enum": list(IMAGE_VISIBILITIES)},
                    "keyring": _name,
                    "require_signature": {"type": "boolean"},
                    "contents": {"type": "string", "minLength": 1},
                    "first_boot": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            "packages": {"type": "array", "items": _name, "uniqueItems": True},
                            "services": {"type": "array", "items": _name, "uniqueItems": True},
                            "srv_volume": {"type": "boolean"},
                            "runcmd": {"type": "array", "items": _name},
                        },
                    },
                    "root_key_groups": {"type": "array", "items": _name, "uniqueItems": True},
                    "update": {
                        "type": "object", "additionalProperties": False,
                        "required": ["keep", "hidden_days"],
                        "properties": {
                            "keep": {"type": "integer", "minimum": 1},
                            "hidden_days": {"type": "integer", "minimum": 0},
                        },
                    },
                    "properties": {
                        "type": "object", "additionalProperties": False,
                        "required": ["os_distro", "min_disk", "min_ram"],
                        "properties": {
                            "os_distro": _name,
                            "os_version": _name,
                            "os_type": {"enum": ["linux", "windows"]},
                            "os_admin_user": _name,
                            "architecture": _name,
                            "min_disk": {"type": "integer", "minimum": 1},
                            "min_ram": {"type": "integer", "minimum": 0},
                        },
                        "patternProperties": {
                            "^hw_[a-z0-9_]+$": {"type": ["string", "integer", "boolean"]},
                        },
                    },
                    "boot_flavors": _names,
                    "instance_lifetime_h": _hours,
                },
            },
        },
    },
}
SCHEMA["properties"]["images"] = IMAGES_SCHEMA


@dataclass(frozen=True)
class UpdatePolicy:
    """Keep the ``keep`` newest active versions; hide the superseded ones for
    ``hidden_days`` (0: delete them at once), then delete them."""

    keep: int
    hidden_days: int

    def describe(self) -> str:
        later = (f"hidden for {self.hidden_days} days, then deleted" if self.hidden_days
                 else "deleted at once")
        return f"keep the {self.keep} newest active versions; superseded ones {later}; " \
               f"never an image a server still uses"


@dataclass(frozen=True)
class FirstBoot:
    """What cloud-init installs and configures at an instance's first boot."""

    packages: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    srv_volume: bool = False
    runcmd: tuple[str, ...] = ()


@dataclass(frozen=True)
class BootTest:
    """How a new image is boot-tested: the login marker looked for in the console log,
    how long to wait for it, and how long a console may stay without any boot output
    before it counts as "this cloud gives no console log"."""

    login_marker: str = "login:"
    timeout_s: int = 600
    console_grace_s: int = 60


@dataclass(frozen=True)
class ImageProfile:
    """One kind of base image (site policy): its SOP record."""

    name: str
    image_name: str
    contents: str
    root_key_groups: tuple[str, ...]
    update: UpdatePolicy
    properties: Mapping[str, Any]  # os_distro, os_version, hw_*, ... (not min_disk/min_ram)
    min_disk_gb: int
    min_ram_mb: int
    boot_flavors: tuple[str, ...]
    description: str = ""
    default_source: str | None = None
    default_checksum: str | None = None
    formats: tuple[str, ...] = IMAGE_FORMATS
    visibility: str = "private"
    keyring: str | None = None
    require_signature: bool = False
    first_boot: FirstBoot = field(default_factory=FirstBoot)
    instance_lifetime_h: int | None = None


@dataclass(frozen=True)
class ImagePolicy:
    """The ``images`` section: profiles, keyrings (name → absolute path), boot test."""

    profiles: Mapping[str, ImageProfile]
    keyrings: Mapping[str, str] = field(default_factory=dict)
    work_dir: str = "/var/tmp"
    boot_test: BootTest = field(default_factory=BootTest)

    def profile(self, name: str) -> ImageProfile:
        """The profile called ``name``; :class:`ParameterError` naming the allowed ones."""
        try:
            return self.profiles[name]
        except KeyError:
            raise ParameterError(
                f"profile: {_short(name)} is not an image profile of the site policy; "
                f"allowed: {', '.join(sorted(self.profiles))}",
                parameter="profile", value=str(name)[:40]) from None


def _short(value: Any, n: int = 40) -> str:
    s = str(value)
    return repr(s) if len(s) <= n else f"{s[:n]!r}... ({len(s)} chars)"


def _placeholders_ok(text: str) -> bool:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError:
        return False
    return all("{" + f + "}" in _SOURCE_FIELDS for f in fields)


def _images(data: Mapping[str, Any] | None, source: str, root_key_names: set[str],
            problems: list[str]) -> ImagePolicy | None:
    """The images section, cross-checked (every problem appended to ``problems``)."""
    if data is None:
        return None
    base = Path(source).parent if source and not source.startswith("<") else Path.cwd()
    keyrings = {k: str((base / v).resolve()) for k, v in (data.get("keyrings") or {}).items()}
    bt = data.get("boot_test") or {}
    profiles: dict[str, ImageProfile] = {}
    for pname, p in data["profiles"].items():
        where = f"images.profiles.{pname}"
        if p.get("keyring") and p["keyring"] not in keyrings:
            problems.append(f"{where}.keyring: {p['keyring']!r} is not one of images.keyrings "
                            f"({', '.join(sorted(keyrings)) or 'none'})")
        if p.get("require_signature") and not p.get("keyring"):
            problems.append(f"{where}.require_signature: a signature can only be checked with "
                            f"a keyring; name one in {where}.keyring")
        unknown = [g for g in p["root_key_groups"] if g not in root_key_names]
        if unknown:
            problems.append(f"{where}.root_key_groups: {', '.join(unknown)} not in root_keys "
                            f"({', '.join(sorted(root_key_names))})")
        texts = {k: p.get(k) for k in ("default_source", "default_checksum")}
        texts.update({f"properties.{k}": v for k, v in p["properties"].items()
                      if isinstance(v, str)})
        for key, text in texts.items():
            if text and not _placeholders_ok(text):
                problems.append(f"{where}.{key}: only the placeholders {{version}} and "
                                f"{{major}} may be used")
        if p.get("default_checksum") and not p.get("default_source"):
            problems.append(f"{where}.default_checksum: needs a default_source it is the "
                            f"checksum of")
        fb = p.get("first_boot") or {}
        props = dict(p["properties"])
        min_disk, min_ram = props.pop("min_disk"), props.pop("min_ram")
        profiles[pname] = ImageProfile(
            name=pname, image_name=p["image_name"], contents=p["contents"].strip(),
            root_key_groups=tuple(p["root_key_groups"]),
            update=UpdatePolicy(keep=p["update"]["keep"],
                                hidden_days=p["update"]["hidden_days"]),
            properties=props, min_disk_gb=min_disk, min_ram_mb=min_ram,
            boot_flavors=tuple(p["boot_flavors"]), description=p.get("description", ""),
            default_source=p.get("default_source"), default_checksum=p.get("default_checksum"),
            formats=tuple(p.get("formats", IMAGE_FORMATS)),
            visibility=p.get("visibility", "private"), keyring=p.get("keyring"),
            require_signature=p.get("require_signature", False),
            first_boot=FirstBoot(packages=tuple(fb.get("packages", ())),
                                 services=tuple(fb.get("services", ())),
                                 srv_volume=fb.get("srv_volume", False),
                                 runcmd=tuple(fb.get("runcmd", ()))),
            instance_lifetime_h=p.get("instance_lifetime_h"))
    return ImagePolicy(profiles=profiles, keyrings=keyrings,
                       work_dir=data.get("work_dir", "/var/tmp"),
                       boot_test=BootTest(login_marker=bt.get("login_marker", "login:"),
                                          timeout_s=bt.get("timeout_s", 600),
                                          console_grace_s=bt.get("console_grace_s", 60)))
