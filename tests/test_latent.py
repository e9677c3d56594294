"""tfvae.latent: the quantile grid, interpolation paths and PCA, checked in closed form."""

import numpy as np
import pytest

from tfvae import latent


def test_quantile_grid_is_symmetric_standard_normal_quantiles():
    z = latent.quantile_grid(7)
    assert z.shape == (49, 2) and z.dtype == np.float32
    values = np.unique(z[:, 0])  # sorted
    np.testing.assert_allclose(values + values[::-1], 0.0, atol=1e-5)
    np.testing.assert_allclose(values[[0, 3, 6]], [-1.6448536, 0.0, 1.6448536], atol=1e-5)
    np.testing.assert_array_equal(np.unique(z[:, 1]), values)
    grid = z.reshape(7, 7, 2)
    assert (grid[0, :, 1] == values[-1]).all()  # top row: largest z2, as in the scatter
    np.testing.assert_array_equal(grid[0, :, 0], values)  # z1 grows to the right


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_path_passes_through_every_point_and_loops(method):
    points = np.array([[1.0, 0.0, 0.5], [0.0, 2.0, 0.0], [-1.0, -1.0, 1.0]])
    path = latent.interpolation_path(points, steps=12, method=method)
    assert path.shape == (36, 3)
    np.testing.assert_allclose(path[::12], points, atol=1e-6)
    # Looping: the step after the last frame would be the first point again.
    step = np.linalg.norm(np.diff(np.concatenate([path, path[:1]]), axis=0), axis=1)
    assert step.max() < 0.5


def test_open_path_ends_on_the_last_point():
    path = latent.interpolation_path(np.eye(3), steps=4, loop=False)
    assert path.shape == (9, 3)
    np.testing.assert_allclose(path[-1], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(path[2], [0.5, 0.5, 0.0])  # linear: the midpoint


def test_slerp_keeps_the_norm_and_falls_back_when_antiparallel():
    t = np.linspace(0, 1, 9)
    arc = latent.slerp(np.array([3.0, 0.0]), np.array([0.0, 3.0]), t)
    np.testing.assert_allclose(np.linalg.norm(arc, axis=1), 3.0)
    line = latent.slerp(np.array([1.0, 0.0]), np.array([-1.0, 0.0]), t)
    np.testing.assert_allclose(line, latent.lerp(np.array([1.0, 0.0]), np.array([-1.0, 0.0]), t))


def test_pca_recovers_the_main_axis_of_3d_data():
    rng = np.random.default_rng(0)
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    along = rng.normal(scale=10.0, size=2000)
    points = along[:, None] * axis + rng.normal(scale=0.5, size=(2000, 3)) + [5.0, -3.0, 1.0]
    projected, explained = latent.pca_project(points)
    assert projected.shape == (2000, 2)
    assert abs(np.corrcoef(projected[:, 0], along)[0, 1]) > 0.99
    assert explained[0] > 0.95 and explained[1] < 0.05
    np.testing.assert_allclose(projected.mean(axis=0), 0.0, atol=1e-4)
    # The sign convention makes the largest loading positive, so the axis is +axis here.
    assert np.corrcoef(projected[:, 0], along)[0, 1] > 0


def test_nearest_class_is_the_majority_of_the_nearest_reference_points():
    reference = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0]])
    labels = np.array([3, 3, 7, 8, 8])
    np.testing.assert_array_equal(
        latent.nearest_class([[0.05, 0.0], [4.9, 5.1]], reference, labels, k=2), [3, 8])
    np.testing.assert_array_equal(latent.nearest_class([[0.0, 0.0]], reference, labels, k=3), [3])
