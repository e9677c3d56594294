"""Pure functions from arrays to image files: grids, reconstructions, GIFs, manifold, scatter.

Images are float arrays in [0, 1] shaped [N, H, W] or [N, H, W, 1] (grey) or [N, H, W, 3]
(colour), of any height and width. Every file is written atomically, so a kill never leaves a
torn PNG or GIF.
"""

import imageio.v2 as imageio
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image, ImageDraw, ImageFont

from tfvae.files import atomic_path

MAX_PICTURE_SIDE = 4096  # pixels: PIL reads back up to 89M-pixel pictures without a warning
# A GIF holds all its frames (a transition's 128, training.gif's one per epoch), so they are
# drawn smaller: at 4000 pixels, 1000x1000 images' transition.gif was 142 MB and took 12 GB.
MAX_ANIMATION_SIDE = 1024
GRID_SCALE = 3  # sample and reconstruction grids: a 28-pixel digit drawn 84 pixels wide


def to_uint8(images):
    """uint8 images: [N, H, W] from grey [N, H, W(, 1)], [N, H, W, 3] from colour."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def image_grid(images, rows, padding=2):
    """Tiles images [N, H, W(, 1 or 3)] row by row into one uint8 array, with a white border.

    Returns [height, width] for grey images, [height, width, 3] for colour ones.
    """
    tiles = to_uint8(images)
    count, height, width = tiles.shape[:3]
    cols = -(-count // rows)
    grid = np.full((rows * (height + padding) + padding, cols * (width + padding) + padding,
                    *tiles.shape[3:]), 255, np.uint8)
    for i, tile in enumerate(tiles):
        top = padding + (i // cols) * (height + padding)
        left = padding + (i % cols) * (width + padding)
        grid[top: top + height, left: left + width] = tile
    return grid


def upscale(grid, factor, max_side=MAX_PICTURE_SIDE):
    """Nearest-neighbour enlargement of [H, W(, 3)], so 28-pixel digits are visible.

    The result is at most `max_side` pixels a side: a smaller factor, or below 1 a
    nearest-neighbour reduction, keeps grids of large images drawable (PIL refuses to read
    back pictures of over 179M pixels).
    """
    factor = min(factor, max_side // max(grid.shape[:2]))
    if factor < 1:
        step = -(-max(grid.shape[:2]) // max_side)
        return grid[::step, ::step]
    return grid.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else grid


def save_png(path, array):
    with atomic_path(path) as tmp:
        imageio.imwrite(tmp, array, format="png")


def save_grid(path, images, rows, scale=GRID_SCALE):
    """Writes images [N, H, W(, C)] in [0, 1] as a PNG grid of `rows` rows."""
    save_png(path, upscale(image_grid(images, rows), scale))


def reconstruction_grid(originals, reconstructions):
    """One uint8 grid of originals (top row of each pair) above their reconstructions."""
    originals, reconstructions = to_uint8(originals), to_uint8(reconstructions)
    cols = min(len(originals), 8)
    rows = []
    for start in range(0, len(originals), cols):
        rows += [originals[start:start + cols], reconstructions[start:start + cols]]
    return image_grid(np.concatenate(rows) / 255.0, rows=len(rows))


def save_reconstructions(path, originals, reconstructions, scale=GRID_SCALE):
    """Writes originals (top row of each pair) above their reconstructions."""
    save_png(path, upscale(reconstruction_grid(originals, reconstructions), scale))


def save_gif(path, frames, fps=4, loop=0, hold=None, hold_seconds=0.5):
    """Writes uint8 frames [T, H, W(, 3)] as an animated GIF that loops forever by default.

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
    """uint8 frames [T, H', W'(, 3)] from images [T, H, W(, C)] or rows of them [T, S, H, W(, C)].

    Each frame is upscaled by `scale` so a 28-pixel digit is big enough to watch, and its
    values are rounded to `levels` evenly spaced ones: GIF's LZW coding shrinks with fewer
    distinct values (64 levels roughly halve a transition GIF), and on blurry decoded digits the
    difference from 256 cannot be seen.
    """
    images = np.asarray(images, np.float32)
    images = np.round(np.clip(images, 0.0, 1.0) * (levels - 1)) / (levels - 1)
    if images.ndim == 5 or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        return np.stack([upscale(image_grid(row, rows=1, padding=padding), scale,
                                 MAX_ANIMATION_SIDE) for row in images])
    return np.stack([upscale(tile, scale, MAX_ANIMATION_SIDE) for tile in to_uint8(images)])


def caption_frames(frames, captions, font_size=16):
    """Adds a white strip with one caption (it may hold newlines) under each uint8 frame
    [H, W(, 3)].

    Returns uint8 frames [T, H + strip, W'(, 3)], W' widened if a caption needs more room.
    """
    font = ImageFont.load_default(size=font_size)
    lines = max(str(c).count("\n") + 1 for c in captions)
    strip = lines * (font_size + 3) + 6
    widths = [int(font.getlength(line)) + 8 for c in captions for line in str(c).split("\n")]
    width = max(frames[0].shape[1], *widths)
    out = []
    for frame, caption in zip(frames, captions):
        canvas = Image.new("L" if frame.ndim == 2 else "RGB", (width, frame.shape[0] + strip),
                           "white")
        canvas.paste(Image.fromarray(frame), ((width - frame.shape[1]) // 2, 0))
        ImageDraw.Draw(canvas).multiline_text(
            (width // 2, frame.shape[0] + 3), str(caption), fill=0, font=font, anchor="ma",
            align="center", spacing=3)
        out.append(np.asarray(canvas))
    return np.stack(out)


def save_animation(path, images, scale=4, fps=12, hold_every=None, captions=None):
    """Writes images [T, (S,) H, W(, C)] in [0, 1] as a looping GIF of upscaled frames.

    Args:
      hold_every: hold every this many frames (from the first) for half a second.
      captions: optional text [T] shown under each frame (e.g. the digits it moves between).
    """
    frames = animation_frames(images, scale)
    if captions is not None:
        frames = caption_frames(frames, captions)
    hold = range(0, len(frames), hold_every) if hold_every else None
    save_gif(path, frames, fps=fps, hold=hold)


def save_manifold(path, images, grid, scale=2, axis_values=None, axis_labels=("z1", "z2"),
                  title=None):
    """Writes grid * grid decoded images [grid * grid, H, W(, C)] as one seamless canvas.

    No borders between tiles: the manifold is meant to read as one continuous surface.

    Args:
      axis_values: optional (x values [grid] left to right, y values [grid] top to bottom), the
        latent coordinates of the tiles' centres, written on the axes (every other one on
        large grids).
    """
    canvas = image_grid(images, rows=grid, padding=0)
    if axis_values is None:
        save_png(path, upscale(canvas, scale))
        return
    every = 1 if grid <= 10 else 2
    x_values, y_values = (np.asarray(v, np.float64) for v in axis_values)
    height, width = canvas.shape[0] / grid, canvas.shape[1] / grid
    inches = min(9.0, 2.0 + canvas.shape[0] / 60)
    figure = Figure(figsize=(inches * width / height + 0.6, inches), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(canvas, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    x_centres, y_centres = (np.arange(grid) + 0.5) * width, (np.arange(grid) + 0.5) * height
    axes.set_xticks(x_centres[::every], [f"{v:.2f}" for v in x_values[::every]], rotation=90)
    axes.set_yticks(y_centres[::every], [f"{v:.2f}" for v in y_values[::every]])
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    if title:
        axes.set_title(title)
    _save_figure(path, figure)


def save_labelled_grid(path, images, rows, row_labels=None, col_labels=None, title=None,
                       row_title=None, col_title=None):
    """Writes images [N, H, W(, C)] as a grid of `rows` rows with a label on each row/column.

    Args:
      row_labels: text beside each row (e.g. the digit a conditional model was asked for).
      col_labels: text above each column (e.g. the style's number).
      row_title: what the row labels are.
      col_title: what the column labels are.
    """
    canvas = image_grid(images, rows)
    cols = -(-len(images) // rows)
    row_step = (canvas.shape[0] - 2) / rows  # tile plus padding
    col_step = (canvas.shape[1] - 2) / cols
    inches = 0.9  # per tile: a 28-pixel digit at about 3x
    figure = Figure(figsize=(inches * cols * col_step / row_step, inches * rows), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(canvas, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    axes.tick_params(length=0)
    col_labels = [str(c) for c in (col_labels or [""] * cols)]
    long_labels = max(map(len, col_labels)) > 4  # would run into each other: slant them
    axes.set_yticks((np.arange(rows) + 0.5) * row_step + 1, list(row_labels or [""] * rows))
    axes.set_xticks((np.arange(cols) + 0.5) * col_step + 1, col_labels,
                    rotation=40 if long_labels else 0, ha="left" if long_labels else "center")
    axes.xaxis.tick_top()
    axes.xaxis.set_label_position("top")
    for spine in axes.spines.values():
        spine.set_visible(False)
    if row_title:
        axes.set_ylabel(row_title)
    if col_title:
        axes.set_xlabel(col_title)
    if title:
        axes.text(0.5, -0.02, title, transform=axes.transAxes, ha="center", va="top")
    _save_figure(path, figure, tight_layout=False, crop=True)


def _save_figure(path, figure, tight_layout=True, crop=False):
    """Writes a figure; `crop` trims the canvas to what is drawn, labels included."""
    if tight_layout:
        figure.tight_layout()
    crop_args = {"bbox_inches": "tight", "pad_inches": 0.1} if crop else {}
    with atomic_path(path) as tmp:
        # No software/date metadata, so equal inputs give byte-identical files.
        figure.savefig(tmp, format="png", metadata={"Software": None}, **crop_args)


def save_scatter(path, points, labels, class_names, axis_labels=("z1", "z2"), title=None):
    """Writes a scatter plot of points [N, 2] coloured by integer labels [N], with a legend;
    `class_names` None draws unlabelled points in one colour, without a legend.

    Points are drawn in a fixed shuffled order, so no class is painted over the others just
    because it comes last.
    """
    points, labels = np.asarray(points), np.asarray(labels)
    colours = class_colours(len(class_names) if class_names else 1)
    order = np.random.RandomState(0).permutation(len(points))
    figure = Figure(figsize=(7, 6), dpi=100)
    FigureCanvasAgg(figure)  # Agg draws without a display, in tests and on servers
    axes = figure.add_subplot()
    axes.scatter(points[order, 0], points[order, 1], s=3, alpha=0.6, linewidths=0,
                 c=[colours[int(k)] for k in labels[order]])
    if class_names:
        handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=name)
                   for colour, name in zip(colours, class_names)]
        axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                    frameon=False, ncol=1 + len(class_names) // 25)
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    if title:
        axes.set_title(title)
    _save_figure(path, figure)


def class_colours(num_classes):
    """One distinct colour per class: matplotlib's tab10 or tab20, else evenly spaced hues."""
    if num_classes <= 10:
        return [f"C{i}" for i in range(num_classes)]
    if num_classes <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(num_classes)]
    return [matplotlib.colormaps["hsv"](i / num_classes) for i in range(num_classes)]


def gif_from_pngs(path, png_paths, fps=4, captions=None):
    """Animates PNG files of one size (e.g. the per-epoch frames) into a GIF, its frames at
    most MAX_ANIMATION_SIDE pixels a side.

    Args:
      captions: optional text under each frame, e.g. its epoch.
    """
    frames = [upscale(_frame(imageio.imread(p)), 1, MAX_ANIMATION_SIDE) for p in png_paths]
    if captions is not None:
        frames = caption_frames(frames, captions, font_size=14)
    save_gif(path, frames, fps=fps)


def _frame(image):
    """A GIF frame from a PNG: grey [H, W] when it has no colour, else RGB [H, W, 3]."""
    if image.ndim == 2:
        return image
    rgb = image[..., :3]
    return rgb[..., 0] if (rgb == rgb[..., :1]).all() else rgb
