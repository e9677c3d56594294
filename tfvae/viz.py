"""Pure functions from arrays to image files: grids, reconstructions, GIFs.

Images are float arrays in [0, 1] shaped [N, 28, 28] or [N, 28, 28, 1]. Every file is written
atomically, so a kill never leaves a torn PNG or GIF.
"""

import imageio.v2 as imageio
import numpy as np

from tfvae.rundir import atomic_path


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


def save_reconstructions(path, originals, reconstructions, scale=2):
    """Writes originals (top row of each pair) above their reconstructions."""
    originals, reconstructions = to_uint8(originals), to_uint8(reconstructions)
    cols = min(len(originals), 8)
    rows = []
    for start in range(0, len(originals), cols):
        rows += [originals[start:start + cols], reconstructions[start:start + cols]]
    save_grid(path, np.concatenate(rows) / 255.0, rows=len(rows), scale=scale)


def save_gif(path, frames, fps=4, loop=0):
    """Writes uint8 frames [T, H, W] as an animated GIF that loops forever by default."""
    with atomic_path(path) as tmp:
        imageio.mimsave(tmp, list(frames), format="gif", duration=1000.0 / fps, loop=loop)


def gif_from_pngs(path, png_paths, fps=4):
    """Animates PNG files of one size (e.g. the per-epoch frames) into a GIF."""
    save_gif(path, [imageio.imread(p) for p in png_paths], fps=fps)
