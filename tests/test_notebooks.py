"""Each notebook executes end to end with small settings (KERAS_TINYLOC_NB_SMALL=1) and shows what it promises;
the committed notebooks are their sources, executed (outputs included)."""
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("0*.ipynb"))


def test_all_six_notebooks_exist():
    assert NOTEBOOKS == ["01_data.ipynb", "02_train.ipynb", "03_distill.ipynb", "04_quantize_convert.ipynb",
                         "05_results.ipynb", "06_your_own_house.ipynb"]


def test_committed_notebooks_are_their_sources_executed():
    """``make notebooks`` was run after the last edit of build_notebooks.py: same cells, and every code cell ran
    (the outputs show on the repository page)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_notebooks", NB_DIR / "build_notebooks.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert sorted(f"{n}.ipynb" for n in build.NB) == NOTEBOOKS
    for name, cells in build.NB.items():
        nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
        assert [c.source for c in nb.cells] == [c.source for c in cells], f"{name}: run 'make notebooks'"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{name}: committed without outputs ('make notebooks')"
        assert any(c.get("outputs") for c in code)


def _outputs(nb, kind):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "image" and "image/png" in out.get("data", {}):
                yield out
            if kind == "text":
                yield out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_end_to_end(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_NB_SMALL", "1")
    monkeypatch.setenv("KERAS_TINYLOC_NB_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("KERAS_TINYLOC_SWEEP_DIR", raising=False)
    nb = nbformat.read(NB_DIR / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}}).execute()
    text = "\n".join(_outputs(nb, "text"))
    assert "small settings" in text
    if name in ("01_data.ipynb", "02_train.ipynb", "05_results.ipynb", "06_your_own_house.ipynb"):
        assert list(_outputs(nb, "image")), f"{name} drew no figure"
    if name == "04_quantize_convert.ipynb":
        assert "float ops: none" in text
        assert "minimal arena" in text
        assert "QAT float" in text and any((tmp_path / "runs").rglob("convert_mamba_h8l1_qat/model.keras"))
    if name == "06_your_own_house.ipynb":
        assert "split                       no split column: the last sessions (day3) -> test" in text
        assert "float ops: none" in text and '"living room"' in text and '"beacon-sofa"' in text
        readme = next((tmp_path / "runs").rglob("my_house/README.md")).read_text()
        assert readme.startswith("# my_house: `mamba_h8l1` on a microcontroller") and "| 2 | living room |" in readme
    if name in ("02_train.ipynb", "03_distill.ipynb", "04_quantize_convert.ipynb", "06_your_own_house.ipynb"):
        assert any((tmp_path / "runs").rglob("metrics.json"))
