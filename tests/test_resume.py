"""A run is never lost: exact resume after SIGKILL, determinism, divergence, bad input."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import cli_error, tiny_config, to_argv

from tfvae import checkpoints, rundir, train
from tfvae.config import Config

TINY = to_argv(tiny_config(train_size=2048, test_size=300, epochs=3, hidden_units=(64,),
                           steps_per_call=4, checkpoint_every=8))


def final_weights(workdir):
    run = checkpoints.load_run(workdir)
    return [w.numpy() for w in run.model.weights], run.checkpoint


def train_command(workdir, mnist_dir, *extra):
    return [sys.executable, "-m", "tfvae.train", "--data-dir", mnist_dir, "--out", workdir,
            *TINY, *extra]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mnist_dir):
    workdir = str(tmp_path_factory.mktemp("whole"))
    subprocess.run(train_command(workdir, mnist_dir), check=True, capture_output=True)
    return workdir


def steps_checkpointed(workdir):
    state = tf.train.get_checkpoint_state(os.path.join(workdir, rundir.CHECKPOINT_DIR))
    return 0 if state is None else int(state.model_checkpoint_path.rsplit("-", 1)[1])


@pytest.mark.parametrize("kill_seed", [0, 1, 2])
def test_resume_after_sigkill_gives_the_uninterrupted_weights(kill_seed, uninterrupted,
                                                               tmp_path, mnist_dir):
    rng = np.random.default_rng(kill_seed)
    kill_after_step = int(rng.integers(8, 90))  # anywhere in the 96-step run
    workdir = str(tmp_path)
    process = subprocess.Popen(train_command(workdir, mnist_dir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while process.poll() is None and steps_checkpointed(workdir) < kill_after_step \
            and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # The newest checkpoint on disk: a kill between writing a checkpoint's files and updating
    # the index leaves one the index does not name yet, and the resume rightly takes it.
    killed_at = max([steps_checkpointed(workdir),
                     *rundir.checkpoint_steps(os.path.join(workdir, rundir.CHECKPOINT_DIR))])
    assert 8 <= killed_at < 96, "the run must be killed midway for this test to mean anything"
    resumed = subprocess.run(train_command(workdir, mnist_dir), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"step {killed_at}" in resumed.stdout
    expected, _ = final_weights(uninterrupted)
    got, latest = final_weights(workdir)
    assert latest.endswith("-96")
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    epochs = [r["epoch"] for r in rundir.read_metrics(workdir)]
    assert epochs == [1, 2, 3]  # continued, not restarted, and no epoch logged twice
    whole = rundir.read_metrics(uninterrupted)
    assert [r["test_elbo"] for r in rundir.read_metrics(workdir)] == \
        [r["test_elbo"] for r in whole]


def test_same_seed_same_run_and_different_seed_different_run(tmp_path, mnist_dir):
    config = tiny_config(data_dir=mnist_dir)
    runs = {}
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        train.train_and_evaluate(Config(**{**config.__dict__, "seed": seed}),
                                 str(tmp_path / name))
        runs[name] = final_weights(str(tmp_path / name))[0]
        metrics = rundir.read_metrics(str(tmp_path / name))[0]
        runs[name + "-elbo"] = (metrics["train_elbo"], metrics["test_elbo"])
    for a, b in zip(runs["a"], runs["b"]):
        np.testing.assert_array_equal(a, b)
    assert runs["a-elbo"] == runs["b-elbo"]
    assert not all(np.array_equal(a, c) for a, c in zip(runs["a"], runs["c"]))


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, mnist_dir,
                                                                           capsys):
    argv = ["--data-dir", mnist_dir, "--out", str(tmp_path), *TINY,
            "--learning-rate", "1e30", "--checkpoint-every", "1", "--steps-per-call", "1"]
    err = cli_error(train.main, argv, capsys).strip()
    assert err.startswith("error: training diverged at step ")
    assert "term became" in err and "lower --learning-rate" in err and "\n" not in err
    bad_step = int(err.split("step ")[1].split(":")[0])
    weights, latest = final_weights(str(tmp_path))
    assert latest.endswith(f"-{bad_step - 1}")
    assert all(np.isfinite(w).all() for w in weights)


def test_rerun_with_a_different_config_is_refused_naming_the_keys(uninterrupted, capsys,
                                                                  mnist_dir):
    err = cli_error(train.main, ["--data-dir", mnist_dir, "--out", uninterrupted, *TINY,
                                 "--latent-dim", "3", "--learning-rate", "0.01"], capsys)
    assert "latent_dim (2 there, 3 now)" in err and "learning_rate" in err
    assert "--overwrite" in err


def test_checkpoint_from_a_different_model_is_refused(uninterrupted, tmp_path, capsys,
                                                      mnist_dir):
    workdir = tmp_path / "run"
    shutil.copytree(uninterrupted, workdir)
    config = rundir.load_config(str(workdir))
    rundir.write_json(str(workdir / "config.json"),
                      {**config.__dict__, "hidden_units": [32], "epochs": 4})
    err = cli_error(train.main, ["--data-dir", mnist_dir, "--out", str(workdir), *TINY,
                     "--hidden-units", "32", "--epochs", "4"], capsys)
    assert "does not fit this model" in err


@pytest.mark.parametrize("damage, message", [
    ("missing", "does not exist"),
    ("incomplete", "lacks t10k-labels-idx1-ubyte.gz"),
    ("truncated", "not a complete gzip file"),
    ("mismatched", "do not belong together"),
])
def test_bad_data_directories(damage, message, tmp_path, mnist_dir, capsys):
    data_dir = tmp_path / "data"
    shutil.copytree(mnist_dir, data_dir)
    if damage == "missing":
        shutil.rmtree(data_dir)
    elif damage == "incomplete":
        os.remove(data_dir / "t10k-labels-idx1-ubyte.gz")
    elif damage == "truncated":
        path = data_dir / "train-images-idx3-ubyte.gz"
        path.write_bytes(path.read_bytes()[:100_000])
    else:
        shutil.copy(data_dir / "t10k-labels-idx1-ubyte.gz", data_dir / "train-labels-idx1-ubyte.gz")
    err = cli_error(train.main, ["--data-dir", str(data_dir), "--out", str(tmp_path / "run"),
                                 *TINY], capsys)
    assert message in err


def test_unwritable_output_directory(tmp_path, mnist_dir, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = cli_error(train.main, ["--data-dir", mnist_dir, "--out", str(blocker / "run"), *TINY],
                    capsys)
    assert "cannot write to output directory" in err and "--out" in err


def test_real_command_line_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tfvae.train", "--latent-dim", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --latent-dim must be at least 1, not 0"
    assert "Traceback" not in result.stderr


def test_too_few_training_images_for_one_batch(tmp_path, mnist_dir, capsys):
    err = cli_error(train.main, ["--data-dir", mnist_dir, "--out", str(tmp_path / "run"),
                     "--train-size", "10", "--batch-size", "64"], capsys)
    assert "10 training images cannot fill one batch of 64" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written
