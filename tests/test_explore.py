"""The latent explorer decodes the sliders' point, live, and falls back to a static grid."""

import builtins

import imageio.v2 as imageio
import keras
import numpy as np
import pytest

from tfvae import explore
from tfvae.models import MlpVAE


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = MlpVAE(latent_dim=3, hidden_units=(16,))
    model.build((None, 28, 28, 1))
    return model


def test_moving_a_slider_decodes_the_new_point(model):
    explorer = explore.make_explorer(model)
    assert [s.description for s in explorer.sliders] == ["z1", "z2", "z3"]
    before = explorer.image.value
    np.testing.assert_array_equal(imageio.imread(before),
                                  imageio.imread(explore.png_bytes(
                                      explore.decode_point(model, [0, 0, 0]))))
    explorer.sliders[1].value = 2.0  # the observer runs the callback
    after = imageio.imread(explorer.image.value)
    assert after.shape == (28 * explore.SCALE, 28 * explore.SCALE)
    expected = imageio.imread(explore.png_bytes(explore.decode_point(model, [0, 2.0, 0])))
    np.testing.assert_array_equal(after, expected)
    assert explorer.image.value != before


def test_without_ipywidgets_a_static_grid_is_shown(model, monkeypatch):
    real_import = builtins.__import__

    def no_ipywidgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ipywidgets)
    explorer = explore.make_explorer(model)
    assert isinstance(explorer, explore.StaticExplorer)
    picture = imageio.imread(explorer._repr_png_())
    assert picture.shape == (2 * 9 * 28, 2 * 9 * 28)
