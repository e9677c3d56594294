"""Peak memory of one training epoch on a folder of images, against the data's decoded size.

    python -m benchmarks.image_folders --synthetic 100000 --size 64 64 /tmp/synthetic
    python -m benchmarks.stream_memory /tmp/synthetic [--compare] [--out result.json]

Training runs in a child process (`python -m tfvae.train`), whose peak resident memory
(getrusage's ru_maxrss) is then its own. A folder whose decoded uint8 images exceed
sources.MAX_IN_MEMORY_BYTES is streamed from its files; --limit BYTES sets that threshold in
the child, and --compare also trains with the whole folder in memory, for contrast.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from tfvae import sources

CHILD = ("import sys; from tfvae import sources, train; "
         "sources.MAX_IN_MEMORY_BYTES = int(sys.argv[1]); train.main(sys.argv[2:])")


def decoded_bytes(folder):
    """(number of images, uint8 bytes of all of them decoded), from the first image's shape."""
    paths = [os.path.join(folder, p) for p in sources.scan_folder(folder)[0]]
    shape = sources.decode_files(paths[:1], _stored_shape(paths[0]))[0].shape
    return len(paths), len(paths) * int(np.prod(shape))


def _stored_shape(path):
    import tensorflow as tf

    height, width, channels = tf.io.decode_image(tf.io.read_file(path),
                                                 expand_animations=False).shape
    return (height, width, sources.STORED_CHANNELS[channels])


def train_child(folder, limit, train_args):
    """Trains one epoch in a child; returns (peak RSS in bytes, seconds, its last line)."""
    with tempfile.TemporaryDirectory(prefix="tfvae-stream-") as out:
        command = [sys.executable, "-c", CHILD, str(limit), "--dataset", folder, "--epochs", "1",
                   "--out", out, *train_args]
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode:
        raise SystemExit(f"training failed: {done.stderr.strip().splitlines()[-1]}")
    if peak <= before:  # ru_maxrss is the maximum over all children so far
        print("note: an earlier child peaked higher; run one configuration per process",
              file=sys.stderr)
    return peak * 1024, seconds, done.stdout.strip().splitlines()[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of images (benchmarks.image_folders)")
    parser.add_argument("--limit", type=int, default=sources.MAX_IN_MEMORY_BYTES,
                        help="decoded bytes above which the folder is streamed "
                        f"(default: {sources.MAX_IN_MEMORY_BYTES})")
    parser.add_argument("--compare", action="store_true",
                        help="also train with the folder in memory (needs the memory)")
    parser.add_argument("--train-args", default="--model conv --latent-dim 20 --test-size 1000",
                        help="further `python -m tfvae.train` flags, as one string")
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args(argv)
    images, size = decoded_bytes(args.folder)
    result = {"folder": os.path.abspath(args.folder), "images": images, "decoded_bytes": size,
              "train_args": args.train_args, "runs": []}
    limits = [args.limit] + ([2**62] if args.compare else [])
    for limit in limits:
        peak, seconds, last = train_child(args.folder, limit, args.train_args.split())
        run = {"streamed": size > limit, "peak_rss_bytes": peak, "seconds": seconds,
               "peak_over_data": peak / size, "result": last}
        result["runs"].append(run)
        print(f"{'streamed' if run['streamed'] else 'in memory'}: peak RSS {peak / 2**20:.0f} MiB"
              f" for {images} images of {size / 2**20:.0f} MiB decoded "
              f"({run['peak_over_data']:.2f}x), {seconds:.0f} s; {last}", flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
