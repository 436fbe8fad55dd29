"""A small Glance v2 image API on 127.0.0.1 for unit tests of image streaming.

Enough of the API for openstacksdk's image proxy to create, read, patch, delete, upload
(``PUT .../file``, chunked or not) and download (``GET .../file``, streamed) images.  It
hashes uploads as Glance does (md5 ``checksum``, ``os_hash_algo``/``os_hash_value``) while
they arrive and keeps their bytes only when asked (``keep_data``), so large transfers stay
out of the test's memory; a source image's content can be generated on the fly.
``corrupt_uploads`` flips one received byte (a store that damages data).
"""
from __future__ import annotations

import hashlib
import json
import random
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openstack

BLOCK = 1024 * 1024


def generated(size: int, seed: int = 7) -> Iterator[bytes]:
    """Deterministic pseudo-random content of ``size`` bytes, one block at a time."""
    rnd = random.Random(seed)
    block = rnd.randbytes(BLOCK)
    sent, n = 0, 0
    while sent < size:
        piece = block[n % 251:] + block[:n % 251]
        piece = piece[: size - sent]
        sent += len(piece)
        n += 1
        yield piece


class FakeGlance:
    def __init__(self, *, keep_data: bool = True, hash_algo: str = "sha512") -> None:
        self.images: dict[str, dict[str, Any]] = {}
        self.data: dict[str, bytes] = {}
        self.generators: dict[str, tuple[int, int]] = {}
        self.keep_data = keep_data
        self.hash_algo = hash_algo
        self.corrupt_uploads = False
        self.cut_downloads_at: int | None = None  # bytes sent before the connection drops
        self.upload_headers: list[dict[str, str]] = []
        self.deleted: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _json(self, code: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body_chunks(self) -> Iterator[bytes]:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return
                        left = size
                        while left:
                            piece = self.rfile.read(min(left, BLOCK))
                            left -= len(piece)
                            yield piece
                        self.rfile.readline()
                left = int(self.headers.get("Content-Length") or 0)
                while left:
                    piece = self.rfile.read(min(left, BLOCK))
                    left -= len(piece)
                    yield piece

            def _image_id(self) -> str | None:
                parts = self.path.split("?")[0].strip("/").split("/")
                return parts[2] if len(parts) >= 3 and parts[:2] == ["v2", "images"] else None

            def do_GET(self) -> None:
                path = self.path.split("?")[0].rstrip("/")
                if path in ("", "/v2"):
                    base = f"http://127.0.0.1:{self.server.server_address[1]}"
                    return self._json(200, {"versions": [{"id": "v2.16", "status": "CURRENT",
                                                          "links": [{"rel": "self",
                                                                     "href": base + "/v2/"}]}]})
                iid = self._image_id()
                img = outer.images.get(iid or "")
                if img is None:
                    return self._json(404, {"message": "no such image"})
                if path.endswith("/file"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(img["size"]))
                    self.end_headers()
                    sent = 0
                    for chunk in outer.content(iid):
                        if outer.cut_downloads_at is not None:
                            chunk = chunk[: max(0, outer.cut_downloads_at - sent)]
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        if outer.cut_downloads_at is not None and sent >= outer.cut_downloads_at:
                            self.close_connection = True
                            self.wfile.flush()
                            self.connection.shutdown(2)
                            return None
                    if sent < img["size"]:  # promised more than it had: the connection drops
                        self.close_connection = True
                        self.wfile.flush()
                        self.connection.shutdown(2)
                    return None
                return self._json(200, img)

            def do_POST(self) -> None:
                body = json.loads(b"".join(self._body_chunks()) or b"{}")
                iid = str(uuid.uuid4())
                img = {"id": iid, "status": "queued", "size": None, "checksum": None,
                       "os_hash_algo": None, "os_hash_value": None, "visibility": "private",
                       "min_disk": 0, "min_ram": 0, **body}
                outer.images[iid] = img
                self._json(201, img)

            def do_PUT(self) -> None:
                iid = self._image_id()
                img = outer.images.get(iid or "")
                if img is None:
                    return self._json(404, {"message": "no such image"})
                outer.upload_headers.append(dict(self.headers))
                img["status"] = "saving"
                md5, h, n = hashlib.md5(), hashlib.new(outer.hash_algo), 0
                kept = bytearray() if outer.keep_data else None
                first = True
                for piece in self._body_chunks():
                    if first and outer.corrupt_uploads and piece:
                        piece = bytes([piece[0] ^ 0xFF]) + piece[1:]
                    first = False
                    md5.update(piece)
                    h.update(piece)
                    n += len(piece)
                    if kept is not None:
                        kept.extend(piece)
                img.update(status="active", size=n, checksum=md5.hexdigest(),
                           os_hash_algo=outer.hash_algo, os_hash_value=h.hexdigest())
                if kept is not None:
                    outer.data[iid] = bytes(kept)
                return self._json(204)

            def do_PATCH(self) -> None:
                iid = self._image_id()
                img = outer.images.get(iid or "")
                ops = json.loads(b"".join(self._body_chunks()) or b"[]")
                if img is None:
                    return self._json(404, {"message": "no such image"})
                for op in ops:
                    key = op["path"].lstrip("/")
                    if op["op"] in ("add", "replace"):
                        img[key] = op["value"]
                    elif op["op"] == "remove":
                        img.pop(key, None)
                return self._json(200, img)

            def do_DELETE(self) -> None:
                iid = self._image_id() or ""
                outer.deleted.append(iid)
                outer.images.pop(iid, None)
                outer.data.pop(iid, None)
                return self._json(204)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def connect(self) -> Any:
        """An openstacksdk connection whose image service is this fake (no Keystone)."""
        return openstack.connect(auth_type="none", auth={"endpoint": self.url},
                                 image_endpoint_override=self.url + "/v2/")

    def content(self, iid: str) -> Iterator[bytes]:
        if iid in self.generators:
            size, seed = self.generators[iid]
            yield from generated(size, seed)
        else:
            data = self.data.get(iid, b"")
            for i in range(0, len(data), BLOCK):
                yield data[i:i + BLOCK]

    def add_image(self, name: str, *, data: bytes | None = None, size: int = 0, seed: int = 7,
                  **props: Any) -> dict[str, Any]:
        """An active image holding ``data``, or ``size`` generated bytes."""
        iid = str(uuid.uuid4())
        md5, h = hashlib.md5(), hashlib.new(self.hash_algo)
        if data is not None:
            self.data[iid] = data
            chunks: Iterator[bytes] = iter([data])
            size = len(data)
        else:
            self.generators[iid] = (size, seed)
            chunks = generated(size, seed)
        for c in chunks:
            md5.update(c)
            h.update(c)
        img = {"id": iid, "name": name, "status": "active", "size": size,
               "checksum": md5.hexdigest(), "os_hash_algo": self.hash_algo,
               "os_hash_value": h.hexdigest(), "disk_format": "raw",
               "container_format": "bare", "visibility": "private", "min_disk": 0,
               "min_ram": 0, **props}
        self.images[iid] = img
        return img

    def __enter__(self) -> "FakeGlance":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
