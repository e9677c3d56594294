"""tf.distribute and mixed precision, on CPU: two logical devices, two local workers, bfloat16.

Strategies that split the CPU or join a cluster must be set up before TensorFlow starts, so
those runs happen in fresh processes (tests/distributed_helper.py), bounded by timeouts.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import checkpoints, data, distribute, rundir, steps
from tfvae.config import Config
from tfvae.train import make_optimizer, train_and_evaluate

HELPER = os.path.join(os.path.dirname(__file__), "distributed_helper.py")
TIMEOUT = 600  # seconds; a hung collective must fail the test, not the CI job


def run_helper(args, env=None):
    return subprocess.run([sys.executable, HELPER, *args], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


def test_mirrored_step_equals_one_device_step(tmp_path):
    out = tmp_path / "mirrored.json"
    done = run_helper(["mirrored", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2 and result["replica_batches"] == [8, 8]
    assert result["loss"] > 100  # a real loss, not an empty batch
    assert result["loss_difference"] <= 1e-5 * result["loss"]
    assert result["gradient_difference"] <= 1e-5 * result["gradient_scale"]
    assert result["row_difference"] <= 1e-5 * result["loss"]
    # Adam's first step moves each weight by about the learning rate, 1e-3.
    assert result["weight_difference"] <= 1e-3 * result["weight_change"]


def test_training_entry_point_runs_under_mirrored_strategy(tmp_path):
    out = tmp_path / "record.json"
    done = run_helper(["mirrored-train", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["replicas"] == 2 and record["step"] == 8
    assert -600 < record["test_elbo"] < -100
    assert (tmp_path / "run" / "training.gif").is_file()


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_cluster(workdir, weights_dir, flags):
    """Trains with two local workers; returns their weights, chief's first."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    try:
        for index in range(2):
            env = dict(os.environ, TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}))
            processes.append(subprocess.Popen(
                [sys.executable, HELPER, "worker", str(weights_dir / f"{index}.npz"),
                 "--strategy", "multi-worker", "--out", str(workdir), *flags],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        logs = [p.communicate(timeout=TIMEOUT)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(processes, logs):
        assert p.returncode == 0, log[-3000:]
    return [list(np.load(weights_dir / f"{i}.npz").values()) for i in range(2)], logs


def test_two_workers_train_like_one_process_and_only_the_chief_writes(tmp_path):
    flags = ["--model", "mlp", "--latent-dim", "2", "--train-size", "256", "--test-size",
             "200", "--batch-size", "64", "--steps-per-call", "2"]
    workdir = tmp_path / "run"
    (tmp_path / "weights").mkdir()
    weights, logs = run_cluster(workdir, tmp_path / "weights", flags + ["--epochs", "2"])
    assert "epoch 2/2" in logs[0] and "epoch" not in logs[1]  # only the chief reports
    for chief_w, other_w in zip(*weights):
        np.testing.assert_allclose(chief_w, other_w, rtol=0, atol=1e-6)
    expected = {"config.json", "metrics.jsonl", "checkpoints", "tensorboard", "training.gif"}
    expected |= {f"{kind}_at_epoch_000{e}.png" for kind in ("image", "reconstruction")
                 for e in (1, 2)}
    written = set(os.listdir(workdir))
    assert expected <= written
    assert not [name for name in written if name.startswith(".")]  # none from the other worker
    assert [r["epoch"] for r in rundir.read_metrics(workdir)] == [1, 2]  # written once

    # Both resume from the chief's checkpoint: the other worker kept none of its own.
    weights, logs = run_cluster(workdir, tmp_path / "weights", flags + ["--epochs", "3"])
    assert "resuming" in logs[0] and "at epoch 3, step 8" in logs[0]
    for chief_w, other_w in zip(*weights):
        np.testing.assert_allclose(chief_w, other_w, rtol=0, atol=1e-6)
    assert [r["epoch"] for r in rundir.read_metrics(workdir)] == [1, 2, 3]
    assert tf.train.latest_checkpoint(workdir / "checkpoints").endswith("ckpt-12")

    # One process on the same config takes the same steps: the split changes no math.
    single = tmp_path / "single"
    config = Config(model="mlp", latent_dim=2, train_size=256, test_size=200, batch_size=64,
                    steps_per_call=2, epochs=3)
    record = train_and_evaluate(config, str(single))
    assert record["test_elbo"] == pytest.approx(rundir.read_metrics(workdir)[-1]["test_elbo"],
                                                rel=1e-5)


def test_mixed_precision_trains_in_bfloat16_with_float32_logits():
    config = Config(model="conv", latent_dim=2, batch_size=32, mixed_precision=True)
    assert distribute.dtype_policy_name(config) == "mixed_bfloat16"  # this machine has no GPU
    keras.utils.set_random_seed(0)
    model = checkpoints.new_model(config)
    optimizer = make_optimizer(config, model)
    assert model.encoder.layers[0].compute_dtype == "bfloat16"
    assert model.encoder.layers[0].kernel.dtype == "float32"  # master weights stay float32
    logits, mean, _ = model(tf.zeros([2, 28, 28, 1]))
    assert logits.dtype == tf.float32 and mean.dtype == tf.float32

    images, labels = data.load_subset("mnist", "train", size=512)
    batches = data.train_batches(images, labels, batch_size=32, seed=0,
                                 binarization="dynamic", noise_shape=(1, 2))
    train_steps = steps.make_train_function(model, optimizer, config, tf.distribute.get_strategy())
    elbo = train_steps(iter(batches), tf.constant(0, tf.int64), tf.constant(30)).numpy()[:, 0]
    assert np.isfinite(elbo).all()
    assert elbo[-5:].mean() > elbo[:5].mean() + 50  # the loss falls (the ELBO rises)
