"""The config and the command line reject bad input with one clear line."""

import dataclasses
import json
import os
import shutil

import pytest
from helpers import cli_error

from tfvae import rundir, train
from tfvae.cli import ArgumentParser, add_config_flags, config_from_args
from tfvae.config import (
    Config,
    RemovedModeError,
    config_from_dict,
    default_run_dir,
    names_folder,
)
from tfvae.errors import TfvaeError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


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
    ({"binarize": "none", "likelihood": "bernoulli"}, "add --likelihood logistic or gaussian"),
    ({"binarize": "none", "likelihood": "autoregressive"},
     "which a Bernoulli likelihood cannot score"),
    ({"likelihood": "logistic", "binarize": "dynamic"},
     "logistic scores 8-bit intensities: add --binarize none"),
    ({"likelihood": "logistic", "binarize": "static"}, "add --binarize none"),
    ({"likelihood": "bernulli"}, "--likelihood must be one of auto, bernoulli"),
    ({"kl": "exact"}, "--kl must be one of auto, analytic, mc"),
    ({"prior_components": 3, "kl": "analytic"}, "a VampPrior's KL has no closed form"),
    ({"posterior_flow_steps": 2, "kl": "analytic"}, "a flow posterior's KL has no closed form"),
    ({"top_latent_dim": 2, "kl": "analytic"}, "a two-layer model's KL has no closed form"),
    ({"autoregressive_local_units": 4, "autoregressive_local_knots": 8},
     "applies to the autoregressive likelihood: add --likelihood autoregressive"),
    ({"autoregressive_local_units": 4, "autoregressive_local_knots": 8,
      "likelihood": "bernoulli"}, "add --likelihood autoregressive"),
    ({"likelihood": "autoregressive", "autoregressive_local_knots": 8},
     "add --autoregressive-local-units C"),
    ({"likelihood": "autoregressive", "autoregressive_local_units": 4},
     "needs --autoregressive-local-knots 2 or more, not 0 .*tfvae 0.1.0 is the last"),
    ({"likelihood": "autoregressive", "autoregressive_local_units": 4,
      "autoregressive_local_knots": 1}, "needs --autoregressive-local-knots 2 or more, not 1"),
    ({"likelihood": "autoregressive", "autoregressive_local_units": -1},
     "--autoregressive-local-units must be 0 or more"),
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
    rundir.prepare(str(tmp_path), config.resolved())
    assert rundir.load_config(str(tmp_path)) == config.resolved()
    assert json.loads((tmp_path / "config.json").read_text())["hidden_units"] == [30, 20]
    # A run's config is what training used: a config.json with "auto" in it loads resolved.
    rundir.prepare(str(tmp_path / "auto"), config)
    assert rundir.load_config(str(tmp_path / "auto")) == config.resolved()


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


@pytest.mark.parametrize("given, resolved", [
    ({}, ("dynamic", "bernoulli", "analytic")),  # the tutorial's MNIST
    ({"dataset": "fashion_mnist"}, ("dynamic", "bernoulli", "analytic")),
    ({"dataset": "cifar10"}, ("none", "logistic", "analytic")),
    ({"dataset": "./photos"}, ("none", "logistic", "analytic")),
    ({"likelihood": "bernoulli", "dataset": "cifar10"}, ("dynamic", "bernoulli", "analytic")),
    ({"likelihood": "autoregressive", "dataset": "cifar10"},
     ("dynamic", "autoregressive", "analytic")),
    ({"likelihood": "gaussian"}, ("none", "gaussian", "analytic")),
    ({"likelihood": "logistic"}, ("none", "logistic", "analytic")),
    ({"binarize": "static", "dataset": "cifar10"}, ("static", "bernoulli", "analytic")),
    ({"binarize": "none"}, ("none", "logistic", "analytic")),
    ({"binarize": "dynamic", "likelihood": "gaussian"}, ("dynamic", "gaussian", "analytic")),
    ({"prior_components": 3}, ("dynamic", "bernoulli", "mc")),
    ({"posterior_flow_steps": 2}, ("dynamic", "bernoulli", "mc")),
    ({"top_latent_dim": 2}, ("dynamic", "bernoulli", "mc")),
    ({"kl": "mc"}, ("dynamic", "bernoulli", "mc")),
    ({"prior_components": 3, "kl": "mc"}, ("dynamic", "bernoulli", "mc")),
])
def test_auto_resolves_to_what_fits_the_data_and_the_parts(given, resolved):
    config = Config(**given)
    assert (config.binarize, config.likelihood, config.kl) == tuple(
        given.get(name, "auto") for name in ("binarize", "likelihood", "kl"))
    result = config.resolved()
    assert (result.binarize, result.likelihood, result.kl) == resolved
    assert result.resolved() == result  # resolving twice changes nothing
    assert dataclasses.replace(result, binarize=config.binarize, likelihood=config.likelihood,
                               kl=config.kl) == config  # and nothing else


def test_the_rules_hold_on_resolved_values_too():
    # A resolved Config is built like any other, so the same one-line rules guard it.
    resolved = Config(dataset="cifar10").resolved()
    with pytest.raises(TfvaeError, match="logistic scores 8-bit intensities"):
        dataclasses.replace(resolved, binarize="dynamic")
    resolved = Config(prior_components=3).resolved()
    with pytest.raises(TfvaeError, match="a VampPrior's KL has no closed form"):
        dataclasses.replace(resolved, kl="analytic")


def test_tfvae_0_1_0_autoregressive_keys_are_translated():
    old = {**dataclasses.asdict(Config().resolved()), "autoregressive_decoder": True,
           "autoregressive_hidden_units": 0, "autoregressive_conditional": False}
    assert config_from_dict(old).likelihood == "autoregressive"
    assert config_from_dict({**old, "autoregressive_decoder": False}).likelihood == "bernoulli"
    local = {**old, "autoregressive_local_units": 16, "autoregressive_local_knots": 8}
    assert config_from_dict(local).autoregressive_local_units == 16
    with pytest.raises(TfvaeError, match="'autoregressive_decoder' must be bool"):
        config_from_dict({**old, "autoregressive_decoder": "yes"})


@pytest.mark.parametrize("changes, mode", [
    ({"autoregressive_hidden_units": 8}, "MADE hidden layer"),
    ({"autoregressive_hidden_units": 8, "autoregressive_conditional": True}, "MADE hidden"),
    ({"autoregressive_conditional": True}, "sees f\\(z\\)"),
    ({"autoregressive_local_units": 16}, "local network without knots"),
])
def test_removed_autoregressive_modes_name_the_last_version_that_trains_them(changes, mode):
    old = {"autoregressive_decoder": True, **changes}
    with pytest.raises(RemovedModeError) as error:
        config_from_dict(old)
    message = str(error.value)
    assert "\n" not in message and "was removed" in message
    assert "tfvae 0.1.0 is the last version that trains it: pip install tfvae==0.1.0" in message
    assert pytest.raises(RemovedModeError, config_from_dict, old).match(mode)


# Each fixture's config.json, and the command that made it with today's flags (kl etc. auto).
OLD_RUNS = {
    "run_0.1.0": Config(model="mlp", hidden_units=(8,), latent_dim=2, batch_size=64, epochs=2,
                        train_size=256, test_size=100, steps_per_call=4),
    "main_7c5cf3a/conv_run": Config(train_size=256, test_size=64, epochs=1, steps_per_call=2),
    "main_7c5cf3a/research_run": Config(
        model="mlp", hidden_units=(16,), latent_dim=4, top_latent_dim=2, posterior_flow_steps=2,
        prior_components=3, likelihood="autoregressive", autoregressive_local_units=4,
        autoregressive_local_knots=3, image_size=(8, 8), objective="iwae", k=2, batch_size=32,
        train_size=256, test_size=64, epochs=1, steps_per_call=2),
}


@pytest.mark.parametrize("name", OLD_RUNS)
def test_old_run_directories_load_and_match_the_same_command_today(name, tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(os.path.join(FIXTURES, name), run_dir)
    saved = rundir.load_config(run_dir)
    assert saved == saved.resolved()
    rundir.check_same_run(run_dir, saved, OLD_RUNS[name])  # raises if they differ
    with pytest.raises(TfvaeError, match="holds a run with a different config: latent_dim"):
        rundir.check_same_run(run_dir, saved, dataclasses.replace(OLD_RUNS[name], latent_dim=3))
    rundir.prepare(run_dir, OLD_RUNS[name])  # what rerunning the command does first


def test_a_run_of_a_removed_mode_is_refused_in_one_line(tmp_path):
    run_dir = str(tmp_path / "made")
    shutil.copytree(os.path.join(FIXTURES, "main_7c5cf3a", "made_run"), run_dir)
    with pytest.raises(TfvaeError) as error:
        rundir.load_config(run_dir)
    message = str(error.value)
    assert message.startswith(f"{run_dir}: this config uses the autoregressive decoder's MADE")
    assert "pip install tfvae==0.1.0" in message and "\n" not in message
    assert "damaged" not in message
