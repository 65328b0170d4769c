"""What a person sees in a notebook when something goes wrong: a real ipykernel, its outputs read.

Our errors show as their three parts (what failed, what the provider said, what to change)
and a pointer to ``%tb``, not a library traceback; ``%tb`` shows the full one. ``setup()``
says which way ``mode='auto'`` chose when it is not the Jupyter callback, and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.kernel import Kernel, kernel_env, running_kernel
from support.scan import assert_no_secret

from chat_oauth2_nb.demo import DemoProvider

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    # A hosted notebook's mark (GitHub Codespaces): the browser is elsewhere, no Jupyter
    # server with the extension runs the kernel.
    with running_kernel(kernel_env(tmp_path, CODESPACES="true")) as kernel:
        yield kernel


def test_a_typo_shows_the_short_message_and_tb_the_full_traceback(kernel: Kernel) -> None:
    failed = kernel.run(
        "from chat_oauth2_nb import create_oauth2_client\n"
        "client = create_oauth2_client({'alias': 'acme', 'authUri': 'https://a.example/auth',\n"
        "    'acessTokenUri': 'https://a.example/token'}, client_id='id', client_secret='s')"
    )
    assert failed.error == (
        "ConfigurationError: Config field 'acessTokenUri' is not a known config key.\n"
        "What to change: Did you mean 'accessTokenUri'?\n"
        "(The full traceback: run %tb in the next cell.)"
    )
    full = kernel.run("%tb")
    assert full.error is not None
    # IPython's own traceback: the cell's line, our frames, then the message.
    assert "create_oauth2_client" in full.error and "config.py" in full.error
    assert full.error.rstrip().endswith(
        "ConfigurationError: Config field 'acessTokenUri' is not a known config key. "
        "Did you mean 'accessTokenUri'?"
    )
    assert len(full.error.splitlines()) > 10


def test_a_providers_refusal_shows_what_it_said_and_what_to_change(
    kernel: Kernel, provider: DemoProvider
) -> None:
    kernel.ok(
        "from chat_oauth2_nb import create_oauth2_client\n"
        f"client = create_oauth2_client({dict(provider.config())!r}, "
        f"client_id={provider.client_id!r}, client_secret='wrong-secret', mode='device')"
    )
    failed = kernel.run("client.start_device_authorization()")
    assert failed.error is not None
    lines = failed.error.splitlines()
    assert lines[0] == "DeviceAuthorizationError: Device authorization failed."
    assert lines[1].startswith("The provider said 'invalid_client'") and "(HTTP 401)" in lines[1]
    assert lines[2].startswith(
        f"What to change: Check the client id {provider.client_id!r} (from the client_id= "
        "argument) and the client secret (it came from the client_secret= argument)"
    )
    assert lines[3] == "(The full traceback: run %tb in the next cell.)"
    assert_no_secret(failed.error, ["wrong-secret", provider.client_secret], "the error")


def test_setup_says_which_way_auto_chose_and_why(kernel: Kernel, provider: DemoProvider) -> None:
    ran = kernel.ok(
        "from chat_oauth2_nb import create_oauth2_client\n"
        f"client = create_oauth2_client({dict(provider.config())!r}, "
        f"client_id={provider.client_id!r}, client_secret={provider.client_secret!r})\n"
        "client.setup()"
    )
    assert ran.text.strip().splitlines()[0] == (
        "chat_oauth2_nb: 'demo' authorizes by a device code typed at the provider (the device "
        "way), as no Jupyter server with the chat_oauth2_nb extension runs this kernel. The "
        "browser is not on this machine (GitHub Codespaces: CODESPACES is true) and the "
        "provider offers device codes: you open a link on any device and type the code shown "
        "here. Pass mode= ('jupyter', 'loopback', 'device', 'paste') to "
        "create_oauth2_client() to choose."
    )
    # Once per client: the next setup() keeps the way and says nothing more.
    again = kernel.ok("client.setup()")
    assert "authorizes by" not in again.text
    chosen = kernel.ok(
        "client2 = create_oauth2_client(client.config, mode='device')\nclient2.setup()"
    )
    assert "authorizes by" not in chosen.text  # the person chose it: nothing to explain
    assert_no_secret(ran.text, [provider.client_secret], "the note")
