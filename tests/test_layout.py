"""Imports run one way (DESIGN.md, "Layout"); the folders and the README's layout agree.

`web`, `workers`, `cli` → `embedded` → `service`, `tracking` → `delivery` → `letters`,
`audience` → `accounts` → `models` → ground (`config`, `db`, `errors`, `schema`). Areas on the
same level (`letters` and `audience`; `service` and `tracking`) do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LEVELS: dict[str, int] = {
    "config": 0, "db": 0, "errors": 0, "schema": 0,
    "models": 1,
    "accounts": 2,
    "letters": 3, "audience": 3,
    "delivery": 4,
    "tracking": 5, "service": 5,
    "embedded": 6,
    "web": 7, "cli": 7, "workers": 7,
}  # fmt: skip
EDGES = {"web", "cli", "workers"}


def area_of(module: str) -> str | None:
    """The area a dotted module name belongs to, or None for anything outside the product."""
    parts = module.split(".")
    if parts[0] == "workers":
        return "workers"
    if parts[0] != "campaigns":
        return None
    if len(parts) == 1:
        return "ground"  # the package itself
    return parts[1]


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """Every module a source imports, absolute, with its line (imports inside functions too)."""
    found: list[tuple[int, str]] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from campaigns import contacts` names a module: count the submodule.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            found.append((node.lineno, base))
    return found


def violations(module: str, source: str) -> list[str]:
    """The imports of `module` that run against the direction, as readable sentences."""
    own = area_of(module)
    if own is None or own in EDGES:
        return []
    problems: dict[tuple[int, str], str] = {}  # one complaint per line and area
    for line, target in imported_modules(source, module):
        other = area_of(target)
        if other is None or other == own or other == "ground" or (line, other) in problems:
            continue
        if other not in LEVELS:
            continue  # e.g. `campaigns.contacts` when that name is a symbol, not a module
        if own not in LEVELS:
            problems[line, other] = f"{module}:{line} is in no area of DESIGN.md's layout"
        elif LEVELS[other] >= LEVELS[own] and LEVELS[own] > 0:  # the ground is one piece
            problems[line, other] = (
                f"{module}:{line} imports {target} ({own} may not import {other})"
            )
    return list(problems.values())


def _modules() -> list[tuple[str, Path]]:
    found = []
    for folder in ("campaigns", "workers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.append((dotted.removesuffix(".__init__"), path))
    return found


def test_imports_in_the_tree_run_one_way() -> None:
    problems = [p for module, path in _modules() for p in violations(module, path.read_text())]
    assert problems == []


@pytest.mark.parametrize(
    ("module", "source", "complaint"),
    [
        ("campaigns.delivery.sending", "from campaigns.tracking import events",
         "delivery may not import tracking"),
        ("campaigns.letters.rendering", "from campaigns.audience.contacts import get_contact",
         "letters may not import audience"),
        ("campaigns.audience.segments", "from campaigns import letters",
         "audience may not import letters"),
        ("campaigns.models.contacts", "import campaigns.accounts.users",
         "models may not import accounts"),
        ("campaigns.accounts.users", "def f():\n    from campaigns.web import create_app\n",
         "accounts may not import web"),
        ("campaigns.delivery.ledger", "from ..tracking import reports",
         "delivery may not import tracking"),
        ("campaigns.helpers", "from campaigns.models import Contact", "in no area"),
    ],
)  # fmt: skip
def test_a_wrong_import_is_caught(module: str, source: str, complaint: str) -> None:
    (problem,) = violations(module, source)
    assert complaint in problem


def test_a_right_import_passes() -> None:
    source = "from campaigns.letters import rendering\nfrom campaigns.models import Contact\n"
    assert violations("campaigns.delivery.sending", source) == []


def test_every_area_of_the_layout_is_a_package_and_the_readme_names_it() -> None:
    readme = (ROOT / "README.md").read_text()
    for area in ("models", "accounts", "audience", "letters", "delivery", "tracking",
                 "embedded", "web"):  # fmt: skip
        assert (ROOT / "campaigns" / area / "__init__.py").is_file(), area
        assert f"{area}/" in readme, area
    flat = [p.name for p in (ROOT / "campaigns").glob("*.py")]
    assert sorted(flat) == ["__init__.py", "cli.py", "config.py", "db.py", "errors.py", "schema.py"]
