"""tf.distribute strategy, worker roles and mixed-precision policy from the config."""

import contextlib
import json
import os
import select
import signal
import sys
import time

import tensorflow as tf

from tfvae.errors import TfvaeError, first_line


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
        return wait_for_cluster(tf.distribute.MultiWorkerMirroredStrategy)
    gpus = tf.config.list_physical_devices("GPU")
    if config.strategy == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if config.strategy == "one-device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    return tf.distribute.MirroredStrategy()


# How long a worker waits for the others of its cluster to start, in seconds.
CLUSTER_TIMEOUT_SECONDS = 600
CLUSTER_TIMEOUT_VARIABLE = "TFVAE_CLUSTER_TIMEOUT"


def wait_for_cluster(make_strategy):
    """`make_strategy()`, which blocks inside TensorFlow until every worker has connected,
    with a deadline ($TFVAE_CLUSTER_TIMEOUT seconds, default 600), and Ctrl-C and SIGTERM
    honoured.

    TensorFlow waits forever by default, holding the GIL, so no Python signal handler or
    thread runs meanwhile: the deadline is the coordination service's own registration
    timeout, configured here as the strategy would configure it (a worker then gets a
    TfvaeError), backed by a watchdog process that ends the process at the deadline with one
    line and SIGKILL (exit status 137): the worker that holds the service waits past its own
    timeout, and the others' errors come seconds late. Ctrl-C gets its default action (ending
    the process, exit status 130) for the wait.
    TensorFlow's preemption notifier, started with the wait, installs a SIGTERM handler that
    only notes the signal; so SIGTERM is blocked for the wait, in this thread and in the threads
    TensorFlow starts from it, and stays pending: the watchdog sees it (on Linux, in /proc) and
    ends the process with one line and SIGKILL (exit status 137). One that comes as the wait
    ends is delivered after it, to the handler from before (by default the process ends, exit
    status 143).
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    try:
        timeout = float(os.environ.get(CLUSTER_TIMEOUT_VARIABLE, CLUSTER_TIMEOUT_SECONDS))
    except ValueError:
        timeout = -1.0
    if not 0 < timeout < 1e7:
        raise TfvaeError(f"${CLUSTER_TIMEOUT_VARIABLE} must be a number of seconds, not "
                         f"{os.environ[CLUSTER_TIMEOUT_VARIABLE]!r}")
    cluster = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
    if context.context().coordination_service is None:
        context.context().configure_coordination_service(
            service_type="standalone",
            service_leader=multi_worker_util.coordination_leader(cluster),
            coordinated_jobs=[coordination_config_pb2.CoordinatedJob(
                name=job, num_tasks=cluster.num_tasks(job))
                for job in ("chief", "worker") if job in cluster.jobs],
            cluster_register_timeout_in_ms=int(timeout * 1000))
    cluster_hosts = f"TF_CONFIG's cluster ({', '.join(_peers())})"
    failure = (f"the workers of {cluster_hosts} did not all connect within {timeout:g} s{{}}: "
               f"start them, or correct their hosts and ports (${CLUSTER_TIMEOUT_VARIABLE} sets "
               f"the wait)")
    with _signals_for_the_wait():
        print(f"waiting up to {timeout:g} s for the workers of {cluster_hosts}",
              file=sys.stderr, flush=True)
        # The worker holding the coordination service waits past its registration timeout,
        # and the others' errors come seconds after it: the watchdog keeps the stated time.
        watchdog, done = _watchdog(
            timeout, timeout_line="error: " + failure.format(""),
            sigterm_line=f"error: stopped by SIGTERM while waiting for the workers of "
                         f"{cluster_hosts}")
        try:
            return make_strategy()
        except (tf.errors.OpError, RuntimeError) as error:
            raise TfvaeError(failure.format(f" ({first_line(error)[:120]})")) from None
        finally:
            os.close(done)  # the watchdog sees the pipe close and exits
            os.waitpid(watchdog, 0)


@contextlib.contextmanager
def _signals_for_the_wait():
    """SIGINT and SIGTERM get their default actions and SIGTERM is blocked within; on the way
    out both handlers are restored (SIGTERM's replacing TensorFlow's), then the mask, so that a
    SIGTERM that came meanwhile is delivered then."""
    handlers = {number: signal.signal(number, signal.SIG_DFL)
                for number in (signal.SIGINT, signal.SIGTERM)}
    # Blocked before the watchdog's fork, which also ends numpy's OpenBLAS threads (started
    # again from this thread), and before TensorFlow starts its threads, which inherit the mask.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


# How often the watchdog looks for a SIGTERM pending for the waiting process, in seconds.
SIGTERM_POLL_SECONDS = 0.2


def _watchdog(seconds, timeout_line, sigterm_line):
    """A child process that ends this one with SIGKILL, printing `sigterm_line` as soon as a
    SIGTERM is pending for it, or `timeout_line` unless the returned pipe end is closed within
    `seconds`: (its PID, the pipe end).

    SIGKILL, because TensorFlow holds the GIL and its handler for SIGTERM. The child keeps
    SIGTERM blocked, so that a SIGTERM sent to the whole process group (as systemd and Slurm
    do) does not end it before it has ended the waiting process.
    """
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child touches nothing of TensorFlow's
        os.close(write_end)
        deadline = time.monotonic() + seconds
        line = None
        while line is None and not select.select([read_end], [], [], SIGTERM_POLL_SECONDS)[0]:
            if _sigterm_pending(parent):
                line = sigterm_line
            elif time.monotonic() >= deadline:
                line = timeout_line
        if line is not None:
            os.write(2, (line + "\n").encode())
            os.kill(parent, signal.SIGKILL)
        os._exit(0)
    os.close(read_end)
    return pid, write_end


def _sigterm_pending(pid):
    """True if a SIGTERM waits, blocked, for process `pid` or its main thread (Linux's /proc;
    False where there is none)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except OSError:
        return False
    pending = int(fields.get("ShdPnd", "0"), 16) | int(fields.get("SigPnd", "0"), 16)
    return bool(pending >> (signal.SIGTERM - 1) & 1)


def _peers():
    tf_config = json.loads(os.environ["TF_CONFIG"])
    return [host for hosts in tf_config["cluster"].values() for host in hosts]


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
