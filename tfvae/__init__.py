"""tfvae: variational autoencoders on MNIST-like data with TensorFlow 2 and Keras 3."""

import os
import signal
import sys

from tfvae.errors import quiet_interrupt

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) buries tfvae's own output;
# warnings and errors still show. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

if sys.argv[:1] == ["-m"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    # Started as `python -m tfvae.COMMAND`: Ctrl-C while TensorFlow imports (seconds) exits
    # with one line, not an import traceback; `main` restores the usual handler.
    signal.signal(signal.SIGINT, quiet_interrupt)
