"""Two stochastic layers, z = (z1, z2): their prior and posterior together.

p(z2) p(z1|z2) p(x|z1, z2), with any one-layer prior on z2 (N(0, I) or the VampPrior) and
p(z1|z2) a Gaussian from the `top_down` network; q(z2|x) q(z1|x, z2), where q(z1|x, z2) merges
the encoder's Gaussian for z1 with p(z1|z2) by precision weighting, as the ladder VAE does
(Sonderby et al. 2016). z2 is z's last `top_units` units, and the encoder's (mean, logvar) are
its bottom-up Gaussians for both layers.
"""

import keras
import tensorflow as tf

from tfvae import losses
from tfvae.errors import TfvaeError
from tfvae.models.parts import (
    GaussianPosterior,
    Part,
    StandardNormal,
    reparameterize,
    with_sample_axis,
)

TOP_DOWN_UNITS = 256  # the hidden layers of p(z1|z2)


@keras.saving.register_keras_serializable(package="tfvae")
class TwoLayerPrior(Part):
    """p(z2) p(z1|z2).

    Args:
      top_units: M, the size of z2, fewer than the model's latent_dim.
      top: the prior on z2 (default N(0, I)).
    """

    def __init__(self, top_units, top=None):
        self.top_units = top_units
        self.top = top or StandardNormal()

    def attach(self, model):
        latent_dim = model.latent_dim
        if not 0 < self.top_units < latent_dim:
            raise TfvaeError(f"the top layer's {self.top_units} units must be fewer than "
                             f"z's {latent_dim}: give --top-latent-dim below --latent-dim")
        self.latent_dim, self.lower_units = latent_dim, latent_dim - self.top_units
        self.top.units = slice(self.lower_units, None)
        weights = self.top.attach(model)
        # p(z1|z2): z2 -> the mean and log-variance of z1
        self.top_down = keras.Sequential(
            [keras.layers.Dense(TOP_DOWN_UNITS, activation="relu", dtype=model.hidden_dtype)
             for _ in range(2)] + [keras.layers.Dense(2 * self.lower_units, dtype="float32")],
            name="top_down")
        return {**weights, "top_down": self.top_down}

    def excluded_from_weight_decay(self):
        return self.top.excluded_from_weight_decay()

    def split(self, z):
        """(z1, z2) of z [..., latent_dim]: its first and last units."""
        return z[..., :self.lower_units], z[..., self.lower_units:]

    def conditional(self, z2):
        """p(z1|z2): its (mean, logvar), each [..., lower_units]."""
        flat = self.top_down(tf.reshape(z2, [-1, self.top_units]))  # takes [batch, M]
        shape = tf.concat([tf.shape(z2)[:-1], [2 * self.lower_units]], 0)
        return tf.split(tf.reshape(flat, shape), 2, axis=-1)

    def context(self):
        return self.top.context()

    def log_prob(self, z, context=None):
        """log p(z2) + log p(z1|z2) for z [..., latent_dim]; returns [...]."""
        z1, z2 = self.split(z)
        return self.top.log_prob(z2, context) + losses.log_normal_pdf(z1, *self.conditional(z2))

    def sample(self, num, seed):
        """Draws z2 from its prior, then z1 from p(z1|z2): [num, latent_dim]."""
        eps1, eps2 = self.split(tf.random.stateless_normal([num, self.latent_dim], seed=seed))
        z2 = self.top.from_noise(eps2, seed)
        return tf.concat([reparameterize(*self.conditional(z2), eps1), z2], -1)

    def get_config(self):
        return {"top_units": self.top_units, "top": keras.saving.serialize_keras_object(self.top)}

    @classmethod
    def from_config(cls, config):
        return cls(config["top_units"], keras.saving.deserialize_keras_object(config["top"]))


@keras.saving.register_keras_serializable(package="tfvae")
class TwoLayerPosterior(GaussianPosterior):
    """q(z2|x) q(z1|x, z2), for a model whose prior is a TwoLayerPrior."""

    def attach(self, model):
        if not isinstance(model.prior, TwoLayerPrior):
            raise TfvaeError("a two-layer posterior needs the two-layer prior")
        self.prior = model.prior
        return {}

    def sample(self, mean, logvar, eps):
        """z2 from its Gaussian, then z1 from the merge of its Gaussian with p(z1|z2); log q sums
        the two layers' log-densities. Shapes as GaussianPosterior.sample."""
        mean, logvar = with_sample_axis(mean, logvar, eps)
        (mean1, mean2), (logvar1, logvar2), (eps1, eps2) = map(
            self.prior.split, (mean, logvar, eps))
        z2 = reparameterize(mean2, logvar2, eps2)
        mean1, logvar1 = losses.precision_weighted(mean1, logvar1, *self.prior.conditional(z2))
        z1 = reparameterize(mean1, logvar1, eps1)
        log_q = losses.log_normal_pdf(z2, mean2, logvar2) + losses.log_normal_pdf(
            z1, mean1, logvar1)
        return tf.concat([z1, z2], -1), log_q
