"""Shared fixtures: where the real MNIST files are, and small configs for real training."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def data_root():
    """$TFVAE_DATA_DIR, else the shared/ folder beside the checkout (as on CI)."""
    return pathlib.Path(os.environ.get("TFVAE_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def mnist_dir():
    path = data_root() / "mnist"
    assert (path / "train-images-idx3-ubyte.gz").is_file(), (
        f"real MNIST is needed at {path}: set TFVAE_DATA_DIR to the folder holding mnist/")
    return str(path)
