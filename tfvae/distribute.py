"""tf.distribute strategy and mixed-precision policy from the config."""

import tensorflow as tf

from tfvae.errors import TfvaeError


def dtype_policy_name(config):
    """mixed_float16 where a GPU runs it fast, mixed_bfloat16 on CPU; None for float32."""
    if not config.mixed_precision:
        return None
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def make_strategy(config):
    """The tf.distribute strategy named by `config.strategy`."""
    gpus = tf.config.list_logical_devices("GPU")
    if config.strategy == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if config.strategy == "one-device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    import json
    import os

    if "TF_CONFIG" not in os.environ:
        raise TfvaeError("--strategy multi-worker needs the TF_CONFIG environment variable "
                         "naming the cluster and this worker (see README)")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as error:
        raise TfvaeError(f"TF_CONFIG is not valid JSON ({error})") from None
    return tf.distribute.MultiWorkerMirroredStrategy()
