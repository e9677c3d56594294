"""Every notebook runs end to end on real MNIST with shortened parameters (so none can drift)."""

import os
import pathlib
import subprocess
import sys

import nbclient
import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))
# Overrides for each notebook's `parameters` cell: a real run, shortened to about a minute.
SHORT = {"EPOCHS": 2, "TRAIN_SIZE": 6000, "TEST_SIZE": 1000, "IWAE_K": 50, "EVAL_SUBSET": 100}


def test_the_course_notebooks_are_all_there():
    assert [p.name for p in NOTEBOOKS] == [
        "01_fully_connected_vae.ipynb", "02_convolutional_vae.ipynb",
        "03_conditional_vae.ipynb", "04_latent_space.ipynb", "05_keras_fit.ipynb",
        "06_kl_beta_fashion.ipynb"]


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
    # The parent of mnist/ also holds fashion_mnist/ when it is $TFVAE_DATA_DIR's (notebook 06
    # reads both); without it, the notebooks fall back to tensorflow-datasets, as tfvae does.
    data_dir = str(pathlib.Path(mnist_dir).parent) if os.environ.get("TFVAE_DATA_DIR") else None
    notebook = with_parameters(notebook, tmp_path / "run", data_dir)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert images, f"{path.name} showed no figure"


def readme_notebook_command():
    readme = (REPO / "README.md").read_text()
    lines = [line for line in readme.splitlines()
             if "jupyter nbconvert" in line and "notebooks/0*.ipynb" in line]
    assert len(lines) == 1, "README.md should give one command that runs the notebooks"
    return lines[0]


def test_readme_notebook_command_runs_from_the_repository_root(tmp_path, mnist_dir):
    # The README's command, as printed, on a one-cell notebook that loads data the way the
    # course's do (DATA_DIR = None: $TFVAE_DATA_DIR), from a kernel whose working directory is
    # the notebook's folder, not the repository root. It runs in a copy of the layout it
    # expects (a checkout with shared/data/mnist beside it), so it runs on any machine.
    root = tmp_path / "checkout"
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "mnist").symlink_to(mnist_dir)
    probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from tfvae import data\nprint(len(data.load_subset('mnist', 'test', None, 8)[0]))")])
    folder = root / "notebooks"
    folder.mkdir(parents=True)
    nbformat.write(probe, folder / "00_probe.ipynb")
    command = readme_notebook_command().replace("notebooks/0*.ipynb", str(folder / "0*.ipynb"))
    command = command.replace("--output-dir runs/notebooks", f"--output-dir {tmp_path / 'out'}")
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}"
               f"{os.environ['PATH']}")
    env.pop("TFVAE_DATA_DIR", None)  # the command sets it
    result = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    executed = nbformat.read(tmp_path / "out" / "00_probe.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == "8"
