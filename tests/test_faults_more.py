"""Fault injection, second probe (issue #37): large images, folders, the Keras API, files that
are not a run's, hangs and messages. Each case ends in one line or the right result."""

import os

import imageio.v2 as imageio
import numpy as np
import pytest
from helpers import cli_error, make_run

from tfvae import MlpVAE, catalog, evaluate, figures, generate, rundir, train, viz
from tfvae.config import Config
from tfvae.errors import TfvaeError


def test_grids_of_large_images_are_drawn_at_a_size_pil_reads_back(tmp_path):
    path = str(tmp_path / "grid.png")
    viz.save_grid(path, np.zeros([16, 1100, 1100], np.float32), rows=4)
    assert max(imageio.imread(path).shape) <= 4096  # PIL warns past 89M pixels
    viz.gif_from_pngs(str(tmp_path / "training.gif"), [path, path], captions=["1", "2"])


def test_animations_of_large_images_have_frames_of_a_bounded_size(tmp_path):
    path, png = str(tmp_path / "transition.gif"), str(tmp_path / "grid.png")
    viz.save_animation(path, np.zeros([3, 1100, 1100, 1], np.float32), captions=["a", "b", "c"])
    viz.save_grid(png, np.zeros([16, 1100, 1100], np.float32), rows=4)  # 4096 pixels a side
    viz.gif_from_pngs(str(tmp_path / "training.gif"), [png, png], captions=["1", "2"])
    for name in ("transition.gif", "training.gif"):
        height, width = imageio.mimread(str(tmp_path / name))[0].shape[:2]
        assert width <= viz.MAX_ANIMATION_SIDE and height <= viz.MAX_ANIMATION_SIDE + 50, name


def test_pictures_of_large_images_are_drawn_a_bounded_number_of_pixels_at_a_time(monkeypatch):
    side = 300  # 8 images a call; a 1000x1000 run decoded 64 at once and passed 16 GB
    model = MlpVAE(latent_dim=2, hidden_units=(4,), image_shape=(side, side, 1))
    batches = []
    for name in ("encode", "decode"):
        def recorded(x, *args, method=getattr(model, name), **kwargs):
            batches.append(len(x))
            return method(x, *args, **kwargs)
        monkeypatch.setattr(model, name, recorded)
    x = np.zeros([20, side, side, 1], np.float32)
    samples, reconstructions = figures.progress_images(model, 0, x[:16], None)
    assert len(samples) == 64 and len(reconstructions) == 16
    assert len(figures.encode_means(model, x)) == 20 and len(figures.manifold_images(model)) > 64
    assert max(batches) * side * side <= figures.PIXELS_PER_CALL, batches


def test_pictures_of_more_large_images_than_memory_holds_are_refused_up_front(tmp_path,
                                                                               capsys):
    """--samples 10000 of a 1000x1000 run decoded 40 GB before drawing them."""
    run_dir = tmp_path / "run"
    rundir.prepare(str(run_dir), Config(image_size=(1000, 1000), latent_dim=2))
    for flags, fewer in ((["--samples", "10000"], "--samples 268"),
                         (["--manifold", "--grid", "20"], "--grid 16")):
        message = cli_error(generate.main, [str(run_dir), *flags], capsys)
        assert "1000x1000" in message and fewer in message, message


def test_resizing_more_digits_than_memory_holds_is_refused_up_front(tmp_path, monkeypatch,
                                                                     capsys):
    """10000 test digits at 1000x1000 are 50 GB as uint8 and float32: evaluate died in
    std::bad_alloc. Here 30 digits at 100x100 and 1 MB of usable memory stand in for them."""
    run_dir, _ = make_run(str(tmp_path), model="mlp", hidden_units=(4,), image_size=(100, 100))
    monkeypatch.setattr(catalog, "usable_memory", lambda: 2**20)
    message = cli_error(evaluate.main, [run_dir, "--k", "1"], capsys)
    assert "the 30 test images of mnist at 100x100" in message and "--subset N" in message
    assert "1 GiB" not in message


def test_images_too_large_to_train_are_refused_up_front(tmp_path, capsys):
    with pytest.raises(TfvaeError, match="over tfvae's 1024x1024"):
        Config(dataset=str(tmp_path), image_size=(2000, 2000))
    message = cli_error(train.main, ["--dataset", str(tmp_path), "--image-size", "1000",
                                     "1100", "--out", str(tmp_path / "run")], capsys)
    assert "1000x1100" in message and not os.path.exists(tmp_path / "run")


@pytest.fixture(scope="module")
def conditional_model():
    from tfvae import MlpVAE

    model = MlpVAE(latent_dim=2, hidden_units=(8,), num_classes=10)
    model.compile()
    return model


IMAGES = np.zeros([4, 28, 28], np.uint8)
LABELS = np.arange(4)


@pytest.mark.parametrize("call, message", [
    (lambda m: m.predict((IMAGES[:0], LABELS[:0])), "no images"),
    (lambda m: m.fit(np.full([4, 28, 28], np.nan, np.float32), LABELS), "NaN"),
    (lambda m: m.fit(IMAGES.astype(np.uint16) + 257, LABELS), "0..255"),
    (lambda m: m.fit(IMAGES.astype(np.int8) - 1, LABELS), "0..255"),
    (lambda m: m.fit(IMAGES, np.array([0, 1, 2, 10])), "label 3 is 10"),
    (lambda m: m.fit(IMAGES, np.array([0, -1, 2, 3])), "label 1 is -1"),
    (lambda m: m.evaluate(IMAGES, np.array([0, 1.5, 2, 3])), "label 1 is 1.5"),
])
def test_the_keras_api_refuses_what_it_cannot_score(conditional_model, call, message):
    with pytest.raises(TfvaeError, match=message):
        call(conditional_model)



def write_png(path, value=128):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    imageio.imwrite(path, np.full([8, 8], value, np.uint8), format="png")


def test_links_fifos_and_dangling_links_in_a_folder_are_read_once_or_skipped(tmp_path):
    from tfvae import sources

    for name in ("a/1.png", "a/2.png", "b/3.png"):
        write_png(str(tmp_path / name))
    os.symlink(".", tmp_path / "zz_self")  # a loop back to the folder
    os.symlink("a", tmp_path / "c")  # a second way into class a
    os.symlink("b/3.png", tmp_path / "a" / "3-again.png")  # a file seen twice
    os.mkfifo(tmp_path / "a" / "fifo.png")  # reading it would block forever
    os.symlink("gone.png", tmp_path / "b" / "dangling.png")
    paths, labels, classes = sources.scan_folder(str(tmp_path))
    assert classes == ["a", "b"]
    assert sorted(paths) == ["a/1.png", "a/2.png", "b/3.png"] or sorted(paths) == [
        "a/1.png", "a/2.png", "a/3-again.png"]
    assert len({os.path.realpath(tmp_path / p) for p in paths}) == len(paths) == 3


def test_a_flat_folder_whose_file_became_a_directory_says_so(tmp_path, capsys):
    from tfvae import sources

    for index in range(3):
        write_png(str(tmp_path / f"{index}.png"))
    os.makedirs(tmp_path / "3.png")
    with pytest.raises(TfvaeError, match="holds 3 images directly and subfolders"):
        sources.scan_folder(str(tmp_path))


@pytest.mark.parametrize("name", ["tensorboard", "checkpoints"])
def test_a_file_where_a_run_keeps_a_folder_is_named(name, tmp_path):
    from tfvae import rundir

    (tmp_path / name).write_text("mine")
    with pytest.raises(TfvaeError, match=f"is a file where tfvae keeps the run's {name} folder"):
        rundir.prepare(str(tmp_path), Config(model="mlp"))
    assert not os.path.exists(tmp_path / "config.json")


def test_a_message_with_a_newline_in_a_path_stays_one_line(capsys):
    from tfvae.errors import exit_on_error

    def main(argv):
        raise TfvaeError("cannot read 'a\nb.png'")

    with pytest.raises(SystemExit):
        exit_on_error(main)([])
    assert capsys.readouterr().err == "error: cannot read 'a\\nb.png'\n"


def lonely_worker(tmp_path, timeout):
    """The command and environment of worker 0 of a two-worker cluster whose other worker
    never starts, waiting up to `timeout` seconds."""
    import json
    import socket
    import sys

    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("localhost", 0))
            ports.append(probe.getsockname()[1])
    env = dict(os.environ, TFVAE_CLUSTER_TIMEOUT=str(timeout), TF_CONFIG=json.dumps({
        "cluster": {"worker": [f"localhost:{port}" for port in ports]},
        "task": {"type": "worker", "index": 0}}))
    argv = [sys.executable, "-m", "tfvae.train", "--strategy", "multi-worker", "--model", "mlp",
            "--out", str(tmp_path / "run")]
    return argv, env


def test_a_worker_whose_peer_never_comes_ends_after_the_stated_timeout(tmp_path):
    import subprocess

    argv, env = lonely_worker(tmp_path, timeout=2)
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and "did not all connect within 2 s" in errors[0], result.stderr


def test_sigterm_ends_a_worker_waiting_for_its_peers_at_once_with_one_line(tmp_path):
    import signal
    import subprocess
    import time

    argv, env = lonely_worker(tmp_path, timeout=120)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        seen = []
        while not seen or not seen[-1].startswith("waiting up to 120 s"):
            seen.append(process.stderr.readline())
            assert seen[-1], "".join(seen)  # it ended before waiting
        for _ in range(600):  # until TensorFlow's preemption notifier has set its handler
            with open(f"/proc/{process.pid}/status") as status:
                caught = next(line for line in status if line.startswith("SigCgt:")).split()[1]
            if int(caught, 16) >> (signal.SIGTERM - 1) & 1:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stderr = "".join(seen) + process.communicate(timeout=30)[1]  # not the 120 s
    finally:
        process.kill()
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in stderr and len(errors) == 1, stderr
    assert errors[0].startswith("error: stopped by SIGTERM while waiting for the workers of "
                                "TF_CONFIG's cluster (localhost:"), stderr
    assert process.returncode == -signal.SIGKILL  # TensorFlow holds SIGTERM's handler


def test_a_streamed_folder_that_loses_its_files_during_training_is_one_line(
        tmp_path, monkeypatch, capsys):
    import shutil

    from tfvae import data, sources

    folder = tmp_path / "digits"
    for index in range(48):
        write_png(str(folder / str(index % 2) / f"{index}.png"), value=index * 5)
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 0)  # stream even these few files
    train_batches = data.train_batches

    def losing_the_folder(images, *args, **kwargs):
        assert isinstance(images, sources.ImageFiles)
        batches = train_batches(images, *args, **kwargs)
        shutil.move(str(folder), str(tmp_path / "moved"))  # after the scan, before training
        return batches

    monkeypatch.setattr(data, "train_batches", losing_the_folder)
    message = cli_error(train.main, ["--dataset", str(folder), "--model", "mlp",
                                     "--hidden-units", "8", "--latent-dim", "2", "--batch-size",
                                     "8", "--epochs", "1", "--out", str(tmp_path / "run")],
                        capsys)
    assert "a training image could not be read" in message
    # It names the file and what happened, not where in TensorFlow's graph it happened.
    assert str(folder) in message and "No such file or directory" in message, message
    assert "Graph execution" not in message
