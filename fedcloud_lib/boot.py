"""What a server boots with, for every SOP that makes servers (instances, builders, boot
tests, migrated servers): the flavor, image and policy network to look up (facts), and the
keypair and standard security group as plan steps with their idempotent handlers.

>>> flavor, image, network = boot.ingredients(conn, policy, "m1.small", "fedora-cloud-test")
>>> steps = [boot.keypair_step("fas-alice", key, facts.keypair, "alice's key"),
...          boot.secgroup_step(facts.secgroup, policy.network.ingress_tcp)]
>>> boot.register(HANDLERS)   # ("keypair", create|update), ("security group", create|update)
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openstack import exceptions as os_exc

from . import secgroups
from .cloud import call
from .errors import CloudError
from .plan import Handlers, Step
from .site.policy import Policy

__all__ = ["find_flavor", "find_image", "policy_network", "ingredients", "key_body",
           "keypair_step", "secgroup_step", "ensure_keypair", "register"]


def find_flavor(conn: Any, name: str) -> Any:
    """The flavor ``name``; CloudError if the cloud has none (the policy allows it)."""
    flavor = call(lambda: conn.compute.find_flavor(name), f"look up flavor {name}")
    if flavor is None:
        raise CloudError(f"flavor {name!r} is allowed by the policy but does not exist "
                         f"in this cloud", flavor=name)
    return flavor


def find_image(conn: Any, name: str) -> Any:
    """The image ``name``; CloudError if the cloud has none (the policy allows it)."""
    image = call(lambda: conn.image.find_image(name), f"look up image {name}")
    if image is None:
        raise CloudError(f"image {name!r} is allowed by the policy but does not exist "
                         f"in this cloud", image=name)
    return image


def policy_network(conn: Any, policy: Policy) -> Any | None:
    """The tenant network the policy boots servers on (None when it names none)."""
    name = policy.network.network
    if not name:
        return None
    network = call(lambda: conn.network.find_network(name), "look up the network")
    if network is None:
        raise CloudError(f"network {name!r} (site policy) does not exist in this cloud")
    return network


def ingredients(conn: Any, policy: Policy, flavor: str, image: str) -> tuple[Any, Any, Any]:
    """(flavor, image, network) a server of the policy boots with; CloudError if missing."""
    return find_flavor(conn, flavor), find_image(conn, image), policy_network(conn, policy)


def key_body(key: str | None) -> str:
    """An ssh public key without its comment (what makes two keys the same key)."""
    return " ".join((key or "").split()[:2])


def keypair_step(name: str, public_key: str, existing: Any | None, whose: str) -> Step:
    """The plan's keypair step: create it, replace a changed key, or reuse it."""
    if existing is None:
        return Step("create", "keypair", name, whose, {"public_key": public_key})
    if key_body(existing.public_key) != key_body(public_key):
        return Step("update", "keypair", name, f"replace: {whose} changed",
                    {"public_key": public_key})
    return Step("reuse", "keypair", name, existing.fingerprint or "",
                {"fingerprint": existing.fingerprint or ""})


def secgroup_step(state: secgroups.GroupState, ports: Iterable[int]) -> Step:
    """The plan's standard-group step: create it, repair drift, or reuse it."""
    action = {"create": "create", "repair": "update", "reuse": "reuse"}[state.action]
    return Step(action, "security group", state.name,
                ("drift repair: " if action == "update" else "") + state.detail(),
                {"ports": list(ports), "remove": [r.describe() for _, r in state.extra],
                 "add": [r.describe() for r in state.missing] if state.exists else []})


def ensure_keypair(conn: Any, name: str, public_key: str) -> Any:
    """Keypair ``name`` holding ``public_key`` (made, or replaced when the key differs)."""
    kp = conn.compute.find_keypair(name)
    if kp is not None and key_body(kp.public_key) != key_body(public_key):
        conn.compute.delete_keypair(kp, ignore_missing=True)
        kp = None
    if kp is None:
        try:
            kp = conn.compute.create_keypair(name=name, public_key=public_key)
        except os_exc.ConflictException:  # made meanwhile with the same name
            kp = conn.compute.find_keypair(name)
    return kp


def _keypair(st: Any, step: Step) -> str:
    return ensure_keypair(st.conn, step.name, step.inputs["public_key"]).fingerprint


def _security_group(st: Any, step: Step) -> str:
    secgroups.ensure(st.conn, step.name, step.inputs["ports"])
    return "exactly the standard rules"


def register(handlers: Handlers) -> Handlers:
    """Add the keypair and standard-group handlers to an SOP's handlers (their state needs
    a ``conn``)."""
    handlers.on("keypair", "create", "update")(_keypair)
    handlers.on("security group", "create", "update")(_security_group)
    return handlers
