"""Seconds to the tutorial's 10-epoch test ELBO: tfvae's training against the tutorial loop's.

    TFVAE_DATA_DIR=/work/shared/data python -m benchmarks.time_to_quality
        [--short] [--out benchmarks/results/time_to_quality.json] [tfvae config flags]

Both train the conv model with latent 2 on statically binarized MNIST (the tutorial's data).
The tutorial loop (batch 32, Adam 1e-4, MC ELBO) runs its 10 epochs; its final test ELBO is
the target (or --target). tfvae then trains through `train.train_and_evaluate` (the real
command's code, default config unless flags say otherwise) until an epoch's test ELBO reaches
the target. tfvae trains for --epochs (default: the tutorial's number).
Times count training only, not per-epoch evaluation, pictures or checkpoints, for
both. --short: 6,400 training and 1,000 test images, 2 tutorial epochs, as a smoke run.
"""

import json
import os
import tempfile
import time

import tensorflow as tf

from benchmarks import tutorial
from tfvae import data, rundir, train
from tfvae.cli import ArgumentParser, add_config_flags, config_from_args
from tfvae.config import Config


def run_tutorial(train_images, test_images, epochs, batch_size=32, learning_rate=1e-4):
    """The tutorial's training: returns one {epoch, seconds, test_elbo} per epoch."""
    tf.keras.utils.set_random_seed(0)
    model = tutorial.CVAE(latent_dim=2)
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    train_step = tutorial.make_train_step(model, optimizer)
    dataset = tutorial.train_dataset(train_images, batch_size)
    records, total = [], 0.0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        for train_x in dataset:
            train_step(train_x)
        total += time.perf_counter() - started
        records.append({"epoch": epoch, "seconds": total,
                        "test_elbo": tutorial.test_elbo(model, test_images)})
        print(f"tutorial epoch {epoch}: test elbo {records[-1]['test_elbo']:.2f}, "
              f"{total:.1f} s", flush=True)
    return records


def run_tfvae(config, target, workdir):
    """tfvae's training for config.epochs; the cumulative training seconds and test ELBO of
    each epoch up to the first that reaches `target` (all of them if none does)."""
    train.train_and_evaluate(config, workdir)
    records, total = [], 0.0
    for record in rundir.read_metrics(workdir):
        total += record["seconds"]  # the training loop only, as for the tutorial
        records.append({"epoch": record["epoch"], "seconds": total,
                        "test_elbo": record["test_elbo"]})
        if record["test_elbo"] >= target:
            break
    return records


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.time_to_quality",
                            description=__doc__.splitlines()[0])
    add_config_flags(parser)
    parser.add_argument("--short", action="store_true", help="a smoke run on a subset")
    parser.add_argument("--tutorial-epochs", type=int, default=None)
    parser.add_argument("--target", type=float, default=None,
                        help="test ELBO to reach (default: the tutorial loop's final one)")
    parser.add_argument("--out", default="benchmarks/results/time_to_quality.json")
    args = parser.parse_args(argv)
    train_size, test_size = (6400, 1000) if args.short else (None, None)
    tutorial_epochs = args.tutorial_epochs or (2 if args.short else 10)
    base = Config(model="conv", latent_dim=2, binarize="static", epochs=tutorial_epochs,
                  train_size=train_size, test_size=test_size)
    config = config_from_args(args, base)

    train_images, _ = data.load_subset("mnist", "train", config.data_dir, train_size)
    test_images, _ = data.load_subset("mnist", "test", config.data_dir, test_size)
    tutorial_records = run_tutorial(train_images, test_images, tutorial_epochs)
    target = args.target if args.target is not None else tutorial_records[-1]["test_elbo"]
    with tempfile.TemporaryDirectory(prefix="tfvae-ttq-") as workdir:
        records = run_tfvae(config, target, workdir)
    reached = records[-1]["test_elbo"] >= target
    tutorial_seconds = tutorial_records[-1]["seconds"]
    result = {"target_test_elbo": target, "tutorial": tutorial_records, "tfvae": records,
              "tfvae_config": json.loads(json.dumps(vars(config))), "reached": reached,
              "tutorial_seconds": tutorial_seconds,
              "tfvae_seconds": records[-1]["seconds"] if reached else None,
              "time_fraction": records[-1]["seconds"] / tutorial_seconds if reached else None}
    print(f"target test elbo {target:.2f}: tutorial {tutorial_seconds:.1f} s "
          f"({tutorial_epochs} epochs); tfvae "
          + (f"{records[-1]['seconds']:.1f} s ({len(records)} epochs), "
             f"{result['time_fraction']:.2f} of the tutorial's time" if reached else
             f"did not reach it in {len(records)} epochs (best "
             f"{max(r['test_elbo'] for r in records):.2f})"))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, default=str)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
