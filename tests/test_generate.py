"""python -m tfvae.generate: every flag, and bad input, on tiny untrained runs."""

import os

import imageio.v2 as imageio
import numpy as np
import pytest
from helpers import cli_error, make_run
from PIL import Image

from tfvae import figures, generate, train


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_every_flag_writes_its_file_and_the_same_seed_gives_the_same_files(run, tmp_path):
    run_dir, _ = run
    flags = [run_dir, "--samples", "9", "--reconstruct", "--manifold", "--grid", "5",
             "--transition", "--steps", "12", "--scatter"]
    first = generate.main([*flags, "--seed", "3", "--out", str(tmp_path / "a")])
    names = sorted(os.path.basename(p) for p in first)
    assert names == ["manifold.png", "reconstructions.png", "samples.png", "scatter.png",
                     "transition.gif"]
    again = generate.main([*flags, "--seed", "3", "--out", str(tmp_path / "b")])
    other = generate.main([*flags, "--seed", "4", "--out", str(tmp_path / "c")])
    for a, b, c in zip(first, again, other):
        assert read_bytes(a) == read_bytes(b), a
        if a.endswith("samples.png"):
            assert read_bytes(a) != read_bytes(c)
    manifold = imageio.imread(os.path.join(tmp_path, "a", "manifold.png"))
    assert manifold.shape[0] > 5 * 28 and manifold.shape[1] > 5 * 28  # tiles plus z axes
    gif = os.path.join(tmp_path, "a", "transition.gif")
    frames = np.stack(imageio.mimread(gif))
    assert frames.shape[2] == 112 and frames.shape[1] > 112  # 4x digits, a caption below
    # 10 digits, 12 frames each, the first of each held. Pillow may merge frames that an
    # untrained decoder leaves identical, but the playing time stays the same.
    with Image.open(gif) as opened:
        durations = []
        for i in range(opened.n_frames):
            opened.seek(i)
            durations.append(opened.info["duration"])
    assert sum(durations) == 10 * 500 + 10 * 11 * 1000 // figures.FPS
    assert 0 <= frames.min() and frames.max() <= 255
    assert os.path.getsize(gif) < 2 * 2**20
    # No temporary file left behind; the one hidden file lists what tfvae drew there.
    hidden = [n for n in os.listdir(tmp_path / "a") if n.startswith(".")]
    assert hidden == [generate.DRAWN_FILE]


def test_default_out_is_the_run_directory(run):
    run_dir, _ = run
    (path,) = generate.main([run_dir, "--samples", "4"])
    assert path == os.path.join(run_dir, "samples.png")


def test_transition_indices_and_slerp(run, tmp_path):
    run_dir, _ = run
    generate.main([run_dir, "--transition", "--indices", "3", "2", "1", "18",
                   "--interpolation", "slerp", "--out", str(tmp_path)])
    assert os.path.exists(tmp_path / "transition.gif")


def test_conditional_run_writes_digit_samples_and_a_class_morph(conditional_run, tmp_path):
    run_dir, model = conditional_run
    paths = generate.main([run_dir, "--digit", "7", "--samples", "16", "--transition",
                           "--steps", "12", "--manifold", "--grid", "4", "--out", str(tmp_path)])
    assert sorted(os.path.basename(p) for p in paths) == [
        "digit_7.png", "manifold.png", "samples.png", "transition.gif", "transition_class.gif"]
    morph = np.stack(imageio.mimread(str(tmp_path / "transition_class.gif")))
    # four styles side by side at 4x, a caption strip below
    assert morph.shape[2] == 4 * (2 + figures.MORPH_STYLES * 30) and morph.shape[1] > 4 * 32
    assert os.path.getsize(tmp_path / "transition_class.gif") < 2 * 2**20


def test_digit_on_an_unconditional_run_fails_cleanly(run, capsys):
    run_dir, _ = run
    err = cli_error(generate.main, [run_dir, "--digit", "3"], capsys)
    assert err.startswith("error: --digit needs a label-conditional run")
    assert err.count("\n") == 1


def test_manifold_needs_a_2d_latent(tmp_path, capsys):
    run_dir, _ = make_run(str(tmp_path), latent_dim=3)
    err = cli_error(generate.main, [run_dir, "--manifold"], capsys)
    assert "needs a 2-D latent" in err


@pytest.mark.parametrize("flags, message", [
    ([], "nothing to write"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--transition", "--indices", "5"], "at least two test images"),
    (["--transition", "--indices", "1", "30"], "outside the run's test set of 30 images"),
])
def test_bad_flags_fail_with_one_line(run, capsys, flags, message):
    run_dir, _ = run
    err = cli_error(generate.main, [run_dir, *flags], capsys)
    assert message in err and err.count("\n") == 1


def test_training_writes_the_run_figures_and_generate_runs_every_flag(tmp_path, mnist_dir):
    workdir = str(tmp_path / "run")
    train.main(["--data-dir", mnist_dir, "--out", workdir, "--latent-dim", "2", "--epochs", "1",
                "--train-size", "512", "--test-size", "200", "--batch-size", "64",
                "--conditional"])
    for name in ("training.gif", "manifold.png", "transition.gif", "transition_class.gif",
                 "scatter.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    out = str(tmp_path / "pictures")
    paths = generate.main([workdir, "--samples", "20", "--digit", "4", "--reconstruct",
                           "--manifold", "--transition", "--scatter", "--seed", "1",
                           "--out", out])
    assert len(paths) == 7 and all(os.path.isfile(p) for p in paths)
    assert max(os.path.getsize(p) for p in paths if p.endswith(".gif")) < 2 * 2**20


def test_unwritable_out_is_a_clear_error(run, tmp_path, capsys):
    run_dir, _ = run
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = cli_error(generate.main, [run_dir, "--samples", "4", "--out", str(blocker / "pictures")],
                    capsys)
    assert "cannot write to output directory" in err and err.count("\n") == 1
