"""tfvae: variational autoencoders on MNIST-like data with TensorFlow 2 and Keras 3."""

import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) buries tfvae's own output;
# warnings and errors still show. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
