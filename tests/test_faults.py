"""Fault injection: hostile users, full disks, damaged run directories, signals, two processes.

Each test stands for a class of fault; every one must end in one line (exit 2, or 130 for
Ctrl-C), never a traceback, and must lose no file that the user or an earlier run wrote.
"""

import dataclasses
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import cli_error, tiny_config, to_argv, write_idx

from tfvae import checkpoints, evaluate, generate, mnist, rundir, train
from tfvae.files import TEMP_PREFIX, atomic_path

TINY = tiny_config(train_size=256, test_size=100, epochs=2, hidden_units=(16,), steps_per_call=2)


def command(module, *argv):
    return [sys.executable, "-m", f"tfvae.{module}", *argv]


def run_cli(module, *argv, limit_bytes=None, env=None):
    """Runs a tfvae command in a child process, optionally under a file-size limit."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(command(module, *argv), capture_output=True, text=True, env=env,
                          preexec_fn=limit if limit_bytes else None, timeout=600)


def one_line_error(result, status=2):
    """The user's one line; asserts there is no traceback and the exit status."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    """A finished two-epoch run, copied by each test that damages it."""
    run_dir = str(tmp_path_factory.mktemp("trained") / "run")
    train.main(["--data-dir", mnist_dir, "--out", run_dir, *to_argv(TINY)])
    return run_dir


def copy_of(run_dir, tmp_path):
    target = str(tmp_path / "run")
    shutil.copytree(run_dir, target)
    return target


def resume(run_dir, mnist_dir, capsys, epochs=3):
    """Reruns training on `run_dir` one epoch further; returns (record, stderr)."""
    record = train.main(["--data-dir", mnist_dir, "--out", run_dir,
                         *to_argv(dataclasses.replace(TINY, epochs=epochs))])
    return record, capsys.readouterr().err


# 1. --overwrite deletes only what tfvae wrote, and only in a run directory.

def test_overwrite_keeps_the_users_files_in_a_run_directory(trained, tmp_path, mnist_dir):
    run_dir = copy_of(trained, tmp_path)
    for name in ("photo.png", "notes.txt", "image_at_epoch_1.png"):
        (tmp_path / "run" / name).write_text("mine")
    os.makedirs(tmp_path / "run" / "checkpoints" / "mine")
    (tmp_path / "run" / "tensorboard" / "my-notes.txt").write_text("mine")
    rundir.clear(run_dir)
    left = sorted(os.listdir(run_dir))
    assert left == ["checkpoints", "image_at_epoch_1.png", "notes.txt", "photo.png",
                    "tensorboard"]
    assert os.listdir(tmp_path / "run" / "checkpoints") == ["mine"]
    assert os.listdir(tmp_path / "run" / "tensorboard") == ["my-notes.txt"]


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, mnist_dir, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "manifold.png").write_text("my own manifold")
    (folder / "photo.png").write_text("mine")
    err = cli_error(train.main, ["--data-dir", mnist_dir, "--out", str(folder), "--overwrite",
                                 *to_argv(TINY)], capsys)
    assert "cannot tell who wrote them" in err
    assert sorted(os.listdir(folder)) == ["manifold.png", "photo.png"]
    assert (folder / "manifold.png").read_text() == "my own manifold"


def test_a_folder_of_other_files_trains_beside_them(tmp_path, mnist_dir):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "photo.png").write_text("mine")
    train.main(["--data-dir", mnist_dir, "--out", str(folder), "--overwrite",
                *to_argv(dataclasses.replace(TINY, epochs=1))])
    assert (folder / "photo.png").read_text() == "mine"
    assert (folder / "config.json").is_file()


# 2. Two processes in one run directory.

def test_a_second_process_is_refused_while_a_run_trains(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    slow = tiny_config(train_size=2048, test_size=100, epochs=1000, hidden_units=(16,),
                       steps_per_call=1)  # minutes: it is killed long before it ends
    first = subprocess.Popen(command("train", "--data-dir", mnist_dir, "--out", run_dir,
                                     *to_argv(slow)), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not rundir.checkpoint_steps(os.path.join(run_dir, "checkpoints")) \
                and time.time() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, "the first run must still be training"
        for extra in ([], ["--overwrite"]):
            second = run_cli("train", "--data-dir", mnist_dir, "--out", run_dir, *to_argv(slow),
                             *extra)
            line = one_line_error(second)
            assert f"in use by another tfvae process (PID {first.pid})" in line
        assert os.path.isfile(os.path.join(run_dir, "config.json"))
    finally:
        first.kill()
        first.wait()
    with rundir.locked(run_dir):  # SIGKILL released the lock
        pass


# 3. Write failures: one line naming the path, results printed first, nothing damaged.

def test_checkpoint_write_failure_is_one_line_and_a_rerun_resumes(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    argv = ["--data-dir", mnist_dir, "--out", run_dir, *to_argv(TINY)]
    # PNGs (~40 kB) fit under the limit; a checkpoint (~310 kB with Adam's slots) does not.
    failed = run_cli("train", *argv, limit_bytes=150_000)
    line = one_line_error(failed)
    assert "could not write checkpoint 4" in line and "file-size limit" in line
    assert json.load(open(os.path.join(run_dir, "config.json")))["epochs"] == 2
    again = run_cli("train", *argv)
    assert again.returncode == 0, again.stderr
    assert [r["epoch"] for r in rundir.read_metrics(run_dir)] == [1, 2]


def test_evaluate_prints_its_numbers_before_a_failed_write(trained, tmp_path):
    run_dir = copy_of(trained, tmp_path)
    blocker = tmp_path / "run" / "eval.json"
    blocker.mkdir()  # the write fails after the whole evaluation has run
    (blocker / "keep.txt").write_text("mine")
    failed = run_cli("evaluate", run_dir, "--k", "5", "--subset", "20")
    line = one_line_error(failed)
    assert "test NLL (IWAE, k=5)" in failed.stdout
    assert f"could not write {blocker}" in line and "Is a directory" in line
    assert (blocker / "keep.txt").read_text() == "mine"
    assert not [n for n in os.listdir(run_dir) if n.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize("blocked", ["manifold.png", "scatter.png"])
def test_a_directory_where_a_file_goes_is_one_line(blocked, trained, tmp_path):
    run_dir = copy_of(trained, tmp_path)
    path = tmp_path / "run" / blocked
    path.unlink()
    path.mkdir()
    (path / "keep.txt").write_text("mine")
    result = run_cli("generate", run_dir, "--scatter", "--manifold")
    line = one_line_error(result)
    assert f"could not write {os.path.join(run_dir, blocked)}" in line
    assert (path / "keep.txt").read_text() == "mine"


def test_metrics_append_failure_leaves_no_partial_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n')

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20, 20))

    code = ("import sys; from tfvae.files import append_line; "
            f"append_line({str(path)!r}, '{{\"epoch\": 2, \"padding\": \"' + 'x' * 50 + '\"}}')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            preexec_fn=limited)
    assert result.returncode == 1 and "could not write" in result.stderr
    assert path.read_text() == '{"epoch": 1}\n'


# 4. A damaged run directory is repaired, falls back, or is refused in one line.

@pytest.mark.parametrize("damage", ["garbage", "no-epoch", "non-utf8", "deleted"])
def test_damaged_metrics_are_repaired_on_resume(damage, trained, tmp_path, mnist_dir, capsys):
    run_dir = copy_of(trained, tmp_path)
    path = tmp_path / "run" / "metrics.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    if damage == "garbage":
        path.write_bytes(lines[0] + b"{not json\n" + lines[1])
    elif damage == "no-epoch":
        path.write_bytes(lines[0] + b'{"step": 3}\n' + lines[1])
    elif damage == "non-utf8":
        path.write_bytes(lines[0] + b"\xff\xfe\n" + lines[1])
    else:
        path.unlink()
    record, err = resume(run_dir, mnist_dir, capsys)
    assert record["epoch"] == 3 and record["step"] == 12  # resumed, not restarted
    epochs = [r["epoch"] for r in rundir.read_metrics(run_dir)]
    assert epochs == ([3] if damage == "deleted" else [1, 2, 3])
    if damage != "deleted":
        assert "dropped 1 damaged line" in err


@pytest.mark.parametrize("damage", ["truncated-data", "missing-index"])
def test_a_damaged_newest_checkpoint_falls_back_to_an_older_one(damage, trained, tmp_path,
                                                                mnist_dir, capsys):
    run_dir = copy_of(trained, tmp_path)
    checkpoint_dir = tmp_path / "run" / "checkpoints"
    assert rundir.checkpoint_steps(str(checkpoint_dir)) == [4, 8]
    if damage == "truncated-data":
        data_file = checkpoint_dir / "ckpt-8.data-00000-of-00001"
        data_file.write_bytes(data_file.read_bytes()[:1000])
    else:
        (checkpoint_dir / "ckpt-8.index").unlink()
    record, err = resume(run_dir, mnist_dir, capsys, epochs=2)
    assert record["epoch"] == 2 and record["step"] == 8  # epoch 2 retrained from step 4
    if damage == "truncated-data":
        assert "ckpt-8 is damaged" in err and "resuming from" in err
    assert checkpoints.load_run(run_dir).step == 8


@pytest.mark.parametrize("damage", ["garbled", "deleted", "stale"])
def test_a_damaged_checkpoint_index_is_rebuilt_and_the_run_resumes(damage, trained, tmp_path,
                                                                   mnist_dir, capsys):
    run_dir = copy_of(trained, tmp_path)
    index = tmp_path / "run" / "checkpoints" / "checkpoint"
    if damage == "garbled":
        index.write_bytes(b"\x00\xffmodel_checkpoint_path: {{{")
    elif damage == "deleted":
        index.unlink()
    else:
        index.write_text('model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-4"\n')
    record, err = resume(run_dir, mnist_dir, capsys)
    assert "rebuilt" in err
    assert record["epoch"] == 3 and record["step"] == 12  # never silently from step 0
    assert [r["epoch"] for r in rundir.read_metrics(run_dir)] == [1, 2, 3]


def test_every_checkpoint_damaged_is_refused_not_restarted(trained, tmp_path, mnist_dir, capsys):
    run_dir = copy_of(trained, tmp_path)
    for path in (tmp_path / "run" / "checkpoints").glob("*.data-*"):
        path.write_bytes(b"")
    err = cli_error(train.main, ["--data-dir", mnist_dir, "--out", run_dir, *to_argv(TINY)],
                    capsys)
    assert "every checkpoint" in err and "damaged" in err
    assert [r["epoch"] for r in rundir.read_metrics(run_dir)] == [1, 2]


@pytest.mark.parametrize("damage, message", [
    ("non-utf8", "config.json is damaged"),
    ("missing-keys", "lacks latent_dim"),
    ("not-json", "config.json is damaged"),
])
def test_a_damaged_config_is_one_line(damage, message, trained, tmp_path, mnist_dir, capsys):
    run_dir = copy_of(trained, tmp_path)
    path = tmp_path / "run" / "config.json"
    if damage == "non-utf8":
        path.write_bytes(b"\xff" + path.read_bytes())
    elif damage == "missing-keys":
        values = json.loads(path.read_text())
        del values["latent_dim"]
        path.write_text(json.dumps(values))
    else:
        path.write_text("{")
    for main, argv in ((train.main, ["--data-dir", mnist_dir, "--out", run_dir, *to_argv(TINY)]),
                       (generate.main, [run_dir, "--samples", "4"]),
                       (evaluate.main, [run_dir, "--k", "2"])):
        assert message in cli_error(main, argv, capsys)


def test_a_run_that_lost_its_config_is_refused(trained, tmp_path, mnist_dir, capsys):
    run_dir = copy_of(trained, tmp_path)
    os.remove(os.path.join(run_dir, "config.json"))
    err = cli_error(train.main, ["--data-dir", mnist_dir, "--out", run_dir, *to_argv(TINY)],
                    capsys)
    assert "holds checkpoints but no config.json" in err
    assert rundir.checkpoint_steps(os.path.join(run_dir, "checkpoints")) == [4, 8]


# 5. Empty data; non-finite results never written.

def test_empty_idx_files_are_refused_when_loading(tmp_path, capsys):
    for image_file, label_file in mnist.IDX_FILES.values():
        write_idx(tmp_path / image_file, np.zeros([0, 28, 28]))
        write_idx(tmp_path / label_file, np.zeros([0]))
    err = cli_error(train.main, ["--data-dir", str(tmp_path), "--out", str(tmp_path / "run")],
                    capsys)
    assert "holds no images" in err
    assert not (tmp_path / "run").exists()


def test_non_finite_numbers_never_replace_a_good_file(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text('{"nll": 90.0}\n')
    with pytest.raises(rundir.TfvaeError, match="non-finite"):
        rundir.write_json(str(path), {"nll": float("nan")})
    assert path.read_text() == '{"nll": 90.0}\n'


# 6. The smallest test sets: every figure is made or skipped with a note.

@pytest.mark.parametrize("test_size", [1, 2])
def test_tiny_test_sets_finish_the_run(test_size, tmp_path, mnist_dir, capsys):
    config = tiny_config(test_size=test_size, latent_dim=3, data_dir=mnist_dir)
    record = train.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(record["test_elbo"])
    err = capsys.readouterr().err
    if test_size == 1:
        assert "no scatter.png" in err and "no transition.gif" in err
    else:
        assert (tmp_path / "scatter.png").is_file()


# 7. generate follows moved data.

def test_generate_follows_moved_data(tmp_path, mnist_dir, capsys):
    moved = tmp_path / "data"
    shutil.copytree(mnist_dir, moved)
    config = tiny_config(data_dir=str(moved), epochs=1)
    train.train_and_evaluate(config, str(tmp_path / "run"))
    shutil.move(moved, tmp_path / "elsewhere")
    paths = generate.main([str(tmp_path / "run"), "--scatter", "--data-dir",
                           str(tmp_path / "elsewhere")])
    assert os.path.isfile(paths[0])
    env = dict(os.environ, TFVAE_DATA_DIR=str(tmp_path / "elsewhere"))
    result = run_cli("generate", str(tmp_path / "run"), "--reconstruct", env=env)
    assert result.returncode == 0, result.stderr


# 8 and 9. Sizes and numbers the code cannot take.

@pytest.mark.parametrize("module, argv, message", [
    ("generate", ["--grid", "1000", "--manifold"], "--grid must be at most 100"),
    ("generate", ["--samples", "100000000"], "--samples must be at most 10000"),
    ("generate", ["--transition", "--steps", "0"], "--steps must be at least 1"),
    ("generate", ["--samples", "4", "--seed", "-1"], "--seed must be from 0 to 4294967295"),
    ("generate", ["--samples", "4", "--seed", str(2**70)], "--seed must be from 0"),
    ("evaluate", ["--seed", "4294967296"], "--seed must be from 0 to 4294967295"),
    ("evaluate", ["--subset", "0"], "--subset must be at least 1"),
    ("evaluate", ["--chunk", "-5"], "--chunk must be at least 1"),
])
def test_out_of_range_flags_are_one_line(module, argv, message, trained, capsys):
    main = {"generate": generate.main, "evaluate": evaluate.main}[module]
    assert message in cli_error(main, [trained, *argv], capsys)


@pytest.mark.parametrize("seed", ["-1", "4294967296", str(2**64)])
def test_training_seeds_out_of_range_are_one_line(seed, tmp_path, capsys):
    err = cli_error(train.main, ["--out", str(tmp_path / "run"), "--seed", seed], capsys)
    assert "--seed must be from 0 to 4294967295" in err
    assert not (tmp_path / "run").exists()


def test_a_task_index_beyond_the_cluster_is_one_line(tmp_path):
    tf_config = {"cluster": {"worker": ["localhost:1", "localhost:2"]},
                 "task": {"type": "worker", "index": 5}}
    result = run_cli("train", "--strategy", "multi-worker", "--out", str(tmp_path / "run"),
                     env=dict(os.environ, TF_CONFIG=json.dumps(tf_config)))
    assert "not in its cluster" in one_line_error(result)


# 10. Signals and litter.

def start_interruptible(argv):
    """Starts `argv` as from a terminal: with Ctrl-C's default action, even when these tests
    run in a background job, whose children inherit SIGINT ignored (and rightly keep it so)."""
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    process = start_interruptible(command("train", "--out", str(tmp_path / "run")))
    time.sleep(1.0)  # TensorFlow's import takes seconds: this lands inside it
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr


def test_ctrl_c_is_one_line_when_what_it_interrupted_complains_while_collected():
    """Ctrl-C inside a file write (imageio's, say) leaves an object whose __del__ raises as the
    process ends: its traceback must not follow the one line."""
    program = """if True:
        from tfvae.errors import exit_on_error

        class HalfWritten:
            def __del__(self):
                raise ValueError("closed while half written")

        def main(argv):
            writer = HalfWritten()
            raise KeyboardInterrupt

        exit_on_error(main, interrupted="interrupted: rerun")()
    """
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 130
    assert result.stderr.strip() == "interrupted: rerun"


def test_ctrl_c_while_training_says_how_to_resume(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    slow = tiny_config(train_size=2048, epochs=1000, hidden_units=(16,), steps_per_call=1)
    process = start_interruptible(command("train", "--data-dir", mnist_dir, "--out", run_dir,
                                          *to_argv(slow)))
    deadline = time.time() + 120
    while not rundir.checkpoint_steps(os.path.join(run_dir, "checkpoints")) \
            and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: rerun the same command")
    assert not os.path.exists(os.path.join(run_dir, rundir.LOCK_FILE))


def test_an_interrupted_atomic_write_leaves_no_temporary_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(str(tmp_path / "figure.png")) as tmp:
            open(tmp, "w").write("half")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_leftovers_of_killed_runs_are_removed_on_rerun(trained, tmp_path, mnist_dir, capsys):
    run_dir = copy_of(trained, tmp_path)
    litter = [f"{TEMP_PREFIX}manifold.png.abc123.png", ".training.gif.k2j4h5g6.gif"]
    for name in litter:
        (tmp_path / "run" / name).write_bytes(b"half")
    (tmp_path / "run" / ".my-hidden-notes").write_text("mine")
    os.makedirs(tmp_path / "run" / "checkpoints" / "ckpt-9_temp")
    resume(run_dir, mnist_dir, capsys)
    names = os.listdir(run_dir)
    assert not set(litter) & set(names) and ".my-hidden-notes" in names
    assert "ckpt-9_temp" not in os.listdir(tmp_path / "run" / "checkpoints")


# Also decided: training past the checkpoint's epochs, and a too-long KL warm-up.

def test_fewer_epochs_than_the_run_reached_is_refused(trained, tmp_path, mnist_dir, capsys):
    run_dir = copy_of(trained, tmp_path)
    config = json.load(open(os.path.join(run_dir, "config.json")))
    err = cli_error(train.main, ["--data-dir", mnist_dir, "--out", run_dir,
                                 *to_argv(TINY), "--epochs", "1"], capsys)
    assert "has already trained 2 epochs: pass --epochs 2 or more" in err
    assert json.load(open(os.path.join(run_dir, "config.json"))) == config


def test_a_kl_warmup_longer_than_the_run_is_announced(tmp_path, mnist_dir, capsys):
    train.train_and_evaluate(tiny_config(data_dir=mnist_dir, kl_warmup_epochs=4),
                             str(tmp_path))
    assert "the KL weight ends at 0.25" in capsys.readouterr().err
