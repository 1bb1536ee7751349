"""The HTTP endpoint of an SNS topic's `http` subscription, in the AWS emulator's host:
moto 5.2.5 auto-confirms the subscription and POSTs each notification synchronously
during Publish. The scaler's and the streams' alert tests read what arrived."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler

from . import infra
from .nsbind import listen_in


class SnsSink:
    """The HTTP endpoint of the topic's subscription: keeps every notification. Listens in
    the emulator's host, on its loopback (the emulator is what delivers)."""

    def __init__(self, netns: str):
        self.messages: list[dict] = []
        self.cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink.cond:
                    sink.messages.append(json.loads(body))
                    sink.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = infra._Server.on(listen_in(netns, "127.0.0.1"), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sns"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notifications(self) -> list[dict]:
        with self.cond:
            return [m for m in self.messages if m.get("Type") == "Notification"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
