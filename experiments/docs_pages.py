"""Generated documentation: the scenario YAML reference and the agents' parameter tables.

``python -m experiments.docs_pages`` rewrites ``docs/scenarios.md`` from
``experiments/scenario.schema.json`` and the generated section of ``docs/agents.md`` from
each agent's frozen ``Params`` metadata (:mod:`agents.params`); ``--check`` only reports
(exit code 1) the pages that differ from what would be generated, as the test does. The
pages are plain Markdown that reads on a code host and builds with MkDocs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = Path(__file__).resolve().parent / "scenario.schema.json"
SCENARIOS_PAGE = ROOT / "docs" / "scenarios.md"
AGENTS_PAGE = ROOT / "docs" / "agents.md"
EXAMPLE_SCENARIO = ROOT / "scenarios" / "default.yaml"

BEGIN = "<!-- BEGIN GENERATED: python -m experiments.docs_pages (do not edit by hand) -->"
END = "<!-- END GENERATED -->"
"""Markers around the generated part of a page written partly by hand."""


# ---------------------------------------------------------------------- scenarios.md


def _type_text(node: dict[str, Any]) -> str:
    """The JSON type of a schema node in words (``integer``, ``list of integer``, ``one of ...``)."""
    if "oneOf" in node:
        return " or ".join(_type_text(option) for option in node["oneOf"])
    if "enum" in node:
        return "one of " + ", ".join(f"`{value}`" for value in node["enum"])
    kind = node.get("type", "any")
    if isinstance(kind, list):
        return " or ".join("null" if k == "null" else k for k in kind)
    if kind == "array" and isinstance(node.get("items"), dict) and "properties" not in node["items"]:
        return f"list of {_type_text(node['items'])}"
    if kind == "array":
        return "list of mappings" if "properties" in node.get("items", {}) else "list"
    return {"object": "mapping"}.get(kind, kind)


def _bounds_text(node: dict[str, Any]) -> str:
    """The bounds a schema node states (range, lengths, items, uniqueness, allowed names)."""
    parts = []
    if "x-allowed" in node:
        parts.append(node["x-allowed"])
    if "minimum" in node or "maximum" in node:
        lo, hi = node.get("minimum", "-inf"), node.get("maximum", "inf")
        parts.append(f"in [{lo}, {hi}]")
    if "minItems" in node or "maxItems" in node:
        lo, hi = node.get("minItems", 0), node.get("maxItems")
        parts.append(f"{lo} to {hi} items" if hi is not None else f"at least {lo} item{'s' * (lo != 1)}")
    if node.get("uniqueItems"):
        parts.append("distinct")
    if "oneOf" in node:
        parts += [f"({i + 1}) {_bounds_text(option)}" for i, option in enumerate(node["oneOf"]) if _bounds_text(option)]
    items = node.get("items")
    if isinstance(items, dict) and "properties" not in items and _bounds_text(items):
        parts.append("each " + _bounds_text(items))
    if "propertyNames" in node:
        parts.append(f"keys match `{node['propertyNames']['pattern']}`")
    if node.get("additionalProperties") is False and "properties" in node:
        parts.append("no other keys")
    return "; ".join(parts)


def _rows(node: dict[str, Any], prefix: str, required: Sequence[str]) -> list[tuple[str, str, str, str, str]]:
    """``(key, type, required, allowed, meaning)`` of every property under ``node``, depth first."""
    rows = []
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        rows.append(
            (
                f"`{path}`",
                _type_text(child),
                "yes" if key in required else "",
                _bounds_text(child),
                child.get("description", ""),
            )
        )
        if "properties" in child:
            rows += _rows(child, f"{path}.", child.get("required", []))
        items = child.get("items")
        if isinstance(items, dict) and "properties" in items:
            rows += _rows(items, f"{path}[].", items.get("required", []))
        extra = child.get("additionalProperties")
        if isinstance(extra, dict):
            rows.append((f"`{path}.<key>`", _type_text(extra), "", _bounds_text(extra), "one value per key"))
    return rows


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def scenarios_page(schema: dict[str, Any], example: str) -> str:
    """The Markdown of ``docs/scenarios.md``: every key of a scenario file from the JSON Schema,
    then the shipped default scenario as an example."""
    header = ["key", "type", "required", "allowed", "meaning"]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in _rows(schema, "", schema["required"])]
    return "\n".join(
        [
            "# Scenario files (YAML reference)",
            "",
            "<!-- Generated from experiments/scenario.schema.json by `python -m experiments.docs_pages`;"
            " do not edit by hand. -->",
            "",
            _cell(schema["description"])
            .replace("x-allowed: the text errors give for what a string field allows.", "")
            .strip(),
            "",
            "Run one with `bubblegym run FILE.yaml` (or the name of a shipped scenario: `bubblegym list scenarios`).",
            "A key path `a.b` is key `b` inside mapping `a`; `a[].b` is key `b` of each item of list `a`.",
            "The agents' parameters and their ranges are in [agents.md](agents.md)"
            " (or `bubblegym list agents NAME`); the world's fields (`world.overrides`, `world.*` sweep paths)"
            " are in [model.md](model.md#every-knob).",
            "",
            "## Keys",
            "",
            *table,
            "",
            "## Example",
            "",
            "The shipped `scenarios/default.yaml`:",
            "",
            "```yaml",
            example.rstrip(),
            "```",
            "",
            "Errors name the file, the key path, what is allowed and what was found, for example",
            "`scenarios/x.yaml: horizon.steps: must be an integer >= 1; found 0`; a YAML syntax error",
            "names the file, line and column.",
            "",
        ]
    )


# ---------------------------------------------------------------------- agents.md (generated part)


def agent_parameters_markdown() -> str:
    """Per agent a table of its parameters: default, allowed values and meaning (from its Params)."""
    from agents.params import rule_of
    from agents.registry import agent_names, params_class
    from experiments.listing import agent_summary

    out = []
    for name in agent_names():
        out += [f"### `{name}`", "", _cell(agent_summary(name)), ""]
        params = params_class(name)
        fields = params.fields() if params is not None else {}
        if not fields:
            out += ["No parameters.", ""]
            continue
        out += ["| parameter | default | allowed | meaning |", "|---|---|---|---|"]
        for key, field in fields.items():
            rule = rule_of(field)
            default = f"`{field.default!r}`"
            out.append(f"| `{key}` | {_cell(default)} | {_cell(rule.allowed())} | {_cell(rule.meaning)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def with_generated(page: str, generated: str) -> str:
    """``page`` with the text between :data:`BEGIN` and :data:`END` replaced by ``generated``.

    Raises:
        ValueError: the page lacks either marker.
    """
    if BEGIN not in page or END not in page:
        raise ValueError(f"the page must hold the markers {BEGIN!r} and {END!r}")
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{generated}\n{END}{tail}"


# ---------------------------------------------------------------------- command


def expected_pages() -> dict[Path, str]:
    """Each generated page and the text it should hold now."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return {
        SCENARIOS_PAGE: scenarios_page(schema, EXAMPLE_SCENARIO.read_text(encoding="utf-8")),
        AGENTS_PAGE: with_generated(AGENTS_PAGE.read_text(encoding="utf-8"), agent_parameters_markdown()),
    }


def stale_pages() -> list[Path]:
    """The generated pages whose committed text differs from what would be generated."""
    return [
        path for path, text in expected_pages().items() if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the generated pages (``--check``: only list the stale ones; exit 1 if any)."""
    parser = argparse.ArgumentParser(prog="python -m experiments.docs_pages", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report stale pages, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python -m experiments.docs_pages", file=sys.stderr)
        return 1 if stale else 0
    for path, text in expected_pages().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
