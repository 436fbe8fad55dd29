"""mass-rebuild-burst, the request: package and skip lists, profile, template, durations —
every bad input refused (or warned about) before any cloud call."""
from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
import yaml

from fedcloud_lib.burst import request as breq
from fedcloud_lib.errors import ParameterError, PolicyError
from fedcloud_lib.site import policy as pol

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def policy() -> pol.Policy:
    return pol.load(pol.DEFAULT_POLICY_PATH)


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    k = tmp_path_factory.mktemp("key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    return k


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def prep(policy, key, tmp_path, packages="a\nb\nc\n", path=None, **kw):
    args = dict(ticket="mr42", packages=path or write(tmp_path, "pkgs.txt", packages),
                command="mock --rebuild {package}", ssh_key=str(key), now=NOW)
    args.update(kw)
    return breq.prepare(policy, **args)


def test_plain_list_with_comments(policy, key, tmp_path):
    r = prep(policy, key, tmp_path, "# mass rebuild\nbash\n\ngcc-c++  # the compiler\nkernel\n")
    assert [p.name for p in r.packages] == ["bash", "gcc-c++", "kernel"]
    assert all(p.source == "default" and p.expected_s == 600 for p in r.packages)
    assert r.profile.name == "builder" and r.flavor == "m1.builder" and r.image == "fedora-cloud-test"
    assert r.max_builders is None and r.build_timeout_s == 5 * 3600 and r.builder_lifetime_s == 86400
    assert r.ssh.public_key.startswith("ssh-ed25519 ") and r.warnings == ()


def test_csv_with_historical_durations(policy, key, tmp_path):
    p = write(tmp_path, "hist.csv", "package,duration_s\nkernel,4h\nbash,95\nnew-one,\n")
    r = prep(policy, key, tmp_path, path=p, default_duration="2m")
    got = {p.name: (p.expected_s, p.source) for p in r.packages}
    assert got == {"kernel": (14400, "history"), "bash": (95, "history"), "new-one": (120, "default")}


def test_csv_detected_by_its_header(tmp_path):
    p = Path(write(tmp_path, "list", "package,seconds\nbash,10\n"))
    pkgs, problems = breq.read_package_list(p, 600)
    assert problems == [] and pkgs[0].expected_s == 10


@pytest.mark.parametrize("text, message", [
    ("", "lists no package"),
    ("# only a comment\n\n", "lists no package"),
    ("bash\nzsh\nbash\n", "duplicate package: 'bash' (lines 1 and 3)"),
    ("bash\n../etc/passwd\n", "line 2: '../etc/passwd' is not a package name"),
    ("bash\n" + "x" * 500 + "\n", "... (500 characters) is not a package name"),
])
def test_bad_package_lists(policy, key, tmp_path, text, message):
    with pytest.raises(ParameterError) as e:
        prep(policy, key, tmp_path, text)
    assert message in str(e.value)


def test_csv_duplicates_and_bad_durations(policy, key, tmp_path):
    p = write(tmp_path, "h.csv", "package,duration_s\nbash,10\nbash,12\nzsh,soon\n")
    with pytest.raises(ParameterError) as e:
        prep(policy, key, tmp_path, path=p)
    text = str(e.value)
    assert "duplicate package: 'bash'" in text and "line 4: duration_s: 'soon' is not a duration" in text


def test_csv_without_package_column(policy, key, tmp_path):
    p = write(tmp_path, "h.csv", "name,duration_s\nbash,10\n")
    with pytest.raises(ParameterError, match="without a 'package' column"):
        prep(policy, key, tmp_path, path=p)


def test_missing_list_file(policy, key, tmp_path):
    with pytest.raises(ParameterError, match="packages: file '/nonexistent/list' does not exist"):
        prep(policy, key, tmp_path, path="/nonexistent/list")


def test_skip_list_skips_and_warns_about_unknown_names(policy, key, tmp_path):
    skip = write(tmp_path, "skip", "# PKG_SKIP_LIST\nb\nnot-there\n")
    r = prep(policy, key, tmp_path, skip_list=skip, skip=["c", "also-missing"])
    assert [p.name for p in r.packages] == ["a"] and sorted(r.skipped) == ["b", "c"]
    [warning] = r.warnings
    assert "2 package(s) not in the package list" in warning
    assert "not-there" in warning and "also-missing" in warning


def test_everything_skipped(policy, key, tmp_path):
    with pytest.raises(ParameterError, match="every package of the list is on the skip list"):
        prep(policy, key, tmp_path, "a\n", skip=["a"])


@pytest.mark.parametrize("template, message", [
    ("mock --rebuild {pkg}", "unknown placeholder {pkg}; allowed: {package}, {builder}, {workdir}"),
    ("run {package} {0}", "unknown placeholder {0}"),
    ("run {package} on {}", "unknown placeholder {}"),
    ("run {package!r}", "placeholder {package} takes no format or conversion"),
    ("run {package:>10}", "placeholder {package} takes no format or conversion"),
    ("run {package", "is not a valid template"),
    ("make -C {workdir}", "the command must name the package ({package})"),
    ("   ", "a build command is required"),
])
def test_bad_command_templates(policy, key, tmp_path, template, message):
    with pytest.raises(ParameterError) as e:
        prep(policy, key, tmp_path, command=template)
    assert message in str(e.value)


def test_literal_braces_are_fine():
    assert breq.check_template("awk '{{print $1}}' {package}.spec && echo {builder} {workdir}") == []


def test_profile_must_be_a_burst_profile(policy, key, tmp_path):
    with pytest.raises(PolicyError, match="profile: 'dev' is not a builder profile of the site "
                                          "policy; allowed: builder"):
        prep(policy, key, tmp_path, profile="dev")
    with pytest.raises(PolicyError, match="'nonesuch' is not a builder profile"):
        prep(policy, key, tmp_path, profile="nonesuch")


def test_flavor_and_image_from_the_profile(policy, key, tmp_path):
    with pytest.raises(PolicyError) as e:
        prep(policy, key, tmp_path, flavor="m1.tiny", image="rawhide")
    assert "flavor: 'm1.tiny' is not allowed for profile builder; allowed: m1.builder" in str(e.value)
    assert "image: 'rawhide' is not allowed" in str(e.value)


def test_max_builders(policy, key, tmp_path):
    assert prep(policy, key, tmp_path, max_builders="12").max_builders == 12
    assert prep(policy, key, tmp_path, max_builders="auto").max_builders is None
    with pytest.raises(PolicyError, match="max_builders: 31 is above the policy's burst ceiling of 30"):
        prep(policy, key, tmp_path, max_builders="31")
    for bad in ("0", "-3", "many"):
        with pytest.raises(ParameterError, match="max_builders: .* must be a number of builders"):
            prep(policy, key, tmp_path, max_builders=bad)


@pytest.mark.parametrize("value, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("5h", 18000),
                                            ("1h30m", 5400), ("1d", 86400), (45, 45), ("0.5s", 0.5)])
def test_durations(value, seconds):
    assert breq.parse_duration(value, "x") == seconds


@pytest.mark.parametrize("value", ["", "soon", "5 hours", "-3", "0", "1h-", True])
def test_bad_durations(value):
    with pytest.raises(ParameterError, match="^x: "):
        breq.parse_duration(value, "x")


def test_timeout_lifetime_and_deadline_rules(policy, key, tmp_path):
    with pytest.raises(PolicyError, match="build_timeout: '6h' is above the policy's ceiling"):
        prep(policy, key, tmp_path, build_timeout="6h")
    with pytest.raises(PolicyError, match="builder_lifetime: '25h' is beyond the builder lifetime"):
        prep(policy, key, tmp_path, builder_lifetime="25h")
    with pytest.raises(ParameterError, match="build_timeout: '2h' must be shorter than builder_lifetime"):
        prep(policy, key, tmp_path, build_timeout="2h", builder_lifetime="2h")
    with pytest.raises(ParameterError, match="deadline: '2020-01-01' is in the past"):
        prep(policy, key, tmp_path, deadline="2020-01-01")
    with pytest.raises(ParameterError, match="deadline: 'friday' is neither"):
        prep(policy, key, tmp_path, deadline="friday")
    r = prep(policy, key, tmp_path, deadline="48h")
    assert r.deadline == NOW + dt.timedelta(hours=48)
    r = prep(policy, key, tmp_path, deadline="2026-11-30T08:00")
    assert r.deadline == dt.datetime(2026, 11, 30, 8, tzinfo=dt.timezone.utc)


def test_ssh_settings(policy, key, tmp_path):
    with pytest.raises(ParameterError, match="ssh_key: '/nope' is not a readable private key"):
        prep(policy, key, tmp_path, ssh_key="/nope")
    with pytest.raises(ParameterError, match="ssh_address_map: '\\*' -> 'a b' is not"):
        prep(policy, key, tmp_path, ssh_address_map={"*": "a b"})
    r = prep(policy, key, tmp_path, ssh_address_map={"*": "127.0.0.1:2222"})
    assert r.ssh.address_map == (("*", "127.0.0.1:2222"),)
    assert "PRIVATE" not in yaml.safe_dump(r.as_dict())


def test_every_problem_at_once(policy, key, tmp_path):
    with pytest.raises(ParameterError) as e:
        prep(policy, key, tmp_path, "a\na\n", ticket="bad ticket!", command="x {nope}",
             build_timeout="never", workdir="relative/dir")
    assert len(e.value.problems) == 5
