"""Directives that keep the pages in step with the code, so nothing new goes undocumented.

``{errors-table}``: every error class of chat_oauth2_nb.errors, as a tree. The list is built
from the module, so a new error type shows up by itself; and a class without its own section
in the page (a ``(error-<name in lower case>)=`` target) is a build warning, which the ``-W``
build turns into a failure.

``{other-public-names}``: the API reference of every name in ``chat_oauth2_nb.__all__`` that
the page does not document by name yet, so a new public name is in the reference at once.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


def error_classes() -> list[type[BaseException]]:
    """Every exception class defined in chat_oauth2_nb.errors, in the module's order."""
    from chat_oauth2_nb import errors

    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    ]
    return sorted(classes, key=lambda c: inspect.getsourcelines(c)[1])


def target(cls: type[BaseException]) -> str:
    """The section target a class's explanation must carry."""
    return f"error-{cls.__name__.lower()}"


def _summary(cls: type[BaseException]) -> str:
    return (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")


def _tree(classes: list[type[BaseException]]) -> list[str]:
    """Markdown bullets, each class under its first parent in the module (the hierarchy)."""
    listed = set(classes)

    def parent(cls: type[BaseException]) -> type[BaseException] | None:
        return next((b for b in cls.__bases__ if b in listed), None)

    def lines(of: type[BaseException] | None, depth: int) -> list[str]:
        out: list[str] = []
        for cls in (c for c in classes if parent(c) is of):
            also = [f"`{b.__name__}`" for b in cls.__bases__ if b in listed and b is not of]
            extra = f" (also a {', '.join(also)})" if also else ""
            link = f"[`{cls.__name__}`](#{target(cls)})"
            out.append(f"{'  ' * depth}- {link}{extra}: {_summary(cls)}")
            out.extend(lines(cls, depth + 1))
        return out

    return lines(None, 0)


class ErrorsTable(SphinxDirective):
    """Render the hierarchy; warn for every class the current page does not explain."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """Build the list's Markdown and parse it with the page's own parser."""
        source = Path(self.env.doc2path(self.env.docname)).read_text(encoding="utf-8")
        classes = error_classes()
        for cls in classes:
            if f"({target(cls)})=" not in source:
                logger.warning(
                    "%s (chat_oauth2_nb.errors) has no section in this page: add one that "
                    "starts with the target (%s)= and says what it means and what to change",
                    cls.__name__,
                    target(cls),
                    location=(self.env.docname, self.lineno),
                )
        return self.parse_text_to_nodes("\n".join(_tree(classes)))


class OtherPublicNames(SphinxDirective):
    """Document, with autodoc, the public names the current page does not mention yet."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """Build an ``eval-rst`` block of autodoc directives and parse it."""
        import chat_oauth2_nb

        source = Path(self.env.doc2path(self.env.docname)).read_text(encoding="utf-8")
        lines: list[str] = []
        for name in chat_oauth2_nb.__all__:
            if re.search(rf"chat_oauth2_nb\.{re.escape(name)}\b", source):
                continue
            value = getattr(chat_oauth2_nb, name)
            if isinstance(value, type) and issubclass(value, BaseException):
                kind = "autoexception"
            elif isinstance(value, type):
                kind = "autoclass"
            else:
                kind = "autofunction" if callable(value) else "autodata"
            lines.append(f".. {kind}:: chat_oauth2_nb.{name}")
            if kind == "autoclass":
                lines.append("   :members:")
            lines.append("")
        if not lines:
            return []
        return self.parse_text_to_nodes("```{eval-rst}\n" + "\n".join(lines) + "\n```")


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives."""
    app.add_directive("errors-table", ErrorsTable)
    app.add_directive("other-public-names", OtherPublicNames)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
