"""docs/quickstart.ipynb runs end to end and prints the estimate."""

import os

import pytest

from conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_quickstart_notebook_runs(tmp_path):
  nb = nbformat.read(os.path.join(ROOT, "docs", "quickstart.ipynb"), as_version=4)
  nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}}).execute()
  text = "".join(out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
                 for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
  assert "estimated wrong labels: " in text and "(we flipped 100)" in text
  assert "report: " in text and "report.html" in text
  assert "label_score" in text  # the suspects' table
