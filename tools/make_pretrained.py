"""Makes tfvae/pretrained/NAME from a finished training run (for maintainers).

    python tools/make_pretrained.py RUN_DIR NAME --command "python -m tfvae.train ..." \
        --commit 0685f99 --date 2026-12-06 [--run-eval RUN_DIR/eval.json --run-eval-command ...]
        [--eval EVAL_JSON --eval-command ...]

Writes model.keras (the run's model, its weights rounded to float16 precision and stored as
float32, so that the file, deflated, is about half the size: the 784-400-20 model's 2.6 MB of
float32 would not fit the 2 MB the shipped runs may take), config.json, digits.npz and
pretrained.json, whose `check` is the shipped weights' ELBO and NLL on the first
`--check-images` test images at k = `--check-k` (tests/test_pretrained.py checks it). Run it
again with `--eval` (an eval.json of `tfvae.evaluate pretrained:NAME`) to add those numbers.
"""

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from tfvae import checkpoints, data, evaluate, figures, pretrained, rundir
from tfvae.files import write_json

REFERENCE_IMAGES = 1000  # test images whose latent means name the class a transition is in
EVAL_KEYS = ("images", "k", "seed", "elbo", "reconstruction", "kl", "nll",
             "nll_standard_error", "nll_bits_per_dim")


def cpu_model():
    """lscpu's model name of this machine."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines.splitlines()
                 if line.startswith("Model name")), platform.processor())


def save_deflated(model, path):
    """model.save(path), then the archive's members deflated (Keras stores them as they are)."""
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "model.keras")
        model.save(plain)
        with zipfile.ZipFile(plain) as source, \
                zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
            for info in source.infolist():
                target.writestr(info.filename, source.read(info.filename))


def eval_numbers(path, command):
    """The eval.json numbers a user reads, with the command that made them."""
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    return {"command": command, **{key: result[key] for key in EVAL_KEYS}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("name")
    parser.add_argument("--command", required=True, help="the training command")
    parser.add_argument("--commit", required=True, help="the commit that trained it")
    parser.add_argument("--date", required=True, help="the day it was trained (UTC)")
    parser.add_argument("--run-eval", help="eval.json of the run itself (float32 weights)")
    parser.add_argument("--run-eval-command")
    parser.add_argument("--eval", help="eval.json of pretrained:NAME (the shipped weights)")
    parser.add_argument("--eval-command")
    parser.add_argument("--check-images", type=int, default=100)
    parser.add_argument("--check-k", type=int, default=50)
    parser.add_argument("--data-dir", default=os.environ.get("TFVAE_DATA_DIR"))
    args = parser.parse_args(argv)

    run = checkpoints.load_run(args.run_dir)
    model = run.model
    # float16 keeps 11 significant bits: the low 13 of each float32 are then zero and deflate.
    model.set_weights([w.astype(np.float16).astype(w.dtype) for w in model.get_weights()])
    out = os.path.join(pretrained.DIRECTORY, args.name)
    os.makedirs(out, exist_ok=True)
    save_deflated(model, os.path.join(out, pretrained.MODEL_FILE))
    with open(os.path.join(args.run_dir, rundir.CONFIG_FILE), encoding="utf-8") as f:
        config_values = json.load(f)
    config_values["data_dir"] = None  # the maintainer's folder means nothing elsewhere
    write_json(os.path.join(out, rundir.CONFIG_FILE), config_values)

    config = dataclasses.replace(run.config, data_dir=args.data_dir)
    test_x, test_labels = data.load_test_set(config)
    index = figures.class_exemplars(test_labels)
    reference = slice(0, REFERENCE_IMAGES)
    np.savez_compressed(
        os.path.join(out, pretrained.DIGITS_FILE), x=test_x[index], labels=test_labels[index],
        indices=index,
        reference_means=figures.encode_means(model, test_x[reference], test_labels[reference]),
        reference_labels=test_labels[reference])

    last = rundir.read_metrics(args.run_dir)[-1]
    record = {
        "name": args.name, "step": run.step,
        "trained": {"command": args.command, "commit": args.commit, "date": args.date,
                    "cpu": cpu_model(), "epochs": last["epoch"],
                    "test_elbo_last_epoch": last["test_elbo"]},
        "weights": "the run's last checkpoint, rounded to float16 precision (stored as float32)",
    }
    if args.run_eval:
        record["run_evaluation"] = {"weights": "the run's own, float32",
                                    **eval_numbers(args.run_eval, args.run_eval_command)}
    if args.eval:
        record["evaluation"] = {"weights": "these, as shipped",
                                **eval_numbers(args.eval, args.eval_command)}
    write_json(os.path.join(out, pretrained.RECORD_FILE), record)
    with tempfile.TemporaryDirectory() as tmp:
        check, unrounded = (
            evaluate.evaluate_run(run_dir, k=args.check_k, subset=args.check_images,
                                  data_dir=args.data_dir, verbose=0, write=False,
                                  save_images=False, out=tmp)
            for run_dir in (pretrained.PREFIX + args.name, args.run_dir))
    record["check"] = {"command": f"tfvae.evaluate.evaluate_run('pretrained:{args.name}', "
                                  f"k={args.check_k}, subset={args.check_images})",
                       **{key: check[key] for key in EVAL_KEYS},
                       "batch_size": check["batch_size"], "chunk": check["chunk"],
                       "float32_weights": {"elbo": unrounded["elbo"], "nll": unrounded["nll"]}}
    write_json(os.path.join(out, pretrained.RECORD_FILE), record)
    print(json.dumps(record, indent=2))
    print({name: os.path.getsize(os.path.join(out, name)) for name in sorted(os.listdir(out))},
          file=sys.stderr)


if __name__ == "__main__":
    main()
