"""tf.distribute strategy, worker roles and mixed-precision policy from the config."""

import json
import os

import tensorflow as tf

from tfvae.errors import TfvaeError


def dtype_policy_name(config):
    """mixed_float16 where a GPU runs it fast, mixed_bfloat16 on CPU; None for float32."""
    if not config.mixed_precision:
        return None
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def make_strategy(config):
    """The tf.distribute strategy named by `config.strategy`.

    Call it before any other TensorFlow work: MultiWorkerMirroredStrategy configures collective
    ops, which TensorFlow allows only before its runtime starts. For the same reason devices are
    counted with `list_physical_devices`, which does not start the runtime.
    """
    if config.strategy == "multi-worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if config.strategy == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if config.strategy == "one-device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    return tf.distribute.MirroredStrategy()


def _check_tf_config():
    if "TF_CONFIG" not in os.environ:
        raise TfvaeError("--strategy multi-worker needs the TF_CONFIG environment variable "
                         "naming the cluster and this worker (docs: Command line)")
    try:
        tf_config = json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as error:
        raise TfvaeError(f"TF_CONFIG is not valid JSON ({error})") from None
    if not isinstance(tf_config, dict) or "cluster" not in tf_config or "task" not in tf_config:
        raise TfvaeError('TF_CONFIG must hold "cluster" and "task", e.g. {"cluster": {"worker": '
                         '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    task, cluster = tf_config["task"], tf_config["cluster"]
    hosts = cluster.get(task.get("type"), []) if isinstance(task, dict) and isinstance(
        cluster, dict) else []
    index = task.get("index", 0) if isinstance(task, dict) else None
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(hosts):
        raise TfvaeError(f"TF_CONFIG's task {task!r} is not in its cluster: the task's index must "
                         f"be 0 to {len(hosts) - 1} of the {len(hosts)} hosts listed for its type")


def _task(strategy):
    """(task_type, task_id) of this process in a cluster, or (None, None) outside one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy):
    """True for the one process that writes outputs: worker 0, or the task named chief."""
    task_type, task_id = _task(strategy)
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0)


def barrier(strategy):
    """Returns once every worker has reached it (a no-op with a single worker)."""
    if _task(strategy)[0] is None:
        return  # one process; reducing a plain tensor would also fail under MirroredStrategy
    strategy.reduce("SUM", tf.constant(1.0), axis=None)


def check_same_step(strategy, step):
    """Raises on every worker unless all workers resumed at the same step.

    With SUM the only cross-worker reduction, equality is tested through Cauchy-Schwarz:
    n * sum(s^2) == sum(s)^2 exactly when all n values s are equal, and every worker computes
    the same verdict, so none is left waiting in a collective.
    """
    if _task(strategy)[0] is None:
        return
    value = tf.constant([1.0, step, step * step], tf.float64)
    count, total, squares = strategy.reduce("SUM", value, axis=None).numpy()
    if count * squares != total * total:
        raise TfvaeError(
            f"the workers resumed at different steps (this one at {step}, mean "
            f"{total / count:g}): each must read the chief's checkpoints, so put --out on a "
            "filesystem all workers share, or pass --overwrite to start afresh")


def distribute_batches(strategy, batches):
    """Splits each global batch of `batches` across the strategy's replicas.

    DATA sharding: every worker runs the same input pipeline and keeps its own slice of each
    global batch, so a step sees the same images, pixels and noise for any number of replicas
    (the pipeline is a function of (seed, step) and has no files to shard).
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(batches.with_options(options))
