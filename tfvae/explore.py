"""An interactive latent explorer: one slider per latent dimension, decoded as you move them.

With ipywidgets (the dev extra) `make_explorer` returns a live widget; without it, a static grid
over the first two dimensions that a notebook displays as a PNG.
"""

import io

import imageio.v2 as imageio
import numpy as np

from tfvae import latent, viz

SCALE = 6  # a 28-pixel digit shown at 168 pixels


def decode_point(model, values, label=None):
    """The image [28, 28] in [0, 1] that the decoder makes of one latent point `values` [D]."""
    z = np.asarray(values, np.float32)[None, :]
    labels = None if not model.conditional else np.array([label or 0], np.int32)
    return model.decode(z, labels, apply_sigmoid=True).numpy()[0, ..., 0]


def png_bytes(image, scale=SCALE):
    """PNG bytes of an image [H, W] in [0, 1], enlarged `scale` times."""
    buffer = io.BytesIO()
    imageio.imwrite(buffer, viz.upscale(viz.to_uint8(image), scale), format="png")
    return buffer.getvalue()


class StaticExplorer:
    """The fallback without ipywidgets: decodes a grid over z1 and z2 (the other dimensions at
    0) and shows itself in a notebook as a PNG."""

    def __init__(self, model, label=None, grid=9):
        z = np.zeros([grid * grid, model.latent_dim], np.float32)
        z[:, :2] = latent.quantile_grid(grid)
        labels = np.full(len(z), label or 0, np.int32) if model.conditional else None
        self.images = model.decode(z, labels, apply_sigmoid=True).numpy()
        self.grid = grid

    def _repr_png_(self):
        return png_bytes(viz.image_grid(self.images, self.grid, padding=0) / 255.0, scale=2)


def make_explorer(model, dims=None, label=None, limit=3.0):
    """Sliders over z (each from -limit to limit) that decode live, or a StaticExplorer.

    Args:
      dims: how many latent dimensions get a slider (default: all, at most 10); the rest stay 0.
      label: the class a conditional model decodes (a slider of its own if None).
    """
    try:
        import ipywidgets
    except ImportError:
        return StaticExplorer(model, label)
    dims = min(model.latent_dim, 10) if dims is None else dims
    values = np.zeros(model.latent_dim, np.float32)
    sliders = [ipywidgets.FloatSlider(0.0, min=-limit, max=limit, step=0.05,
                                      description=f"z{i + 1}", continuous_update=True)
               for i in range(dims)]
    class_slider = None
    if model.conditional and label is None:
        class_slider = ipywidgets.IntSlider(0, min=0, max=model.num_classes - 1,
                                            description="label y")
    image = ipywidgets.Image(format="png")

    def update(_=None):
        for i, slider in enumerate(sliders):
            values[i] = slider.value
        chosen = class_slider.value if class_slider is not None else label
        image.value = png_bytes(decode_point(model, values, chosen))

    for slider in sliders + ([class_slider] if class_slider is not None else []):
        slider.observe(update, names="value")
    update()
    controls = sliders + ([class_slider] if class_slider is not None else [])
    box = ipywidgets.HBox([ipywidgets.VBox(controls), image])
    box.update = update  # the callback, for tests
    box.sliders = controls
    box.image = image
    return box
