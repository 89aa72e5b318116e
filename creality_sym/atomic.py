"""Replace a folder with new contents so that a complete copy is always in place.

:func:`write_tree` writes the new tree into a sibling staging folder
``<name>.tmp-<token>`` and then swaps it in:

- on Linux with ``renameat2(RENAME_EXCHANGE)`` (glibc >= 2.28, a file system
  that supports it): the two folders trade places in one system call, so
  ``target`` is never missing and is always either the old or the new tree;
- elsewhere with two renames (``target -> <name>.old-<token>``, staging
  ``-> target``); a run killed between them leaves no ``target`` but a
  complete ``<name>.old-<token>``, which the next run renames back before it
  starts.

Every writer of one ``target`` holds an exclusive ``flock`` on
``.<name>.lock`` beside it, so two runs never interleave: the second waits
(saying so on stderr) and gives up with :class:`TreeBusyError` after
``lock_timeout`` seconds. While it holds the lock a writer removes what
interrupted runs left behind (staging and old folders). Failures are raised
as :class:`TreeWriteError` (an ``OSError``) naming the folder.

The swap is atomic with respect to killed processes; nothing is fsynced, so
a power loss may still lose the newest tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

__all__ = [
    "TreeWriteError",
    "TreeBusyError",
    "write_tree",
    "tree_lock",
    "recover",
    "exchange",
    "lock_path",
    "LOCK_TIMEOUT",
]

#: seconds a writer waits for another one before giving up
LOCK_TIMEOUT = 600.0

#: ``renameat2`` flag: swap the two paths atomically
RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class TreeWriteError(OSError):
    """``target`` could not be written; the message names the folder and the cause."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code


class TreeBusyError(TreeWriteError):
    """Another run held the lock on ``target`` for longer than the timeout."""


def lock_path(target: Path) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` in the same folder."""
    return target.with_name(f".{target.name}.lock")


def _renameat2() -> Callable[..., int] | None:
    """libc's ``renameat2``, or ``None`` where there is none (not Linux/glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; ``False`` when the system cannot.

    Raises ``OSError`` for real failures (a path missing, permissions).
    """
    if _RENAMEAT2 is None:
        return False
    rc = _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # kernel or file system without RENAME_EXCHANGE
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _holder(lock: Path) -> str:
    try:
        pid = lock.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextlib.contextmanager
def tree_lock(
    target: Path, *, timeout: float = LOCK_TIMEOUT, stream: TextIO | None = None
) -> Iterator[Path]:
    """Hold the exclusive lock of ``target`` (waiting at most ``timeout`` seconds).

    Yields the lock file's path. Without ``fcntl`` (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield lock_path(target)
        return
    lock = lock_path(target)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise TreeWriteError(
            f"cannot create the lock file {lock}: {exc.strerror}", exc.errno
        ) from exc
    try:
        start = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited >= timeout:
                    raise TreeBusyError(
                        f"{target} is being written by another run{_holder(lock)}: "
                        f"gave up after waiting {waited:.0f} s for {lock}",
                        errno.EBUSY,
                    ) from None
                if not told:
                    print(
                        f"waiting for another run{_holder(lock)} writing {target} "
                        f"(lock {lock}; up to {timeout:.0f} s)",
                        file=stream or sys.stderr,
                        flush=True,
                    )
                    told = True
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        os.close(fd)  # releases the lock


def _leftovers(target: Path, kind: str) -> list[Path]:
    """Sibling folders ``<name>.<kind>-*``, newest first."""
    found = [p for p in target.parent.glob(f"{target.name}.{kind}-*") if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def recover(target: Path) -> list[str]:
    """Repair what an interrupted writer left; call it holding the lock.

    When ``target`` is missing, the newest ``<name>.old-*`` (a complete
    former tree) is renamed back to ``target``. Then every staging and old
    folder is removed. Returns one line per action.
    """
    actions = []
    old = _leftovers(target, "old")
    if not target.exists() and old:
        os.rename(old[0], target)
        actions.append(f"restored {target} from {old[0].name}")
        old = old[1:]
    for path in [*_leftovers(target, "tmp"), *old]:
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            actions.append(f"removed {path.name}")
    return actions


def _write_files(files: dict[str, str], folder: Path) -> None:
    folder.mkdir()
    for rel, text in files.items():
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts:
            raise ValueError(f"file name {rel!r} would leave the folder")
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())


def _swap(staging: Path, target: Path, token: str) -> None:
    """Put ``staging`` at ``target``; the old tree ends up at ``staging`` or removed."""
    if not target.exists():
        os.rename(staging, target)
        return
    if not target.is_dir() or target.is_symlink():
        raise TreeWriteError(f"{target} exists and is not a folder", errno.ENOTDIR)
    if exchange(staging, target):
        return
    old = target.with_name(f"{target.name}.old-{token}")
    os.rename(target, old)  # killed here: no target, but `old`, which recover() puts back
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_tree(
    files: dict[str, str],
    target: Path,
    *,
    lock_timeout: float = LOCK_TIMEOUT,
    stream: TextIO | None = None,
) -> None:
    """Replace the folder ``target`` by exactly ``files`` (``{relative path: text}``).

    At every moment ``target`` is a complete tree, the old or the new one (see
    the module docstring for the systems where a kill can leave it missing
    until the next run). ``lock_timeout``: seconds to wait for another
    writer; ``stream``: where the waiting message goes (default stderr).
    """
    target = Path(target)
    target = target.parent.resolve() / target.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TreeWriteError(f"cannot create {target.parent}: {exc.strerror}", exc.errno) from exc
    with tree_lock(target, timeout=lock_timeout, stream=stream):
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        staging = target.with_name(f"{target.name}.tmp-{token}")
        try:
            recover(target)
            _write_files(files, staging)
            _swap(staging, target, token)
        except OSError as exc:
            if isinstance(exc, TreeWriteError):
                raise
            where = exc.filename or target
            raise TreeWriteError(
                f"cannot write {target}: {exc.strerror or exc} ({where})", exc.errno
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
