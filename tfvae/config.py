"""The one frozen config that the command line, the notebooks and the tests all build."""

import dataclasses
import os
import typing

from tfvae.errors import TfvaeError

CHOICES = {
    "model": ("conv", "mlp"),
    "binarize": ("auto", "dynamic", "static", "none"),
    "likelihood": ("auto", "bernoulli", "gaussian", "logistic", "autoregressive"),
    "kl": ("auto", "analytic", "mc"),
    "objective": ("elbo", "iwae", "autoencoder"),
    "lr_schedule": ("constant", "cosine"),
    "strategy": ("auto", "one-device", "mirrored", "multi-worker"),
}


# The two datasets tfvae knows by name without reading them: 28x28 grey images, labels 0-9.
MNIST_LIKE = ("mnist", "fashion_mnist")
MNIST_SHAPE = (28, 28, 1)  # height, width, channels
MNIST_CLASSES = 10
# Larger images exhaust memory: one epoch of 2000 x 2000 images passed 9 GB on the default
# conv model, and their progress pictures were too large for PIL to read back.
MAX_IMAGE_PIXELS = 1024 * 1024

# The likelihoods of binary pixels; the others score 8-bit intensities.
BINARY_LIKELIHOODS = ("bernoulli", "autoregressive")
LAST_VERSION_NOTE = "tfvae 0.1.0 is the last version that trains it: pip install tfvae==0.1.0"

# numpy's and Keras's global seeding takes 0 .. 2**32 - 1; stateless draws take any int64.
MAX_SEED = 2**32 - 1


def _field(default, help, flag=True):
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag})


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a run. Saved as config.json; enough to rebuild model and data."""

    model: str = _field("conv", "conv: TensorFlow's CVAE tutorial network; mlp: fully connected")
    latent_dim: int = _field(20, "size of z; 2 gives the manifold picture, 20 a better likelihood")
    hidden_units: tuple = _field((400,), "mlp hidden layer sizes (400 with --latent-dim 20 is "
                                 "Kingma & Welling's VAE)")
    prior_components: int = _field(
        0, "0: the standard normal prior; K: a VampPrior (Tomczak & Welling 2018), the mixture "
        "of the posteriors of K learned pseudo-inputs")
    posterior_flow_steps: int = _field(
        0, "0: the encoder's Gaussian posterior; N: N affine coupling layers (Real NVP) "
        "applied to its samples, a more flexible q(z|x)")
    top_latent_dim: int = _field(
        0, "0: one stochastic layer; M: two, z = (z1, z2) with z2 the last M of --latent-dim's "
        "units, p(z2) p(z1|z2) p(x|z1, z2), the prior on z2 and q(z1|x, z2) merged as in the "
        "ladder VAE")
    autoregressive_local_units: int = _field(
        0, "with --likelihood autoregressive, C: add a small network of C units per pixel on "
        "the pixels before it within 3 rows and columns (a masked 7x7 convolution), whose "
        "output is a piecewise linear function of the pixel's probability under z (needs "
        "--autoregressive-local-knots)")
    autoregressive_local_knots: int = _field(
        0, "with --autoregressive-local-units, M >= 2: the knots of that piecewise linear "
        "function, which the local network's second layer sets from the window alone (the "
        "network then runs once per image)")
    conv_filters: tuple = _field(
        (32, 64), "conv: filters of the encoder's stride-2 3x3 blocks, mirrored by the decoder "
        "(32 64 on 28x28x1 images is the tutorial's network)")
    decoder_film: typing.Optional[bool] = _field(
        None, "conv: whether z also scales and shifts each channel of the decoder's upsampling "
        "blocks (FiLM), which keeps each image's colour; set when training reads the data: on "
        "for colour images, off for grey ones (the tutorial's network). Runs saved before it "
        "existed have none", flag=False)
    conditional: bool = _field(False, "condition encoder and decoder on the label")
    dataset: str = _field(
        "mnist", "mnist, fashion_mnist, any tensorflow-datasets image dataset (cifar10, "
        "svhn_cropped, emnist/letters, ...), or a folder of PNG/JPEG/BMP/GIF images (one "
        "subfolder per class gives labels; a flat folder is unlabelled)")
    test_fraction: float = _field(
        0.1, "share of a folder's images held out as its test set, chosen by a seeded hash of "
        "each file's path, so the split never changes (and of the train split of a "
        "tensorflow-datasets set that has no test split)")
    image_size: typing.Optional[tuple] = _field(
        None, "resize images to H W (default: their own size, which must then be the same for "
        "all)")
    channels: typing.Optional[int] = _field(
        None, "1 or 3: convert images to grey or colour (default: as stored)")
    num_classes: typing.Optional[int] = _field(
        None, "number of label classes, read from the data when training starts", flag=False)
    data_dir: typing.Optional[str] = _field(
        None, "directory of the four IDX .gz files (default: $TFVAE_DATA_DIR, then tfds)")
    binarize: str = _field(
        "auto", "dynamic: fresh Bernoulli pixels each time an image is seen (the standard "
        "for likelihood numbers); static: threshold at 0.5 as in the tutorial; none: keep "
        "8-bit intensities; auto: what --likelihood needs, else dynamic for MNIST and "
        "Fashion-MNIST and none for other images")
    train_size: typing.Optional[int] = _field(None, "use only the first N training images")
    test_size: typing.Optional[int] = _field(None, "use only the first N test images")
    likelihood: str = _field(
        "auto", "p(x|z): bernoulli for binary pixels; autoregressive, a Bernoulli whose "
        "logits also see the pixels before each one (raster order), a fully visible sigmoid "
        "belief net on top of the decoder (p(x|z) stays exact, pictures become ancestral "
        "samples); for 8-bit intensities (--binarize none) logistic, the exact probability "
        "of each of the 256 values under a discretized logistic (a true likelihood, reported "
        "in bits/dim too), or gaussian, a density (with a learned scale); auto: what "
        "--binarize needs, else bernoulli for MNIST and Fashion-MNIST and logistic for other "
        "images")
    kl: str = _field("auto", "analytic KL has lower-variance gradients than the tutorial's "
                     "single-sample Monte Carlo estimate (mc); auto: analytic where it has a "
                     "closed form, mc under --prior-components, --posterior-flow-steps or "
                     "--top-latent-dim; --objective iwae always uses the sampled log p(z) - "
                     "log q(z|x) inside its weights")
    objective: str = _field(
        "elbo", "training loss: elbo, iwae (Burda et al.'s k-sample bound), or autoencoder: "
        "the same network trained as a plain autoencoder (z is the encoder's mean, no noise, "
        "no KL), to show why its latent space cannot be sampled; the logged test ELBO is "
        "still the true ELBO of the encoder's Gaussian")
    k: int = _field(1, "importance samples per image for --objective iwae")
    kl_warmup_epochs: int = _field(0, "ramp the KL weight linearly from 0 to 1 over N epochs")
    beta: float = _field(
        1.0, "weight of the KL in the training objective (beta-VAE, Higgins et al. 2017): "
        ">1 buys a more regular latent space with blurrier reconstructions, <1 the reverse; "
        "the logged ELBOs stay the true (beta = 1) ones")
    epochs: int = _field(10, "passes over the training set")
    batch_size: int = _field(128, "global batch size (split across replicas)")
    learning_rate: float = _field(1e-3, "Adam learning rate")
    lr_schedule: str = _field(
        "constant", "constant, or cosine: anneal the learning rate to 0 over the run's --epochs "
        "(Loshchilov & Hutter 2017)")
    weight_decay: float = _field(
        0.0, "decoupled weight decay (AdamW, Loshchilov & Hutter 2019): each step shrinks the "
        "networks' weights by learning rate x this; the VampPrior's pseudo-inputs are not decayed")
    seed: int = _field(0, f"seeds weights, shuffling, binarization and sampling (0 to {MAX_SEED})")
    steps_per_call: int = _field(
        50, "training steps per compiled call: amortises Python overhead on small batches")
    jit_compile: typing.Optional[bool] = _field(
        None, "compile steps with XLA (default: on for mlp, whose training step it makes 1.4x "
        "faster; off for conv, which it makes 0.6x as fast as oneDNN's kernels on CPU: "
        "benchmarks/train_speed.py --ablations)")
    eval_batch_size: int = _field(1000, "batch size for test-set evaluation")
    checkpoint_every: int = _field(0, "also checkpoint every N steps (0: at each epoch's end)")
    strategy: str = _field("auto", "tf.distribute strategy; auto: mirrored on several GPUs")
    mixed_precision: bool = _field(
        False, "mixed_float16 on GPU, mixed_bfloat16 on CPU; logits and loss stay float32")

    @property
    def train_noise_shape(self):
        """The standard-normal noise each training image gets: (samples, latent_dim), with k
        samples under the IWAE objective and one otherwise."""
        return (self.k if self.objective == "iwae" else 1, self.latent_dim)

    @property
    def image_shape(self):
        """(height, width, channels) of the images the model sees.

        Known without the data for MNIST and Fashion-MNIST; for other datasets training reads
        it from the data and saves it in config.json (`image_size`, `channels`).
        """
        native = MNIST_SHAPE if self.dataset in MNIST_LIKE else (None, None, None)
        height, width = self.image_size or native[:2]
        channels = self.channels or native[2]
        if channels is None or height is None:
            raise TfvaeError(f"the image shape of {self.dataset} is read from the data when "
                             "training starts; this config has not been through training")
        return (height, width, channels)

    @property
    def label_classes(self):
        """Number of label classes: 10 for MNIST-likes, else what training read from the data."""
        if self.num_classes is None:
            return MNIST_CLASSES if self.dataset in MNIST_LIKE else 0
        return self.num_classes

    @property
    def film(self):
        """Whether the conv decoder has its colour path (`decoder_film`): as saved, else on
        for colour images."""
        if self.decoder_film is not None:
            return self.decoder_film
        return self.model == "conv" and self.image_shape[2] > 1

    @property
    def xla(self):
        """Whether steps are XLA-compiled: --jit-compile if given, else the faster per model."""
        return self.model == "mlp" if self.jit_compile is None else self.jit_compile

    def __post_init__(self):
        hints = typing.get_type_hints(Config)
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), hints[field.name])
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise TfvaeError(f"--{_flag(name)} must be one of {', '.join(choices)}, "
                                 f"not {getattr(self, name)!r}")
        positive = ["latent_dim", "k", "epochs", "batch_size", "steps_per_call",
                    "eval_batch_size", "train_size", "test_size"]
        for name in positive:
            check_at_least(_flag(name), getattr(self, name))
        check_seed("seed", self.seed)
        if not self.dataset:
            raise TfvaeError("--dataset must name a dataset or a folder of images")
        if not 0 < self.test_fraction < 1:
            raise TfvaeError(f"--test-fraction must be between 0 and 1, not {self.test_fraction}")
        if self.image_size is not None and (len(self.image_size) != 2
                                            or min(self.image_size) < 1):
            raise TfvaeError(f"--image-size takes a height and a width, positive, not "
                             f"{' '.join(map(str, self.image_size))}")
        if self.image_size is not None:
            check_image_pixels(*self.image_size)
        if self.channels not in (None, 1, 3):
            raise TfvaeError(f"--channels must be 1 or 3, not {self.channels}")
        check_at_least("num-classes", self.num_classes, minimum=0)
        if not self.conv_filters or min(self.conv_filters) < 1:
            raise TfvaeError(f"--conv-filters must be positive sizes, not {self.conv_filters}")
        if not 0 <= self.weight_decay < float("inf"):
            raise TfvaeError(f"--weight-decay must be 0 or more, not {self.weight_decay}")
        if not 0 <= self.beta < float("inf"):
            raise TfvaeError(f"--beta must be 0 or more, not {self.beta}")
        if self.objective == "autoencoder" and (self.beta != 1.0 or self.kl_warmup_epochs
                                                 or self.prior_components
                                                 or self.posterior_flow_steps
                                                 or self.top_latent_dim):
            raise TfvaeError("--objective autoencoder has no KL term: drop --beta, "
                             "--kl-warmup-epochs, --prior-components, "
                             "--posterior-flow-steps and --top-latent-dim")
        if not self.hidden_units or min(self.hidden_units) < 1:
            raise TfvaeError(f"--hidden-units must be positive sizes, not {self.hidden_units}")
        if not 0 < self.learning_rate < float("inf"):
            raise TfvaeError(f"--learning-rate must be positive, not {self.learning_rate}")
        for name in ("kl_warmup_epochs", "checkpoint_every", "prior_components",
                     "posterior_flow_steps", "top_latent_dim", "autoregressive_local_units",
                     "autoregressive_local_knots"):
            check_at_least(_flag(name), getattr(self, name), minimum=0)
        if self.top_latent_dim >= self.latent_dim:
            raise TfvaeError(f"--top-latent-dim {self.top_latent_dim} leaves no units for the "
                             f"lower layer of --latent-dim {self.latent_dim}: give it fewer")
        if self.objective != "iwae" and self.k != 1:
            raise TfvaeError("--k applies to --objective iwae: add it or drop --k")
        if self.prior_components and self.conditional:
            raise TfvaeError("--prior-components applies to unconditional models: drop "
                             "--conditional or --prior-components")
        if self.prior_components and self.kl == "analytic":
            raise TfvaeError("a VampPrior's KL has no closed form: add --kl mc")
        if self.posterior_flow_steps and self.kl == "analytic":
            raise TfvaeError("a flow posterior's KL has no closed form: add --kl mc")
        if self.top_latent_dim and self.kl == "analytic":
            raise TfvaeError("a two-layer model's KL has no closed form: add --kl mc")
        if self.binarize == "none" and self.likelihood in BINARY_LIKELIHOODS:
            raise TfvaeError("--binarize none keeps intensities in [0, 1], which a Bernoulli "
                             "likelihood cannot score: add --likelihood logistic or gaussian")
        if self.likelihood == "logistic" and self.binarize in ("dynamic", "static"):
            raise TfvaeError("--likelihood logistic scores 8-bit intensities: add "
                             "--binarize none")
        # "auto" never resolves to the autoregressive likelihood, so these hold before resolving.
        if self.autoregressive_local_units and self.likelihood != "autoregressive":
            raise TfvaeError("--autoregressive-local-units applies to the autoregressive "
                             "likelihood: add --likelihood autoregressive")
        if self.autoregressive_local_knots and not self.autoregressive_local_units:
            raise TfvaeError("--autoregressive-local-knots shapes the local network's output: "
                             "add --autoregressive-local-units C")
        if self.autoregressive_local_units and self.autoregressive_local_knots < 2:
            raise TfvaeError(f"--autoregressive-local-units needs --autoregressive-local-knots "
                             f"2 or more, not {self.autoregressive_local_knots} (the local "
                             f"network without knots was removed: {LAST_VERSION_NOTE})")

    def resolved(self):
        """This config with every "auto" replaced by what fits: what config.json holds.

        binarize and likelihood follow each other when one is given (a Bernoulli scores
        binary pixels, the logistic and Gaussian 8-bit ones), else the dataset (MNIST and
        Fashion-MNIST: the tutorial's dynamic binarization and Bernoulli; other images: none
        and the discretized logistic); kl is analytic unless a part has no closed form.
        """
        binary = self.dataset in MNIST_LIKE
        binarize, likelihood = self.binarize, self.likelihood
        if binarize == "auto":
            if likelihood == "auto":
                binarize = "dynamic" if binary else "none"
            else:
                binarize = "dynamic" if likelihood in BINARY_LIKELIHOODS else "none"
        if likelihood == "auto":
            likelihood = "bernoulli" if binarize in ("dynamic", "static") else "logistic"
        kl = self.kl
        if kl == "auto":
            closed_form = not (self.prior_components or self.posterior_flow_steps
                               or self.top_latent_dim)
            kl = "analytic" if closed_form else "mc"
        return dataclasses.replace(self, binarize=binarize, likelihood=likelihood, kl=kl)

def check_at_least(flag, value, minimum=1):
    """Raises a one-line TfvaeError naming --flag unless `value` is None or >= `minimum`."""
    if value is not None and value < minimum:
        bound = "0 or more" if minimum == 0 else f"at least {minimum}"
        raise TfvaeError(f"--{flag} must be {bound}, not {value}")


def check_at_most(flag, value, maximum):
    """Raises a one-line TfvaeError naming --flag unless `value` is None or <= `maximum`."""
    if value is not None and value > maximum:
        raise TfvaeError(f"--{flag} must be at most {maximum}, not {value}")


def check_seed(flag, value):
    """Raises a one-line TfvaeError unless `value` is a seed the code can take."""
    if value is not None and not 0 <= value <= MAX_SEED:
        raise TfvaeError(f"--{flag} must be from 0 to {MAX_SEED}, not {value}")


def _flag(name):
    return name.replace("_", "-")


def _check_type(name, value, hint):
    optional = typing.get_origin(hint) is typing.Union
    if optional and value is None:
        return
    expected = typing.get_args(hint)[0] if optional else hint
    if expected is tuple:
        ok = isinstance(value, tuple) and all(type(v) is int for v in value)
    elif expected is float:
        ok = type(value) in (int, float)
    else:
        ok = type(value) is expected
    if not ok:
        raise TfvaeError(f"config key {name!r} must be {expected.__name__}, not {value!r}")


TUPLE_KEYS = ("hidden_units", "conv_filters", "image_size")


class RemovedModeError(TfvaeError):
    """A config asks for a mode that this version of tfvae no longer trains."""


def config_from_dict(values):
    """Builds a Config from a dict such as a parsed config.json, rejecting unknown keys.

    Files of tfvae 0.1.0 are translated: `autoregressive_decoder: true` becomes the
    autoregressive likelihood; the modes removed since raise RemovedModeError.
    """
    if not isinstance(values, dict):
        raise TfvaeError(f"a config must be a JSON object of keys and values, not {values!r}")
    values = translate_0_1_0(values)
    names = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TfvaeError(f"unknown config keys: {', '.join(unknown)}")
    for name in TUPLE_KEYS:
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    return Config(**values)


# tfvae 0.1.0's keys that today's Config no longer has, and their types.
OLD_KEYS = {"autoregressive_decoder": bool, "autoregressive_hidden_units": int,
            "autoregressive_conditional": bool}


def translate_0_1_0(values):
    """A copy of `values` with tfvae 0.1.0's autoregressive keys in today's terms."""
    values = dict(values)
    for name, kind in OLD_KEYS.items():
        if name in values and type(values[name]) is not kind:
            raise TfvaeError(f"config key {name!r} must be {kind.__name__}, not {values[name]!r}")
    if values.pop("autoregressive_hidden_units", 0):
        raise RemovedModeError("this config uses the autoregressive decoder's MADE hidden layer "
                               "(autoregressive_hidden_units), which was removed: "
                               + LAST_VERSION_NOTE)
    if values.pop("autoregressive_conditional", False):
        raise RemovedModeError("this config uses the autoregressive hidden layer that sees f(z) "
                               "(autoregressive_conditional), which was removed: "
                               + LAST_VERSION_NOTE)
    if values.get("autoregressive_local_units") and not values.get("autoregressive_local_knots"):
        raise RemovedModeError("this config uses the autoregressive local network without knots "
                               "(autoregressive_local_units without autoregressive_local_knots), "
                               "which was removed: " + LAST_VERSION_NOTE)
    if values.pop("autoregressive_decoder", False):
        values["likelihood"] = "autoregressive"
    return values


def check_image_pixels(height, width, source="--image-size"):
    """Raises TfvaeError for images of more than MAX_IMAGE_PIXELS pixels."""
    if height * width > MAX_IMAGE_PIXELS:
        raise TfvaeError(f"{source} gives {height}x{width} images, over tfvae's 1024x1024 "
                         "pixels (memory and pictures grow with their size): pass a smaller "
                         "--image-size to resize them")


def names_folder(dataset):
    """Whether --dataset names a folder of images rather than a dataset.

    A path is an existing directory or starts with /, . or ~; anything else (other than mnist and
    fashion_mnist) is a tensorflow-datasets name such as cifar10 or emnist/letters.
    """
    if dataset in MNIST_LIKE:
        return False
    return os.path.isdir(dataset) or dataset.startswith(("/", ".", "~"))


def default_run_dir(config):
    """runs/DATASET-MODEL-zLATENT[-cond]: rerunning the same command finds the same run.

    DATASET is a folder's own name, or a tensorflow-datasets name with / as -.
    """
    suffix = "-cond" if config.conditional else ""
    if names_folder(config.dataset):
        dataset = os.path.basename(os.path.normpath(os.path.abspath(config.dataset)))
    else:
        dataset = config.dataset.replace("/", "-")
    return f"runs/{dataset}-{config.model}-z{config.latent_dim}{suffix}"
