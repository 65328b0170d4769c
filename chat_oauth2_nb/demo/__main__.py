"""``python -m chat_oauth2_nb.demo``: run the demo provider until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .provider import DemoProvider


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chat_oauth2_nb.demo",
        description="Run the chat_oauth2_nb demo OAuth2 provider on a loopback address.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument(
        "--token-lifetime", type=int, default=3600, help="access token lifetime in seconds"
    )
    parser.add_argument(
        "--scopes", default="openid profile email", help="defaultScopes of the printed config"
    )
    parser.add_argument(
        "--dpop-nonce",
        action="store_true",
        help="demand a server nonce in every DPoP proof (RFC 9449 §8, §9)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Start the provider, print how to use it, serve until interrupted."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        provider = DemoProvider(port=args.port, token_lifetime=args.token_lifetime, host=args.host)
        provider.dpop.require_nonce = args.dpop_nonce
        provider.start()
    except (OSError, ValueError) as exc:
        print(f"cannot start the demo provider: {exc}", file=sys.stderr)
        return 1

    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"issuer:        {provider.issuer}")
    print(f"client_id:     {provider.client_id}")
    print(f"client_secret: {provider.client_secret}")
    print("config:")
    print(json.dumps(provider.config(alias="demo", scopes=tuple(args.scopes.split())), indent=2))
    print(
        "DPoP: pass dpop=True to create_oauth2_client(); the token is bound to a key kept with "
        f"it, and {provider.api_url} refuses it as a Bearer token.",
    )
    print("Press Ctrl-C to stop.", flush=True)
    try:
        # wait() with a timeout so the main thread keeps running signal handlers.
        while not done.wait(0.5):
            pass
    finally:
        provider.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
