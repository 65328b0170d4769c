"""private_key_jwt client authentication (RFC 7523 §2.2) against oidc-provider.

The client proves itself with a JWT signed by its private key, for every grant and for
revocation and introspection. The key comes from a file or the environment, never from a
cell's text; it and the assertions never reach a log, a repr, an error or the HTTP log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey
from support.oidc import OidcProvider, client, start_oidc_provider
from support.scan import assert_no_secret

from chat_oauth2_nb.clientkey import ASSERTION_TYPE, parse_client_key
from chat_oauth2_nb.errors import ConfigurationError, TokenRefreshError
from chat_oauth2_nb.notebook.client import OAuth2Client, create_oauth2_client
from chat_oauth2_nb.store import Store

KEYS = {
    "RS256": lambda: RSAKey.generate_key(2048),
    "ES256": lambda: ECKey.generate_key("P-256"),
    "Ed25519": lambda: OKPKey.generate_key("Ed25519"),
}


class Recorder(httpx.HTTPTransport):
    """The real network transport, keeping each request's form body (to read the assertions)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, list[str]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(parse_qs(request.read().decode()))
        return super().handle_request(request)

    def assertions(self) -> list[str]:
        return [a for body in self.bodies for a in body.get("client_assertion", [])]


def _public_jwks(key: Any, alg: str) -> dict[str, Any]:
    public = key.as_dict(private=False)
    return {"keys": [{**public, "kid": key.thumbprint(), "alg": alg, "use": "sig"}]}


def _pem(key: Any) -> str:
    return str(key.as_pem(private=True).decode())


def _secrets_of(pem: str) -> list[str]:
    """The PEM, and each line of its base64 body: a leak may be a piece of it."""
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return [pem, "".join(lines), *[line for line in lines if len(line) >= 16]]


@pytest.fixture
def key_file(tmp_path: Path) -> tuple[Path, Any]:
    key = KEYS["ES256"]()
    path = tmp_path / "client-key.pem"
    path.write_text(_pem(key))
    path.chmod(0o600)
    return path, key


def _provider(tmp_path: Path, key: Any, alg: str, **extra: Any) -> OidcProvider:
    machine = client(
        "keyed",
        auth_method="private_key_jwt",
        jwks=_public_jwks(key, alg),
        token_endpoint_auth_signing_alg=alg,
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        redirect_uris=["http://127.0.0.1/chat-oauth2/callback/keyed"],
        **extra,
    )
    return start_oidc_provider(
        tmp_path / "op", {"clients": [machine], "native_consent": "remembered"}
    )


@pytest.fixture
def keyed(tmp_path: Path, key_file: tuple[Path, Any]) -> Iterator[OidcProvider]:
    provider = _provider(tmp_path, key_file[1], "ES256")
    yield provider
    provider.stop()


def _client(op: OidcProvider, store: Store, alias: str = "keyed", **kwargs: Any) -> OAuth2Client:
    return create_oauth2_client(
        op.client_config(alias, scopes=("openid",)),
        client_id="keyed",
        store=store,
        mode="loopback",
        allow_insecure_http=True,
        **kwargs,
    )


def test_code_refresh_introspect_revoke_with_a_key_file(
    keyed: OidcProvider, key_file: tuple[Path, Any], store: Store, secret_log: Any
) -> None:
    path, key = key_file
    recorder = Recorder()
    person = _client(keyed, store, client_key=str(path), transport=recorder)
    try:
        assert person.config.client_auth_method == "private_key_jwt"
        link = person.get_user_authorization_url("ada")
        assert keyed.approve(link, "ada").status_code == 200
        data = person.wait_for_authorization("ada", timeout=60)
        assert data.refresh_token and data.claims and data.claims["sub"] == "ada"
        refreshed = person.refresh_user_access_token("ada")
        assert refreshed.token != data.token
        assert person.introspect_user_token("ada")["active"] is True
        assert person.revoke_user_access_token("ada") is True
        assert keyed.counters()["tokens"] == {
            "authorization_code:200": 1,
            "refresh_token:200": 1,
        }

        # Every request carried a fresh assertion: its own jti, a short life, the token
        # endpoint as audience, kid and alg from the key; never a client secret.
        assertions = recorder.assertions()
        # Refresh, introspection, two revocations (the code exchange went out from the one
        # completion, on its own connection; the provider's counter shows it succeeded).
        assert len(assertions) == len(recorder.bodies) == 4
        assert all(b["client_assertion_type"] == [ASSERTION_TYPE] for b in recorder.bodies)
        assert not any("client_secret" in b for b in recorder.bodies)
        token_endpoint = keyed.metadata()["token_endpoint"]
        jtis = set()
        for assertion in assertions:
            decoded = jwt.decode(assertion, key)
            claims, header = decoded.claims, decoded.header
            assert header["alg"] == "ES256" and header["kid"] == key.thumbprint()
            assert claims["iss"] == claims["sub"] == "keyed"
            assert claims["aud"] == token_endpoint
            assert 0 < claims["exp"] - claims["iat"] <= 60
            assert claims["exp"] <= time.time() + 60
            jtis.add(claims["jti"])
        assert len(jtis) == len(assertions)

        # Neither the key nor an assertion is in the log, the HTTP log, a repr, or the
        # panel's synced traits (what a notebook saves as widget state).
        from test_redaction import widget_state

        panel = person.panel("ada")
        saved = widget_state()
        panel.close()
        secrets = [*_secrets_of(path.read_text()), *assertions]
        assert_no_secret(saved, secrets, "the saved widget state")
        assert_no_secret(secret_log.text, secrets, "the log")
        assert_no_secret(repr(list(person.http_log)), secrets, "the HTTP log")
        assert_no_secret(repr(person) + repr(person.config), secrets, "the client's repr")
        assert_no_secret(json.dumps(person.config.to_mapping()), secrets, "the public config")
    finally:
        person.close()


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_client_credentials_with_the_key_from_the_environment(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch, alg: str
) -> None:
    """No person, no secret: a scheduled notebook's setup (the key in a file named by a variable)."""
    key = KEYS[alg]()
    path = tmp_path / "key.pem"
    path.write_text(_pem(key))
    op = _provider(tmp_path, key, alg)
    try:
        monkeypatch.setenv("CHAT_OAUTH2_NIGHTLY_CLIENT_KEY_FILE", str(path))
        monkeypatch.setenv("CHAT_OAUTH2_NIGHTLY_CLIENT_ID", "keyed")
        machine = create_oauth2_client(
            {**op.client_config("nightly", scopes=()), "grant": "client_credentials"},
            store=store,
            allow_insecure_http=True,
        )
        assert parse_client_key(path.read_text()).alg == alg
        assert "CHAT_OAUTH2_NIGHTLY_CLIENT_KEY_FILE" in str(machine.config.client_key_source)
        data = machine.get_access_token_for_user()
        assert data is not None and data.refresh_token is None
        assert machine.introspect_user_token()["client_id"] == "keyed"
        assert op.counters()["tokens"] == {"client_credentials:200": 1}
        machine.close()
    finally:
        op.stop()


def test_the_pem_text_in_the_environment_works_too(
    keyed: OidcProvider, key_file: tuple[Path, Any], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_OAUTH2_KEYED_CLIENT_KEY", key_file[0].read_text())
    machine = _client(keyed, store, grant="client_credentials")
    try:
        assert (
            machine.config.client_key_source
            == "the environment variable CHAT_OAUTH2_KEYED_CLIENT_KEY"
        )
        assert machine.get_access_token_for_user() is not None
    finally:
        machine.close()


def test_a_wrong_key_is_invalid_client_with_a_hint_naming_where_it_came_from(
    keyed: OidcProvider, tmp_path: Path, store: Store, secret_log: Any
) -> None:
    other = tmp_path / "not-registered.pem"
    pem = _pem(KEYS["ES256"]())
    other.write_text(pem)
    machine = _client(keyed, store, client_key=other, grant="client_credentials")
    try:
        with pytest.raises(TokenRefreshError) as caught:
            machine.get_access_token_for_user()
        error = caught.value
        assert error.error == "invalid_client"
        assert str(other) in (error.hint or "") and "public half" in (error.hint or "")
        assert parse_client_key(pem).kid in (error.hint or "")
        assert_no_secret(str(error) + secret_log.text, _secrets_of(pem), "the error and log")
    finally:
        machine.close()


def test_the_key_text_is_refused_as_an_argument(keyed: OidcProvider, store: Store) -> None:
    pem = _pem(KEYS["ES256"]())
    with pytest.raises(ConfigurationError, match="looks like the key itself") as caught:
        _client(keyed, store, client_key=pem)
    assert_no_secret(str(caught.value), _secrets_of(pem), "the error")
    with pytest.raises(ConfigurationError, match="looks like the key itself"):
        _client(keyed, store, client_key=json.dumps(KEYS["ES256"]().as_dict(private=True)))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not a key", "neither a PEM private key nor a JWK"),
        (RSAKey.generate_key(2048).as_pem(private=False).decode(), "public key"),
        ('{"kty": "oct", "k": "c2VjcmV0"}', "not RSA, EC or OKP"),
    ],
)
def test_an_unusable_key_file_says_why_and_where(
    keyed: OidcProvider, store: Store, tmp_path: Path, content: str, words: str
) -> None:
    path = tmp_path / "bad.pem"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=words) as caught:
        _client(keyed, store, client_key=path)
    assert str(path) in str(caught.value)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        _client(keyed, store, client_key=tmp_path / "missing.pem")


def test_a_jwk_file_gives_its_own_kid(tmp_path: Path, store: Store) -> None:
    key = KEYS["RS256"]()
    jwk = {**key.as_dict(private=True), "kid": "key-2026", "alg": "PS256"}
    path = tmp_path / "key.jwk"
    path.write_text(json.dumps(jwk))
    public = {**key.as_dict(private=False), "kid": "key-2026", "alg": "PS256", "use": "sig"}
    op = start_oidc_provider(
        tmp_path / "op",
        {
            "clients": [
                client(
                    "keyed",
                    auth_method="private_key_jwt",
                    jwks={"keys": [public]},
                    token_endpoint_auth_signing_alg="PS256",
                    grant_types=["client_credentials"],
                )
            ]
        },
    )
    try:
        machine = _client(op, store, client_key=path, grant="client_credentials")
        assert parse_client_key(path.read_text()).kid == "key-2026"
        assert machine.get_access_token_for_user() is not None
        machine.close()
    finally:
        op.stop()


def test_the_key_is_sealed_in_the_store_like_a_secret(
    keyed: OidcProvider, key_file: tuple[Path, Any], tmp_path: Path
) -> None:
    """The Jupyter server exchanges codes with the config the kernel stored: the key travels
    there sealed (a store key set), and comes back whole."""
    from chat_oauth2_nb.store import new_store_key

    sealed = Store(tmp_path / "sealed" / "store.sqlite3", key=new_store_key())
    person = _client(keyed, sealed, client_key=key_file[0])
    try:
        person.setup()
        back = sealed.get_provider("keyed")
        assert back is not None and back.client_secret == key_file[0].read_text()
        assert back.client_auth_method == "private_key_jwt"
        raw = (tmp_path / "sealed" / "store.sqlite3").read_bytes()
        assert_no_secret(
            raw.decode("latin-1"), _secrets_of(key_file[0].read_text()), "the store file"
        )
    finally:
        person.close()


def test_the_doctor_checks_the_key_against_the_provider(
    keyed: OidcProvider, key_file: tuple[Path, Any], store: Store, tmp_path: Path
) -> None:
    person = _client(keyed, store, client_key=key_file[0])
    try:
        report = person.diagnose()
        check = report["metadata:client_key"]
        assert check.verdict == "ok", check
        assert "ES256" in check.evidence and str(key_file[0]) in check.evidence
        # A made-up code reaches the provider's grant check: the assertion was accepted.
        assert report["credentials"].verdict == "ok", report["credentials"]
        assert_no_secret(str(report), _secrets_of(key_file[0].read_text()), "the report")
    finally:
        person.close()
    # A P-384 key signs ES384, which this provider does not take.
    p384 = tmp_path / "p384.pem"
    p384.write_text(_pem(ECKey.generate_key("P-384")))
    other = _client(keyed, store, alias="keyed", client_key=p384)
    try:
        check = other.diagnose()["metadata:client_key"]
        assert check.verdict == "fail" and "ES384" in check.evidence
    finally:
        other.close()


def test_against_the_demo_provider_every_grant_and_a_replayed_assertion(
    provider: Any, store: Store, tmp_path: Path
) -> None:
    """The demo provider (Authlib's RFC 7523 server side) takes the same client, once per jti."""
    key = KEYS["ES256"]()
    path = tmp_path / "demo-key.pem"
    path.write_text(_pem(key))
    client_id, secret = provider.register_client(
        auth_method="private_key_jwt", jwks=_public_jwks(key, "ES256")
    )
    assert secret is None
    recorder = Recorder()
    person = create_oauth2_client(
        provider.config(alias="demo"),
        client_id=client_id,
        client_key=path,
        mode="loopback",
        store=store,
        transport=recorder,
    )
    machine = create_oauth2_client(
        provider.config(alias="batch"),
        client_id=client_id,
        client_key=path,
        grant="client_credentials",
        store=store,
    )
    try:
        assert provider.approve(person.get_user_authorization_url("ada")).status_code == 200
        data = person.wait_for_authorization("ada", timeout=60)
        refreshed = person.refresh_user_access_token("ada")
        assert refreshed.token != data.token
        assert person.introspect_user_token("ada")["active"] is True
        token = machine.get_access_token_for_user()
        assert token is not None and provider.introspect(token.token)["active"] is True
        assert person.revoke_user_access_token("ada") is True
        assert provider.introspect(refreshed.token)["active"] is False
        # An assertion copied from a request (a proxy's log) is refused the second time.
        body = recorder.bodies[0]
        replay = httpx.post(
            provider.config()["accessTokenUri"],
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": body["client_assertion"][0],
            },
        )
        assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"
    finally:
        person.close()
        machine.close()


def test_the_doctor_names_the_key_when_the_provider_refuses_it(
    keyed: OidcProvider, store: Store, tmp_path: Path
) -> None:
    other = tmp_path / "other.pem"
    other.write_text(_pem(KEYS["ES256"]()))
    person = _client(keyed, store, client_key=other)
    try:
        check = person.diagnose()["credentials"]
        assert check.verdict == "fail" and str(other) in check.action, check
    finally:
        person.close()
