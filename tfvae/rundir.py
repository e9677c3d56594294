"""The run directory: its file names, config.json, metrics.jsonl, checkpoints and its lock.

tfvae deletes only what it can prove it wrote: files whose names it owns (listed here), in a
directory that holds a run (has config.json).
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import sys

from tfvae.config import MNIST_LIKE, RemovedModeError, config_from_dict
from tfvae.errors import TfvaeError, first_line
from tfvae.files import TEMP_PREFIX, append_line, write_error, write_json, write_text

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
EVAL_FILE = "eval.json"
EVAL_IMAGES_FILE = "eval_images.npz"  # per-image bounds; lets an interrupted evaluate go on
LOCK_FILE = ".lock"  # held by the training process
EVAL_LOCK_FILE = ".eval.lock"  # held by an evaluation saving eval_images.npz
FRAME_PATTERN = "image_at_epoch_{:04d}.png"
RECONSTRUCTION_PATTERN = "reconstruction_at_epoch_{:04d}.png"
TRAINING_GIF = "training.gif"
MANIFOLD_FILE = "manifold.png"
TRANSITION_FILE = "transition.gif"
TRANSITION_CLASS_FILE = "transition_class.gif"
SCATTER_FILE = "scatter.png"
SAMPLES_FILE = "samples.png"
RECONSTRUCTIONS_FILE = "reconstructions.png"
DIGIT_PATTERN = "digit_{}.png"
# Every file name tfvae writes at the top of a run directory; --overwrite removes only these.
OWN_FILES = re.compile(
    r"(config\.json|metrics\.jsonl|eval\.json|eval_images\.npz|training\.gif|manifold\.png|transition\.gif"
    r"|transition_class\.gif|scatter\.png|samples\.png|reconstructions\.png|digit_\d\.png"
    r"|image_at_epoch_\d{4,}\.png|reconstruction_at_epoch_\d{4,}\.png)")
CHECKPOINT_FILES = re.compile(r"checkpoint|ckpt-\d+\.(index|data-\d+-of-\d+)")
TENSORBOARD_FILES = re.compile(r"events\.out\.tfevents\..+")
# Keys that may differ between a run directory and a rerun of it without changing the run.
RESUMABLE_KEYS = ("epochs", "data_dir", "checkpoint_every", "steps_per_call", "eval_batch_size",
                  "strategy")
# The keys of tfvae 0.1.0's config.json: a run directory must have them all. Keys added since
# are filled from their defaults, so older runs keep loading.
REQUIRED_KEYS = frozenset((
    "batch_size", "binarize", "checkpoint_every", "conditional", "data_dir", "dataset", "epochs",
    "eval_batch_size", "hidden_units", "jit_compile", "k", "kl", "kl_warmup_epochs",
    "latent_dim", "learning_rate", "likelihood", "lr_schedule", "mixed_precision", "model",
    "objective", "prior_components", "seed", "steps_per_call", "strategy", "test_size",
    "train_size"))


def note(message):
    """One line telling the user what tfvae repaired or chose for them."""
    print(f"note: {message}", file=sys.stderr, flush=True)


def prepare(run_dir, config, overwrite=False, steps_per_epoch=None):
    """Creates `run_dir` for `config`, or checks that an existing one was made by the same config.

    Raises TfvaeError, naming the differing keys, if it holds a run of another config, or (given
    `steps_per_epoch`) one that has trained past `config.epochs`. Clears leftovers of killed runs.
    """
    ensure_writable(run_dir)
    remove_litter(run_dir)
    for folder in (CHECKPOINT_DIR, TENSORBOARD_DIR):
        path = os.path.join(run_dir, folder)
        if os.path.lexists(path) and not os.path.isdir(path):
            raise TfvaeError(f"{path!r} is a file where tfvae keeps the run's {folder} folder: "
                             "move it away, or choose another --out")
    has_config = os.path.exists(os.path.join(run_dir, CONFIG_FILE))
    if not has_config and os.path.isdir(os.path.join(run_dir, CHECKPOINT_DIR)):
        raise TfvaeError(f"{run_dir} holds checkpoints but no {CONFIG_FILE}, without which they "
                         f"cannot be read: restore {CONFIG_FILE}, or choose another --out")
    if not has_config and _holds_run_files(run_dir):
        raise TfvaeError(f"{run_dir} holds files named as tfvae names its outputs but no "
                         f"{CONFIG_FILE}, so tfvae cannot tell who wrote them and will not "
                         "replace them: move them away or choose another --out")
    if has_config and overwrite:
        # An evaluation still scoring the old weights would write their rows into the new run.
        with locked(run_dir, EVAL_LOCK_FILE, "wait for its evaluation to finish before "
                    "--overwrite, or choose another --out"):
            clear(run_dir)
    elif has_config:
        check_same_run(run_dir, load_config(run_dir), config)
        checkpoint_dir = os.path.join(run_dir, CHECKPOINT_DIR)
        done = checkpoint_steps(checkpoint_dir)
        trained = read_metrics(run_dir)
        # Only a kill between epoch 1's metrics and its checkpoint leaves metrics without a
        # checkpoint, in the folder made below; past that, or without the folder, the
        # checkpoints were lost, and training would silently start again from step 0.
        if not done and trained and (trained[-1]["epoch"] > 1 or not os.path.isdir(checkpoint_dir)):
            raise TfvaeError(f"{run_dir} has trained {trained[-1]['epoch']} epoch(s) "
                             f"({METRICS_FILE}) but holds no checkpoint in {CHECKPOINT_DIR}/: "
                             "restore the checkpoints, or pass --overwrite to start afresh")
        if steps_per_epoch and done and done[-1] // steps_per_epoch > config.epochs:
            raise TfvaeError(f"{run_dir} has already trained {done[-1] // steps_per_epoch} "
                             f"epochs: pass --epochs {done[-1] // steps_per_epoch} or more, or "
                             "--overwrite to start afresh")
    if config.kl_warmup_epochs > config.epochs:
        note(f"--kl-warmup-epochs {config.kl_warmup_epochs} is longer than --epochs "
             f"{config.epochs}: the KL weight ends at {config.epochs / config.kl_warmup_epochs:.2f}"
             ", so the run optimises a down-weighted KL to the end")
    write_json(os.path.join(run_dir, CONFIG_FILE), dataclasses.asdict(config))
    os.makedirs(os.path.join(run_dir, CHECKPOINT_DIR), exist_ok=True)


@contextlib.contextmanager
def undone_on_failure(run_dir):
    """Removes what a run that fails before its first epoch's metrics and checkpoint wrote in
    a directory that held no run, so the corrected command is not refused as another
    config's run."""
    fresh = not os.path.exists(os.path.join(run_dir, CONFIG_FILE))
    try:
        yield
    except Exception:
        if (fresh and os.path.exists(os.path.join(run_dir, CONFIG_FILE))
                and not checkpoint_steps(os.path.join(run_dir, CHECKPOINT_DIR))
                and not read_metrics(run_dir)):
            clear(run_dir)
        raise


def check_same_run(run_dir, saved, config):
    """Raises TfvaeError unless `config` continues the run `saved` describes.

    Both are compared resolved: a run saved with `"kl": "analytic"` is continued by the same
    command with `--kl auto`, which resolves to it.
    """
    saved, config = with_data_shape(saved.resolved()), with_data_shape(config.resolved())
    differing = [k for k in dataclasses.asdict(config)
                 if k not in RESUMABLE_KEYS and getattr(saved, k) != getattr(config, k)]
    if differing:
        details = ", ".join(f"{k} ({getattr(saved, k)!r} there, {getattr(config, k)!r} now)"
                            for k in differing)
        raise TfvaeError(f"{run_dir} holds a run with a different config: {details}; "
                         "pass --overwrite to start afresh or choose another --out")
    if saved.lr_schedule == "cosine" and saved.epochs != config.epochs:
        raise TfvaeError(f"{run_dir} anneals its learning rate over {saved.epochs} epochs "
                         f"(--lr-schedule cosine): resume with --epochs {saved.epochs}, or "
                         "pass --overwrite to start afresh")


def with_data_shape(config):
    """An MNIST-like config with `image_size`, `channels`, `num_classes` and `decoder_film`
    filled in.

    Runs written before these keys existed saved them as null, which means 28x28x1 and 10
    classes: such a run then compares equal to the same command today, which fills them in.
    """
    if config.dataset not in MNIST_LIKE:
        return config
    height, width, channels = config.image_shape
    return dataclasses.replace(config, image_size=(height, width), channels=channels,
                               num_classes=config.label_classes, decoder_film=config.film)


def ensure_writable(directory, flag="--out"):
    """Creates `directory` if needed and checks that files can be written in it, up front."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f"{TEMP_PREFIX}write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise TfvaeError(f"cannot write to output directory {directory!r} ({error.strerror}): "
                         f"pass a writable {flag}") from None


def _holds_run_files(run_dir):
    """Whether a directory without config.json holds files under names tfvae writes."""
    return any(OWN_FILES.fullmatch(name) or name in (CHECKPOINT_DIR, TENSORBOARD_DIR)
               for name in os.listdir(run_dir))


def clear(run_dir):
    """Removes what tfvae wrote into a run directory, and nothing else."""
    for name in os.listdir(run_dir):
        if OWN_FILES.fullmatch(name) or name.startswith(TEMP_PREFIX):
            os.remove(os.path.join(run_dir, name))
    for folder, own in ((CHECKPOINT_DIR, CHECKPOINT_FILES), (TENSORBOARD_DIR, TENSORBOARD_FILES)):
        _clear_folder(os.path.join(run_dir, folder), own)


def _clear_folder(path, own):
    if not os.path.isdir(path):
        return
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if own.fullmatch(name) and os.path.isfile(full):
            os.remove(full)
        elif name.endswith("_temp") and os.path.isdir(full):  # a checkpoint save cut short
            shutil.rmtree(full)
    if not os.listdir(path):
        os.rmdir(path)


def remove_litter(run_dir):
    """Removes what killed processes leave: temporary files and half-written checkpoints."""
    for name in os.listdir(run_dir):
        old_temp = re.fullmatch(r"\.(.+)\.[A-Za-z0-9_]{8}\.\w+", name)  # tfvae 0.1.0's
        if name.startswith(TEMP_PREFIX) or (old_temp and OWN_FILES.fullmatch(old_temp.group(1))):
            os.remove(os.path.join(run_dir, name))
    checkpoints = os.path.join(run_dir, CHECKPOINT_DIR)
    if os.path.isdir(checkpoints):
        for name in os.listdir(checkpoints):
            if name.endswith("_temp") and os.path.isdir(os.path.join(checkpoints, name)):
                shutil.rmtree(os.path.join(checkpoints, name))


@contextlib.contextmanager
def locked(run_dir, lock_file=LOCK_FILE,
           advice="wait for it to finish, or choose another --out"):
    """Holds an OS lock on `run_dir` while a run trains in it (or, with EVAL_LOCK_FILE, while
    an evaluation writes its per-image file there).

    The kernel releases the lock on any exit, even SIGKILL; a clean exit also removes the lock
    file. A second process refuses with one line naming the holder's PID and `advice`.
    """
    ensure_writable(run_dir)
    path = os.path.join(run_dir, lock_file)
    try:
        fd = _acquire(path, run_dir, advice)
    except OSError as error:
        raise write_error(path, error) from None
    try:
        yield
    finally:
        os.remove(path)
        os.close(fd)


def _acquire(path, run_dir, advice):
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise TfvaeError(f"{run_dir} is in use by another tfvae process (PID {holder}): "
                             f"{advice}") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else its holder removed it between our open and our lock: try again
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def load_config(run_dir):
    """Reads the Config a run directory was made with, resolved (`Config.resolved`)."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise TfvaeError(f"{run_dir} is not a tfvae run directory (no {CONFIG_FILE}): "
                         "pass the --out directory of a `python -m tfvae.train` run")
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        if isinstance(values, dict) and not REQUIRED_KEYS <= set(values):
            missing = ", ".join(sorted(REQUIRED_KEYS - set(values)))
            raise TfvaeError(f"it lacks {missing}")
        if isinstance(values, dict):  # runs saved before the conv colour path have none
            values.setdefault("decoder_film", False)
        return config_from_dict(values).resolved()
    except RemovedModeError as error:
        raise TfvaeError(f"{run_dir}: {error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, TfvaeError) as error:
        raise TfvaeError(f"{path} is damaged ({first_line(error)}): restore it, or rerun "
                         "training with --overwrite to start afresh") from None


def append_metrics(run_dir, record):
    """Appends one epoch's record to metrics.jsonl, whole or not at all."""
    append_line(os.path.join(run_dir, METRICS_FILE), json.dumps(record, sort_keys=True))


def read_metrics(run_dir):
    """The records of metrics.jsonl, oldest first ([] before the first epoch ends).

    Lines that are not whole epoch records (a torn write, foreign bytes) are left out.
    """
    return _read_metrics(run_dir)[0]


def _read_metrics(run_dir):
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.exists(path):
        return [], 0
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")[:-1]  # the last piece lacks its newline: never whole
    records = []
    for line in lines:
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            records.append(record)
    return records, len(lines) - len(records)


def truncate_metrics(run_dir, last_epoch):
    """Keeps one record per epoch up to `last_epoch`, so a resumed run logs no epoch twice.

    Damaged lines are dropped, with a note; returns the records kept.
    """
    records, damaged = _read_metrics(run_dir)
    kept = {}
    for record in records:
        if record["epoch"] <= last_epoch:
            kept[record["epoch"]] = record
    kept = [kept[epoch] for epoch in sorted(kept)]
    if damaged:
        note(f"dropped {damaged} damaged line(s) from {os.path.join(run_dir, METRICS_FILE)}")
    if damaged or len(kept) != len(records):
        write_text(os.path.join(run_dir, METRICS_FILE),
                   "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    return kept


def checkpoint_steps(directory):
    """The steps of the complete-looking checkpoints in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = (re.fullmatch(r"ckpt-(\d+)\.index", name) for name in os.listdir(directory))
    return sorted(int(m.group(1)) for m in found if m)
