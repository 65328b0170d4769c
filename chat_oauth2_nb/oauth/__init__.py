"""The OAuth2 protocol without I/O, in rooms shaped like the specifications.

- :mod:`~chat_oauth2_nb.oauth.models`: tokens (:class:`AuthData`), prepared requests, the
  provider's answers and the masked record of an exchange.
- :mod:`~chat_oauth2_nb.oauth.requests`: state, PKCE, the authorization URL and the token,
  refresh, revocation and introspection requests (RFC 6749, 7009, 7636, 7662).
- :mod:`~chat_oauth2_nb.oauth.answers`: token and error answers read into tokens or typed
  errors (RFC 6749 §5), introspection answers (RFC 7662).
- :mod:`~chat_oauth2_nb.oauth.device`: the device authorization grant (RFC 8628).
- :mod:`~chat_oauth2_nb.oauth.redaction`: masks, and every encoding of every secret.

Request preparation and PKCE come from Authlib's protocol modules; these rooms add the
strict parsing a notebook user needs: every bad answer becomes a typed error that names
what was wrong, and never repeats a secret. The one transport (:mod:`.transport`) and the
id_token checks (:mod:`.oidc`) are the only rooms here that do I/O.
"""

from __future__ import annotations

from ..config import same_issuer
from .answers import (
    MAX_EXPIRES_IN,
    MAX_FIELD_CHARS,
    parse_error_response,
    parse_introspection,
    parse_token_response,
    token_from_answer,
    transport_error,
)
from .device import (
    DEFAULT_POLL_INTERVAL,
    DEVICE_CODE_GRANT_TYPE,
    MAX_POLL_WAIT,
    SLOW_DOWN_STEP,
    DeviceAuthorization,
    DevicePending,
    DevicePollOutcome,
    classify_device_poll,
    device_authorization_request,
    device_code_expired_error,
    device_poll_backoff,
    device_token_request,
    parse_device_authorization,
)
from .models import MAX_ANSWER_BYTES, AuthData, HttpExchange, HttpRequest, ProviderAnswer, utcnow
from .redaction import (
    CREDENTIAL_PARAMS,
    is_credential_field,
    mask,
    redact,
    redact_response_body,
    secret_forms,
)
from .requests import (
    authorization_url,
    client_credentials_request,
    code_exchange_request,
    introspection_request,
    new_code_verifier,
    new_state,
    refresh_request,
    revoke_request,
)

__all__ = [
    "CREDENTIAL_PARAMS",
    "DEFAULT_POLL_INTERVAL",
    "DEVICE_CODE_GRANT_TYPE",
    "MAX_ANSWER_BYTES",
    "MAX_EXPIRES_IN",
    "MAX_FIELD_CHARS",
    "MAX_POLL_WAIT",
    "SLOW_DOWN_STEP",
    "AuthData",
    "DeviceAuthorization",
    "DevicePending",
    "DevicePollOutcome",
    "HttpExchange",
    "HttpRequest",
    "ProviderAnswer",
    "authorization_url",
    "classify_device_poll",
    "client_credentials_request",
    "code_exchange_request",
    "device_authorization_request",
    "device_code_expired_error",
    "device_poll_backoff",
    "device_token_request",
    "introspection_request",
    "is_credential_field",
    "mask",
    "new_code_verifier",
    "new_state",
    "parse_device_authorization",
    "parse_error_response",
    "parse_introspection",
    "parse_token_response",
    "redact",
    "redact_response_body",
    "refresh_request",
    "revoke_request",
    "same_issuer",
    "secret_forms",
    "token_from_answer",
    "transport_error",
    "utcnow",
]
