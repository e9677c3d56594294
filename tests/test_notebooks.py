"""Every notebook runs end to end on real MNIST with shortened parameters (so none can drift)."""

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys

import nbclient
import nbformat
import pytest

from tfvae import notebook as course
from tfvae import rundir
from tfvae.config import Config

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


def course_command():
    """The command notebooks/README.md gives for running the course with its defaults."""
    readme = (REPO / "notebooks" / "README.md").read_text()
    lines = [line for line in readme.splitlines()
             if line.startswith("python -m tfvae.notebook") and "notebooks/0*.ipynb" in line]
    assert len(lines) == 1, "notebooks/README.md should give one command that runs the course"
    return lines[0]


def checkout_without_shared(root):
    """A copy of the package and the notebooks at `root`, with nothing beside it."""
    shutil.copytree(REPO / "tfvae", root / "tfvae", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "README.md", root / "notebooks")
    return root


def run_course_command(root, notebooks, data_dir):
    """The README's command as printed, on `notebooks`, started in `root` with
    TFVAE_DATA_DIR=`data_dir`; returns the executed copies' folder."""
    command = course_command().replace("notebooks/0*.ipynb", " ".join(notebooks))
    env = dict(os.environ, TFVAE_DATA_DIR=str(data_dir), PYTHONPATH=str(root),
               PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return root / "runs" / "notebooks"


def test_the_course_names_no_path_outside_the_repository():
    for path in [REPO / "notebooks" / "README.md", *NOTEBOOKS]:
        text = path.read_text()
        assert "../shared" not in text and "/work/" not in text, path.name


def test_a_notebook_runs_from_a_checkout_with_nothing_beside_it(tmp_path, mnist_dir):
    # What a learner has: a clone, no ../shared, IDX files in a folder of their own, named by
    # an absolute path. Notebook 03, shortened, run by the README's command as printed.
    root = checkout_without_shared(tmp_path / "clone")
    data_dir = tmp_path / "my data"
    data_dir.mkdir()
    (data_dir / "mnist").symlink_to(mnist_dir)
    path = REPO / "notebooks" / "03_conditional_vae.ipynb"
    notebook = with_parameters(nbformat.read(path, as_version=4), "runs/03_conditional_vae",
                               None)
    nbformat.write(notebook, root / "notebooks" / path.name)
    out = run_course_command(root, [f"notebooks/{path.name}"], data_dir)
    executed = nbformat.read(out / path.name, as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert f"data: IDX files under {data_dir}" in printed
    assert (root / "notebooks" / "runs" / "03_conditional_vae" / "config.json").is_file()


def probe_notebook(folder):
    """A one-cell notebook that reports where the course's data comes from."""
    folder.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from tfvae.notebook import data_dir, quiet_tensorflow\ntf = quiet_tensorflow()\n"
        "data_dir()")]), folder / "00_probe.ipynb")


def test_a_relative_data_dir_is_read_from_where_the_command_started(tmp_path, mnist_dir):
    root = checkout_without_shared(tmp_path / "clone")
    probe_notebook(root / "notebooks" / "probe")
    (root / "data").mkdir()
    (root / "data" / "mnist").symlink_to(mnist_dir)
    out = run_course_command(root, ["notebooks/probe/00_probe.ipynb"], "data")
    executed = nbformat.read(out / "00_probe.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == f"data: IDX files under {root / 'data'}"


def test_a_missing_data_dir_is_one_line_naming_the_fix(tmp_path):
    root = checkout_without_shared(tmp_path / "clone")
    probe_notebook(root / "notebooks" / "probe")
    env = dict(os.environ, TFVAE_DATA_DIR="nowhere", PYTHONPATH=str(root))
    result = subprocess.run([sys.executable, "-m", "tfvae.notebook",
                             "notebooks/probe/00_probe.ipynb"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: TFVAE_DATA_DIR=nowhere does not exist: point it at the folder holding mnist/, "
        "or leave TFVAE_DATA_DIR unset to use tensorflow-datasets"]


def test_inside_a_notebook_tfvae_errors_show_as_one_line(tmp_path):
    # In Jupyter, without the runner: a relative $TFVAE_DATA_DIR that the kernel's folder lacks.
    probe_notebook(tmp_path / "notebooks")
    notebook = nbformat.read(tmp_path / "notebooks" / "00_probe.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    env = dict(os.environ, TFVAE_DATA_DIR="nowhere")
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        client.execute(env=env)
    outputs = notebook.cells[0].outputs
    assert [o.get("name") for o in outputs] == ["stderr"], outputs
    assert outputs[0]["text"].startswith("error: data directory nowhere (relative to ")
    assert outputs[0]["text"].count("\n") == 1
    assert "leave TFVAE_DATA_DIR unset to use tensorflow-datasets" in outputs[0]["text"]


def test_a_finished_run_is_reused_when_its_stored_config_is_the_notebooks(tmp_path, mnist_dir,
                                                                          capsys):
    config = Config(model="mlp", latent_dim=2, hidden_units=(16,), epochs=1, train_size=256,
                    test_size=100, data_dir=mnist_dir)
    run_dir = str(tmp_path / "run")
    first = course.trained_run(config, run_dir, "02")
    stored = rundir.load_config(run_dir)
    assert stored != config, "training fills in the data's shape: the plain == never matches"
    assert course.same_config(stored, config)
    capsys.readouterr()
    # Notebook 04 builds the same config; where the data comes from does not change the run.
    again = course.trained_run(dataclasses.replace(config, data_dir=None), run_dir, "04")
    assert capsys.readouterr().out.splitlines() == [
        f"reusing {run_dir} (trained by notebook 02): same config"]
    assert again.record == first.record
    assert not course.same_config(stored, dataclasses.replace(config, latent_dim=3))
