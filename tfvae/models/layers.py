"""The conv VAE's layer arithmetic; tfvae's Conv2DTranspose, Keras's layer at stride 1 computed
as a matmul to its taps; and the FiLM path by which z reaches the conv decoder's last features."""

import keras
import tensorflow as tf


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
    backward (benchmarks/eval_speed.py).
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
class FeatureModulation(keras.layers.Layer):
    """FiLM (Perez et al. 2018): features [B, H, W, C] times (1 + scale) plus shift, with one
    scale and one shift per channel computed from a code [B, D] by two Dense layers.

    Both start at zero, so the layer starts as the identity. Called on [features, code].
    """

    def build(self, input_shape):
        (*_, channels), code_shape = input_shape
        self.scale = keras.layers.Dense(channels, kernel_initializer="zeros",
                                        dtype=self.dtype_policy, name="scale")
        self.shift = keras.layers.Dense(channels, kernel_initializer="zeros",
                                        dtype=self.dtype_policy, name="shift")
        self.scale.build(code_shape)
        self.shift.build(code_shape)

    def call(self, inputs):
        features, code = inputs
        scale, shift = self.scale(code)[:, None, None, :], self.shift(code)[:, None, None, :]
        return features * (1.0 + scale) + shift


def modulated_decoder(stem, blocks, head, code_size, dtype=None):
    """The layers `stem`, `blocks` and `head` (lists) applied in turn to a code [B, code_size],
    as one keras.Model, the output of each layer of `blocks` modulated by the code
    (FeatureModulation)."""
    code = keras.Input((code_size,), name="code")
    outputs = code
    for layer in stem:
        outputs = layer(outputs)
    for layer in blocks:
        outputs = FeatureModulation(dtype=dtype)([layer(outputs), code])
    for layer in head:
        outputs = layer(outputs)
    return keras.Model(code, outputs, name="decoder")


def keras_twin(layer):
    """Keras's own Conv2DTranspose with the config (and weights, once built) of tfvae's
    `layer`: the logits layer as tfvae computed it before it had its own."""
    twin = keras.layers.Conv2DTranspose.from_config(layer.get_config())
    if layer.built:
        twin.build(layer.input.shape)
        twin.set_weights(layer.get_weights())
    return twin


def with_keras_logits_layer(model):
    """A copy of a ConvVAE without the colour path (its decoder a keras.Sequential), same
    weights, whose logits layer is Keras's own (`keras_twin`): the tests' oracle and
    benchmarks/eval_speed.py's "before"."""
    copy = type(model).from_config(model.get_config())
    copy.decoder = keras.Sequential(
        [keras_twin(layer) if isinstance(layer, Conv2DTranspose) else layer
         for layer in copy.decoder.layers], name="decoder")
    copy.build((None, *model.image_shape))
    copy.set_weights(model.get_weights())
    return copy
