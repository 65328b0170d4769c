"""Reading the provider's answers (RFC 6749 §5.1/§5.2, RFC 7662 §2.2) into tokens or typed errors.

Strict, because a notebook user debugging a provider needs it: every bad answer becomes a
typed error that names what was wrong, and never repeats a secret.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from ..errors import ProviderError
from ._bodies import content_kind, load_answer, load_json, seconds
from .models import MAX_ANSWER_BYTES, AuthData, HttpRequest, ProviderAnswer, utcnow
from .redaction import is_credential_field, mask_tree, redact

__all__ = [
    "MAX_EXPIRES_IN",
    "MAX_FIELD_CHARS",
    "parse_error_response",
    "parse_introspection",
    "parse_token_response",
    "token_from_answer",
    "transport_error",
]

E = TypeVar("E", bound=ProviderError)

# The longest token or scope string accepted from a provider.
MAX_FIELD_CHARS = 16 * 1024
# expires_in beyond this is taken as "no practical expiry" (1e300 would overflow a datetime).
MAX_EXPIRES_IN = 10 * 365 * 86400.0


def transport_error(error_class: type[E], what: str, url: str, failure: str, timeout: float) -> E:
    """The typed error for a request that got no usable answer (the same words everywhere)."""
    if failure == "timeout":
        return error_class(
            f"{what} failed: the provider did not answer within {timeout:g} s ({url})",
            hint="Check the endpoint URL and the network; raise timeout= if the provider is slow.",
        )
    if failure == "deadline":
        return error_class(
            f"{what} failed: the provider's answer took more than {timeout:g} s in all ({url})",
            hint="The provider sends its answer too slowly: check the endpoint URL, or raise "
            "timeout= if the provider is known to be slow.",
        )
    if failure == "too_large":
        return error_class(
            f"{what} failed: the provider's answer is larger than {MAX_ANSWER_BYTES // 1024} KiB "
            f"({url}), far more than any token endpoint sends",
            hint="Check the endpoint URL points at the provider's token endpoint.",
        )
    return error_class(
        f"{what} failed: could not reach {url} ({failure})",
        hint="Check the endpoint URL, that the provider is up, and the network.",
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def parse_error_response(
    error_class: type[ProviderError],
    what: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    secrets: Iterable[str | None] = (),
    client_id: str | None = None,
) -> ProviderError:
    """Turn a non-2xx (or unreadable) provider answer into a typed error, secrets masked."""
    secrets = tuple(secrets)
    data = load_answer(headers, content)
    retry_after = _retry_after(headers) if status in (429, 503) else None
    if data is not None and isinstance(data.get("error"), str):
        # A hostile or buggy provider may echo the request (code, secret) in its words.
        found: list[str] = []
        mask_tree(data, found)
        secrets = (*secrets, *found)
        description = data.get("error_description")
        return error_class(
            f"{what} failed",
            error=redact(data["error"][:200], secrets, client_id),
            error_description=redact(description[:1000], secrets, client_id)
            if isinstance(description, str)
            else None,
            status_code=status,
            retry_after=retry_after,
        )
    kind = content_kind(headers, content)
    if status == 429:
        detail = "the provider is rate limiting this client"
    elif status >= 500:
        detail = f"the provider failed (HTTP {status}, {kind})"
    else:
        detail = f"the provider answered HTTP {status} with {kind} instead of a JSON error"
    return error_class(f"{what} failed: {detail}", status_code=status, retry_after=retry_after)


def parse_introspection(
    error_class: type[ProviderError],
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    secrets: Iterable[str | None] = (),
    client_id: str | None = None,
) -> dict[str, Any]:
    """What the provider says about a token (RFC 7662 §2.2), credential fields left out."""
    what = "Introspecting the token"
    if not 200 <= status < 300:
        raise parse_error_response(error_class, what, status, headers, content, secrets, client_id)
    data = load_json(content)
    if not isinstance(data, dict) or not isinstance(data.get("active"), bool):
        raise error_class(
            f"{what} failed: the answer is not a JSON object with a boolean 'active' "
            "(RFC 7662 §2.2); check introspectionUri",
            status_code=status,
        )
    return {key: value for key, value in data.items() if not is_credential_field(str(key))}


def _bounded_string(
    error_class: type[ProviderError], what: str, status: int, name: str, value: object
) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if len(value) > MAX_FIELD_CHARS:
        raise error_class(
            f"{what} failed: the token response's {name} is {len(value)} characters long, more "
            f"than the {MAX_FIELD_CHARS} this client accepts from any provider",
            status_code=status,
            hint="Check accessTokenUri points at the provider's token endpoint.",
        )
    return value


def _token_fields(
    error_class: type[ProviderError],
    what: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    secrets: tuple[str | None, ...],
    client_id: str | None,
) -> dict[str, Any]:
    """A 2xx token answer's fields, or the error it is (some providers answer errors with 200)."""
    data = load_answer(headers, content)
    if data is None:
        kind = content_kind(headers, content)
        raise error_class(
            f"{what} failed: the token endpoint answered HTTP {status} with {kind} that is "
            "not a JSON object or a token form; check accessTokenUri points at the token "
            "endpoint, not a web page",
            status_code=status,
        )
    if "error" in data:
        raise parse_error_response(error_class, what, 400, headers, content, secrets, client_id)
    return data


def _required_string(
    error_class: type[ProviderError],
    what: str,
    status: int,
    data: Mapping[str, Any],
    name: str,
    missing: str,
) -> str:
    value = _bounded_string(error_class, what, status, name, data.get(name))
    if value is None:
        raise error_class(f"{what} failed: the token response has no {missing}", status_code=status)
    return value


def _expires_at(
    error_class: type[ProviderError],
    what: str,
    status: int,
    raw: object,
    received_at: dt.datetime,
    secrets: tuple[str | None, ...],
    client_id: str | None,
) -> dt.datetime | None:
    """When the token expires, counted from ``received_at`` on this machine's clock."""
    if raw in (None, ""):
        return None
    # Some providers (Azure AD v1, older Facebook) send "3599" as a string.
    value = seconds(raw)
    if value is None or value < 0:
        shown = redact(repr(raw)[:40], secrets, client_id)
        raise error_class(
            f"{what} failed: the token response's expires_in is {type(raw).__name__} "
            f"{shown}, not a number of seconds >= 0",
            status_code=status,
        )
    return received_at + dt.timedelta(seconds=min(value, MAX_EXPIRES_IN))


def _granted_scope(
    error_class: type[ProviderError],
    what: str,
    status: int,
    raw: object,
    previous: AuthData | None,
    requested_scopes: Iterable[str],
) -> str:
    scope = raw
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    if isinstance(scope, str) and "," in scope and not any(c.isspace() for c in scope):
        # GitHub (and Facebook, older Slack) separate granted scopes by commas. RFC 6749
        # §3.3 allows a comma inside one scope token, but no provider we know names its
        # scopes so, while comma lists are common: "repo,gist" reads as two scopes.
        scope = " ".join(part for part in scope.split(",") if part)
    if isinstance(scope, str) and scope:
        scope = _bounded_string(error_class, what, status, "scope", scope)
    if not isinstance(scope, str):
        # RFC 6749 §5.1: omitted scope means "as requested" (or, on refresh, as before).
        scope = previous.scope if previous else " ".join(requested_scopes)
    return scope


def parse_token_response(
    error_class: type[ProviderError],
    what: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    received_at: dt.datetime,
    previous: AuthData | None = None,
    requested_scopes: Iterable[str] = (),
    secrets: Iterable[str | None] = (),
    client_id: str | None = None,
) -> AuthData:
    """Validate a token endpoint answer (RFC 6749 §5.1/§5.2) and build the AuthData to store.

    JSON and form-encoded answers are both read. ``expires_at`` counts from ``received_at``
    on this machine's clock, so a provider whose clock is off does not make tokens look
    expired. On refresh, ``previous`` supplies the refresh token and scope the provider may
    leave out (RFC 6749 §6).
    """
    secrets = tuple(secrets)
    if not 200 <= status < 300:
        raise parse_error_response(error_class, what, status, headers, content, secrets, client_id)
    data = _token_fields(error_class, what, status, headers, content, secrets, client_id)
    token = _required_string(error_class, what, status, data, "access_token", "access_token")
    secrets = (*secrets, token)
    token_type = _required_string(
        error_class, what, status, data, "token_type", "token_type (RFC 6749 §5.1 requires it)"
    )
    expires_at = _expires_at(
        error_class, what, status, data.get("expires_in"), received_at, secrets, client_id
    )
    scope = _granted_scope(error_class, what, status, data.get("scope"), previous, requested_scopes)
    refresh_token = _bounded_string(
        error_class, what, status, "refresh_token", data.get("refresh_token")
    )
    id_token = _bounded_string(error_class, what, status, "id_token", data.get("id_token"))
    refresh_ends, refresh_life = _refresh_expiry(data, refresh_token, received_at)
    if previous is not None:
        if refresh_token is None:  # the same refresh token goes on: so does its end
            refresh_ends = previous.refresh_expires_at
            refresh_life = previous.refresh_lifetime
        refresh_token = refresh_token or previous.refresh_token
        id_token = id_token or previous.id_token
    return AuthData(
        token=token,
        token_type=token_type,
        expires_at=expires_at,
        scope=scope,
        refresh_token=refresh_token,
        id_token=id_token,
        obtained_at=received_at,
        # Verified claims stay with the id_token they were verified from.
        claims=previous.claims if previous and previous.id_token == id_token else None,
        refresh_expires_at=refresh_ends,
        refresh_lifetime=refresh_life,
    )


#: The names providers give the refresh token's lifetime: Keycloak, GitHub (and others).
_REFRESH_LIFETIME_FIELDS = ("refresh_expires_in", "refresh_token_expires_in")


def _refresh_expiry(
    data: Mapping[str, Any], refresh_token: str | None, received_at: dt.datetime
) -> tuple[dt.datetime | None, float | None]:
    """When a refresh token just issued ends, and its whole life; (None, None) when unknown.

    Keycloak's 0 means "does not expire" (offline tokens); anything unreadable counts as
    unknown rather than failing a grant that is otherwise fine.
    """
    if refresh_token is None:
        return None, None
    for name in _REFRESH_LIFETIME_FIELDS:
        value = seconds(data.get(name))
        if value is not None and value > 0:
            value = min(value, MAX_EXPIRES_IN)
            return received_at + dt.timedelta(seconds=value), float(value)
    return None, None


def token_from_answer(
    error_class: type[ProviderError],
    what: str,
    request: HttpRequest,
    answer: ProviderAnswer,
    *,
    timeout: float,
    previous: AuthData | None = None,
    requested_scopes: Iterable[str] = (),
) -> AuthData:
    """The token a token endpoint's answer to ``request`` carries, or its typed error.

    One reading for every grant, in the kernel (refresh, device polls) and the server (code
    exchange), so both sides say the same words about the same answer.
    """
    if answer.failure is not None:
        raise transport_error(error_class, what, request.url, answer.failure, timeout)
    return parse_token_response(
        error_class,
        what,
        answer.status or 0,
        answer.headers,
        answer.content,
        received_at=utcnow(),
        previous=previous,
        requested_scopes=requested_scopes,
        secrets=request.secrets,
        client_id=request.client_id,
    )
