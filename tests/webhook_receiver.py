"""A local HTTP receiver for webhook tests: records every POST and answers with the statuses it is given.

It also stands in for the lab's HTTP proxy (TESTHUB_WEBHOOK_PROXY): a proxied request arrives with the full
URL as its path, is recorded and answered here, and never goes further, so a test about addresses that must
be refused cannot reach them even if the check under test fails.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, statuses=(200,), *, location: str = ""):
        self.statuses = list(statuses)
        self.location = location  # sent with 3xx answers
        self.requests: list[tuple] = []  # (headers, body)
        self.paths: list[str] = []  # as requested: a path, or a full URL when used as a proxy
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.headers, body))  # case-insensitive, as HTTP headers are
                receiver.paths.append(self.path)
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_CONNECT(self):
                receiver.paths.append(f"CONNECT {self.path}")
                self.send_response(403)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.url = f"{self.base}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
