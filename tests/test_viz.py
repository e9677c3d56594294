"""tfvae.viz: arrays to PNG and GIF files, checked by reading the files back."""

import os

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from tfvae import viz


def ramp(frames, size=28):
    """Distinct images [frames, 28, 28, 1]: frame t is uniformly t / (frames - 1) bright."""
    levels = np.linspace(0.0, 1.0, frames, dtype=np.float32)
    return np.ones([frames, size, size, 1], np.float32) * levels[:, None, None, None]


def gif_durations(path):
    with Image.open(path) as gif:
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
        return durations


def test_animation_frames_are_upscaled_uint8():
    frames = viz.animation_frames(ramp(5), scale=4)
    assert frames.shape == (5, 112, 112) and frames.dtype == np.uint8
    assert frames[0].max() == 0 and frames[-1].min() == 255
    rows = viz.animation_frames(np.stack([ramp(5)] * 3, axis=1), scale=4)  # [5, 3, 28, 28, 1]
    assert rows.shape == (5, 4 * (2 + 28 + 2), 4 * (2 + 3 * 30))


def test_animation_frames_clip_out_of_range_values():
    frames = viz.animation_frames(np.array([[[-0.5] * 28] * 28, [[1.5] * 28] * 28]), scale=1)
    assert frames[0].max() == 0 and frames[1].min() == 255


def test_save_animation_frame_count_size_values_and_holds(tmp_path):
    path = str(tmp_path / "walk.gif")
    viz.save_animation(path, ramp(24), scale=4, fps=10, hold_every=12)
    frames = np.stack(imageio.mimread(path))
    assert frames.shape[:3] == (24, 112, 112)
    assert frames.min() == 0 and frames.max() == 255
    np.testing.assert_array_equal(frames[-1, ..., 0], 255)
    # The frames the walk passes through are held; the rest play at the frame rate.
    durations = gif_durations(path)
    assert durations[0] == durations[12] == 500
    assert set(durations[1:12] + durations[13:]) == {100}
    assert os.path.getsize(path) < 2 * 2**20


def test_save_manifold_tiles_without_borders(tmp_path):
    images = ramp(9)
    path = str(tmp_path / "manifold.png")
    viz.save_manifold(path, images, grid=3, scale=2)
    canvas = imageio.imread(path)
    assert canvas.shape == (3 * 28 * 2, 3 * 28 * 2)
    # Row by row: tile 5 is the middle row's last column.
    tile = canvas[56 * 1:56 * 2, 56 * 2:56 * 3]
    np.testing.assert_array_equal(tile, viz.to_uint8(images[5:6])[0, 0, 0])


def test_save_scatter_is_a_png_and_reproducible(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 2))
    labels = rng.integers(0, 10, 300)
    names = [str(d) for d in range(10)]
    first, second = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    viz.save_scatter(first, points, labels, names, title="test")
    viz.save_scatter(second, points, labels, names, title="test")
    with open(first, "rb") as a, open(second, "rb") as b:
        assert a.read() == b.read()
    picture = imageio.imread(first)
    assert picture.shape[:2] == (600, 700) and picture.dtype == np.uint8
    assert len(np.unique(picture.reshape(-1, picture.shape[-1]), axis=0)) > 10  # colours


def test_writers_leave_no_temporary_files(tmp_path):
    viz.save_grid(str(tmp_path / "grid.png"), ramp(4), rows=2)
    viz.save_animation(str(tmp_path / "walk.gif"), ramp(3))
    viz.save_manifold(str(tmp_path / "manifold.png"), ramp(4), grid=2)
    viz.save_scatter(str(tmp_path / "scatter.png"), np.zeros([3, 2]), [0, 1, 2], "abc")
    assert sorted(os.listdir(tmp_path)) == ["grid.png", "manifold.png", "scatter.png",
                                            "walk.gif"]


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    with pytest.raises(Exception):
        viz.save_gif(str(tmp_path / "broken.gif"), [np.zeros([4, 4]), "not an image"])
    assert os.listdir(tmp_path) == []


def test_labelled_figures_and_captioned_animations(tmp_path):
    images = np.random.default_rng(0).uniform(size=(6, 28, 28)).astype(np.float32)
    viz.save_labelled_grid(str(tmp_path / "grid.png"), images, rows=2, row_labels=["a", "b"],
                           col_labels=["1", "2", "3"], row_title="y", col_title="z")
    assert imageio.imread(tmp_path / "grid.png").shape[0] > 2 * 30
    viz.save_manifold(str(tmp_path / "m.png"), np.tile(images[:1], (4, 1, 1)), grid=2,
                      axis_values=([-1.0, 1.0], [1.0, -1.0]))
    assert imageio.imread(tmp_path / "m.png").shape[1] > 2 * 56
    frames = viz.caption_frames(viz.animation_frames(images[:2]), ["0 to 1", "a much longer one"])
    assert frames.shape[0] == 2 and frames.shape[1] > 112 and frames.shape[2] >= 112
    assert frames[0, 120:].min() == 0  # the caption is drawn in black under the digit


def tinted(count, height=20, width=32):
    """Colour images [count, height, width, 3]: image i is a pure red, green or blue field whose
    brightness rises with i, so every tile and channel can be checked after a round trip."""
    images = np.zeros([count, height, width, 3], np.float32)
    for i in range(count):
        images[i, ..., i % 3] = (i + 1) / count
    return images


def test_colour_non_square_grid_keeps_each_tile_and_channel(tmp_path):
    images = tinted(6)
    grid = viz.image_grid(images, rows=2, padding=2)
    assert grid.shape == (2 + 2 * 22, 2 + 3 * 34, 3) and grid.dtype == np.uint8
    for i, image in enumerate(images):
        top, left = 2 + (i // 3) * 22, 2 + (i % 3) * 34
        tile = grid[top:top + 20, left:left + 32]
        np.testing.assert_array_equal(tile, viz.to_uint8(image[None])[0])
    path = str(tmp_path / "grid.png")
    viz.save_grid(path, images, rows=2, scale=3)
    np.testing.assert_array_equal(imageio.imread(path), viz.upscale(grid, 3))


def test_colour_animation_with_captions_stays_in_colour(tmp_path):
    frames = viz.caption_frames(viz.animation_frames(tinted(3), scale=2), ["red", "green", "b"])
    assert frames.shape[0] == 3 and frames.shape[-1] == 3 and frames.shape[1] > 40
    assert frames[1, 5, 5, 1] > 100 and frames[1, 5, 5, 0] == frames[1, 5, 5, 2] == 0
    path = str(tmp_path / "walk.gif")
    viz.save_animation(path, tinted(6), captions=[str(i) for i in range(6)])
    with Image.open(path) as gif:
        gif.seek(5)
        centre = np.asarray(gif.convert("RGB"))[10, 10]
    assert centre[2] > 200 and centre[0] < 40 and centre[1] < 40  # frame 5 is bright blue


def test_training_gif_of_colour_pngs_keeps_colour_and_of_grey_ones_stays_grey(tmp_path):
    colour, grey = str(tmp_path / "c.png"), str(tmp_path / "g.png")
    viz.save_grid(colour, tinted(3), rows=1)
    viz.save_grid(grey, ramp(3), rows=1)
    viz.gif_from_pngs(str(tmp_path / "c.gif"), [colour, colour], captions=["1", "2"])
    viz.gif_from_pngs(str(tmp_path / "g.gif"), [grey, grey])
    with Image.open(tmp_path / "c.gif") as gif:
        rgb = np.asarray(gif.convert("RGB"))
    assert (rgb[..., 0] != rgb[..., 1]).any()
    with Image.open(tmp_path / "g.gif") as gif:
        rgb = np.asarray(gif.convert("RGB"))
    assert (rgb[..., 0] == rgb[..., 1]).all()


def test_colour_manifold_labelled_grid_and_unlabelled_scatter_are_written(tmp_path):
    images = tinted(9, height=12, width=24)
    viz.save_manifold(str(tmp_path / "m.png"), images, grid=3,
                      axis_values=(np.arange(3.0), np.arange(3.0)))
    viz.save_labelled_grid(str(tmp_path / "l.png"), images, rows=3, row_labels=["a", "b", "c"])
    viz.save_scatter(str(tmp_path / "s.png"), np.random.RandomState(0).randn(50, 2),
                     np.zeros(50, int), None)
    viz.save_scatter(str(tmp_path / "s30.png"), np.random.RandomState(0).randn(60, 2),
                     np.arange(60) % 30, [f"class {i}" for i in range(30)])
    manifold = imageio.imread(tmp_path / "m.png")[..., :3]
    assert (manifold[..., 0] != manifold[..., 2]).any()  # the tiles kept their colour
    assert manifold.shape[1] > manifold.shape[0]  # 24-pixel-wide tiles make a wide figure
    assert len(set(map(str, viz.class_colours(30)))) == 30
    for name in ("l.png", "s.png", "s30.png"):
        assert imageio.imread(tmp_path / name).ndim == 3
