"""File-system safety: the store lives only where no other local user can redirect it.

Refused: a symlinked folder or file, one owned by another uid, and any folder on the way to
the store (links followed and checked too) that another user could rename things in: one
owned by another user (root excepted; the sticky bit does not stop a folder's owner), one
writable by every user without the sticky bit, or one writable by a group that holds another
user. SQLite opens files by path (and its -wal and -shm files later still), so only a path
nobody else can change is safe: after these checks, nobody but the owner and root can swap
a folder between a check and an open. The file is created 0600 inside a 0700 folder before
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
_OR_MOVE = (
    "or point JUPYTER_DATA_DIR (or store=) at a folder only you own, e.g. the default "
    "under your home's jupyter_data_dir()."
)


def default_store_path() -> Path:
    """Where the store lives: ``jupyter_data_dir()/chat_oauth2_nb/store.sqlite3``, read now."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "chat_oauth2_nb" / "store.sqlite3"


def _euid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None


def _unsafe(path: Path, problem: str, hint: str) -> StoreError:
    return StoreError(f"Refusing the token store at {path}: {problem}", hint=hint)


def _name_of_user(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group_others(gid: int, uid: int) -> tuple[str, list[str] | None]:
    """The group's name and its members other than ``uid`` and root (None: cannot tell)."""
    import grp
    import pwd

    try:
        group = grp.getgrgid(gid)
    except KeyError:
        # A gid no group file names may still be a process's supplementary group.
        return f"gid {gid}", None
    names = set(group.gr_mem) | {p.pw_name for p in pwd.getpwall() if p.pw_gid == gid}
    others = []
    for name in sorted(names):
        try:
            member: int | None = pwd.getpwnam(name).pw_uid
        except KeyError:
            member = None
        if member not in (uid, 0):
            others.append(name)
    return group.gr_name, others


def _has_acl(folder: Path) -> bool:
    # With a POSIX ACL the group bits are the ACL's mask: named users may write too.
    try:
        return "system.posix_acl_access" in os.listxattr(folder, follow_symlinks=False)
    except (AttributeError, OSError):
        return False


def _check_ancestor(folder: Path, st: os.stat_result, store_folder: Path, uid: int) -> None:
    """Refuse a folder on the way to the store in which another user could rename entries."""
    mode = st.st_mode
    if not stat.S_ISDIR(mode):
        raise _unsafe(store_folder, f"{folder} is not a folder", MOVE_HINT)
    if st.st_uid not in (uid, 0):
        sticky = " (the sticky bit does not stop the owner)" if mode & stat.S_ISVTX else ""
        raise _unsafe(
            store_folder,
            f"the folder {folder} on its way belongs to {_name_of_user(st.st_uid)}, who could "
            f"rename the store folder away and put another in its place{sticky}",
            f"Keep the store under folders only you (or root) own: {_OR_MOVE[3:]}",
        )
    if mode & stat.S_ISVTX:
        return  # like /tmp: only an entry's owner may rename it (see _check_in_sticky)
    if mode & stat.S_IWOTH:
        raise _unsafe(
            store_folder,
            f"the folder {folder} on its way is writable by every user without the sticky "
            "bit, so another user could replace the store folder",
            f"Run `chmod o-w {folder}` (or `chmod +t {folder}`), {_OR_MOVE}",
        )
    if mode & stat.S_IWGRP:
        group, others = _group_others(st.st_gid, uid)
        if others is None or others or _has_acl(folder):
            who = f"its members {', '.join(others)}" if others else "users it cannot list"
            raise _unsafe(
                store_folder,
                f"the folder {folder} on its way is writable by the group {group}, so "
                f"{who} could rename the store folder away and put another in its place",
                f"Run `chmod g-w {folder}` if the group need not write there, {_OR_MOVE}",
            )


def _check_in_sticky(
    folder: Path, st: os.stat_result, entry: Path, entry_st: os.stat_result, store_folder: Path
) -> None:
    """In a sticky folder others may write, the entry on our way must be ours (or root's)."""
    uid = _euid()
    if not st.st_mode & stat.S_ISVTX or uid is None or entry_st.st_uid in (uid, 0):
        return
    if not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return
    raise _unsafe(
        store_folder,
        f"{entry} on its way belongs to {_name_of_user(entry_st.st_uid)}, who may replace it "
        f"even though {folder} has the sticky bit",
        MOVE_HINT,
    )


def _walk(path: Path, store_folder: Path, uid: int, depth: int = 0) -> Path:
    """Check every folder from the root down to ``path``, following links; the real path."""
    if depth > 32:
        raise _unsafe(store_folder, "too many symbolic links on its way", MOVE_HINT)
    current = Path(path.anchor or os.sep)
    current_st = os.stat(current)
    _check_ancestor(current, current_st, store_folder, uid)
    for name in path.parts[1:]:
        if name in ("", "."):
            continue
        if name == "..":
            # ``current`` holds no link, so its parent is where the system goes too.
            current = current.parent
            current_st = os.stat(current)
            continue
        entry = current / name
        entry_st = os.lstat(entry)
        _check_in_sticky(current, current_st, entry, entry_st, store_folder)
        if stat.S_ISLNK(entry_st.st_mode):
            # The link itself can only be replaced by who may write ``current`` (checked);
            # where it points is checked from the root down like any other path.
            current = _walk(Path(os.path.realpath(entry)), store_folder, uid, depth + 1)
            current_st = os.stat(current)
        else:
            _check_ancestor(entry, entry_st, store_folder, uid)
            current, current_st = entry, entry_st
    return current


def _check_ancestors(folder: Path) -> None:
    """Refuse a store folder that another local user could swap between a check and an open."""
    uid = _euid()
    if uid is None:
        return  # no POSIX owners (Windows): nothing to compare
    # Not abspath(): it drops '..' before the system would follow a link it comes after.
    _walk(Path.cwd() / folder.parent, folder, uid)


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
    if st.st_mode & stat.S_ISVTX:
        # A sticky folder (/tmp) is shared by design: making it 0700 would break every other
        # program, and leaving it open lets another user plant the store's -wal or -journal.
        raise _unsafe(
            folder,
            "the store folder is a shared folder with the sticky bit (like /tmp), where other "
            "users may create the store's companion files",
            "Give the store a folder of its own inside it (e.g. store=/tmp/mine/tokens.db), "
            + _OR_MOVE,
        )
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
        _check_ancestors(folder)
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
