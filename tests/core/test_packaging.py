"""What a wheel ships: every package and the resources the window needs."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_for_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "deal_monitor").rglob("__init__.py")
    }
    assert found | {"deal_monitor.resources"} == listed


def test_resources_are_found_from_the_source_tree():
    from deal_monitor.paths import resources_dir

    folder = resources_dir()
    assert (folder / "icons" / "app.svg").is_file()
    assert (folder / "i18n" / "deal_monitor_ru.ts").is_file()
