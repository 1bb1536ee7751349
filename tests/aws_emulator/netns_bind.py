"""Listening sockets inside another network namespace, for servers that live in this
process: the emulator's Lambda Runtime API for a function in a VPC (server.py
run_lambda, POST /_emulator/function-hosts), and the e2e harness's own stand-ins
(tests/e2e/harness/nsbind.py re-exports this module; the emulator does not import
from tests/e2e, it stands alone).

A Lambda in a VPC reaches its Runtime API on its own loopback and AWS endpoints through
its subnet; so these servers must listen inside the function's namespace, not on this
process's 127.0.0.1. Linux keeps the network namespace per thread (setns(2) with
CLONE_NEWNET affects only the calling thread), and a socket stays in the namespace it
was created in: a short-lived thread joins the namespace, creates and binds the socket,
and exits; the server then serves it from any thread. Python 3.11 has no os.setns, hence
ctypes.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def listen_in(netns: str, address: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket bound to (address, port) inside `netns` (a name under /run/netns),
    listening; port 0 picks a free one."""
    result: dict = {}

    def join_and_bind() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(64)
            result["sock"] = sock
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = e

    t = threading.Thread(target=join_and_bind, name=f"bind-in-{netns}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


def serve_on(server_class, sock: socket.socket, handler):
    """A socketserver.TCPServer subclass (e.g. ThreadingHTTPServer) on `sock`, a socket
    already bound and listening (listen_in's), instead of one it binds itself."""
    server = server_class(sock.getsockname(), handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()
    server.server_name, server.server_port = server.server_address[:2]  # as server_bind sets
    return server
