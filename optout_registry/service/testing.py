"""Run the service in-process on a loopback port (tests, the bench, notebooks): ``with LiveServer(cfg) as srv:``.

The socket is bound before uvicorn starts (port 0, so parallel test workers never collide) and the server runs
in a daemon thread; leaving the block shuts it down and closes the registry.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from optout_registry.service.app import create_app
from optout_registry.service.state import ServiceConfig, ServiceState


class LiveServer:
    """The service on a loopback port for the length of a ``with`` block (``url``, ``port``, ``state``)."""

    def __init__(self, cfg: ServiceConfig, host: str = "127.0.0.1") -> None:
        self.app = create_app(cfg)
        self.state: ServiceState = self.app.state.service
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", proxy_headers=False, server_header=False)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()
