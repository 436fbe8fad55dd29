"""What image-create checks before anything reaches Glance: CHECKSUM files, OpenPGP
signatures (real gpgv, a throw-away key), qemu-img (real images), the streamed download
(a real HTTP server on loopback)."""
from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from fedcloud_lib.errors import CheckFailed, ConfigError, ParameterError, ServiceError
from fedcloud_lib.image import checksum as cks
from fedcloud_lib.image import diskimage, fetch, signature
from tests.fakes.images import FileServer, ThrowawayKey, make_qcow2, make_raw, sha256

pytestmark = pytest.mark.unit

A, B = "a" * 64, "0123456789abcdef" * 4
FEDORA = f"""-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

# Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2: 536150016 bytes
SHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = {B.upper()}
# Fedora-Cloud-Base-Generic-41-1.4.x86_64.raw.xz: 412000000 bytes
SHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.raw.xz) = {A}
SHA512 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = {"f" * 128}
- # dash-escaped comment line
-----BEGIN PGP SIGNATURE-----

iHUEARYIAB0WIQ...
-----END PGP SIGNATURE-----
"""


# --------------------------------------------------------------------------- CHECKSUM

def test_fedora_clearsigned_checksum_file():
    entries = cks.parse(FEDORA)
    assert entries == {"Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2": B,
                       "Fedora-Cloud-Base-Generic-41-1.4.x86_64.raw.xz": A}
    assert cks.lookup(entries, "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2") == B


def test_gnu_sha256sum_format():
    assert cks.parse(f"{A}  disk.qcow2\n{B} *other.raw\n") == {"disk.qcow2": A, "other.raw": B}


def test_file_absent_from_the_checksum_file_is_named():
    with pytest.raises(ParameterError) as e:
        cks.lookup(cks.parse(FEDORA), "Fedora-Cloud-Base-Generic-42-1.1.x86_64.qcow2")
    msg = str(e.value)
    assert "has no sha256 for 'Fedora-Cloud-Base-Generic-42-1.1.x86_64.qcow2'" in msg
    assert "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2" in msg and e.value.exit_code == 2


@pytest.mark.parametrize("text, expected", [
    ("<html><body>Not Found</body></html>\n", "is not a CHECKSUM file"),
    ("# only comments\n\n", "holds no sha256 line"),
    (f"SHA256 (x.qcow2) = {A}\nSHA256 (x.qcow2) = {B}\n", "two different sha256 for 'x.qcow2'"),
    (f"SHA256 (x.qcow2) = {A[:40]}\n", "is not a CHECKSUM file"),
])
def test_malformed_checksum_files(text, expected):
    with pytest.raises(ParameterError) as e:
        cks.parse(text)
    assert expected in str(e.value)


def test_is_sha256():
    assert cks.is_sha256(A) and cks.is_sha256(B.upper())
    assert not cks.is_sha256(A[:63]) and not cks.is_sha256("g" * 64) and not cks.is_sha256("")


# --------------------------------------------------------------------------- signatures

@pytest.fixture(scope="module")
def key(tmp_path_factory):
    k = ThrowawayKey(tmp_path_factory.mktemp("gnupg") / "home")
    yield k
    k.close()


def test_clearsigned_checksum_gives_only_the_signed_text(tmp_path, key):
    sums = tmp_path / "CHECKSUM"
    sums.write_text(f"SHA256 (good.qcow2) = {A}\n")
    signed = key.clearsign(sums)
    # text added after the signature block is not signed and must not be read
    signed.write_text(signed.read_text() + f"SHA256 (evil.qcow2) = {B}\n")
    check, text = signature.verify(signed, keyring_name="test",
                                   keyring_path=key.keyring(tmp_path / "ring.gpg"),
                                   what="CHECKSUM")
    assert check.fingerprint == key.fingerprint and "signer@example.test" in check.signer
    assert cks.parse(text) == {"good.qcow2": A}


def test_armored_keyring_and_detached_signature(tmp_path, key):
    data = tmp_path / "disk.raw"
    data.write_bytes(os.urandom(4096))
    sig = key.detach_sign(data)
    check, text = signature.verify(sig, data=data, keyring_name="test",
                                   keyring_path=key.keyring(tmp_path / "ring.asc", armor=True),
                                   what="image disk.raw")
    assert text is None and check.key_id == key.fingerprint[-16:]


def test_bad_signature_names_the_key(tmp_path, key):
    sums = tmp_path / "CHECKSUM"
    sums.write_text(f"SHA256 (good.qcow2) = {A}\n")
    signed = key.clearsign(sums)
    signed.write_text(signed.read_text().replace(A, B))
    with pytest.raises(CheckFailed) as e:
        signature.verify(signed, keyring_name="test", keyring_path=key.keyring(
            tmp_path / "ring.gpg"), what="CHECKSUM file x")
    msg = str(e.value)
    assert "BAD signature on CHECKSUM file x" in msg and key.fingerprint[-16:] in msg
    assert e.value.exit_code == 1


def test_signature_by_a_key_outside_the_keyring(tmp_path, key):
    other = ThrowawayKey(tmp_path / "other", uid="someone else <else@example.test>")
    try:
        data = tmp_path / "disk.raw"
        data.write_bytes(b"x" * 100)
        sig = other.detach_sign(data)
        with pytest.raises(CheckFailed) as e:
            signature.verify(sig, data=data, keyring_name="fedora",
                             keyring_path=key.keyring(tmp_path / "ring.gpg"), what="image")
        assert f"signed by key {other.fingerprint}, which is not in keyring fedora" in str(e.value)
    finally:
        other.close()


def test_not_a_signature_and_missing_keyring(tmp_path, key):
    text = tmp_path / "CHECKSUM"
    text.write_text(f"SHA256 (x) = {A}\n")
    with pytest.raises(ParameterError) as e:
        signature.verify(text, keyring_name="t", keyring_path=key.keyring(tmp_path / "r.gpg"),
                         what="CHECKSUM")
    assert "no OpenPGP signature found" in str(e.value)
    with pytest.raises(ConfigError) as e:
        signature.verify(text, keyring_name="fedora", keyring_path=tmp_path / "nope.gpg",
                         what="CHECKSUM")
    assert "images.keyrings.fedora" in str(e.value) and "does not exist" in str(e.value)


# --------------------------------------------------------------------------- qemu-img

def test_qcow2_is_inspected_and_accepted(tmp_path):
    img = make_qcow2(tmp_path / "a.qcow2", size_mb=64)
    info = diskimage.inspect(img)
    assert info.format == "qcow2" and info.virtual_size == 64 << 20 and not info.backing_file
    diskimage.check(info, img, formats=("qcow2",), min_disk_gb=1, profile="qa")


def test_raw_disk_with_partition_table_is_accepted(tmp_path):
    img = make_raw(tmp_path / "a.raw", size_mb=4)
    info = diskimage.inspect(img)
    assert info.format == "raw"
    diskimage.check(info, img, formats=("qcow2", "raw"), min_disk_gb=1, profile="qa")


@pytest.mark.parametrize("kind, expected", [
    ("text", "not a disk image: qemu-img sees only raw bytes"),
    ("html", "not a disk image"),
    ("big", "virtual size 2.00 GiB exceeds the profile's min_disk (1 GiB)"),
    ("backing", "has a backing file"),
    ("format", "its format is raw; profile qa takes qcow2"),
])
def test_what_is_not_a_usable_disk_image_is_refused(tmp_path, kind, expected):
    p = tmp_path / "x"
    if kind == "text":
        p.write_text("just some text\n" * 1000)
    elif kind == "html":
        p.write_text("<html><body>404 Not Found</body></html>\n")
    elif kind == "big":
        subprocess.run(["qemu-img", "create", "-f", "qcow2", str(p), "2G"], check=True,
                       capture_output=True)
    elif kind == "backing":
        base = make_qcow2(tmp_path / "base.qcow2", 16, 1)
        subprocess.run(["qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", str(base),
                        str(p)], check=True, capture_output=True)
    else:
        make_raw(p, 4)
    formats = ("qcow2",) if kind == "format" else ("qcow2", "raw")
    with pytest.raises(ParameterError) as e:
        diskimage.check(diskimage.inspect(p), p, formats=formats, min_disk_gb=1, profile="qa")
    assert expected in str(e.value) and e.value.exit_code == 2


# --------------------------------------------------------------------------- download

def test_download_streams_hashes_and_removes_its_work_file(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    img = make_qcow2(served / "disk.qcow2", 32, 3)
    work = tmp_path / "work"
    with FileServer(served) as srv:
        assert fetch.probe(srv.url("disk.qcow2")) == img.stat().st_size
        d = fetch.download(srv.url("disk.qcow2"), work, sha256=sha256(img), algos=["sha512"],
                           max_bytes=1 << 30, show=False)
    assert d.sha256 == sha256(img) and d.size == img.stat().st_size and d.owned
    assert d.digests["sha512"] == hashlib.sha512(img.read_bytes()).hexdigest()
    assert d.path.parent == work and d.path.read_bytes() == img.read_bytes()
    d.remove()
    assert list(work.iterdir()) == []


def test_local_source_is_hashed_in_place(tmp_path):
    img = make_raw(tmp_path / "disk.raw", 4)
    d = fetch.download(str(img), tmp_path / "work", sha256=sha256(img), max_bytes=1 << 30,
                       show=False)
    assert d.path == img and not d.owned and d.sha256 == sha256(img)
    d.remove()
    assert img.exists()  # the operator's own file is never removed


def test_unreachable_and_missing_sources_are_input_errors(tmp_path):
    with FileServer(tmp_path) as srv:
        with pytest.raises(ParameterError) as e:
            fetch.probe(srv.url("nope.qcow2"))
        assert "answered HTTP 404" in str(e.value)
        port = srv.httpd.server_address[1]
    with pytest.raises(ParameterError) as e:  # the server is gone: connection refused
        fetch.download(f"http://127.0.0.1:{port}/x.qcow2", tmp_path, sha256=A, max_bytes=10,
                       show=False)
    assert "is unreachable" in str(e.value) and e.value.exit_code == 2


def test_a_body_beyond_the_profile_is_cut_off(tmp_path):
    (tmp_path / "big.raw").write_bytes(os.urandom(3 << 20))
    with FileServer(tmp_path) as srv, pytest.raises(ParameterError) as e:
        fetch.download(srv.url("big.raw"), tmp_path / "work", sha256=A, max_bytes=1 << 20,
                       show=False)
    assert "more than the profile's min_disk allows" in str(e.value)
    assert list((tmp_path / "work").glob("*.part")) == []


def test_partials_of_dead_processes_are_swept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"fedcloud-image-{'0' * 16}.{dead.pid}.part"
    mine = tmp_path / f"fedcloud-image-{'1' * 16}.{os.getpid()}.part"
    stale.write_bytes(b"x")
    mine.write_bytes(b"y")
    assert fetch.sweep_partials(tmp_path) == [stale]
    assert mine.exists() and not stale.exists()


def test_source_name_of_urls_and_paths():
    assert fetch.source_name("https://h/p/Fedora%2041.qcow2") == "Fedora 41.qcow2"
    assert fetch.source_name("/srv/images/x.raw") == "x.raw"


def test_a_broken_off_download_is_a_service_error(tmp_path):
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with pytest.raises(ServiceError) as e:
        fetch.download(f"http://127.0.0.1:{srv.getsockname()[1]}/x.raw", tmp_path, sha256=A,
                       max_bytes=1 << 30, show=False)
    srv.close()
    assert "broke off after" in str(e.value) and e.value.exit_code == 4
    assert list(tmp_path.glob("*.part")) == []


# --------------------------------------------------------------------------- the source

@pytest.fixture
def site_with_key(tmp_path, key):
    from dataclasses import replace

    from fedcloud_lib.site import policy as pol

    site = pol.load(pol.DEFAULT_POLICY_PATH)
    ring = str(key.keyring(tmp_path / "ring.gpg"))
    return replace(site, images=replace(site.images, keyrings={"fedora": ring}))


def _prepare(site, **kw):
    from fedcloud_lib.image import request

    return request.prepare(site, profile="qa", version="1", **kw)


def test_source_resolved_from_a_signed_checksum_file(tmp_path, key, site_with_key):
    from fedcloud_lib.image.facts import resolve_source

    img = make_qcow2(tmp_path / "disk.qcow2", 16, 1)
    sums = tmp_path / "CHECKSUM"
    sums.write_text(f"SHA256 (disk.qcow2) = {sha256(img)}\nSHA256 (other.raw) = {A}\n")
    key.detach_sign(sums, tmp_path / "CHECKSUM.sig")
    with FileServer(tmp_path) as srv:
        src = resolve_source(_prepare(site_with_key, source=srv.url("disk.qcow2"),
                                      checksum=srv.url("CHECKSUM"),
                                      signature=srv.url("CHECKSUM.sig")))
    assert src.sha256 == sha256(img) and src.size == img.stat().st_size
    assert src.checksum_signature.fingerprint == key.fingerprint
    assert src.checksum_from.endswith("/CHECKSUM") and src.file_name == "disk.qcow2"


@pytest.mark.parametrize("case, error, code, text", [
    ("unreachable", ParameterError, 2, "source: the image http://127.0.0.1:"),
    ("absent", ParameterError, 2, "has no sha256 for 'disk.qcow2'; it lists 'other.raw'"),
    ("badsig", CheckFailed, 1, "BAD signature on CHECKSUM file"),
    ("notclearsigned", ParameterError, 2, "'clearsigned', but CHECKSUM file"),
    ("nosignature", ParameterError, 2, "signature: the signature http://127.0.0.1:"),
])
def test_bad_sources_are_refused_before_any_cloud_call(tmp_path, key, site_with_key, case,
                                                       error, code, text):
    from fedcloud_lib.image.facts import resolve_source

    img = make_qcow2(tmp_path / "disk.qcow2", 16, 1)
    sums = tmp_path / "CHECKSUM"
    sums.write_text(f"SHA256 ({'other.raw' if case == 'absent' else 'disk.qcow2'}) = "
                    f"{sha256(img)}\n")
    signed = key.clearsign(sums, tmp_path / "CHECKSUM.asc")
    signed.write_text(signed.read_text().replace(sha256(img), B))  # tampered after signing
    with FileServer(tmp_path) as srv:
        kw = dict(source=srv.url("disk.qcow2"), checksum=srv.url("CHECKSUM"))
        if case == "badsig":
            kw.update(checksum=srv.url("CHECKSUM.asc"), signature="clearsigned")
        elif case == "notclearsigned":
            kw.update(signature="clearsigned")
        elif case == "nosignature":
            kw.update(checksum=sha256(img), signature=srv.url("disk.qcow2.sig"))
        req = _prepare(site_with_key, **kw)
        if case == "unreachable":
            srv.httpd.server_close()  # nothing listens any more
            srv.httpd.shutdown()
        with pytest.raises(error) as e:
            resolve_source(req)
    assert text in str(e.value) and e.value.exit_code == code, str(e.value)
    if case == "badsig":
        assert key.fingerprint[-16:] in str(e.value)


def test_transfer_progress_is_a_few_lines_counted_in_mib(tmp_path, capsys, monkeypatch):
    (tmp_path / "disk.raw").write_bytes(os.urandom(5 * fetch.MiB + 123))
    monkeypatch.setattr(fetch.Meter, "EVERY_S", 0.0)  # report at every chunk
    with FileServer(tmp_path) as srv:
        fetch.download(srv.url("disk.raw"), tmp_path / "work", sha256=A, max_bytes=1 << 30)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "download disk.raw: started (6 to do)"
    assert lines[-1].startswith("download disk.raw: done (6/6)")
    assert any(line.startswith("download disk.raw: 5/6 5 MiB") for line in lines)
    assert len(lines) <= 8
    monkeypatch.setattr(fetch.Meter, "EVERY_S", 3600.0)  # a slow reporter: start and end only
    fetch.hash_file(tmp_path / "disk.raw", desc="verify disk.raw")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("verify disk.raw: started") and len(lines) == 3
    assert lines[-1].startswith("verify disk.raw: done (6/6)")
