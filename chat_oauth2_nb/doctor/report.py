"""The doctor's findings: one :class:`Check` per question, a :class:`Report` of them all.

A report is a table in a notebook (``_repr_html_``, every value escaped) and text in a
terminal. It holds no secret: the session masks every sentence before it becomes a check.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator
from typing import Literal

__all__ = ["Check", "Finding", "Report", "Verdict"]

Verdict = Literal["ok", "warn", "fail", "skipped"]
#: What a check concluded: its verdict, what was seen and what to do.
Finding = tuple[Verdict, str, str]
_VERDICTS: tuple[Verdict, ...] = ("fail", "warn", "ok", "skipped")


@dataclasses.dataclass(frozen=True)
class Check:
    """One check: its id, a title, the verdict, what was seen and what to do."""

    id: str
    title: str
    verdict: Verdict
    evidence: str
    action: str

    def __str__(self) -> str:
        return f"{self.verdict:<7} {self.title}: {self.evidence} {self.action}".rstrip()


@dataclasses.dataclass(frozen=True)
class Report:
    """The doctor's findings for one client: a table in a notebook, text in a terminal."""

    alias: str
    client_id: str
    redirect_uri: str | None
    checks: tuple[Check, ...]

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    def __getitem__(self, check_id: str) -> Check:
        """The check with this id (``credentials``, ``redirect_uri``, ``clock``…)."""
        for check in self.checks:
            if check.id == check_id:
                return check
        raise KeyError(f"no check {check_id!r} in this report; ids: {self.ids()}")

    def __contains__(self, check_id: object) -> bool:
        return any(check.id == check_id for check in self.checks)

    def ids(self) -> list[str]:
        """The ids of the checks, in order."""
        return [check.id for check in self.checks]

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skipped checks allowed)."""
        return not self.failed

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [check for check in self.checks if check.verdict == "fail"]

    def summary(self) -> str:
        """One line: how many checks ended with each verdict."""
        counts = {v: sum(c.verdict == v for c in self.checks) for v in _VERDICTS}
        parts = [f"{n} {v}" for v, n in counts.items() if n]
        return f"{self.alias!r} (client_id {self.client_id}): " + ", ".join(parts)

    def __str__(self) -> str:
        lines = [f"Configuration check for {self.summary()}"]
        if self.redirect_uri:
            lines.append(f"redirect URI: {self.redirect_uri}")
        for check in self.checks:
            lines.append(f"  {check.verdict.upper():<7} {check.title}")
            lines.append(f"          {check.evidence}")
            if check.action:
                lines.append(f"          -> {check.action}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Report {self.summary()}>"

    def _repr_html_(self) -> str:
        """A table: check, verdict, what was seen, what to do (every value escaped)."""
        e = html.escape
        colors = {"ok": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e", "skipped": "#6e7781"}
        rows = "".join(
            "<tr>"
            f'<td style="text-align:left">{e(c.title)}</td>'
            f'<td style="text-align:left;color:{colors[c.verdict]};font-weight:600">'
            f"{e(c.verdict)}</td>"
            f'<td style="text-align:left">{e(c.evidence)}</td>'
            f'<td style="text-align:left">{e(c.action)}</td>'
            "</tr>"
            for c in self.checks
        )
        uri = f"<br>redirect URI: <code>{e(self.redirect_uri)}</code>" if self.redirect_uri else ""
        return (
            '<div class="chat-oauth2-doctor">'
            f"<p><b>Configuration check</b> for {e(self.summary())}{uri}</p>"
            "<table><thead><tr><th>Check</th><th>Verdict</th><th>What we saw</th>"
            f"<th>What to do</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
