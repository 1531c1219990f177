"""Each notebook executes end to end with small settings (KERAS_TINYLOC_NB_SMALL=1) and shows what it promises."""
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("0*.ipynb"))


def test_all_five_notebooks_exist():
    assert NOTEBOOKS == ["01_data.ipynb", "02_train.ipynb", "03_distill.ipynb", "04_quantize_convert.ipynb",
                         "05_results.ipynb"]


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
    if name in ("01_data.ipynb", "02_train.ipynb", "05_results.ipynb"):
        assert list(_outputs(nb, "image")), f"{name} drew no figure"
    if name == "04_quantize_convert.ipynb":
        assert "float ops: none" in text
        assert "minimal arena" in text
        assert "QAT float" in text and any((tmp_path / "runs").rglob("convert_mamba_h8l1_qat/model.keras"))
    if name in ("02_train.ipynb", "03_distill.ipynb", "04_quantize_convert.ipynb"):
        assert any((tmp_path / "runs").rglob("metrics.json"))
