"""The documentation builds with Sphinx, warnings as errors, and says what the README promises.

One build of docs/ (``python -m sphinx -W --keep-going -b html``, the command
docs/development.md gives) into a temporary folder is shared by the tests: it must end
without a warning, have every page the README links to, an API reference with every public
name, the whole of SECURITY.md and docs/ARCHITECTURE.md, a troubleshooting section for every
error class, and nothing a reader's browser would fetch from elsewhere. The directives of
docs/_ext/chat_oauth2_docs.py are shown to do their job on a one-page project: an error
class without a section fails the build, a public name the API page forgot is documented.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

import chat_oauth2_nb
from chat_oauth2_nb import errors

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = (
    "index",
    "user-guide",
    "ways",
    "providers",
    "hub",
    "security",
    "troubleshooting",
    "notebooks",
    "api",
    "ARCHITECTURE",
    "development",
)


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """Build ``source`` to HTML in ``out`` as a person would, warnings as errors."""
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
    command += ["-d", str(out / ".doctrees"), str(source), str(out)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs-html")
    result = sphinx_build(DOCS, out)
    log = result.stdout[-3000:] + result.stderr[-6000:]
    assert result.returncode == 0, f"the docs build failed:\n{log}"
    # --keep-going reports every warning; with -W any one fails the build, so none is left.
    assert "WARNING" not in result.stderr, result.stderr[-6000:]
    return out


def page(site: Path, name: str) -> str:
    return (site / f"{name}.html").read_text(encoding="utf-8")


def text_of(html: str) -> str:
    """The page's words as a reader sees them: no tags, entities unescaped, plain quotes."""
    plain = unescape(re.sub(r"<[^>]+>", "", html))
    return plain.translate(
        str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
    )


@pytest.mark.timeout(600)
def test_every_page_and_notebook_is_built(site: Path) -> None:
    for name in PAGES:
        assert (site / f"{name}.html").is_file(), f"{name}.html was not built"
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        built = site / "notebooks" / f"{notebook.stem}.html"
        assert built.is_file(), f"the notebook {notebook.name} was not rendered"
    quickstart = text_of(page(site, "notebooks/01-quickstart"))
    assert "Quickstart: authorize an OAuth2 API from a notebook" in quickstart
    assert "client.panel()" in quickstart
    # Every page is reachable from the index's table of contents.
    index = page(site, "index")
    for name in PAGES[1:]:
        assert f'href="{name}.html"' in index, f"{name} is not in the index's toctree"


@pytest.mark.timeout(600)
def test_api_reference_lists_every_public_name(site: Path) -> None:
    html = page(site, "api")
    documented = set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', html))
    for name in chat_oauth2_nb.__all__:
        assert f"chat_oauth2_nb.{name}" in documented, f"{name} is not in the API reference"
    client_methods = [
        name
        for name, _ in inspect.getmembers(chat_oauth2_nb.OAuth2Client)
        if not name.startswith("_")
    ]
    assert "get_user_authorization_url" in client_methods
    for name in client_methods:
        assert f"chat_oauth2_nb.OAuth2Client.{name}" in documented, (
            f"OAuth2Client.{name} is not in the API reference (has it a docstring?)"
        )
    for name in ("token", "expires_at", "refresh_token"):
        assert f"chat_oauth2_nb.AuthData.{name}" in documented, f"AuthData.{name} missing"
    # The docstrings' own words, not just the names.
    assert "Create an OAuth2 client from the seed" in text_of(html)


@pytest.mark.timeout(600)
def test_security_and_architecture_are_the_files_themselves(site: Path) -> None:
    for source, name in (
        (ROOT / "SECURITY.md", "security"),
        (DOCS / "ARCHITECTURE.md", "ARCHITECTURE"),
    ):
        built = text_of(page(site, name))
        prose = re.sub(r"^```.*?^```", "", source.read_text(encoding="utf-8"), flags=re.M | re.S)
        headings = re.findall(r"^#+ (.+)$", prose, re.MULTILINE)
        assert len(headings) >= 5
        for heading in headings:
            words = text_of(re.sub(r"`([^`]*)`", r"\1", heading)).strip()
            assert words in built, f"{source.name}'s section {heading!r} is not on {name}.html"


@pytest.mark.timeout(600)
def test_troubleshooting_explains_every_error_class(site: Path) -> None:
    html = page(site, "troubleshooting")
    # Every exception class the module defines, exported or not.
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    ]
    assert len(classes) >= 21
    for cls in classes:
        anchor = f"error-{cls.__name__.lower()}"
        assert f'id="{anchor}"' in html, f"{cls.__name__} has no section"
        assert f'href="#{anchor}"' in html, f"{cls.__name__} is not in the generated list of errors"
    # The table carries each class's own docstring summary.
    assert text_of(html).count("A configuration field is missing or malformed") >= 1


@pytest.mark.timeout(600)
def test_pages_fetch_nothing_from_elsewhere(site: Path) -> None:
    """No CDN script, style or font: the pages work offline, as the build does."""
    for path in site.rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        external = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?:|//)[^"]*"', html)
        assert not external, f"{path.name} loads {external}"
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    assert "intersphinx" not in conf


def mini_project(root: Path, page: str, extensions: list[str]) -> Path:
    """A one-page Sphinx project with docs/_ext's directives and the worktree's package."""
    project = root / "project"
    project.mkdir()
    (project / "conf.py").write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(ROOT)!r}, {str(DOCS / '_ext')!r}]\n"
        f"extensions = {['myst_parser', *extensions, 'chat_oauth2_docs']!r}\n",
        encoding="utf-8",
    )
    (project / "index.md").write_text(page, encoding="utf-8")
    return project


@pytest.mark.timeout(300)
def test_an_undocumented_error_class_fails_the_build(tmp_path: Path) -> None:
    """The list of errors is generated from errors.py: a class without a section is an error."""
    sections = re.findall(
        r"^\(error-[a-z0-9]+\)=$",
        (DOCS / "troubleshooting.md").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    kept = [s for s in sections if s != "(error-tokenrevokeerror)="]
    assert len(kept) == len(sections) - 1
    body = "\n\n".join(f"{target}\n## Section {i}\n\ntext" for i, target in enumerate(kept))
    page = f"# Errors\n\n```{{errors-table}}\n```\n\n{body}\n"
    result = sphinx_build(mini_project(tmp_path, page, []), tmp_path / "out")
    assert result.returncode != 0
    assert "TokenRevokeError (chat_oauth2_nb.errors) has no section" in result.stderr
    assert result.stderr.count("has no section") == 1, result.stderr


@pytest.mark.timeout(300)
def test_a_public_name_not_on_the_api_page_is_documented_anyway(tmp_path: Path) -> None:
    """A page that names only one public name still documents all of them (a new one too)."""
    page = (
        "# API\n\n```{eval-rst}\n.. autofunction:: chat_oauth2_nb.create_oauth2_client\n```\n\n"
        "## The rest\n\n```{other-public-names}\n```\n"
    )
    project = mini_project(tmp_path, page, ["sphinx.ext.autodoc", "sphinx.ext.napoleon"])
    result = sphinx_build(project, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-4000:]
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    documented = re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', html)
    for name in chat_oauth2_nb.__all__:
        assert documented.count(f"chat_oauth2_nb.{name}") == 1, name
    assert "chat_oauth2_nb.OAuth2Client.setup" in documented
