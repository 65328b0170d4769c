"""``%oauth2 PRESET`` where the administrator declared a provider under that preset's name.

A real Jupyter server (pytest-jupyter) declares ``gitlab`` (c.ChatOAuth2App.providers; the
demo provider stands in for it), its secret in the server's environment only. The kernel
side (this process) has no ``CHAT_OAUTH2_GITLAB_CLIENT_ID``: ``%oauth2 gitlab`` shows the
declared provider's panel, while ``--alias`` asks for the person's own client, whose missing
client id is named.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from IPython.core.error import UsageError

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.magic import _clients as magic_clients
from chat_oauth2_nb.notebook.magic import oauth2_magic


@pytest.fixture
def jp_server_config(provider: DemoProvider, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.delenv("CHAT_OAUTH2_GITLAB_CLIENT_ID", raising=False)
    assert provider.client_secret is not None
    monkeypatch.setenv("CHAT_OAUTH2_GITLAB_CLIENT_SECRET", provider.client_secret)
    return {
        "ServerApp": {"jpserver_extensions": {"chat_oauth2_nb": True}},
        "ChatOAuth2App": {
            "providers": {
                "gitlab": {**provider.config(alias="gitlab"), "clientId": provider.client_id}
            }
        },
    }


async def test_a_preset_name_the_server_declares_shows_the_declared_panel(
    jp_serverapp: Any, http_server_client: Any, provider: DemoProvider
) -> None:
    try:
        panel = await asyncio.to_thread(oauth2_magic, "gitlab")
        client = panel._client
        assert client.held_elsewhere and client.alias == "gitlab"
        assert client.config.client_id == provider.client_id
        assert client.config.client_secret is None
        with pytest.raises(UsageError) as own:
            await asyncio.to_thread(oauth2_magic, "gitlab --alias mine")
        assert "CHAT_OAUTH2_MINE_CLIENT_ID" in str(own.value)
    finally:
        for key in list(magic_clients):
            magic_clients.pop(key).close()
