"""A threaded stdlib HTTP server on 127.0.0.1 (ephemeral port) with a route table."""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[dict[str, Any]], tuple[int, Any]]


class LocalServer:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def _do(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                form = ({k: v[0] for k, v in parse_qs(raw.decode()).items()}
                        if "form" in ctype else {})
                req = {"method": method, "path": url.path,
                       "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                       "headers": dict(self.headers), "form": form, "body": raw}
                outer.requests.append(req)
                for m, pat, fn in outer.routes:
                    match = pat.fullmatch(url.path)
                    if m == method and match:
                        req["match"] = match.groupdict()
                        status, body = fn(req)
                        break
                else:
                    status, body = 404, {"error": f"no route for {method} {url.path}"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._do("GET")

            def do_POST(self) -> None:
                self._do("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def route(self, method: str, pattern: str, fn: Handler) -> None:
        self.routes.append((method, re.compile(pattern), fn))

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "LocalServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
