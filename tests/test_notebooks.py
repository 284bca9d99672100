"""Every notebook in colab/ runs top to bottom in a real Jupyter kernel."""
import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "colab", "*.ipynb")))


def test_there_are_notebooks():
  assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, data_dir, monkeypatch):
  # Tiny settings; the kernel inherits this environment.
  monkeypatch.setenv("CVX_NOTEBOOK_STEPS", "30")
  monkeypatch.setenv("CVX_DATA_DIR", data_dir)
  monkeypatch.setenv("CVX_SOURCE", REPO)
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  notebook = nbformat.read(path, as_version=4)
  NotebookClient(notebook, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": os.path.dirname(path)}}).execute()
  errors = [o for cell in notebook.cells for o in cell.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors
  images = [o for cell in notebook.cells for o in cell.get("outputs", [])
            if "image/png" in o.get("data", {})]
  assert images, "the notebook shows no figure"
