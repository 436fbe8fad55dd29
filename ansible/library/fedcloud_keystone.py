#!/usr/bin/python3
"""Ansible module: make Keystone hold fedcloud's service catalog.

Ensures (never deletes): projects, roles, users with a password and role assignments on
a project, and services with public/internal/admin endpoints in one region.  Runs on the
controller with Debian's python3-openstacksdk; supports check mode (reports what it would
create).  Existing users keep their password (passwords come from the cloudlet's secrets
file, written once on first install).
"""
from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: fedcloud_keystone
short_description: Ensure fedcloud's projects, roles, service users and endpoints exist
options:
  auth_url: {type: str, required: true}
  admin_password: {type: str, required: true, no_log: true}
  region: {type: str, default: RegionOne}
  projects: {type: list, elements: str, default: []}
  roles: {type: list, elements: str, default: []}
  users: {type: list, elements: dict, default: []}
  services: {type: list, elements: dict, default: []}
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            auth_url=dict(type="str", required=True),
            admin_password=dict(type="str", required=True, no_log=True),
            region=dict(type="str", default="RegionOne"),
            projects=dict(type="list", elements="str", default=[]),
            roles=dict(type="list", elements="str", default=[]),
            users=dict(type="list", elements="dict", default=[], no_log=False),
            services=dict(type="list", elements="dict", default=[]),
        ),
        supports_check_mode=True,
    )
    # user passwords are in `users`; keep them out of any output
    for u in module.params["users"]:
        if u.get("password"):
            module.no_log_values.add(u["password"])
    try:
        import openstack
    except ImportError:
        module.fail_json(msg="python3-openstacksdk is missing on the controller (apt install python3-openstacksdk)")
    p = module.params
    check = module.check_mode
    actions: list[str] = []
    try:
        conn = openstack.connect(
            auth_url=p["auth_url"], username="admin", password=p["admin_password"],
            project_name="admin", user_domain_name="Default", project_domain_name="Default",
            region_name=p["region"], identity_api_version="3",
        )
        idc = conn.identity
        projects = {}
        for name in p["projects"]:
            proj = idc.find_project(name, domain_id="default")
            if proj is None:
                actions.append(f"create project {name}")
                if not check:
                    proj = idc.create_project(name=name, domain_id="default",
                                              description=f"fedcloud {name}")
            projects[name] = proj
        roles = {}
        for name in p["roles"]:
            role = idc.find_role(name)
            if role is None:
                actions.append(f"create role {name}")
                if not check:
                    role = idc.create_role(name=name)
            roles[name] = role
        for u in p["users"]:
            user = idc.find_user(u["name"], domain_id="default")
            if user is None:
                actions.append(f"create user {u['name']}")
                if not check:
                    user = idc.create_user(name=u["name"], password=u["password"],
                                           domain_id="default",
                                           default_project_id=getattr(projects.get(u["project"]), "id", None))
            proj = projects.get(u["project"]) or idc.find_project(u["project"], domain_id="default")
            for rname in u.get("roles", []):
                role = roles.get(rname) or idc.find_role(rname)
                if user is None or proj is None or role is None:
                    actions.append(f"assign role {rname} to {u['name']} on {u['project']}")
                    continue
                if not idc.validate_user_has_project_role(proj, user, role):
                    actions.append(f"assign role {rname} to {u['name']} on {u['project']}")
                    if not check:
                        idc.assign_project_role_to_user(proj, user, role)
        existing = {s.name: s for s in idc.services()}
        for s in p["services"]:
            svc = existing.get(s["name"])
            if svc is None:
                actions.append(f"create service {s['name']} ({s['type']})")
                if not check:
                    svc = idc.create_service(name=s["name"], type=s["type"], is_enabled=True)
            have = {}
            if svc is not None:
                for ep in idc.endpoints(service_id=svc.id):
                    have[ep.interface] = ep
            for iface in ("public", "internal", "admin"):
                ep = have.get(iface)
                if ep is None:
                    actions.append(f"create {iface} endpoint {s['name']} {s['url']}")
                    if not check:
                        idc.create_endpoint(service_id=svc.id, interface=iface, url=s["url"],
                                            region_id=p["region"])
                elif ep.url != s["url"]:
                    actions.append(f"update {iface} endpoint {s['name']} {ep.url} -> {s['url']}")
                    if not check:
                        idc.update_endpoint(ep, url=s["url"])
    except Exception as exc:  # report any SDK/HTTP failure as a task failure
        module.fail_json(msg=f"keystone catalog: {type(exc).__name__}: {exc}", actions=actions)
    module.exit_json(changed=bool(actions), actions=actions)


if __name__ == "__main__":
    main()
