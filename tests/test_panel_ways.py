"""The panel in the ways that need no reachable callback: device code, paste-back, the fallback.

Driven without a browser against the demo provider, like test_widgets.py: widgets are found
by their CSS classes (the browser test's handles), buttons pressed with ``.click()``, the
person at the provider played by ``provider.approve_device()`` / ``provider.approve()``.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from ipywidgets.embed import embed_data
from ipywidgets.widgets import widget as widget_module
from support.scan import assert_no_secret
from support.wait import poll as wait_for
from support.wait import wait_until
from support.widgets import one, primaries

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.store import Store
from chat_oauth2_nb.widgets import OAuth2Panel
from chat_oauth2_nb.widgets.state import LinkView, PanelState, fallback_offers

Make = Callable[..., OAuth2Client]
# How long a test waits for another thread or process: a bound for a loaded machine (five
# helpers on two cores), not a speed check.
PATIENCE = 60.0


# -- helpers ---------------------------------------------------------------------------------


def words(widget: Any) -> str:
    """An HTML widget's text as a person reads it."""
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", str(widget.value)).split()))


def status(panel: OAuth2Panel) -> str:
    return words(one(panel, "chat-oauth2-status"))


def shown(widget: Any) -> bool:
    return bool(widget.layout.display != "none")


def anchor(widget: Any, css_class: str) -> str:
    match = re.search(rf'class="{css_class}[ "][^>]*href="([^"]+)"', str(widget.value))
    assert match, widget.value
    return html.unescape(match.group(1))


def user_code(panel: OAuth2Panel) -> str:
    code = words(one(panel, "chat-oauth2-user-code")).rsplit(":", 1)[-1].strip()
    assert code, one(panel, "chat-oauth2-user-code").value
    return code


def device_codes(provider: DemoProvider) -> list[str]:
    with provider._store.lock:
        return [d.device_code for d in provider._store.devices.values()]


def widget_state() -> str:
    """Everything ipywidgets could save into the .ipynb, as one text."""
    dumps = [
        json.dumps(w.get_state(), default=str) for w in list(widget_module._instances.values())
    ]
    dumps.append(json.dumps(embed_data(views=None, drop_defaults=False), default=str))
    return "\n".join(dumps)


def landing_address(provider: DemoProvider, link: str, **kw: Any) -> str:
    """Approve at the provider; return the address the browser ends on (nothing serves it)."""
    redirect = provider.approve(link, follow_redirect=False, **kw)
    assert redirect.status_code in (302, 303), redirect.text
    return str(redirect.headers["location"])


def authorize_href(panel: OAuth2Panel) -> str:
    show = one(panel, "chat-oauth2-show-link")
    if shown(show):
        # A paste-back link reaches the widget only when asked for (test_paste_state_hygiene).
        show.click()
    return anchor(one(panel, "chat-oauth2-link"), "chat-oauth2-authorize")


def with_query(address: str, **changes: str) -> str:
    parts = urlsplit(address)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
def make_panel(make_client: Make) -> Iterator[Callable[..., OAuth2Panel]]:
    made: list[OAuth2Panel] = []

    def make(client: OAuth2Client, user: str = "ada", **kwargs: Any) -> OAuth2Panel:
        panel = OAuth2Panel(client, user, **kwargs)
        made.append(panel)
        return panel

    yield make
    for panel in made:
        panel.close()


@pytest.fixture
def fast_device(provider: DemoProvider) -> DemoProvider:
    provider.device_interval = 1
    return provider


def device_panel(make_client: Make, make_panel: Callable[..., OAuth2Panel]) -> OAuth2Panel:
    panel = make_panel(make_client(mode="device"))
    wait_until(lambda: shown(one(panel, "chat-oauth2-user-code")), "the user code", PATIENCE)
    return panel


# -- device code -----------------------------------------------------------------------------


def test_device_panel_shows_the_code_and_turns_authorized_by_itself(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], fast_device: DemoProvider
) -> None:
    panel = device_panel(make_client, make_panel)
    code = user_code(panel)
    assert status(panel).startswith("Not authorized") and "enter the code" in status(panel)
    verify = anchor(one(panel, "chat-oauth2-verify"), "chat-oauth2-verify-link")
    assert verify.startswith(fast_device.issuer) and code in verify  # the code filled in
    # The code's expiry, said once: the browser's countdown, and the text beside it.
    assert "The code expires at" in words(one(panel, "chat-oauth2-code-expiry"))
    assert "expires" not in status(panel)
    countdown = one(panel, "chat-oauth2-code-countdown")
    assert countdown.expires_at == panel.state.link.expires_at  # type: ignore[union-attr]
    assert one(panel, "chat-oauth2-copy-code").text == code
    assert primaries(panel) == ["Open the verification page"]
    assert not shown(one(panel, "chat-oauth2-new-code"))
    assert not shown(one(panel, "chat-oauth2-paste-box"))
    # Nobody calls wait_for_authorization(): the panel polls by itself.
    fast_device.approve_device(code)
    wait_until(
        lambda: status(panel).startswith("Authorized"),
        "Authorized",
        PATIENCE,
        detail=lambda: status(panel),
    )
    assert not shown(one(panel, "chat-oauth2-user-code"))
    assert shown(one(panel, "chat-oauth2-new-code"))  # to authorize again
    polls = fast_device.device_polls[code]
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(polls)), polls


def test_device_denied_shows_a_typed_error_and_a_new_code_button(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], fast_device: DemoProvider
) -> None:
    panel = device_panel(make_client, make_panel)
    fast_device.approve_device(user_code(panel), deny=True)
    wait_until(
        lambda: status(panel).startswith("Error"), "Error", PATIENCE, detail=lambda: status(panel)
    )
    error = words(one(panel, "chat-oauth2-error"))
    assert "access_denied" in error and "What to change" in error, error
    new_code = one(panel, "chat-oauth2-new-code")
    assert shown(new_code) and not new_code.disabled
    new_code.click()
    wait_until(lambda: shown(one(panel, "chat-oauth2-user-code")), "a new code", PATIENCE)
    assert status(panel).startswith("Not authorized") and "enter the code" in status(panel)
    fast_device.approve_device(user_code(panel))
    wait_until(
        lambda: status(panel).startswith("Authorized"),
        "Authorized",
        PATIENCE,
        detail=lambda: status(panel),
    )


def test_device_code_expiry_says_to_get_a_new_one(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], fast_device: DemoProvider
) -> None:
    # Long enough to be read before it expires, however slowly the panel shows it.
    fast_device.device_code_lifetime = 5
    panel = device_panel(make_client, make_panel)
    old = user_code(panel)
    wait_until(
        lambda: status(panel).startswith("Error"),
        "the code to expire",
        PATIENCE,
        detail=lambda: status(panel),
    )
    assert "start" in words(one(panel, "chat-oauth2-error")).lower()
    assert not shown(one(panel, "chat-oauth2-user-code"))
    fast_device.device_code_lifetime = 600
    one(panel, "chat-oauth2-new-code").click()
    wait_until(lambda: shown(one(panel, "chat-oauth2-user-code")), "a new code", PATIENCE)
    assert user_code(panel) != old and status(panel).startswith("Not authorized")


def test_device_panel_follows_a_code_started_in_a_cell(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], fast_device: DemoProvider
) -> None:
    client = make_client(mode="device")
    device = client.start_device_authorization("ada")
    panel = make_panel(client)
    assert user_code(panel) == device.user_code  # shown at once, no second code asked for
    fast_device.approve_device(device.user_code)
    assert client.wait_for_authorization("ada", timeout=PATIENCE).token
    wait_until(lambda: status(panel).startswith("Authorized"), "Authorized", PATIENCE)


# -- paste-back ------------------------------------------------------------------------------


def test_paste_success_wrong_address_and_replay(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider, store: Store
) -> None:
    panel = make_panel(make_client(mode="paste"))
    assert shown(one(panel, "chat-oauth2-paste-box"))
    assert "127.0.0.1:53682/chat-oauth2/callback/demo" in words(
        one(panel, "chat-oauth2-paste-help")
    )
    address = landing_address(provider, authorize_href(panel))
    field, finish = one(panel, "chat-oauth2-paste"), one(panel, "chat-oauth2-paste-finish")

    # A wrong address (forged state): the error next to the field, nothing stored.
    field.value = with_query(address, state="x" * 43)
    assert field.value == ""
    finish.click()
    note = one(panel, "chat-oauth2-paste-note")
    wait_until(
        lambda: "What failed" in words(note),
        "the error in place",
        PATIENCE,
        detail=lambda: words(note),
    )
    assert "What to change" in words(note) and status(panel).startswith("Not authorized")
    assert store.get_token("demo", "ada") is None

    # The real address still works.
    field.value = address
    assert field.value == "" and "press Finish" in words(note)
    finish.click()
    wait_until(
        lambda: status(panel).startswith("Authorized"),
        "Authorized",
        PATIENCE,
        detail=lambda: status(panel),
    )
    assert not shown(note)

    # Replayed: refused in place, the token stays.
    field.value = address
    finish.click()
    wait_until(
        lambda: "already used" in words(note),
        "the replay refused",
        PATIENCE,
        detail=lambda: words(note),
    )
    assert status(panel).startswith("Authorized")


def test_finish_without_a_paste_says_what_to_do(
    make_client: Make, make_panel: Callable[..., OAuth2Panel]
) -> None:
    panel = make_panel(make_client(mode="paste"))
    one(panel, "chat-oauth2-paste-finish").click()
    assert "Nothing was pasted" in words(one(panel, "chat-oauth2-paste-note"))


def test_pasted_denial_is_the_cards_error_and_a_new_link(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    panel = make_panel(make_client(mode="paste"))
    first = authorize_href(panel)
    one(panel, "chat-oauth2-paste").value = landing_address(provider, first, deny=True)
    one(panel, "chat-oauth2-paste-finish").click()
    wait_until(
        lambda: status(panel).startswith("Error"), "Error", PATIENCE, detail=lambda: status(panel)
    )
    assert "access_denied" in words(one(panel, "chat-oauth2-error"))
    assert authorize_href(panel) != first  # the used-up link was replaced


def test_pasted_denial_is_the_cards_error_when_the_watcher_sees_it_first(
    make_client: Make,
    make_panel: Callable[..., OAuth2Panel],
    provider: DemoProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race a loaded machine ran into: the store watcher ends the flow before Finish does."""
    client = make_client(mode="paste")
    panel = make_panel(client)
    first = authorize_href(panel)
    complete = client.complete_authorization

    def watcher_first(url_or_query: str, user: Any = None) -> Any:
        try:
            return complete(url_or_query, user)
        finally:
            panel._on_tick()  # the watcher's turn, between the store write and the finish

    monkeypatch.setattr(client, "complete_authorization", watcher_first)
    one(panel, "chat-oauth2-paste").value = landing_address(provider, first, deny=True)
    one(panel, "chat-oauth2-paste-finish").click()
    note = one(panel, "chat-oauth2-paste-note")
    wait_until(
        lambda: panel.state.busy is None and status(panel).startswith("Error"),
        "Error",
        PATIENCE,
        detail=lambda: f"{status(panel)} / next to the field: {words(note)}",
    )
    assert "access_denied" in words(one(panel, "chat-oauth2-error"))
    assert not shown(note)
    assert authorize_href(panel) != first


# -- the fallback ----------------------------------------------------------------------------


def test_fallback_rules() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.timestamp()
    link = LinkView(
        url="http://127.0.0.1:1/chat-oauth2/start/x",
        start_id="x",
        scopes=(),
        created_at=stamp - 90,
        expires_at=stamp + 500,
        started_by_panel=True,
        opened_at=stamp - 61,
    )
    state = PanelState(
        alias="demo", user="ada", auth_uri="a", token_uri="t", requested_scopes=(),
        redirect_uri="r", link=link, way="loopback", device_endpoint=True,
    )  # fmt: skip
    assert fallback_offers(state, now, 60) == ("paste", "device")
    assert fallback_offers(state, now, 120) is None  # not yet
    jupyter = PanelState(**{**state.__dict__, "way": "jupyter"})
    assert fallback_offers(jupyter, now, 60) == ("device",)  # the browser reaches Jupyter
    no_device = PanelState(**{**state.__dict__, "device_endpoint": False})
    assert fallback_offers(no_device, now, 60) == ("paste",)
    unopened = PanelState(
        **{**state.__dict__, "link": LinkView(**{**link.__dict__, "opened_at": None})}
    )
    assert fallback_offers(unopened, now, 60) is None


def open_start_link(panel: OAuth2Panel) -> None:
    """What the browser does first: the start page binds the flow, then sends it on."""
    answer = httpx.get(authorize_href(panel), follow_redirects=False)
    assert answer.status_code in (302, 303), answer.text


def test_fallback_offers_a_code_after_an_opened_link_went_quiet(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], fast_device: DemoProvider
) -> None:
    client = make_client()  # loopback
    panel = make_panel(client, fallback_after=0.5)
    box = one(panel, "chat-oauth2-fallback")
    assert not shown(box)
    open_start_link(panel)
    wait_until(lambda: shown(box), "the fallback offer", PATIENCE)
    text = words(one(panel, "chat-oauth2-fallback-text"))
    assert "Browser didn't come back?" in text and client.redirect_uri in text, text
    assert shown(one(panel, "chat-oauth2-fallback-paste"))
    one(panel, "chat-oauth2-fallback-device").click()
    wait_until(lambda: shown(one(panel, "chat-oauth2-user-code")), "a code", PATIENCE)
    assert not shown(box) and words(one(panel, "chat-oauth2-link")) == ""
    fast_device.approve_device(user_code(panel))
    wait_until(
        lambda: status(panel).startswith("Authorized"),
        "Authorized",
        PATIENCE,
        detail=lambda: status(panel),
    )


def test_fallback_to_paste_back(
    make_client: Make, make_panel: Callable[..., OAuth2Panel], provider: DemoProvider
) -> None:
    client = make_client()  # loopback
    panel = make_panel(client, fallback_after=0.5)
    open_start_link(panel)
    wait_until(lambda: shown(one(panel, "chat-oauth2-fallback-paste")), "the paste offer", PATIENCE)
    one(panel, "chat-oauth2-fallback-paste").click()
    assert shown(one(panel, "chat-oauth2-paste-box"))
    link = authorize_href(panel)
    assert "/chat-oauth2/start/" not in link  # the provider itself: nothing serves the redirect
    address = landing_address(provider, link)
    assert address.startswith("http://127.0.0.1:53682/chat-oauth2/callback/demo?")
    one(panel, "chat-oauth2-paste").value = address
    one(panel, "chat-oauth2-paste-finish").click()
    wait_until(
        lambda: status(panel).startswith("Authorized"),
        "Authorized",
        PATIENCE,
        detail=lambda: status(panel),
    )


def test_no_fallback_while_the_link_is_unopened(
    make_client: Make, make_panel: Callable[..., OAuth2Panel]
) -> None:
    panel = make_panel(make_client(), fallback_after=0.2)
    assert not wait_for(lambda: shown(one(panel, "chat-oauth2-fallback")), timeout=1.5)


# -- secrets ---------------------------------------------------------------------------------


def test_device_code_and_pasted_code_never_reach_widget_state(
    make_client: Make,
    make_panel: Callable[..., OAuth2Panel],
    fast_device: DemoProvider,
    store: Store,
) -> None:
    device = device_panel(make_client, make_panel)
    secrets = device_codes(fast_device)
    assert secrets
    assert_no_secret(widget_state(), secrets, "the widgets' state (device code pending)")
    fast_device.approve_device(user_code(device))
    wait_until(lambda: status(device).startswith("Authorized"), "Authorized", PATIENCE)

    paste = make_panel(make_client("pasted", mode="paste"))
    address = landing_address(fast_device, authorize_href(paste))
    code = parse_qs(urlsplit(address).query)["code"][0]
    one(paste, "chat-oauth2-paste").value = address
    # Read and emptied at once: between paste and Finish the code is in kernel memory only.
    assert one(paste, "chat-oauth2-paste").value == ""
    assert_no_secret(widget_state(), [code, *secrets], "the widgets' state (address pasted)")
    one(paste, "chat-oauth2-paste-finish").click()
    wait_until(lambda: status(paste).startswith("Authorized"), "Authorized", PATIENCE)
    tokens = [
        record.data.token
        for record in (store.get_token("demo", "ada"), store.get_token("pasted", "ada"))
        if record is not None
    ]
    assert len(tokens) == 2
    assert_no_secret(widget_state(), [code, *secrets, *tokens], "the widgets' state (authorized)")
