"""The service in a subprocess on a free loopback port, as a user starts it (`python -m infer serve`), and stopped
as Ctrl-C stops it: written once for the load test, the service benchmark and CI."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

# The checkout (or site-packages) holding `infer`, so that the subprocess imports this same code.
_PACKAGES = str(Path(__file__).resolve().parents[2])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerFailed(RuntimeError):
    """The server exited before it was ready, or never answered /health."""


class ServerProcess:
    """`with ServerProcess(["ARTIFACT", "--backend", "ort-cpu"]) as server: httpx.get(server.url + "/health")`.

    `args` are `python -m infer serve`'s own (without --port and --host: it listens on a free
    127.0.0.1 port). Entering waits until /health answers 200; leaving sends SIGINT and waits
    for the graceful shutdown (killed after `stop_timeout_s`).
    """

    def __init__(self, args: list[str], ready_timeout_s: float = 120.0, stop_timeout_s: float = 30.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "infer", "-q", "serve", *args, "--host", "127.0.0.1",
                        "--port", str(self.port)]
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> "ServerProcess":
        """Start the server and wait for /health; a server that exits or never answers is ServerFailed."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_PACKAGES, os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen(self.command, env=env)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"the server exited with code {self.proc.returncode}: {' '.join(self.command)}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ServerFailed(f"the server did not become ready in {self.ready_timeout_s:g} s: {' '.join(self.command)}")

    def stop(self) -> int | None:
        """SIGINT (uvicorn's graceful shutdown), then kill if it lingers; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
