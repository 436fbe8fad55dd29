"""Cloudlet inventory and settings: the runbook's parameters, validated, as ansible input."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ParameterError

ROLES = ("controller", "compute")
SERVICE_MODES = ("systemd", "supervisor")
COMPUTE_DRIVERS = ("libvirt", "fake")
CINDER_BACKENDS = ("lvm", "fake")
CLOUDLET_NAMES = ("production", "testing")
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
_IFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
STATE_DIR = Path("/var/lib/fedcloud")
SECRETS_DIR = Path("/etc/fedcloud/secrets")
LOG_DIR = Path("/var/log/fedcloud")


@dataclass(frozen=True)
class Host:
    """One inventory host: ``name`` is its ansible name, ``address`` where to reach it
    (``localhost`` means a local connection), ``roles`` a subset of controller/compute,
    ``compute_names`` the nova/neutron host names of the compute instances it runs
    (one on real hosts; the all-in-one runs two so that migrations can be tested)."""

    name: str
    address: str
    roles: tuple[str, ...]
    compute_names: tuple[str, ...] = ()
    ssh_user: str = "root"

    @property
    def local(self) -> bool:
        return self.address in ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CloudletSettings:
    """A cloudlet's install settings, validated: hosts and roles, service mode, drivers, provider network, storage."""
    cloudlet: str
    hosts: tuple[Host, ...]
    service_mode: str = "supervisor"
    compute_driver: str = "fake"
    provider_interface: str = "phy0a"
    provider_veth: bool = True
    physnet: str = "physnet1"
    glance_datadir: str = "/var/lib/glance/images/"
    cinder_backend: str = "fake"
    cinder_lvm_vg: str = "cinder-volumes"
    bind_address: str = "127.0.0.1"
    region: str = "RegionOne"
    extra: Mapping[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- derived
    @property
    def controller(self) -> Host:
        """The controller host."""
        return next(h for h in self.hosts if "controller" in h.roles)

    @property
    def compute_names(self) -> list[str]:
        """Every compute host name (a host may run several fake computes)."""
        return [n for h in self.hosts if "compute" in h.roles for n in h.compute_names]

    @property
    def controller_address(self) -> str:
        """The address the services of the controller are reached at."""
        c = self.controller
        return self.bind_address if c.local else c.address

    @property
    def keystone_url(self) -> str:
        """The public identity endpoint."""
        return f"http://{self.controller_address}:5000/v3"

    @property
    def secrets_file(self) -> Path:
        """Where the cloudlet's generated passwords live."""
        return SECRETS_DIR / f"{self.cloudlet}.yaml"

    @property
    def local(self) -> bool:
        """Whether every host is this machine."""
        return all(h.local for h in self.hosts)

    def inventory(self) -> dict[str, Any]:
        """Ansible inventory (YAML/JSON form) with groups controller and compute."""
        hosts: dict[str, Any] = {}
        for h in self.hosts:
            hv: dict[str, Any] = {
                "fedcloud_roles": list(h.roles),
                "fedcloud_compute_names": list(h.compute_names),
            }
            if h.local:
                hv.update(ansible_connection="local", ansible_python_interpreter="/usr/bin/python3")
            else:
                hv.update(ansible_host=h.address, ansible_user=h.ssh_user,
                          ansible_connection="ssh", ansible_python_interpreter="/usr/bin/python3")
            hosts[h.name] = hv
        groups = {r: {"hosts": {h.name: None for h in self.hosts if r in h.roles}} for r in ROLES}
        return {"all": {"hosts": hosts, "children": groups}}

    def extravars(self) -> dict[str, Any]:
        """The ansible extra vars (no secrets: the playbook reads them from the secrets file)."""
        ev = {
            "fedcloud_cloudlet": self.cloudlet,
            "fedcloud_service_mode": self.service_mode,
            "fedcloud_compute_driver": self.compute_driver,
            "fedcloud_cinder_backend": self.cinder_backend,
            "fedcloud_cinder_lvm_vg": self.cinder_lvm_vg,
            "fedcloud_glance_datadir": self.glance_datadir,
            "fedcloud_physnet": self.physnet,
            "fedcloud_provider_interface": self.provider_interface,
            "fedcloud_provider_veth": self.provider_veth,
            "fedcloud_bind_address": self.bind_address,
            "fedcloud_controller_address": self.controller_address,
            "fedcloud_controller_name": self.controller.name,
            "fedcloud_region": self.region,
            "fedcloud_secrets_file": str(self.secrets_file),
        }
        ev.update(self.extra)
        return ev

    def plan_rows(self) -> list[dict[str, Any]]:
        """One row per host: what it is and which programs it will run."""
        rows = []
        for h in self.hosts:
            rows.append({
                "host": h.name,
                "address": h.address,
                "connection": "local" if h.local else f"ssh {h.ssh_user}@{h.address}",
                "roles": ", ".join(h.roles),
                "compute instances": ", ".join(h.compute_names),
                "programs": ", ".join(programs_for(h.roles, h.compute_names)),
            })
        return rows


CONTROLLER_PROGRAMS = (
    "mariadb", "rabbitmq", "keystone", "glance-api", "placement-api",
    "nova-api", "nova-conductor", "nova-scheduler", "neutron-server",
    "cinder-api", "cinder-scheduler", "cinder-volume",
)


def programs_for(roles: tuple[str, ...] | list[str], compute_names: tuple[str, ...] | list[str]) -> list[str]:
    """Supervisor programs of a host, in start order."""
    out: list[str] = list(CONTROLLER_PROGRAMS) if "controller" in roles else []
    if "compute" in roles:
        out += [f"neutron-linuxbridge-agent-{n}" for n in compute_names]
        out += [f"nova-compute-{n}" for n in compute_names]
    return out


def _choice(name: str, value: Any, allowed: tuple[str, ...], problems: list[str]) -> None:
    if value not in allowed:
        problems.append(f"{name}={value!r}: must be one of {', '.join(allowed)}")


def settings_from_parameters(
    *,
    cloudlet: str,
    hosts: list[dict[str, Any]],
    service_mode: str = "supervisor",
    compute_driver: str = "fake",
    provider_interface: str = "phy0a",
    provider_veth: bool = True,
    physnet: str = "physnet1",
    glance_datadir: str = "/var/lib/glance/images/",
    cinder_backend: str = "fake",
    cinder_lvm_vg: str = "cinder-volumes",
    bind_address: str = "127.0.0.1",
    region: str = "RegionOne",
) -> CloudletSettings:
    """Validate the runbook parameters; every problem is reported at once."""
    problems: list[str] = []
    _choice("cloudlet", cloudlet, CLOUDLET_NAMES, problems)
    _choice("service_mode", service_mode, SERVICE_MODES, problems)
    _choice("compute_driver", compute_driver, COMPUTE_DRIVERS, problems)
    _choice("cinder_backend", cinder_backend, CINDER_BACKENDS, problems)
    if not _IFACE.match(str(provider_interface)):
        problems.append(f"provider_interface={provider_interface!r}: not a Linux interface name")
    if provider_veth and not str(provider_interface).endswith("a"):
        problems.append(f"provider_interface={provider_interface!r}: a veth provider interface must end "
                        "in 'a' (its peer is the same name ending in 'b')")
    parsed: list[Host] = []
    if not isinstance(hosts, list) or not hosts:
        problems.append("hosts: give at least one host, e.g. [{name: vm, address: localhost, roles: [controller, compute]}]")
        hosts = []
    seen: set[str] = set()
    for i, h in enumerate(hosts):
        if not isinstance(h, dict):
            problems.append(f"hosts[{i}]: must be a mapping with name, address, roles")
            continue
        unknown = set(h) - {"name", "address", "roles", "compute_names", "ssh_user"}
        if unknown:
            problems.append(f"hosts[{i}]: unknown keys {sorted(unknown)} (allowed: name, address, roles, compute_names, ssh_user)")
        name = str(h.get("name", ""))
        if not _NAME.match(name):
            problems.append(f"hosts[{i}].name={name!r}: lower-case host name required")
        roles = tuple(h.get("roles") or ())
        bad = [r for r in roles if r not in ROLES]
        if bad or not roles:
            problems.append(f"hosts[{i}].roles={list(roles)!r}: each must be one of {', '.join(ROLES)}")
        cnames = tuple(h.get("compute_names") or ((name,) if "compute" in roles else ()))
        if "compute" not in roles and h.get("compute_names"):
            problems.append(f"hosts[{i}].compute_names: only a compute host runs compute instances")
        for n in cnames:
            if not _NAME.match(str(n)):
                problems.append(f"hosts[{i}].compute_names: {n!r} is not a valid host name")
            if n in seen:
                problems.append(f"hosts[{i}].compute_names: {n!r} is used twice")
            seen.add(n)
        if service_mode == "systemd" and len(cnames) > 1:
            problems.append(f"hosts[{i}].compute_names: systemd mode runs one nova-compute per host "
                            "(several compute instances per host need service_mode=supervisor)")
        parsed.append(Host(name=name, address=str(h.get("address", name)), roles=roles,
                           compute_names=cnames, ssh_user=str(h.get("ssh_user", "root"))))
    controllers = [h for h in parsed if "controller" in h.roles]
    if parsed and len(controllers) != 1:
        problems.append(f"hosts: exactly one controller is supported, found {len(controllers)}")
    if parsed and not any("compute" in h.roles for h in parsed):
        problems.append("hosts: at least one compute host is needed")
    if compute_driver == "fake" and service_mode == "systemd":
        problems.append("compute_driver=fake is for test cloudlets (service_mode=supervisor)")
    if cinder_backend == "lvm" and not cinder_lvm_vg:
        problems.append("cinder_lvm_vg: the LVM backend needs a volume group name")
    if problems:
        raise ParameterError(f"{len(problems)} problem(s) in the cloudlet parameters", problems=problems)
    return CloudletSettings(
        cloudlet=cloudlet, hosts=tuple(parsed), service_mode=service_mode,
        compute_driver=compute_driver, provider_interface=provider_interface,
        provider_veth=bool(provider_veth), physnet=physnet, glance_datadir=glance_datadir,
        cinder_backend=cinder_backend, cinder_lvm_vg=cinder_lvm_vg,
        bind_address=bind_address, region=region,
    )
