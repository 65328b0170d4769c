"""The device authorization grant (RFC 8628): its requests, its answers, and how to poll.

No redirect: the person opens a link on any device and types a code; the kernel polls the
token endpoint with the device code (a credential) until they approve, deny, or it expires.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

from authlib.oauth2.rfc6749.parameters import prepare_token_request

from ..config import ProviderConfig
from ..errors import (
    AuthorizationDeniedError,
    ConfigurationError,
    DeviceAuthorizationError,
    DeviceCodeExpiredError,
    OAuth2Error,
    ProviderError,
    TokenExchangeError,
    hint_for,
)
from ._bodies import content_kind, load_answer, seconds
from .answers import MAX_EXPIRES_IN, MAX_FIELD_CHARS, parse_error_response, parse_token_response
from .models import AuthData, HttpRequest, utcnow
from .redaction import redact
from .requests import authenticated_request

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "DEVICE_CODE_GRANT_TYPE",
    "MAX_POLL_WAIT",
    "MIN_POLL_INTERVAL",
    "SLOW_DOWN_STEP",
    "DeviceAuthorization",
    "DevicePending",
    "DevicePollOutcome",
    "classify_device_poll",
    "device_authorization_request",
    "device_code_expired_error",
    "device_poll_backoff",
    "device_token_request",
    "parse_device_authorization",
    "shown_host",
]

log = logging.getLogger("chat_oauth2_nb.device")


DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"

# RFC 8628 §3.5: "the interval MUST be increased by 5 seconds" on every slow_down.
SLOW_DOWN_STEP = 5.0

# RFC 8628 §3.2: without an interval the client waits 5 seconds between polls.
DEFAULT_POLL_INTERVAL = 5.0

# The shortest wait between two polls, whatever the provider says: an answer with
# ``interval: 0`` would otherwise make the kernel hammer the token endpoint. RFC 8628's
# default (§3.2) is the floor. Read when an answer is parsed, so a test of the polling
# mechanics against a fast local provider may lower it (monkeypatch), and nothing else does.
MIN_POLL_INTERVAL = 5.0

# The longest a poller waits between two polls, however the provider answers; a longer wait
# would let the code expire before the next poll sees the approval.
MAX_POLL_WAIT = 300.0

# User codes are read and typed by people (RFC 8628 §6.1: short, case-insensitive).
MAX_USER_CODE_CHARS = 128
MAX_URI_CHARS = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


@dataclasses.dataclass(frozen=True, repr=False)
class DeviceAuthorization:
    """What the device authorization endpoint answered (RFC 8628 §3.2): show the person the
    ``user_code`` and ``verification_uri``; keep ``device_code`` (a credential) for polling."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: dt.datetime
    interval: float = DEFAULT_POLL_INTERVAL

    @property
    def link(self) -> str:
        """The page to link: the complete URI (code filled in) when given, else the plain one."""
        return self.verification_uri_complete or self.verification_uri

    @property
    def verification_host(self) -> str:
        """The host the link opens (``host`` or ``host:port``), to show next to the link.

        Both URIs share one origin (the complete one is dropped otherwise), so this names
        where either goes. Internationalised names are shown in their ASCII (punycode) form,
        so a look-alike host cannot pass for a familiar one.
        """
        return shown_host(self.verification_uri)

    def __repr__(self) -> str:
        # The device_code is a bearer credential until it expires: never shown, not even masked.
        return (
            f"DeviceAuthorization(user_code={self.user_code!r}, "
            f"verification_uri={self.verification_uri!r}, "
            f"verification_uri_complete={self.verification_uri_complete!r}, "
            f"expires_at={self.expires_at.isoformat(timespec='seconds')!r}, "
            f"interval={self.interval:g})"
        )

    __str__ = __repr__

    def expires_in(self, now: dt.datetime | None = None) -> float:
        """Seconds until the codes expire (negative once they have)."""
        return (self.expires_at - (now or utcnow())).total_seconds()

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        """True once the codes have expired: polling can only answer expired_token then."""
        return self.expires_in(now) <= 0

    def to_json(self) -> str:
        """Serialise for the store (with the device code: store it where secrets go)."""
        return json.dumps(
            {
                "device_code": self.device_code,
                "user_code": self.user_code,
                "verification_uri": self.verification_uri,
                "verification_uri_complete": self.verification_uri_complete,
                "expires_at": self.expires_at.isoformat(),
                "interval": self.interval,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DeviceAuthorization:
        """Load what :meth:`to_json` wrote."""
        raw = json.loads(text)
        return cls(
            device_code=raw["device_code"],
            user_code=raw["user_code"],
            verification_uri=raw["verification_uri"],
            verification_uri_complete=raw["verification_uri_complete"],
            expires_at=dt.datetime.fromisoformat(raw["expires_at"]),
            interval=float(raw["interval"]),
        )


@dataclasses.dataclass(frozen=True)
class DevicePending:
    """Keep polling: wait ``wait`` seconds, then poll again; pass ``interval`` and ``failures``
    to the next :func:`classify_device_poll`.

    ``reason`` is ``authorization_pending``, ``slow_down`` (``interval`` grew by 5 s, RFC 8628
    §3.5) or ``retry`` (the provider failed; ``error`` says how, ``wait`` backs off).
    """

    reason: str
    interval: float
    wait: float
    failures: int = 0
    error: ProviderError | None = None


DevicePollOutcome = AuthData | DevicePending | OAuth2Error


def device_authorization_request(config: ProviderConfig, scopes: Iterable[str] = ()) -> HttpRequest:
    """Prepare the device authorization request (RFC 8628 §3.1), client authenticated as at /token."""
    if config.device_authorization_uri is None:
        raise ConfigurationError(
            "deviceAuthorizationUri",
            "is missing, so this provider cannot be used with a device code",
            "Put the provider's device authorization endpoint there (discover_config() fills "
            "it when the provider advertises one), or authorize with a redirect instead.",
        )
    scope = " ".join(scopes)
    body = urlencode([("scope", scope)]) if scope else ""
    return authenticated_request(config, config.device_authorization_uri, body)


def device_token_request(config: ProviderConfig, device_code: str) -> HttpRequest:
    """Prepare one poll of the token endpoint with the device code (RFC 8628 §3.4)."""
    body = prepare_token_request(DEVICE_CODE_GRANT_TYPE, device_code=device_code)
    request = authenticated_request(config, config.access_token_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, device_code))


def _device_field_error(
    name: str,
    problem: str,
    status: int,
    shown: object,
    secrets: tuple[str, ...],
    client_id: str | None,
) -> DeviceAuthorizationError:
    # Masked before it is cut short, so no secret can survive as a cut-off prefix.
    preview = redact(repr(shown), secrets, client_id)[:80]
    return DeviceAuthorizationError(
        f"Device authorization failed: the answer's {name} {problem} (got {type(shown).__name__} "
        f"{preview})",
        status_code=status,
        hint="Check deviceAuthorizationUri points at the provider's device authorization "
        "endpoint (RFC 8628).",
    )


def shown_host(uri: str) -> str:
    """The host ``uri`` opens, as a person should read it: ASCII (punycode), with its port."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        # Not a valid IDN: escaped, so no non-ASCII look-alike is shown either.
        host = host.encode("ascii", "backslashreplace").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port is not None else host


def _split(uri: str) -> SplitResult | None:
    """``uri`` split, or None when its host or port cannot be read (``[::x``, ``:99999``)."""
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises for a port out of range or not a number
    except ValueError:
        return None
    return parts


def _origin(uri: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in (RFC 6454 §4)."""
    parts = urlsplit(uri)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _device_uri(
    name: str, value: object, status: int, secrets: tuple[str, ...], client_id: str | None
) -> str:
    # Shown to the person as a link: only http(s), never javascript: or data:; no user info,
    # since "https://accounts.example@evil.example/" reads as the first host and opens the
    # second (RFC 3986 §7.6).
    if isinstance(value, str) and 0 < len(value) <= MAX_URI_CHARS and not _CONTROL.search(value):
        parts = _split(value)
        if (
            parts
            and parts.scheme in ("https", "http")
            and parts.hostname
            and "@" not in parts.netloc
        ):
            return value
    raise _device_field_error(
        name,
        f"is not an absolute http(s) URL without user info, of at most {MAX_URI_CHARS} characters",
        status,
        value,
        secrets,
        client_id,
    )


def _device_answer(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    secrets: tuple[str, ...],
    client_id: str | None,
) -> dict[str, Any]:
    """A 2xx answer's fields, or the error it is (RFC 8628 §3.3: errors as in RFC 6749 §5.2)."""
    what = "Device authorization"
    data = load_answer(headers, content)
    if not 200 <= status < 300 or (data is not None and "error" in data):
        raise parse_error_response(
            DeviceAuthorizationError,
            what,
            status if status >= 300 else 400,
            headers,
            content,
            secrets,
            client_id,
        )
    if data is None:
        raise DeviceAuthorizationError(
            f"{what} failed: the endpoint answered HTTP {status} with "
            f"{content_kind(headers, content)} that is not a JSON object; check "
            "deviceAuthorizationUri points at the device authorization endpoint, not a web page",
            status_code=status,
        )
    return data


def _device_code(data: Mapping[str, Any], status: int) -> str:
    device_code = data.get("device_code")
    if not isinstance(device_code, str) or not 0 < len(device_code) <= MAX_FIELD_CHARS:
        # Never shown, not even in part: it is the credential this answer hands over.
        raise DeviceAuthorizationError(
            "Device authorization failed: the answer's device_code is missing or not a string "
            f"of 1 to {MAX_FIELD_CHARS} characters (RFC 8628 §3.2 requires it)",
            status_code=status,
            hint="Check deviceAuthorizationUri points at the provider's device authorization "
            "endpoint (RFC 8628).",
        )
    return device_code


def _user_code(
    data: Mapping[str, Any], status: int, secrets: tuple[str, ...], client_id: str | None
) -> str:
    user_code = data.get("user_code")
    if (
        not isinstance(user_code, str)
        or not user_code.strip()
        or len(user_code) > MAX_USER_CODE_CHARS
        or _CONTROL.search(user_code)
    ):
        raise _device_field_error(
            "user_code",
            f"is not a printable string of 1 to {MAX_USER_CODE_CHARS} characters",
            status,
            user_code,
            secrets,
            client_id,
        )
    return user_code.strip()


def _verification_uris(
    data: Mapping[str, Any], status: int, secrets: tuple[str, ...], client_id: str | None
) -> tuple[str, str | None]:
    """``verification_uri`` (or Google's ``verification_url``) and the optional complete one."""
    name = "verification_uri" if "verification_uri" in data else "verification_url"
    verification_uri = _device_uri(name, data.get(name), status, secrets, client_id)
    complete = data.get("verification_uri_complete")
    if complete in (None, ""):
        return verification_uri, None
    complete = _device_uri("verification_uri_complete", complete, status, secrets, client_id)
    if _origin(complete) != _origin(verification_uri):
        # The panel links the complete URI under the text of the plain one: on another origin
        # it would send the person somewhere the text does not say. Dropped, not refused: the
        # person can still open verification_uri and type the user code (RFC 8628 §3.3.1 makes
        # the complete URI an optional convenience).
        log.warning(
            "device authorization: verification_uri_complete is on another origin (%s) than "
            "verification_uri (%s); only verification_uri is shown",
            shown_host(complete),
            shown_host(verification_uri),
        )
        return verification_uri, None
    return verification_uri, complete


def _device_timing(
    data: Mapping[str, Any], status: int, secrets: tuple[str, ...], client_id: str | None
) -> tuple[float, float]:
    """How long the codes live and how long to wait between polls, in seconds."""
    expires_in = seconds(data.get("expires_in"))
    if expires_in is None or expires_in <= 0:
        raise _device_field_error(
            "expires_in",
            "is not a number of seconds > 0 (RFC 8628 §3.2 requires it)",
            status,
            data.get("expires_in"),
            secrets,
            client_id,
        )
    expires_in = min(expires_in, MAX_EXPIRES_IN)
    raw_interval = data.get("interval")
    interval = DEFAULT_POLL_INTERVAL if raw_interval in (None, "") else seconds(raw_interval)
    if interval is None or interval < 0:
        raise _device_field_error(
            "interval", "is not a number of seconds >= 0", status, raw_interval, secrets, client_id
        )
    # Never faster than the floor; never longer than the codes live (or than MAX_POLL_WAIT).
    interval = max(interval, MIN_POLL_INTERVAL)
    return expires_in, min(interval, expires_in, MAX_POLL_WAIT)


def parse_device_authorization(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    received_at: dt.datetime,
    secrets: Iterable[str | None] = (),
    client_id: str | None = None,
) -> DeviceAuthorization:
    """Validate the device authorization endpoint's answer (RFC 8628 §3.2, §3.3 errors).

    ``verification_url`` (Google's spelling) stands in for ``verification_uri``; ``interval``
    defaults to 5 s. ``expires_at`` counts from ``received_at`` on this machine's clock.

    Raises:
        DeviceAuthorizationError: the provider refused, or the answer is malformed. The
            message never contains the device code.
    """
    known: tuple[str, ...] = tuple(s for s in secrets if s)
    data = _device_answer(status, headers, content, known, client_id)
    device_code = _device_code(data, status)
    known = (*known, device_code)
    user_code = _user_code(data, status, known, client_id)
    verification_uri, verification_uri_complete = _verification_uris(data, status, known, client_id)
    expires_in, interval = _device_timing(data, status, known, client_id)
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=verification_uri,
        verification_uri_complete=verification_uri_complete,
        expires_at=received_at + dt.timedelta(seconds=expires_in),
        interval=interval,
    )


def device_poll_backoff(
    interval: float,
    failures: int,
    error: ProviderError | None = None,
    retry_after: float | None = None,
) -> DevicePending:
    """Keep polling after a failed poll (no answer, 5xx, 429): wait twice as long each time.

    RFC 8628 §3.5 asks clients to reduce their polling frequency on connection timeouts,
    doubling the interval being the recommended way. ``failures`` counts the failed polls
    before this one; ``retry_after`` (seconds the provider asked for) is honoured.
    """
    count = failures + 1
    wait = interval * (2 ** min(count, 16)) if interval > 0 else float(min(2**count, 64))
    if retry_after is not None:
        wait = max(wait, retry_after)
    return DevicePending("retry", interval, min(wait, MAX_POLL_WAIT), count, error)


def device_code_expired_error(
    *,
    error_description: str | None = None,
    status_code: int | None = None,
    expired_at: dt.datetime | None = None,
) -> DeviceCodeExpiredError:
    """The error for a device code that expired unapproved (from the provider or our clock)."""
    when = f" at {expired_at.isoformat(timespec='seconds')}" if expired_at else ""
    return DeviceCodeExpiredError(
        f"The device code expired{when} before the person approved it",
        error="expired_token",
        error_description=error_description,
        status_code=status_code,
        hint=hint_for("expired_token"),
    )


def _poll_refused(
    failed: ProviderError, status: int, interval: float, failures: int
) -> DevicePollOutcome:
    """What an error answer to a poll means: keep polling, slow down, back off, or stop."""
    code = failed.error or ""
    if code == "authorization_pending":
        return DevicePending(code, interval, interval)
    if code == "slow_down":
        slower = min(interval + SLOW_DOWN_STEP, MAX_POLL_WAIT)
        return DevicePending(code, slower, slower)
    if code == "access_denied":
        return AuthorizationDeniedError(
            "The authorization was denied at the verification page",
            error=code,
            error_description=failed.error_description,
            status_code=status,
        )
    if code == "expired_token":
        return device_code_expired_error(
            error_description=failed.error_description, status_code=status
        )
    if code in _TRANSIENT_ERRORS or status == 429 or status >= 500:
        return device_poll_backoff(interval, failures, failed, failed.retry_after)
    if code == "invalid_grant":
        return TokenExchangeError(
            failed.message,
            error=code,
            error_description=failed.error_description,
            status_code=status,
            hint="The device code is unknown, already used or revoked: start again with "
            "client.start_device_authorization().",
        )
    return failed


def classify_device_poll(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    interval: float,
    received_at: dt.datetime,
    failures: int = 0,
    requested_scopes: Iterable[str] = (),
    secrets: Iterable[str | None] = (),
    client_id: str | None = None,
) -> DevicePollOutcome:
    """Tell a poller what one token endpoint answer to a device code poll means (RFC 8628 §3.5).

    Returns (never raises for the provider's answer):
        AuthData: done, the token to store.
        DevicePending: keep polling, ``wait`` seconds from now, with ``interval`` and
            ``failures`` passed to the next call (``slow_down`` adds 5 s to the interval;
            5xx, 429, ``server_error`` and ``temporarily_unavailable`` back off).
        OAuth2Error: stop; raise it. ``AuthorizationDeniedError`` for ``access_denied``,
            ``DeviceCodeExpiredError`` for ``expired_token``, ``TokenExchangeError`` for any
            other error or a malformed token.

    ``interval`` is the poller's current interval (``DeviceAuthorization.interval`` at
    first); ``secrets`` are the request's (``device_token_request(...).secrets``), so no
    message repeats the device code even when the provider echoes it.
    """
    what = "Token request for the device code"
    secrets = tuple(secrets)
    data = load_answer(headers, content)
    # GitHub answers its device errors with HTTP 200, so the error field decides, not status.
    if 200 <= status < 300 and (data is None or "error" not in data):
        try:
            return parse_token_response(
                TokenExchangeError,
                what,
                status,
                headers,
                content,
                received_at=received_at,
                requested_scopes=requested_scopes,
                secrets=secrets,
                client_id=client_id,
            )
        except TokenExchangeError as error:
            return error
    failed = parse_error_response(
        TokenExchangeError,
        what,
        status if status >= 300 else 400,
        headers,
        content,
        secrets,
        client_id,
    )
    return _poll_refused(failed, status, float(interval), failures)
