"""Another tool's ``c.Spawner.server_token_scopes`` on a real hub: the error says so.

That setting replaces the "server" role's scopes for servers' API tokens, dropping the
service's access scope configure_hub(c) gave the role. The user's kernel must say what
really went wrong (the setting, the scope), not that configure_hub is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.hub import Kernel, RealHub, require_hub

from chat_oauth2_nb.demo import DemoProvider

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealHub]:
    require_hub()
    running = RealHub(tmp_path_factory.mktemp("hub-scopes"))
    # A later line of the config (a profile list, another service's setup).
    running.after_config = (
        'c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server"]'
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_overridden_server_token_scopes_are_named(hub: RealHub, provider: DemoProvider) -> None:
    client_id, secret = provider.register_client(redirect_uris=[f"{hub.callback_base}/demo"])
    kernel = Kernel(hub, hub.spawn("alice"))
    error = kernel.run(
        "from chat_oauth2_nb import create_oauth2_client\n"
        "try:\n"
        f"    client = create_oauth2_client({provider.config(alias='demo')!r}, "
        f"client_id={client_id!r}, client_secret={secret!r})\n"
        "    client.get_user_authorization_url()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, '|', exc)\n"
        "else:\n"
        "    print('no error')\n"
    ).strip()
    assert error.startswith("StoreError |"), error
    assert "c.Spawner.server_token_scopes" in error, error
    assert "access:services!service=chat-oauth2" in error, error
    # Not the misleading advice: configure_hub(c) is there.
    assert "configure_hub(c) is in jupyterhub_config.py" not in error, error
