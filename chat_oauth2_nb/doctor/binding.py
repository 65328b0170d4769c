"""Whether the provider can bind tokens to a key (DPoP, RFC 9449), and whether the config asks.

Judged from ``dpop_signing_alg_values_supported`` in the provider's metadata (RFC 9449 §5.1):
the kit signs its proofs with ES256.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import ProviderConfig
from ..oauth.dpop import DPOP_ALG
from .report import Finding

__all__ = ["judge_dpop"]


def judge_dpop(config: ProviderConfig, meta: Mapping[str, Any]) -> Finding:
    """``metadata:dpop``: the provider's DPoP support against ``dpop`` in the config."""
    raw = meta.get("dpop_signing_alg_values_supported")
    algs = [str(alg) for alg in raw] if isinstance(raw, list) else []
    listed = bool(algs)
    if config.dpop and not listed:
        return (
            "warn",
            "dpop=True, but the provider's metadata lists no "
            "dpop_signing_alg_values_supported: it may not support DPoP, and would then issue "
            "Bearer tokens (kept unbound, with a warning in the log).",
            "Check the provider's DPoP support (Okta, Auth0, Keycloak ≥ 26.4 have it), or "
            "set dpop=False.",
        )
    if config.dpop and DPOP_ALG not in algs:
        return (
            "fail",
            f"dpop=True, but the provider accepts DPoP proofs signed with {algs} only, and "
            f"this kit signs with {DPOP_ALG}.",
            f"Allow {DPOP_ALG} for DPoP at the provider, or set dpop=False.",
        )
    if config.dpop:
        return ("ok", f"Tokens are bound with DPoP; the provider accepts {DPOP_ALG}.", "")
    if listed:
        return (
            "ok",
            f"The provider supports DPoP ({algs}); this config asks for Bearer tokens. "
            "With dpop=True a leaked token is useless without the key held here.",
            "",
        )
    return ("skipped", "The provider lists no DPoP support and the config does not ask.", "")
