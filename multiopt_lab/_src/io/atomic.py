"""Write a file atomically: a failure at any point leaves the previous file as it was.

Every file the package writes whole (optimizer checkpoints, the files of a
distributed checkpoint, rule files, a saved History) goes through
:func:`write_atomically`:

* the data goes to a fresh temporary file in the destination's folder, with
  a random name, created exclusively (``O_EXCL``, ``O_NOFOLLOW``): a planted
  symlink or a stale file from a killed process is never written through;
* it is flushed and ``fsync``-ed, then renamed over the destination
  (``os.replace``), and the folder is synced so the rename survives a crash;
* on any error (a full disk, ``KeyboardInterrupt``) the temporary file is
  removed: no debris, and the destination is untouched;
* the new file gets the permissions ``open(path, "w")`` would give: those
  of the file it replaces, or ``0o666`` less the umask;
* the folder is the destination's as written (``dirname``), never a path
  normalised as text, so ``..`` after a symlinked folder means what the OS
  says it means.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from typing import BinaryIO
from collections.abc import Callable

__all__ = ["write_atomically", "write_text_atomically", "temporary_name"]

_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
          | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_ATTEMPTS = 32


def temporary_name(path: str | os.PathLike) -> str:
    """A fresh hidden name beside ``path``: ``.<name>.<random>.tmp`` in the same folder.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object], *,
                     durable: bool = True) -> None:
    """Call ``write(file)`` on a new temporary file, then rename it over ``path``.

    Args:
        path (str | PathLike): The destination; its folder must exist.
        write (Callable): Writes the whole content to the binary file it is given.
        durable (bool, optional): ``fsync`` the file and its folder, so the
            new content survives a power cut; ``False`` for files that only
            matter while the process runs (status files). Readers never see
            half a file either way. Default: ``True``.

    Raises:
        IsADirectoryError: ``path`` names a folder.
        OSError: The folder is missing or not writable, the disk is full...;
            ``path`` is then unchanged and no temporary file remains.
    """
    path = os.fspath(path)
    if not os.path.basename(path) or os.path.isdir(path):
        raise IsADirectoryError(f"expected a file name to write, found the folder {path!r}")
    kept_mode = _existing_mode(path)
    temporary, handle = _create_temporary(path)
    try:
        with os.fdopen(handle, "wb") as file:
            if kept_mode is not None and hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), kept_mode)
            write(file)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if durable:
        _sync_folder(os.path.dirname(path) or os.curdir)


def write_text_atomically(path: str | os.PathLike, text: str, encoding: str = "utf-8", *,
                          durable: bool = True) -> None:
    """:func:`write_atomically` for text (written as ``encoding``, newlines as given).
    """
    data = text.encode(encoding)
    write_atomically(path, lambda file: file.write(data), durable=durable)


def _create_temporary(path: str) -> tuple[str, int]:
    for _ in range(_ATTEMPTS):
        temporary = temporary_name(path)
        try:
            # 0o666: the kernel takes the umask off, as for any new file.
            return temporary, os.open(temporary, _FLAGS, 0o666)
        except FileExistsError:  # a name taken by chance (or planted): draw another
            continue
    raise FileExistsError(f"could not create a temporary file beside {path!r} after "
                          f"{_ATTEMPTS} attempts; is its folder full of '.*.tmp' files?")


def _existing_mode(path: str) -> int | None:
    """The permission bits of the file ``path`` replaces (``open(path, "w")`` keeps them)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None


def _sync_folder(folder: str) -> None:
    # The rename is only durable once the folder itself is on disk; some file
    # systems cannot sync a folder, which loses durability but never data.
    try:
        handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
