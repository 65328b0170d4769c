"""The small HTML page the callback answers with; every provider value is escaped."""

from __future__ import annotations

from html import escape

from .callback import CallbackOutcome

__all__ = ["render_outcome"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="robots" content="noindex">
<title>{title} · chat_oauth2_nb</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 40em; margin: 4em auto; padding: 0 1em; }}
.ok {{ color: #1a7f37; }} .fail {{ color: #b42318; }}
dt {{ font-weight: 600; }} code {{ background: #f3f3f3; padding: 0 .2em; }}
</style></head>
<body><h1 class="{cls}" id="outcome" data-status="{status}">{title}</h1>
<p>{message}</p>{details}
</body></html>
"""


def render_outcome(outcome: CallbackOutcome) -> str:
    """Render the callback's outcome as a page that says what happened and what to do."""
    rows = []
    if outcome.error:
        rows.append(f"<dt>Provider error</dt><dd><code>{escape(outcome.error)}</code></dd>")
    if outcome.error_description:
        rows.append(f"<dt>Description</dt><dd>{escape(outcome.error_description)}</dd>")
    if outcome.hint:
        rows.append(f"<dt>What to do</dt><dd>{escape(outcome.hint)}</dd>")
    details = f"<dl>{''.join(rows)}</dl>" if rows else ""
    return _PAGE.format(
        title=escape(outcome.title),
        cls="ok" if outcome.ok else "fail",
        status=outcome.status,
        message=escape(outcome.message),
        details=details,
    )
