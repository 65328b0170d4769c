"""What ``mode="auto"`` makes of a client, and the modes a person can force.

environment.py decides where the browser is (tests/test_environment.py has the table);
here the client acts on that decision: the redirect URI, ``client.way`` and its reason.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.kernel import ways as ways_module
from chat_oauth2_nb.kernel.environment import Where
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.routes import SERVER_CALLBACK_ENV

Make = Callable[..., OAuth2Client]


@pytest.fixture
def browser_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[Where], None]:
    monkeypatch.delenv(SERVER_CALLBACK_ENV, raising=False)

    def place(where: Where) -> None:
        monkeypatch.setattr(ways_module, "browser_location", lambda: where)

    return place


REMOTE = Where(local=False, place="Google Colab", reason="COLAB_RELEASE_TAG is set")
LOCAL = Where(local=True, place="this machine", reason="DISPLAY is set")
UNKNOWN = Where(local=None, place="a headless machine", reason="nothing says where")


def test_extension_callback_is_used_without_probing_it(
    make_client: Make, browser_at: Callable[[Where], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Behind a proxy the kernel cannot reach the advertised address; that is no reason to
    # fall back to a loopback URI the person's browser cannot reach either.
    browser_at(REMOTE)
    unreachable = "https://hub.example.invalid/user/ada/chat-oauth2/callback"
    monkeypatch.setenv(SERVER_CALLBACK_ENV, unreachable)
    client = make_client(mode="auto")
    assert client.setup() == unreachable + "/demo"
    assert client.way == "jupyter" and "extension" in (client.way_reason or "")


def test_a_local_browser_gets_the_loopback(
    make_client: Make, browser_at: Callable[[Where], None]
) -> None:
    browser_at(LOCAL)
    client = make_client(mode="auto")
    assert client.setup().startswith("http://127.0.0.1:")
    assert client.way == "loopback" and "DISPLAY" in (client.way_reason or "")


def test_unknown_place_assumes_the_loopback_and_says_so(
    make_client: Make, browser_at: Callable[[Where], None]
) -> None:
    browser_at(UNKNOWN)
    client = make_client(mode="auto")
    client.setup()
    assert client.way == "loopback"


def test_a_remote_browser_gets_a_device_code_when_the_provider_has_one(
    make_client: Make, browser_at: Callable[[Where], None], provider: DemoProvider
) -> None:
    browser_at(REMOTE)
    provider.device_interval = 1
    client = make_client(mode="auto")
    assert client.setup() == ""
    assert client.way == "device" and "Colab" in (client.way_reason or "")
    link = client.get_user_authorization_url("ada")
    assert link.user_code
    provider.approve_device(link.user_code)
    assert client.wait_for_authorization("ada", timeout=30).token


def test_a_remote_browser_without_device_endpoint_gets_paste_back(
    make_client: Make, browser_at: Callable[[Where], None], provider: DemoProvider
) -> None:
    browser_at(REMOTE)
    config = provider.config(alias="demo")
    del config["deviceAuthorizationUri"]
    client = make_client(config=config, mode="auto")
    assert client.setup() == "http://127.0.0.1:53682/chat-oauth2/callback/demo"
    assert client.way == "paste"
    link = client.get_user_authorization_url("ada")
    ended_on = provider.approve(link, follow_redirect=False).headers["location"]
    assert client.complete_authorization(ended_on, "ada").token


def test_explicit_redirect_uri_wins_everywhere(
    make_client: Make, browser_at: Callable[[Where], None]
) -> None:
    browser_at(REMOTE)
    client = make_client(mode="auto", redirect_uri="https://lab.example.org/x/chat-oauth2/callback")
    assert client.setup() == "https://lab.example.org/x/chat-oauth2/callback"
    assert client.way == "jupyter" and "redirect_uri" in (client.way_reason or "")


def test_paste_port_follows_loopback_port(make_client: Make) -> None:
    client = make_client(mode="paste", loopback_port=8123)
    assert client.setup() == "http://127.0.0.1:8123/chat-oauth2/callback/demo"
