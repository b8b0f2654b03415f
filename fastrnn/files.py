"""Files in and out: outputs written so that no reader, and no crash, ever sees half of one;
inputs read only when they are regular files.

Every file fastrnn writes (checkpoints, the metrics log, the loss picture) goes to a temporary
file in the same directory -- ``.NAME.PID-THREAD.tmp``, the writer's own -- is flushed to disk
and then renamed over NAME, so NAME is always either the old file or a new one whole.
"""

import errno
import os
import re
import stat
import threading
from pathlib import Path


def path_of(path, error=ValueError):
    """``path`` (a str, bytes or an os.PathLike) as a Path; ``error`` if it is none of them
    (pathlib's TypeError named no argument)."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise error(f"path must be a file name (a str or a pathlib.Path), got "
                    f"{type(path).__name__}")
    return Path(path)


def not_regular(path):
    """What ``path`` is when it exists but is not a regular file ("a directory", "a FIFO (named
    pipe)", "a character device", ...), else None. Reading such a thing can block forever (a
    FIFO) or never end (/dev/zero), so inputs are checked with this before they are read; a
    missing or unreadable path is left to the read to report."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return _kind(mode)


def _kind(mode):
    """``not_regular``'s words for a file of st_mode ``mode``."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def unwritable(path):
    """What ``path`` is when ``write_atomically`` would not replace it -- "a symbolic link (to
    ...)", "a directory", "a character device", ... -- else None (a regular file, or nothing)."""
    if os.path.islink(path):
        return f"a symbolic link (to {os.readlink(path)})"
    return not_regular(path)


def write_atomically(path, write):
    """Call ``write(f)`` on a binary file object, then replace ``path`` with what it wrote.
    What is not a regular file is an OSError, never replaced: a device such as /dev/null (as
    root, it became a checkpoint), a FIFO, a directory, or a symbolic link (renamed over, the
    link would become a file; followed, a write would leave the directory locked for it)."""
    path = Path(path)
    kind = unwritable(path)
    if kind:
        raise OSError(errno.EISDIR if kind == "a directory" else errno.EINVAL,
                      f"it is {kind}, not a regular file", str(path))
    # (a temporary per thread: two threads saving to one path shared one and wrote it at once,
    # a torn file that then replaced the checkpoint)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_native_id()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # (a read-only filesystem refuses even that: its error is not the one)
            pass
        if isinstance(e, OSError) and e.filename == str(tmp):  # (the file asked for is named,
            raise type(e)(e.errno, e.strerror, str(path)) from None  # not its temporary twin)
        raise
    _fsync_dir(path.parent)


LOCK = ".fastrnn.lock"


class Locked(Exception):
    """The directory is locked by another process (``args[0]``: its pid, or None if unknown)."""


def lock(directory):
    """An exclusive lock on ``directory`` (its file ``LOCK``) while the returned file stays
    open: a second process asking for it gets Locked. The system drops the lock when the
    holder closes the file or ends, however it ends (kill -9 included), so a stale lock file
    locks nothing. The holder may write its pid there (``claim``) and remove the file
    (``unlock``). The file is never followed if it is a symbolic link, and closing it writes
    nothing (it is unbuffered). None where the system has no ``fcntl`` (no lock taken); an
    OSError if the file cannot be opened or is not a regular file (a FIFO: its holder's pid
    would be waited for forever)."""
    try:
        import fcntl
    except ImportError:
        return None
    path = Path(directory) / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK |
                     getattr(os, "O_NOFOLLOW", 0), 0o644)
        kind = _kind(os.fstat(fd).st_mode)
        if kind:
            os.close(fd)
            raise OSError(errno.EINVAL, f"it is {kind}, not a regular file", str(path))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # (BlockingIOError: held elsewhere)
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip()
            finally:
                os.close(fd)
            raise Locked(pid(holder)) from None
        try:  # the file locked must still be the one at the path (not one its holder removed)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return os.fdopen(fd, "rb", buffering=0)
        except FileNotFoundError:
            pass
        os.close(fd)


def claim(f):
    """Write this process's pid into the lock file ``f`` it holds (``lock``), for the
    message of a process refused it; on a full disk the lock holds all the same."""
    if f is not None:
        try:
            os.ftruncate(f.fileno(), 0)
            os.pwrite(f.fileno(), f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass


def unlock(f, directory):
    """Remove the lock file while still holding its lock, then release it (``lock``)."""
    if f is not None:
        (Path(directory) / LOCK).unlink(missing_ok=True)
        f.close()


def remove_stale_temporaries(directory, names):
    """Delete the temporaries of the files ``names`` (``.NAME.PID-THREAD.tmp``,
    ``write_atomically``'s, or an earlier version's ``.NAME.PID.tmp``) left by writers that
    were killed mid-write (their pid is gone); nothing else."""
    for name in names:
        for tmp in Path(directory).glob(f".{name}.*.tmp"):
            middle = tmp.name[len(name) + 2:-len(".tmp")]
            writer = pid(re.sub("-[0-9]+$", "", middle))
            if writer is not None and writer != os.getpid() and not alive(writer):
                tmp.unlink(missing_ok=True)


def holder(directory):
    """The pid written in the directory's lock file (``claim``), or None: none, unreadable, or
    not a regular file (a FIFO is not read)."""
    path = Path(directory) / LOCK
    if not_regular(path):
        return None
    try:
        with open(path, "rb") as f:
            return pid(f.read(32).decode(errors="replace").strip())
    except OSError:
        return None


def pid(text):
    """The process id ``text`` is (ASCII digits, at most 9), or None."""
    return int(text) if re.fullmatch("[0-9]{1,9}", text) else None


def alive(pid):
    """Whether process ``pid`` exists (on Windows, always True)."""
    if os.name == "nt":  # (os.kill(pid, 0) ends the process there: every writer is alive)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _fsync_dir(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
