"""Shared fixtures: a real Jupyter server with the extension, the demo provider, clients."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.scan import nasty_secret

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.notebook.client import OAuth2Client, create_oauth2_client
from chat_oauth2_nb.store import Store

pytest_plugins = ["pytest_jupyter.jupyter_server", "support.oidc"]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"chat_oauth2_nb": True}}}


@pytest.fixture
def provider() -> Iterator[DemoProvider]:
    p = start_demo_provider(port=0, token_lifetime=3600)
    yield p
    p.stop()


@pytest.fixture
def declared(provider: DemoProvider, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A client of the demo provider whose secret only the server's environment holds."""
    client_id, secret = provider.register_client(client_secret=nasty_secret("GOCSPX-"), scopes=None)
    assert secret is not None
    monkeypatch.setenv("CHAT_OAUTH2_DEMO_CLIENT_SECRET", secret)
    return client_id, secret


@pytest.fixture
def store(tmp_path: Any) -> Store:
    return Store(tmp_path / "store" / "store.sqlite3")


@pytest.fixture
def make_client(provider: DemoProvider, store: Store) -> Iterator[Callable[..., OAuth2Client]]:
    """Build loopback-mode clients against the demo provider; closes them afterwards."""
    made: list[OAuth2Client] = []

    def make(alias: str = "demo", **kwargs: Any) -> OAuth2Client:
        kwargs.setdefault("client_id", provider.client_id)
        kwargs.setdefault("client_secret", provider.client_secret)
        kwargs.setdefault("mode", "loopback")
        kwargs.setdefault("store", store)
        config = kwargs.pop("config", None) or provider.config(alias=alias)
        client = create_oauth2_client(config, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def authorized(
    make_client: Callable[..., OAuth2Client], provider: DemoProvider
) -> Callable[..., OAuth2Client]:
    """A client whose user has gone through the whole flow (loopback callback)."""

    def make(user: str = "ada", **kwargs: Any) -> OAuth2Client:
        client = make_client(**kwargs)
        url = client.get_user_authorization_url(user)
        response = provider.approve(url)
        assert response.status_code == 200, response.text
        client.wait_for_authorization(user, timeout=10)
        return client

    return make


class SecretLog(logging.Handler):
    """Collects every formatted log record of chat_oauth2_nb, to scan for secrets."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def secret_log() -> Iterator[SecretLog]:
    handler = SecretLog()
    logger = logging.getLogger("chat_oauth2_nb")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


@pytest.fixture(autouse=True)
def _widgets_do_not_outlive_their_test() -> Iterator[None]:
    """Close the widgets a test left open, so the next test's scans and thread counts are its own.

    A panel left open keeps the shared store watcher alive and its widgets in ipywidgets'
    registry, where a later test's secret scan would read another test's redirect URIs.
    """
    from ipywidgets.widgets import widget as registry

    before = set(registry._instances)
    yield
    left = [w for key, w in list(registry._instances.items()) if key not in before]
    from chat_oauth2_nb.widgets import OAuth2Panel

    # Panels first: their close() ends their subscriptions and worker threads.
    for widget in sorted(left, key=lambda w: not isinstance(w, OAuth2Panel)):
        widget.close()
