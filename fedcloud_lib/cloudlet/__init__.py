"""Install, verify and operate a cloudlet (runbooks cloudlet-install and cloudlet-verify).

Host work is done by the ansible playbook in ``ansible/`` (run with ansible-runner);
cloud content and verification use openstacksdk; the local all-in-one's programs run
under supervisord (``fedcloud cloudlet start|stop|status``).
"""
from .content import ADMIN_CLOUD, CLOUDS_YAML, FLAVORS, PROJECTS, PROVIDER_NETWORK, TEST_IMAGE
from .install import Timer, ansible_timings, apply, facts, plan, setup_content
from .runner import PlaybookRun, run_playbook
from .settings import CloudletSettings, Host, settings_from_parameters
from .verify import Verifier, require_pass, verify

__all__ = [
    "ADMIN_CLOUD", "CLOUDS_YAML", "FLAVORS", "PROJECTS", "PROVIDER_NETWORK", "TEST_IMAGE",
    "Timer", "ansible_timings", "apply", "facts", "plan", "setup_content", "PlaybookRun", "run_playbook",
    "CloudletSettings", "Host", "settings_from_parameters", "Verifier", "require_pass", "verify",
]
