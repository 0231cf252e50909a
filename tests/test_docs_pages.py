"""The documentation: generated pages are up to date, the navigation covers every page, and
the scenario reference holds every key of the JSON Schema. (CI also runs ``mkdocs build --strict``.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agents.registry import agent_names, params_class
from experiments.docs_pages import (
    AGENTS_PAGE,
    BEGIN,
    END,
    SCHEMA_FILE,
    main,
    scenarios_page,
    stale_pages,
    with_generated,
)

ROOT = Path(__file__).resolve().parents[1]


def test_committed_generated_pages_are_up_to_date() -> None:
    stale = [str(path.relative_to(ROOT)) for path in stale_pages()]
    assert stale == [], f"run `python -m experiments.docs_pages` to regenerate {stale}"
    assert main(["--check"]) == 0


def _schema_paths(node: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, child in node.get("properties", {}).items():
        paths.append(prefix + key)
        paths += _schema_paths(child, f"{prefix}{key}.")
        if isinstance(child.get("items"), dict):
            paths += _schema_paths(child["items"], f"{prefix}{key}[].")
    return paths


def test_scenario_reference_has_a_row_per_schema_key_with_its_bounds() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    page = scenarios_page(schema, "name: x\n")
    rows = {line.split(" | ")[0].strip("| `"): line for line in page.splitlines() if line.startswith("| `")}
    assert sorted(rows) == sorted([*_schema_paths(schema), "sweep.<key>"])  # sweep's keys are free-form paths
    assert "| integer | yes | in [1, 1000000] | steps T every run lasts |" in rows["horizon.steps"]
    assert "one of `online`, `batched`" in rows["conditions.cadence"]
    assert "| yes |" in rows["agents[].name"] and "| yes |" in rows["name"]
    assert "```yaml\nname: x\n```" in page


def test_a_schema_change_makes_the_page_stale(tmp_path: Path) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    before = scenarios_page(schema, "")
    schema["properties"]["horizon"]["properties"]["steps"]["maximum"] = 5
    assert "in [1, 5]" in scenarios_page(schema, "") and scenarios_page(schema, "") != before


def test_agent_tables_list_every_agent_and_parameter() -> None:
    page = AGENTS_PAGE.read_text(encoding="utf-8")
    generated = page.split(BEGIN)[1].split(END)[0]
    for name in agent_names():
        assert f"### `{name}`" in generated
        params = params_class(name)
        for key in params.fields() if params is not None else {}:
            section = generated.split(f"### `{name}`")[1].split("### ")[0]
            assert f"| `{key}` |" in section, (name, key)
    assert "| `alpha` | `1.0` | a number in [0.0, inf] | width multiplier of the confidence bound" in generated


def test_with_generated_refuses_a_page_without_markers() -> None:
    with pytest.raises(ValueError, match="must hold the markers"):
        with_generated("# no markers\n", "table")
    assert with_generated(f"a\n{BEGIN}\nold\n{END}\nb", "new") == f"a\n{BEGIN}\n\nnew\n{END}\nb"


def _nav_files(items: list) -> list[str]:
    files = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        files += _nav_files(value) if isinstance(value, list) else [value]
    return files


def test_mkdocs_navigation_covers_every_page_and_every_entry_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_files(config["nav"])
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav) == pages
    assert config["strict"] is True
