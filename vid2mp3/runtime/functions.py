"""Load ``functions/<name>/main.py`` as functions-framework apps, the way production does."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from vid2mp3.triggers import ALL_FUNCTIONS


def source(name: str) -> Path:
    """The ``main.py`` of function ``name`` (shipped in the wheel as ``vid2mp3.functions``)."""
    path = Path(str(resources.files("vid2mp3.functions") / name / "main.py"))
    if not path.is_file():
        raise LookupError(f"no function {name!r}; known: {', '.join(ALL_FUNCTIONS)}")
    return path


def target(name: str) -> str:
    """The Python name of function ``name``'s entry point (``upload-init`` → ``upload_init``)."""
    return name.replace("-", "_")


def load(name: str) -> Any:
    """A functions-framework WSGI app for one function."""
    import functions_framework

    return functions_framework.create_app(target(name), str(source(name)))


def load_all(names: tuple[str, ...] = ALL_FUNCTIONS) -> dict[str, Any]:
    return {name: load(name) for name in names}
