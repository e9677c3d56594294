"""The VAEs: fully connected and convolutional, each optionally conditioned on the label.

Images are [batch, H, W, C] of any size. The decoder returns logits; the sigmoid is applied
only when producing images.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvae import losses
from tfvae.config import MNIST_SHAPE
from tfvae.errors import TfvaeError
from tfvae.keras_fit import KerasFitMixin

TOP_DOWN_UNITS = 256  # the hidden layers of a two-layer model's p(z1|z2)
PICTURE_NOISE_SEED = (0, 7)  # the uniforms of an autoregressive decoder's pictures
WINDOW_RADIUS = 3  # an autoregressive decoder's local window: 3 rows above, 3 columns each side


class VAE(KerasFitMixin, keras.Model):
    """Shared encode / reparameterize / decode / sample for the concrete networks below.

    Subclasses build `self.encoder` (image -> [2 * latent_dim] features) and `self.decoder`
    (z -> [H, W, C] logits), each a keras.Sequential as in TensorFlow's tutorial (a plain
    list of layers would be invisible to tf.train.Checkpoint), and may override
    `_encoder_input`.

    The prior p(z) is N(0, I), or with `prior_components` K > 0 the VampPrior: the equal
    mixture of the posteriors q(z|u_k) of K learned pseudo-images u_k (Tomczak & Welling 2018).
    The posterior q(z|x) is the encoder's Gaussian, or with `posterior_flow_steps` N > 0 that
    Gaussian's samples moved by a CouplingFlow of N steps (`posterior_sample`).

    With `top_latent_dim` M > 0, z = (z1, z2) has two stochastic layers, z2 its last M units:
    p(z2) p(z1|z2) p(x|z1, z2), the prior (N(0, I) or the VampPrior) on z2 and p(z1|z2) a
    Gaussian from the `top_down` network; q(z2|x) q(z1|x, z2), where q(z1|x, z2) merges the
    encoder's Gaussian for z1 with p(z1|z2) by precision weighting, as the ladder VAE does
    (Sonderby et al. 2016). The encoder's (mean, logvar) are then its bottom-up Gaussians for
    both layers, and `posterior_sample` turns them into the posterior.

    With `autoregressive_decoder`, each pixel's logit also depends on the pixels before it
    (`AutoregressiveLogits`): p(x|z) stays exact, and pictures become ancestral samples.

    `compile` / `fit` / `evaluate` / `predict` come from tfvae.keras_fit.KerasFitMixin.
    """

    def __init__(self, latent_dim=20, num_classes=0, likelihood="bernoulli",
                 dtype_policy=None, prior_components=0, image_shape=MNIST_SHAPE,
                 posterior_flow_steps=0, top_latent_dim=0, autoregressive_decoder=False,
                 autoregressive_hidden_units=0, autoregressive_conditional=False,
                 autoregressive_local_units=0, autoregressive_local_knots=0, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)  # a list once read from JSON
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise TfvaeError(f"image_shape must be (height, width, channels), "
                             f"not {image_shape}")
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.prior_components = prior_components
        self.pseudo_inputs = None
        if prior_components:
            if num_classes:
                raise ValueError("a VampPrior needs an unconditional model")
            # Near-blank pseudo-images, as in Tomczak & Welling's code (mean 0.05, std 0.01).
            self.pseudo_inputs = self.add_weight(
                shape=(prior_components, *self.image_shape), name="pseudo_inputs",
                initializer=keras.initializers.RandomNormal(mean=0.05, stddev=0.01))
        self.likelihood = likelihood
        self.dtype_policy_name = dtype_policy
        # Mixed precision: hidden layers compute in the policy's dtype; the layers that produce
        # the posterior and the logits stay float32, so the loss is computed in float32.
        self._hidden_dtype = dtype_policy
        self.log_scale = None
        if likelihood == "gaussian":
            self.log_scale = self.add_weight(shape=(), initializer="zeros", name="log_scale")
        # The discretized logistic's decoder gives each pixel and channel a location and a
        # log-scale: twice the image's channels.
        self.decoder_channels = self.image_shape[-1] * (2 if likelihood == "logistic" else 1)
        self.posterior_flow_steps = posterior_flow_steps
        self.posterior_flow = (CouplingFlow(latent_dim, posterior_flow_steps, dtype="float32",
                                            name="posterior_flow")
                               if posterior_flow_steps else None)
        if autoregressive_decoder and likelihood != "bernoulli":
            raise TfvaeError(f"an autoregressive decoder needs the Bernoulli likelihood, "
                             f"not {likelihood!r}")
        if autoregressive_hidden_units and not autoregressive_decoder:
            raise TfvaeError("autoregressive_hidden_units needs autoregressive_decoder=True")
        if autoregressive_conditional and not autoregressive_hidden_units:
            raise TfvaeError("autoregressive_conditional needs autoregressive_hidden_units")
        if autoregressive_local_units and not autoregressive_decoder:
            raise TfvaeError("autoregressive_local_units needs autoregressive_decoder=True")
        self.autoregressive = (AutoregressiveLogits(math.prod(self.image_shape),
                                                    autoregressive_hidden_units,
                                                    autoregressive_conditional,
                                                    autoregressive_local_units,
                                                    self.image_shape,
                                                    autoregressive_local_knots,
                                                    dtype="float32", name="autoregressive")
                               if autoregressive_decoder else None)
        if not 0 <= top_latent_dim < latent_dim:
            raise TfvaeError(f"the top layer's {top_latent_dim} units must be fewer than "
                             f"z's {latent_dim}: give --top-latent-dim below --latent-dim")
        self.top_latent_dim = top_latent_dim
        self.top_down = None
        if top_latent_dim:  # p(z1|z2): z2 -> the mean and log-variance of z1
            self.top_down = keras.Sequential(
                [keras.layers.Dense(TOP_DOWN_UNITS, activation="relu", dtype=self._hidden_dtype)
                 for _ in range(2)]
                + [keras.layers.Dense(2 * (latent_dim - top_latent_dim), dtype="float32")],
                name="top_down")

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
        x = keras.ops.reshape(x, (-1, math.prod(self.image_shape)))
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

    @property
    def closed_form_kl(self):
        """Whether KL(q(z|x) || p(z)) has a closed form: a Gaussian posterior, N(0, I) prior."""
        return (not self.prior_components and self.posterior_flow is None
                and not self.top_latent_dim)

    def split_layers(self, z):
        """(z1, z2) of a two-layer model's z [..., latent_dim]: its first and last units."""
        return z[..., :self.latent_dim - self.top_latent_dim], \
            z[..., self.latent_dim - self.top_latent_dim:]

    def conditional_prior(self, z2):
        """p(z1|z2) of a two-layer model: its (mean, logvar), each [..., latent_dim - M]."""
        flat = self.top_down(tf.reshape(z2, [-1, self.top_latent_dim]))  # takes [batch, M]
        shape = tf.concat([tf.shape(z2)[:-1], [2 * (self.latent_dim - self.top_latent_dim)]], 0)
        return tf.split(tf.reshape(flat, shape), 2, axis=-1)

    def posterior_sample(self, mean, logvar, eps):
        """Samples z ~ q(z|x) from standard-normal `eps`, with log q(z|x).

        Args:
          mean, logvar: [B, latent] from `encode`.
          eps: [B, latent], or [B, S, latent] for S samples per image.

        Returns:
          (z, log_q) shaped [B, (S,) latent] and [B, (S)]. Without a flow q is the encoder's
          Gaussian; with one, z = f(mean + sigma * eps) and log q = log N(.) - log |det df|.
          A two-layer model first draws z2 from its Gaussian, then z1 from the merge of its
          Gaussian with p(z1|z2), and log q sums the two layers' log-densities.
        """
        if eps.shape.rank == 3:
            mean, logvar = mean[:, None], logvar[:, None]
        if self.top_latent_dim:
            z, log_q = self._two_layer_sample(mean, logvar, eps)
        else:
            z = self.reparameterize(mean, logvar, eps)
            log_q = losses.log_normal_pdf(z, mean, logvar)
        if self.posterior_flow is None:
            return z, log_q
        context = tf.concat([mean, logvar], -1)  # [B, C], or [B, 1, C] beside S samples
        z, log_det = self.posterior_flow(z, context)
        return z, log_q - log_det

    def _two_layer_sample(self, mean, logvar, eps):
        (mean1, mean2), (logvar1, logvar2), (eps1, eps2) = map(
            self.split_layers, (mean, logvar, eps))
        z2 = self.reparameterize(mean2, logvar2, eps2)
        prior_mean1, prior_logvar1 = self.conditional_prior(z2)
        mean1, logvar1 = losses.precision_weighted(mean1, logvar1, prior_mean1, prior_logvar1)
        z1 = self.reparameterize(mean1, logvar1, eps1)
        log_q = losses.log_normal_pdf(z2, mean2, logvar2) + losses.log_normal_pdf(
            z1, mean1, logvar1)
        return tf.concat([z1, z2], -1), log_q

    def posterior_location(self, mean, logvar):
        """The z that zero noise gives: the encoder's mean, or where the flow and the second
        layer take it. What `call` decodes and what the latent figures place an image at."""
        return self.posterior_sample(mean, logvar, tf.zeros_like(mean))[0]

    def intensities(self, logits):
        """Images in [0, 1] from decoder logits: what pictures show.

        sigmoid(logits), the mean of the Bernoulli and of the Gaussian; under the discretized
        logistic its location clipped to [0, 1] (losses.logistic_parameters), which is nearly
        its mean once the scale is small. An autoregressive decoder has no such mean: its
        pictures are each pixel's probability along an ancestral sample
        (`AutoregressiveLogits.sample`), drawn with the same uniforms for every image, so a
        picture depends on z alone.
        """
        if self.likelihood == "logistic":
            location, _ = losses.logistic_parameters(logits)
            return tf.clip_by_value(location, 0.0, 1.0)
        if self.autoregressive is None:
            return tf.sigmoid(logits)
        flat = tf.reshape(logits, [tf.shape(logits)[0], -1])
        uniform = tf.random.stateless_uniform([1, flat.shape[-1]], seed=PICTURE_NOISE_SEED)
        return tf.reshape(self.autoregressive.sample(flat, uniform), tf.shape(logits))

    def autoregressive_offsets(self, x, logits):
        """What the pixels before each pixel of x [..., H, W, C] add to its logit.

        `logits` are the decoder's f(z) for x, with extra sample axes after x's leading ones
        (x [B, 1, H, W, C] beside logits [B, S, H, W, C]). The offsets have x's shape, or
        when the layer also reads f(z) (`AutoregressiveLogits.reads_logits`), the logits'.
        """
        size = math.prod(self.image_shape)
        flat = tf.reshape(x, [-1, size])
        if not self.autoregressive.reads_logits:
            return tf.reshape(self.autoregressive(flat), tf.shape(x))
        return tf.reshape(self.autoregressive(flat, tf.reshape(logits, [-1, size])),
                          tf.shape(logits))

    def decode(self, z, labels=None, apply_sigmoid=False):
        """Decodes z [batch, latent_dim] to logits [batch, H, W, decoder_channels], or images
        [batch, H, W, C] (`intensities`).

        `labels` (conditional models): integer classes [batch], or float class weights
        [batch, num_classes] such as a blend of two one-hot vectors.
        """
        h = tf.concat([z, self._one_hot(labels)], -1) if self.conditional else z
        h = self.decoder(h)
        return self.intensities(h) if apply_sigmoid else h

    def prior_components_params(self):
        """The VampPrior's components (means, logvars), each [K, latent_dim], or [K, M] on a
        two-layer model's top layer: q(z2|u_k).

        Pseudo-inputs are clipped to pixel range as in Tomczak & Welling's hardtanh; a pixel
        pushed outside stops receiving gradient there, as with theirs.
        """
        means, logvars = self.encode(tf.clip_by_value(self.pseudo_inputs, 0.0, 1.0))
        if self.top_latent_dim:
            return self.split_layers(means)[1], self.split_layers(logvars)[1]
        return means, logvars

    def log_prior(self, z, components=None):
        """log p(z) for z [..., latent_dim]; returns [...].

        `components`: the VampPrior's (means, logvars) when the caller already has them, so a
        loop over sample chunks encodes the pseudo-inputs once. A two-layer model's is
        log p(z2) + log p(z1|z2).
        """
        if not self.top_latent_dim:
            return self._log_top_prior(z, components)
        z1, z2 = self.split_layers(z)
        return self._log_top_prior(z2, components) + losses.log_normal_pdf(
            z1, *self.conditional_prior(z2))

    def _log_top_prior(self, z, components):
        """log p(z) of the top layer (all of z in a one-layer model)."""
        if not self.prior_components:
            return losses.log_normal_pdf(z, 0.0, 0.0)
        return losses.log_mixture_normal_pdf(z, *(components or self.prior_components_params()))

    def sample_prior(self, num, seed):
        """`num` draws [num, latent_dim] from p(z), a function of `seed` ([2] ints) alone.

        A VampPrior draw picks a component and then samples it, so with a fixed seed the draws
        follow the prior as it learns. A two-layer model draws z2 so, then z1 from p(z1|z2).
        """
        eps = tf.random.stateless_normal([num, self.latent_dim], seed=seed)
        eps1, top = self.split_layers(eps) if self.top_latent_dim else (None, eps)
        if self.prior_components:
            component = tf.random.stateless_uniform(
                [num], seed=tf.random.experimental.stateless_fold_in(seed, 1),
                maxval=self.prior_components, dtype=tf.int32)
            means, logvars = self.prior_components_params()
            top = self.reparameterize(tf.gather(means, component),
                                      tf.gather(logvars, component), top)
        if not self.top_latent_dim:
            return top
        return tf.concat([self.reparameterize(*self.conditional_prior(top), eps1), top], -1)

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
        return self.decode(self.posterior_location(mean, logvar), labels), mean, logvar

    def build(self, input_shape):
        batch = 1
        labels = tf.zeros([batch], tf.int32) if self.conditional else None
        _, mean, logvar = self.call(tf.zeros([batch, *self.image_shape]), labels)
        self.built = True

    def get_config(self):
        return {"latent_dim": self.latent_dim, "num_classes": self.num_classes,
                "likelihood": self.likelihood, "dtype_policy": self.dtype_policy_name,
                "prior_components": self.prior_components,
                "image_shape": list(self.image_shape),
                "posterior_flow_steps": self.posterior_flow_steps,
                "top_latent_dim": self.top_latent_dim,
                "autoregressive_decoder": self.autoregressive is not None,
                "autoregressive_hidden_units": (self.autoregressive.hidden_units
                                                if self.autoregressive else 0),
                "autoregressive_conditional": (self.autoregressive is not None
                                               and self.autoregressive.conditional),
                "autoregressive_local_units": (self.autoregressive.local_units
                                               if self.autoregressive else 0),
                "autoregressive_local_knots": (self.autoregressive.local_knots
                                               if self.autoregressive else 0),
                "name": self.name}


@keras.saving.register_keras_serializable(package="tfvae")
class AutoregressiveLogits(keras.layers.Layer):
    """Offsets each pixel's logit by a learned function of the pixels before it.

    With the decoder's logits f(z), p(x|z) = prod_i Bernoulli(x_i | sigmoid(f_i(z) + g_i(x_<i)))
    in raster order over (row, column, channel). With no hidden units g is linear,
    g_i = sum_{j<i} W_ji x_j: a fully visible sigmoid belief net (Frey 1998) whose biases come
    from z, the visible layer of DARN (Gregor et al. 2014). With `hidden_units` H, g also has
    one masked ReLU layer, as in MADE (Germain et al. 2015): hidden unit k has a degree m_k
    and sees the pixels j <= m_k, and feeds the pixels i > m_k. Scoring x stays exact and costs
    one pass of g per image, whatever the number of samples of z; sampling visits the D pixels
    in turn. The weights into the output start at zero: an untrained layer is the plain VAE.

    With `conditional`, every hidden unit also sees sigmoid(f(z)), the decoder's probabilities
    for all D pixels (z, not x, so no mask): g_i(x_<i, z), and how a pixel depends on the ones
    before it changes with z. The hidden layer then runs once per sample of z.

    With `local_units` C (and `image_shape`), g also has a small network on each pixel's causal
    window, the pixels before it within `WINDOW_RADIUS` rows and columns (a PixelCNN-style
    masked 7x7 convolution): two layers of C ReLU units per pixel, the second of which also
    sees that pixel's own probability sigmoid(f_i(z)), so the local rule changes with what z
    says of the pixel. The window's layer runs once per image; per sample of z it costs O(C)
    per pixel.

    With `local_knots` M the local network's output is instead a piecewise linear function of
    the pixel's probability p_i = sigmoid(f_i(z)): its second layer, on the window alone, gives
    the function's values at M evenly spaced knots in [0, 1], between which each sample of z
    interpolates at its p_i. The whole network then runs once per image; per sample of z the
    interpolation costs O(M) elementwise work per pixel.
    """

    def __init__(self, size, hidden_units=0, conditional=False, local_units=0,
                 image_shape=None, local_knots=0, **kwargs):
        super().__init__(**kwargs)
        if conditional and not hidden_units:
            raise TfvaeError("a conditional autoregressive layer needs hidden units")
        if local_units and (image_shape is None or math.prod(image_shape) != size):
            raise TfvaeError(f"local units need the image's shape, of {size} values, "
                             f"not {image_shape}")
        if local_knots and (local_knots < 2 or not local_units):
            raise TfvaeError(f"local knots need local units and at least 2 knots, not "
                             f"{local_knots} knots and {local_units} units")
        self.size = size
        self.hidden_units = hidden_units
        self.conditional = conditional
        self.local_units = local_units
        self.local_knots = local_knots
        self.image_shape = tuple(int(d) for d in image_shape) if image_shape else None
        self.kernel = self.add_weight(shape=(size, size), initializer="zeros", name="kernel")
        # kernel[j, i] links input pixel j to output pixel i; only pixels before i count.
        self.before = np.triu(np.ones((size, size), np.float32), k=1)
        if hidden_units:
            degrees = np.arange(hidden_units) * (size - 1) // hidden_units  # 0 .. size - 2
            pixels = np.arange(size)
            self.into_hidden_mask = (pixels[:, None] <= degrees[None, :]).astype(np.float32)
            self.out_of_hidden_mask = (degrees[:, None] < pixels[None, :]).astype(np.float32)
            self.hidden_kernel = self.add_weight(shape=(size, hidden_units),
                                                 initializer="glorot_uniform",
                                                 name="hidden_kernel")
            self.hidden_bias = self.add_weight(shape=(hidden_units,), initializer="zeros",
                                               name="hidden_bias")
            self.output_kernel = self.add_weight(shape=(hidden_units, size),
                                                 initializer="zeros", name="output_kernel")
        if conditional:
            self.context_kernel = self.add_weight(shape=(size, hidden_units),
                                                  initializer="glorot_uniform",
                                                  name="context_kernel")
        if local_units:
            self.window = causal_window(self.image_shape, WINDOW_RADIUS)  # [D, K]
            self.window_kernel = self.add_weight(shape=(self.window.shape[1], local_units),
                                                 initializer="glorot_uniform",
                                                 name="window_kernel")
            self.window_bias = self.add_weight(shape=(local_units,), initializer="zeros",
                                               name="window_bias")
            self.local_kernel = self.add_weight(shape=(local_units, local_units),
                                                initializer="glorot_uniform",
                                                name="local_kernel")
            self.local_bias = self.add_weight(shape=(size, local_units), initializer="zeros",
                                              name="local_bias")
        if local_units and local_knots:
            self.knot_kernel = self.add_weight(shape=(local_units, local_knots),
                                               initializer="zeros", name="knot_kernel")
        elif local_units:
            self.local_gate = self.add_weight(shape=(local_units,), initializer="ones",
                                              name="local_gate")
            self.local_output = self.add_weight(shape=(local_units,), initializer="zeros",
                                                name="local_output")

    @property
    def reads_logits(self):
        """Whether g also depends on z through the decoder's logits (then it runs per sample)."""
        return self.conditional or bool(self.local_units)

    def local_features(self, windows):
        """The local network's z-free part: pixels' causal windows [..., K] -> [..., C].

        Its matmuls run on [-1, K] and [-1, C] (flat): faster here than batched ones.
        """
        flat = tf.reshape(windows, [-1, self.window.shape[1]])
        hidden = tf.nn.relu(tf.matmul(flat, self.window_kernel) + self.window_bias)
        return tf.reshape(tf.matmul(hidden, self.local_kernel),
                          tf.concat([tf.shape(windows)[:-1], [self.local_units]], 0))

    def local_offsets(self, features, probabilities):
        """The local network's output from its z-free part [N, D, C] or [N, C] (its per-pixel
        bias included) and the pixels' probabilities sigmoid(f(z)), [N, S, D] or [N]."""
        if probabilities.shape.rank == 3:
            features = features[:, None]
        if self.local_knots:
            values = tf.matmul(tf.nn.relu(tf.reshape(features, [-1, self.local_units])),
                               self.knot_kernel)
            values = tf.reshape(values, tf.concat([tf.shape(features)[:-1],
                                                   [self.local_knots]], 0))
            return interpolate(values, probabilities)
        hidden = tf.nn.relu(features + probabilities[..., None] * self.local_gate)
        offsets = tf.matmul(tf.reshape(hidden, [-1, self.local_units]),
                            self.local_output[:, None])
        return tf.reshape(offsets, tf.shape(hidden)[:-1])

    def call(self, x, logits=None):
        """g_i(x_<i) for each pixel i: x [N, D] -> [N, D].

        A layer that reads the logits (`reads_logits`) also takes the decoder's `logits` f(z),
        [N, D] or [N, S, D] for S samples of z per image, and returns their shape.
        """
        offsets = tf.matmul(x, self.kernel * self.before)
        if self.hidden_units:
            offsets = self.made_offsets(x, offsets, logits)
        if not self.local_units:
            return offsets
        windows = tf.gather(tf.pad(x, [[0, 0], [0, 1]]), self.window, axis=1)  # [N, D, K]
        features = self.local_features(windows) + self.local_bias  # [N, D, C]
        probabilities = tf.reshape(tf.sigmoid(logits), [tf.shape(x)[0], -1, self.size])
        local = self.local_offsets(features, probabilities)  # [N, S, D]
        return tf.reshape(tf.reshape(offsets, [tf.shape(x)[0], -1, self.size]) + local,
                          tf.shape(logits))

    def made_offsets(self, x, offsets, logits):
        """Adds the masked hidden layer's output to the linear `offsets`."""
        hidden = tf.matmul(x, self.hidden_kernel * self.into_hidden_mask) + self.hidden_bias
        out_of_hidden = self.output_kernel * self.out_of_hidden_mask
        if not self.conditional:
            return offsets + tf.matmul(tf.nn.relu(hidden), out_of_hidden)
        probabilities = tf.reshape(tf.sigmoid(logits), [tf.shape(x)[0], -1, self.size])  # [N, S, D]
        context = tf.reshape(
            tf.matmul(tf.reshape(probabilities, [-1, self.size]), self.context_kernel),
            tf.concat([tf.shape(probabilities)[:2], [self.hidden_units]], 0))
        hidden = tf.nn.relu(hidden[:, None] + context)  # [N, S, H]
        offsets = offsets[:, None] + tf.reshape(
            tf.matmul(tf.reshape(hidden, [-1, self.hidden_units]), out_of_hidden),
            tf.shape(probabilities))
        return tf.reshape(offsets, tf.shape(logits))

    @tf.function(reduce_retracing=True)  # a graph loop: 7x faster than eager's D steps
    def sample(self, logits, uniform):
        """Pixel probabilities [N, D] along the ancestral sample x_i = [u_i < p_i].

        p_i = sigmoid(logits_i + g_i(x_<i)); `logits` [N, D] are f(z), `uniform` [N or 1, D]
        in (0, 1) the draws. Each drawn pixel updates the linear offsets and the hidden layer's
        inputs (a conditional layer's start from what f(z) gives them); the local network
        reads pixel i's window from the pixels drawn so far. A step costs O(N (D + H + KC)).
        """
        weights = self.kernel * self.before
        uniform = tf.broadcast_to(uniform, tf.shape(logits))
        batch = tf.shape(logits)[0]
        if self.hidden_units:
            into_hidden = self.hidden_kernel * self.into_hidden_mask
            out_of_hidden = self.output_kernel * self.out_of_hidden_mask
            hidden_inputs = tf.broadcast_to(self.hidden_bias, [batch, self.hidden_units])
            if self.conditional:
                hidden_inputs += tf.matmul(tf.sigmoid(logits), self.context_kernel)
        else:  # no hidden layer: an empty one adds nothing
            into_hidden = tf.zeros([self.size, 0])
            out_of_hidden = tf.zeros([0, self.size])
            hidden_inputs = tf.zeros([batch, 0])

        def local_offset(i, drawn):
            if not self.local_units:
                return 0.0
            window = tf.gather(drawn, tf.gather(self.window, i), axis=1)  # [N, K]
            features = self.local_features(window) + self.local_bias[i]
            return self.local_offsets(features, tf.sigmoid(logits[:, i]))

        def next_pixel(i, offsets, hidden_inputs, drawn, probabilities):
            hidden_offset = tf.linalg.matvec(tf.nn.relu(hidden_inputs), out_of_hidden[:, i])
            p = tf.sigmoid(logits[:, i] + offsets[:, i] + hidden_offset
                           + local_offset(i, drawn))
            pixel = tf.cast(uniform[:, i] < p, logits.dtype)[:, None]
            return (i + 1, offsets + pixel * weights[i], hidden_inputs + pixel * into_hidden[i],
                    drawn + pixel * tf.one_hot(i, self.size + 1), probabilities.write(i, p))

        # The drawn pixels, and a last column of zeros where a window leaves the image.
        drawn = tf.zeros([batch, self.size + 1], logits.dtype)
        *_, probabilities = tf.while_loop(
            lambda i, *_: i < self.size, next_pixel,
            (tf.constant(0), tf.zeros_like(logits), hidden_inputs, drawn,
             tf.TensorArray(logits.dtype, self.size)))
        return tf.transpose(probabilities.stack())

    def get_config(self):
        return {**super().get_config(), "size": self.size, "hidden_units": self.hidden_units,
                "conditional": self.conditional, "local_units": self.local_units,
                "image_shape": self.image_shape, "local_knots": self.local_knots}


def interpolate(values, positions):
    """The piecewise linear functions through `values` [..., M] at M evenly spaced knots in
    [0, 1], at `positions` in [0, 1], which broadcast against values' leading axes [...].

    As a sum of M hat functions, elementwise: XLA fuses it, where a gather of the two
    neighbouring knots (and its scatter in the gradient) ran 1.2x slower here.
    """
    knots = values.shape[-1]
    distances = tf.abs(positions[..., None] * (knots - 1) - tf.range(knots, dtype=values.dtype))
    return tf.reduce_sum(values * tf.nn.relu(1.0 - distances), -1)


@keras.saving.register_keras_serializable(package="tfvae")
class CouplingFlow(keras.layers.Layer):
    """A normalizing flow on z: `steps` affine coupling layers (Real NVP, Dinh et al. 2017),
    each conditioned on a context vector (the encoder's mean and log-variance of the image).

    Step t keeps half of z's coordinates, z_a (the first and second halves in turn), and moves
    the rest: z_b <- z_b * exp(s) + m with (m, s) = MLP(z_a, context), s = tanh(.) so that each
    step scales by at most e. The Jacobian is triangular, so log |det| = sum(s). The output
    layers start at zero: an untrained flow is the identity.

    Args:
      latent_dim: size of z.
      steps: number of coupling layers.
      hidden_units: width of each coupling layer's one hidden layer.
    """

    def __init__(self, latent_dim, steps, hidden_units=256, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.steps, self.hidden_units = latent_dim, steps, hidden_units
        half = latent_dim // 2
        first, second = slice(0, half), slice(half, latent_dim)
        self.halves = [(first, second) if t % 2 == 0 else (second, first) for t in range(steps)]
        for t in range(steps):  # attributes, not a list, which tf.train.Checkpoint would miss
            setattr(self, f"coupling_{t}", keras.Sequential(
                [keras.layers.Dense(hidden_units, activation="relu"),
                 keras.layers.Dense(2 * latent_dim, kernel_initializer="zeros")],
                name=f"coupling_{t}"))

    def build(self, z_shape, context_shape):
        for t in range(self.steps):
            getattr(self, f"coupling_{t}").build((None, self.latent_dim + context_shape[-1]))

    def call(self, z, context):
        """Returns (f(z), log |det df/dz|) for z [B, (S,) latent_dim] -> [B, (S)].

        `context` is [B, C], or [B, 1, C] for S samples per image. Each coupling net is the
        Dense pair MLP([z * mask, context]) -> (shift, scale); this computes exactly that but
        multiplies only what it needs: the kept half of z (the masked half is zero), the
        moved half's outputs (the kept half's are discarded), and the context once per image
        rather than once per sample. On the best recipe's shapes that is 2.6x fewer
        multiply-adds, a 1.45x faster flow and a 1.18x faster training step
        (benchmarks/flow_speed.py).
        """
        z, context = tf.cast(z, tf.float32), tf.cast(context, tf.float32)
        log_det = tf.zeros_like(z[..., 0])
        for t, (kept, moved) in enumerate(self.halves):
            hidden, output = getattr(self, f"coupling_{t}").layers
            context_part = tf.tensordot(context, hidden.kernel[self.latent_dim:], 1)
            h = tf.nn.relu(tf.tensordot(z[..., kept], hidden.kernel[kept], 1) + context_part
                           + hidden.bias)
            shift_and_scale = tf.concat([output.kernel[:, moved],
                                         output.kernel[:, self.latent_dim:][:, moved]], 1)
            bias = tf.concat([output.bias[moved], output.bias[self.latent_dim:][moved]], 0)
            shift, raw_scale = tf.split(tf.tensordot(h, shift_and_scale, 1) + bias, 2, axis=-1)
            log_scale = tf.tanh(raw_scale)
            halves = [z[..., kept], z[..., moved] * tf.exp(log_scale) + shift]
            z = tf.concat(halves if t % 2 == 0 else halves[::-1], -1)
            log_det += tf.reduce_sum(log_scale, axis=-1)
        return z, log_det

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "steps": self.steps,
                "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="tfvae")
class MlpVAE(VAE):
    """The fully connected VAE (Kingma & Welling 2014; 400 hidden units, 20 latents in PyTorch's).

    Args:
      latent_dim: size of z.
      hidden_units: sizes of the encoder's hidden layers; the decoder mirrors them.
      num_classes: 0 for an unconditional model; else the one-hot label is concatenated to
        the encoder's input and to z.
      likelihood: 'bernoulli'; 'gaussian' (adds a learned scale `log_scale`); or 'logistic',
        the discretized logistic of 8-bit pixels (the decoder gives a location and a scale
        per pixel and channel).
      dtype_policy: a Keras dtype policy name for the hidden layers, e.g. 'mixed_bfloat16'.
      prior_components: 0 for the N(0, I) prior, K for a VampPrior of K pseudo-inputs.
      image_shape: (height, width, channels) of the images; they are flattened.

    Example:
      >>> model = MlpVAE(latent_dim=20)
      >>> mean, logvar = model.encode(tf.zeros([8, 28, 28, 1]))
      >>> images = model.sample(tf.zeros([8, 20]))  # [8, 28, 28, 1] in (0, 1)
    """

    default_jit_compile = True  # fit() as the CLI: XLA makes this model's step 1.4x as fast

    def __init__(self, latent_dim=20, hidden_units=(400,), num_classes=0,
                 likelihood="bernoulli", dtype_policy=None, prior_components=0,
                 image_shape=MNIST_SHAPE, **kwargs):
        super().__init__(latent_dim, num_classes, likelihood, dtype_policy, prior_components,
                         image_shape, **kwargs)
        self.hidden_units = tuple(hidden_units)
        self.encoder = keras.Sequential(
            [keras.layers.Dense(u, activation="relu", dtype=self._hidden_dtype)
             for u in self.hidden_units]
            + [keras.layers.Dense(2 * latent_dim, dtype="float32")], name="encoder")
        self.decoder = keras.Sequential(
            [keras.layers.Dense(u, activation="relu", dtype=self._hidden_dtype)
             for u in reversed(self.hidden_units)]
            + [keras.layers.Dense(math.prod(self.image_shape[:2]) * self.decoder_channels,
                                  dtype="float32"),
               keras.layers.Reshape((*self.image_shape[:2], self.decoder_channels),
                                    dtype="float32")],
            name="decoder")

    def get_config(self):
        return {**super().get_config(), "hidden_units": list(self.hidden_units)}


def causal_window(image_shape, radius):
    """Each value's causal window: [D, K] indices into an image flattened in raster order
    (row, column, channel), of the values before it within `radius` rows above and columns
    either side; D (a zero appended to the image) where the window leaves the image.

    Slot k means the same relative position (and channels) for every value, so one kernel
    [K, C] over the windows is a masked convolution.
    """
    height, width, channels = image_shape
    slots = [(dr, dc, cj, ci) for ci in range(channels) for dr in range(-radius, 1)
             for dc in range(-radius, radius + 1) for cj in range(channels)
             if (dr, dc) < (0, 0) or ((dr, dc) == (0, 0) and cj < ci)]
    dr, dc, cj, ci = (np.array(column) for column in zip(*slots))
    rows, cols, chans = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels),
                                    indexing="ij")
    rows, cols, chans = (a.reshape(-1, 1) for a in (rows, cols, chans))  # [D, 1] each
    r, c = rows + dr, cols + dc
    inside = (chans == ci) & (r >= 0) & (c >= 0) & (c < width)  # dr <= 0: r < height
    size = height * width * channels
    return np.where(inside, (r * width + c) * channels + cj, size).astype(np.int32)


def conv_output_size(size, blocks):
    """The side of a 'valid' 3x3 stride-2 convolution's output after `blocks` of them."""
    for _ in range(blocks):
        size = (size - 3) // 2 + 1
    return size


@keras.saving.register_keras_serializable(package="tfvae")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """Keras's Conv2DTranspose at stride 1 with 'same' padding and an odd kernel, computed as
    one matmul from the input channels to every kernel tap's outputs, then a sum of the taps'
    planes, each shifted into place.

    The weights, their shapes and the outputs (to float rounding) are the Keras layer's, and
    so is the class name, by which a .keras file addresses a layer's weights: files saved
    with Keras's layer load into this one and back. With few output channels, as in the conv
    decoder's logits layer, TF's CPU kernel for the convolution runs at a small fraction of
    the matmul rate: this form takes about a quarter of its time forward, and half forward and
    backward (README, Evaluation speed; benchmarks/eval_speed.py).
    """

    def __init__(self, filters, kernel_size, **kwargs):
        kwargs.update(strides=1, padding="same")
        super().__init__(filters, kernel_size, **kwargs)
        if (self.data_format != "channels_last" or any(d != 1 for d in self.dilation_rate)
                or not all(size % 2 for size in self.kernel_size)):
            raise ValueError("tfvae's Conv2DTranspose needs an odd kernel, no dilation and "
                             f"channels_last data; got kernel_size {self.kernel_size}, "
                             f"dilation_rate {self.dilation_rate}, {self.data_format}")

    def call(self, inputs):
        outputs = tap_sum_conv2d_transpose(inputs, tf.convert_to_tensor(self.kernel))
        return self.activation(outputs + self.bias if self.use_bias else outputs)


@tf.custom_gradient
def tap_sum_conv2d_transpose(inputs, kernel):
    """tf.nn.conv2d_transpose(inputs, kernel) at stride 1, 'same' padding, odd kernel sizes.

    Forward: one matmul from the input channels to every tap's outputs, then the taps' planes
    summed, each shifted into place. Backward: the two convolutions TF's own gradient of
    conv2d_transpose runs, which cost less than differentiating the shifted sums."""
    kh, kw, filters, channels = kernel.shape
    height, width = (inputs.shape[i] or tf.shape(inputs)[i] for i in (1, 2))
    # At stride 1 a transposed convolution is a correlation with the flipped kernel.
    taps = tf.reshape(kernel[::-1, ::-1], [-1, channels])
    planes = tf.matmul(taps, tf.reshape(inputs, [-1, channels]), transpose_b=True)
    planes = tf.reshape(planes, [kh * kw, filters, -1, height, width])
    planes = tf.pad(planes, [[0, 0], [0, 0], [0, 0], [kh // 2] * 2, [kw // 2] * 2])
    outputs = tf.add_n([planes[i * kw + j, :, :, i:i + height, j:j + width]
                        for i in range(kh) for j in range(kw)])  # [filters, B, H, W]

    def gradient(upstream):
        return (tf.nn.conv2d(upstream, kernel, 1, padding="SAME"),
                tf.raw_ops.Conv2DBackpropFilter(
                    input=upstream, filter_sizes=tf.shape(kernel), out_backprop=inputs,
                    strides=[1, 1, 1, 1], padding="SAME"))

    return tf.transpose(outputs, [1, 2, 3, 0]), gradient


@keras.saving.register_keras_serializable(package="tfvae")
class ConvVAE(VAE):
    """The convolutional VAE of TensorFlow's CVAE tutorial, for images of any shape.

    Encoder: one Conv2D per entry of `conv_filters` (3x3, stride 2, 'valid', ReLU), Flatten,
    Dense(2 * latent_dim). Decoder: Dense(h * w * conv_filters[0], ReLU) with h = ceil(H / 2**n)
    and w = ceil(W / 2**n) for n blocks, Reshape, one Conv2DTranspose per filter in reverse
    order (3x3, stride 2, 'same', ReLU), Conv2DTranspose to C channels (3x3, stride 1; tfvae's
    faster form of Keras's layer) giving logits, and a crop to H x W where h * 2**n exceeds H.
    On 28x28x1 images with the default filters (32, 64) this is the tutorial's network layer
    for layer: Dense(7*7*32), Conv2DTranspose 64, 32, 1, no crop.

    Args:
      latent_dim: size of z.
      num_classes: 0 for an unconditional model; else the one-hot label enters the encoder as
        num_classes constant image channels and the decoder concatenated to z.
      likelihood: 'bernoulli'; 'gaussian' (adds a learned scale `log_scale`); or 'logistic',
        the discretized logistic of 8-bit pixels (the decoder gives a location and a scale
        per pixel and channel).
      dtype_policy: a Keras dtype policy name for the hidden layers, e.g. 'mixed_bfloat16'.
      prior_components: 0 for the N(0, I) prior, K for a VampPrior of K pseudo-inputs.
      image_shape: (height, width, channels) of the images.
      conv_filters: filters of the encoder's stride-2 blocks; the decoder mirrors them.

    Example:
      >>> model = ConvVAE(latent_dim=2, num_classes=10)
      >>> sevens = model.sample(tf.zeros([4, 2]), labels=[7, 7, 7, 7])
      >>> colour = ConvVAE(image_shape=(32, 32, 3), conv_filters=(32, 64, 128))
    """

    def __init__(self, latent_dim=2, num_classes=0, likelihood="bernoulli",
                 dtype_policy=None, prior_components=0, image_shape=MNIST_SHAPE,
                 conv_filters=(32, 64), **kwargs):
        super().__init__(latent_dim, num_classes, likelihood, dtype_policy, prior_components,
                         image_shape, **kwargs)
        self.conv_filters = tuple(int(f) for f in conv_filters)
        height, width, channels = self.image_shape
        blocks = len(self.conv_filters)
        if not blocks or conv_output_size(min(height, width), blocks) < 1:
            raise TfvaeError(f"{blocks} stride-2 convolutions (conv_filters "
                             f"{list(self.conv_filters)}) do not fit {height}x{width} images: "
                             "give --conv-filters fewer (and at least one) filters")
        hidden = self._hidden_dtype
        self.encoder = keras.Sequential(
            [keras.layers.Conv2D(f, 3, strides=2, activation="relu", dtype=hidden)
             for f in self.conv_filters]
            + [keras.layers.Flatten(dtype=hidden),
               keras.layers.Dense(2 * latent_dim, dtype="float32")], name="encoder")
        h, w = -(-height // 2**blocks), -(-width // 2**blocks)  # ceilings
        first = self.conv_filters[0]
        decoder = [keras.layers.Dense(h * w * first, activation="relu", dtype=hidden),
                   keras.layers.Reshape((h, w, first), dtype=hidden)]
        decoder += [keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same",
                                                 activation="relu", dtype=hidden)
                    for f in reversed(self.conv_filters)]
        decoder.append(Conv2DTranspose(self.decoder_channels, 3, dtype="float32"))
        extra_h, extra_w = h * 2**blocks - height, w * 2**blocks - width
        if extra_h or extra_w:  # centred: the upsampled map overhangs by < 2**blocks pixels
            decoder.append(keras.layers.Cropping2D(
                ((extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2)),
                dtype="float32"))
        self.decoder = keras.Sequential(decoder, name="decoder")

    def _encoder_input(self, x, labels):
        if not self.conditional:
            return x
        planes = self._one_hot(labels)[:, None, None, :] * tf.ones_like(x[..., :1])  # [B,H,W,K]
        return tf.concat([x, planes], -1)

    def get_config(self):
        return {**super().get_config(), "conv_filters": list(self.conv_filters)}


def build_model(config, dtype_policy=None):
    """The model a Config describes, for its `image_shape` and `label_classes`.

    Args:
      config: a tfvae.config.Config whose image shape is known (MNIST-likes, or resolved
        from the data by training).
      dtype_policy: a Keras dtype policy name for the hidden layers, or None for float32.
    """
    config = config.resolved()
    autoregressive = config.likelihood == "autoregressive"
    num_classes = config.label_classes if config.conditional else 0
    if config.conditional and not num_classes:
        raise TfvaeError(f"{config.dataset} has no labels, so a --conditional model has "
                         "nothing to condition on: drop --conditional")
    common = dict(latent_dim=config.latent_dim,
                  num_classes=num_classes,
                  likelihood="bernoulli" if autoregressive else config.likelihood,
                  dtype_policy=dtype_policy,
                  prior_components=config.prior_components,
                  image_shape=config.image_shape,
                  posterior_flow_steps=config.posterior_flow_steps,
                  top_latent_dim=config.top_latent_dim,
                  autoregressive_decoder=autoregressive,
                  autoregressive_local_units=config.autoregressive_local_units,
                  autoregressive_local_knots=config.autoregressive_local_knots)
    if config.model == "mlp":
        model = MlpVAE(hidden_units=config.hidden_units, **common)
    else:
        model = ConvVAE(conv_filters=config.conv_filters, **common)
    model.build((None, *config.image_shape))
    return model
