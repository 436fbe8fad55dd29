"""The sample Nagios objects (docs/nagios/fedcloud.cfg) pass Debian's nagios4 config
check (``nagios4 -v``) in a minimal nagios.cfg, and name only checks that exist."""
from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fedcloud_lib.checks.cli import CHECKS

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "nagios" / "fedcloud.cfg"
NAGIOS = shutil.which("nagios4") or "/usr/sbin/nagios4"

SITE = """
define timeperiod {
    timeperiod_name 24x7
    alias           always
    sunday          00:00-24:00
    monday          00:00-24:00
    tuesday         00:00-24:00
    wednesday       00:00-24:00
    thursday        00:00-24:00
    friday          00:00-24:00
    saturday        00:00-24:00
}
define command {
    command_name    notify-none
    command_line    /bin/true
}
define command {
    command_name    check-host-alive
    command_line    /bin/true
}
define contact {
    contact_name                    admin
    service_notification_period     24x7
    host_notification_period        24x7
    service_notification_options    w,u,c,r
    host_notification_options       d,u,r
    service_notification_commands   notify-none
    host_notification_commands      notify-none
}
define contactgroup {
    contactgroup_name   admins
    members             admin
}
define host {
    host_name               fedcloud-controller
    address                 127.0.0.1
    check_command           check-host-alive
    max_check_attempts      3
    check_period            24x7
    notification_period     24x7
    contact_groups          admins
}
define service {
    name                    generic-service
    check_period            24x7
    notification_period     24x7
    contact_groups          admins
    max_check_attempts      3
    check_interval          5
    retry_interval          1
    register                0
}
"""


def nagios_check(tmp: Path, objects: Path) -> subprocess.CompletedProcess:
    (tmp / "site.cfg").write_text(SITE)
    user = getpass.getuser()
    main = [f"log_file={tmp}/nagios.log", f"cfg_file={tmp}/site.cfg", f"cfg_file={objects}",
            f"status_file={tmp}/status.dat", f"lock_file={tmp}/nagios.lock",
            f"temp_file={tmp}/nagios.tmp", f"temp_path={tmp}", f"check_result_path={tmp}",
            f"state_retention_file={tmp}/retention.dat", f"command_file={tmp}/nagios.cmd",
            f"object_cache_file={tmp}/objects.cache",
            f"precached_object_file={tmp}/objects.precache",
            f"nagios_user={user}", f"nagios_group={user}",
            "illegal_macro_output_chars=`~$&|'\"<>"]
    (tmp / "nagios.cfg").write_text("\n".join(main) + "\n")
    return subprocess.run([NAGIOS, "-v", str(tmp / "nagios.cfg")], capture_output=True,
                          text=True, timeout=120)


def test_sample_objects_pass_nagios4_config_check(tmp_path):
    r = nagios_check(tmp_path, SAMPLE)
    assert r.returncode == 0, r.stdout[-2000:]
    assert re.search(r"Total Warnings:\s+0", r.stdout) and re.search(r"Total Errors:\s+0",
                                                                    r.stdout)
    assert re.search(r"Checked 5 services", r.stdout), r.stdout[-2000:]


def test_the_config_check_catches_a_broken_definition(tmp_path):
    broken = tmp_path / "broken.cfg"
    broken.write_text(SAMPLE.read_text().replace("check_command           check_fedcloud!",
                                                 "check_command           check_fedcluod!", 1))
    r = nagios_check(tmp_path, broken)
    assert r.returncode != 0 and "check_fedcluod" in r.stdout


def test_sample_names_real_checks_with_thresholds_in_order():
    text = SAMPLE.read_text()
    used = re.findall(r"check_command\s+check_fedcloud!(\w+)!", text)
    assert set(used) <= set(CHECKS) and {"services", "hypervisors", "capacity",
                                         "expiry"} <= set(used)
    for w, c in re.findall(r"--warning (\S+) --critical (\S+)", text):
        assert float(w) <= float(c)
