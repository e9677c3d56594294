"""Which parts a config's fields describe; and how the models of tfvae 0.1.0, one class with a
switch per part, read as parts."""

from tfvae.config import translate_0_1_0
from tfvae.models import likelihoods
from tfvae.models.autoregressive import AutoregressiveBernoulli
from tfvae.models.flows import FlowPosterior
from tfvae.models.hierarchy import TwoLayerPosterior, TwoLayerPrior
from tfvae.models.priors import VampPrior


def compose(likelihood="bernoulli", prior_components=0, posterior_flow_steps=0,
            top_latent_dim=0, autoregressive_local_units=0, autoregressive_local_knots=0):
    """The (prior, posterior, likelihood) parts the config fields of these names describe.

    The best recipe uses four parts at once: two stochastic layers with the VampPrior on the
    top one, a flow moving the two-layer posterior's samples, the autoregressive likelihood.
    """
    prior = VampPrior(prior_components) if prior_components else None
    posterior = None
    if top_latent_dim:
        prior, posterior = TwoLayerPrior(top_latent_dim, prior), TwoLayerPosterior()
    if posterior_flow_steps:
        posterior = FlowPosterior(posterior_flow_steps, posterior)
    if likelihood == "autoregressive":
        likelihood = AutoregressiveBernoulli(autoregressive_local_units,
                                             autoregressive_local_knots)
    return dict(prior=prior, posterior=posterior, likelihood=likelihoods.by_name(likelihood))


# The keys of a 0.1.0 model's get_config that named its parts: a Config's field names.
SWITCHES = ("likelihood", "prior_components", "posterior_flow_steps", "top_latent_dim",
            "autoregressive_decoder", "autoregressive_hidden_units",
            "autoregressive_conditional", "autoregressive_local_units",
            "autoregressive_local_knots")


def from_legacy_config(config):
    """The constructor arguments of a model saved by tfvae 0.1.0 (`get_config` with a switch
    per part), or `config` as it is when it names its parts. A removed mode raises
    tfvae.config.RemovedModeError."""
    if "prior" in config:
        return config
    config = dict(config)
    switches = translate_0_1_0({key: config.pop(key) for key in SWITCHES if key in config})
    return {**config, **compose(**switches)}
