"""The VampPrior (Tomczak & Welling 2018): p(z) is the equal mixture of the posteriors
q(z|u_k) of K learned pseudo-images u_k."""

import keras
import tensorflow as tf

from tfvae import losses
from tfvae.errors import TfvaeError
from tfvae.models.parts import StandardNormal, reparameterize


@keras.saving.register_keras_serializable(package="tfvae")
class VampPrior(StandardNormal):
    """p(z) = (1/K) sum_k N(z; mean(u_k), exp(logvar(u_k))), through the model's own encoder.

    Args:
      components: K, the number of pseudo-images.
    """

    def __init__(self, components):
        if components < 1:
            raise TfvaeError(f"a VampPrior needs at least one component, not {components}")
        self.components = components
        self.units = slice(None)  # which units of the encoder's Gaussian are z's (see hierarchy)

    def attach(self, model):
        if model.num_classes:
            raise TfvaeError("--prior-components applies to unconditional models: drop "
                             "--conditional or --prior-components")
        super().attach(model)
        self.encode = model.encode
        # Near-blank pseudo-images, as in Tomczak & Welling's code (mean 0.05, std 0.01).
        self.pseudo_inputs = model.add_weight(
            shape=(self.components, *model.image_shape), name="pseudo_inputs",
            initializer=keras.initializers.RandomNormal(mean=0.05, stddev=0.01))
        return {"pseudo_inputs": self.pseudo_inputs}

    def excluded_from_weight_decay(self):
        return [self.pseudo_inputs]

    def context(self):
        """The components' (means, logvars), each [K, latent_dim]: the encoder's Gaussians of
        the pseudo-images, clipped to pixel range as by Tomczak & Welling's hardtanh (a pixel
        pushed outside stops receiving gradient there, as with theirs)."""
        means, logvars = self.encode(tf.clip_by_value(self.pseudo_inputs, 0.0, 1.0))
        return means[:, self.units], logvars[:, self.units]

    def log_prob(self, z, context=None):
        """log p(z) [...] of z [..., D]; `context` from `context()` when the caller has it, so
        that a loop over sample chunks encodes the pseudo-images once."""
        return losses.log_mixture_normal_pdf(z, *(context or self.context()))

    def from_noise(self, eps, seed):
        """Picks a component for each draw, then samples it: with a fixed seed the draws follow
        the prior as it learns."""
        component = tf.random.stateless_uniform(
            [tf.shape(eps)[0]], seed=tf.random.experimental.stateless_fold_in(seed, 1),
            maxval=self.components, dtype=tf.int32)
        means, logvars = self.context()
        return reparameterize(tf.gather(means, component), tf.gather(logvars, component), eps)

    def get_config(self):
        return {"components": self.components}
