"""The package layout's promise: imports point inward.

library (vid2mp3/*.py and its adapter folders) ← runtime ← local, commands ← cli. Production
images run ``runtime`` and the library only, so nothing there may reach the laptop platform.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "vid2mp3"

#: For each layer, the layers it must never import.
FORBIDDEN = {
    "library": ("vid2mp3.runtime", "vid2mp3.local", "vid2mp3.commands", "vid2mp3.cli"),
    "runtime": ("vid2mp3.local", "vid2mp3.commands", "vid2mp3.cli"),
    "local": ("vid2mp3.commands", "vid2mp3.cli"),
    "commands": ("vid2mp3.local", "vid2mp3.cli"),
    "functions": ("vid2mp3.runtime", "vid2mp3.local", "vid2mp3.commands", "vid2mp3.cli"),
}


def layer_of(path: Path) -> str:
    if path.is_relative_to(ROOT / "functions"):
        return "functions"
    relative = path.relative_to(PACKAGE)
    if relative.parts[0] in ("runtime", "local", "commands"):
        return relative.parts[0]
    return "cli" if relative.parts == ("cli.py",) else "library"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


SOURCES = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "functions").rglob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_inward(path: Path) -> None:
    layer = layer_of(path)
    if layer == "cli":
        return
    wrong = sorted(
        name
        for name in imported_modules(path)
        for banned in FORBIDDEN[layer]
        if name == banned or name.startswith(f"{banned}.")
    )
    assert not wrong, f"{path.relative_to(ROOT)} ({layer}) imports {wrong}"


def test_the_rule_sees_a_wrong_import(tmp_path: Path) -> None:
    # The check above must be able to fail: an upward import is found in a parsed file.
    sample = tmp_path / "sample.py"
    sample.write_text("from vid2mp3.local.gateway import Gateway\nimport vid2mp3.cli\n")
    assert {"vid2mp3.local.gateway", "vid2mp3.cli"} <= imported_modules(sample)
