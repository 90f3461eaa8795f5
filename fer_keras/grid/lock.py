"""One lock file per run, so two workers never train the same run at the same time.

``flock`` locks belong to the open file and the kernel drops them when the holder
dies, so a killed worker never blocks a run (no timeouts to tune). On a cluster the
runs folder must be on a file system with working locks (local disks, NFSv4, Lustre
and GPFS with locking enabled). The file itself stays: deleting it would let a waiting
worker and a new one lock two different files of the same name. It names its last
holder, so a run whose status still says "running" after its worker was killed
(SIGKILL, a lost node) can be told apart from one that is running: see
:meth:`RunLock.holder_alive`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ".lock"


class RunLock:
    """Non-blocking exclusive lock on ``run_dir/.lock``; use as a context manager."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True when this process now holds the lock, False when another one does."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _info(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def holder(self) -> str:
        """Who holds (or last held) the lock, for messages."""
        info = self._info()
        if not info:
            return "unknown"
        return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"

    def holder_alive(self) -> bool:
        """Whether the process the lock file names still holds it.

        On this host: whether that pid is alive (asking the kernel, not the lock: a probe of the
        lock could make a worker starting at that instant skip the run). On another host: a
        non-blocking shared probe of the lock, which is the only view from here.
        """
        info = self._info()
        if not info:
            return False
        if info.get("host") == socket.gethostname():
            return _pid_alive(int(info.get("pid", 0)))
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's lock
        return False

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
