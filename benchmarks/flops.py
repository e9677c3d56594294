"""FLOPs per image counted from a built Keras model's layer shapes, and the machine's roofline."""

import math
import time

import keras
import tensorflow as tf


def layer_macs(layer, in_shape, out_shape):
    """Forward multiply-accumulates per image of one layer, from its input and output shapes.

    Dense: (positions) x in x out. Conv2D: each output pixel reads a kh x kw x cin patch for
    each of cout filters. Conv2DTranspose: each input pixel scatters a kh x kw x cout patch
    from its cin channels. Other layers (reshape, flatten, activations) count as free.
    """
    if isinstance(layer, keras.layers.Conv2DTranspose):
        kh, kw, cout, cin = layer.kernel.shape  # transposed kernels are [kh, kw, out, in]
        return math.prod(in_shape[1:-1]) * kh * kw * cin * cout
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        return math.prod(out_shape[1:-1]) * kh * kw * cin * cout
    if isinstance(layer, keras.layers.Dense):
        cin, cout = layer.kernel.shape
        return math.prod(in_shape[1:-1]) * cin * cout
    return 0


def sequence_macs(layers, x):
    """Runs `x` (one image's batch of 1) through `layers` in order, summing their MACs."""
    total = 0
    for layer in layers:
        if isinstance(layer, keras.Sequential):
            total += sequence_macs(layer.layers, x)
            x = layer(x)
            continue
        y = layer(x)
        total += layer_macs(layer, tuple(x.shape), tuple(y.shape))
        x = y
    return total


def forward_macs(model):
    """Forward MACs per image of a VAE with `encoder` and `decoder` layers: tfvae's or the
    tutorial's. tfvae's models may reshape or extend the encoder's input (`encoder_input`)."""
    image = tf.zeros([1, *getattr(model, "image_shape", (28, 28, 1))])
    z = tf.zeros([1, model.latent_dim])
    if getattr(model, "conditional", False):
        labels = tf.zeros([1], tf.int32)
        z = tf.concat([z, model.one_hot(labels)], -1)
    else:
        labels = None
    if hasattr(model, "encoder_input"):
        image = model.encoder_input(image, labels)
    return sequence_macs([model.encoder], image) + sequence_macs([model.decoder], z)


def train_flops_per_image(model):
    """2 FLOPs per MAC, and a training step costs about 3 forward passes (forward + backward)."""
    return 3 * 2 * forward_macs(model)


def matmul_gflops(n=1024, seconds=2.0):
    """This machine's float32 matmul rate through TensorFlow: the best of a few timed bursts."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    matmul = tf.function(tf.matmul)
    matmul(a, b).numpy()
    best = 0.0
    for _ in range(4):
        started, count = time.perf_counter(), 0
        while time.perf_counter() - started < seconds / 4:
            result = matmul(a, b)
            count += 1
        result.numpy()
        best = max(best, 2 * n**3 * count / (time.perf_counter() - started) / 1e9)
    return best
