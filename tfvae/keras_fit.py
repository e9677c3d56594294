"""Keras's fit(), evaluate() and predict() on tfvae's models, on the same objective as the CLI.

`KerasFitMixin` is mixed into `tfvae.models.VAE`. Its train_step and test_step call
`steps.per_example_terms`, the function behind the CLI's compiled steps, so `history.history`
and `evaluate` report the CLI's ELBO, reconstruction and KL in nats per image.
"""

import keras
import numpy as np
import tensorflow as tf

from tfvae import pixels, steps
from tfvae.errors import TfvaeError

BINARIZATIONS = ("dynamic", "static", "none")
TRACKED = ("loss", *steps.METRIC_NAMES)  # history keys, and val_ forms of them
STEPS_PER_EXECUTION = 50  # as Config.steps_per_call: see compile


def check_image_shape(shape, image_shape):
    """Raises TfvaeError unless `shape` is [N, H, W, C] of `image_shape` (N may be unknown).

    Grey images may also come as [N, H, W], as keras.datasets.mnist gives them.
    """
    dims, (height, width, channels) = tuple(shape)[1:], image_shape
    allowed = [(height, width, channels)] + ([(height, width)] if channels == 1 else [])
    if dims not in allowed:
        forms = " or ".join(str([None, *form]).replace("None", "N") for form in allowed)
        raise TfvaeError(f"images must be shaped {forms} for this model, not {list(shape)}")


def to_unit_images(x, image_shape=None):
    """Images as float32 [B, H, W, C] intensities in [0, 1].

    Args:
      x: uint8 (or other integer) images in 0..255, or floats in [0, 1], shaped [B, H, W, C],
        or [B, H, W] for grey images.
      image_shape: (H, W, C) the images must have (checked when given).
    """
    x = tf.convert_to_tensor(x)
    if image_shape is not None:
        check_image_shape(x.shape, image_shape)
    if x.shape.rank == 3:
        x = x[..., None]
    if x.dtype.is_integer:
        return tf.cast(x, tf.float32) / 255.0  # as data.test_set scales the stored bytes
    return tf.cast(x, tf.float32)


def step_seeds(seed, step, replica=0):
    """The (pixel seed, noise seed) of training step `step`: a stateless function of its args.

    Keyed by the optimizer's iteration count, a resumed fit (BackupAndRestore) draws what an
    uninterrupted one would, however steps are grouped into compiled calls.

    Args:
      seed: the int given to compile; step: int64 scalar; replica: the replica's index, so
        the halves of a batch split across replicas get independent draws.
    """
    key = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), -1 - step)
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(replica, tf.int64))
    pixel_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(key, num=2))
    return pixel_seed, noise_seed


def eval_dataset(x, y, *, batch_size, binarize, latent_dim, image_shape):
    """Held-out images as the CLI evaluates them: ({'x', 'eps'}, labels) batches.

    The whole array is binarized at once and given the fixed noise of `tfvae.pixels`, as the
    CLI's data.test_set and data.eval_batches do, so evaluate() equals the CLI's test ELBO.

    Args:
      x: images as `to_unit_images` takes them, all of them in one array.
      y: labels [N], or None for an unconditional model.
      batch_size: images per batch; binarize: 'dynamic', 'static' or 'none';
      latent_dim: the model's latent size; image_shape: its (H, W, C).
    """
    images = to_unit_images(x, image_shape)
    x = pixels.held_out_targets(images, binarize).numpy()
    labels = np.zeros(len(x), np.int32) if y is None else np.asarray(y).astype(np.int32)
    eps = pixels.eval_noise(len(x), (1, latent_dim))
    return (tf.data.Dataset.from_tensor_slices(({"x": x, "eps": eps}, labels))
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def check_labels(y, count, num_classes):
    """Raises TfvaeError unless `y` holds `count` whole class numbers in 0..num_classes-1."""
    labels = np.asarray(y)
    if labels.shape != (count,) or not (np.issubdtype(labels.dtype, np.integer)
                                        or np.issubdtype(labels.dtype, np.floating)):
        raise TfvaeError(f"labels must be {count} class numbers, one per image, not an array "
                         f"shaped {list(labels.shape)} of {labels.dtype}")
    bad = ~np.isfinite(labels) | (labels != np.round(labels)) | (labels < 0) | (
        labels >= num_classes) if labels.size else np.zeros(0, bool)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise TfvaeError(f"labels must be whole classes 0..{num_classes - 1}; label {index} is "
                         f"{labels.tolist()[index]!r}")


def _is_array(x):
    return isinstance(x, (np.ndarray, tf.Tensor))


class KerasFitMixin:
    """fit / evaluate / predict for tfvae's VAEs, through train_step / test_step overrides.

    The binarization is chosen in `compile` (see there). History and evaluate hold 'loss'
    (the negative ELBO), 'elbo', 'reconstruction' and 'kl', in nats per image.
    """

    # XLA's CPU convolutions are slower than oneDNN's (see Config.jit_compile); models say.
    default_jit_compile = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Made here, before the model is built (Keras locks its state then); metrics are not
        # part of tf.train.Checkpoint, so the CLI's checkpoints are unchanged.
        self._fit_trackers = [keras.metrics.Mean(name=name) for name in TRACKED]
        self.fit_binarize, self.fit_seed, self.fit_kl = "dynamic", 0, "analytic"
        self.fit_jit_compile, self._fit_update = False, None

    def compile(self, optimizer="adam", *, binarize="dynamic", seed=0, kl=None,
                jit_compile=None, steps_per_execution=None, **kwargs):
        """Configures training; the loss is the negative ELBO, so there is no `loss` argument.

        Args:
          optimizer: as keras.Model.compile, e.g. keras.optimizers.Adam(1e-3).
          binarize: training targets, as the CLI's --binarize: 'dynamic' draws fresh Bernoulli
            pixels at every step (seeded: a function of `seed` and the optimizer's iteration);
            'static' thresholds at 0.5; 'none' keeps intensities (needs a model built with
            likelihood='logistic' or 'gaussian'; the only choice for 'logistic'). Validation
            and evaluate binarize once, with the CLI's fixed test seed, so their numbers
            equal `python -m tfvae.train`'s test ELBO.
          seed: seeds the training binarization and reparameterization noise.
          kl: 'analytic' or 'mc' as the CLI's --kl (default: 'mc' under a VampPrior).
          jit_compile: XLA for the update (the ELBO, its gradients and, outside a distribution
            strategy, the optimizer step); default on for MlpVAE, off for ConvVAE, as the CLI.
            The random draws stay outside XLA, whose CPU generators are slow, so Keras's own
            `model.jit_compile` stays False.
          steps_per_execution: training steps per compiled call; default 50, the CLI's
            --steps-per-call, not Keras's 1, at which the Python between calls made fit 0.72x
            (conv) and 0.86x (mlp) as fast (benchmarks/keras_fit_speed.py, batch 128).
            Batch-level callbacks then see every 50th step. Inside a distribution strategy's
            scope the default is 1: Keras 3.15's multi-step loop fails there under
            MirroredStrategy ("You must feed a value for placeholder tensor").
          **kwargs: the rest of keras.Model.compile (run_eagerly, ...).
        """
        for name in ("loss", "metrics", "weighted_metrics", "loss_weights"):
            if kwargs.pop(name, None):
                raise TfvaeError(f"compile() takes no {name}: a VAE's loss is its negative "
                                 "ELBO, and elbo, reconstruction and kl are always reported")
        if binarize not in BINARIZATIONS:
            raise TfvaeError(f"binarize must be one of {', '.join(BINARIZATIONS)}, "
                             f"not {binarize!r}")
        if binarize == "none" and self.likelihood.targets == "binary":
            raise TfvaeError("binarize='none' keeps intensities, which a Bernoulli likelihood "
                             "cannot score: build the model with likelihood='logistic' or "
                             "'gaussian'")
        if binarize != "none" and self.likelihood.targets == "8-bit":
            raise TfvaeError("likelihood='logistic' scores the 256 values of 8-bit pixels: "
                             "compile with binarize='none'")
        kl = kl or ("analytic" if self.closed_form_kl else "mc")
        if kl not in ("analytic", "mc") or (not self.closed_form_kl and kl == "analytic"):
            raise TfvaeError(f"kl must be 'analytic' or 'mc' ('mc' where the KL has no closed "
                             f"form), not {kl!r}")
        if jit_compile in (None, "auto"):
            jit_compile = self.default_jit_compile
        if steps_per_execution is None:
            steps_per_execution = 1 if tf.distribute.has_strategy() else STEPS_PER_EXECUTION
        if not self.built:  # BackupAndRestore and load_weights need the variables before fit
            self.build((None, *self.image_shape))
        # Keras would put the whole step in XLA, draws included: XLA's CPU philox took 5 ms per
        # batch of 128 images and made fit of the mlp 0.6x as fast as the CLI. So the draws
        # are made outside and XLA compiles the update alone, as the CLI's steps do.
        super().compile(optimizer=optimizer, jit_compile=False,
                        steps_per_execution=steps_per_execution, **kwargs)
        # Slots now, so load_weights and BackupAndRestore restore the optimizer's state too.
        self.optimizer.build(self.trainable_variables)
        self.fit_binarize, self.fit_seed, self.fit_kl = binarize, int(seed), kl
        self.fit_jit_compile = bool(jit_compile)
        self._fit_update = self._make_update(self.fit_jit_compile)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config.update(binarize=self.fit_binarize, seed=self.fit_seed, kl=self.fit_kl,
                          jit_compile=self.fit_jit_compile)
        return config

    def compile_from_config(self, config):
        """Recompiles a loaded model, binarization included (keras.models.load_model)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    @property
    def metrics(self):
        return list(self._fit_trackers)

    def _unpack(self, batch):
        """(x, labels, eps) of a batch; eps is None unless eval_dataset prepared it."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
        eps = None
        if isinstance(x, dict):
            x, eps = x["x"], x["eps"]
        labels = None
        if self.conditional:
            if y is None:
                raise TfvaeError("this model is label-conditional: pass the labels, "
                                 "fit(x, y) / evaluate(x, y) / predict((x, y))")
            labels = tf.cast(tf.reshape(y, [-1]), tf.int32)
        return x, labels, eps

    def _report(self, terms):
        loss, *others = self._fit_trackers
        loss.update_state(-terms["objective"])  # per image, so the mean is over all images
        for tracker, name in zip(others, steps.METRIC_NAMES):
            tracker.update_state(terms[name])
        return {tracker.name: tracker.result() for tracker in self._fit_trackers}

    def _make_update(self, xla):
        """`update(x, labels, eps) -> terms`: one optimizer step on a replica's batch."""

        def gradients(x, labels, eps):
            # Gradients are summed across replicas, so each divides by the global batch.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            with tf.GradientTape() as tape:
                terms = steps.per_example_terms(self, x, labels, eps, kl=self.fit_kl)
                loss = -tf.reduce_mean(terms["objective"]) / replicas
                scaled = self.optimizer.scale_loss(loss)  # loss scaling under mixed_float16
            return tape.gradient(scaled, self.trainable_variables), terms

        whole_step = xla and not tf.distribute.has_strategy()
        # Under a strategy, applying gradients makes a cross-replica merge_call, kept out of XLA.
        compiled_gradients = tf.function(gradients, jit_compile=True) if (
            xla and not whole_step) else gradients

        def update(x, labels, eps):
            grads, terms = compiled_gradients(x, labels, eps)
            self.optimizer.apply(grads, self.trainable_variables)
            return terms

        return tf.function(update, jit_compile=True) if whole_step else update

    def train_step(self, batch):
        x, labels, _ = self._unpack(batch)
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context else 0
        pixel_seed, noise_seed = step_seeds(
            self.fit_seed, tf.convert_to_tensor(self.optimizer.iterations), replica)
        x = pixels.binarize(to_unit_images(x, self.image_shape), self.fit_binarize, pixel_seed)
        eps = tf.random.stateless_normal([tf.shape(x)[0], 1, self.latent_dim], seed=noise_seed)
        return self._report(self._fit_update(x, labels, eps))

    def test_step(self, batch):
        x, labels, eps = self._unpack(batch)
        if eps is None:  # a batch of a user's dataset: fixed draws, the same for every batch
            x = pixels.held_out_targets(to_unit_images(x, self.image_shape), self.fit_binarize)
            eps = pixels.eval_noise(tf.shape(x)[0], (1, self.latent_dim))
        terms = steps.per_example_terms(self, x, labels, eps, objective="elbo", kl=self.fit_kl)
        return self._report(terms)

    def predict_step(self, batch):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        if isinstance(x, (tuple, list)):  # predict((images, labels)) of conditional models
            x = tuple(x)
        x, labels, _ = self._unpack(x)
        logits, _, _ = self(to_unit_images(x, self.image_shape), labels)
        return self.likelihood.mean(logits)

    def _check_arrays(self, x, y):
        """Fails early, in one line, on arrays a VAE cannot take."""
        if not _is_array(x):
            return
        check_image_shape(x.shape, self.image_shape)
        if not len(x):
            raise TfvaeError("no images were given (an array of 0 images): pass at least one")
        values = np.asarray(x)
        if np.issubdtype(values.dtype, np.floating):
            if not np.isfinite(values).all():  # NaN passes the range check, and trains as 0
                raise TfvaeError("float images hold NaN or infinite values: replace them with "
                                 "intensities in [0, 1]")
            low, high = float(np.min(values)), float(np.max(values))
            if low < 0.0 or high > 1.0:
                raise TfvaeError(f"float images must be intensities in [0, 1], not "
                                 f"[{low:g}, {high:g}]: pass uint8 images or divide by 255")
        elif values.dtype != np.uint8:
            # Integers are 8-bit levels, divided by 255: 16-bit or negative values are not.
            low, high = int(np.min(values)), int(np.max(values))
            if low < 0 or high > 255:
                raise TfvaeError(f"integer images must hold 8-bit levels 0..255, not "
                                 f"{low}..{high} ({values.dtype}): pass uint8 images, or floats "
                                 "in [0, 1]")
        if self.conditional and y is None:
            raise TfvaeError("this model is label-conditional: pass the labels, "
                             "fit(x, y) / evaluate(x, y) / predict((x, y))")
        if self.conditional:
            check_labels(y, len(values), self.num_classes)

    def fit(self, x=None, y=None, *args, **kwargs):
        """keras.Model.fit; array validation_data is scored as the CLI scores its test set."""
        self._check_arrays(x, y)
        validation = kwargs.get("validation_data")
        if validation is not None and not isinstance(validation, tf.data.Dataset):
            val_x, val_y, _ = keras.utils.unpack_x_y_sample_weight(tuple(validation))
            if _is_array(val_x):
                self._check_arrays(val_x, val_y)
                batch_size = kwargs.get("validation_batch_size") or kwargs.get("batch_size")
                kwargs["validation_data"] = eval_dataset(
                    val_x, val_y, batch_size=batch_size or 32, binarize=self.fit_binarize,
                    latent_dim=self.latent_dim, image_shape=self.image_shape)
                kwargs.pop("validation_batch_size", None)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, *args, **kwargs):
        """keras.Model.evaluate; arrays are scored as the CLI scores its test set."""
        self._check_arrays(x, y)
        if _is_array(x):
            x = eval_dataset(x, y, batch_size=batch_size or 32, binarize=self.fit_binarize,
                             latent_dim=self.latent_dim, image_shape=self.image_shape)
            y = batch_size = None
        return super().evaluate(x, y, batch_size, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Reconstructions [N, H, W, C] in [0, 1] (`intensities`) of the posterior means.

        Args:
          x: images (uint8, or floats in [0, 1]), encoded as given, without binarization;
            conditional models take a tuple (images, labels).
          *args: as keras.Model.predict.
          **kwargs: as keras.Model.predict.
        """
        images, labels = (x[0], x[1]) if isinstance(x, tuple) and len(x) == 2 else (x, None)
        self._check_arrays(images, labels)
        return super().predict(x, *args, **kwargs)
