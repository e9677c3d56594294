"""Likelihoods p(x|z) for intensities: the Gaussian and the 8-bit discretized logistic.

Each is a part (tfvae.models.parts) with Bernoulli's interface: `channels`, `log_prob`, `mean`,
`targets`. The autoregressive Bernoulli is in tfvae.models.autoregressive.
"""

import keras
import tensorflow as tf

from tfvae import losses
from tfvae.models.parts import Bernoulli, Part


@keras.saving.register_keras_serializable(package="tfvae")
class Gaussian(Part):
    """p(x|z) = N(x; sigmoid(f(z)), s^2) per pixel, one learned scale s for all pixels (the
    calibrated decoder of Rybkin et al. 2021): a density over intensities in [0, 1]."""

    name, targets = "gaussian", "intensities"

    def attach(self, model):
        self.log_scale = model.add_weight(shape=(), initializer="zeros", name="log_scale")
        return {"log_scale": self.log_scale}

    def channels(self, image_channels):
        return image_channels

    def log_prob(self, x, logits):
        return losses.gaussian_log_likelihood(x, logits, self.log_scale)

    def mean(self, logits):
        return tf.sigmoid(logits)


@keras.saving.register_keras_serializable(package="tfvae")
class DiscretizedLogistic(Part):
    """p(x|z) for 8-bit pixels: each of the 256 values' exact probability under a logistic
    whose location and scale the decoder gives per pixel and channel (Salimans et al. 2017)."""

    name, targets = "logistic", "8-bit"

    def channels(self, image_channels):
        return 2 * image_channels  # a location and a log-scale for each channel

    def log_prob(self, x, logits):
        return losses.discretized_logistic_log_likelihood(x, *losses.logistic_parameters(logits))

    def mean(self, logits):
        """The logistic's location clipped to [0, 1], nearly its mean once the scale is small."""
        location, _ = losses.logistic_parameters(logits)
        return tf.clip_by_value(location, 0.0, 1.0)


BY_NAME = {"bernoulli": Bernoulli, "gaussian": Gaussian, "logistic": DiscretizedLogistic}


def by_name(likelihood):
    """A likelihood part from its name ('bernoulli', 'gaussian', 'logistic'), or the part given."""
    if not isinstance(likelihood, str):
        return likelihood
    if likelihood not in BY_NAME:
        raise ValueError(f"likelihood must be one of {', '.join(BY_NAME)} or a likelihood part, "
                         f"not {likelihood!r}")
    return BY_NAME[likelihood]()
