"""The manual names only what exists.

Every dotted ``fastmon.`` name in a code span of README.md or docs/*.md resolves (the longest
importable module, then attributes), every page in docs/ is in mkdocs.yml's navigation, and
docs/configuration.md lists exactly the keys of ``fastmon.conf.DEFAULTS``. Modules move between
minor versions; a page that still names the old home fails here, not in a reader's shell.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

# Fenced code blocks (indented too, as inside a list item) are code, not prose: their names are
# not in code spans, and their backticks must not pair with the prose's.
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`]+)`")
# A whole code span that is a dotted name, optionally called: `fastmon.a.b`, `fastmon.a.b(x)`.
NAME = re.compile(r"(fastmon(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\([^()]*\))?")
# Django system check ids (`fastmon.W001`): checked against fastmon.checks' source.
CHECK_ID = re.compile(r"fastmon\.[CDEIW]\d{3}")


def _code_spans(text: str) -> Iterator[tuple[int, str]]:
    """(line number, content) of each inline code span, fenced blocks left out (their lines
    blanked, so line numbers stay right)."""
    prose = FENCE.sub(lambda match: "\n" * match.group(0).count("\n"), text)
    for match in CODE_SPAN.finditer(prose):
        yield prose.count("\n", 0, match.start()) + 1, " ".join(match.group(1).split())


def _named() -> list[tuple[str, str]]:
    """("page:line", name) for every dotted fastmon name the pages give in a code span."""
    found = []
    for page in PAGES:
        for line, span in _code_spans(page.read_text(encoding="utf-8")):
            if match := NAME.fullmatch(span):
                found.append((f"{page.relative_to(ROOT)}:{line}", match.group(1)))
    return found


def _celery_task_names() -> set[str]:
    """The names fastmon's Celery tasks are registered under (`fastmon.sample_stfs`, ...)."""
    tasks = importlib.import_module("fastmon.tasks")
    names = set()
    for value in vars(tasks).values():
        name = getattr(value, "name", None) if hasattr(value, "apply_async") else None
        if isinstance(name, str):
            names.add(name)
    return names


def _unresolved(name: str, task_names: set[str]) -> str | None:
    """Why ``name`` does not resolve, or None when it does."""
    if CHECK_ID.fullmatch(name):
        source = inspect.getsource(importlib.import_module("fastmon.checks"))
        return None if f'"{name}"' in source else "no system check has this id"
    if name in task_names:
        return None
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            found: object = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if module_name == missing or module_name.startswith(missing + "."):
                continue  # this prefix is no module: try a shorter one
            return f"importing {module_name} failed: {exc}"
        except Exception as exc:  # a module that exists but cannot be imported
            return f"importing {module_name} raised {exc!r}"
        for depth, attribute in enumerate(parts[cut:], start=cut + 1):
            try:
                found = getattr(found, attribute)
            except AttributeError:
                return f"{'.'.join(parts[: depth - 1])} has no attribute {attribute!r}"
        return None
    return "no module of it can be imported"


def test_every_fastmon_name_in_the_manual_resolves() -> None:
    named = _named()
    assert named, "no fastmon names found: the pattern or the pages moved"
    task_names = _celery_task_names()
    failures = []
    for where, name in named:
        if (reason := _unresolved(name, task_names)) is not None:
            failures.append(f"{where}: `{name}`: {reason}")
    assert not failures, f"{len(failures)} names in the manual do not resolve:\n" + "\n".join(
        failures
    )


def _nav_pages(entries: object) -> Iterator[str]:
    if isinstance(entries, str):
        yield entries
    elif isinstance(entries, list):
        for entry in entries:
            yield from _nav_pages(entry)
    elif isinstance(entries, dict):
        for value in entries.values():
            yield from _nav_pages(value)


def test_every_docs_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"
    listed = list(_nav_pages(config["nav"]))
    pages = {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}
    assert sorted(pages - set(listed)) == [], "pages missing from mkdocs.yml's nav"
    assert sorted(set(listed) - pages) == [], "nav entries with no page in docs/"
    assert len(listed) == len(set(listed)), "a page listed twice in mkdocs.yml's nav"


def test_configuration_lists_every_setting_and_no_other() -> None:
    from fastmon.conf import DEFAULTS

    listed = set()
    for line in (DOCS / "configuration.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            listed.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    assert sorted(listed - set(DEFAULTS)) == [], "settings in configuration.md that do not exist"
    assert sorted(set(DEFAULTS) - listed) == [], "settings missing from configuration.md"
