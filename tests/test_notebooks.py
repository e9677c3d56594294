"""Every notebook runs end to end on real MNIST with shortened parameters (so none can drift)."""

import pathlib

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb"))
# Overrides for each notebook's `parameters` cell: a real run, shortened to about a minute.
SHORT = {"EPOCHS": 2, "TRAIN_SIZE": 6000, "TEST_SIZE": 1000, "IWAE_K": 50, "EVAL_SUBSET": 100}


def test_there_are_five_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "01_fully_connected_vae.ipynb", "02_convolutional_vae.ipynb",
        "03_conditional_vae.ipynb", "04_latent_space.ipynb", "05_keras_fit.ipynb"]


def with_parameters(notebook, out_dir, data_dir):
    """Inserts, after the cell tagged 'parameters', a cell that shortens the run (papermill's
    convention, without the dependency)."""
    index = next(i for i, cell in enumerate(notebook.cells)
                 if "parameters" in cell.get("metadata", {}).get("tags", []))
    names = notebook.cells[index].source
    overrides = {k: v for k, v in SHORT.items() if f"{k} =" in names}
    overrides.update(OUT_DIR=str(out_dir), DATA_DIR=data_dir)
    source = "\n".join(f"{k} = {v!r}" for k, v in overrides.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, mnist_dir):
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{path.name} is committed with outputs: clear them"
    notebook = with_parameters(notebook, tmp_path / "run", str(pathlib.Path(mnist_dir).parent))
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert images, f"{path.name} showed no figure"
