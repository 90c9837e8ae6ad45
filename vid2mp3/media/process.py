"""Running ffmpeg/ffprobe: one child-process runner for every call the media layer makes.

Every child is registered with ``vid2mp3.shutdown`` for its lifetime, so a stop request can end
it, and its end is judged here first: a child stopped by us or by a signal is interrupted work
(``WorkInterrupted``, handed back to the broker), never a verdict on the file it was reading.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO

from vid2mp3 import shutdown
from vid2mp3.errors import ConfigError, ServiceFault, TransientError

_STDERR_TAIL = 50
# ffmpeg's own lines are short; the cap only matters for hostile metadata echoed back.
_MAX_LINE = 4096
_MAX_KEPT_LINES = 256

# ffmpeg catches SIGTERM/SIGINT, finishes the output it was writing and exits 255; it logs why
# only at the info level, which conversions run below. 255 with nothing on stderr is therefore
# a signal, not an error (ffmpeg says what went wrong when it fails on its own).
_FFMPEG_SIGNALLED = 255
# Anchored: metadata is echoed indented after "key : ", so a title cannot forge this line.
_RECEIVED_SIGNAL_RE = re.compile(r"^Exiting normally, received signal (?P<number>\d+)\.")
# The host, not the binary, is at fault when these stop a child from starting.
_HOST_ERRNOS = frozenset({errno.ENOMEM, errno.EAGAIN, errno.EMFILE, errno.ENFILE})


class Child:
    """A child process whose stderr is drained by a thread into a bounded tail.

    Draining in a thread means neither pipe can fill up and block ffmpeg while we read the other.
    Use as a context manager: leaving the block kills a child that is still running, reaps it
    and unregisters it from the shutdown registry.

    Args:
        argv: the command; never run through a shell.
        keep: when given, stderr lines it accepts are also kept in ``kept`` (up to a bound),
            for reports longer than the tail.
        capture_stdout: read stdout through ``stdout_lines``/``read_stdout``; when false it goes
            to /dev/null, so ``wait`` can time out without anyone draining it.

    Raises:
        ConfigError: the binary cannot be run (check FFMPEG_BINARY).
        ServiceFault: the host could not start a process (out of memory or process slots).
    """

    def __init__(
        self,
        argv: list[str],
        *,
        keep: Callable[[str], bool] | None = None,
        capture_stdout: bool = True,
    ) -> None:
        self.tail: deque[str] = deque(maxlen=_STDERR_TAIL)
        self.kept: list[str] = []
        self.tool = "ffprobe" if "ffprobe" in os.path.basename(argv[0]) else "ffmpeg"
        self._keep = keep
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            if exc.errno in _HOST_ERRNOS:
                raise ServiceFault(
                    f"the service could not start {self.tool} ({exc.strerror}); it will try again"
                ) from exc
            raise ConfigError(f"cannot run {argv[0]!r} (check FFMPEG_BINARY): {exc}") from exc
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(shutdown.tracked(self.proc))
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in _lines(self.proc.stderr):
            if not line.strip():
                continue
            self.tail.append(line)
            if self._keep is not None and len(self.kept) < _MAX_KEPT_LINES and self._keep(line):
                self.kept.append(line)

    def stdout_lines(self) -> Iterator[str]:
        """Stdout, line by line, until the child closes it."""
        assert self.proc.stdout is not None
        return _lines(self.proc.stdout)

    def read_stdout(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of stdout (fewer only at its end)."""
        assert self.proc.stdout is not None
        return self.proc.stdout.read(limit)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit and for its stderr to be read to the end.

        Args:
            timeout: seconds to wait; None waits as long as it takes.

        Returns:
            The exit code of a child that ran to its end (0 or an error of its own).

        Raises:
            WorkInterrupted: the child was stopped by our shutdown or by a signal.
            TransientError: ``timeout`` passed first; the child has been killed.
        """
        try:
            returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise TransientError(
                f"{self.tool} did not finish within {timeout:g} s; it will be tried again"
            ) from None
        self._reader.join()
        self._raise_if_interrupted(returncode)
        return returncode

    def _raise_if_interrupted(self, returncode: int) -> None:
        if returncode == 0:
            return  # it finished its work before any signal could matter
        if shutdown.stopped_by_us(self.proc):
            raise shutdown.WorkInterrupted(
                f"the worker stopped before {self.tool} finished; the job is handed back"
            )
        number: int | None = -returncode if returncode < 0 else None
        if number is None and returncode == _FFMPEG_SIGNALLED:
            said = (_RECEIVED_SIGNAL_RE.match(line) for line in self.tail)
            found = next((m for m in said if m), None)
            if found is not None:
                number = int(found.group("number"))
            elif not self.tail:
                raise shutdown.WorkInterrupted(
                    f"{self.tool} was stopped by a signal; the job is handed back"
                )
        if number is not None:
            raise shutdown.WorkInterrupted(
                f"{self.tool} was stopped by signal {_signal_name(number)}; the job is handed back"
            )

    def close(self) -> None:
        """Kill the child if it still runs, reap it, close its pipes; safe to call twice."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self._stack.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _lines(pipe: IO[bytes]) -> Iterator[str]:
    # Split on b"\n" only: str.splitlines() would also split on U+2028, U+0085 ... which a file's
    # metadata can carry (ffmpeg masks only C0 controls), letting it forge lines in the report.
    while True:
        raw = pipe.readline(_MAX_LINE)
        if not raw:
            return
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")
