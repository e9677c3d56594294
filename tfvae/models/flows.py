"""A flow posterior: the encoder's Gaussian samples moved by affine coupling layers (Real NVP,
Dinh et al. 2017), a more flexible q(z|x) whose density stays exact."""

import keras
import numpy as np
import tensorflow as tf

from tfvae.models.parts import GaussianPosterior, Part, with_sample_axis


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

    def masked(self, z, context):
        """The same map as `call`, for z [N, D] and context [N, C], as the paper writes it: each
        step runs its Dense pair on [z * mask, context] and moves the unmasked half. The tests'
        oracle for `call`, and what benchmarks/flow_speed.py times it against."""
        first_half = (np.arange(self.latent_dim) < self.latent_dim // 2).astype("float32")
        log_det = tf.zeros_like(z[:, 0])
        for t in range(self.steps):
            mask = first_half if t % 2 == 0 else 1.0 - first_half
            shift, raw_scale = tf.split(getattr(self, f"coupling_{t}")(
                tf.concat([z * mask, context], -1)), 2, axis=-1)
            log_scale = (1.0 - mask) * tf.tanh(raw_scale)
            z = z * mask + (1.0 - mask) * (z * tf.exp(log_scale) + shift)
            log_det += tf.reduce_sum(log_scale, axis=-1)
        return z, log_det

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "steps": self.steps,
                "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="tfvae")
class FlowPosterior(Part):
    """q(z|x): samples of a base posterior moved by a CouplingFlow of `steps` steps, conditioned
    on the image's (mean, logvar); log q = log q_base - log |det df|.

    Args:
      steps: number of coupling layers.
      base: the posterior whose samples the flow moves (default: the encoder's Gaussian).
    """

    def __init__(self, steps, base=None):
        self.steps = steps
        self.base = base or GaussianPosterior()

    def attach(self, model):
        weights = self.base.attach(model)
        self.flow = CouplingFlow(model.latent_dim, self.steps, dtype="float32",
                                 name="posterior_flow")
        return {**weights, "posterior_flow": self.flow}

    def sample(self, mean, logvar, eps):
        """z = f(z0) for z0 ~ base, with log q(z|x). Shapes as GaussianPosterior.sample."""
        z, log_q = self.base.sample(mean, logvar, eps)
        mean, logvar = with_sample_axis(mean, logvar, eps)
        z, log_det = self.flow(z, tf.concat([mean, logvar], -1))  # context [B, (1,) 2D]
        return z, log_q - log_det

    def get_config(self):
        return {"steps": self.steps, "base": keras.saving.serialize_keras_object(self.base)}

    @classmethod
    def from_config(cls, config):
        return cls(config["steps"], keras.saving.deserialize_keras_object(config["base"]))
