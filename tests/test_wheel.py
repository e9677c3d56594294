"""The release: sdist and wheel built from the checkout, the wheel installed into a fresh virtual
environment and run from a directory outside the repository, as a user gets it."""

import email
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import imageio.v2 as imageio
import pytest

import tfvae

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_WHEEL_BYTES = 5 * 2**20
MAX_PRETRAINED_BYTES = 2 * 2**20
# Not copied for the build: environments, caches and outputs a checkout may hold.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "runs",
                                    "__pycache__", ".pytest_cache", ".ruff_cache", "results")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(wheel path, sdist path, the new environment's bin directory, a scratch directory)."""
    root = tmp_path_factory.mktemp("release")
    source, dist = root / "source", root / "dist"
    # A copy, so the build's egg-info and build/ land outside the checkout.
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], cwd=root)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], cwd=root)
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=root)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = str(bin_dir / "python")
    # A venv made from a venv sees the base interpreter's packages, not the test's: point it at
    # the test's (tensorflow, ...) without running their .pth files, so an editable tfvae there
    # cannot shadow the wheel.
    packages = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=root).stdout.strip()
    with open(os.path.join(packages, "test-interpreter.pth"), "w", encoding="utf-8") as f:
        f.write("\n".join(sorted({*site.getsitepackages(), sysconfig.get_paths()["purelib"]}))
                + "\n")
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        cwd=root)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return wheel, sdist, bin_dir, elsewhere


# The installed package's Keras API: where it is, its version, a pretrained model, a fit.
KERAS_API = """
import importlib.metadata, keras, numpy as np, tfvae
from tfvae import pretrained
print(tfvae.__file__)
print(tfvae.__version__, importlib.metadata.version("tfvae"))
model = pretrained.load("mnist-conv-z2")
print(type(model).__name__, model.latent_dim)
model.compile(keras.optimizers.Adam(1e-3))
history = model.fit(np.random.default_rng(0).random((64, 28, 28, 1)), epochs=1, verbose=0)
print("fit", bool(np.isfinite(history.history["loss"][-1])))
"""


def run(argv, cwd, env=None):
    """Runs a command to completion; its output in the failure message."""
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def user_env(bin_dir, **extra):
    """The environment of a user of the installed package: no PYTHONPATH, its bin on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TFVAE_DATA_DIR")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def package_files():
    """The files of the checkout's tfvae package that the wheel must carry."""
    found = []
    for directory, subdirs, files in os.walk(os.path.join(REPO, "tfvae")):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        found += [os.path.relpath(os.path.join(directory, f), REPO).replace(os.sep, "/")
                  for f in files if not f.endswith(".pyc")]
    return sorted(found)


def test_the_wheel_carries_the_package_its_data_and_licence_and_nothing_else(release):
    wheel, _, _, _ = release
    assert os.path.getsize(wheel) < MAX_WHEEL_BYTES
    with zipfile.ZipFile(wheel) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        licence = next(n for n in names if n.startswith(dist_info) and n.endswith("/LICENSE"))
        licence_text = archive.read(licence).decode()
    assert sorted(n for n in names if n.startswith("tfvae/")) == package_files()
    assert {n.split("/")[0] for n in names} == {"tfvae", dist_info}
    assert not [n for n in names if n.endswith((".gif", ".ipynb", ".pyc"))]
    pretrained = [i for i in infos
                  if i.filename.startswith("tfvae/pretrained/") and not i.filename.endswith(".py")]
    assert {i.filename.split("/")[2] for i in pretrained} == {"mnist-conv-z2", "mnist-mlp-z20"}
    assert sum(i.file_size for i in pretrained) < MAX_PRETRAINED_BYTES  # as installed
    assert metadata["Version"] == tfvae.__version__
    assert metadata["License"] == "Apache-2.0" and metadata["Requires-Python"] == ">=3.10"
    assert "Intended Audience :: Education" in metadata.get_all("Classifier")
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "tfvae = tfvae.cli:main" in entry_points
    assert "Apache License" in licence_text and "END OF TERMS AND CONDITIONS" in licence_text


def test_the_sdist_carries_the_licence_and_changelog_but_no_tests_or_notebooks(release):
    _, sdist, _, _ = release
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "setup.cfg", "pyproject.toml"} <= names
    assert "tfvae/pretrained/mnist-conv-z2/model.keras" in names
    assert not [n for n in names if n.split("/")[0] in ("tests", "notebooks", "benchmarks",
                                                          "gifs", "tools")]


def test_the_installed_wheel_trains_and_draws_outside_the_checkout(release, mnist_dir):
    _, _, bin_dir, elsewhere = release
    python = str(bin_dir / "python")
    env = user_env(bin_dir)
    where = run([python, "-c", KERAS_API], cwd=elsewhere, env=env).stdout.split("\n")
    assert where[0].startswith(str(bin_dir.parent)) and not where[0].startswith(REPO)
    assert where[1] == f"{tfvae.__version__} {tfvae.__version__}"
    assert where[2] == "ConvVAE 2"
    assert where[3] == "fit True"
    run([python, "-m", "tfvae.train", "--epochs", "1", "--train-size", "512", "--test-size",
         "128", "--data-dir", mnist_dir, "--out", "run"], cwd=elsewhere, env=env)
    assert os.path.isfile(elsewhere / "run" / "config.json")
    assert os.listdir(elsewhere / "run" / "checkpoints")
    # No data at all: the transition walks through digits shipped with the pretrained run.
    run([python, "-m", "tfvae.generate", "pretrained:mnist-conv-z2", "--out", "pictures",
         "--transition"], cwd=elsewhere, env=env)
    assert len(imageio.mimread(elsewhere / "pictures" / "transition.gif")) >= 10


def test_the_tfvae_command_of_the_installed_wheel(release, mnist_dir):
    _, _, bin_dir, elsewhere = release
    env = user_env(bin_dir)
    command = str(bin_dir / "tfvae")
    version = run([command, "--version"], cwd=elsewhere, env=env).stdout
    assert tfvae.__version__ in version
    run([command, "train", "--epochs", "1", "--train-size", "512", "--test-size", "128",
         "--data-dir", mnist_dir, "--out", "command_run"], cwd=elsewhere, env=env)
    assert os.listdir(elsewhere / "command_run" / "checkpoints")
    run([command, "generate", "pretrained:mnist-conv-z2", "--out", "command_pictures",
         "--transition"], cwd=elsewhere, env=env)
    assert os.path.isfile(elsewhere / "command_pictures" / "transition.gif")
