"""Training throughput of `model.fit` against the CLI's training step, on the same model.

    TFVAE_DATA_DIR=/work/shared/data python -m benchmarks.keras_fit_speed [--seconds 10]
        [--models conv mlp] [--batch-size 128] [--out benchmarks/results/keras_fit_speed.json]

Each measurement runs in its own process: the CLI's step through benchmarks.speed_child, fit
through this module's --child mode, which fits the CLI's model (build_model of the same Config)
on the uint8 training images in memory, as a Keras user would, and times the steps after the
first epoch (which compiles). Reported: images/s, and the ratio of fit to the mean of two CLI
measurements made just before and after it.
"""

import argparse
import json
import os
import time

from benchmarks.train_speed import run_child

# The compile options measured: tfvae's defaults (50 steps per compiled call, as the CLI), and
# Keras's own default of one step per call.
FIT_OPTIONS = {"fit, defaults": {}, "fit, steps_per_execution=1": {"steps_per_execution": 1}}


def fit_child(spec):
    """Times `model.fit` for about spec['seconds'] seconds; prints `RESULT {json}`."""
    import keras

    from tfvae import data
    from tfvae.config import Config
    from tfvae.models import build_model

    config = Config(model=spec["model"], batch_size=spec["batch_size"])
    keras.utils.set_random_seed(config.seed)
    images, _ = data.load("mnist", "train")
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), **spec["options"])
    class Clock(keras.callbacks.Callback):
        """Counts optimizer steps from the second epoch's first compiled call on.

        The first epoch compiles the step twice (its last batch is partial, a new shape), as a
        real fit does once; the speed measured is the steady state that follows.
        """

        def on_train_begin(self, logs=None):
            self.started = None

        def on_train_batch_end(self, batch, logs=None):
            if self.started is None:
                if self.epoch >= 1:
                    self.first = int(self.model.optimizer.iterations.numpy())
                    self.started = time.perf_counter()
            elif time.perf_counter() - self.started >= spec["seconds"]:
                self.seconds = time.perf_counter() - self.started
                self.steps = int(self.model.optimizer.iterations.numpy()) - self.first
                self.model.stop_training = True

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    clock = Clock()
    # Epochs until the clock stops it: the mlp runs through an epoch in a few seconds.
    model.fit(images, epochs=10_000, batch_size=config.batch_size, verbose=0, callbacks=[clock])
    rate = clock.steps * config.batch_size / clock.seconds
    print("RESULT " + json.dumps(dict(spec, images_per_second=rate)), flush=True)


def run_fit_child(spec):
    return run_child(spec, command=("benchmarks.keras_fit_speed", "--child"))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.keras_fit_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="timed seconds per measurement")
    parser.add_argument("--models", nargs="+", default=["conv", "mlp"], choices=["conv", "mlp"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="benchmarks/results/keras_fit_speed.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return fit_child(json.loads(args.child))

    rows = []
    for model in args.models:
        base = {"model": model, "batch_size": args.batch_size, "seconds": args.seconds}
        # The CLI is measured before and after the fits: the shared machine's load drifts.
        cli = [run_child(dict(base, kind="tfvae"))]
        fits = {label: run_fit_child(dict(base, options=options))
                for label, options in FIT_OPTIONS.items()}
        cli.append(run_child(dict(base, kind="tfvae")))
        cli_rate = sum(c["images_per_second"] for c in cli) / len(cli)
        rows.append(dict(cli[0], label="CLI step", images_per_second=cli_rate,
                         runs=[c["images_per_second"] for c in cli], ratio_to_cli=1.0))
        runs = ", ".join(f"{c['images_per_second']:.0f}" for c in cli)
        print(f"{model} batch {args.batch_size}: CLI {cli_rate:.0f} images/s (runs: {runs})",
              flush=True)
        for label, fit in fits.items():
            ratio = fit["images_per_second"] / cli_rate
            rows.append(dict(fit, label=label, ratio_to_cli=ratio))
            print(f"{model} batch {args.batch_size}: {label} {fit['images_per_second']:.0f} "
                  f"images/s, {ratio:.2f}x the CLI", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
