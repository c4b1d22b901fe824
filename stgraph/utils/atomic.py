"""Atomic writes: a temp file (or directory) beside the target, made durable, then one rename.

Every file and directory is ``fsync``-ed before the rename that publishes it, and the parent
directory after it, so a crash or power loss leaves the previous complete target or the new one.
A directory replaces an existing one in a single ``renameat2(RENAME_EXCHANGE)`` where the kernel
and file system support it (Linux >= 3.15 on ext4, xfs, btrfs, tmpfs): the target name never
disappears. Elsewhere the old directory is first moved aside to ``.<name>.old-<pid>``; a crash
between the two renames leaves it there, and :func:`recover_dir` (called before every write of
the target, and when a run takes its directory) moves it back. Temp names carry the writer's
pid (``.<name>.<pid>.<random>.tmp``): the next write of the same target deletes those of dead
writers.

Files get one mode rule: ``0o666`` minus the user's umask (directories ``0o777`` minus it),
whatever the writer used (``mkstemp`` and safetensors create files with ``0o600``).

Test hook: with ``STGRAPH_FAULT=<point>`` (or ``<point>@<k>`` for its k-th hit in the process)
the process SIGKILLs itself at that point; the points are :data:`FAULT_POINTS`. With
``STGRAPH_RENAME_EXCHANGE=0`` the two-rename swap is used even where the exchange is supported.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: Where ``STGRAPH_FAULT`` can kill the process: just before a file's rename, before a
#: directory swap, between the two renames of the fallback swap, and after a swap (before the
#: old copy is deleted).
FAULT_POINTS = (
    "file:before_rename",
    "file:after_rename",
    "dir:before_swap",
    "dir:between_renames",
    "dir:after_swap",
)
_hits: dict[str, int] = {}
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def fault_point(name: str) -> None:
    """SIGKILL this process here when ``STGRAPH_FAULT`` names ``name`` (``name@k``: at the k-th
    time this point is reached); a no-op otherwise."""
    spec = os.environ.get("STGRAPH_FAULT")
    if not spec:
        return
    point, _, nth = spec.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode of every written file: ``0o666`` minus the umask."""
    return 0o666 & ~_umask()


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or a directory's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (``renameat2(RENAME_EXCHANGE)``); ``False`` if unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    res = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _set_modes_and_sync(root: Path) -> None:
    """Give every file and folder under ``root`` the mode rule, and fsync them bottom-up."""
    mask = _umask()
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            f = os.path.join(dirpath, name)
            os.chmod(f, 0o666 & ~mask)
            fsync_path(f)
        os.chmod(dirpath, 0o777 & ~mask)
        fsync_path(dirpath)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success it replaces ``target`` in one rename.

    If the body raises, the temp file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, file_mode())  # the body may have recreated it (safetensors: 0600)
        fsync_path(tmp_path)
        fault_point("file:before_rename")
        os.replace(tmp_path, target)
        fsync_path(target.parent)
        fault_point("file:after_rename")
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def _temp_prefix(target: Path) -> str:
    """Temp names carry the writer's pid, so a later writer can tell a dead one's leftovers."""
    return f".{target.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_temps(target: Path) -> None:
    """Delete the temp files and directories of ``target`` that a process no longer running
    left behind (a live writer's are kept: its write is still in progress)."""
    if not target.parent.is_dir():
        return
    head = f".{target.name}."
    for p in target.parent.glob(f"{glob.escape(head)}*.tmp"):
        pid = p.name[len(head) :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _moved_aside(target: Path) -> list[Path]:
    aside = target.parent.glob(f"{glob.escape('.' + target.name)}.old-*")
    return sorted(aside, key=lambda p: p.stat().st_mtime)


def recover_dir(target: str | os.PathLike) -> bool:
    """Put back a directory that a crash left moved aside (``.<name>.old-<pid>``) when
    ``target`` itself is missing; ``True`` if it did."""
    target = Path(target)
    if target.exists():
        return False
    aside = _moved_aside(target) if target.parent.is_dir() else []
    if not aside:
        return False
    os.replace(aside[-1], target)
    fsync_path(target.parent)
    return True


def remove_stale(folder: str | os.PathLike) -> list[str]:
    """Delete what interrupted atomic writes left in ``folder`` (``.*.tmp`` files and
    directories, ``.*.old-*`` copies), after :func:`recover_dir` put back any moved-aside
    directory; returns the names removed. Call it only while no other process writes there."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    for old in folder.glob(".*.old-*"):
        recover_dir(folder / old.name[1:].rsplit(".old-", 1)[0])
    removed = []
    for p in sorted([*folder.glob(".*.tmp"), *folder.glob(".*.old-*")]):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temp directory beside ``target``; on success it takes ``target``'s place.

    The new directory is complete and on disk before it is published; an existing ``target`` is
    swapped out in one step (or moved aside and back, see the module docstring), so a crash
    leaves either the old directory or the new one, never a half-written one and never none.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(target)
    _remove_dead_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        _set_modes_and_sync(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not target.exists():
        os.replace(tmp, target)
        fsync_path(target.parent)
        return
    fault_point("dir:before_swap")
    if os.environ.get("STGRAPH_RENAME_EXCHANGE") != "0" and _exchange(tmp, target):
        old = tmp  # the temp name now holds the previous directory
    else:
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        fault_point("dir:between_renames")
        os.replace(tmp, target)
    fsync_path(target.parent)
    fault_point("dir:after_swap")
    shutil.rmtree(old, ignore_errors=True)
