"""The local cloudlet's programs: which program runs which OpenStack service, where it
logs, and the order they start in."""
from __future__ import annotations

from .settings import LOG_DIR

__all__ = ["PHASES", "SERVICE_PROGRAMS", "log_of", "program_for", "program_for_queue", "match"]

# start phases: programs and the loopback ports that must answer before the next phase
PHASES: list[tuple[str, list[str], list[int]]] = [
    ("database and message queue", ["mariadb", "rabbitmq"], [3306, 5672]),
    ("identity", ["keystone"], [5000]),
    ("control services", ["glance-api", "placement-api", "nova-api", "nova-conductor",
                          "nova-scheduler", "neutron-server", "cinder-api", "cinder-scheduler"],
     [9292, 8778, 8774, 9696, 8776]),
    # after cinder-scheduler: cinder-volume reports its backend when it starts, and a
    # scheduler that is not listening yet would know no backend for a minute
    ("volume and compute", ["cinder-volume", "neutron-linuxbridge-agent-*", "nova-compute-*"], []),
]

# OpenStack service (as the APIs name it) -> program name pattern
SERVICE_PROGRAMS = {
    "keystone": "keystone", "identity": "keystone",
    "glance": "glance-api", "image": "glance-api",
    "placement": "placement-api",
    "nova": "nova-api", "compute": "nova-api",
    "nova-api": "nova-api", "nova-conductor": "nova-conductor", "nova-scheduler": "nova-scheduler",
    "neutron": "neutron-server", "network": "neutron-server",
    "cinder": "cinder-api", "volume": "cinder-api", "volumev3": "cinder-api",
    "block-storage": "cinder-api", "cinder-scheduler": "cinder-scheduler",
    "cinder-volume": "cinder-volume", "mariadb": "mariadb", "rabbitmq": "rabbitmq",
}


def log_of(program: str) -> str:
    """Where a program logs (its own log file; keystone and the infra log elsewhere)."""
    special = {"keystone": "/var/log/keystone/keystone-wsgi-public.log (and "
                           f"{LOG_DIR}/keystone.stdout.log)",
               "mariadb": f"{LOG_DIR}/mariadb.stdout.log",
               "rabbitmq": f"{LOG_DIR}/rabbitmq.stdout.log (and /var/log/rabbitmq/)",
               "placement-api": f"{LOG_DIR}/placement-api.log"}
    return special.get(program, f"{LOG_DIR}/{program}.log")


def program_for(service: str, host: str | None = None) -> str:
    """Program name of an OpenStack service binary on a (compute) host."""
    if service in ("nova-compute",) and host:
        return f"nova-compute-{host}"
    if service.startswith("neutron-linuxbridge-agent") and host:
        return f"neutron-linuxbridge-agent-{host}"
    return SERVICE_PROGRAMS.get(service, service)


def program_for_queue(queue: str) -> str:
    """The program consuming an RPC queue (compute.<host>, conductor, scheduler)."""
    if queue.startswith("compute."):
        return "nova-compute-" + queue.split(".", 1)[1]
    return {"conductor": "nova-conductor", "scheduler": "nova-scheduler"}.get(queue, queue)


def match(pattern: str, name: str) -> bool:
    """Whether program ``name`` matches ``pattern`` (exact, or a ``prefix*``)."""
    return name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1]))
