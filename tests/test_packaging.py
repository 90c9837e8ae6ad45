"""``pip install .`` must carry everything the library loads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_functions_contract_migrations_and_templates(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("vid2mp3-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        *(f"vid2mp3/functions/{p.parent.name}/main.py" for p in ROOT.glob("functions/*/main.py")),
        *(f"vid2mp3/contract/schemas/{p.name}" for p in ROOT.glob("events/schemas/*.json")),
        *(f"vid2mp3/migrations/{p.name}" for p in ROOT.glob("infra/sql/*.sql")),
        *(f"vid2mp3/templates/{p.name}" for p in ROOT.glob("vid2mp3/templates/*")),
        *(
            f"vid2mp3/local/static/{p.name}"
            for p in ROOT.glob("vid2mp3/local/static/*")
            if p.is_file()
        ),
    }
    assert len(expected) > 20
    assert expected <= names, sorted(expected - names)
    assert any(n.endswith("entry_points.txt") for n in names)
