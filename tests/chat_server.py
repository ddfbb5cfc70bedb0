"""A real chat-completions server on loopback for the HTTP agent's tests (no mocks of urllib)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lmmr1_env import build_messages

TEXT_CHAT = build_messages("You solve math.", [{"text": "What is 7 + 5?"}])


class FakeChatServer:
    """A chat-completions server on 127.0.0.1 whose behaviour each test scripts.

    ``behave(attempt, body)`` returns ``(status, payload)``: a JSON-able payload, or raw ``bytes`` sent as they are
    (a body that is not UTF-8, say).
    """

    def __init__(self, behave):
        self.behave, self.requests, self.in_flight, self.max_in_flight = behave, [], 0, 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    attempt = len(server.requests)
                try:
                    status, payload = server.behave(attempt, body)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(text, finish="stop"):
    return 200, {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}]}
