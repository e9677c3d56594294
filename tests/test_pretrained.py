"""The shipped pretrained runs: they load, score on real MNIST what they record, draw offline."""

import os

import imageio.v2 as imageio
import keras
import numpy as np
import pytest
from helpers import cli_error

from tfvae import evaluate, generate, pretrained
from tfvae.config import Config

NAMES = ["mnist-conv-z2", "mnist-mlp-z20"]


def test_names_list_the_shipped_runs_and_each_loads_as_its_keras_model():
    assert pretrained.names() == NAMES
    for name, model_class, latent_dim in zip(NAMES, ("ConvVAE", "MlpVAE"), (2, 20)):
        model = pretrained.load(name)
        assert type(model).__name__ == model_class and model.latent_dim == latent_dim
        assert isinstance(pretrained.load_config(name), Config)
        # keras.models.load_model on the shipped file is all `load` is.
        same = keras.models.load_model(
            os.path.join(pretrained.directory(name), pretrained.MODEL_FILE))
        for a, b in zip(model.get_weights(), same.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_each_model_scores_on_real_mnist_what_is_recorded_beside_it(name, mnist_dir, tmp_path):
    check = pretrained.record(name)["check"]
    result = evaluate.evaluate_run(
        pretrained.PREFIX + name, k=check["k"], subset=check["images"], seed=check["seed"],
        batch_size=check["batch_size"], chunk=check["chunk"], data_dir=mnist_dir, verbose=0,
        out=str(tmp_path))
    assert result["images"] == check["images"]
    # Float rounding only: a refactor that changes the arithmetic moves these by ~1e-5 nats.
    assert result["elbo"] == pytest.approx(check["elbo"], abs=2e-3)
    assert result["nll"] == pytest.approx(check["nll"], abs=2e-3)
    assert os.path.isfile(tmp_path / "eval.json")


def test_a_pretrained_run_is_read_only_so_out_is_needed(capsys):
    err = cli_error(evaluate.main, ["pretrained:mnist-mlp-z20", "--k", "2"], capsys)
    assert "--out" in err
    err = cli_error(generate.main, ["pretrained:mnist-conv-z2", "--transition"], capsys)
    assert "--out" in err
    err = cli_error(generate.main, ["pretrained:mnist-conv-z3", "--out", "x", "--manifold"],
                    capsys)
    assert "pretrained:mnist-conv-z2" in err and "pretrained:mnist-mlp-z20" in err


def test_generate_draws_a_pretrained_run_without_data(tmp_path, monkeypatch):
    monkeypatch.delenv("TFVAE_DATA_DIR", raising=False)
    monkeypatch.setattr("tfvae.data.load_test_set", no_test_set)
    shipped = sorted(os.listdir(pretrained.directory("mnist-conv-z2")))
    paths = generate.main(["pretrained:mnist-conv-z2", "--out", str(tmp_path), "--transition",
                           "--manifold", "--steps", "4"])
    assert sorted(os.path.basename(p) for p in paths) == ["manifold.png", "transition.gif"]
    frames = np.stack(imageio.mimread(tmp_path / "transition.gif"))
    assert frames.shape[0] >= 10 and frames.std() > 10  # ten digits, not a blank picture
    assert sorted(os.listdir(pretrained.directory("mnist-conv-z2"))) == shipped


def no_test_set(config):
    raise AssertionError("a pretrained run's transition must not read the test set")
