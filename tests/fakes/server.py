"""A threaded HTTP server on a free localhost port that routes requests to a Python object."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Call(dict):
    """One request received: method, path, query, headers, json / form body."""


class FakeServer:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()  # headers and body go out as separate writes: don't let Nagle delay them
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _any(self):
                split = urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                ctype = self.headers.get("Content-Type", "")
                body: object = None
                if raw:
                    if "json" in ctype:
                        body = json.loads(raw)
                    elif "x-www-form-urlencoded" in ctype:
                        body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    else:
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            body = raw.decode("utf-8", "replace")
                call = Call(method=self.command, path=split.path, query={k: v[0] for k, v in parse_qs(split.query).items()},
                            headers={k.lower(): v for k, v in self.headers.items()}, body=body)
                with owner._lock:
                    owner.calls.append(call)
                status, payload, headers = owner.handle(call)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def handle(self, call: Call) -> tuple[int, object, dict | None]:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> "FakeServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
