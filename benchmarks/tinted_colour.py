"""How well the conv and the fully connected model keep colour: issue #37's tinted digits.

    TFVAE_DATA_DIR=path/to/data python -m benchmarks.tinted_colour --epochs 30

Writes 2,048 MNIST training digits, resized to 32x32 and each multiplied by its own random RGB
colour, as PNGs into a temporary folder; trains on them with `--binarize none --likelihood
logistic --latent-dim 16` (tfvae.train.train_and_evaluate, the seed fixed) the conv model as
tfvae builds it for colour images (z scales and shifts the decoder's upsampling blocks,
`decoder_film`), the conv model without that path (the tutorial's decoder), and the fully
connected model; then prints, for 256 other digits tinted the same way, two errors of the
reconstructions' colours, each the mean over images of |difference| over the digit's pixels
averaged over R, G and B:
- colour: the reconstruction's mean colour against the true one. 0 keeps every colour; the
  right intensity in grey scores about 0.25 (dim reconstructions score worse).
- chroma: the same with each colour's own grey level (the mean of R, G and B) taken away, so
  that intensity does not count. A grey reconstruction scores the true colours' chroma, which
  is printed beside it.
"""

import argparse
import dataclasses
import os
import tempfile

import imageio.v2 as imageio
import numpy as np
import tensorflow as tf

from tfvae import checkpoints, mnist
from tfvae.config import Config
from tfvae.train import train_and_evaluate

TRAIN_IMAGES = 2048
TEST_IMAGES = 256


def tinted(digits, seed):
    """Digits resized to 32x32, each multiplied by its own random RGB colour: (uint8 images
    [N, 32, 32, 3], the digit's pixels [N, 32, 32] (bool))."""
    grey = tf.image.resize(digits[..., None].astype(np.float32) / 255.0, (32, 32)).numpy()
    colours = np.random.default_rng(seed).uniform(0.0, 1.0, (len(digits), 3))
    images = np.clip(np.rint(grey * colours[:, None, None, :] * 255.0), 0, 255)
    return images.astype(np.uint8), grey[..., 0] > 0.5


def colour_errors(model, images, digit_pixels):
    """The colour and chroma errors of `model`'s reconstructions of uint8 `images` (see
    above), and the chroma error of grey reconstructions: three floats."""
    x = images.astype(np.float32) / 255.0
    mean, _ = model.encode(x)
    reconstructions = model.decode(mean, apply_sigmoid=True).numpy()
    colour, chroma, grey = [], [], []
    for reconstruction, truth, pixels in zip(reconstructions, x, digit_pixels):
        made, true = reconstruction[pixels].mean(0), truth[pixels].mean(0)
        colour.append(np.abs(made - true).mean())
        chroma.append(np.abs((made - made.mean()) - (true - true.mean())).mean())
        grey.append(np.abs(true - true.mean()).mean())
    return float(np.mean(colour)), float(np.mean(chroma)), float(np.mean(grey))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    digits, _ = mnist.load("mnist", "train", os.environ.get("TFVAE_DATA_DIR"))
    digits = digits[:TRAIN_IMAGES + TEST_IMAGES]
    with tempfile.TemporaryDirectory() as scratch:
        folder = os.path.join(scratch, "tinted")
        os.makedirs(folder)
        for index, image in enumerate(tinted(digits[:TRAIN_IMAGES], seed=0)[0]):
            imageio.imwrite(os.path.join(folder, f"{index:05d}.png"), image, format="png")
        test_images, digit_pixels = tinted(digits[TRAIN_IMAGES:], seed=1)
        base = Config(dataset=folder, latent_dim=16, binarize="none", likelihood="logistic",
                      image_size=(32, 32), channels=3, batch_size=64, epochs=args.epochs,
                      test_size=64, seed=0)
        models = {"conv": dict(model="conv"),
                  "conv, no colour path": dict(model="conv", decoder_film=False),
                  "mlp": dict(model="mlp")}
        for name, fields in models.items():
            run_dir = os.path.join(scratch, name.replace(" ", "_").replace(",", ""))
            train_and_evaluate(dataclasses.replace(base, **fields), run_dir, progress=False)
            model = checkpoints.load_run(run_dir).model
            colour, chroma, grey = colour_errors(model, test_images, digit_pixels)
            print(f"{name}: colour error {colour:.3f}, chroma error {chroma:.3f} (grey "
                  f"{grey:.3f})", flush=True)


if __name__ == "__main__":
    main()
