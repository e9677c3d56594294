"""The Keras way, end to end: fit tfvae's ConvVAE as keras-io's VAE example fits its own.

    TFVAE_DATA_DIR=/work/shared/data python -m benchmarks.keras_fit_quality [--epochs 10]
        [--train-size N] [--test-size N] [--out runs/keras_fit_quality]

Only public Keras calls on tfvae.ConvVAE: compile, fit on uint8 [N, 28, 28] arrays (the shape
keras.datasets.mnist.load_data() returns) with validation_data, evaluate, save, load_model.
Prints the test ELBO, to compare with `python -m tfvae.train --latent-dim 2` (-155.66 nats
after 10 epochs on the full data), and checks that the reloaded model scores the same.
"""

import argparse
import json
import os
import time

import keras

from tfvae import ConvVAE, data


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.keras_fit_quality",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--out", default="runs/keras_fit_quality")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    # keras.datasets.mnist.load_data() gives these arrays; tfvae reads the same IDX files.
    x_train, _ = data.load_subset("mnist", "train", size=args.train_size)
    x_test, _ = data.load_subset("mnist", "test", size=args.test_size)

    keras.utils.set_random_seed(0)
    vae = ConvVAE(latent_dim=2)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    started = time.perf_counter()
    history = vae.fit(x_train, epochs=args.epochs, batch_size=128, validation_data=(x_test,),
                      verbose=2)
    seconds = time.perf_counter() - started
    result = vae.evaluate(x_test, batch_size=1000, return_dict=True, verbose=0)

    path = os.path.join(args.out, "vae.keras")
    vae.save(path)
    reloaded = keras.models.load_model(path)
    again = reloaded.evaluate(x_test, batch_size=1000, return_dict=True, verbose=0)
    if again != result:
        raise SystemExit(f"the reloaded model scores {again}, not {result}")

    summary = {"test_elbo": result["elbo"], "test_reconstruction": result["reconstruction"],
               "test_kl": result["kl"], "epochs": args.epochs, "seconds": seconds,
               "val_elbo": history.history["val_elbo"]}
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"fit, {args.epochs} epochs: test elbo {result['elbo']:.2f} nats (reconstruction "
          f"{result['reconstruction']:.2f}, kl {result['kl']:.2f}), {seconds:.0f} s; the "
          f"reloaded {path} scores the same")


if __name__ == "__main__":
    main()
