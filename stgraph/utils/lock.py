"""One writer per run directory: a lock file holding the owner's pid.

:class:`RunLock` takes an exclusive ``flock`` on ``<dir>/.stgraph.lock`` and writes the owner's
pid, host, command and start time into it. The kernel releases the ``flock`` when the owner
exits however it exits (SIGKILL included), so a lock file left by a dead process is stale by
construction: the next run takes it over and says so. A second process while the owner is alive
is refused with :class:`~stgraph.errors.RunLockedError` naming the directory and the owner.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from stgraph.errors import RunLockedError

LOCK_FILE = ".stgraph.lock"
#: Locks this process holds (resolved directory -> depth), so a run nested in another on the
#: same directory (finetune through the trainer) does not refuse itself.
_held: dict[Path, int] = {}


def _read_owner(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        owner = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict) -> str:
    if not owner:
        return "another process"
    started = owner.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "?"
    return (
        f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} "
        f"({owner.get('command', '?')}, started {when})"
    )


class RunLock:
    """Exclusive ownership of a run directory for one process (a context manager).

    Args:
        run_dir: the directory (created if missing).
        command: what the owner is, for the message another process gets (e.g. ``"stgraph
            train"``).

    Raises:
        RunLockedError: on entering, when a live process holds the directory.
    """

    def __init__(self, run_dir: str | os.PathLike, command: str) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.command = command
        self._fd: int | None = None
        self._nested = False
        #: The owner a stale lock file named, when this lock took it over.
        self.took_over: dict | None = None

    def acquire(self) -> RunLock:
        """Take the lock (see the class docstring)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        key = self.run_dir.resolve()
        if key in _held:
            _held[key] += 1
            self._nested = True
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise RunLockedError(
                    f"{self.run_dir}: in use by {_describe(owner)}; one run writes a directory "
                    "at a time: wait for it to finish or choose another output.dir "
                    "(--set output.dir=...)"
                ) from None
            # the owner before us may have removed the file between our open and our flock
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            os.close(fd)
        previous = _read_owner(fd)
        if previous.get("pid") is not None and previous.get("pid") != os.getpid():
            self.took_over = previous
            print(
                f"{self.run_dir}: taking over the stale lock of {_describe(previous)}, "
                "which is no longer running",
                file=sys.stderr,
            )
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": time.time(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode("utf-8"), 0)
        os.fsync(fd)
        self._fd = fd
        _held[key] = 1
        return self

    def release(self) -> None:
        """Give the lock up and remove the lock file."""
        if self._nested:
            _held[self.run_dir.resolve()] -= 1
            self._nested = False
            return
        if self._fd is None:
            return
        _held.pop(self.run_dir.resolve(), None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


__all__ = ["LOCK_FILE", "RunLock"]
