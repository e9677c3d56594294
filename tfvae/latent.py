"""Pure latent-space math for the pictures: quantile grids, interpolation paths, PCA."""

import numpy as np
import tensorflow as tf


def quantile_grid(grid, low=0.05, high=0.95):
    """Latents [grid * grid, 2] over evenly spaced standard-normal quantiles, row by row.

    As the CVAE tutorial's `norm.ppf(np.linspace(0.05, 0.95, n))`: equal steps in probability
    rather than in z, so every tile covers the same prior mass and the tails are not wasted.
    The top row holds the largest z2, so the picture is oriented like the latent scatter plot
    (z1 to the right, z2 up).

    Args:
      grid: tiles per side.
      low: the lowest quantile (the left column and the bottom row).
      high: the highest quantile (the right column and the top row); symmetric to `low` by
        default, so the values are too.
    """
    values = tf.math.ndtri(tf.linspace(low, high, grid)).numpy().astype(np.float32)  # [grid]
    z1, z2 = np.meshgrid(values, values[::-1])  # each [grid, grid]
    return np.stack([z1.ravel(), z2.ravel()], axis=-1)


def lerp(a, b, t):
    """Points (1 - t) a + t b for t [T]: a, b [D] -> [T, D]."""
    t = np.asarray(t, np.float64)[:, None]
    return (1.0 - t) * a + t * b


def slerp(a, b, t):
    """Spherical interpolation (Shoemake 1985; White 2016 for generative models) -> [T, D].

    It keeps the norm of the path near that of its ends, where a straight line through a
    high-dimensional Gaussian passes through improbably short latents near the origin.
    Falls back to the straight line when a and b are (anti)parallel and the arc is undefined.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0.0:
        return lerp(a, b, t)
    theta = np.arccos(np.clip(np.dot(a, b) / norms, -1.0, 1.0))
    if np.sin(theta) < 1e-6:
        return lerp(a, b, t)
    t = np.asarray(t, np.float64)[:, None]
    return (np.sin((1.0 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)


INTERPOLATIONS = {"linear": lerp, "slerp": slerp}


def interpolation_path(points, steps, method="linear", loop=True):
    """A path through `points` [K, D] with `steps` frames from each point to the next.

    Frame k * steps is exactly points[k]; the end point of each segment is left to the next
    segment, so no frame repeats. With `loop`, the last segment returns to points[0] (without
    repeating it), so the animation cycles seamlessly.

    Returns:
      float32 [K * steps, D] with loop, else [(K - 1) * steps + 1, D].
    """
    points = np.asarray(points, np.float64)
    if loop:
        points = np.concatenate([points, points[:1]])
    t = np.arange(steps) / steps  # [steps], from 0 up to but excluding 1
    segments = [INTERPOLATIONS[method](a, b, t) for a, b in zip(points[:-1], points[1:])]
    if not loop:
        segments.append(points[-1:])
    return np.concatenate(segments).astype(np.float32)


def pca_project(points, dims=2):
    """Projects points [N, D] onto their top `dims` principal axes (numpy SVD).

    Returns:
      (projected [N, dims], explained [dims]: the fraction of variance along each axis).
      Each axis's sign is fixed so its largest loading is positive, so reruns agree.
    """
    points = np.asarray(points, np.float64)
    centred = points - points.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)  # axes [min(N, D), D]
    axes = axes[:dims]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * signs[:, None]
    variance = singular ** 2
    explained = variance[:dims] / max(variance.sum(), np.finfo(np.float64).tiny)
    return (centred @ axes.T).astype(np.float32), explained


def nearest_class(points, reference, reference_labels, k=15):
    """The majority label of each point's k nearest reference points: which class's region of
    the latent space a point [M, D] lies in, judged by encoded images [N, D] with labels [N].

    Returns int [M]; ties go to the smallest label.
    """
    points, reference = np.asarray(points, np.float64), np.asarray(reference, np.float64)
    reference_labels = np.asarray(reference_labels)
    k = min(k, len(reference))
    squared = ((points**2).sum(1)[:, None] - 2.0 * points @ reference.T
               + (reference**2).sum(1)[None, :])  # [M, N]
    nearest = np.argpartition(squared, k - 1, axis=1)[:, :k]
    votes = reference_labels[nearest]  # [M, k]
    classes = np.unique(reference_labels)
    counts = (votes[..., None] == classes).sum(axis=1)  # [M, classes]
    return classes[counts.argmax(axis=1)]
