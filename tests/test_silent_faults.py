"""Fault injection for numbers that would be silently wrong: another model's evaluation, a
non-finite model saved as good, memory that grows with k (issue #37)."""

import dataclasses
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT, cli_error, tiny_config, to_argv

from tfvae import checkpoints, evaluate, generate, rundir, steps, train

TINY = tiny_config(hidden_units=(16,), train_size=256, test_size=100, epochs=2,
                   jit_compile=False)
SCORING = dict(k=5, subset=20, batch_size=10, chunk=5, seed=0, verbose=0, write=False)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, mnist_dir):
    """Two runs at the same step (two epochs), of the same config but for the seed."""
    runs = []
    for seed in (0, 1):
        run_dir = str(tmp_path_factory.mktemp(f"seed{seed}") / "run")
        train.train_and_evaluate(dataclasses.replace(TINY, seed=seed, data_dir=mnist_dir),
                                 run_dir, progress=False)
        runs.append(run_dir)
    return runs


def images_file(run_dir):
    return os.path.join(run_dir, rundir.EVAL_IMAGES_FILE)


def test_another_runs_per_image_file_is_not_taken_for_this_ones(two_runs):
    first, second = two_runs
    evaluate.evaluate_run(first, **SCORING)
    own = evaluate.evaluate_run(second, save_images=False, **SCORING)
    shutil.copy(images_file(first), images_file(second))
    assert evaluate.evaluate_run(second, **SCORING)["iwae"] == own["iwae"]


def test_overwrite_is_refused_while_an_evaluation_holds_the_run(two_runs, mnist_dir, capsys):
    first = two_runs[0]
    with rundir.locked(first, rundir.EVAL_LOCK_FILE, evaluate.EVAL_BUSY):
        message = cli_error(train.main, ["--data-dir", mnist_dir, "--out", first, "--overwrite",
                                         *to_argv(TINY)], capsys)
    assert "evaluation" in message and os.path.isdir(os.path.join(first, "checkpoints"))


def truncated(data):
    return data[:len(data) // 2]


def bit_flipped(data):
    flipped = bytearray(data)
    flipped[len(data) - 200] ^= 0x10  # inside the rows array, before the zip's directory
    return bytes(flipped)


def random_bytes(data):
    return np.random.default_rng(0).bytes(len(data))


@pytest.mark.parametrize("damage", [truncated, bit_flipped, random_bytes])
def test_a_damaged_per_image_file_is_rescored_with_a_note(damage, two_runs, capsys):
    second = two_runs[1]
    if os.path.exists(images_file(second)):
        os.remove(images_file(second))
    clean = evaluate.evaluate_run(second, **SCORING)
    with open(images_file(second), "rb") as f:
        data = f.read()
    with open(images_file(second), "wb") as f:
        f.write(damage(data))
    capsys.readouterr()
    assert evaluate.evaluate_run(second, **SCORING)["iwae"] == clean["iwae"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "note: ignoring" in err and "pickle" not in err, err


DIVERGING = ["--model", "mlp", "--hidden-units", "16", "--train-size", "64", "--test-size",
             "64", "--epochs", "2", "--learning-rate", "1e4", "--batch-size", "64"]


def test_a_diverged_model_is_never_saved_nor_called_good(tmp_path, mnist_dir, capsys):
    run_dir = str(tmp_path / "run")
    message = cli_error(train.main, ["--data-dir", mnist_dir, "--out", run_dir, *DIVERGING],
                        capsys)
    assert "diverged" in message and "no checkpoint was written" in message
    assert rundir.checkpoint_steps(os.path.join(run_dir, "checkpoints")) == []
    # Nothing of the failed start is left, so the corrected command, as the message says it
    # (no --overwrite), runs.
    assert os.listdir(run_dir) == [] and "--overwrite" not in message
    corrected = [*DIVERGING[:-4], "--learning-rate", "1e-3", "--batch-size", "64"]
    train.main(["--data-dir", mnist_dir, "--out", run_dir, *corrected])
    assert len(rundir.read_metrics(run_dir)) == 2


def test_generate_refuses_non_finite_weights(two_runs, tmp_path, capsys):
    run_dir = shutil.copytree(two_runs[0], tmp_path / "run")
    config, model, step, path = checkpoints.load_run(str(run_dir))
    model.trainable_variables[0].assign(tf.fill(model.trainable_variables[0].shape, np.nan))
    checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(step + 1, dtype=tf.int64))
    checkpoints.manager(str(run_dir), checkpoint).save(checkpoint_number=step + 1)
    message = cli_error(generate.main, [str(run_dir), "--samples", "4"], capsys)
    assert "non-finite weights" in message
    assert not os.path.exists(os.path.join(run_dir, rundir.SAMPLES_FILE))


def loop_state_shapes(graph):
    """The shapes of every loop variable of the While loops in `graph` and its functions."""
    shapes = []
    functions = [graph] + [f.graph for f in graph._functions.values()]
    for function_graph in functions:
        for op in function_graph.get_operations():
            if op.type in ("While", "StatelessWhile"):
                shapes += [(t.dtype, t.shape) for t in op.outputs]
    return shapes


def test_iwae_memory_does_not_grow_with_k(two_runs):
    config, model, _, _ = checkpoints.load_run(two_runs[0])
    args = tf.zeros([3, *config.image_shape]), tf.zeros([3], tf.int32), tf.constant([0, 0],
                                                                                    tf.int64)

    def loop_state(k):
        _, more, _ = steps.make_iwae_function(model, config, k, 50).calls
        mean, logvar = model.encode(*args[:2])
        scored = tf.zeros([3]), tf.zeros([2, 3])
        function = more.get_concrete_function(*args, mean, logvar, scored, tf.constant(0),
                                              tf.constant(100), 50)
        return loop_state_shapes(function.graph)

    huge = loop_state(10**9)
    assert huge  # the samples are scored in a loop, one chunk at a time
    # No list that grows as chunks are scored (a TensorList is a variant): every loop
    # variable is a tensor of a fixed shape, the same whatever k is.
    assert all(dtype != tf.variant and shape.is_fully_defined() for dtype, shape in huge), huge
    assert huge == loop_state(500)


# The evaluation command with faulthandler listening on SIGUSR1: the test can then ask where
# the program is while it is inside TensorFlow, where Python runs no code of its own.
WATCHED_EVALUATION = ("import faulthandler, runpy, signal; faulthandler.enable(); "
                      "faulthandler.register(signal.SIGUSR1); "
                      "runpy.run_module('tfvae.evaluate', run_name='__main__', alter_sys=True)")
WRITABLE_MEMORY_CAP = 3 * 2**30  # bytes; the evaluation below holds about 0.4 GiB


def limit_writable_memory():
    """In the child: RLIMIT_DATA, the private writable memory TensorFlow's allocations and
    thread stacks commit (RLIMIT_AS would also count the address space TensorFlow reserves but
    never uses, which grows with the number of cores); and SIGUSR1 ignored until faulthandler
    listens for it, so an early one cannot kill the program."""
    resource.setrlimit(resource.RLIMIT_DATA, (WRITABLE_MEMORY_CAP, WRITABLE_MEMORY_CAP))
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def stack_now(process, stderr_path):
    """The Python stack `process` is in now, as faulthandler prints it on SIGUSR1."""
    with open(stderr_path) as f:
        before = len(f.read())
    process.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    with open(stderr_path) as f:
        return f.read()[before:]


def test_evaluation_at_a_huge_k_stays_in_bounded_memory_and_stops_at_ctrl_c(two_runs, tmp_path):
    """`python -m tfvae.evaluate --k 10**9 --chunk 1` on three images, its writable memory
    capped at 3 GiB. Before the fix, the compiled scoring call reserved a list of one entry per
    chunk (10**9, over 22 GiB) as it began, and died; now it scores on in constant memory. It
    would take years to finish: the test waits until it is inside a compiled call, checks it
    is still scoring, alive, seconds later, then presses Ctrl-C. Before, one compiled call
    scored all k samples, and Python, which handles the signal, never ran again."""
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", WATCHED_EVALUATION, two_runs[0], "--k", str(10**9),
             "--chunk", "1", "--subset", "3", "--out", str(tmp_path)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
            preexec_fn=limit_writable_memory)

    def scoring():
        stack = stack_now(process, stderr_path)
        return "in score_batches" in stack and "in quick_execute" in stack

    def failure():
        return f"exit status {process.poll()}; " + stderr_path.read_text()[-3000:]

    try:
        deadline = time.monotonic() + 300  # a bound for a stalled start, never reached
        while not scoring():
            assert process.poll() is None and time.monotonic() < deadline, failure()
        time.sleep(3)
        assert scoring() and process.poll() is None, failure()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130, failure()
        said = stderr_path.read_text()
        assert said.strip().splitlines()[-1].startswith("interrupted") and "Traceback" not in said
    finally:
        process.kill()
        process.wait()


def test_generate_never_replaces_a_users_file_outside_a_run(two_runs, tmp_path, capsys):
    (tmp_path / "samples.png").write_text("mine")
    message = cli_error(generate.main, [two_runs[0], "--samples", "4", "--out",
                                        str(tmp_path)], capsys)
    assert "samples.png" in message and (tmp_path / "samples.png").read_text() == "mine"
    # What tfvae drew into a directory of its user's, it may draw again; not the user's files.
    mine = tmp_path / "mine"
    mine.mkdir()
    for _ in range(2):
        generate.main([two_runs[0], "--samples", "4", "--out", str(mine)])
    (mine / "manifold.png").write_text("mine")
    message = cli_error(generate.main, [two_runs[0], "--samples", "4", "--manifold", "--out",
                                        str(mine)], capsys)
    assert "manifold.png" in message and (mine / "manifold.png").read_text() == "mine"


def test_a_run_whose_checkpoints_vanished_is_refused_not_restarted(two_runs, tmp_path,
                                                                   mnist_dir, capsys):
    run_dir = str(shutil.copytree(two_runs[0], tmp_path / "run"))
    shutil.rmtree(os.path.join(run_dir, "checkpoints"))
    message = cli_error(train.main, ["--data-dir", mnist_dir, "--out", run_dir,
                                     *to_argv(TINY)], capsys)
    assert "holds no checkpoint" in message and len(rundir.read_metrics(run_dir)) == 2
    rundir.truncate_metrics(run_dir, 1)  # a one-epoch run, its checkpoints folder gone
    message = cli_error(train.main, ["--data-dir", mnist_dir, "--out", run_dir,
                                     *to_argv(TINY)], capsys)
    assert "has trained 1 epoch(s)" in message and len(rundir.read_metrics(run_dir)) == 1
    # A kill between epoch 1's metrics and its checkpoint leaves the (empty) folder: resumed.
    os.makedirs(os.path.join(run_dir, "checkpoints"))
    train.main(["--data-dir", mnist_dir, "--out", run_dir, *to_argv(TINY)])
    assert [record["epoch"] for record in rundir.read_metrics(run_dir)] == [1, 2]
    assert rundir.checkpoint_steps(os.path.join(run_dir, "checkpoints"))
