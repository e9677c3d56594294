"""Shared fixtures: real MNIST ($TFVAE_DATA_DIR, else tensorflow-datasets) and untrained runs."""

import os

import pytest
from helpers import make_run, write_idx

from tfvae import mnist


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """An absolute path to a directory of the four MNIST IDX files.

    $TFVAE_DATA_DIR (or its mnist/ folder) when set, as on CI; otherwise the files are written
    from tensorflow-datasets' MNIST, which it downloads once and caches, as `tfvae.train` does.
    """
    root = os.environ.get("TFVAE_DATA_DIR")
    if root:
        directory = os.path.abspath(mnist.resolve_dir(root, "mnist"))
        assert os.path.isfile(os.path.join(directory, mnist.IDX_FILES["train"][0])), (
            f"TFVAE_DATA_DIR={root} holds no MNIST IDX files: unset it to use "
            "tensorflow-datasets, or point it at the folder holding mnist/")
        return directory
    directory = tmp_path_factory.mktemp("mnist")
    for split, (image_file, label_file) in mnist.IDX_FILES.items():
        images, labels = mnist.load("mnist", split)
        write_idx(directory / image_file, images)
        write_idx(directory / label_file, labels)
    return str(directory)


@pytest.fixture
def run(tmp_path):
    """An untrained run directory whose test split is 30 random images."""
    return make_run(str(tmp_path))


@pytest.fixture
def conditional_run(tmp_path):
    return make_run(str(tmp_path), conditional=True)
