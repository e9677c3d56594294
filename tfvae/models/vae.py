"""The VAE of TensorFlow's CVAE tutorial, as tfvae builds it: `VAE`, `MlpVAE` and `ConvVAE`.

The tutorial's names, and tfvae's:

| the tutorial                      | tfvae                                               |
| --------------------------------- | --------------------------------------------------- |
| `CVAE(latent_dim)`                | `ConvVAE(latent_dim=2)`, layer for layer            |
| `encode(x) -> mean, logvar`       | `VAE.encode(x, labels=None)`                        |
| `reparameterize(mean, logvar)`    | `VAE.reparameterize(mean, logvar, eps)`: eps given  |
| `decode(z, apply_sigmoid=False)`  | `VAE.decode(z, labels=None, apply_sigmoid=False)`   |
| `sample(eps=None)`                | `VAE.sample(z=None, labels=None, seed=0)`           |
| `log_normal_pdf`, `compute_loss`  | `tfvae.losses.log_normal_pdf`, `tfvae.steps`        |

A VAE is composed of a prior p(z), a posterior q(z|x) and a likelihood p(x|z)
(tfvae.models.parts): by default the tutorial's N(0, I), the encoder's diagonal Gaussian and
Bernoulli pixels. Images are [batch, H, W, C] of any size; the decoder returns logits.
"""

import math

import keras
import tensorflow as tf

from tfvae.config import MNIST_SHAPE
from tfvae.errors import TfvaeError
from tfvae.keras_fit import KerasFitMixin
from tfvae.models import assemble, likelihoods, parts
from tfvae.models.layers import Conv2DTranspose, conv_output_size, modulated_decoder

ROLES = ("prior", "posterior", "likelihood")  # the parts a VAE is composed of


class VAE(KerasFitMixin, keras.Model):
    """What the fully connected and convolutional VAEs share: encode, reparameterize, decode.

    Subclasses build `self.encoder` (image -> [2 * latent_dim]) and `self.decoder` (z -> [H, W,
    decoder_channels] logits), keras.Sequential as in the tutorial; `compile` / `fit` /
    `evaluate` / `predict` come from tfvae.keras_fit.KerasFitMixin.

    Args:
      latent_dim: size of z.
      num_classes: 0 for an unconditional model; else the one-hot label joins the encoder's
        input and z (a conditional VAE).
      likelihood: a likelihood part, or the name of one: 'bernoulli'; 'gaussian' (a learned
        scale); 'logistic' (8-bit pixels, a location and a scale per pixel and channel).
      dtype_policy: a Keras dtype policy name for the hidden layers, e.g. 'mixed_bfloat16';
        the layers that give the posterior and the logits stay float32.
      image_shape: (height, width, channels) of the images.
      prior: a prior part (default: N(0, I)).
      posterior: a posterior part (default: the encoder's diagonal Gaussian).
    """

    def __init__(self, latent_dim=20, num_classes=0, likelihood="bernoulli", dtype_policy=None,
                 image_shape=MNIST_SHAPE, prior=None, posterior=None, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)  # a list once read from JSON
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise TfvaeError(f"image_shape must be (height, width, channels), not {image_shape}")
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.dtype_policy_name = self.hidden_dtype = dtype_policy
        self.prior = prior or parts.StandardNormal()
        self.likelihood = likelihoods.by_name(likelihood)
        self.posterior = posterior or parts.GaussianPosterior()
        # Parts make their weights in the order tfvae always drew their initial values, and
        # the model tracks them in the order its files have always listed them.
        weights = {name: w for part in (self.prior, self.likelihood, self.posterior)
                   for name, w in part.attach(self).items()}  # a posterior may need the prior
        for name in sorted(weights, key=parts.SAVED_ORDER.index):
            setattr(self, name, weights[name])
        self.decoder_channels = self.likelihood.channels(self.image_shape[-1])

    conditional = property(lambda self: self.num_classes > 0)

    @property
    def closed_form_kl(self):
        """Whether KL(q(z|x) || p(z)) has a closed form: the tutorial's prior and posterior."""
        return (type(self.prior) is parts.StandardNormal
                and type(self.posterior) is parts.GaussianPosterior)

    def excluded_from_weight_decay(self):
        return [w for role in ROLES for w in getattr(self, role).excluded_from_weight_decay()]

    def one_hot(self, labels):
        """Integer labels [B] -> one-hot [B, num_classes]. Float label vectors [B, num_classes]
        pass through: a soft mix of classes, with which tfvae.generate morphs one class into
        another with the style z held fixed."""
        if labels is None:
            raise ValueError("this model is label-conditional: pass labels")
        labels = tf.convert_to_tensor(labels)
        if labels.dtype.is_floating and labels.shape.rank == 2:
            if labels.shape[-1] != self.num_classes:
                raise ValueError(f"label vectors must have {self.num_classes} entries, "
                                 f"not {labels.shape[-1]}")
            return tf.cast(labels, tf.float32)
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)

    def encoder_input(self, x, labels):
        """The encoder's input: the flattened image, and the one-hot label after it."""
        x = keras.ops.reshape(x, (-1, math.prod(self.image_shape)))
        return tf.concat([x, self.one_hot(labels)], -1) if self.conditional else x

    def encode(self, x, labels=None):
        """Returns the encoder's Gaussian (mean, logvar), each [batch, latent_dim]."""
        h = self.encoder(self.encoder_input(tf.cast(x, tf.float32), labels))
        mean, logvar = tf.split(h, num_or_size_splits=2, axis=-1)
        return mean, logvar

    @staticmethod
    def reparameterize(mean, logvar, eps):
        """z = mean + sigma * eps; `eps` comes from the caller so that draws stay seeded."""
        return parts.reparameterize(mean, logvar, eps)

    def posterior_location(self, mean, logvar):  # zero noise: what `call` decodes
        return self.posterior.sample(mean, logvar, tf.zeros_like(mean))[0]

    def decode(self, z, labels=None, apply_sigmoid=False):
        """Decodes z [batch, latent_dim] to logits [batch, H, W, decoder_channels], or with
        `apply_sigmoid` to images [batch, H, W, C] in [0, 1] (the likelihood's `mean`).

        `labels` (conditional models): integer classes [batch], or float class weights
        [batch, num_classes] such as a blend of two one-hot vectors.
        """
        h = tf.concat([z, self.one_hot(labels)], -1) if self.conditional else z
        logits = self.decoder(h)
        return self.likelihood.mean(logits) if apply_sigmoid else logits

    def sample(self, z=None, labels=None, seed=0):
        """Decodes latents `z` (default: 100 draws from the prior keyed by `seed`) to images."""
        if z is None:
            z = self.prior.sample(100 if labels is None else len(labels), [seed, 0])
        return self.decode(z, labels, apply_sigmoid=True)

    def call(self, x, labels=None):
        """Reconstruction logits from the posterior's location, with the encoder's (mean,
        logvar). Deterministic, so a saved and reloaded model gives identical outputs;
        training samples z explicitly (tfvae.steps)."""
        mean, logvar = self.encode(x, labels)
        return self.decode(self.posterior_location(mean, logvar), labels), mean, logvar

    def build(self, input_shape):  # one call makes every layer's weights
        self.call(tf.zeros([1, *self.image_shape]), [0] if self.conditional else None)
        self.built = True

    def get_config(self):
        return {"latent_dim": self.latent_dim, "num_classes": self.num_classes,
                "dtype_policy": self.dtype_policy_name, "image_shape": list(self.image_shape),
                "name": self.name, **{role: keras.saving.serialize_keras_object(getattr(self, role))
                                      for role in ROLES}}

    @classmethod
    def from_config(cls, config):
        config = assemble.from_legacy_config(config)  # a file of tfvae 0.1.0 names no parts
        for role in ROLES:
            if isinstance(config.get(role), dict):
                config[role] = keras.saving.deserialize_keras_object(config[role])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfvae")
class MlpVAE(VAE):
    """The fully connected VAE (Kingma & Welling 2014; 400 hidden units, 20 latents).

    Args:
      latent_dim: size of z.
      hidden_units: sizes of the encoder's hidden layers; the decoder mirrors them.
      **kwargs: the rest of `VAE`'s arguments: num_classes, likelihood, dtype_policy,
        image_shape (images are flattened), prior, posterior.

    Example:
      >>> model = MlpVAE(latent_dim=20)
      >>> mean, logvar = model.encode(tf.zeros([8, 28, 28, 1]))
      >>> images = model.sample(tf.zeros([8, 20]))  # [8, 28, 28, 1] in (0, 1)
    """

    default_jit_compile = True  # fit() as the CLI: XLA makes this model's step 1.4x as fast

    def __init__(self, latent_dim=20, hidden_units=(400,), **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.hidden_units = tuple(hidden_units)
        self.encoder = keras.Sequential(
            [keras.layers.Dense(u, activation="relu", dtype=self.hidden_dtype)
             for u in self.hidden_units]
            + [keras.layers.Dense(2 * latent_dim, dtype="float32")], name="encoder")
        height, width, _ = self.image_shape
        self.decoder = keras.Sequential(
            [keras.layers.Dense(u, activation="relu", dtype=self.hidden_dtype)
             for u in reversed(self.hidden_units)]
            + [keras.layers.Dense(height * width * self.decoder_channels, dtype="float32"),
               keras.layers.Reshape((height, width, self.decoder_channels), dtype="float32")],
            name="decoder")

    def get_config(self):
        return {**super().get_config(), "hidden_units": list(self.hidden_units)}


@keras.saving.register_keras_serializable(package="tfvae")
class ConvVAE(VAE):
    """The convolutional VAE of TensorFlow's CVAE tutorial, for images of any shape.

    Encoder: one Conv2D per entry of `conv_filters` (3x3, stride 2, 'valid', ReLU), Flatten,
    Dense(2 * latent_dim). Decoder: Dense(h * w * conv_filters[0], ReLU) with h = ceil(H / 2**n)
    and w = ceil(W / 2**n) for n blocks, Reshape, one Conv2DTranspose per filter in reverse
    order (3x3, stride 2, 'same', ReLU), a Conv2DTranspose to the logits (3x3, stride 1;
    tfvae's faster form of Keras's layer), and a crop to H x W where h * 2**n exceeds H.
    On 28x28x1 images with the default filters (32, 64) this is the tutorial's network layer
    for layer.

    On colour images z also scales and shifts each channel of each upsampling block's output
    (`decoder_film`). Without that path the decoder reconstructs digits tinted each its own
    colour in grey: a colour is one value per image multiplying a shape that varies per
    pixel, which shared 3x3 filters fed by z only through the first Dense layer form poorly,
    and the encoder then drops the colour the decoder cannot use
    (benchmarks/tinted_colour.py).

    Args:
      latent_dim: size of z.
      conv_filters: filters of the encoder's stride-2 blocks; the decoder mirrors them.
      decoder_film: whether z (with the one-hot label) scales and shifts each channel of the
        upsampling blocks' outputs (FiLM; tfvae.models.layers.FeatureModulation); None: on
        colour images, off on grey ones (the tutorial's network).
      **kwargs: the rest of `VAE`'s arguments: num_classes (the one-hot label enters the
        encoder as constant image channels), likelihood, dtype_policy, image_shape, prior,
        posterior.

    Example:
      >>> model = ConvVAE(latent_dim=2, num_classes=10)
      >>> sevens = model.sample(tf.zeros([4, 2]), labels=[7, 7, 7, 7])
      >>> colour = ConvVAE(image_shape=(32, 32, 3), conv_filters=(32, 64, 128))
    """

    def __init__(self, latent_dim=2, conv_filters=(32, 64), decoder_film=None, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.conv_filters = tuple(int(f) for f in conv_filters)
        height, width, channels = self.image_shape
        self.decoder_film = channels > 1 if decoder_film is None else bool(decoder_film)
        blocks = len(self.conv_filters)
        if not blocks or conv_output_size(min(height, width), blocks) < 1:
            fix = ("give --conv-filters fewer filters" if conv_output_size(min(height, width), 1)
                   else "pass a larger --image-size, or --model mlp")
            raise TfvaeError(f"{blocks} stride-2 3x3 convolutions (conv_filters "
                             f"{list(self.conv_filters)}) do not fit {height}x{width} "
                             f"images: {fix}")
        hidden = self.hidden_dtype
        self.encoder = keras.Sequential(
            [keras.layers.Conv2D(f, 3, strides=2, activation="relu", dtype=hidden)
             for f in self.conv_filters]
            + [keras.layers.Flatten(dtype=hidden),
               keras.layers.Dense(2 * latent_dim, dtype="float32")], name="encoder")
        h, w = -(-height // 2**blocks), -(-width // 2**blocks)  # ceilings
        first = self.conv_filters[0]
        stem = [keras.layers.Dense(h * w * first, activation="relu", dtype=hidden),
                keras.layers.Reshape((h, w, first), dtype=hidden)]
        upsampling = [keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same",
                                                   activation="relu", dtype=hidden)
                      for f in reversed(self.conv_filters)]
        head = [Conv2DTranspose(self.decoder_channels, 3, dtype="float32")]
        extra_h, extra_w = h * 2**blocks - height, w * 2**blocks - width
        if extra_h or extra_w:  # centred: the upsampled map overhangs by < 2**blocks pixels
            head.append(keras.layers.Cropping2D(
                ((extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2)),
                dtype="float32"))
        if self.decoder_film:
            self.decoder = modulated_decoder(stem, upsampling, head,
                                             latent_dim + self.num_classes, hidden)
        else:
            self.decoder = keras.Sequential(stem + upsampling + head, name="decoder")

    def encoder_input(self, x, labels):
        """The image as it is, with the one-hot label as constant channels after its own."""
        if not self.conditional:
            return x
        planes = self.one_hot(labels)[:, None, None, :] * tf.ones_like(x[..., :1])  # [B,H,W,K]
        return tf.concat([x, planes], -1)

    def get_config(self):
        return {**super().get_config(), "conv_filters": list(self.conv_filters),
                "decoder_film": self.decoder_film}

    @classmethod
    def from_config(cls, config):
        # Files of tfvae 0.2.0 and earlier name no FiLM path: their decoders have none.
        return super().from_config({"decoder_film": False, **config})
