"""The VAE's math as pure functions: log-densities, KL, the ELBO and the IWAE bound.

Shapes: `x` is [batch, H, W, C]; latent tensors are [batch, latent] or, with several samples
per image, [batch, samples, latent]. Every function returns per-example values (summed over
pixels and latent dimensions); averaging over the batch is left to the caller.
"""

import math

import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def log_normal_pdf(sample, mean, logvar, raxis=-1):
    """log N(sample; mean, exp(logvar)), summed over `raxis` (TensorFlow's CVAE tutorial)."""
    logvar = tf.convert_to_tensor(logvar, dtype=sample.dtype)  # a Python 0.0 may meet float64
    return tf.reduce_sum(
        -0.5 * ((sample - mean) ** 2.0 * tf.exp(-logvar) + logvar + LOG_2PI), axis=raxis)


def log_mixture_normal_pdf(sample, means, logvars):
    """log (1/K) sum_k N(sample; means[k], exp(logvars[k])): an equal-weight Gaussian mixture.

    `sample` is [..., D], `means` and `logvars` [K, D]; returns [...]. The squared distances
    are expanded into matrix products, so no [..., K, D] tensor is formed (the VampPrior
    scores thousands of samples against hundreds of components at once). The expansion
    subtracts nearly equal terms when a variance is small, so it runs in float64: in float32
    it would be off by a nat at logvar -11.
    """
    depth = tf.shape(sample)[-1]
    flat = tf.cast(tf.reshape(sample, [-1, depth]), tf.float64)
    means, logvars = tf.cast(means, tf.float64), tf.cast(logvars, tf.float64)
    precision = tf.exp(-logvars)
    squared = (tf.matmul(flat**2, precision, transpose_b=True)
               - 2.0 * tf.matmul(flat, means * precision, transpose_b=True)
               + tf.reduce_sum(means**2 * precision, axis=-1))
    squared = tf.maximum(squared, 0.0)  # rounding may take a zero distance below zero
    log_densities = -0.5 * (squared + tf.reduce_sum(logvars + LOG_2PI, axis=-1))  # [N, K]
    components = tf.cast(tf.shape(means)[0], tf.float64)
    log_density = tf.reduce_logsumexp(log_densities, axis=-1) - tf.math.log(components)
    return tf.reshape(tf.cast(log_density, sample.dtype), tf.shape(sample)[:-1])


def precision_weighted(mean_a, logvar_a, mean_b, logvar_b):
    """The Gaussian proportional to N(mean_a, var_a) N(mean_b, var_b): (mean, logvar).

    Precisions add, and the mean is the precision-weighted average of the two means: how the
    ladder VAE merges the encoder's and the generative model's Gaussians for a layer.
    """
    # -log(exp(-logvar_a) + exp(-logvar_b)), stably and with broadcasting
    logvar = tf.minimum(logvar_a, logvar_b) - tf.math.log1p(tf.exp(-tf.abs(logvar_a - logvar_b)))
    mean = mean_a * tf.exp(logvar - logvar_a) + mean_b * tf.exp(logvar - logvar_b)
    return mean, logvar


def bernoulli_log_likelihood(x, logits):
    """log p(x|z) for binary pixels: minus the sigmoid cross-entropy, summed over pixels.

    `x` broadcasts against `logits`, so x [B, 1, 28, 28, 1] scores logits of S samples
    [B, S, 28, 28, 1]; the cross-entropy op itself insists on equal shapes.
    """
    x = tf.broadcast_to(x, tf.shape(logits))
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits)
    return -tf.reduce_sum(cross_entropy, axis=[-3, -2, -1])


def gaussian_log_likelihood(x, logits, log_scale):
    """log p(x|z) for intensities: N(x; sigmoid(logits), exp(log_scale)^2) summed over pixels.

    One learned scale for all pixels is the calibrated decoder of Rybkin et al. (2021); a fixed
    scale would weight reconstruction against KL arbitrarily.
    """
    mean = tf.sigmoid(logits)
    return tf.reduce_sum(log_normal_pdf(x, mean, 2.0 * log_scale, raxis=[]),
                         axis=[-3, -2, -1])


PIXEL_LEVELS = 256  # 8-bit intensities, scaled to x = value / 255
# The logistic's location ranges over [-margin, 1 + margin], not [0, 1]: a sigmoid reaches 0
# (the value of 82% of MNIST's pixels) only as its logit goes to -inf, where its gradient
# vanishes, and a sharp logistic located a little above 0 gives 0 little mass. Test ELBOs of
# the fully connected model on 8-bit MNIST after 3 epochs: margin 0: -1125 nats, 1: -876
# (per-pixel scales); with one learned scale per channel instead, margin 1: -947.
LOGISTIC_MARGIN = 1.0


# The smallest log-scale, as in PixelCNN++: below it a bin's probability is 1 to float32
# precision anyway, and the floor keeps the decoder's outputs from running off to -inf.
MIN_LOG_SCALE = -7.0


def logistic_location(logits):
    """The discretized logistic's location from decoder logits: a sigmoid, stretched."""
    return (1.0 + 2.0 * LOGISTIC_MARGIN) * tf.sigmoid(logits) - LOGISTIC_MARGIN


def logistic_parameters(outputs):
    """(location, log_scale), each [..., C], from a decoder's outputs [..., 2C]: the first C
    channels locate each pixel's logistic, the last C give its log-scale (at least
    MIN_LOG_SCALE)."""
    logits, log_scale = tf.split(outputs, 2, axis=-1)
    return logistic_location(logits), tf.maximum(log_scale, MIN_LOG_SCALE)


def _log1mexp(d, log_d):
    """log(1 - exp(-d)) for d > 0, given also as log_d: exact where exp(-d) rounds to 1."""
    small = d < 1e-4
    # Series for small d: 1 - e^-d = d (1 - d/2 + ...), off by O(d^2) relatively.
    series = log_d - 0.5 * d
    direct = tf.math.log(-tf.math.expm1(-tf.maximum(d, 1e-4)))  # max: no inf in the unused branch
    return tf.where(small, series, direct)


def discretized_logistic_log_likelihood(x, location, log_scale):
    """log p(x|z) for 8-bit pixels x = v / 255: each value's exact probability, summed.

    The discretized logistic of Kingma et al. (2016, IAF) and Salimans et al. (2017,
    PixelCNN++): P(x) = F(x + 1/510) - F(x - 1/510) with F the CDF of a logistic of location
    `location` and scale exp(log_scale), where the value 0 takes the whole lower tail (F(1/510))
    and 255 the whole upper tail (1 - F(1 - 1/510)); the 256 probabilities sum to 1.

    The difference is taken in log space through the identity
      sigmoid(a) - sigmoid(b) = sigmoid(a) * sigmoid(-b) * (1 - exp(b - a)),
    so log P = log_sigmoid(a) + log_sigmoid(-b) + log(1 - exp(-(a - b))) with a - b = (1/255)/s:
    no subtraction of nearly equal probabilities, hence no midpoint-density fallback where
    PixelCNN++ needs one; each factor is finite for any location and scale.

    Args:
      x: intensities in {0, 1/255, ..., 1}, [..., H, W, C]; broadcasts against `location`.
      location: the logistic's locations (see `logistic_location`), [..., H, W, C]; any real.
      log_scale: log of the logistic scale, broadcasting against `location` (per pixel, as
        `logistic_parameters` gives it, or e.g. per channel [C]).

    Returns:
      [...]: the log-probability summed over pixels and channels.
    """
    x = tf.convert_to_tensor(x, location.dtype)
    log_scale = tf.convert_to_tensor(log_scale, location.dtype)
    half_bin = 0.5 / (PIXEL_LEVELS - 1)
    inv_scale = tf.exp(-log_scale)
    upper = inv_scale * (x + half_bin - location)  # a
    lower = inv_scale * (x - half_bin - location)  # b
    log_width = math.log(2.0 * half_bin) - log_scale  # log (a - b)
    bottom, top = x < half_bin, x > 1.0 - half_bin
    log_cdf_upper = -tf.nn.softplus(-upper)  # log F(x + 1/510): all of P(0)
    log_sf_lower = -tf.nn.softplus(lower)  # log (1 - F(x - 1/510)): all of P(255)
    log_probability = (
        tf.where(top, 0.0, log_cdf_upper) + tf.where(bottom, 0.0, log_sf_lower)
        + tf.where(bottom | top, 0.0, _log1mexp(tf.exp(log_width), log_width)))
    return tf.reduce_sum(log_probability, axis=[-3, -2, -1])


def bits_per_dim(nats, image_shape):
    """A per-image negative log-likelihood in nats as bits per dimension: nats / (H W C ln 2)."""
    return nats / (math.prod(image_shape) * math.log(2.0))


def analytic_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) in closed form (Kingma & Welling 2014, App. B)."""
    return 0.5 * tf.reduce_sum(tf.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)


def elbo(log_px_z, z, mean, logvar, kl="analytic", kl_weight=1.0, log_pz=None, log_qz=None):
    """The ELBO log p(x|z) - KL(q(z|x) || p(z)) for one sample z per image.

    Args:
      log_px_z: [batch] log-likelihood of each image under its decoded z.
      z: [batch, latent], the sample from q(z|x).
      mean: [batch, latent], the mean of the encoder's Gaussian.
      logvar: [batch, latent], its log-variance.
      kl: 'mc' estimates the KL from the same z as log q(z|x) - log p(z), which makes the
        ELBO the tutorial's single-sample log p(x|z) + log p(z) - log q(z|x); 'analytic'
        uses the closed form.
      kl_weight: multiplies the KL in the objective (warm-up); the returned 'kl' is unweighted.
      log_pz: [batch] log p(z) under a learned prior, for kl='mc'; default: N(0, I).
      log_qz: [batch] log q(z|x) of a non-Gaussian posterior, for kl='mc'; default:
        N(z; mean, exp(logvar)).

    Returns:
      A dict of [batch] tensors: 'objective' (the weighted ELBO to maximise), 'elbo',
      'reconstruction' (log p(x|z)) and 'kl'.
    """
    if kl == "mc":
        if log_pz is None:
            log_pz = log_normal_pdf(z, 0.0, 0.0)
        if log_qz is None:
            log_qz = log_normal_pdf(z, mean, logvar)
        kl_term = log_qz - log_pz
    else:
        kl_term = analytic_kl(mean, logvar)
    return {
        "objective": log_px_z - kl_weight * kl_term,
        "elbo": log_px_z - kl_term,
        "reconstruction": log_px_z,
        "kl": kl_term,
    }


def log_prior_ratio(z, mean, logvar, log_pz=None, log_qz=None):
    """log p(z_i) - log q(z_i|x) for samples z [batch, k, latent]; returns [batch, k].

    Minus a single-sample estimate of the KL. `log_pz` [batch, k] is log p(z_i) under a
    learned prior; default: N(0, I). `log_qz` [batch, k] is log q(z_i|x) of a non-Gaussian
    posterior; default: N(z_i; mean, exp(logvar)).
    """
    if log_pz is None:
        log_pz = log_normal_pdf(z, 0.0, 0.0)
    if log_qz is None:
        log_qz = log_normal_pdf(z, mean[:, None, :], logvar[:, None, :])
    return log_pz - log_qz


def log_importance_weights(log_px_z, z, mean, logvar, log_pz=None):
    """log p(x, z_i) - log q(z_i|x) for samples z [batch, k, latent]; returns [batch, k]."""
    return log_px_z + log_prior_ratio(z, mean, logvar, log_pz)


def iwae_bound(log_weights):
    """L_k = log (1/k) sum_i w_i (Burda et al. 2015, eq. 8), from log-weights [batch, k]."""
    k = tf.cast(tf.shape(log_weights)[-1], log_weights.dtype)
    return tf.reduce_logsumexp(log_weights, axis=-1) - tf.math.log(k)


def iwae_bound_from_chunks(chunk_logsumexps, k):
    """L_k from the logsumexps of disjoint chunks of the k log-weights, [batch, chunks].

    Exact, not an approximation: logsumexp over a union of chunks is the logsumexp of the
    chunks' logsumexps. This lets k = 5000 samples be decoded a chunk at a time.
    """
    return tf.reduce_logsumexp(chunk_logsumexps, axis=-1) - math.log(k)


def kl_warmup_weight(step, warmup_steps):
    """The KL weight at 0-based `step`: rises linearly to 1 at step warmup_steps - 1, then stays.

    The linear warm-up of Sonderby et al. (2016). It starts at 1/warmup_steps rather than 0 so
    that no update ignores the KL entirely; warmup_steps = 0 means a constant weight of 1.
    """
    if not warmup_steps:
        return tf.ones_like(step)
    return tf.minimum(1.0, (step + 1.0) / warmup_steps)
