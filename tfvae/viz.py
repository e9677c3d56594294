"""Pure functions from arrays to image files: grids, reconstructions, GIFs, manifold, scatter.

Images are float arrays in [0, 1] shaped [N, 28, 28] or [N, 28, 28, 1]. Every file is written
atomically, so a kill never leaves a torn PNG or GIF.
"""

import imageio.v2 as imageio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from tfvae.files import atomic_path


def to_uint8(images):
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images[..., 0]
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def image_grid(images, rows, padding=2):
    """Tiles images [N, H, W(, 1)] row by row into one uint8 array, with a white border."""
    tiles = to_uint8(images)
    count, height, width = tiles.shape
    cols = -(-count // rows)
    grid = np.full((rows * (height + padding) + padding, cols * (width + padding) + padding),
                   255, np.uint8)
    for i, tile in enumerate(tiles):
        top = padding + (i // cols) * (height + padding)
        left = padding + (i % cols) * (width + padding)
        grid[top: top + height, left: left + width] = tile
    return grid


def upscale(grid, factor):
    """Nearest-neighbour enlargement, so 28-pixel digits are visible in a viewer."""
    return np.kron(grid, np.ones((factor, factor), np.uint8)) if factor > 1 else grid


def save_png(path, array):
    with atomic_path(path) as tmp:
        imageio.imwrite(tmp, array, format="png")


def save_grid(path, images, rows, scale=2):
    """Writes images [N, 28, 28(, 1)] in [0, 1] as a PNG grid of `rows` rows."""
    save_png(path, upscale(image_grid(images, rows), scale))


def reconstruction_grid(originals, reconstructions):
    """One uint8 grid of originals (top row of each pair) above their reconstructions."""
    originals, reconstructions = to_uint8(originals), to_uint8(reconstructions)
    cols = min(len(originals), 8)
    rows = []
    for start in range(0, len(originals), cols):
        rows += [originals[start:start + cols], reconstructions[start:start + cols]]
    return image_grid(np.concatenate(rows) / 255.0, rows=len(rows))


def save_reconstructions(path, originals, reconstructions, scale=2):
    """Writes originals (top row of each pair) above their reconstructions."""
    save_png(path, upscale(reconstruction_grid(originals, reconstructions), scale))


def save_gif(path, frames, fps=4, loop=0, hold=None, hold_seconds=0.5):
    """Writes uint8 frames [T, H, W] as an animated GIF that loops forever by default.

    Args:
      hold: indices of frames to show for `hold_seconds` instead of 1 / fps (e.g. the digits a
        transition passes through, so the eye can rest on them).

    Pillow merges identical consecutive frames (adding up their durations), so the file may
    hold fewer frames than given while playing for the same total time.
    """
    durations = [1000.0 / fps] * len(frames)
    for i in hold or ():
        durations[i] = 1000.0 * hold_seconds
    if len(durations) == 1:  # Pillow rejects a list of durations for a one-frame GIF
        durations = durations[0]
    with atomic_path(path) as tmp:
        imageio.mimsave(tmp, list(frames), format="gif", duration=durations, loop=loop)


def animation_frames(images, scale=4, padding=2, levels=64):
    """uint8 frames [T, H, W] from images [T, 28, 28(, 1)] or rows of them [T, S, 28, 28(, 1)].

    Each frame is upscaled by `scale` so a 28-pixel digit is big enough to watch, and its grey
    values are rounded to `levels` evenly spaced ones: GIF's LZW coding shrinks with fewer
    distinct values (64 levels roughly halve a transition GIF), and on blurry decoded digits the
    difference from 256 cannot be seen.
    """
    images = np.asarray(images, np.float32)
    images = np.round(np.clip(images, 0.0, 1.0) * (levels - 1)) / (levels - 1)
    if images.ndim == 5 or (images.ndim == 4 and images.shape[-1] != 1):
        return np.stack([upscale(image_grid(row, rows=1, padding=padding), scale)
                         for row in images])
    return np.stack([upscale(tile, scale) for tile in to_uint8(images)])


def save_animation(path, images, scale=4, fps=12, hold_every=None):
    """Writes images [T, (S,) 28, 28(, 1)] in [0, 1] as a looping GIF of upscaled frames.

    Args:
      hold_every: hold every this many frames (from the first) for half a second.
    """
    frames = animation_frames(images, scale)
    hold = range(0, len(frames), hold_every) if hold_every else None
    save_gif(path, frames, fps=fps, hold=hold)


def save_manifold(path, images, grid, scale=2):
    """Writes grid * grid decoded images [grid * grid, 28, 28(, 1)] as one seamless canvas.

    No borders between tiles: the manifold is meant to read as one continuous surface.
    """
    save_png(path, upscale(image_grid(images, rows=grid, padding=0), scale))


def save_scatter(path, points, labels, class_names, axis_labels=("z1", "z2"), title=None):
    """Writes a scatter plot of points [N, 2] coloured by integer labels [N], with a legend.

    Points are drawn in a fixed shuffled order, so no class is painted over the others just
    because it comes last.
    """
    points, labels = np.asarray(points), np.asarray(labels)
    colours = [f"C{i}" for i in range(len(class_names))]  # matplotlib's tab10 cycle
    order = np.random.RandomState(0).permutation(len(points))
    figure = Figure(figsize=(7, 6), dpi=100)
    FigureCanvasAgg(figure)  # Agg draws without a display, in tests and on servers
    axes = figure.add_subplot()
    axes.scatter(points[order, 0], points[order, 1], s=3, alpha=0.6, linewidths=0,
                 c=[colours[int(k)] for k in labels[order]])
    handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=name)
               for colour, name in zip(colours, class_names)]
    axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    if title:
        axes.set_title(title)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        # No software/date metadata, so equal inputs give byte-identical files.
        figure.savefig(tmp, format="png", metadata={"Software": None})


def gif_from_pngs(path, png_paths, fps=4):
    """Animates PNG files of one size (e.g. the per-epoch frames) into a GIF."""
    save_gif(path, [imageio.imread(p) for p in png_paths], fps=fps)
