"""The on-disk store shared by the kernel and the Jupyter server process (SQLite, 0600).

The kernel registers providers and pending flows here; the server's callback consumes a
flow, exchanges its code and writes the token here; the kernel sees it appear. SQLite
transactions make every write atomic (a process killed mid-write leaves the last committed
state), and a lease row makes refreshes single-flight across processes.

The store refuses a location another local user could redirect: a symlinked folder or file,
one owned by another uid, a folder whose parent anyone may write without the sticky bit;
and every new per-thread connection checks the path still names the file opened first.

With a key (``store_key=``, ``CHAT_OAUTH2_NB_STORE_KEY``, the hub's chat-oauth2 service in a
hub-spawned server, or ``keyring``) the secret columns
(token data, PKCE verifiers, client secrets) are sealed with AES-GCM, each bound to its row.
A key is 32 random bytes in urlsafe base64 (44 characters): :func:`new_store_key` makes one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import errno
import itertools
import json
import os
import secrets
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import quote

from ..config import ProviderConfig, provider_identity
from ..errors import (
    AuthorizationDeniedError,
    BrowserBindingError,
    ConfigurationError,
    DeviceCodeExpiredError,
    IdTokenError,
    IssuerMismatchError,
    OAuth2Error,
    ProviderError,
    StateError,
    StoreError,
    StoreLockedError,
    TokenExchangeError,
)
from ..oauth import AuthData, authorization_url, mask

__all__ = [
    "DEFAULT_FLOW_TTL",
    "FLOW_EXPIRED",
    "STORE_KEY_ENV",
    "FlowEndpoint",
    "FlowError",
    "FlowErrorKind",
    "FlowOrigin",
    "FlowStatus",
    "HeldTokenStore",
    "KeySource",
    "PendingFlow",
    "Store",
    "TokenRecord",
    "default_store_path",
    "new_store_key",
    "open_store",
]

T = TypeVar("T")
DEFAULT_FLOW_TTL = 600.0
# Finished flows are kept this long so a kernel that polls late still learns the outcome.
_FINISHED_FLOW_RETENTION = 3600.0
# Read in the Jupyter server's and the kernel's environment (kernels inherit the server's).
STORE_KEY_ENV = "CHAT_OAUTH2_NB_STORE_KEY"
_KEYRING_SERVICE, _KEYRING_NAME = "chat_oauth2_nb", "store_key"
_SEALED = "aesgcm1:"
_KEY_CHECK = b"chat_oauth2_nb store key check"
# PRAGMA user_version: 2 = providers keyed by (alias, provider, client_id), tokens.provider,
# flows hold their provider without the client secret.
_SCHEMA_VERSION = 2
# A provider is keyed by who it is, not by its alias alone: two notebooks may use one alias
# for two providers, and each flow's exchange needs its own provider's secret.
_PROVIDERS = """
CREATE TABLE IF NOT EXISTS {name} (
    alias TEXT NOT NULL,
    provider TEXT NOT NULL,
    client_id TEXT NOT NULL,
    config TEXT NOT NULL,
    client_secret TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (alias, provider, client_id)
);"""
_SCHEMA = (
    _PROVIDERS.format(name="providers")
    + """
CREATE TABLE IF NOT EXISTS flows (
    state TEXT PRIMARY KEY,
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    finished_at REAL,
    exchange TEXT,
    provider TEXT
);
CREATE INDEX IF NOT EXISTS flows_by_user ON flows (alias, user, created_at);
CREATE TABLE IF NOT EXISTS tokens (
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    provider TEXT,
    PRIMARY KEY (alias, user)
);
CREATE TABLE IF NOT EXISTS leases (
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (alias, user)
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS held_refresh_tokens (
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    provider TEXT,
    refresh_token TEXT NOT NULL,
    PRIMARY KEY (alias, user)
);
"""
)

# Columns added after the first release: a store an older version wrote gets them on open.
_ADDED_COLUMNS: dict[str, dict[str, str]] = {
    # tokens.provider stays NULL for tokens stored before it existed, unless the migration
    # finds the provider the alias had then.
    "tokens": {"provider": "TEXT"},
    # Who started a flow and where it may finish (DESIGN.md, "Decisions for the field").
    "flows": {
        "start_id": "TEXT",
        "origin": "TEXT NOT NULL DEFAULT 'code'",
        "client_ref": "TEXT",
        "endpoint": "TEXT",
        "owner": "TEXT",
        "binding": "TEXT",
        # A device flow's public state (user code, verification URI, poll interval, next
        # poll time); its device code, a credential, sits in code_verifier (sealed).
        "device": "TEXT",
        # OpenID Connect: the nonce the id_token must carry back.
        "nonce": "TEXT",
    },
}

FlowOrigin = Literal["code", "panel", "device", "paste"]
# Where a flow's redirect may arrive: the Jupyter server's callback or a loopback listener.
FlowEndpoint = Literal["server", "loopback", "paste", "device"]

FlowStatus = Literal["pending", "exchanging", "done", "error"]


def _ensure_columns(db: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Add the ``columns`` (name -> SQL type) that a store written by an older version lacks."""
    have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    for name, decl in columns.items():
        if name not in have:
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def default_store_path() -> Path:
    """Where the store lives: ``jupyter_data_dir()/chat_oauth2_nb/store.sqlite3``, read now."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "chat_oauth2_nb" / "store.sqlite3"


def new_store_key() -> str:
    """A fresh store key: 32 random bytes, urlsafe base64 (put it in CHAT_OAUTH2_NB_STORE_KEY)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _parse_key(key: str | bytes) -> bytes:
    if isinstance(key, bytes) and len(key) == 32:
        return key
    try:
        text = key.decode() if isinstance(key, bytes) else key
        text = text.strip()
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (UnicodeDecodeError, binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        # Never echo the value: it is meant to be a secret.
        raise ConfigurationError(
            "store_key",
            "is not a store key (32 bytes in urlsafe base64, 44 characters)",
            "Make one with chat_oauth2_nb.store.new_store_key() and use it everywhere "
            f"the store is opened ({STORE_KEY_ENV} in the Jupyter server's environment).",
        )
    return raw


#: Where a store's key came from (``Store.key_source``).
KeySource = Literal["argument", "environment", "hub", "keyring"]


def _key_from_environment() -> tuple[str | None, KeySource | None]:
    """The key and its source: CHAT_OAUTH2_NB_STORE_KEY, the hub, else ``keyring``."""
    value = os.environ.get(STORE_KEY_ENV)
    if value:
        return value, "environment"
    # Imported here: only a hub-spawned server pays for the lookup.
    from .hubkey import fetch_hub_store_key

    from_hub = fetch_hub_store_key()
    if from_hub:
        return from_hub, "hub"
    return _key_from_keyring(), "keyring"


def _key_from_keyring() -> str | None:
    try:
        import keyring  # optional: only when the person installed it
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        if isinstance(keyring.get_keyring(), fail.Keyring):
            return None
        found = keyring.get_password(_KEYRING_SERVICE, _KEYRING_NAME)
    except Exception:  # a backend that cannot be reached is no key, not a crash
        return None
    return found or None


def _aad(*parts: str | None) -> bytes:
    # JSON keeps the parts apart unambiguously: ("a", "b|c") never equals ("a|b", "c").
    return json.dumps(["chat_oauth2_nb", *parts]).encode()


def _token_aad(alias: str, user: str, provider: str | None) -> bytes:
    return _aad("tokens.data", alias, user, provider)


def _held_aad(alias: str, user: str, provider: str | None) -> bytes:
    return _aad("held_refresh_tokens.refresh_token", alias, user, provider)


def _flow_aad(state: str) -> bytes:
    return _aad("flows.code_verifier", state)


def _provider_aad(alias: str, provider: str, client_id: str) -> bytes:
    return _aad("providers.client_secret", alias, provider, client_id)


class _Cipher:
    """AES-GCM over single column values; each bound to its row by associated data."""

    def __init__(self, key: bytes) -> None:
        # Imported here: `import chat_oauth2_nb` stays cheap when no key is in use.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def seal(self, value: str, aad: bytes) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, value.encode(), aad)
        return _SEALED + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, value: str, aad: bytes) -> str | None:
        """The plain value, or None when the key or the associated data does not match."""
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(value[len(_SEALED) :])
            return self._aead.decrypt(raw[:12], raw[12:], aad).decode()
        except (InvalidTag, binascii.Error, ValueError):
            return None


def _no_key_error(path: Path) -> StoreError:
    return StoreError(
        f"The token store {path} is encrypted and no store key is set",
        hint=f"Set {STORE_KEY_ENV} to the store's key in both the Jupyter server's and the "
        "kernel's environment (set it where the Jupyter server starts: kernels inherit it), "
        "or pass store_key= to create_oauth2_client().",
    )


def _wrong_key_error(path: Path) -> StoreError:
    return StoreError(
        f"The token store {path} cannot be decrypted with the store key given (a wrong key)",
        hint=f"Set {STORE_KEY_ENV} to the key the store was written with, in both the Jupyter "
        "server's and the kernel's environment (set it where the Jupyter server starts: "
        "kernels inherit it).",
    )


def _euid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None


def _unsafe(path: Path, problem: str, hint: str) -> StoreError:
    return StoreError(f"Refusing the token store at {path}: {problem}", hint=hint)


_MOVE_HINT = (
    "Someone may be trying to redirect your tokens. Point JUPYTER_DATA_DIR (or store=) at a "
    "folder only you own, e.g. the default under your home's jupyter_data_dir()."
)


def _check_parent(folder: Path) -> None:
    """Refuse a folder whose parent any user may write without the sticky bit (/tmp has it)."""
    parent = folder.parent
    mode = os.stat(parent).st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise _unsafe(
            folder,
            f"its parent {parent} is writable by every user without the sticky bit, so "
            "another user could replace the store folder",
            _MOVE_HINT,
        )


def _check_entry(path: Path, st: os.stat_result, kind: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise _unsafe(path, f"the {kind} is a symbolic link", _MOVE_HINT)
    uid = _euid()
    if uid is not None and st.st_uid != uid:
        raise _unsafe(
            path, f"the {kind} belongs to uid {st.st_uid}, not to you (uid {uid})", _MOVE_HINT
        )


def _secure_folder(folder: Path) -> None:
    """Check the store folder is a real folder of ours, then make it 0700 without following links."""
    st = os.lstat(folder)
    _check_entry(folder, st, "store folder")
    if not stat.S_ISDIR(st.st_mode):
        raise _unsafe(folder, "the store folder is not a folder", _MOVE_HINT)
    if stat.S_IMODE(st.st_mode) != 0o700:
        # O_NOFOLLOW: a link swapped in after the lstat is refused, not followed. A folder
        # descriptor holds no SQLite lock, so opening and closing it is harmless.
        fd = os.open(
            folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
        )
        try:
            if (os.fstat(fd).st_dev, os.fstat(fd).st_ino) != (st.st_dev, st.st_ino):
                raise _unsafe(folder, "the store folder changed while it was checked", _MOVE_HINT)
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


class _Held:
    """This thread's connection; when the thread ends, its finalizer closes the connection."""

    __slots__ = ("__weakref__", "db", "serial")

    def __init__(self, db: sqlite3.Connection, serial: int) -> None:
        self.db = db
        self.serial = serial


def _close_one(connections: dict[int, sqlite3.Connection], serial: int) -> None:
    # dict.pop is atomic: the finalizer of a thread ending and close_all() never both close.
    db = connections.pop(serial, None)
    if db is not None:
        db.close()


def _close_all(connections: dict[int, sqlite3.Connection]) -> None:
    while connections:
        try:
            _serial, db = connections.popitem()
        except KeyError:
            break
        db.close()


# How a flow can fail, and the error type each kind turns back into in the kernel.
FlowErrorKind = Literal[
    "denied",
    "mixup",
    "binding",
    "exchange",
    "state",
    "store",
    "expired",
    "device_expired",
    "id_token",
]
_ERROR_CLASSES: dict[str, type[OAuth2Error]] = {
    "denied": AuthorizationDeniedError,
    "mixup": IssuerMismatchError,
    "binding": BrowserBindingError,
    "exchange": TokenExchangeError,
    "state": StateError,
    "expired": StateError,
    "store": StoreError,
    "device_expired": DeviceCodeExpiredError,
    "id_token": IdTokenError,
}


@dataclasses.dataclass(frozen=True)
class FlowError:
    """How a flow failed: written by whichever process ended it, read by the waiting kernel.

    The server and the kernel are different processes; this record is the one schema they
    share for it (stored as JSON in ``flows.error``). It holds no secret.
    """

    kind: FlowErrorKind
    message: str
    error: str | None = None
    error_description: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    hint: str | None = None

    @classmethod
    def of(cls, exc: OAuth2Error, kind: FlowErrorKind) -> FlowError:
        """Record a typed error as ``kind``."""
        return cls(
            kind=kind,
            message=exc.message,
            error=exc.error,
            error_description=exc.error_description,
            status_code=exc.status_code,
            retry_after=getattr(exc, "retry_after", None),
            hint=exc.hint,
        )

    def to_json(self) -> str:
        """Serialise for the flows table."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FlowError:
        """Load what :meth:`to_json` wrote (unknown fields, from a newer version, are dropped)."""
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if values.get("kind") not in _ERROR_CLASSES:
            values["kind"] = "exchange"
        values.setdefault("message", "The authorization failed")
        return cls(**values)

    def to_exception(self) -> OAuth2Error:
        """The typed error to raise in the kernel."""
        cls = _ERROR_CLASSES.get(self.kind, TokenExchangeError)
        details: dict[str, Any] = {
            "error": self.error,
            "error_description": self.error_description,
            "status_code": self.status_code,
            "hint": self.hint,
        }
        if issubclass(cls, ProviderError):
            details["retry_after"] = self.retry_after
        return cls(self.message, **details)


#: The record of a link that expired before its redirect came back.
FLOW_EXPIRED = FlowError(
    kind="expired",
    message="The authorization link expired before it was used",
    hint="Get a fresh one with client.get_user_authorization_url() and use it within its lifetime.",
)


@dataclasses.dataclass(frozen=True, repr=False)
class PendingFlow:
    """One authorization in progress: what the callback needs to finish it."""

    state: str
    alias: str
    user: str
    code_verifier: str
    redirect_uri: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float
    status: FlowStatus = "pending"
    error: FlowError | None = None
    finished_at: float | None = None
    exchange: dict[str, Any] | None = None
    # The provider as this flow's client saw it: two notebooks may use one alias for two
    # different providers, and the code must be exchanged where it was issued.
    provider: ProviderConfig | None = dataclasses.field(default=None, compare=False)
    #: The opaque id of the start link (``…/chat-oauth2/start/<start_id>``); not the state.
    start_id: str | None = None
    #: Who started it: code in a cell, a panel, (later) device or paste-back.
    origin: FlowOrigin = "code"
    #: The client instance that started it; wait_for_authorization() follows only its own.
    client_ref: str | None = None
    endpoint: FlowEndpoint = "server"
    #: The Jupyter user who opened the start link (None on the loopback).
    owner: str | None = None
    #: SHA-256 of the browser-binding cookie set by the start link; None until opened.
    binding: str | None = None
    #: A device flow's public state: user_code, verification URIs, interval, next_poll_at.
    device: dict[str, Any] | None = None
    #: OpenID Connect: the nonce sent with the authorization, checked in the id_token.
    nonce: str | None = None

    def authorization_url(self, config: ProviderConfig | None = None) -> str:
        """The provider's authorization URL for this flow (state, S256 challenge, nonce).

        Built the same way wherever it is needed: the kernel (the link it shows) and the
        server's start page (the redirect it answers) must send the same parameters.
        """
        provider = config or self.provider
        if provider is None:
            raise StateError("This flow has no provider", hint="Start again from the notebook.")
        return authorization_url(
            provider,
            redirect_uri=self.redirect_uri,
            scopes=self.scopes,
            state=self.state,
            code_verifier=self.code_verifier,
            nonce=self.nonce,
        )

    def __repr__(self) -> str:
        return (
            f"PendingFlow(state={mask(self.state)!r}, alias={self.alias!r}, user={self.user!r}, "
            f"status={self.status!r}, scopes={list(self.scopes)!r})"
        )


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    """A stored token with its version (bumped on every write), write time and provider."""

    alias: str
    user: str
    data: AuthData
    version: int
    updated_at: float
    # provider_identity() of the config the token was issued to; None for tokens stored
    # before providers were recorded.
    provider: str | None = None


def _provider(values: dict[str, Any]) -> ProviderConfig:
    values["default_scopes"] = tuple(values["default_scopes"])
    # The row was checked when it was written, under the writer's http rule (a kernel's
    # allow_insecure_http), which the row does not record: the reader applies none of its own.
    return ProviderConfig(**values, allow_insecure_http=True)


class HeldTokenStore(Protocol):
    """What a broker needs of a store: tokens, held refresh tokens, refresh leases.

    :class:`Store` (SQLite) is one; the hub service's PostgreSQL backend
    (``chat_oauth2_nb.store.postgres``) is the other, for a service run as several replicas.
    """

    def get_token(self, alias: str, user: str) -> TokenRecord | None:
        """The stored token for (alias, user), or None."""

    def put_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str | None = None,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a token; with ``expect_version``, only if nobody wrote since (else None)."""

    def put_held_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a declared provider's token, its refresh token held apart."""

    def get_held_refresh_token(self, alias: str, user: str, provider: str) -> str | None:
        """The refresh token held apart for (alias, user) and ``provider``, or None."""

    def delete_token(self, alias: str, user: str, *, expect_version: int | None = None) -> bool:
        """Delete the token and its held refresh token; False when there was none."""

    def acquire_lease(self, alias: str, user: str, owner: str, ttl: float) -> bool:
        """Take the refresh lease for (alias, user) unless another owner holds a live one."""

    def release_lease(self, alias: str, user: str, owner: str) -> None:
        """Give the lease back (only if ``owner`` still holds it)."""

    def patiently(self, write: Callable[[], T], patience: float) -> T:
        """Run ``write``, retrying while the store is busy, up to ``patience`` seconds."""


class Store:
    """The SQLite store; one connection per thread, every write in its own transaction."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = 5.0,
        key: str | bytes | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.busy_timeout = busy_timeout
        source: KeySource | None = "argument"
        if key is None:
            key, source = _key_from_environment()
        self._cipher = _Cipher(_parse_key(key)) if key else None
        self._key_source = source if key else None
        self._local = threading.local()
        self._serials = itertools.count()
        # Every open connection, by serial: close_all() and the threads' finalizers close them.
        self._connections: dict[int, sqlite3.Connection] = {}
        weakref.finalize(self, _close_all, self._connections)
        self._file_id: tuple[int, int] | None = None
        self._prepare_file()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @property
    def encrypted(self) -> bool:
        """True when secret columns are sealed with AES-GCM (a store key is in use)."""
        return self._cipher is not None

    @property
    def key_source(self) -> KeySource | None:
        """Where the key came from (``"hub"``: the hub's chat-oauth2 service), None without one."""
        return self._key_source

    @property
    def open_connections(self) -> int:
        """How many SQLite connections this store holds open (one per thread that used it)."""
        return len(self._connections)

    def _prepare_file(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _check_parent(folder)
            _secure_folder(folder)
            # Create the file 0600 before SQLite does, so it is never readable by others;
            # SQLite gives its -wal and -shm files the database file's mode. Never open and
            # close an existing one: closing any descriptor of the file drops every POSIX
            # lock this process holds on it, under SQLite connections already open here.
            try:
                st = os.lstat(self.path)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
                    os.close(os.open(self.path, flags, 0o600))
                st = os.lstat(self.path)
            _check_entry(self.path, st, "store file")
            if not stat.S_ISREG(st.st_mode):
                raise _unsafe(self.path, "the store file is not a regular file", _MOVE_HINT)
            if stat.S_IMODE(st.st_mode) != 0o600:
                _chmod_no_follow(self.path, 0o600)
            self._file_id = (st.st_dev, st.st_ino)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the token store at {self.path} ({exc.strerror})",
                hint="Check JUPYTER_DATA_DIR points at a folder you can write, or pass store=.",
            ) from None
        try:
            # executescript() commits on its own; IF NOT EXISTS makes it safe to race.
            db = self._connection()
            db.executescript(_SCHEMA)
            for table, columns in _ADDED_COLUMNS.items():
                _ensure_columns(db, table, columns)
            db.execute("CREATE UNIQUE INDEX IF NOT EXISTS flows_by_start ON flows (start_id)")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        with self._transaction() as db:
            self._migrate(db)
            self._check_key(db)

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring a store written by an older version up to date (in the caller's transaction)."""
        # Cheap and idempotent: run on every open, so columns added later always arrive.
        for table, columns in _ADDED_COLUMNS.items():
            _ensure_columns(db, table, columns)
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS flows_by_start ON flows (start_id)")
        if db.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
            return
        if "provider" not in {row[1] for row in db.execute("PRAGMA table_info(providers)")}:
            # Keyed by alias alone before: rebuild it with the new primary key.
            db.execute(_PROVIDERS.format(name="providers_v2"))
            for row in db.execute("SELECT * FROM providers").fetchall():
                config = _provider(json.loads(row["config"]))
                identity = provider_identity(config)
                db.execute(
                    "INSERT OR REPLACE INTO providers_v2 VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        row["alias"],
                        identity,
                        config.client_id,
                        json.dumps(config.to_mapping()),
                        self._seal_secret(row["client_secret"], row["alias"], identity, config),
                        row["updated_at"],
                    ),
                )
                # One provider per alias then: its tokens were most likely issued by it.
                db.execute(
                    "UPDATE tokens SET provider = ? WHERE alias = ? AND provider IS NULL",
                    (identity, row["alias"]),
                )
            db.execute("DROP TABLE providers")
            db.execute("ALTER TABLE providers_v2 RENAME TO providers")
        for row in db.execute(
            "SELECT state, provider FROM flows WHERE provider IS NOT NULL"
        ).fetchall():
            values = json.loads(row["provider"])
            if values.pop("client_secret", None) is not None:
                db.execute(
                    "UPDATE flows SET provider = ? WHERE state = ?",
                    (json.dumps(values), row["state"]),
                )
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _check_key(self, db: sqlite3.Connection) -> None:
        """Refuse a missing or wrong key at open, with the words to fix it."""
        row = db.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchone()
        if row is None:
            if self._cipher is not None:
                db.execute(
                    "INSERT INTO meta (name, value) VALUES ('key_check', ?)",
                    (self._cipher.seal(secrets.token_urlsafe(16), _aad("meta", "key_check")),),
                )
                self._seal_plain_rows(db)
            return
        if self._cipher is None:
            raise _no_key_error(self.path)
        if self._cipher.open(row["value"], _aad("meta", "key_check")) is None:
            raise _wrong_key_error(self.path)

    def _seal_plain_rows(self, db: sqlite3.Connection) -> None:
        # The first open with a key seals what an unencrypted store already holds.
        for row in db.execute("SELECT * FROM tokens").fetchall():
            if not row["data"].startswith(_SEALED):
                db.execute(
                    "UPDATE tokens SET data = ? WHERE alias = ? AND user = ?",
                    (
                        self._seal(
                            row["data"], _token_aad(row["alias"], row["user"], row["provider"])
                        ),
                        row["alias"],
                        row["user"],
                    ),
                )
        for row in db.execute("SELECT * FROM held_refresh_tokens").fetchall():
            if not row["refresh_token"].startswith(_SEALED):
                aad = _held_aad(row["alias"], row["user"], row["provider"])
                db.execute(
                    "UPDATE held_refresh_tokens SET refresh_token = ? WHERE alias = ? AND user = ?",
                    (self._seal(row["refresh_token"], aad), row["alias"], row["user"]),
                )
        for row in db.execute("SELECT state, code_verifier FROM flows").fetchall():
            if not row["code_verifier"].startswith(_SEALED):
                db.execute(
                    "UPDATE flows SET code_verifier = ? WHERE state = ?",
                    (self._seal(row["code_verifier"], _flow_aad(row["state"])), row["state"]),
                )
        for row in db.execute("SELECT * FROM providers").fetchall():
            secret = row["client_secret"]
            if secret and not secret.startswith(_SEALED):
                aad = _provider_aad(row["alias"], row["provider"], row["client_id"])
                db.execute(
                    "UPDATE providers SET client_secret = ? "
                    "WHERE alias = ? AND provider = ? AND client_id = ?",
                    (self._seal(secret, aad), row["alias"], row["provider"], row["client_id"]),
                )

    # sealing -----------------------------------------------------------------------------

    def _writable(self, db: sqlite3.Connection) -> None:
        """Refuse to write secrets in clear into a store that another process has sealed since."""
        if (
            self._cipher is None
            and db.execute("SELECT 1 FROM meta WHERE name = 'key_check'").fetchone()
        ):
            raise _no_key_error(self.path)

    def _seal(self, value: str, aad: bytes) -> str:
        return self._cipher.seal(value, aad) if self._cipher is not None else value

    def _open(self, value: str, aad: bytes) -> str:
        if not value.startswith(_SEALED):
            return value  # written before a key was in use
        if self._cipher is None:
            raise _no_key_error(self.path)
        plain = self._cipher.open(value, aad)
        if plain is None:
            raise StoreError(
                f"A row of the token store {self.path} failed its integrity check: it was "
                "altered or moved from another row",
                hint="Authorize again to replace it; if this repeats, someone is editing the "
                "store file.",
            )
        return plain

    def _seal_secret(
        self, secret: str | None, alias: str, identity: str, config: ProviderConfig
    ) -> str | None:
        if not secret:
            return None
        return self._seal(secret, _provider_aad(alias, identity, config.client_id))

    # connections -------------------------------------------------------------------------

    def _check_same_file(self) -> None:
        """Refuse a path that no longer names the file checked at open (swapped, or a link)."""
        try:
            folder = os.lstat(self.path.parent)
            st = os.lstat(self.path)
            same = (
                not stat.S_ISLNK(folder.st_mode)
                and not stat.S_ISLNK(st.st_mode)
                and (st.st_dev, st.st_ino) == self._file_id
            )
        except OSError:
            same = False
        if not same:
            raise StoreError(
                f"The token store {self.path} is no longer the file opened at first: it was "
                "moved, deleted or replaced (by a link?), so it is not used",
                hint=f"{_MOVE_HINT} Then restart the kernel (or the Jupyter server).",
            )

    def _connection(self) -> sqlite3.Connection:
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and held.serial in self._connections:
            return held.db
        self._check_same_file()
        # mode=rw: SQLite never creates a file here; it opens the one checked at open or fails.
        uri = f"file:{quote(str(self.path.absolute()))}?mode=rw"
        db = sqlite3.connect(
            uri,
            uri=True,
            timeout=self.busy_timeout,
            isolation_level=None,
            # Used by one thread only; close_all() may close it from another.
            check_same_thread=False,
        )
        try:
            # Before the first statement touches it: the path may have been swapped meanwhile.
            self._check_same_file()
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # Deleted rows are zeroed, so an old token does not linger in free pages.
            db.execute("PRAGMA secure_delete=ON")
        except BaseException:
            db.close()
            raise
        held = _Held(db, next(self._serials))
        self._connections[held.serial] = db
        # Runs when this thread ends (its thread-local data is dropped): the connection is
        # closed then, not by the garbage collector (a ResourceWarning on Python >= 3.13).
        weakref.finalize(held, _close_one, self._connections, held.serial)
        self._local.held = held
        return db

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        try:
            yield db
        except sqlite3.DatabaseError as exc:
            db.execute("ROLLBACK")
            raise self._error(exc) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            try:
                db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                db.execute("ROLLBACK")
                raise self._error(exc) from None

    def _error(self, exc: sqlite3.DatabaseError) -> StoreError:
        if "locked" in str(exc) or "busy" in str(exc):
            return StoreLockedError(
                f"The token store {self.path} stayed locked by another process for "
                f"{self.busy_timeout:g} s",
                hint="Another process is writing it or hung holding it: retry, or end that process.",
            )
        return StoreError(f"The token store {self.path} failed: {exc}")

    def patiently(self, write: Callable[[], T], patience: float) -> T:
        """Run ``write``, retrying while another process holds the store locked, up to ``patience`` s.

        For writes that must not be dropped: a token the provider has already issued.
        """
        deadline = time.monotonic() + patience
        while True:
            try:
                return write()
            except StoreLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)  # each attempt already waited the busy timeout

    def close(self) -> None:
        """Close this thread's connection."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None:
            _close_one(self._connections, held.serial)
            self._local.held = None

    def close_all(self) -> None:
        """Close every thread's connection (a thread that uses the store again reopens one)."""
        self.close()
        _close_all(self._connections)

    # providers ---------------------------------------------------------------------------

    def put_provider(self, config: ProviderConfig) -> None:
        """Register (or update) a provider so the server can exchange codes for it."""
        identity = provider_identity(config)
        with self._transaction() as db:
            self._writable(db)
            db.execute(
                "INSERT OR REPLACE INTO providers "
                "(alias, provider, client_id, config, client_secret, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    config.alias,
                    identity,
                    config.client_id,
                    json.dumps(config.to_mapping()),
                    self._seal_secret(config.client_secret, config.alias, identity, config),
                    time.time(),
                ),
            )

    def get_provider(self, alias: str, provider: str | None = None) -> ProviderConfig | None:
        """The provider registered for ``alias`` (and ``provider`` identity), with its secret.

        Without ``provider``: the one registered last for the alias.
        """
        query = "SELECT * FROM providers WHERE alias = ?"
        args: tuple[str, ...] = (alias,)
        if provider is not None:
            query, args = query + " AND provider = ?", (alias, provider)
        with self._transaction(write=False) as db:
            row = db.execute(query + " ORDER BY updated_at DESC LIMIT 1", args).fetchone()
        return self._provider_row(row) if row else None

    def _provider_row(self, row: sqlite3.Row) -> ProviderConfig:
        secret = row["client_secret"]
        if secret:
            secret = self._open(
                secret, _provider_aad(row["alias"], row["provider"], row["client_id"])
            )
        return _provider({**json.loads(row["config"]), "client_secret": secret})

    def _with_secret(self, db: sqlite3.Connection, config: ProviderConfig) -> ProviderConfig:
        """``config`` with its client secret, looked up where it is stored once: providers."""
        row = db.execute(
            "SELECT * FROM providers WHERE alias = ? AND provider = ? AND client_id = ?",
            (config.alias, provider_identity(config), config.client_id),
        ).fetchone()
        if row is None:
            return config
        return dataclasses.replace(config, client_secret=self._provider_row(row).client_secret)

    # flows -------------------------------------------------------------------------------

    def _flow(self, row: sqlite3.Row) -> PendingFlow:
        return PendingFlow(
            state=row["state"],
            alias=row["alias"],
            user=row["user"],
            code_verifier=self._open(row["code_verifier"], _flow_aad(row["state"])),
            redirect_uri=row["redirect_uri"],
            scopes=tuple(json.loads(row["scopes"])),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            status=row["status"],
            error=FlowError.from_json(row["error"]) if row["error"] else None,
            finished_at=row["finished_at"],
            exchange=json.loads(row["exchange"]) if row["exchange"] else None,
            provider=_provider(json.loads(row["provider"])) if row["provider"] else None,
            start_id=row["start_id"],
            origin=row["origin"] or "code",
            client_ref=row["client_ref"],
            endpoint=row["endpoint"] or "server",
            owner=row["owner"],
            binding=row["binding"],
            device=json.loads(row["device"]) if row["device"] else None,
            nonce=row["nonce"],
        )

    def add_flow(self, flow: PendingFlow) -> None:
        """Record a new pending flow, and purge the ones long expired."""
        now = time.time()
        with self._transaction() as db:
            self._writable(db)
            db.execute(
                "DELETE FROM flows WHERE expires_at < ? OR finished_at < ?",
                (now - _FINISHED_FLOW_RETENTION, now - _FINISHED_FLOW_RETENTION),
            )
            db.execute(
                "INSERT INTO flows (state, alias, user, code_verifier, redirect_uri, scopes, "
                "created_at, expires_at, status, provider, start_id, origin, client_ref, endpoint, "
                "device, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
                (
                    flow.state,
                    flow.alias,
                    flow.user,
                    self._seal(flow.code_verifier, _flow_aad(flow.state)),
                    flow.redirect_uri,
                    json.dumps(list(flow.scopes)),
                    flow.created_at,
                    flow.expires_at,
                    # Without the secret: it is stored once, with the provider.
                    json.dumps(flow.provider.to_mapping()) if flow.provider else None,
                    flow.start_id,
                    flow.origin,
                    flow.client_ref,
                    flow.endpoint,
                    json.dumps(flow.device) if flow.device is not None else None,
                    flow.nonce,
                ),
            )

    def update_device(self, state: str, **fields: Any) -> None:
        """Merge ``fields`` into a pending device flow's public state (interval, next poll)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT device FROM flows WHERE state = ? AND status = 'pending'", (state,)
            ).fetchone()
            if row is None or not row["device"]:
                return
            db.execute(
                "UPDATE flows SET device = ? WHERE state = ?",
                (json.dumps({**json.loads(row["device"]), **fields}), state),
            )

    def flow_by_start_id(self, start_id: str) -> PendingFlow | None:
        """The flow whose start link has this opaque id, or None."""
        with self._transaction(write=False) as db:
            row = db.execute("SELECT * FROM flows WHERE start_id = ?", (start_id,)).fetchone()
        return self._flow(row) if row else None

    def bind_flow(self, start_id: str, binding: str, owner: str | None) -> PendingFlow:
        """Bind a pending flow to the browser that opened its start link (and its Jupyter user).

        Raises StateError when the flow is unknown, used or expired, and BrowserBindingError
        when another Jupyter user already opened it.
        """
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM flows WHERE start_id = ?", (start_id,)).fetchone()
            if row is None or row["status"] != "pending" or row["expires_at"] <= now:
                raise StateError(
                    "This authorization link is unknown, used or expired",
                    hint="Get a fresh link from your notebook (the panel's Authorize link or "
                    "client.get_user_authorization_url()).",
                )
            if row["owner"] is not None and row["owner"] != owner:
                raise BrowserBindingError(
                    "This authorization link was opened by another Jupyter user",
                    hint="Each person authorizes from a link their own notebook shows.",
                )
            # The latest browser to open the link wins: a second tab of the same person works.
            db.execute(
                "UPDATE flows SET binding = ?, owner = ? WHERE start_id = ?",
                (binding, owner, start_id),
            )
        return dataclasses.replace(self._flow(row), binding=binding, owner=owner)

    def has_pending_flow(self, redirect_prefix: str) -> bool:
        """True while an unexpired pending flow's redirect URI starts with ``redirect_prefix``."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT 1 FROM flows WHERE status = 'pending' AND expires_at > ? "
                "AND substr(redirect_uri, 1, ?) = ? LIMIT 1",
                (time.time(), len(redirect_prefix), redirect_prefix),
            ).fetchone()
        return row is not None

    def consume_flow(
        self, state: str, check: Callable[[PendingFlow], None] | None = None
    ) -> PendingFlow:
        """Take a pending flow for its callback, exactly once; raise StateError otherwise.

        ``check`` runs on the pending flow inside the transaction and may raise to refuse it:
        a refused flow stays pending, so the person who started it can still finish it.
        """
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM flows WHERE state = ?", (state,)).fetchone()
            if row is None:
                raise StateError(
                    "The callback's state is unknown",
                    hint="Start again from a fresh authorization link "
                    "(client.get_user_authorization_url()); links from another machine or an "
                    "old session do not work here.",
                )
            if row["status"] != "pending":
                raise StateError(
                    "This authorization link was already used",
                    hint="Each link works once: get a fresh one with "
                    "client.get_user_authorization_url().",
                )
            if check is not None:
                check(self._flow(row))
            if row["expires_at"] <= now:
                db.execute(
                    "UPDATE flows SET status = 'error', error = ?, finished_at = ? WHERE state = ?",
                    (FLOW_EXPIRED.to_json(), now, state),
                )
                raise StateError(
                    "This authorization link expired",
                    hint="Get a fresh one with client.get_user_authorization_url() and use it "
                    "within its lifetime.",
                )
            db.execute("UPDATE flows SET status = 'exchanging' WHERE state = ?", (state,))
            flow = self._flow(row)
            # The exchange needs the client secret: it lives once, in providers.
            provider = self._with_secret(db, flow.provider) if flow.provider else None
        return dataclasses.replace(flow, status="exchanging", provider=provider)

    def finish_flow(
        self,
        state: str,
        *,
        error: FlowError | None = None,
        exchange: dict[str, Any] | None = None,
    ) -> None:
        """Mark a consumed flow done, or failed with ``error``; keep the redacted ``exchange``.

        Neither holds a secret: the kernel shows the exchange in its HTTP log.
        """
        with self._transaction() as db:
            db.execute(
                "UPDATE flows SET status = ?, error = ?, finished_at = ?, exchange = ? "
                "WHERE state = ?",
                (
                    "error" if error else "done",
                    error.to_json() if error else None,
                    time.time(),
                    json.dumps(exchange) if exchange else None,
                    state,
                ),
            )

    def get_flow(self, state: str) -> PendingFlow | None:
        """The flow for ``state`` in whatever status it is, or None."""
        with self._transaction(write=False) as db:
            row = db.execute("SELECT * FROM flows WHERE state = ?", (state,)).fetchone()
        return self._flow(row) if row else None

    def latest_flow(
        self, alias: str, user: str, client_ref: str | None = None
    ) -> PendingFlow | None:
        """The most recently started flow for (alias, user) (of one client, if given), or None."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM flows WHERE alias = ? AND user = ? "
                "AND (? IS NULL OR client_ref = ?) ORDER BY created_at DESC LIMIT 1",
                (alias, user, client_ref, client_ref),
            ).fetchone()
        return self._flow(row) if row else None

    def finished_flow_since(
        self, alias: str, user: str, since: float, client_ref: str | None = None
    ) -> PendingFlow | None:
        """The latest flow for (alias, user) (of one client, if given) that ended since ``since``."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM flows WHERE alias = ? AND user = ? AND finished_at >= ? "
                "AND (? IS NULL OR client_ref = ?) ORDER BY finished_at DESC LIMIT 1",
                (alias, user, since, client_ref, client_ref),
            ).fetchone()
        return self._flow(row) if row else None

    def count_flows(self) -> int:
        """How many flow rows the store holds (to show it stays bounded)."""
        with self._transaction(write=False) as db:
            return int(db.execute("SELECT COUNT(*) FROM flows").fetchone()[0])

    # tokens ------------------------------------------------------------------------------

    def get_token(self, alias: str, user: str) -> TokenRecord | None:
        """The stored token for (alias, user), or None."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM tokens WHERE alias = ? AND user = ?", (alias, user)
            ).fetchone()
        return self._record(row) if row else None

    def _record(self, row: sqlite3.Row) -> TokenRecord:
        aad = _token_aad(row["alias"], row["user"], row["provider"])
        return TokenRecord(
            row["alias"],
            row["user"],
            AuthData.from_json(self._open(row["data"], aad)),
            row["version"],
            row["updated_at"],
            row["provider"],
        )

    def list_tokens(self) -> list[TokenRecord]:
        """Every stored token, ordered by alias and user."""
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT * FROM tokens ORDER BY alias, user").fetchall()
        return [self._record(row) for row in rows]

    def put_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str | None = None,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a token atomically, with the ``provider`` identity it was issued by.

        With ``expect_version``, only if nobody wrote since: returns the new record, or None
        when ``expect_version`` no longer matches.
        """
        with self._transaction() as db:
            self._writable(db)
            return self._write_token(db, alias, user, data, provider, expect_version)[0]

    def _write_token(
        self,
        db: sqlite3.Connection,
        alias: str,
        user: str,
        data: AuthData,
        provider: str | None,
        expect_version: int | None,
    ) -> tuple[TokenRecord | None, bool]:
        """Write the tokens row in the caller's transaction: (the record or None, whether new)."""
        row = db.execute(
            "SELECT version FROM tokens WHERE alias = ? AND user = ?", (alias, user)
        ).fetchone()
        current = row["version"] if row else 0
        if expect_version is not None and current != expect_version:
            return None, row is None
        now = time.time()
        db.execute(
            "INSERT OR REPLACE INTO tokens (alias, user, data, version, updated_at, provider) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                alias,
                user,
                self._seal(data.to_json(), _token_aad(alias, user, provider)),
                current + 1,
                now,
                provider,
            ),
        )
        return TokenRecord(alias, user, data, current + 1, now, provider), row is None

    def delete_token(self, alias: str, user: str, *, expect_version: int | None = None) -> bool:
        """Delete the stored token; False when there was none (or it changed meanwhile)."""
        with self._transaction() as db:
            if expect_version is None:
                cur = db.execute("DELETE FROM tokens WHERE alias = ? AND user = ?", (alias, user))
            else:
                cur = db.execute(
                    "DELETE FROM tokens WHERE alias = ? AND user = ? AND version = ?",
                    (alias, user, expect_version),
                )
            if cur.rowcount > 0:
                db.execute(
                    "DELETE FROM held_refresh_tokens WHERE alias = ? AND user = ?", (alias, user)
                )
            return cur.rowcount > 0

    # held refresh tokens: declared providers, whose refresh token only the server reads -----

    def put_held_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a declared provider's token: its refresh token apart, where kernels never read.

        The ``tokens`` row (which kernels read) gets ``data`` without its refresh token; the
        refresh token goes to ``held_refresh_tokens``, in the same transaction. A ``data``
        without a refresh token keeps the held one (providers that do not rotate).
        """
        public = dataclasses.replace(data, refresh_token=None)
        with self._transaction() as db:
            self._writable(db)
            record, new = self._write_token(db, alias, user, public, provider, expect_version)
            if record is None:
                return None
            if data.refresh_token:
                db.execute(
                    "INSERT OR REPLACE INTO held_refresh_tokens "
                    "(alias, user, provider, refresh_token) VALUES (?, ?, ?, ?)",
                    (
                        alias,
                        user,
                        provider,
                        self._seal(data.refresh_token, _held_aad(alias, user, provider)),
                    ),
                )
            elif new or expect_version is None:
                # A new authorization without a refresh token: an older one must not linger.
                db.execute(
                    "DELETE FROM held_refresh_tokens WHERE alias = ? AND user = ?", (alias, user)
                )
        return record

    def get_held_refresh_token(self, alias: str, user: str, provider: str) -> str | None:
        """The refresh token held apart for a declared provider's (alias, user), or None."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM held_refresh_tokens WHERE alias = ? AND user = ? AND provider = ?",
                (alias, user, provider),
            ).fetchone()
        if row is None:
            return None
        return self._open(row["refresh_token"], _held_aad(alias, user, row["provider"]))

    # leases: one refresh at a time per (alias, user), across processes --------------------

    def acquire_lease(self, alias: str, user: str, owner: str, ttl: float) -> bool:
        """Take the refresh lease for (alias, user) unless a live one is held by another owner."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT owner, expires_at FROM leases WHERE alias = ? AND user = ?", (alias, user)
            ).fetchone()
            if row is not None and row["owner"] != owner and row["expires_at"] > now:
                return False
            db.execute(
                "INSERT OR REPLACE INTO leases (alias, user, owner, expires_at) VALUES (?, ?, ?, ?)",
                (alias, user, owner, now + ttl),
            )
            return True

    def release_lease(self, alias: str, user: str, owner: str) -> None:
        """Give the lease back (only if we still hold it)."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM leases WHERE alias = ? AND user = ? AND owner = ?",
                (alias, user, owner),
            )


_stores: dict[tuple[Path, str | bytes | None], Store] = {}
_stores_lock = threading.Lock()


def open_store(
    path: str | os.PathLike[str] | None = None, *, key: str | bytes | None = None
) -> Store:
    """Open (once per process, path and key) the store at ``path`` or the default location.

    ``key`` seals the secret columns; without it, ``CHAT_OAUTH2_NB_STORE_KEY``, the hub (in a
    hub-spawned server) or ``keyring`` is asked when the store is first opened.
    """
    resolved = Path(path) if path is not None else default_store_path()
    with _stores_lock:
        store = _stores.get((resolved, key))
        if store is None:
            store = _stores[(resolved, key)] = Store(resolved, key=key)
        return store
