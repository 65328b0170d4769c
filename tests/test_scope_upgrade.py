"""Asking an authorized user for more scopes: the old token works until the new grant arrives.

Against the demo provider, whose /api/me answers with the scopes of the token it was sent,
so "the token in use has both scopes" is what the API saw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import pytest

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.errors import AuthorizationDeniedError
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import AuthData
from chat_oauth2_nb.widgets.state import Status, status_line

Authorized = Callable[..., OAuth2Client]


def stored(client: OAuth2Client) -> AuthData:
    data = client.get_access_token_for_user("ada")
    assert data is not None
    return data


def api_scopes(client: OAuth2Client, provider: DemoProvider) -> set[str]:
    """The scopes of the token the API received, as the API reports them."""
    me = httpx.get(provider.api_url, auth=client.auth("ada"), timeout=10)
    assert me.status_code == 200, me.text
    return set(me.json()["scope"].split())


def test_the_old_token_works_while_an_upgrade_is_pending_then_is_replaced(
    authorized: Authorized, provider: DemoProvider
) -> None:
    client = authorized()
    token_a = stored(client)
    assert set(token_a.scopes) == {"profile"}

    url = client.get_user_authorization_url("ada", scopes=["email"])
    # Pending: the stored token is still A, and the API still takes it.
    assert stored(client) == token_a
    assert api_scopes(client, provider) == {"profile"}
    panel = client.panel("ada")
    try:
        state = panel.state
        report = state.scopes()
        assert report is not None
        assert report.granted == ("profile",) and set(report.requested) == {"profile", "email"}
        assert report.missing == ("email",)
        now = dt.datetime.now(dt.timezone.utc)
        # The panel follows the upgrade the code started, and says the old token still works.
        assert state.status(now) is Status.WAITING
        assert "current token keeps working" in status_line(state, now)
    finally:
        panel.close()

    assert provider.approve(url).status_code == 200
    token_b = client.wait_for_authorization("ada", timeout=10)
    assert set(token_b.scopes) == {"profile", "email"}
    assert stored(client) == token_b != token_a
    assert api_scopes(client, provider) == {"profile", "email"}


def test_a_denied_upgrade_keeps_the_old_token(
    authorized: Authorized, provider: DemoProvider
) -> None:
    client = authorized()
    token_a = stored(client)
    url = client.get_user_authorization_url("ada", scopes=["email"])
    assert provider.approve(url, deny=True).status_code == 400
    with pytest.raises(AuthorizationDeniedError):
        client.wait_for_authorization("ada", timeout=10)
    assert stored(client) == token_a
    assert api_scopes(client, provider) == {"profile"}


def test_an_upgrade_keeps_the_scopes_already_granted(
    authorized: Authorized, provider: DemoProvider
) -> None:
    """Asking for one more scope must not lose the ones an earlier upgrade added."""
    client = authorized()
    upgrade = client.get_user_authorization_url("ada", scopes=["email"])
    provider.approve(upgrade)
    assert set(client.wait_for_authorization("ada", timeout=10).scopes) == {"profile", "email"}

    again = client.get_user_authorization_url("ada", scopes=["drive"])
    flow = client.store.flow_by_start_id(again.start_id)
    assert flow is not None and set(flow.scopes) == {"profile", "email", "drive"}
    provider.approve(again)
    token = client.wait_for_authorization("ada", timeout=10)
    assert set(token.scopes) == {"profile", "email", "drive"}
    assert api_scopes(client, provider) == {"profile", "email", "drive"}
