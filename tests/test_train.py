"""Real training on a subset of real MNIST, through the same entry point users run."""

import json
import os

import imageio.v2 as imageio
import numpy as np
import pytest
from helpers import tiny_config, to_argv

from tfvae import checkpoints, data, rundir, steps, train
from tfvae.config import Config

SMALL = tiny_config(model="conv", train_size=6400, test_size=1000, epochs=3, steps_per_call=25,
                    seed=1)


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory, mnist_dir):
    workdir = str(tmp_path_factory.mktemp("conv-run"))
    train.main(["--data-dir", mnist_dir, "--out", workdir, *to_argv(SMALL)])
    return workdir


def test_the_default_mnist_run_is_unchanged_by_images_of_any_shape(tmp_path, mnist_dir):
    # The numbers of tfvae 1e64b92, before models took any image shape and data any source:
    # the default conv model, dynamic binarization, seed 0, 8 steps of 64 images.
    config = Config(train_size=256, test_size=100, batch_size=64, epochs=2, steps_per_call=4,
                    eval_batch_size=100, seed=0, data_dir=mnist_dir)
    record = train.train_and_evaluate(config, str(tmp_path), progress=False)
    np.testing.assert_allclose([record["test_elbo"], record["train_elbo"]],
                               [-501.3553771972656, -521.3882446289062], rtol=1e-6)
    saved = rundir.load_config(str(tmp_path))
    assert (saved.image_size, saved.channels, saved.num_classes) == ((28, 28), 1, 10)


def test_test_elbo_improves(conv_run):
    records = rundir.read_metrics(conv_run)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["test_elbo"] > records[0]["test_elbo"] + 5
    assert records[-1]["step"] == 300
    assert -250 < records[-1]["test_elbo"] < -120
    for r in records:
        np.testing.assert_allclose(r["test_elbo"], r["test_reconstruction"] - r["test_kl"],
                                   rtol=1e-4)
        assert r["images_per_second"] > 0


def test_outputs_exist_and_are_valid(conv_run):
    for epoch in (1, 2, 3):
        frame = imageio.imread(os.path.join(conv_run, f"image_at_epoch_{epoch:04d}.png"))
        assert frame.dtype == np.uint8 and frame.ndim == 2 and frame.std() > 10
        recon = imageio.imread(os.path.join(conv_run, f"reconstruction_at_epoch_{epoch:04d}.png"))
        assert recon.shape[0] > 28
    gif = imageio.mimread(os.path.join(conv_run, "training.gif"))
    assert len(gif) == 3
    saved = json.load(open(os.path.join(conv_run, "config.json")))
    assert saved["latent_dim"] == 2 and saved["train_size"] == 6400
    assert os.listdir(os.path.join(conv_run, "tensorboard"))


def test_checkpoint_reproduces_the_logged_test_elbo(conv_run, mnist_dir):
    config, model, _, latest = checkpoints.load_run(conv_run)
    assert latest.endswith("-300")
    test_x, test_labels = train.load_datasets(config)[2]
    batches = data.eval_batches(test_x, test_labels, batch_size=config.eval_batch_size,
                                noise_shape=(1, config.latent_dim))
    restored = steps.evaluate_elbo(steps.make_eval_function(model, config), batches)
    np.testing.assert_allclose(restored["elbo"], rundir.read_metrics(conv_run)[-1]["test_elbo"],
                               rtol=1e-5)


def test_conditional_mlp_writes_one_row_per_digit(tmp_path, mnist_dir):
    config = tiny_config(conditional=True, data_dir=mnist_dir, hidden_units=(400,),
                         train_size=2048, test_size=500, latent_dim=4, steps_per_call=50)
    record = train.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(record["test_elbo"])
    frame = imageio.imread(tmp_path / "image_at_epoch_0001.png")
    # 10 rows of 28-pixel digits, labelled with their digit and style, at least 1.5x.
    assert min(frame.shape[:2]) >= 1.5 * (10 * 30 + 2)
    assert os.path.exists(tmp_path / "training.gif")
