"""Admin tooling: ``python -m chat_oauth2_nb.hub check`` diagnoses every declared provider.

For each provider ``configure_hub(c, providers=...)`` declares, it prints the exact redirect
URI to register at the provider and the doctor's report (endpoints, metadata, the client
credentials with a made-up code, the redirect URI, the clock) run with the hub's own
credentials. It runs in the administrator's shell, never in the router service, and keeps
nothing: the diagnosis opens no store and records no flow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from ..config import ProviderConfig
from ..declarations import HUB_PROVIDERS, resolve_declarations
from ..errors import ConfigurationError, OAuth2Error
from ..routes import HUB_CALLBACK_ENV
from . import Report, Subject, diagnose

__all__ = ["check_declared", "main"]

# configure_hub()'s name for the service's providers file (hub/config.py).
_PROVIDERS_FILE_ENV = "CHAT_OAUTH2_NB_BROKER_PROVIDERS_FILE"


def check_declared(
    declared: Mapping[str, ProviderConfig],
    callback_base: str,
    *,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> list[tuple[str, str, Report]]:
    """(alias, redirect URI to register, diagnosis) for each declared provider."""
    results: list[tuple[str, str, Report]] = []
    for alias, config in declared.items():
        redirect = f"{callback_base.rstrip('/')}/{alias}"
        # No store: the admin's shell holds no one's token, so the token checks are skipped.
        subject = Subject(config, redirect, timeout=timeout, transport=transport)
        results.append((alias, redirect, diagnose(subject)))
    return results


def _hub_config(path: Path) -> Any:
    from traitlets.config.loader import PyFileConfigLoader

    if not path.is_file():
        raise ConfigurationError(
            "--config",
            f"names {path}, which is not a file",
            "Run this in the hub's directory, or pass -f /path/to/jupyterhub_config.py.",
        )
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def _declarations(config: Any, providers_file: str | None) -> dict[str, Any]:
    file = providers_file
    if not file:
        for service in dict.get(config.JupyterHub, "services") or []:
            file = (service.get("environment") or {}).get(_PROVIDERS_FILE_ENV) or file
    if not file:
        raise ConfigurationError(
            "providers",
            "are not declared in this hub's config",
            "Add providers={...} to configure_hub(c) in jupyterhub_config.py, or pass "
            "--providers-file for a service you run yourself.",
        )
    value = json.loads(Path(file).read_text())
    if not isinstance(value, dict):
        raise ConfigurationError("--providers-file", f"{file} is not a JSON object", "")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Print each declared provider's redirect URI and diagnosis; 1 when any check failed."""
    parser = argparse.ArgumentParser(
        prog="python -m chat_oauth2_nb.hub check",
        description="Diagnose the providers declared with configure_hub(c, providers=...).",
    )
    parser.add_argument("-f", "--config", default="jupyterhub_config.py")
    parser.add_argument("--providers-file", default=None)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        config = _hub_config(Path(args.config).resolve())
        environment = dict.get(config.Spawner, "environment") or {}
        callback = environment.get(HUB_CALLBACK_ENV)
        if not callback:
            raise ConfigurationError(
                "jupyterhub_config.py",
                "does not call configure_hub(c)",
                "Add `from chat_oauth2_nb.hub import configure_hub; configure_hub(c, "
                "providers=...)` at its end.",
            )
        declared = resolve_declarations(
            _declarations(config, args.providers_file),
            os.environ,
            where=HUB_PROVIDERS,
            holder="JupyterHub",
        )
        results = check_declared(declared, callback, timeout=args.timeout)
    except OAuth2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for alias, redirect, report in results:
        print(f"== {alias} ==")
        print(f"Register exactly this redirect URI at the provider: {redirect}")
        print(report)
        print()
    return 0 if all(report.ok for _, _, report in results) else 1
