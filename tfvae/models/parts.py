"""The parts a VAE is composed of, and the tutorial's three: N(0, I), the encoder's diagonal
Gaussian, and Bernoulli pixels.

A VAE is p(z) p(x|z) with an approximate posterior q(z|x). Each of the three is a small object:

- a prior answers `log_prob(z)` and `sample(num, seed)`;
- a posterior turns the encoder's (mean, logvar) and standard-normal noise into samples z with
  their log q(z|x): `sample(mean, logvar, eps) -> (z, log_q)`;
- a likelihood answers `log_prob(x, logits)` for the decoder's logits f(z), `mean(logits)` for
  pictures, and says which targets it scores (`targets`).

Parts are plain Python objects. One that has weights makes them in `attach(model)` and returns
them by name; the VAE keeps each as its attribute of that name, which is where checkpoints and
.keras files hold it. The names are the ones tfvae has always used, so files written by every
version load.
"""

import keras
import tensorflow as tf

from tfvae import losses

# Every name a part's weights go by on the model, in the order the model tracks them, which is
# the order of the optimizer's slots in a .keras file: tfvae 0.1.0's order.
SAVED_ORDER = ("pseudo_inputs", "log_scale", "posterior_flow", "autoregressive", "top_down")


class Part:
    """What every prior, posterior and likelihood shares: its weights and its config."""

    def attach(self, model):
        """Makes this part's weights for `model` and returns them by attribute name."""
        return {}

    def excluded_from_weight_decay(self):
        """Weights that --weight-decay must leave alone."""
        return []

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def with_sample_axis(mean, logvar, eps):
    """(mean, logvar) broadcast against eps: [B, D] beside eps [B, D], [B, 1, D] beside eps
    [B, S, D] for S samples per image."""
    if eps.shape.rank == 3:
        return mean[:, None], logvar[:, None]
    return mean, logvar


def reparameterize(mean, logvar, eps):
    """z = mean + sigma * eps; `eps` comes from the caller so that draws stay seeded."""
    return mean + tf.exp(0.5 * logvar) * eps


@keras.saving.register_keras_serializable(package="tfvae")
class StandardNormal(Part):
    """The prior p(z) = N(0, I)."""

    def attach(self, model):
        self.latent_dim = model.latent_dim
        return {}

    def context(self):
        """What `log_prob` can reuse across calls (nothing here; see VampPrior)."""
        return None

    def log_prob(self, z, context=None):
        """log p(z) for z [..., latent_dim]; returns [...]."""
        return losses.log_normal_pdf(z, 0.0, 0.0)

    def from_noise(self, eps, seed):
        """Prior draws [N, latent_dim] from standard-normal `eps` (and `seed`, for any other
        random choice the prior makes)."""
        return eps

    def sample(self, num, seed):
        """`num` draws [num, latent_dim] from p(z), a function of `seed` ([2] ints) alone."""
        eps = tf.random.stateless_normal([num, self.latent_dim], seed=seed)
        return self.from_noise(eps, seed)


@keras.saving.register_keras_serializable(package="tfvae")
class GaussianPosterior(Part):
    """q(z|x) = N(mean, exp(logvar)), the encoder's diagonal Gaussian."""

    def sample(self, mean, logvar, eps):
        """z ~ q(z|x) from eps [B, D] or [B, S, D], with log q(z|x): [B, (S,) D], [B, (S)]."""
        mean, logvar = with_sample_axis(mean, logvar, eps)
        z = reparameterize(mean, logvar, eps)
        return z, losses.log_normal_pdf(z, mean, logvar)


@keras.saving.register_keras_serializable(package="tfvae")
class Bernoulli(Part):
    """p(x|z) = prod_i Bernoulli(x_i | sigmoid(f_i(z))): binary pixels, as in the tutorial."""

    name = "bernoulli"  # as --likelihood names it
    targets = "binary"  # what it scores: binary pixels, intensities, or 8-bit values

    def channels(self, image_channels):
        """The decoder's output channels for images of `image_channels`."""
        return image_channels

    def log_prob(self, x, logits):
        """log p(x|z) [...] of x [..., H, W, C], which broadcasts against logits [..., H, W, C]
        (x [B, 1, H, W, C] beside the logits of S samples [B, S, H, W, C])."""
        return losses.bernoulli_log_likelihood(x, logits)

    def mean(self, logits):
        """Images in [0, 1] for pictures: the pixels' probabilities."""
        return tf.sigmoid(logits)
