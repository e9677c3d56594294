"""`python -m tfvae.evaluate` on a tiny trained run, and on directories that are not runs."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import cli_error, tiny_config

from tfvae import checkpoints, data, evaluate, rundir, steps, train
from tfvae.config import Config
from tfvae.errors import exit_on_error


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mnist_dir):
    run_dir = str(tmp_path_factory.mktemp("run"))
    config = tiny_config(hidden_units=(64,), latent_dim=4, data_dir=mnist_dir, train_size=512,
                         jit_compile=False)  # XLA compiles would dominate here; test_iwae uses XLA
    train.train_and_evaluate(config, run_dir)
    return run_dir


def test_writes_eval_json_with_iwae_at_least_the_elbo(tiny_run, capsys):
    returned = exit_on_error(evaluate.main)([tiny_run, "--k", "50", "--subset", "100"])
    out = capsys.readouterr().out
    assert "test NLL (IWAE, k=50)" in out and "images/s" in out
    saved = json.load(open(os.path.join(tiny_run, "eval.json")))
    assert saved == pytest.approx(returned)
    for name in ("elbo", "reconstruction", "kl", "iwae", "nll", "seconds"):
        assert math.isfinite(saved[name]), name
    assert saved["images"] == 100 and saved["k"] == 50 and saved["step"] == 8
    assert saved["iwae"] >= saved["elbo"] and saved["nll"] == -saved["iwae"]
    assert saved["elbo"] == pytest.approx(saved["reconstruction"] - saved["kl"])
    assert saved["kl"] > 0 and saved["elbo"] < 0
    # Bits per dimension of the 28x28x1 images, printed beside the nats.
    assert saved["nll_bits_per_dim"] == pytest.approx(saved["nll"] / (784 * math.log(2)))
    assert (f"{saved['nll']:.2f} +/- {saved['nll_standard_error']:.2f} nats "
            f"({saved['nll_bits_per_dim']:.4f} bits/dim)") in out
    assert saved["mixed_precision"] is False
    # The per-image bounds behind the means, for paired comparisons between runs.
    with np.load(os.path.join(tiny_run, "eval_images.npz")) as images:
        assert images["rows"].shape == (100, 4)
        assert images["rows"][:, 0].mean() == pytest.approx(saved["iwae"], rel=1e-12)


def test_nll_standard_error_is_the_spread_of_the_images_bounds(tiny_run):
    result = evaluate.evaluate_run(tiny_run, k=10, subset=30, batch_size=10, chunk=5, seed=2,
                                   verbose=0, write=False)
    # The same bounds image by image, seeded as evaluate seeds its batches.
    config, model, _, _ = checkpoints.load_run(tiny_run)
    x, labels = data.load_test_set(dataclasses.replace(config, test_size=30))
    iwae_step = steps.make_iwae_function(model, config, 10, 5)
    bounds = np.concatenate([
        iwae_step(x[begin:begin + 10], labels[begin:begin + 10],
                  tf.random.experimental.stateless_fold_in(tf.constant([2, 0], tf.int64),
                                                           index)).numpy()[:, 0]
        for index, begin in enumerate(range(0, 30, 10))])
    assert result["nll"] == pytest.approx(-bounds.mean(), rel=1e-6)
    assert result["nll_standard_error"] == pytest.approx(bounds.std(ddof=1) / np.sqrt(30),
                                                         rel=1e-4)


def test_mixed_precision_scores_the_same_model_within_a_fraction_of_a_nat(tiny_run):
    kwargs = dict(k=20, subset=50, batch_size=25, chunk=10, seed=1, verbose=0, write=False)
    exact = evaluate.evaluate_run(tiny_run, **kwargs)
    mixed = evaluate.evaluate_run(tiny_run, mixed_precision=True, **kwargs)
    assert mixed["mixed_precision"] is True and exact["mixed_precision"] is False
    assert mixed["iwae"] != exact["iwae"]  # bfloat16 did run
    assert mixed["iwae"] == pytest.approx(exact["iwae"], abs=0.3)
    assert mixed["nll_standard_error"] == pytest.approx(exact["nll_standard_error"], rel=0.05)


def test_evaluate_run_depends_only_on_its_seed(tiny_run):
    kwargs = dict(k=20, subset=30, batch_size=30, chunk=20, verbose=0, save_images=False)
    first = evaluate.evaluate_run(tiny_run, seed=3, **kwargs)
    second = evaluate.evaluate_run(tiny_run, seed=3, **kwargs)
    other = evaluate.evaluate_run(tiny_run, seed=4, **kwargs)
    assert first["iwae"] == second["iwae"] and first["iwae"] != other["iwae"]
    assert first["kl"] == other["kl"]  # the analytic KL does not depend on the samples
    assert first["iwae"] == pytest.approx(other["iwae"], rel=0.02)  # Monte Carlo noise only


def test_an_interrupted_evaluation_goes_on_from_the_images_it_scored(tiny_run, monkeypatch,
                                                                    capsys):
    kwargs = dict(k=10, subset=40, batch_size=10, chunk=5, seed=5, verbose=0, write=False)
    path = os.path.join(tiny_run, rundir.EVAL_IMAGES_FILE)
    if os.path.exists(path):
        os.remove(path)
    uninterrupted = evaluate.evaluate_run(tiny_run, save_images=False, **kwargs)
    assert not os.path.exists(path)
    score_batches, firsts = evaluate.score_batches, []

    def interrupted_after(batches):
        def scored(*args, first, **kw):
            firsts.append(first)
            for index, rows in enumerate(score_batches(*args, first=first, **kw)):
                if index == batches:
                    raise KeyboardInterrupt
                yield rows
        return scored

    monkeypatch.setattr(evaluate, "score_batches", interrupted_after(2))
    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate_run(tiny_run, **kwargs)
    assert np.load(path)["rows"].shape == (20, 4)
    assert not os.path.exists(os.path.join(tiny_run, rundir.EVAL_LOCK_FILE))  # released
    monkeypatch.setattr(evaluate, "score_batches", interrupted_after(None))
    resumed = evaluate.evaluate_run(tiny_run, **kwargs)
    again = evaluate.evaluate_run(tiny_run, **kwargs)  # finished: nothing left to score
    other_seed = evaluate.evaluate_run(tiny_run, **{**kwargs, "seed": 6})
    assert firsts == [0, 20, 40, 0]
    for name in ("iwae", "elbo", "kl", "nll_standard_error"):
        assert resumed[name] == pytest.approx(uninterrupted[name], rel=1e-9), name
        assert again[name] == resumed[name], name
    assert other_seed["iwae"] != resumed["iwae"]
    assert np.load(path)["rows"][:, 0].mean() == pytest.approx(other_seed["iwae"], rel=1e-12)
    with open(path, "wb") as f:
        f.write(b"not an npz")
    capsys.readouterr()
    evaluate.evaluate_run(tiny_run, **kwargs)
    assert firsts[-1] == 0 and "ignoring" in capsys.readouterr().err


def test_a_second_evaluation_of_a_run_being_evaluated_is_one_line_and_exit_2(tiny_run, capsys):
    # The lock as another process's evaluation holds it (flock: each open() is its own holder).
    with rundir.locked(tiny_run, rundir.EVAL_LOCK_FILE, evaluate.EVAL_BUSY):
        message = cli_error(evaluate.main, [tiny_run, "--k", "5", "--subset", "10"], capsys)
        assert f"in use by another tfvae process (PID {os.getpid()})" in message
        assert "eval_images.npz" in message
        # Without the per-image file there is nothing to overwrite: it scores.
        alone = evaluate.evaluate_run(tiny_run, k=5, subset=10, verbose=0, write=False,
                                      save_images=False)
    assert np.isfinite(alone["iwae"])
    result = evaluate.evaluate_run(tiny_run, k=5, subset=10, verbose=0, write=False)
    assert result["iwae"] == alone["iwae"]
    assert not os.path.exists(os.path.join(tiny_run, rundir.EVAL_LOCK_FILE))


def test_not_a_run_directory_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tfvae.evaluate", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "not a tfvae run directory" in lines[0]
    assert "Traceback" not in result.stderr


def test_run_without_a_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    rundir.prepare(str(tmp_path), Config(model="mlp", latent_dim=4))
    err = cli_error(evaluate.main, [str(tmp_path), "--k", "5"], capsys).strip().splitlines()
    assert len(err) == 1 and "has no checkpoint" in err[0]


def test_checkpoint_of_another_model_is_one_line_and_exit_2(tiny_run, tmp_path, capsys):
    import shutil

    rundir.prepare(str(tmp_path), Config(model="mlp", latent_dim=8, hidden_units=(64,)))
    shutil.copytree(os.path.join(tiny_run, "checkpoints"), tmp_path / "checkpoints",
                    dirs_exist_ok=True)  # prepare made the (empty) folder
    err = cli_error(evaluate.main, [str(tmp_path), "--k", "5"], capsys).strip().splitlines()
    assert len(err) == 1 and "does not fit this model" in err[0]


def test_bad_k_is_one_line_and_exit_2(tiny_run, capsys):
    assert "--k must be at least 1" in cli_error(evaluate.main, [tiny_run, "--k", "0"], capsys)
