"""tfvae's models: the tutorial's VAE (tfvae.models.vae) and the parts it is composed of.

Importing this package registers every saved class with Keras, so `keras.models.load_model`
reads tfvae's .keras files (importing `tfvae` is enough: it imports this package).
"""

from tfvae.errors import TfvaeError
from tfvae.models.assemble import compose
from tfvae.models.autoregressive import AutoregressiveBernoulli, AutoregressiveLogits
from tfvae.models.flows import CouplingFlow, FlowPosterior
from tfvae.models.hierarchy import TwoLayerPosterior, TwoLayerPrior
from tfvae.models.layers import Conv2DTranspose
from tfvae.models.likelihoods import DiscretizedLogistic, Gaussian
from tfvae.models.parts import Bernoulli, GaussianPosterior, StandardNormal
from tfvae.models.priors import VampPrior
from tfvae.models.vae import VAE, ConvVAE, MlpVAE

__all__ = ["VAE", "MlpVAE", "ConvVAE", "build_model", "compose", "StandardNormal",
           "GaussianPosterior", "Bernoulli", "Gaussian", "DiscretizedLogistic", "VampPrior",
           "FlowPosterior", "CouplingFlow", "TwoLayerPrior", "TwoLayerPosterior",
           "AutoregressiveBernoulli", "AutoregressiveLogits", "Conv2DTranspose"]


def build_model(config, dtype_policy=None):
    """The model a Config describes, for its `image_shape` and `label_classes`, built.

    Args:
      config: a tfvae.config.Config whose image shape is known (MNIST-likes, or resolved
        from the data by training) and whose 'auto' values are resolved.
      dtype_policy: a Keras dtype policy name for the hidden layers, or None for float32.
    """
    num_classes = config.label_classes if config.conditional else 0
    if config.conditional and not num_classes:
        raise TfvaeError(f"{config.dataset} has no labels, so a --conditional model has "
                         "nothing to condition on: drop --conditional")
    config = config.resolved()
    parts = compose(config.likelihood, config.prior_components, config.posterior_flow_steps,
                    config.top_latent_dim, config.autoregressive_local_units,
                    config.autoregressive_local_knots)
    common = dict(latent_dim=config.latent_dim, num_classes=num_classes,
                  dtype_policy=dtype_policy, image_shape=config.image_shape, **parts)
    if config.model == "mlp":
        model = MlpVAE(hidden_units=config.hidden_units, **common)
    else:
        model = ConvVAE(conv_filters=config.conv_filters, decoder_film=config.film,
                        **common)
    model.build((None, *config.image_shape))
    return model
