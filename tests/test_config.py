"""The config and the command line reject bad input with one clear line."""

import dataclasses
import json

import pytest
from helpers import cli_error

from tfvae import rundir, train
from tfvae.config import (
    ArgumentParser,
    Config,
    add_config_flags,
    config_from_args,
    config_from_dict,
    default_run_dir,
    names_folder,
)
from tfvae.errors import TfvaeError


def test_defaults_are_valid_and_frozen():
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.latent_dim = 3


@pytest.mark.parametrize("changes, message", [
    ({"latent_dim": 0}, "--latent-dim must be at least 1"),
    ({"model": "resnet"}, "--model must be one of conv, mlp"),
    ({"learning_rate": -1.0}, "--learning-rate must be positive"),
    ({"latent_dim": "2"}, "'latent_dim' must be int"),
    ({"k": 5}, "--k applies to --objective iwae"),
    ({"binarize": "none"}, "add --likelihood logistic or gaussian"),
    ({"likelihood": "logistic"}, "logistic scores 8-bit intensities: add --binarize none"),
    ({"image_size": (32,)}, "--image-size takes a height and a width"),
    ({"image_size": (32, 0)}, "--image-size takes a height and a width, positive"),
    ({"channels": 2}, "--channels must be 1 or 3, not 2"),
    ({"test_fraction": 1.0}, "--test-fraction must be between 0 and 1"),
    ({"conv_filters": ()}, "--conv-filters must be positive sizes"),
    ({"dataset": ""}, "--dataset must name a dataset or a folder"),
    ({"hidden_units": (0,)}, "--hidden-units"),
    ({"beta": -0.5}, "--beta must be 0 or more"),
    ({"beta": float("nan")}, "--beta must be 0 or more"),
    ({"objective": "autoencoder", "beta": 4.0}, "autoencoder has no KL term"),
    ({"objective": "autoencoder", "k": 5}, "--k applies to --objective iwae"),
])
def test_bad_values_are_rejected(changes, message):
    with pytest.raises(TfvaeError, match=message):
        dataclasses.replace(Config(), **changes)


def test_image_shape_is_known_for_mnist_and_read_from_the_data_otherwise():
    assert Config().image_shape == (28, 28, 1)
    assert Config(dataset="fashion_mnist", image_size=(32, 30)).image_shape == (32, 30, 1)
    assert Config(dataset="cifar10", image_size=(32, 32), channels=3).image_shape == (32, 32, 3)
    with pytest.raises(TfvaeError, match="read from the data when training starts"):
        Config(dataset="cifar10").image_shape


def test_default_run_dir_names_folders_and_tfds_datasets(tmp_path):
    folder = tmp_path / "my pictures"
    folder.mkdir()
    assert default_run_dir(Config(dataset=str(folder) + "/")) == "runs/my pictures-conv-z20"
    assert default_run_dir(Config(dataset="emnist/letters")) == "runs/emnist-letters-conv-z20"
    assert names_folder("./photos") and not names_folder("cifar10")


def test_unknown_keys_are_rejected():
    with pytest.raises(TfvaeError, match="unknown config keys: colour"):
        config_from_dict({"colour": "red"})


def test_config_json_round_trip(tmp_path):
    config = Config(model="mlp", hidden_units=(30, 20), latent_dim=7, conditional=True)
    rundir.prepare(str(tmp_path), config)
    assert rundir.load_config(str(tmp_path)) == config
    assert json.loads((tmp_path / "config.json").read_text())["hidden_units"] == [30, 20]


@pytest.mark.parametrize("argv, message", [
    (["--latent-dim", "0"], "--latent-dim must be at least 1"),
    (["--latent-dim", "two"], "argument --latent-dim: invalid int value: 'two'"),
    (["--image-size", "32"], "argument --image-size: expected 2 arguments"),
    (["--channels", "2"], "--channels must be 1 or 3, not 2"),
    (["--epochs", "-3"], "--epochs must be at least 1"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_command_line_errors_are_one_line_with_status_2(argv, message, capsys):
    err = cli_error(train.main, argv, capsys)
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("value", [[], None, "conv"])
def test_a_config_that_is_not_an_object_is_rejected(value):
    with pytest.raises(TfvaeError, match="must be a JSON object"):
        config_from_dict(value)


def test_beta_and_autoencoder_flags_reach_the_config():
    parser = ArgumentParser()
    add_config_flags(parser)
    config = config_from_args(parser.parse_args(["--beta", "4"]), Config(beta=2.0))
    assert config.beta == 4.0
    config = config_from_args(parser.parse_args(["--objective", "autoencoder"]))
    assert config.objective == "autoencoder"
    assert Config().beta == 1.0  # the plain ELBO unless asked


def test_xla_is_on_for_the_mlp_and_off_for_conv_unless_asked():
    assert Config(model="mlp").xla and not Config(model="conv").xla
    assert Config(model="conv", jit_compile=True).xla
    assert not Config(model="mlp", jit_compile=False).xla
