"""File-system safety: the store lives only where no other local user can redirect it.

Refused: a symlinked folder or file, one owned by another uid, a folder whose parent anyone
may write without the sticky bit. The file is created 0600 inside a 0700 folder before
SQLite opens it, and every new connection checks the path still names the file checked at
open.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from ..errors import StoreError

__all__ = ["MOVE_HINT", "check_same_file", "default_store_path", "prepare_store_file"]

#: What to do when the store's location is refused.
MOVE_HINT = (
    "Someone may be trying to redirect your tokens. Point JUPYTER_DATA_DIR (or store=) at a "
    "folder only you own, e.g. the default under your home's jupyter_data_dir()."
)


def default_store_path() -> Path:
    """Where the store lives: ``jupyter_data_dir()/chat_oauth2_nb/store.sqlite3``, read now."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "chat_oauth2_nb" / "store.sqlite3"


def _euid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None


def _unsafe(path: Path, problem: str, hint: str) -> StoreError:
    return StoreError(f"Refusing the token store at {path}: {problem}", hint=hint)


def _check_parent(folder: Path) -> None:
    """Refuse a folder whose parent any user may write without the sticky bit (/tmp has it)."""
    parent = folder.parent
    mode = os.stat(parent).st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise _unsafe(
            folder,
            f"its parent {parent} is writable by every user without the sticky bit, so "
            "another user could replace the store folder",
            MOVE_HINT,
        )


def _check_entry(path: Path, st: os.stat_result, kind: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise _unsafe(path, f"the {kind} is a symbolic link", MOVE_HINT)
    uid = _euid()
    if uid is not None and st.st_uid != uid:
        raise _unsafe(
            path, f"the {kind} belongs to uid {st.st_uid}, not to you (uid {uid})", MOVE_HINT
        )


def _secure_folder(folder: Path) -> None:
    """Check the store folder is a real folder of ours, then make it 0700 without following links."""
    st = os.lstat(folder)
    _check_entry(folder, st, "store folder")
    if not stat.S_ISDIR(st.st_mode):
        raise _unsafe(folder, "the store folder is not a folder", MOVE_HINT)
    if stat.S_IMODE(st.st_mode) != 0o700:
        # O_NOFOLLOW: a link swapped in after the lstat is refused, not followed. A folder
        # descriptor holds no SQLite lock, so opening and closing it is harmless.
        fd = os.open(
            folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
        )
        try:
            if (os.fstat(fd).st_dev, os.fstat(fd).st_ino) != (st.st_dev, st.st_ino):
                raise _unsafe(folder, "the store folder changed while it was checked", MOVE_HINT)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)


def _chmod_no_follow(path: Path, mode: int) -> None:
    # Not open()+fchmod(): closing any descriptor of the database file drops every POSIX lock
    # this process holds on it, under SQLite connections already open here.
    try:
        os.chmod(path, mode, follow_symlinks=False)
    except (NotImplementedError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # The entry was just lstat'ed as a regular file, inside a 0700 folder of ours that
        # no other user can write: nobody can swap it for a link in between.
        os.chmod(path, mode)


def prepare_store_file(path: Path) -> tuple[int, int]:
    """Make the store's 0700 folder and 0600 file, refusing unsafe ones: the file's (dev, ino).

    Raises StoreError when the location is unsafe or cannot be created.
    """
    folder = path.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_parent(folder)
        _secure_folder(folder)
        # Create the file 0600 before SQLite does, so it is never readable by others;
        # SQLite gives its -wal and -shm files the database file's mode. Never open and
        # close an existing one: closing any descriptor of the file drops every POSIX
        # lock this process holds on it, under SQLite connections already open here.
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
                os.close(os.open(path, flags, 0o600))
            st = os.lstat(path)
        _check_entry(path, st, "store file")
        if not stat.S_ISREG(st.st_mode):
            raise _unsafe(path, "the store file is not a regular file", MOVE_HINT)
        if stat.S_IMODE(st.st_mode) != 0o600:
            _chmod_no_follow(path, 0o600)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the token store at {path} ({exc.strerror})",
            hint="Check JUPYTER_DATA_DIR points at a folder you can write, or pass store=.",
        ) from None
    return st.st_dev, st.st_ino


def check_same_file(path: Path, file_id: tuple[int, int] | None) -> None:
    """Refuse a path that no longer names the file checked at open (swapped, or a link)."""
    try:
        folder = os.lstat(path.parent)
        st = os.lstat(path)
        same = (
            not stat.S_ISLNK(folder.st_mode)
            and not stat.S_ISLNK(st.st_mode)
            and (st.st_dev, st.st_ino) == file_id
        )
    except OSError:
        same = False
    if not same:
        raise StoreError(
            f"The token store {path} is no longer the file opened at first: it was "
            "moved, deleted or replaced (by a link?), so it is not used",
            hint=f"{MOVE_HINT} Then restart the kernel (or the Jupyter server).",
        )
