"""The ``bubblegym`` command line as a user meets it: help with examples, a fast and readable
``list``, one agent's parameters, and YAML syntax errors that name the file and line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import experiments.scenario
from agents.params import rule_of
from agents.registry import agent_names, params_class
from experiments.cli import build_parser, main
from experiments.listing import WIDTH, key_parameters

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("simulate", "run", "report", "compare", "list")


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


# ---------------------------------------------------------------------- help


def test_main_help_says_what_the_tool_is_and_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help([], capsys)
    description = text.split("\n\n")[1]
    assert description.startswith("bubblegym: a laboratory for recommendation policies")
    assert "``" not in text  # no reStructuredText leaking into the terminal
    examples = text[text.index("examples:") :]
    for command in SUBCOMMANDS:
        assert f"\n  bubblegym {command} " in examples, command


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_help_has_examples_of_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help([command], capsys)
    examples = text[text.index("examples:") :].splitlines()[1:]
    assert examples and all(line.startswith(f"  bubblegym {command}") for line in examples)
    for line in examples:  # every example parses as a command line
        argv = re.split(r"\s{2,}", line.strip())[0].split()  # the command, without its comment
        assert argv[:2] == ["bubblegym", command]
        build_parser().parse_args(argv[1:])


# ---------------------------------------------------------------------- list


def test_list_imports_no_heavy_library() -> None:
    """What made ``bubblegym list`` slow: pandas (through the runner and metrics), jsonschema
    (its optional format checker compiles a grammar on import, ~1.5 s CPU), torch and SB3."""
    code = (
        "import io, contextlib, sys\n"
        "from experiments.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['list']) == 0\n"
        "heavy = ['pandas', 'jsonschema', 'torch', 'stable_baselines3', 'matplotlib', 'pyarrow']\n"
        "heavy.append('experiments.runner')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_list_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert "…" not in text and "..." not in text
    assert max(len(line) for line in lines) <= WIDTH
    # every agent, each with a line of key parameters
    for name in agent_names():
        at = lines.index(f"  {name}")
        key_line = next(line for line in lines[at + 1 :] if line.startswith("      key: "))
        for key, default in key_parameters(name).items():
            assert f"{key}={default!r}" in key_line
    # no VW flag dump: the settings of other exploration algorithms stay out of the overview
    for setting in ("rnd_invlambda", "synthcover_psi", "cover_size", "extra_args", "hold_examples"):
        assert setting not in text
    at = lines.index("  vw_squarecb")
    assert "gamma_scale=10.0" in lines[at + 2] and "epsilon=" not in lines[at + 2]
    # the scenario descriptions are whole (wrapped, not cut)
    described = " ".join(line.strip() for line in lines)
    shipped = experiments.scenario.load_scenario("exploration_sweep", check_agents=False)
    assert " ".join(shipped.description.split()) in described
    assert "INVALID" not in text


def test_list_sections_one_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "presets"]) == 0
    presets = capsys.readouterr().out
    assert presets.startswith("World presets") and "Agents" not in presets and "Scenarios" not in presets
    assert main(["list", "scenarios"]) == 0
    assert capsys.readouterr().out.startswith("Scenarios")


@pytest.mark.parametrize("name", ["vw_squarecb", "linucb", "ppo", "popularity"])
def test_list_agents_name_shows_every_parameter_with_range_and_meaning(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "agents", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{name}: ")
    fields = params_class(name).fields()
    for key, field in fields.items():
        at = lines.index(f"  {key} = {field.default!r}")
        rule = rule_of(field)
        described = []
        for line in lines[at + 1 :]:
            if not line.startswith("      "):
                break
            described.append(line.strip())
        assert " ".join(described) == f"{rule.meaning}; {rule.allowed()}"
    shown = [line for line in lines if line.startswith("  ") and not line.startswith("   ") and " = " in line]
    assert len(shown) == len(fields) + 1  # the header "parameter = default", then one line each


def test_list_agents_of_an_agent_without_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "agents", "random"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "  no parameters"


def test_list_refuses_an_unknown_agent_and_a_misplaced_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "agents", "linucbb"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bubblegym list: unknown agent 'linucbb'; allowed: [") and "'linucb'" in err
    assert main(["list", "presets", "linucb"]) == 2
    assert "only taken after 'agents'" in capsys.readouterr().err


# ---------------------------------------------------------------------- YAML syntax errors


BROKEN = "name: broken\nagents:\n  - name: random\n    params: {a: 1\n"
"""A flow mapping never closed: the YAML parser stops at line 5 (the end of the file)."""


def test_run_names_the_file_and_line_of_a_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bubblegym run: {path}: ")
    assert "not valid YAML at line 5, column 1" in err
    assert not (tmp_path / "out").exists()  # nothing left behind


def test_list_names_the_file_and_line_of_a_broken_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "broken.yaml").write_text(BROKEN)
    (folder / "fine.yaml").write_text("name: fine\ndescription: A fine scenario.\n")
    monkeypatch.setattr(experiments.scenario, "SCENARIO_DIRS", (folder,))
    assert main(["list", "scenarios"]) == 0
    described = " ".join(line.strip() for line in capsys.readouterr().out.splitlines())
    assert f"broken INVALID: {folder / 'broken.yaml'}: " in described
    assert "not valid YAML at line 5, column 1" in described
    assert "fine A fine scenario." in described
