"""Peak memory of one training epoch on a folder of images, against the data's decoded size.

    python -m benchmarks.image_folders --synthetic 100000 --size 64 64 /tmp/synthetic
    python -m benchmarks.stream_memory /tmp/synthetic [--compare] [--out result.json]

Each training runs in a child process (tfvae.train's main), which reports its own peak resident
memory (getrusage's ru_maxrss). A folder whose decoded uint8 images exceed
sources.MAX_IN_MEMORY_BYTES is streamed from its files; --limit BYTES sets that threshold in
the child. A baseline run trains on --baseline-images of the folder held in memory: what
TensorFlow, the model and the pictures take whatever the data. --compare also trains with the
whole folder in memory, for contrast.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from tfvae import images, sources

CHILD = ("import resource, sys; from tfvae import sources, train; "
         "sources.MAX_IN_MEMORY_BYTES = int(sys.argv[1]); train.main(sys.argv[2:]); "
         "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def decoded_bytes(folder):
    """(number of images, uint8 bytes of them all decoded), from the first image's shape."""
    import tensorflow as tf

    paths = [os.path.join(folder, p) for p in sources.scan_folder(folder)[0]]
    height, width, channels = tf.io.decode_image(tf.io.read_file(paths[0]),
                                                 expand_animations=False).shape
    return len(paths), len(paths) * height * width * images.STORED_CHANNELS[channels]


def train_child(folder, limit, train_args):
    """Trains one epoch in a child; returns (its peak RSS in bytes, seconds, its result line)."""
    with tempfile.TemporaryDirectory(prefix="tfvae-stream-") as out:
        command = [sys.executable, "-c", CHILD, str(limit), "--dataset", folder, "--epochs", "1",
                   "--out", out, *train_args]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"training failed: {done.stderr.strip().splitlines()[-1]}")
    *_, result, peak = done.stdout.strip().splitlines()
    return int(peak.split()[1]) * 1024, seconds, result  # Linux gives ru_maxrss in KiB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of images (benchmarks.image_folders)")
    parser.add_argument("--limit", type=int, default=sources.MAX_IN_MEMORY_BYTES,
                        help="decoded bytes above which the folder is streamed "
                        f"(default: {sources.MAX_IN_MEMORY_BYTES})")
    parser.add_argument("--compare", action="store_true",
                        help="also train with the folder in memory (needs the memory)")
    parser.add_argument("--baseline-images", type=int, default=1024,
                        help="images of the baseline run, in memory (default: 1024)")
    # The evaluation batch sets most of the memory that does not grow with the data: a batch of
    # 1,000 64x64 images takes ~600 MiB of decoder activations, one of 100 a tenth of it.
    parser.add_argument("--train-args", default="--model conv --latent-dim 20 --test-size 1000 "
                        "--eval-batch-size 100",
                        help="further `python -m tfvae.train` flags, as one string")
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args(argv)
    images, size = decoded_bytes(args.folder)
    result = {"folder": os.path.abspath(args.folder), "images": images, "decoded_bytes": size,
              "train_args": args.train_args, "runs": {}}
    runs = {"baseline": (2**62, ["--train-size", str(args.baseline_images)]),
            "folder": (args.limit, [])}
    if args.compare:
        runs["in memory"] = (2**62, [])
    for name, (limit, extra) in runs.items():
        peak, seconds, last = train_child(args.folder, limit, [*args.train_args.split(), *extra])
        streamed = size > limit and name != "baseline"
        result["runs"][name] = {"streamed": streamed, "peak_rss_bytes": peak,
                                "seconds": seconds, "result": last}
        print(f"{name} ({'streamed' if streamed else 'in memory'}): peak RSS "
              f"{peak / 2**20:.0f} MiB, {seconds:.0f} s; {last}", flush=True)
    baseline = result["runs"]["baseline"]["peak_rss_bytes"]
    for name, run in result["runs"].items():
        run["above_baseline_bytes"] = run["peak_rss_bytes"] - baseline
    print(f"{images} images, {size / 2**20:.0f} MiB decoded; above the baseline: " + ", ".join(
        f"{name} {run['above_baseline_bytes'] / 2**20:.0f} MiB"
        for name, run in result["runs"].items() if name != "baseline"))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
