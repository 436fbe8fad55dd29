"""The supervisor programs of the local cloudlet never depend on supervisord's working
directory: supervisord keeps the one it was started from (a checkout, a CI clone), and
once that is deleted every program it restarts dies in os.getcwd() (seen: nova-compute
and the linuxbridge agents crash-looping after a CI clone was removed)."""
from __future__ import annotations

import configparser
from pathlib import Path

import jinja2

TEMPLATE = Path(__file__).resolve().parents[2] / "ansible/roles/supervisor/templates/fedcloud.conf.j2"


def test_every_program_runs_in_a_fixed_directory():
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        TEMPLATE.read_text()).render(
        fedcloud_cloudlet="local", fedcloud_log_dir="/var/log/fedcloud",
        fedcloud_roles=["controller", "compute"], fedcloud_compute_names=["vm", "cmp2"],
        fedcloud_bind_address="127.0.0.1")
    conf = configparser.RawConfigParser(strict=True)
    conf.read_string(text)
    programs = [s for s in conf.sections() if s.startswith("program:")]
    assert len(programs) >= 16, programs
    assert {conf[p].get("directory") for p in programs} == {"/"}, \
        [p for p in programs if conf[p].get("directory") != "/"]
