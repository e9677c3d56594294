"""The Keras way: compile / fit / evaluate / predict, Keras's callbacks, saving, TensorBoard.

Every number fit and evaluate report is checked against the CLI's own evaluation
(steps.make_eval_function on data.test_set) on the same weights and images.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from tfvae import ConvVAE, MlpVAE, data, keras_fit, steps, viz
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.tensorboard import ImageSummaries
from tfvae.train import train_and_evaluate

HELPER = os.path.join(os.path.dirname(__file__), "keras_fit_helper.py")
TIMEOUT = 600  # seconds: a hung subprocess fails the test, not the CI job
KEYS = {"loss", "elbo", "reconstruction", "kl"}


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    """(train images, labels), (test images, labels): uint8, as keras.datasets gives them."""
    return (data.load_subset("mnist", "train", mnist_dir, 512),
            data.load_subset("mnist", "test", mnist_dir, 300))


def small_mlp(**kwargs):
    keras.utils.set_random_seed(0)
    return MlpVAE(latent_dim=2, hidden_units=(64,), **kwargs)


def cli_test_elbo(model, images, labels, binarize, kl="analytic"):
    """The CLI's test ELBO, reconstruction and KL of `model` on uint8 test images."""
    config = Config(model="mlp" if isinstance(model, MlpVAE) else "conv", binarize=binarize,
                    likelihood=model.likelihood.name, kl=kl, latent_dim=model.latent_dim)
    test_x, test_labels = data.test_set(images, labels, binarize)
    batches = data.eval_batches(test_x, test_labels, batch_size=1000,
                                noise_shape=(1, model.latent_dim))
    return steps.evaluate_elbo(steps.make_eval_function(model, config), batches)


def assert_same_terms(keras_numbers, cli, prefix=""):
    for name in steps.METRIC_NAMES:
        assert keras_numbers[prefix + name] == pytest.approx(cli[name], rel=1e-5, abs=1e-4)
    assert keras_numbers[prefix + "loss"] == pytest.approx(-cli["elbo"], rel=1e-5)


@pytest.mark.parametrize("binarize", ["dynamic", "static", "none"])
def test_history_and_evaluate_equal_the_clis_test_elbo(binarize, mnist):
    (x, _), (x_test, y_test) = mnist
    vae = small_mlp(likelihood="gaussian" if binarize == "none" else "bernoulli")
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), binarize=binarize, seed=1)
    history = vae.fit(x, epochs=2, batch_size=64, validation_data=(x_test,), verbose=0)
    assert set(history.history) == KEYS | {"val_" + k for k in KEYS}
    cli = cli_test_elbo(vae, x_test, y_test, binarize)
    assert_same_terms({k: v[-1] for k, v in history.history.items()}, cli, prefix="val_")
    assert_same_terms(vae.evaluate(x_test, batch_size=128, return_dict=True, verbose=0), cli)
    train = history.history
    assert train["elbo"][-1] > train["elbo"][0]  # it learns
    np.testing.assert_allclose(train["elbo"], np.subtract(train["reconstruction"], train["kl"]),
                               rtol=1e-5)


def test_conditional_conv_model_fits_on_images_and_labels(mnist):
    (x, y), (x_test, y_test) = mnist
    keras.utils.set_random_seed(0)
    vae = ConvVAE(latent_dim=2, num_classes=10)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = vae.fit(x[:256], y[:256], epochs=1, batch_size=64,
                      validation_data=(x_test, y_test), verbose=0)
    cli = cli_test_elbo(vae, x_test, y_test, "dynamic")
    assert_same_terms({k: v[-1] for k, v in history.history.items()}, cli, prefix="val_")
    assert_same_terms(vae.evaluate(x_test, y_test, return_dict=True, verbose=0), cli)
    probabilities = vae.predict((x_test[:4], y_test[:4]), verbose=0)
    logits, _, _ = vae(x_test[:4, :, :, None] / 255.0, y_test[:4])
    np.testing.assert_allclose(probabilities, tf.sigmoid(logits).numpy(), atol=1e-6)


def test_every_image_form_gives_the_same_numbers(mnist):
    (x, _), (x_test, _) = mnist
    vae = small_mlp()
    # One batch of a dataset draws what the whole-array evaluation draws (the draws of a
    # dataset's batches are made in the compiled step, where XLA's generator gives other bits).
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    forms = {"uint8 [N, 28, 28]": x_test, "uint8 [N, 28, 28, 1]": x_test[..., None],
             "float32 in [0, 1]": x_test.astype(np.float32) / 255.0,
             "tf.data, one batch": tf.data.Dataset.from_tensor_slices(x_test).batch(1000)}
    results = {name: vae.evaluate(form, return_dict=True, verbose=0)
               for name, form in forms.items()}
    for name, result in results.items():
        assert result == pytest.approx(results["uint8 [N, 28, 28]"], rel=1e-6), name
    history = vae.fit(tf.data.Dataset.from_tensor_slices(x).batch(64), epochs=1, shuffle=False,
                      verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    predicted = vae.predict(x_test[:5], verbose=0)
    assert predicted.shape == (5, 28, 28, 1) and 0 < predicted.min() and predicted.max() < 1


def test_training_draws_depend_on_seed_and_step_only(mnist):
    (x, _), _ = mnist
    pixel, noise = keras_fit.step_seeds(4, tf.constant(7, tf.int64))
    again = keras_fit.step_seeds(4, tf.constant(7, tf.int64))
    later = keras_fit.step_seeds(4, tf.constant(8, tf.int64))
    assert (pixel.numpy() == again[0].numpy()).all() and (noise.numpy() == again[1].numpy()).all()
    assert (pixel.numpy() != later[0].numpy()).any() and (pixel.numpy() != noise.numpy()).any()

    def weights_after(steps_per_execution, seed=0):
        vae = small_mlp()
        vae.compile(optimizer=keras.optimizers.Adam(1e-3), seed=seed, jit_compile=False,
                    steps_per_execution=steps_per_execution)
        vae.fit(x[:256], epochs=2, batch_size=32, shuffle=False, verbose=0)
        assert int(vae.optimizer.iterations.numpy()) == 16
        return vae.get_weights()

    # The same steps however they are grouped into compiled calls; another seed, other draws.
    for a, b in zip(weights_after(1), weights_after(4)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not all(np.allclose(a, b) for a, b in zip(weights_after(1), weights_after(1, seed=9)))


def test_saved_model_reloads_and_evaluates_the_same(mnist, tmp_path):
    (x, _), (x_test, y_test) = mnist
    keras.utils.set_random_seed(0)
    vae = ConvVAE(latent_dim=2)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), binarize="static")
    vae.fit(x[:256], epochs=1, batch_size=64, verbose=0)
    path = str(tmp_path / "vae.keras")
    vae.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ConvVAE) and loaded.fit_binarize == "static"
    expected = vae.evaluate(x_test, return_dict=True, verbose=0)
    assert loaded.evaluate(x_test, return_dict=True, verbose=0) == expected
    cli = cli_test_elbo(loaded, x_test, y_test, "static")
    assert expected["elbo"] == pytest.approx(cli["elbo"], rel=1e-5)
    np.testing.assert_array_equal(loaded.predict(x_test[:8], verbose=0),
                                  vae.predict(x_test[:8], verbose=0))
    assert int(loaded.optimizer.iterations.numpy()) == 4  # the optimizer's state came along
    loaded.fit(x[:128], epochs=1, batch_size=64, verbose=0)  # and it trains on


def test_keras_callbacks_with_steps_per_execution_and_xla(mnist, tmp_path):
    (x, _), (x_test, y_test) = mnist
    vae = small_mlp()
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=2, jit_compile=True)
    logs = str(tmp_path / "logs")
    callbacks = [
        keras.callbacks.TensorBoard(logs),
        ImageSummaries(logs, x_test[:16]),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "vae.keras")),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "vae.weights.h5"), save_weights_only=True),
        # Stops at the first epoch that does not raise val_elbo by a million nats: the second.
        keras.callbacks.EarlyStopping(monitor="val_elbo", mode="max", min_delta=1e6, patience=0),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
    ]
    history = vae.fit(x, epochs=5, batch_size=64, validation_data=(x_test,), callbacks=callbacks,
                      verbose=0)
    assert history.epoch == [0, 1]
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_elbo"]) for r in rows] == pytest.approx(history.history["val_elbo"])
    cli = cli_test_elbo(vae, x_test, y_test, "dynamic")
    assert keras.models.load_model(tmp_path / "vae.keras").evaluate(
        x_test, return_dict=True, verbose=0)["elbo"] == pytest.approx(cli["elbo"], rel=1e-5)
    fresh = small_mlp()
    fresh.compile()
    fresh.load_weights(tmp_path / "vae.weights.h5")
    assert fresh.evaluate(x_test, return_dict=True, verbose=0)["elbo"] == pytest.approx(
        cli["elbo"], rel=1e-5)

    scalars = event_accumulator.EventAccumulator(os.path.join(logs, "validation"))
    scalars.Reload()
    logged = [float(tf.make_ndarray(e.tensor_proto)) for e in scalars.Tensors("epoch_elbo")]
    assert logged == pytest.approx(history.history["val_elbo"], rel=1e-6)
    images = read_images(os.path.join(logs, "images"))
    assert [step for step, _ in images["samples"]] == [0, 1]
    assert images["samples"][0][1].shape == (8 * 30 + 2, 8 * 30 + 2)  # 8 x 8 digits, padded
    assert images["reconstructions"][0][1].shape == (4 * 30 + 2, 8 * 30 + 2)  # 2 x 8 pairs


def test_terminate_on_nan_stops_a_diverging_fit(mnist):
    (x, _), _ = mnist
    vae = small_mlp()
    vae.compile(optimizer=keras.optimizers.Adam(1e30))
    history = vae.fit(x, epochs=3, batch_size=64, verbose=0,
                      callbacks=[keras.callbacks.TerminateOnNaN()])
    assert vae.stop_training and len(history.epoch) == 1


def read_images(log_dir):
    """{tag: [(step, image [H, W] uint8)]} of the image summaries in a TensorBoard directory."""
    accumulator = event_accumulator.EventAccumulator(
        log_dir, size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    pictures = {}
    for tag in accumulator.Tags()["tensors"]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "images":
            continue
        events = accumulator.Tensors(tag)
        # tf.summary.image stores [width, height, PNG bytes...] as a string tensor.
        pictures[tag] = [(e.step, tf.io.decode_png(tf.make_ndarray(e.tensor_proto)[2]).numpy()
                          [..., 0]) for e in events]
    return pictures


def test_cli_tensorboard_logs_carry_the_pictures(tmp_path, mnist_dir):
    config = Config(model="mlp", hidden_units=(32,), latent_dim=2, epochs=2, train_size=256,
                    test_size=100, batch_size=64, data_dir=mnist_dir)
    train_and_evaluate(config, str(tmp_path))
    images = read_images(str(tmp_path / "tensorboard"))
    assert [step for step, _ in images["samples"]] == [1, 2]
    assert [step for step, _ in images["reconstructions"]] == [1, 2]
    # The TensorBoard grid is the epoch's PNG before its enlargement.
    frame = tf.io.decode_png(tf.io.read_file(str(tmp_path / "image_at_epoch_0002.png"))).numpy()
    scale = viz.GRID_SCALE
    np.testing.assert_array_equal(images["samples"][1][1], frame[::scale, ::scale, 0])


@pytest.mark.parametrize("call, message", [
    (lambda vae, x, y: vae.fit(np.zeros([8, 32, 32], np.uint8), epochs=1),
     "images must be shaped [N, 28, 28, 1] or [N, 28, 28] for this model"),
    (lambda vae, x, y: vae.evaluate(x.astype(np.float32)), "float images must be intensities"),
    (lambda vae, x, y: vae.compile(loss="mse"), "compile() takes no loss"),
    (lambda vae, x, y: vae.compile(binarize="none"),
     "build the model with likelihood='logistic' or 'gaussian'"),
    (lambda vae, x, y: vae.compile(binarize="sometimes"), "binarize must be one of"),
])
def test_bad_input_is_one_line(call, message, mnist):
    (x, y), _ = mnist
    vae = small_mlp()
    vae.compile()
    with pytest.raises(TfvaeError) as error:
        call(vae, x[:64], y[:64])
    assert message in str(error.value) and "\n" not in str(error.value)


def colour_bytes(num, seed=0, shape=(12, 20, 3)):
    """Smooth random 8-bit colour images: a gradient per image, so there is something to learn."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, shape[1])[None, None, :, None]
    level = rng.uniform(0.2, 0.8, size=(num, 1, 1, shape[2]))
    noise = rng.normal(0, 0.03, size=(num, *shape))
    return np.clip(255 * (level * ramp + noise), 0, 255).round().astype(np.uint8)


def test_logistic_conv_model_fits_colour_images_of_its_own_shape():
    x, x_test = colour_bytes(256), colour_bytes(64, seed=1)
    keras.utils.set_random_seed(0)
    vae = ConvVAE(latent_dim=4, image_shape=(12, 20, 3), conv_filters=(8, 16),
                  likelihood="logistic")
    vae.compile(optimizer=keras.optimizers.Adam(3e-3), binarize="none")
    history = vae.fit(x, epochs=3, batch_size=32, validation_data=(x_test,), verbose=0)
    assert history.history["elbo"][-1] > history.history["elbo"][0]  # it learns
    # evaluate() scores the intensities with the fixed evaluation noise, as the CLI does.
    config = Config(dataset="cifar10", image_size=(12, 20), channels=3, likelihood="logistic",
                    binarize="none", latent_dim=4, conv_filters=(8, 16))
    batches = data.eval_batches(keras_fit.to_unit_images(x_test).numpy(), np.zeros(64, np.int32),
                                batch_size=32, noise_shape=(1, 4))
    expected = steps.evaluate_elbo(steps.make_eval_function(vae, config), batches)
    assert_same_terms(vae.evaluate(x_test, batch_size=32, return_dict=True, verbose=0), expected)
    assert_same_terms({k: v[-1] for k, v in history.history.items()}, expected, prefix="val_")
    assert vae.predict(x_test[:3], verbose=0).shape == (3, 12, 20, 3)
    with pytest.raises(TfvaeError, match=r"shaped \[N, 12, 20, 3\] for this model"):
        vae.fit(x[..., 0], epochs=1)  # grey images for a colour model
    with pytest.raises(TfvaeError, match="compile with binarize='none'"):
        vae.compile(binarize="dynamic")


def test_grey_images_of_any_size_come_with_or_without_their_channel_axis():
    x = colour_bytes(64, shape=(10, 14, 1))
    vae = small_mlp(image_shape=(10, 14, 1))
    vae.compile(jit_compile=False)
    three, four = (vae.evaluate(form, return_dict=True, verbose=0) for form in (x[..., 0], x))
    assert three == pytest.approx(four, rel=1e-6) and np.isfinite(three["elbo"])
    assert vae.predict(x[:2, :, :, 0], verbose=0).shape == (2, 10, 14, 1)


def test_conditional_model_without_labels_is_one_line(mnist):
    (x, _), _ = mnist
    vae = small_mlp(num_classes=10)
    vae.compile()
    images = tf.data.Dataset.from_tensor_slices(x[:64]).batch(32)
    for call in (lambda: vae.fit(x[:64], epochs=1), lambda: vae.evaluate(x[:64]),
                 lambda: vae.fit(images, shuffle=False)):
        with pytest.raises(TfvaeError, match="label-conditional: pass the labels"):
            call()


def test_fit_under_mirrored_strategy_on_two_logical_cpus(tmp_path, mnist_dir):
    out = tmp_path / "mirrored.json"
    done = subprocess.run([sys.executable, HELPER, "mirrored", mnist_dir, str(out)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2
    assert result["history"]["val_elbo"][-1] > result["history"]["val_elbo"][0]
    for name in KEYS:
        assert result["distributed"][name] == pytest.approx(result["one_device"][name],
                                                            rel=1e-5, abs=1e-4)
    assert result["distributed"]["elbo"] == pytest.approx(result["history"]["val_elbo"][-1],
                                                          rel=1e-5)


def test_backup_and_restore_finishes_a_fit_killed_mid_epoch(tmp_path, mnist_dir):
    command = [sys.executable, HELPER, "backup", mnist_dir, str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = tmp_path / "progress.txt"

    def position():  # (epoch, batch) of the last batch logged
        lines = progress.read_text().split() if progress.exists() else []
        return (int(lines[-2]), int(lines[-1])) if len(lines) >= 2 else (-1, -1)

    deadline = time.time() + TIMEOUT
    while process.poll() is None and position() < (1, 11) and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = position()
    assert killed_at >= (1, 11) and killed_at < (3, 0), "must be killed in the middle of the run"
    assert not (tmp_path / "done.json").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = json.loads((tmp_path / "done.json").read_text())
    assert done["epochs"][0] == killed_at[0] and done["epochs"][-1] == 3  # resumed, then ended
    assert done["iterations"] > 16 * 4 - 16 * killed_at[0]  # the backup's steps came back
    with open(tmp_path / "log.csv") as f:
        logged = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert sorted(set(logged)) == [0, 1, 2, 3]
    assert all(np.isfinite(done["val_elbo"]))
