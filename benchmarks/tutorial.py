"""The baseline: TensorFlow's CVAE tutorial loop, as written there, for comparison.

https://www.tensorflow.org/tutorials/generative/cvae : a `@tf.function` step per batch, fed by
tf.data (from_tensor_slices of float images, a per-example binarizing map, shuffle, batch), the
MC ELBO via `log_normal_pdf`, Adam. The fully connected variant swaps in 784-400-20 networks.
"""

import numpy as np
import tensorflow as tf

LOG_2PI = float(np.log(2.0 * np.pi))


class CVAE(tf.keras.Model):
    """The tutorial's model; `kind='mlp'` gives the fully connected 784-400-latent network."""

    def __init__(self, latent_dim, kind="conv"):
        super().__init__()
        self.latent_dim = latent_dim
        layers = tf.keras.layers
        if kind == "conv":
            self.encoder = tf.keras.Sequential([
                layers.InputLayer(shape=(28, 28, 1)),
                layers.Conv2D(32, 3, strides=(2, 2), activation="relu"),
                layers.Conv2D(64, 3, strides=(2, 2), activation="relu"),
                layers.Flatten(),
                layers.Dense(latent_dim + latent_dim),
            ])
            self.decoder = tf.keras.Sequential([
                layers.InputLayer(shape=(latent_dim,)),
                layers.Dense(7 * 7 * 32, activation="relu"),
                layers.Reshape((7, 7, 32)),
                layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu"),
                layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),
                layers.Conv2DTranspose(1, 3, strides=1, padding="same"),
            ])
        else:
            self.encoder = tf.keras.Sequential([
                layers.InputLayer(shape=(28, 28, 1)),
                layers.Flatten(),
                layers.Dense(400, activation="relu"),
                layers.Dense(latent_dim + latent_dim),
            ])
            self.decoder = tf.keras.Sequential([
                layers.InputLayer(shape=(latent_dim,)),
                layers.Dense(400, activation="relu"),
                layers.Dense(784),
                layers.Reshape((28, 28, 1)),
            ])

    def encode(self, x):
        mean, logvar = tf.split(self.encoder(x), num_or_size_splits=2, axis=1)
        return mean, logvar

    def reparameterize(self, mean, logvar):
        eps = tf.random.normal(shape=tf.shape(mean))
        return eps * tf.exp(logvar * 0.5) + mean

    def decode(self, z):
        return self.decoder(z)


def log_normal_pdf(sample, mean, logvar, raxis=1):
    return tf.reduce_sum(-0.5 * ((sample - mean) ** 2.0 * tf.exp(-logvar) + logvar + LOG_2PI),
                         axis=raxis)


def compute_loss(model, x):
    mean, logvar = model.encode(x)
    z = model.reparameterize(mean, logvar)
    x_logit = model.decode(z)
    cross_ent = tf.nn.sigmoid_cross_entropy_with_logits(logits=x_logit, labels=x)
    logpx_z = -tf.reduce_sum(cross_ent, axis=[1, 2, 3])
    logpz = log_normal_pdf(z, 0.0, 0.0)
    logqz_x = log_normal_pdf(z, mean, logvar)
    return -tf.reduce_mean(logpx_z + logpz - logqz_x)


def make_train_step(model, optimizer):
    @tf.function
    def train_step(x):
        with tf.GradientTape() as tape:
            loss = compute_loss(model, x)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))

    return train_step


def train_dataset(images_uint8, batch_size):
    """from_tensor_slices of the float images, per-example binarize, shuffle, batch."""
    images = images_uint8.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    return (tf.data.Dataset.from_tensor_slices(images)
            .map(lambda x: tf.cast(x > 0.5, tf.float32))
            .shuffle(len(images)).batch(batch_size))


def test_elbo(model, images_uint8, batch_size=32):
    """The tutorial's test metric: the mean of -compute_loss over test batches."""
    images = images_uint8.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    dataset = tf.data.Dataset.from_tensor_slices(np.where(images > 0.5, 1.0, 0.0)
                                                 .astype("float32")).batch(batch_size)
    loss = tf.function(compute_loss)
    return -float(np.mean([loss(model, x).numpy() for x in dataset]))
