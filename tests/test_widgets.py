"""The notebook panel and the dashboard, driven without a browser against the demo provider.

Widgets are found by their CSS classes (the same handles the browser test uses) and buttons
are pressed with ``.click()``; the browser's callback is played by ``provider.approve()``,
which lands in the client's loopback listener and writes the store, as the Jupyter server
would.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import ipywidgets
import pytest
import traitlets
from ipywidgets.embed import embed_data
from ipywidgets.widgets import widget as widget_module
from support.scan import assert_no_secret
from support.wait import poll, wait_until
from support.widgets import find, one, primaries, revoke, visible

from chat_oauth2_nb import dashboard
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.errors import ConfigurationError, TokenRefreshError, hint_for
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import AuthData, mask
from chat_oauth2_nb.store import Store
from chat_oauth2_nb.widgets import OAuth2Panel, TokenDashboard
from chat_oauth2_nb.widgets._views import CopyButton, Countdown
from chat_oauth2_nb.widgets.state import (
    STATUS_WORDS,
    ErrorInfo,
    LinkView,
    PanelState,
    Status,
    TokenView,
    decode_id_token_claims,
    derive_status,
    expiry_text,
    format_countdown,
    scope_report,
    status_line,
)

Make = Callable[..., OAuth2Client]
OPENID = ("openid", "profile")
# How long a test waits for another thread or process: a bound for a loaded machine (five
# helpers on two cores), not a speed check. Countdowns are checked to the minute for the same
# reason: "9:" says a ten-minute lifetime after at most a minute of waiting.
PATIENCE = 30.0


def wait_for(predicate: Callable[[], bool], timeout: float = PATIENCE) -> bool:
    """Whether ``predicate`` became true within ``timeout`` s (the suite's one poll helper)."""
    return poll(predicate, timeout)


# -- helpers ---------------------------------------------------------------------------------


def status(root: ipywidgets.Widget) -> str:
    """The status line as a person reads it: the badge's word first, tags stripped."""
    value = str(one(root, "chat-oauth2-status").value)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", value).split()))


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def authorize_anchor(panel: OAuth2Panel) -> dict[str, str | None]:
    parser = _Anchors()
    parser.feed(one(panel, "chat-oauth2-link").value)
    anchors = [a for a in parser.anchors if "chat-oauth2-authorize" in (a.get("class") or "")]
    assert len(anchors) == 1, one(panel, "chat-oauth2-link").value
    return anchors[0]


def href(panel: OAuth2Panel) -> str:
    url = authorize_anchor(panel)["href"]
    assert url
    return url


def state_of(url: str) -> str:
    """The flow a panel link names: its opaque start id (the state is never in the link)."""
    return urlsplit(url).path.rsplit("/chat-oauth2/start/", 1)[1]


def idle(root: ipywidgets.Widget) -> bool:
    return "…" not in str(one(root, "chat-oauth2-outcome").value)


def shown(widget: ipywidgets.DOMWidget) -> bool:
    return bool(widget.layout.display != "none")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def make_panel(make_client: Make) -> Iterator[Callable[..., OAuth2Panel]]:
    """Build panels; they are closed before their clients (fixture teardown order)."""
    made: list[OAuth2Panel] = []

    def make(client: OAuth2Client | None = None, user: Any = "ada", **kwargs: Any) -> OAuth2Panel:
        client = client or make_client()
        panel = OAuth2Panel(client, user, **kwargs) if kwargs else client.panel(user)
        made.append(panel)
        return panel

    yield make
    for panel in made:
        panel.close()


@pytest.fixture
def make_dashboard(store: Store) -> Iterator[Callable[..., TokenDashboard]]:
    made: list[TokenDashboard] = []

    def make(target: Store | None = None) -> TokenDashboard:
        board = dashboard(target or store)
        made.append(board)
        return board

    yield make
    for board in made:
        board.close()


@pytest.fixture
def openid_client(make_client: Make, provider: DemoProvider) -> OAuth2Client:
    return make_client(config=provider.config(alias="demo", scopes=OPENID))


def authorize_via_panel(panel: OAuth2Panel, provider: DemoProvider) -> None:
    response = provider.approve(href(panel))
    assert response.status_code == 200, response.text
    assert wait_for(lambda: status(panel).startswith("Authorized")), status(panel)


# -- the state model -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (299.9, "4:59"),
        (0, "0:00"),
        (-5, "0:00"),
        (59.999, "0:59"),
        (3600, "1:00:00"),
        (3725, "1:02:05"),
        (2 * 86400 + 3725, "2d 1:02:05"),
    ],
)
def test_format_countdown(seconds: float, text: str) -> None:
    assert format_countdown(seconds) == text


def test_expiry_text() -> None:
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert expiry_text(now + dt.timedelta(seconds=299.5), now) == "expires in 4:59"
    assert expiry_text(now - dt.timedelta(seconds=12), now) == "expired 0:12 ago"
    assert expiry_text(None, now) == "no expiry given"


def _jwt(payload: Any) -> str:
    import base64

    def part(value: Any) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(payload)}.c2lnbmF0dXJl"


def test_decode_id_token_claims_without_verification() -> None:
    assert decode_id_token_claims(_jwt({"sub": "ada", "é": 1})) == {"sub": "ada", "é": 1}
    with pytest.raises(ValueError, match="3 of a JWT"):
        decode_id_token_claims("not-a-jwt")
    with pytest.raises(ValueError, match="base64url"):
        decode_id_token_claims("a.!!!.c")
    with pytest.raises(ValueError, match="not an object"):
        decode_id_token_claims(_jwt([1, 2]))


def test_token_view_keeps_no_secret() -> None:
    data = AuthData(
        token="access-token-0123456789abcdef",
        refresh_token="refresh-token-0123456789abcdef",
        id_token=_jwt({"sub": "ada"}),
        scope="openid email",
    )
    view = TokenView.from_auth_data(data, version=1, updated_at=0.0)
    dumped = repr(view)
    assert data.refresh_token is not None and data.id_token is not None
    assert data.token not in dumped and data.refresh_token not in dumped
    assert data.id_token not in dumped
    assert view.token_mask == mask(data.token)
    assert view.has_refresh_token and view.has_id_token and view.id_token_claims == {"sub": "ada"}
    broken = TokenView.from_auth_data(
        AuthData(token="t" * 20, id_token="garbage"), version=1, updated_at=0.0
    )
    assert broken.id_token_claims is None and "cannot be decoded" in (broken.id_token_problem or "")


def test_scope_report() -> None:
    report = scope_report(["openid", "email", "drive"], ["openid", "email", "extra"])
    assert report.missing == ("drive",) and report.extra == ("extra",)
    assert report.granted == ("openid", "email", "extra")


def test_error_info_from_typed_and_foreign_errors() -> None:
    typed = ErrorInfo.from_exception(
        TokenRefreshError(
            "Refreshing the token failed",
            error="invalid_grant",
            error_description="revoked",
            status_code=400,
        )
    )
    assert typed.hint == hint_for("invalid_grant")
    assert typed.provider_text() == "'invalid_grant': revoked (HTTP 400)"
    foreign = ErrorInfo.from_exception(RuntimeError("secret-value-in-a-message"))
    assert "secret-value" not in foreign.message and "RuntimeError" in foreign.message
    assert foreign.provider_text() is None


def test_derive_status_priorities() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    ts = now.timestamp()
    live = AuthData(token="t" * 20, expires_at=now + dt.timedelta(minutes=5), obtained_at=now)
    dead = AuthData(token="t" * 20, expires_at=now - dt.timedelta(seconds=1), obtained_at=now)
    token = TokenView.from_auth_data(live, version=1, updated_at=ts - 10)
    expired = TokenView.from_auth_data(dead, version=1, updated_at=ts - 10)
    own = LinkView("https://p/a", "s", (), ts, ts + 60, started_by_panel=True)
    theirs = LinkView("https://p/a", "s2", (), ts, ts + 60, started_by_panel=False)
    error = ErrorInfo("failed")

    def derive(**kw: Any) -> Status:
        values: dict[str, Any] = {
            "config_problem": None,
            "token": None,
            "link": None,
            "error": None,
            "now": now,
        }
        values.update(kw)
        return derive_status(**values)

    assert derive(config_problem="x", error=error) is Status.NOT_CONFIGURED
    assert derive(error=error, token=token) is Status.ERROR
    assert derive(link=own) is Status.NOT_AUTHORIZED
    assert derive(link=theirs) is Status.WAITING
    assert derive(link=theirs, token=token) is Status.WAITING  # started after the token
    older = LinkView("https://p/a", "s3", (), ts - 20, ts + 60, started_by_panel=False)
    assert derive(link=older, token=token) is Status.AUTHORIZED
    exchanging = LinkView("https://p/a", "s", (), ts, ts + 60, True, exchanging=True)
    assert derive(link=exchanging, token=token) is Status.WAITING
    assert derive(token=token, link=own) is Status.AUTHORIZED
    assert derive(token=expired) is Status.EXPIRED
    assert derive() is Status.NOT_AUTHORIZED


def test_status_line_starts_with_the_status_word() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    base = PanelState("demo", "ada", "https://p/a", "https://p/t", (), None)
    token = TokenView.from_auth_data(
        AuthData(token="t" * 20, expires_at=now + dt.timedelta(seconds=299.5), obtained_at=now),
        version=1,
        updated_at=0.0,
    )
    states = {
        Status.NOT_CONFIGURED: PanelState(
            "demo", "ada", "", "", (), None, config_problem="no server"
        ),
        Status.NOT_AUTHORIZED: base,
        Status.AUTHORIZED: PanelState("demo", "ada", "", "", (), None, token=token),
        Status.ERROR: PanelState("demo", "ada", "", "", (), None, error=ErrorInfo("It broke")),
    }
    for expected, state in states.items():
        assert state.status(now) is expected
        assert status_line(state, now).startswith(STATUS_WORDS[expected])
    # No ticking countdown in the line (the browser draws it): the clock time, and "about".
    line = status_line(states[Status.AUTHORIZED], now)
    assert "expires at " in line and "(in about 5 min)" in line and "4:59" not in line
    forever = TokenView.from_auth_data(AuthData(token="t" * 20), version=1, updated_at=0.0)
    line = status_line(PanelState("demo", "ada", "", "", (), None, token=forever), now)
    assert line == "Authorized: the provider gave the token no expiry."


def test_state_model_imports_without_ipywidgets() -> None:
    import subprocess
    import sys

    code = (
        "import sys, chat_oauth2_nb.widgets.state, chat_oauth2_nb.widgets.board as b; "
        "from chat_oauth2_nb.widgets import dashboard; "
        "assert callable(dashboard) and dashboard is b.dashboard; "
        "import chat_oauth2_nb.widgets as w; assert w.dashboard is b.dashboard"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    pure = "import sys, chat_oauth2_nb.widgets.state; assert 'ipywidgets' not in sys.modules"
    subprocess.run([sys.executable, "-c", pure], check=True, timeout=60)


# -- the panel: every state ------------------------------------------------------------------


def test_not_configured_shows_the_configuration_error(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAT_OAUTH2_NB_CALLBACK_URL", raising=False)
    client = make_client(mode="jupyter")
    with pytest.raises(ConfigurationError):
        client.setup()
    panel = make_panel(client)
    assert panel.state.status(dt.datetime.now(dt.timezone.utc)) is Status.NOT_CONFIGURED
    assert status(panel).startswith("Not configured")
    assert "jupyter" in status(panel) and "extension" in status(panel)
    assert "chat-oauth2-status--not-configured" in one(panel, "chat-oauth2-status")._dom_classes
    assert one(panel, "chat-oauth2-link").value == ""
    assert one(panel, "chat-oauth2-refresh").disabled and one(panel, "chat-oauth2-revoke").disabled
    assert not shown(one(panel, "chat-oauth2-token-box"))
    assert not panel._timer_alive  # nothing to watch


def test_bad_user_is_not_configured(make_panel: Callable[..., OAuth2Panel]) -> None:
    panel = make_panel(user="   ")
    assert status(panel).startswith("Not configured") and "user" in status(panel)


def test_not_authorized_shows_provider_and_authorize_link(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()
    panel = make_panel(client)
    assert "chat-oauth2-panel" in panel._dom_classes
    assert status(panel).startswith("Not authorized")
    assert "Click Authorize and approve" in status(panel)
    assert primaries(panel) == ["Authorize"]
    provider_text = one(panel, "chat-oauth2-provider").value
    assert client.config.auth_uri in provider_text
    assert client.config.access_token_uri in provider_text
    assert client.redirect_uri and client.redirect_uri in one(panel, "chat-oauth2-redirect").value
    assert one(panel, "chat-oauth2-copy-redirect").text == client.redirect_uri
    assert "profile" in provider_text
    anchor = authorize_anchor(panel)
    assert anchor["target"] == "_blank" and anchor["rel"] == "noopener"
    assert anchor["data-chat-oauth2"] == "authorize"
    url = href(panel)
    # The link binds the browser first; state and challenge are only behind it.
    assert "/chat-oauth2/start/" in url and "?" not in url
    start = httpx.get(url, follow_redirects=False)
    assert start.status_code == 302
    assert start.headers["location"].startswith(client.config.auth_uri + "?")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [client.redirect_uri]
    assert not shown(one(panel, "chat-oauth2-token-box"))
    # No token: nothing to refresh or revoke, so no (disabled, yet loud) buttons either.
    assert not visible(panel, one(panel, "chat-oauth2-refresh"))
    assert not visible(panel, one(panel, "chat-oauth2-revoke"))
    assert panel._timer_alive


def test_poller_notices_the_callback_and_shows_the_token(
    openid_client: OAuth2Client, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    panel = make_panel(openid_client)
    assert status(panel).startswith("Not authorized")
    response = provider.approve(href(panel))
    assert response.status_code == 200, response.text
    # Nobody touches the panel: only its background thread can notice the new token.
    assert wait_for(lambda: status(panel).startswith("Authorized")), status(panel)
    stored = openid_client.get_access_token_for_user("ada")
    assert stored is not None
    assert "chat-oauth2-status--authorized" in one(panel, "chat-oauth2-status")._dom_classes
    assert shown(one(panel, "chat-oauth2-token-box"))
    token_text = one(panel, "chat-oauth2-token").value
    assert mask(stored.token) in token_text and "Bearer" in token_text
    assert stored.expires_at is not None
    assert one(panel, "chat-oauth2-expiry-countdown").expires_at == stored.expires_at.timestamp()
    assert "(in about 60 min)" in one(panel, "chat-oauth2-expiry").value
    assert "Refresh token: stored" in one(panel, "chat-oauth2-extras").value
    assert "id_token: stored" in one(panel, "chat-oauth2-extras").value
    scopes = one(panel, "chat-oauth2-scopes").value
    assert "granted: <code>openid profile</code>" in scopes
    assert "requested: <code>openid profile</code>" in scopes
    # Claims are personal data: rendered only when asked for.
    assert one(panel, "chat-oauth2-claims").value == ""
    one(panel, "chat-oauth2-claims-toggle").value = True
    claims = one(panel, "chat-oauth2-claims").value
    # The demo's config names its issuer and keys: the claims were verified at the exchange.
    assert "<b>verified</b>" in claims and "demo-user" in claims
    assert not one(panel, "chat-oauth2-refresh").disabled
    assert not one(panel, "chat-oauth2-revoke").disabled


def test_an_idle_panel_sends_nothing_while_the_browser_counts_down(
    make_client: Make,
    make_panel: Callable[..., OAuth2Panel],
    provider: DemoProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    panel = make_panel(make_client())
    authorize_via_panel(panel, provider)
    countdown = one(panel, "chat-oauth2-expiry-countdown")
    assert countdown._view_name == "CountdownView" and countdown._view_module == "chat-oauth2-nb"
    assert countdown.expires_at is not None and countdown.sent_at <= time.time()
    # The panel's next wake-up is the coarse text's next minute, not the next second.
    assert panel._alarm.when is not None and panel._alarm.when - time.time() > 5
    sent: list[str] = []
    original = ipywidgets.Widget.send_state

    def counting(self: ipywidgets.Widget, key: Any = None) -> None:
        sent.append(type(self).__name__)
        original(self, key)

    monkeypatch.setattr(ipywidgets.Widget, "send_state", counting)
    time.sleep(3.0)  # a window to observe silence in, not a wait for something to happen
    assert sent == []


def test_authorize_link_is_replaced_after_use(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    panel = make_panel(make_client())
    used = href(panel)
    authorize_via_panel(panel, provider)
    # Authorized: the ways to authorize step aside, behind a secondary "Authorize again".
    assert one(panel, "chat-oauth2-link").value == ""
    assert primaries(panel) == []
    again = one(panel, "chat-oauth2-again")
    assert visible(panel, again) and again.button_style == ""
    again.click()
    assert wait_for(lambda: href(panel) != used)
    assert state_of(href(panel)) != state_of(used)
    assert primaries(panel) == ["Authorize again"]
    again = httpx.get(used)
    assert again.status_code == 400 and "used" in again.text
    assert status(panel).startswith("Authorized")  # a replayed link is not this panel's news


def test_authorize_link_is_replaced_when_it_expires(
    make_client: Make, make_panel: Callable[..., OAuth2Panel]
) -> None:
    panel = make_panel(make_client(flow_ttl=0.4))
    first = href(panel)
    assert wait_for(lambda: href(panel) != first)
    assert status(panel).startswith("Not authorized")
    assert not shown(one(panel, "chat-oauth2-error"))


def test_waiting_for_a_flow_started_from_code(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()
    panel = make_panel(client)
    assert status(panel).startswith("Not authorized")
    url = client.get_user_authorization_url("ada")
    assert wait_for(lambda: status(panel).startswith("Waiting for the browser")), status(panel)
    assert "code in a cell started this sign-in" in status(panel)
    assert primaries(panel) == []  # nothing to do here but approve at the provider
    assert "chat-oauth2-status--waiting" in one(panel, "chat-oauth2-status")._dom_classes
    # The panel offers the same flow, so its link and wait_for_authorization() agree.
    assert state_of(href(panel)) == state_of(url)
    provider.approve(href(panel))
    assert client.wait_for_authorization("ada", timeout=PATIENCE).token
    assert wait_for(lambda: status(panel).startswith("Authorized")), status(panel)


def test_second_panel_shares_the_first_ones_link(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()
    first = make_panel(client)
    second = make_panel(client)  # re-running the cell
    assert href(second) == href(first)
    assert status(second).startswith("Not authorized")
    authorize_via_panel(second, provider)
    assert wait_for(lambda: status(first).startswith("Authorized"))


def test_panel_adopts_a_pending_flow_at_start(
    make_client: Make, make_panel: Callable[..., OAuth2Panel]
) -> None:
    client = make_client()
    url = client.get_user_authorization_url("ada")
    panel = make_panel(client)
    assert status(panel).startswith("Waiting for the browser")
    assert href(panel) == url


def test_expired_token(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    provider.set_token_lifetime(1)
    panel = make_panel(make_client())
    authorize_via_panel(panel, provider)
    assert wait_for(lambda: status(panel).startswith("Expired")), status(panel)
    assert "Refresh it" in status(panel)
    assert "Expired at " in one(panel, "chat-oauth2-expiry").value
    assert primaries(panel) == ["Refresh"]
    assert "chat-oauth2-status--expired" in one(panel, "chat-oauth2-status")._dom_classes
    provider.set_token_lifetime(3600)
    one(panel, "chat-oauth2-refresh").click()
    assert wait_for(lambda: status(panel).startswith("Authorized")), status(panel)


def test_denied_authorization_is_an_error_with_a_hint(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    panel = make_panel(make_client())
    used = href(panel)
    page = provider.approve(used, deny=True)
    assert page.status_code == 400
    assert wait_for(lambda: status(panel).startswith("Error")), status(panel)
    error = one(panel, "chat-oauth2-error")
    assert shown(error) and "access_denied" in error.value
    assert str(hint_for("access_denied")) in error.value.replace("&#x27;", "'")
    assert "chat-oauth2-status--error" in one(panel, "chat-oauth2-status")._dom_classes
    # A fresh link is in place, and using it clears the error.
    assert wait_for(lambda: href(panel) != used)
    authorize_via_panel(panel, provider)
    assert not shown(one(panel, "chat-oauth2-error"))


# -- the panel: buttons ----------------------------------------------------------------------


def test_refresh_changes_token_and_expiry(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()
    panel = make_panel(client)
    authorize_via_panel(panel, provider)
    before = one(panel, "chat-oauth2-token").value
    countdown = one(panel, "chat-oauth2-expiry-countdown")
    assert countdown.expires_at - time.time() > 3000
    provider.set_token_lifetime(600)
    one(panel, "chat-oauth2-refresh").click()
    assert wait_for(lambda: idle(panel))
    assert one(panel, "chat-oauth2-outcome").value.startswith("Refreshed at ")
    assert one(panel, "chat-oauth2-token").value != before
    stored = client.get_access_token_for_user("ada")
    assert stored is not None and mask(stored.token) in one(panel, "chat-oauth2-token").value
    assert 500 < countdown.expires_at - time.time() <= 600
    assert "(in about 10 min)" in one(panel, "chat-oauth2-expiry").value
    assert status(panel).startswith("Authorized")


def test_buttons_are_disabled_while_a_request_runs(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    panel = make_panel(make_client())
    authorize_via_panel(panel, provider)
    refresh, revoke = one(panel, "chat-oauth2-refresh"), one(panel, "chat-oauth2-revoke")
    before = provider.token_requests["refresh_token"]
    # Slow enough that the clicks below land while it runs, even on a loaded machine.
    provider.token_delay = 3.0
    refresh.click()
    assert refresh.disabled and revoke.disabled
    assert one(panel, "chat-oauth2-outcome").value == "Refreshing…"
    refresh.click()  # ignored: one request at a time
    revoke.click()
    assert wait_for(lambda: idle(panel))
    assert not refresh.disabled and not revoke.disabled
    assert provider.token_requests["refresh_token"] - before == 1
    assert status(panel).startswith("Authorized")


def test_failing_refresh_shows_error_and_hint_and_keeps_token(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()
    panel = make_panel(client)
    authorize_via_panel(panel, provider)
    before = client.store.get_token(client.alias, "ada")
    token_text = one(panel, "chat-oauth2-token").value
    # A provider that fails for now (invalid_grant would end the grant: test_dead_grants.py).
    provider.inject_fault(
        "token",
        status=503,
        content_type="application/json",
        body='{"error": "temporarily_unavailable", "error_description": "refresh failed"}',
    )
    one(panel, "chat-oauth2-refresh").click()
    assert wait_for(lambda: idle(panel))
    assert status(panel).startswith("Error") and "Refreshing the token failed" in status(panel)
    error = one(panel, "chat-oauth2-error").value.replace("&#x27;", "'")
    assert "'temporarily_unavailable': refresh failed (HTTP 503)" in error
    assert str(hint_for("temporarily_unavailable")) in error
    assert "unchanged" in one(panel, "chat-oauth2-outcome").value
    # The token is kept, and still shown.
    assert client.store.get_token(client.alias, "ada") == before
    assert shown(one(panel, "chat-oauth2-token-box"))
    assert one(panel, "chat-oauth2-token").value == token_text
    # Staying in the error state across a look at the store, until something succeeds.
    panel._on_tick()
    assert status(panel).startswith("Error")
    one(panel, "chat-oauth2-refresh").click()
    assert wait_for(lambda: status(panel).startswith("Authorized")), status(panel)


def test_revoke_returns_to_not_authorized(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()
    panel = make_panel(client)
    authorize_via_panel(panel, provider)
    token = client.get_access_token_for_user("ada")
    assert token is not None
    revoke(panel)
    assert wait_for(lambda: status(panel).startswith("Not authorized")), status(panel)
    assert wait_for(lambda: idle(panel))
    assert one(panel, "chat-oauth2-outcome").value == "Revoked at the provider and deleted here."
    assert client.store.get_token(client.alias, "ada") is None
    assert provider.introspect(token.token)["active"] is False
    assert not shown(one(panel, "chat-oauth2-token-box"))
    assert not visible(panel, one(panel, "chat-oauth2-revoke"))
    assert primaries(panel) == ["Authorize"]
    href(panel)  # a link to authorize again is on offer


def test_failing_revoke_keeps_token(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()
    panel = make_panel(client)
    authorize_via_panel(panel, provider)
    provider.inject_fault("revoke", status=503, body="<html>down</html>", content_type="text/html")
    revoke(panel)
    assert wait_for(lambda: idle(panel))
    assert status(panel).startswith("Error") and "Revoking the token failed" in status(panel)
    assert "HTTP 503" in one(panel, "chat-oauth2-error").value
    assert client.store.get_token(client.alias, "ada") is not None
    assert shown(one(panel, "chat-oauth2-token-box"))


def test_http_log_lists_the_exchanges(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()
    panel = make_panel(client)
    log = one(panel, "chat-oauth2-http-log")
    assert isinstance(log, ipywidgets.Accordion) and log.selected_index is None
    assert log.titles == ("HTTP log (0)",)
    authorize_via_panel(panel, provider)
    one(panel, "chat-oauth2-refresh").click()
    assert wait_for(lambda: idle(panel))
    # The callback's code exchange (made by the callback, not the kernel) and the refresh.
    assert wait_for(lambda: log.titles == ("HTTP log (2)",))
    body = one(panel, "chat-oauth2-http-log-body").value
    assert "grant_type=authorization_code" in body
    assert f"<b>POST</b> <code>{client.config.refresh_token_uri}</code> → <b>200</b>" in body
    assert " ms at " in body and "grant_type=refresh_token" in body


def test_close_stops_the_threads(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    panel = make_panel(make_client())
    authorize_via_panel(panel, provider)
    children = find(panel, "chat-oauth2-status") + find(panel, "chat-oauth2-refresh")
    assert panel._timer_alive
    provider.token_delay = 0.3
    one(panel, "chat-oauth2-refresh").click()  # a worker still running at close()
    panel.close()
    assert not panel._timer_alive
    assert panel.comm is None and all(child.comm is None for child in children)
    # The shared watcher ends with its last subscriber.
    assert wait_for(lambda: "chat-oauth2-watcher" not in {t.name for t in threading.enumerate()})
    assert wait_for(
        lambda: "chat-oauth2-panel-refresh" not in {t.name for t in threading.enumerate()}
    )
    panel.close()  # twice is harmless


def _widget_state_dumps() -> str:
    return "".join(
        json.dumps(w.get_state(), default=str) for w in list(widget_module._instances.values())
    )


def test_id_token_claims_reach_widget_state_only_while_shown(
    openid_client: OAuth2Client, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    # The attack: save the notebook and read the person's name out of the widget state.
    panel = make_panel(openid_client)
    authorize_via_panel(panel, provider)
    stored = openid_client.get_access_token_for_user("ada")
    assert stored is not None and stored.id_token
    assert "demo-user" not in _widget_state_dumps()  # the provider's name for the person
    toggle = one(panel, "chat-oauth2-claims-toggle")
    assert not toggle.disabled and toggle.description == "Show claims"
    toggle.value = True
    assert "demo-user" in one(panel, "chat-oauth2-claims").value
    toggle.value = False
    assert one(panel, "chat-oauth2-claims").value == ""
    assert "demo-user" not in _widget_state_dumps()


def test_status_trait_can_be_observed(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    panel = make_panel(make_client())
    assert panel.status == "not_authorized"
    seen: list[str] = []
    panel.observe(lambda change: seen.append(change["new"]), names="status")
    authorize_via_panel(panel, provider)
    assert wait_for(lambda: seen[-1:] == ["authorized"]), seen
    # A loaded machine may show the callback's exchange in progress first; nothing else.
    assert seen in (["authorized"], ["waiting", "authorized"]), seen
    assert panel.status == Status.AUTHORIZED.value
    with pytest.raises(traitlets.TraitError):
        panel.status = "authorized"


def test_expiry_is_shown_once_with_a_progress_bar(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    panel = make_panel(make_client())
    authorize_via_panel(panel, provider)
    texts = [
        str(w.value)
        for w in widget_module._instances.values()
        if isinstance(w, ipywidgets.HTML) and w in _descendants(panel)
    ]
    assert sum("expires at" in t.lower() for t in texts) == 1, texts
    assert len(find(panel, "chat-oauth2-expiry-countdown")) == 1
    bar = one(panel, "chat-oauth2-expiry-bar")
    assert isinstance(bar, ipywidgets.FloatProgress) and 0.95 <= bar.value <= 1.0
    assert bar.bar_style == "success"
    details = one(panel, "chat-oauth2-details")
    assert isinstance(details, ipywidgets.Accordion) and details.selected_index is None
    assert details.titles == ("Details",)


def _descendants(root: ipywidgets.Widget) -> list[ipywidgets.Widget]:
    found = [root]
    for child in getattr(root, "children", ()):
        found.extend(_descendants(child))
    return found


def test_panels_share_one_watcher_that_reads_the_store_only_on_change(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()
    panels = [make_panel(client, user) for user in ("ada", "bob", "cy")]
    assert all(panel._timer_alive for panel in panels)
    watchers = [t for t in threading.enumerate() if t.name == "chat-oauth2-watcher"]
    assert len(watchers) == 1
    reads: list[str] = []
    real_get_token = client.store.get_token

    def counting_get_token(alias: str, user: str) -> Any:
        reads.append(user)
        return real_get_token(alias, user)

    client.store.get_token = counting_get_token  # type: ignore[method-assign]

    def quiet() -> bool:
        before = len(reads)
        time.sleep(1.2)  # more than one countdown tick
        return len(reads) == before

    # The watcher's first look at a new store counts as a change, and so do the panels'
    # own flows: wait (however long a loaded machine takes) until those were read.
    wait_until(quiet, "the panels to stop reading the store", PATIENCE)
    settled = len(reads)
    time.sleep(1.6)  # more than one countdown tick, no store change: no store read
    assert len(reads) == settled, reads[settled:]
    # A commit by another connection (here: the demo's callback in the server role) wakes it.
    provider.approve(href(panels[1]))
    assert wait_for(lambda: status(panels[1]).startswith("Authorized")), status(panels[1])
    assert len(reads) > settled


# -- no secret in any widget state -----------------------------------------------------------


def _flow_verifiers(store: Store) -> list[str]:
    with sqlite3.connect(store.path) as db:
        return [row[0] for row in db.execute("SELECT code_verifier FROM flows")]


def _token_secrets(data: AuthData | None) -> list[str]:
    if data is None:
        return []
    return [s for s in (data.token, data.refresh_token, data.id_token) if s]


def _assert_no_secret_in_widget_state(secrets: list[str]) -> None:
    assert secrets
    open_widgets = list(widget_module._instances.values())
    assert open_widgets
    dumps = [json.dumps(w.get_state(), default=str) for w in open_widgets]
    dumps.append(json.dumps(embed_data(views=None, drop_defaults=False), default=str))
    dumps.append(json.dumps(ipywidgets.Widget.get_manager_state(drop_defaults=False), default=str))
    assert_no_secret("\n".join(dumps), secrets, "the widgets' state")


def test_no_secret_ever_reaches_a_widget_trait(
    make_client: Make,
    make_panel: Callable[..., OAuth2Panel],
    make_dashboard: Callable[..., TokenDashboard],
    provider: DemoProvider,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets: list[str] = [provider.client_secret]
    client = make_client(config=provider.config(alias="demo", scopes=OPENID))
    panels: dict[str, OAuth2Panel] = {"not_authorized": make_panel(client, "ada")}

    waiting = make_client(alias="waits")
    waiting.get_user_authorization_url("ada")
    panels["waiting"] = make_panel(waiting, "ada")

    panels["authorized"] = make_panel(client, "bob")
    authorize_via_panel(panels["authorized"], provider)
    secrets += _token_secrets(client.get_access_token_for_user("bob"))
    one(panels["authorized"], "chat-oauth2-refresh").click()  # rotate: old and new tokens
    assert wait_for(lambda: idle(panels["authorized"]))
    secrets += _token_secrets(client.get_access_token_for_user("bob"))

    provider.set_token_lifetime(1)
    panels["expired"] = make_panel(client, "cy")
    authorize_via_panel(panels["expired"], provider)
    secrets += _token_secrets(client.store.get_token(client.alias, "cy").data)  # type: ignore[union-attr]
    assert wait_for(lambda: status(panels["expired"]).startswith("Expired"))
    provider.set_token_lifetime(3600)

    panels["error"] = make_panel(client, "dee")
    provider.approve(href(panels["error"]), deny=True)
    assert wait_for(lambda: status(panels["error"]).startswith("Error"))

    monkeypatch.delenv("CHAT_OAUTH2_NB_CALLBACK_URL", raising=False)
    panels["not_configured"] = make_panel(make_client(alias="nocfg", mode="jupyter"), "ada")

    board = make_dashboard(store)
    assert len(board.rows) >= 2
    for name, panel in panels.items():
        word = STATUS_WORDS[Status(name)]
        assert status(panel).startswith(word), (name, status(panel))

    secrets += _flow_verifiers(store)
    assert all(len(s) >= 16 for s in secrets)
    # The browser-drawn widgets are among those scanned: a countdown per panel and row, and
    # copy buttons whose text is public (a redirect URI, or nothing yet).
    scanned = list(widget_module._instances.values())
    assert sum(isinstance(w, Countdown) for w in scanned) >= len(panels) + len(board.rows)
    copies = [w for w in scanned if isinstance(w, CopyButton)]
    assert copies and {c.text for c in copies} <= {"", client.redirect_uri, waiting.redirect_uri}
    _assert_no_secret_in_widget_state(secrets)
    # The client's own HTTP log (what the panel shows) holds only masked values.
    for exchange in client.http_log:
        for secret in secrets:
            assert secret not in exchange.request_body + exchange.response_body + exchange.url


def test_finish_pressed_while_busy_runs_once_the_action_ends(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client(mode="paste")
    panel = make_panel(client)
    one(panel, "chat-oauth2-show-link").click()
    assert panel.state.link is not None
    # A paste-back link is the provider's own URL: approve, and stop where the browser lands.
    landed = provider.approve(panel.state.link.url, follow_redirect=False)
    location = str(landed.headers["location"])
    provider.token_delay = 3.0  # the check asks the token endpoint: it runs a while…
    one(panel, "chat-oauth2-check").click()
    assert panel.state.busy == "check"
    one(panel, "chat-oauth2-paste").value = location
    one(panel, "chat-oauth2-paste-finish").click()  # …and Finish pressed meanwhile is kept
    assert panel.state.busy == "check"
    assert "Still working" in one(panel, "chat-oauth2-paste-note").value
    provider.token_delay = 0.0
    assert wait_for(lambda: status(panel).startswith("Authorized")), status(panel)
    assert client.store.get_token(client.alias, "ada") is not None


def test_the_doctors_report_goes_when_the_state_changes(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    panel = make_panel(make_client())
    authorize_via_panel(panel, provider)
    one(panel, "chat-oauth2-check").click()
    report = one(panel, "chat-oauth2-report")
    assert wait_for(lambda: "data-verdict" in report.value), report.value
    assert shown(report) and "passed or skipped" in report.value
    assert wait_for(lambda: idle(panel))
    revoke(panel)  # the report described the state before
    assert wait_for(lambda: status(panel).startswith("Not authorized")), status(panel)
    assert report.value == "" and not shown(report)


# -- the dashboard ---------------------------------------------------------------------------


def _row(board: TokenDashboard, alias: str, user: str) -> Any:
    rows = [
        r
        for r in find(board, "chat-oauth2-dashboard-row")
        if one(r, "chat-oauth2-dashboard-who").value == f"<b>{alias}</b>"
        and one(r, "chat-oauth2-dashboard-user").value == f"<code>{user}</code>"
    ]
    assert len(rows) == 1
    return rows[0]


def test_dashboard_lists_every_stored_token(
    authorized: Callable[..., OAuth2Client],
    make_dashboard: Callable[..., TokenDashboard],
    provider: DemoProvider,
) -> None:
    one_ada = authorized("ada", alias="one")
    authorized("bob", alias="one")
    two_ada = authorized("ada", alias="two")
    board = make_dashboard()
    assert "chat-oauth2-dashboard" in board._dom_classes
    assert board.rows == [("one", "ada"), ("one", "bob"), ("two", "ada")]
    assert len(find(board, "chat-oauth2-dashboard-row")) == 3
    # A table: one header row, and every row a grid with the header's columns.
    columns = one(board, "chat-oauth2-dashboard-columns")
    *texts, actions = columns.children
    headers = [html.unescape(re.sub(r"<[^>]+>", "", c.value)) for c in texts]
    assert headers == ["Provider", "User", "Status", "Expires"]
    # Over the buttons, their invisible twins: every row's grid sizes that column alike.
    assert [b.description for b in actions.children] == ["Refresh", "Revoke"]
    assert all(b.layout.visibility == "hidden" for b in actions.children)
    for alias, user in board.rows:
        row = _row(board, alias, user)
        cells = one(row, "chat-oauth2-dashboard-cells")
        assert cells.layout.grid_template_columns == columns.layout.grid_template_columns
        assert len(cells.children) == len(columns.children)
        assert status(row) == "Authorized"
        # One expiry per row: the browser's countdown, and the text beside it for without.
        assert len(find(row, "chat-oauth2-expiry-countdown")) == 1
        assert one(row, "chat-oauth2-expiry-countdown").expires_at - time.time() > 3000
        assert sum("at " in w.value for w in find(row, "chat-oauth2-expiry")) == 1
        # Buttons as wide as their words: no "Refre…" in a half-width split.
        assert one(row, "chat-oauth2-refresh").layout.width == "auto"
        assert one(row, "chat-oauth2-revoke").layout.width == "auto"

    before_ada = one_ada.get_access_token_for_user("ada")
    before_bob = one_ada.get_access_token_for_user("bob")
    bob = _row(board, "one", "bob")
    one(bob, "chat-oauth2-refresh").click()
    assert one(bob, "chat-oauth2-refresh").disabled and one(bob, "chat-oauth2-revoke").disabled
    assert wait_for(lambda: idle(bob))
    assert one(bob, "chat-oauth2-outcome").value.startswith("Refreshed at ")
    assert one_ada.get_access_token_for_user("bob") != before_bob
    assert one_ada.get_access_token_for_user("ada") == before_ada

    revoked = two_ada.get_access_token_for_user("ada")
    assert revoked is not None
    two = _row(board, "two", "ada")
    one(two, "chat-oauth2-revoke").click()  # asks first
    assert "Revoke the token for <code>ada</code>" in one(two, "chat-oauth2-confirm-text").value
    one(two, "chat-oauth2-cancel-revoke").click()
    assert one(two, "chat-oauth2-confirm-box").layout.display == "none"
    assert two_ada.get_access_token_for_user("ada") == revoked
    revoke(two)
    assert wait_for(lambda: board.rows == [("one", "ada"), ("one", "bob")]), board.rows
    assert provider.introspect(revoked.token)["active"] is False
    assert "Revoked" in board._message.value


def test_dashboard_shows_failures_and_new_rows(
    authorized: Callable[..., OAuth2Client],
    make_dashboard: Callable[..., TokenDashboard],
    provider: DemoProvider,
    store: Store,
) -> None:
    board = make_dashboard()
    assert board.rows == [] and "none stored" in one(board, "chat-oauth2-dashboard-header").value
    client = authorized("ada")
    assert wait_for(lambda: board.rows == [("demo", "ada")])  # picked up by the thread
    row = _row(board, "demo", "ada")
    # A provider that fails for now (invalid_grant would end the grant: test_dead_grants.py).
    provider.inject_fault(
        "token",
        status=503,
        content_type="application/json",
        body='{"error": "temporarily_unavailable", "error_description": "refresh failed"}',
    )
    before = client.get_access_token_for_user("ada")
    one(row, "chat-oauth2-refresh").click()
    assert wait_for(lambda: status(row).startswith("Error"))
    outcome = one(row, "chat-oauth2-outcome").value.replace("&#x27;", "'")
    assert "'temporarily_unavailable': refresh failed" in outcome
    assert str(hint_for("temporarily_unavailable")) in outcome
    assert client.get_access_token_for_user("ada") == before

    # A token whose provider is not registered in this store cannot be refreshed from here.
    store.put_token("ghost", "ada", AuthData(token="ghost-token-0123456789abcdef"))
    assert wait_for(lambda: ("ghost", "ada") in board.rows)
    ghost = _row(board, "ghost", "ada")
    # The row exists before its first render: wait for the status, don't race it.
    assert wait_for(lambda: status(_row(board, "ghost", "ada")).startswith("Not configured"))
    ghost = _row(board, "ghost", "ada")
    assert one(ghost, "chat-oauth2-refresh").disabled and one(ghost, "chat-oauth2-revoke").disabled


def test_dashboard_close_stops_its_thread(make_dashboard: Callable[..., TokenDashboard]) -> None:
    board = make_dashboard()
    assert board._timer_alive
    board.close()
    assert not board._timer_alive and board.comm is None


# -- in a real kernel: the widget state a notebook saves -------------------------------------

_KERNEL_CELLS = [
    """
import json, sqlite3, time
from chat_oauth2_nb import create_oauth2_client, Store
from chat_oauth2_nb.demo import start_demo_provider
from chat_oauth2_nb import dashboard
from chat_oauth2_nb.oauth import utcnow

def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert predicate()

def find(root, css_class):
    found = [root] if css_class in root._dom_classes else []
    for child in getattr(root, "children", ()):
        found += find(child, css_class)
    return found

provider = start_demo_provider(port=0)
store = Store(STORE_PATH)
client = create_oauth2_client(
    provider.config(alias="demo", scopes=("openid", "profile")),
    client_id=provider.client_id, client_secret=provider.client_secret,
    mode="loopback", store=store,
)
panel = client.panel("ada")
panel
""",
    """
secrets = [provider.client_secret]
status = lambda: panel.state.status(utcnow()).value
[refresh] = find(panel, "chat-oauth2-refresh")
assert provider.approve(panel.state.link.url).status_code == 200
wait_for(lambda: status() == "authorized")  # noticed by the panel's thread, not by this cell
first = client.store.get_token("demo", "ada").data
refresh.click()
wait_for(lambda: panel.state.busy is None and client.store.get_token("demo", "ada").data != first)
second = client.store.get_token("demo", "ada").data
provider.inject_fault("token", status=503, content_type="application/json",
                      body='{"error": "temporarily_unavailable", "error_description": "later"}')
refresh.click()
wait_for(lambda: panel.status == "error")  # the trait is set once the card shows it
waiting = create_oauth2_client(
    provider.config(alias="other"), client_id=provider.client_id,
    client_secret=provider.client_secret, mode="loopback", store=store,
)
waiting.get_user_authorization_url("ada")
other = waiting.panel("ada")
board = dashboard(store)
display(other, board)
time.sleep(1.2)
for data in (first, second):
    secrets += [data.token, data.refresh_token, data.id_token]
with sqlite3.connect(STORE_PATH) as db:
    secrets += [row[0] for row in db.execute("SELECT code_verifier FROM flows")]
with open(SECRETS_PATH, "w") as f:
    json.dump(secrets, f)
""",
    """
for w in (panel, other, board):
    w.close()
client.close(); waiting.close(); provider.stop()
""",
]


@pytest.mark.timeout(300)  # a kernel and three cells, on a loaded machine
def test_widget_state_saved_in_a_notebook_holds_no_secret(tmp_path: Any) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    store_path, secrets_path = tmp_path / "store.sqlite3", tmp_path / "secrets.json"
    head = f"STORE_PATH = {str(store_path)!r}\nSECRETS_PATH = {str(secrets_path)!r}\n"
    cells = [nbformat.v4.new_code_cell(head + _KERNEL_CELLS[0])]
    cells += [nbformat.v4.new_code_cell(source) for source in _KERNEL_CELLS[1:]]
    notebook = nbformat.v4.new_notebook(cells=cells)
    runner = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", store_widget_state=True
    )
    runner.execute(cwd=str(tmp_path))
    saved = json.dumps(notebook.metadata["widgets"])
    # The thread's updates reached the notebook: the saved state shows the later states.
    assert "chat-oauth2-status--error" in saved and "Refreshing the token failed" in saved
    assert "Waiting for the browser" in saved and "chat-oauth2-dashboard-row" in saved
    secrets = json.loads(secrets_path.read_text())
    assert len(secrets) >= 8 and all(isinstance(s, str) and len(s) >= 16 for s in secrets)
    for secret in secrets:
        assert secret not in saved, f"a secret ({mask(secret)}) was saved with the notebook"
    outputs = json.dumps([cell.get("outputs", []) for cell in notebook.cells])
    assert "Traceback" not in outputs


def test_a_panel_shows_a_flow_another_clients_listener_serves(
    make_client: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    """A second client (another kernel) pointed at the first one's loopback URI."""
    first = make_client()
    first.setup()
    second = make_client(mode="auto", redirect_uri=first.redirect_uri)
    link = first.get_user_authorization_url("ada")
    panel = second.panel("ada")  # used to crash: this client runs no listener itself
    try:
        assert panel.state.link is not None
        assert panel.state.link.url == str(link)
        assert provider.approve(panel.state.link.url).status_code == 200
        assert first.wait_for_authorization("ada", timeout=PATIENCE).token
    finally:
        panel.close()


def test_check_configuration_shows_the_doctors_report(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    panel = client.panel("ada")
    try:
        button = one(panel, "chat-oauth2-check")
        report = one(panel, "chat-oauth2-report")
        assert report.value == ""
        button.click()
        assert wait_for(lambda: "<table" in report.value), report.value
        assert "credentials" in report.value.lower() and "invalid_client" not in report.value
        assert wait_for(
            lambda: "Checked the configuration" in one(panel, "chat-oauth2-outcome").value
        )
        data = client.get_access_token_for_user("ada")
        assert data is not None
        _assert_no_secret_in_widget_state([provider.client_secret, data.token, data.refresh_token])
    finally:
        panel.close()


def test_check_configuration_names_a_wrong_secret(
    make_client: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = make_client(client_secret="not-the-secret-" + "x" * 20)
    panel = client.panel("ada")
    try:
        one(panel, "chat-oauth2-check").click()
        report = one(panel, "chat-oauth2-report")
        assert wait_for(lambda: "invalid_client" in report.value), report.value
        # The failure comes first, wrapped in the card; what passed is folded under it.
        verdicts = re.findall(r'data-verdict="(\w+)"', report.value)
        order = {"fail": 0, "warn": 1, "ok": 2, "skipped": 3}
        assert verdicts[0] == "fail" and verdicts == sorted(verdicts, key=order.__getitem__)
        assert report.value.index("invalid_client") < report.value.index("<details>")
    finally:
        panel.close()
