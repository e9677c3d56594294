"""The VAEs: fully connected and convolutional, each optionally conditioned on the label.

The decoder returns logits; the sigmoid is applied only when producing images.
"""

import math

import keras
import tensorflow as tf

from tfvae import losses
from tfvae.config import MNIST_SHAPE as IMAGE_SHAPE
from tfvae.keras_fit import KerasFitMixin

NUM_PIXELS = math.prod(IMAGE_SHAPE)


class VAE(KerasFitMixin, keras.Model):
    """Shared encode / reparameterize / decode / sample for the concrete networks below.

    Subclasses build `self.encoder` (image -> [2 * latent_dim] features) and `self.decoder`
    (z -> [28, 28, 1] logits), each a keras.Sequential as in TensorFlow's tutorial (a plain
    list of layers would be invisible to tf.train.Checkpoint), and may override
    `_encoder_input`.

    The prior p(z) is N(0, I), or with `prior_components` K > 0 the VampPrior: the equal
    mixture of the posteriors q(z|u_k) of K learned pseudo-images u_k (Tomczak & Welling 2018).

    `compile` / `fit` / `evaluate` / `predict` come from tfvae.keras_fit.KerasFitMixin.
    """

    def __init__(self, latent_dim=20, num_classes=0, likelihood="bernoulli",
                 dtype_policy=None, prior_components=0, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.prior_components = prior_components
        self.pseudo_inputs = None
        if prior_components:
            if num_classes:
                raise ValueError("a VampPrior needs an unconditional model")
            # Near-blank pseudo-images, as in Tomczak & Welling's code (mean 0.05, std 0.01).
            self.pseudo_inputs = self.add_weight(
                shape=(prior_components, *IMAGE_SHAPE), name="pseudo_inputs",
                initializer=keras.initializers.RandomNormal(mean=0.05, stddev=0.01))
        self.likelihood = likelihood
        self.dtype_policy_name = dtype_policy
        # Mixed precision: hidden layers compute in the policy's dtype; the layers that produce
        # the posterior and the logits stay float32, so the loss is computed in float32.
        self._hidden_dtype = dtype_policy
        self.log_scale = None
        if likelihood == "gaussian":
            self.log_scale = self.add_weight(shape=(), initializer="zeros", name="log_scale")

    @property
    def conditional(self):
        return self.num_classes > 0

    def _one_hot(self, labels):
        """Integer labels [B] -> one-hot [B, num_classes].

        A float label vector [B, num_classes] passes through unchanged: a soft mix of classes,
        which lets tfvae.generate morph one class into another with the style z held fixed.
        """
        if labels is None:
            raise ValueError("this model is label-conditional: pass labels")
        labels = tf.convert_to_tensor(labels)
        if labels.dtype.is_floating and labels.shape.rank == 2:
            if labels.shape[-1] != self.num_classes:
                raise ValueError(f"label vectors must have {self.num_classes} entries, "
                                 f"not {labels.shape[-1]}")
            return tf.cast(labels, tf.float32)
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)

    def _encoder_input(self, x, labels):
        x = keras.ops.reshape(x, (-1, NUM_PIXELS))
        return tf.concat([x, self._one_hot(labels)], -1) if self.conditional else x

    def encode(self, x, labels=None):
        """Returns the posterior's (mean, logvar), each [batch, latent_dim]."""
        h = self.encoder(self._encoder_input(tf.cast(x, tf.float32), labels))
        mean, logvar = tf.split(h, num_or_size_splits=2, axis=-1)
        return mean, logvar

    @staticmethod
    def reparameterize(mean, logvar, eps):
        """z = mean + sigma * eps; `eps` comes from the caller so that draws stay seeded."""
        return mean + tf.exp(0.5 * logvar) * eps

    def decode(self, z, labels=None, apply_sigmoid=False):
        """Decodes z [batch, latent_dim] to logits [batch, 28, 28, 1] (or probabilities).

        `labels` (conditional models): integer classes [batch], or float class weights
        [batch, num_classes] such as a blend of two one-hot vectors.
        """
        h = tf.concat([z, self._one_hot(labels)], -1) if self.conditional else z
        h = self.decoder(h)
        return tf.sigmoid(h) if apply_sigmoid else h

    def prior_components_params(self):
        """The VampPrior's components (means, logvars), each [K, latent_dim].

        Pseudo-inputs are clipped to pixel range as in Tomczak & Welling's hardtanh; a pixel
        pushed outside stops receiving gradient there, as with theirs.
        """
        return self.encode(tf.clip_by_value(self.pseudo_inputs, 0.0, 1.0))

    def log_prior(self, z, components=None):
        """log p(z) for z [..., latent_dim]; returns [...].

        `components`: the VampPrior's (means, logvars) when the caller already has them, so a
        loop over sample chunks encodes the pseudo-inputs once.
        """
        if not self.prior_components:
            return losses.log_normal_pdf(z, 0.0, 0.0)
        return losses.log_mixture_normal_pdf(z, *(components or self.prior_components_params()))

    def sample_prior(self, num, seed):
        """`num` draws [num, latent_dim] from p(z), a function of `seed` ([2] ints) alone.

        A VampPrior draw picks a component and then samples it, so with a fixed seed the draws
        follow the prior as it learns.
        """
        eps = tf.random.stateless_normal([num, self.latent_dim], seed=seed)
        if not self.prior_components:
            return eps
        component = tf.random.stateless_uniform(
            [num], seed=tf.random.experimental.stateless_fold_in(seed, 1),
            maxval=self.prior_components, dtype=tf.int32)
        means, logvars = self.prior_components_params()
        return self.reparameterize(tf.gather(means, component), tf.gather(logvars, component), eps)

    def sample(self, z=None, labels=None, seed=0):
        """Decodes latents `z` (default: 100 draws from the prior keyed by `seed`) to images."""
        if z is None:
            z = self.sample_prior(100 if labels is None else len(labels), [seed, 0])
        return self.decode(z, labels, apply_sigmoid=True)

    def call(self, x, labels=None):
        """Reconstruction logits from the posterior mean, with the posterior (mean, logvar).

        Training samples z explicitly (see tfvae.steps); decoding the mean keeps `call`
        deterministic, so a saved and reloaded model gives identical outputs.
        """
        mean, logvar = self.encode(x, labels)
        return self.decode(mean, labels), mean, logvar

    def build(self, input_shape):
        batch = 1
        labels = tf.zeros([batch], tf.int32) if self.conditional else None
        self.call(tf.zeros([batch, *IMAGE_SHAPE]), labels)
        self.built = True

    def get_config(self):
        return {"latent_dim": self.latent_dim, "num_classes": self.num_classes,
                "likelihood": self.likelihood, "dtype_policy": self.dtype_policy_name,
                "prior_components": self.prior_components, "name": self.name}


@keras.saving.register_keras_serializable(package="tfvae")
class MlpVAE(VAE):
    """The fully connected VAE (Kingma & Welling 2014; 400 hidden units, 20 latents in PyTorch's).

    Args:
      latent_dim: size of z.
      hidden_units: sizes of the encoder's hidden layers; the decoder mirrors them.
      num_classes: 0 for an unconditional model; else the one-hot label is concatenated to
        the encoder's input and to z.
      likelihood: 'bernoulli', or 'gaussian' (adds a learned scale `log_scale`).
      dtype_policy: a Keras dtype policy name for the hidden layers, e.g. 'mixed_bfloat16'.
      prior_components: 0 for the N(0, I) prior, K for a VampPrior of K pseudo-inputs.

    Example:
      >>> model = MlpVAE(latent_dim=20)
      >>> mean, logvar = model.encode(tf.zeros([8, 28, 28, 1]))
      >>> images = model.sample(tf.zeros([8, 20]))  # [8, 28, 28, 1] in (0, 1)
    """

    default_jit_compile = True  # fit() as the CLI: XLA makes this model's step 1.4x as fast

    def __init__(self, latent_dim=20, hidden_units=(400,), num_classes=0,
                 likelihood="bernoulli", dtype_policy=None, prior_components=0, **kwargs):
        super().__init__(latent_dim, num_classes, likelihood, dtype_policy, prior_components,
                         **kwargs)
        self.hidden_units = tuple(hidden_units)
        self.encoder = keras.Sequential(
            [keras.layers.Dense(u, activation="relu", dtype=self._hidden_dtype)
             for u in self.hidden_units]
            + [keras.layers.Dense(2 * latent_dim, dtype="float32")], name="encoder")
        self.decoder = keras.Sequential(
            [keras.layers.Dense(u, activation="relu", dtype=self._hidden_dtype)
             for u in reversed(self.hidden_units)]
            + [keras.layers.Dense(NUM_PIXELS, dtype="float32"),
               keras.layers.Reshape(IMAGE_SHAPE, dtype="float32")],
            name="decoder")

    def get_config(self):
        return {**super().get_config(), "hidden_units": list(self.hidden_units)}


@keras.saving.register_keras_serializable(package="tfvae")
class ConvVAE(VAE):
    """The convolutional VAE of TensorFlow's CVAE tutorial.

    Encoder: Conv2D 32 and 64 (3x3, stride 2, ReLU), Flatten, Dense(2 * latent_dim).
    Decoder: Dense(7*7*32, ReLU), Reshape, Conv2DTranspose 64 and 32 (3x3, stride 2, ReLU),
    Conv2DTranspose 1 (3x3, stride 1) giving logits.

    Args:
      latent_dim: size of z.
      num_classes: 0 for an unconditional model; else the one-hot label enters the encoder as
        10 constant image channels and the decoder concatenated to z.
      likelihood: 'bernoulli', or 'gaussian' (adds a learned scale `log_scale`).
      dtype_policy: a Keras dtype policy name for the hidden layers, e.g. 'mixed_bfloat16'.
      prior_components: 0 for the N(0, I) prior, K for a VampPrior of K pseudo-inputs.

    Example:
      >>> model = ConvVAE(latent_dim=2, num_classes=10)
      >>> sevens = model.sample(tf.zeros([4, 2]), labels=[7, 7, 7, 7])
    """

    def __init__(self, latent_dim=2, num_classes=0, likelihood="bernoulli",
                 dtype_policy=None, prior_components=0, **kwargs):
        super().__init__(latent_dim, num_classes, likelihood, dtype_policy, prior_components,
                         **kwargs)
        hidden = self._hidden_dtype
        self.encoder = keras.Sequential([
            keras.layers.Conv2D(32, 3, strides=2, activation="relu", dtype=hidden),
            keras.layers.Conv2D(64, 3, strides=2, activation="relu", dtype=hidden),
            keras.layers.Flatten(dtype=hidden),
            keras.layers.Dense(2 * latent_dim, dtype="float32"),
        ], name="encoder")
        self.decoder = keras.Sequential([
            keras.layers.Dense(7 * 7 * 32, activation="relu", dtype=hidden),
            keras.layers.Reshape((7, 7, 32), dtype=hidden),
            keras.layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu",
                                         dtype=hidden),
            keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu",
                                         dtype=hidden),
            keras.layers.Conv2DTranspose(1, 3, strides=1, padding="same", dtype="float32"),
        ], name="decoder")

    def _encoder_input(self, x, labels):
        if not self.conditional:
            return x
        planes = self._one_hot(labels)[:, None, None, :] * tf.ones_like(x)  # [B, 28, 28, 10]
        return tf.concat([x, planes], -1)


def build_model(config, num_classes=0, dtype_policy=None):
    """The model a Config describes.

    Args:
      num_classes: the dataset's number of classes, used when `config.conditional`.
      dtype_policy: a Keras dtype policy name for the hidden layers, or None for float32.
    """
    common = dict(latent_dim=config.latent_dim,
                  num_classes=num_classes if config.conditional else 0,
                  likelihood=config.likelihood,
                  dtype_policy=dtype_policy,
                  prior_components=config.prior_components)
    if config.model == "mlp":
        model = MlpVAE(hidden_units=config.hidden_units, **common)
    else:
        model = ConvVAE(**common)
    model.build((None, *IMAGE_SHAPE))
    return model
