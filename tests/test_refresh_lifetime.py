"""Refresh tokens that end: their end is kept, shown, and warned about in its last quarter.

Keycloak says ``refresh_expires_in``, GitHub ``refresh_token_expires_in``; the demo provider
plays both (quirk profiles) and oidc-provider adds the Keycloak field to its answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.oidc import DEFAULT_SECRET, OidcProvider, client, start_oidc_provider
from support.wait import wait_until

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import create_oauth2_client
from chat_oauth2_nb.oauth import AuthData, utcnow
from chat_oauth2_nb.oauth.lifetime import refresh_note
from chat_oauth2_nb.store import Store
from chat_oauth2_nb.widgets.state import TokenView


@pytest.fixture
def op(tmp_path: Path) -> Iterator[OidcProvider]:
    provider = start_oidc_provider(
        tmp_path / "op",
        {
            "clients": [client()],
            "ttl": {"RefreshToken": 8, "AccessToken": 3600},
            "refresh_expires_field": "refresh_expires_in",
            "native_consent": "remembered",
        },
    )
    yield provider
    provider.stop()


def test_keycloak_style_lifetime_is_kept_and_warned_about_near_its_end(
    op: OidcProvider, store: Store
) -> None:
    person = create_oauth2_client(
        op.client_config("op", scopes=("openid",)),
        client_id="op-client",
        client_secret=DEFAULT_SECRET,
        mode="loopback",
        store=store,
        allow_insecure_http=True,
    )
    try:
        assert op.approve(person.get_user_authorization_url("ada"), "ada").status_code == 200
        data = person.wait_for_authorization("ada", timeout=60)
        assert data.refresh_expires_at is not None and data.refresh_lifetime == 8
        assert 0 < (data.refresh_expires_in() or 0) <= 8
        assert "refresh_expires_at=" in repr(data)
        # Kept in the store (JSON inside the sealed row): every process reads it.
        record = store.get_token("op", "ada")
        assert record is not None and record.data.refresh_expires_at == data.refresh_expires_at
        assert not data.refresh_ending()
        assert person.diagnose("ada")["refresh"].verdict == "ok"

        # The last quarter: the doctor and the panel's state warn and say how to renew.
        wait_until(lambda: data.refresh_ending(), "the refresh token's last quarter", timeout=60)
        check = person.diagnose("ada")["refresh"]
        assert check.verdict == "warn" and "authorize again" in check.action
        view = TokenView.from_auth_data(data, version=1, updated_at=0.0)
        assert view.refresh_ending and view.refresh_note and "authorize again" in view.refresh_note

        # A refresh (the old one is rotated out) brings a new end.
        refreshed = person.refresh_user_access_token("ada")
        assert refreshed.refresh_expires_at is not None
        assert refreshed.refresh_expires_at > data.refresh_expires_at
        assert not refreshed.refresh_ending()
    finally:
        person.close()


def test_github_style_lifetime_from_the_demo_provider(store: Store) -> None:
    provider = DemoProvider(quirks="github").start()
    provider.quirks.github_expiring_tokens = True
    provider.quirks.refresh_lifetime = 60 * 60 * 24 * 30
    person = create_oauth2_client(
        provider.config(alias="gh"),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        mode="loopback",
        store=store,
    )
    try:
        assert provider.approve(person.get_user_authorization_url("ada")).status_code == 200
        data = person.wait_for_authorization("ada", timeout=60)
        assert data.refresh_lifetime == 60 * 60 * 24 * 30
        left = data.refresh_expires_in() or 0
        assert 29 * 86400 < left <= 30 * 86400
        note = refresh_note(data)
        assert note is not None and not note.ending and "(in 29 d 23 h)" in note.text
        # 25 days on, in the last quarter: warn.
        later = utcnow() + dt.timedelta(days=25)
        note = refresh_note(data, now=later)
        assert note is not None and note.ending and "authorize again" in note.text
    finally:
        person.close()
        provider.stop()


def test_keycloak_offline_zero_means_no_end_and_google_gets_its_testing_note() -> None:
    from chat_oauth2_nb.errors import TokenExchangeError
    from chat_oauth2_nb.oauth import parse_token_response

    def answer(body: bytes) -> AuthData:
        return parse_token_response(
            TokenExchangeError,
            "Exchanging",
            200,
            {"Content-Type": "application/json"},
            body,
            received_at=utcnow(),
        )

    offline = answer(
        b'{"access_token":"a","token_type":"Bearer","refresh_token":"r","refresh_expires_in":0}'
    )
    assert offline.refresh_expires_at is None
    assert refresh_note(offline, "https://kc.example/realms/x/protocol/openid-connect/auth") is None
    google = refresh_note(offline, "https://accounts.google.com/o/oauth2/v2/auth")
    assert google is not None and "7 days" in google.text and not google.ending
    # Unreadable lifetimes are unknown, not a failed grant.
    odd = answer(
        b'{"access_token":"a","token_type":"Bearer","refresh_token":"r",'
        b'"refresh_token_expires_in":"soon"}'
    )
    assert odd.refresh_expires_at is None


def test_both_stores_keep_the_end(tmp_path: Path) -> None:
    """SQLite and PostgreSQL (the hub's replicas) keep the end inside the sealed token row."""
    from support.postgres import postgres_server

    from chat_oauth2_nb.store import new_store_key
    from chat_oauth2_nb.store.postgres import PostgresStore

    ends = utcnow() + dt.timedelta(hours=8)
    data = AuthData(
        "a" * 20, refresh_token="r" * 20, refresh_expires_at=ends, refresh_lifetime=28800
    )
    sqlite = Store(tmp_path / "s" / "store.sqlite3", key=new_store_key())
    sqlite.put_token("kc", "ada", data, provider="p")
    back = sqlite.get_token("kc", "ada")
    assert back is not None and back.data.refresh_expires_at == ends
    assert back.data.refresh_lifetime == 28800
    with postgres_server() as server:
        pg = PostgresStore(server.new_database(), key=new_store_key())
        try:
            pg.put_token("kc", "ada", data, provider="p")
            row = pg.get_token("kc", "ada")
            assert row is not None and row.data.refresh_expires_at == ends
            assert row.data.refresh_lifetime == 28800
        finally:
            pg.close_all()
