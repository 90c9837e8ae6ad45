"""One functions-framework process per function (``vid2mp3 up --processes``), kept running.

Each runs ``python -P -m vid2mp3.local.function_server --function NAME``
(functions-framework's app for ``functions/<name>/main.py``, with a graceful SIGTERM), as one
container per function does in production, in its own process group (so killing it takes its
ffmpeg along). Stopping sends SIGTERM to the server alone, as a platform does to a container:
its work gets the shutdown grace period and is handed back, then the group is killed. A process
that dies is started again on the same port, as a platform restarts a crashed container.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def free_ports(host: str, count: int) -> list[int]:
    """``count`` distinct free ports: every socket stays bound until all are chosen."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class FunctionProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class FunctionProcesses:
    """Start, watch and stop one server process per function.

    Args:
        names: the functions to run.
        host: the address they listen on (loopback: only the gateway talks to them).
        env: their environment (the parent's settings plus ``PUBLIC_URL``).
    """

    def __init__(
        self, names: Sequence[str], *, host: str = "127.0.0.1", env: Mapping[str, str]
    ) -> None:
        self.host = host
        self.env = dict(env)
        ports = free_ports(host, len(names))
        self.processes = {
            name: FunctionProcess(name, p) for name, p in zip(names, ports, strict=True)
        }
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def _spawn(self, proc: FunctionProcess) -> None:
        argv = [
            sys.executable,
            # Safe path: ``-m`` would put the cwd first on sys.path, and a cwd holding a
            # ``vid2mp3/`` folder (a checkout after ``pip install .``) would shadow the installed
            # package. The cwd itself stays: relative settings (VID2MP3_HOME, file:// URLs) must
            # mean the same folders here as in the gateway's process.
            "-P",
            "-m",
            "vid2mp3.local.function_server",
            "--function",
            proc.name,
            "--host",
            self.host,
            "--port",
            str(proc.port),
        ]
        proc.process = subprocess.Popen(
            argv, env=self.env, stdin=subprocess.DEVNULL, start_new_session=True
        )
        proc.started_at = time.monotonic()
        log.info(
            "function process started",
            extra={"function": proc.name, "pid": proc.pid, "port": proc.port},
        )

    def start(self) -> None:
        try:
            for proc in self.processes.values():
                self._spawn(proc)
        except BaseException:
            self.stop()
            raise
        self._watcher = threading.Thread(target=self._watch, name="processes", daemon=True)
        self._watcher.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every process accepts connections; raises ``TimeoutError`` naming the
        ones that do not."""
        deadline = time.monotonic() + timeout
        waiting = set(self.processes)
        while waiting and time.monotonic() < deadline:
            waiting = {n for n in waiting if not _listening(self.host, self.processes[n].port)}
            if waiting:
                time.sleep(0.1)
        if waiting:
            raise TimeoutError(f"function processes did not start: {', '.join(sorted(waiting))}")

    def _watch(self) -> None:
        while not self._stopping.wait(0.25):
            for proc in self.processes.values():
                if proc.process is None or proc.process.poll() is None:
                    continue
                code = proc.process.returncode
                # The group may still hold children (ffmpeg) of the dead server.
                self._signal_group(proc, signal.SIGKILL)
                # A process that dies at once would otherwise spin; back off a little.
                pause = 0.2 if time.monotonic() - proc.started_at > 10 else 2.0
                log.warning(
                    "function process exited; restarting it",
                    extra={"function": proc.name, "code": code, "pause": pause},
                )
                if self._stopping.wait(pause):
                    return
                proc.restarts += 1
                self._spawn(proc)

    def _signal_group(self, proc: FunctionProcess, sig: int) -> None:
        if proc.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.process.pid, sig)

    def terminate(self) -> None:
        """Stop restarting and send SIGTERM to every server (not its children: a server hands
        its work back in order within the shutdown grace period)."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(5.0)
        for proc in self.processes.values():
            if proc.process is not None and proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 5.0) -> None:
        """``terminate``, wait up to ``timeout`` seconds, then kill what is left of each
        process group (the ffmpeg of a server that did not stop in time)."""
        self.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            if proc.process is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.process.wait(max(0.1, deadline - time.monotonic()))
            self._signal_group(proc, signal.SIGKILL)
            proc.process.wait()
