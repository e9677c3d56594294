"""Training throughput of tfvae against TensorFlow's tutorial loop, as a fraction of roofline.

    TFVAE_DATA_DIR=/work/shared/data python -m benchmarks.train_speed [--quick] [--ablations]
        [--out benchmarks/results/train_speed.json]

Each configuration runs in its own process (benchmarks.speed_child), so its peak resident
memory is its own and no compiled state leaks between them. The roofline is this machine's
float32 matmul rate divided by the FLOPs a training step does per image, counted from the
model's layer shapes (benchmarks.flops).
"""

import argparse
import json
import os
import subprocess
import sys

from benchmarks import flops

MODELS = ("conv", "mlp")
BATCH_SIZES = (32, 128, 512)
# Options measured one at a time (--ablations), each against the default tfvae step.
ABLATIONS = {
    "xla: gradients only": {"overrides": {"jit_compile": True}, "jit_whole_step": False},
    "xla: whole step": {"overrides": {"jit_compile": True}, "jit_whole_step": True},
    "steps_per_call 1": {"overrides": {"steps_per_call": 1}},
    "steps_per_call 200": {"overrides": {"steps_per_call": 200}},
    "threads intra 2 inter 1": {"threads": [2, 1]},
    "threads intra 1 inter 2": {"threads": [1, 2]},
    "mixed bfloat16": {"overrides": {"mixed_precision": True}},
    "no op determinism": {"deterministic": False},
    "per-example input map": {"pipeline": "per-example"},
    "input pipeline alone": {"kind": "iterator"},
    "per-example input alone": {"kind": "iterator", "pipeline": "per-example"},
}
# The mlp's input and threads behave as the conv's; its compile options are what differ.
MLP_ABLATIONS = ("xla: gradients only", "xla: whole step", "steps_per_call 1",
                 "steps_per_call 200")


def run_child(spec, command=("benchmarks.speed_child",)):
    """Runs one configuration in a fresh Python (`python -m *command SPEC`); returns its result."""
    completed = subprocess.run(
        [sys.executable, "-m", *command, json.dumps(spec)],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = completed.stderr.strip().splitlines()[-3:]
    raise RuntimeError(f"benchmark {spec} failed: {' | '.join(tail)}")


def with_roofline(result, gflops):
    roofline = gflops * 1e9 / result["flops_per_image"]
    return dict(result, roofline_images_per_second=roofline,
                fraction_of_roofline=result["images_per_second"] / roofline)


def print_table(rows, label):
    print(f"{label:<28} {'model':<5} {'batch':>5} {'images/s':>10} {'roofline':>8} "
          f"{'x base':>7} {'peak MB':>8}")
    for row in rows:
        ratio = row.get("speedup_over_tutorial")
        print(f"{row['label']:<28} {row['model']:<5} {row['batch_size']:>5} "
              f"{row['images_per_second']:>10.0f} {row['fraction_of_roofline']:>8.1%} "
              f"{'' if ratio is None else f'{ratio:.2f}':>7} {row['peak_rss_mb']:>8.0f}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: conv, batch 32, 2 s")
    parser.add_argument("--ablations", action="store_true",
                        help="also measure each speed option one at a time (conv and mlp, 128)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="timed seconds per configuration (default 10, quick 2)")
    parser.add_argument("--out", default="benchmarks/results/train_speed.json")
    args = parser.parse_args(argv)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    models, batch_sizes = (("conv",), (32,)) if args.quick else (MODELS, BATCH_SIZES)

    gflops = flops.matmul_gflops(seconds=1.0 if args.quick else 4.0)
    print(f"float32 matmul: {gflops:.0f} GFLOP/s", flush=True)
    rows = []
    for model in models:
        for batch_size in batch_sizes:
            base = {"model": model, "batch_size": batch_size, "seconds": seconds}
            tutorial = with_roofline(run_child(dict(base, kind="tutorial")), gflops)
            ours = with_roofline(run_child(dict(base, kind="tfvae")), gflops)
            ours["speedup_over_tutorial"] = ours["images_per_second"] / tutorial[
                "images_per_second"]
            rows += [dict(tutorial, label="tutorial loop"), dict(ours, label="tfvae")]
            print_table(rows[-2:], f"{model} batch {batch_size}")
    ablations = []
    if args.ablations:
        # Each option runs right after a default run, and is reported as a ratio to it: on a
        # shared machine the load drifts more between minutes than between neighbours.
        for model in ("conv", "mlp"):
            base = {"kind": "tfvae", "model": model, "batch_size": 128, "seconds": seconds}
            for label, change in ABLATIONS.items():
                if model == "mlp" and label not in MLP_ABLATIONS:
                    continue
                reference = run_child(base)
                result = with_roofline(run_child(dict(base, **change)), gflops)
                result.update(label=label, default_images_per_second=reference[
                    "images_per_second"], ratio_to_default=result["images_per_second"]
                    / reference["images_per_second"])
                ablations.append(result)
                print(f"ablation {model} {label}: {result['images_per_second']:.0f} images/s, "
                      f"{result['ratio_to_default']:.2f}x the default", flush=True)
    print()
    print_table(rows, "final")
    for row in ablations:
        print(f"ablation {row['model']:<5} {row['label']:<26} {row['images_per_second']:>8.0f} "
              f"images/s, {row['ratio_to_default']:.2f}x the default next to it")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"matmul_gflops": gflops, "results": rows, "ablations": ablations}, f,
                  indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
