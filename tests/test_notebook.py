"""notebooks/01_quickstart.ipynb runs top to bottom on a tiny run and draws its figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from experiments.runner import run_scenario
from experiments.scenario import parse_scenario

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01_quickstart.ipynb"

TINY = {
    "name": "tiny_notebook",
    "world": {"preset": "filter_bubble", "overrides": {"catalog": {"n_items": 200}}},
    "agents": [{"name": "random"}, {"name": "popularity"}],
    "horizon": {"steps": 8, "users": 6},
    "seeds": 2,
    "metrics": {"window": 4},
}


def test_notebook_is_stored_without_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert any("parameters" in cell.metadata.get("tags", []) for cell in code)


@pytest.mark.slow
def test_notebook_executes_on_a_tiny_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("nbclient", "nbformat", "ipykernel"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install 'bubblegym[dev]')")
    import nbformat
    from nbclient import NotebookClient

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    run_dir = tmp_path / "run"
    run_scenario(parse_scenario(TINY, source=str(tmp_path / "tiny.yaml")), run_dir, workers=1, progress=False)
    monkeypatch.setenv("BUBBLEGYM_RUN_DIR", str(run_dir))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 7  # six report figures and the custom one
    text = "".join(out.get("text", "") for out in outputs)
    assert "scenario 'tiny_notebook'" in text


ANALYSIS_NOTEBOOKS = {
    "02_filter_bubbles.ipynb": {
        "BUBBLEGYM_NB_USERS": "6",
        "BUBBLEGYM_NB_STEPS": "8",
        "BUBBLEGYM_NB_SEEDS": "2",
        "BUBBLEGYM_NB_TRAIN_STEPS": "128",
        "BUBBLEGYM_NB_AMPLIFICATION": "0.0,0.2",
    },
    "04_offline_vetting.ipynb": {
        "BUBBLEGYM_NB_USERS": "16",
        "BUBBLEGYM_NB_STEPS": "10",
        "BUBBLEGYM_NB_SEEDS": "2",
        "BUBBLEGYM_NB_VET_SEEDS": "2",
        "BUBBLEGYM_NB_VET_USERS": "8",
        "BUBBLEGYM_NB_VET_STEPS": "10",
    },
    "03_exploration_tradeoff.ipynb": {
        "BUBBLEGYM_NB_USERS": "6",
        "BUBBLEGYM_NB_STEPS": "8",
        "BUBBLEGYM_NB_SEEDS": "2",
        "BUBBLEGYM_NB_EPSILONS": "0.0,0.3",
    },
}


PRINTED = {
    "02_filter_bubbles.ipynb": "tasks: arms",
    "03_exploration_tradeoff.ipynb": "tasks: worlds",
    "04_offline_vetting.ipynb": "overall verdict:",
}
"""What each notebook prints once its experiment has run."""


@pytest.mark.parametrize("name", sorted(ANALYSIS_NOTEBOOKS))
def test_analysis_notebook_is_stored_without_outputs(name: str) -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK.parent / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert any("parameters" in cell.metadata.get("tags", []) for cell in code)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ANALYSIS_NOTEBOOKS))
def test_analysis_notebook_runs_its_own_experiment(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The analysis notebooks run their own small experiment through the public API and draw it."""
    for module in ("nbclient", "nbformat", "ipykernel"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install 'bubblegym[dev]')")
    import nbformat
    from nbclient import NotebookClient

    for key, value in ANALYSIS_NOTEBOOKS[name].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BUBBLEGYM_NB_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK.parent / name, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert len([out for out in outputs if "image/png" in out.get("data", {})]) >= 2
    assert PRINTED[name] in "".join(out.get("text", "") for out in outputs)
