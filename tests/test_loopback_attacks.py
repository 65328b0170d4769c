"""Another local user against the loopback listener: port takeover, slow sockets, hangs.

Each attack runs as a throwaway OS user (tests/support/otheruser.py) against a real
loopback listener and the demo provider, on 127.0.0.1 only.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from support import otheruser
from support.otheruser import OtherUser
from support.server import free_port

from chat_oauth2_nb import ConfigurationError, StateError
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.kernel import loopback
from chat_oauth2_nb.notebook.client import OAuth2Client

Make = Callable[..., OAuth2Client]
other_user = otheruser.other_user  # the fixture: a throwaway local user

# Binds 127.0.0.1:PORT as soon as it is free (trying for SECONDS), listens, and reports every
# request it receives: the attacker's listener.
TAKE_PORT = r"""
import socket, sys, time
port, until = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
held = None
print("trying", flush=True)
while held is None and time.monotonic() < until:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(16)
        held = sock
    except OSError:
        sock.close()
        time.sleep(0.005)
if held is None:
    print("never bound", flush=True)
    sys.exit(0)
print("bound", flush=True)
while time.monotonic() < until:
    held.settimeout(max(0.05, until - time.monotonic()))
    try:
        conn, _ = held.accept()
    except OSError:
        break
    conn.settimeout(2)
    try:
        line = conn.recv(65536).split(b"\r\n")[0].decode("ascii", "replace")
        print("received", line, flush=True)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nmallory")
    except OSError:
        pass
    conn.close()
print("done", flush=True)
"""


def _port(url: str | None) -> int:
    port = urlsplit(url or "").port
    assert port is not None, url
    return port


# -- finding 1: the port is never let go between flows --------------------------------------


def test_a_freed_port_taken_between_flows_never_receives_the_next_link(
    make_client: Make, provider: DemoProvider, other_user: OtherUser
) -> None:
    client = make_client(flow_ttl=60)
    first = client.get_user_authorization_url("ada")
    port = _port(first)
    assert provider.approve(first).status_code == 200
    client.wait_for_authorization("ada", timeout=60)
    # No flow is pending now. Another user grabs the port the moment it is free.
    attacker = other_user.start(TAKE_PORT, port, 8)
    assert other_user.wait_for_line(attacker, "trying")[-1] == "trying"
    time.sleep(3)  # the old listener let its port go within ~1 s of going idle
    second = client.get_user_authorization_url("ada")
    flow = client.store.flow_by_start_id(second.start_id)
    assert flow is not None
    # Link, redirect URI and the flow's recorded redirect all on the port the victim holds.
    assert _port(second) == _port(flow.redirect_uri) == _port(client.redirect_uri) == port
    answer = provider.approve(second)
    assert answer.status_code == 200 and "mallory" not in answer.text
    assert client.wait_for_authorization("ada", timeout=60).token
    lines = other_user.finish(attacker)
    assert "never bound" in lines, lines  # the attacker never held it...
    assert not [line for line in lines if line.startswith("received")], lines  # ...nor heard


def test_a_link_for_a_port_no_longer_held_is_refused_not_moved(
    make_client: Make, other_user: OtherUser
) -> None:
    client = make_client()
    flow, link = client.start_flow("ada")
    port = _port(link)
    client.close()  # the listener goes, and with it the port
    attacker = other_user.start(TAKE_PORT, port, 15)
    assert "bound" in other_user.wait_for_line(attacker, "bound"), "the port stayed taken"
    # A panel (or code) asking for the flow's link again gets a typed error, never a link
    # to the port another user holds now.
    with pytest.raises(StateError, match="no longer held"):
        client.start_link(flow)


def test_a_fixed_loopback_port_another_user_holds_is_a_typed_error(
    make_client: Make, other_user: OtherUser
) -> None:
    port = free_port()
    attacker = other_user.start(TAKE_PORT, port, 15)
    assert "bound" in other_user.wait_for_line(attacker, "bound")
    client = make_client(loopback_port=port)
    with pytest.raises(ConfigurationError, match=f"'loopback_port' is {port}.*holds it"):
        client.setup()


def test_a_request_before_any_flow_is_answered_and_gone_clients_print_nothing(
    make_client: Make, capfd: pytest.CaptureFixture[str]
) -> None:
    client = make_client()
    port = _port(client.setup())
    # Before any flow: answered at once (an error page), not left hanging in the backlog.
    started = time.monotonic()
    idle = httpx.get(f"http://127.0.0.1:{port}/chat-oauth2/callback/demo?state=s&code=c", timeout=5)
    assert idle.status_code == 400 and time.monotonic() - started < 5
    client.get_user_authorization_url("ada")
    # Clients that reset the connection right after their request: no traceback anywhere.
    head = f"GET /chat-oauth2/start/{'x' * 43} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    for _ in range(30):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(head.encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(1.5)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err[-2000:]


# -- finding 10: slow sockets do not lock the person out -------------------------------------

# Opens COUNT connections that send a request head one byte at a time, reconnecting each one
# that is dropped, for SECONDS.
TRICKLE = r"""
import socket, sys, time
port, count, until = int(sys.argv[1]), int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
head = b"GET /chat-oauth2/callback/demo?state=" + b"a" * 4000
def connect():
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    return [sock, 0]
conns = [connect() for _ in range(count)]
print("trickling", flush=True)
drops = 0
while time.monotonic() < until:
    for entry in conns:
        try:
            entry[0].send(head[entry[1] % len(head):][:1])
            entry[1] += 1
        except OSError:
            entry[0].close()
            drops += 1
            entry[:] = connect()
    time.sleep(0.2)
print("dropped", drops, flush=True)
"""


def test_slow_sockets_of_another_user_do_not_get_the_victim_a_503(
    make_client: Make, provider: DemoProvider, other_user: OtherUser
) -> None:
    client = make_client()
    link = client.get_user_authorization_url("ada")
    port = _port(link)
    slow = loopback.MAX_HANDLERS * 3
    attacker = other_user.start(TRICKLE, port, slow, 25)
    assert other_user.wait_for_line(attacker, "trickling")[-1] == "trickling"
    time.sleep(2)  # every attacker connection is open and trickling
    started = time.monotonic()
    answer = provider.approve(link)  # start link, provider, callback: three requests
    took = time.monotonic() - started
    assert answer.status_code == 200, (answer.status_code, answer.text[:200])
    assert took < 15, took
    assert client.wait_for_authorization("ada", timeout=60).token
    print(f"victim served in {took:.2f} s beside {slow} trickling sockets")
    attacker.kill()


def test_a_trickling_head_is_dropped_at_the_total_deadline(make_client: Make) -> None:
    client = make_client()
    port = _port(client.get_user_authorization_url("ada"))
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(0.1)
    closed = threading.Event()
    started = time.monotonic()
    try:
        # One byte every 0.2 s: each read is quick, only the whole head is slow.
        while time.monotonic() - started < 20:
            try:
                sock.send(b"G")
                if sock.recv(4096) == b"":
                    closed.set()
                    break
            except TimeoutError:
                pass
            except OSError:
                closed.set()
                break
            time.sleep(0.1)
    finally:
        sock.close()
    took = time.monotonic() - started
    assert closed.is_set() and took < loopback.HEAD_DEADLINE + 3, took
