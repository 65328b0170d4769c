"""The ``{errors-table}`` directive: every error class of chat_oauth2_nb.errors, as a table.

The table is built from the module, so a new error type shows up by itself; and a class
without its own section in the page (a ``(error-<name in lower case>)=`` target) is a build
warning, which the ``-W`` build turns into a failure: no error type goes undocumented.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


def error_classes() -> list[type[BaseException]]:
    """Every exception class chat_oauth2_nb.errors exports, base classes first."""
    from chat_oauth2_nb import errors

    found = [getattr(errors, name) for name in errors.__all__]
    classes = [c for c in found if isinstance(c, type) and issubclass(c, BaseException)]
    return sorted(classes, key=lambda c: (len(c.__mro__), c.__name__))


def target(cls: type[BaseException]) -> str:
    """The section target a class's explanation must carry."""
    return f"error-{cls.__name__.lower()}"


def _parents(cls: type[BaseException]) -> str:
    names = [b.__name__ for b in cls.__bases__ if b.__module__ == cls.__module__]
    return ", ".join(f"`{n}`" for n in names) or "`Exception`"


class ErrorsTable(SphinxDirective):
    """Render the table; warn for every class the current page does not explain."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """Build the table's Markdown and parse it with the page's own parser."""
        source = Path(self.env.doc2path(self.env.docname)).read_text(encoding="utf-8")
        lines = ["| Error | Is a | What it means |", "|---|---|---|"]
        for cls in error_classes():
            if f"({target(cls)})=" not in source:
                logger.warning(
                    "%s (chat_oauth2_nb.errors) has no section in this page: add one that "
                    "starts with the target (%s)= and says what it means and what to change",
                    cls.__name__,
                    target(cls),
                    location=(self.env.docname, self.lineno),
                )
            summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
            summary = summary.replace("|", "\\|")
            lines.append(f"| [`{cls.__name__}`](#{target(cls)}) | {_parents(cls)} | {summary} |")
        return self.parse_text_to_nodes("\n".join(lines))


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("errors-table", ErrorsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
