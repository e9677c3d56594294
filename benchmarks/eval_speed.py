"""Where tfvae.evaluate's time goes, and its speed against this CPU's roofline, in one run.

    TFVAE_DATA_DIR=../shared/data python -m benchmarks.eval_speed [--quick] [--model conv|mlp]
        [--k 5000] [--out benchmarks/results/eval_speed.json]

1. The decoder layer by layer on one decode's latents (tfvae.evaluate's default: 100 test images
   x a chunk of 50 samples), then the Bernoulli log-likelihood and logsumexp on its logits: time
   per decoded sample and each layer's FLOPs over its time as a fraction of the roofline.
2. tfvae.evaluate's IWAE step at k = 5000 on a few test images: float32 (the default, "before")
   against --mixed-precision, at several decode sizes (images x chunk), as decoded samples/s
   and as a fraction of the decoder's forward roofline. Variants are timed in turn, twice,
   keeping each one's faster pass.

The roofline is this machine's float32 matmul rate, measured before and after (both printed;
the fractions use their mean). Freshly initialised models: the speed does not depend on the
weights.
"""

import argparse
import json
import os
import time

import tensorflow as tf

from benchmarks import flops
from tfvae import data, evaluate, rundir, steps
from tfvae.config import Config


def seconds_per_call(function, args, seconds):
    """The best of three timed bursts of `function(*args)` (compiled first)."""
    function(*args).numpy()
    best = float("inf")
    for _ in range(3):
        started, calls = time.perf_counter(), 0
        while time.perf_counter() - started < seconds / 3 or not calls:
            result = function(*args)
            calls += 1
        result.numpy()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def layer_breakdown(model, x, num_latents, seconds):
    """Rows (name, microseconds per decoded sample, MACs per sample) for each decoder layer on
    `num_latents` latents, then the log-likelihood and logsumexp of the IWAE step."""
    rows = []
    h = tf.random.normal([num_latents, model.latent_dim])
    for layer in model.decoder.layers:
        call = tf.function(layer.__call__)
        out = call(h)
        macs = flops.layer_macs(layer, (1, *h.shape[1:]), (1, *out.shape[1:]))
        rows.append((f"{layer.name} -> {'x'.join(map(str, out.shape[1:]))}",
                     seconds_per_call(call, (h,), seconds) / num_latents * 1e6, macs))
        h = out
    logits = tf.cast(h, tf.float32)[None]  # one image's [1, samples, H, W, C]

    @tf.function
    def likelihood_and_logsumexp(logits):
        return tf.reduce_logsumexp(steps.log_likelihood(model, x[:1, None], logits), axis=1)

    rows.append(("log-likelihood + logsumexp",
                 seconds_per_call(likelihood_and_logsumexp, (logits,), seconds)
                 / num_latents * 1e6, 0))
    return rows


def iwae_samples_per_second(model, config, x, labels, k, chunk, seconds):
    """Decoded samples/s of tfvae.evaluate's IWAE step on the images `x`."""
    iwae_step = steps.make_iwae_function(model, config, k, chunk)
    seed = tf.constant([0, 0], tf.int64)
    return len(x) * k / seconds_per_call(iwae_step, (x, labels, seed), seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eval_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="k = 100, short timings")
    parser.add_argument("--model", choices=("conv", "mlp"), default="conv")
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--images", type=int, default=10,
                        help="test images per timed IWAE call")
    parser.add_argument("--out", default="benchmarks/results/eval_speed.json")
    args = parser.parse_args(argv)
    k = 100 if args.quick else args.k
    seconds = 1.0 if args.quick else 6.0
    config = Config(model=args.model, latent_dim=2 if args.model == "conv" else 20)
    images, labels = data.load_subset(config.dataset, "test", size=args.images)
    x, labels = (tf.constant(a) for a in data.test_set(images, labels, config.binarize))
    model = rundir.new_model(config)
    mixed_config, mixed_model = rundir.mixed_precision_copy(config, model)
    decoder_macs = flops.sequence_macs([model.decoder], tf.zeros([1, config.latent_dim]))
    gflops_before = flops.matmul_gflops(seconds=2.0 if args.quick else 6.0)
    print(f"float32 matmul: {gflops_before:.0f} GFLOP/s; decoder forward: "
          f"{2 * decoder_macs / 1e6:.2f} MFLOP per sample", flush=True)

    default_latents = evaluate.DEFAULT_BATCH_SIZE * min(evaluate.DEFAULT_CHUNK, k)
    breakdown = layer_breakdown(model, x, default_latents, seconds / 2)
    for name, micros, macs in breakdown:
        print(f"  {name:<44} {micros:7.1f} us/sample"
              + (f"  {2 * macs / (micros * 1e3) / gflops_before:5.0%} of roofline"
                 if macs else ""), flush=True)

    # (label, model, config, chunk): decode sizes are images x chunk latents.
    default_chunk = max(1, min(k, default_latents // len(x)))
    chunks = sorted({max(1, min(k, size // len(x))) for size in (500, default_latents, 10000)})
    before = " (before: tfvae.evaluate's default)"
    variants = [(f"float32, {len(x) * chunk} latents per decode"
                 + before * (chunk == default_chunk), model, config, chunk) for chunk in chunks]
    variants.append((f"mixed bfloat16, {len(x) * default_chunk} latents per decode",
                     mixed_model, mixed_config, default_chunk))
    rates = {label: [] for label, *_ in variants}
    for _ in range(2):
        for label, variant_model, variant_config, chunk in variants:
            rates[label].append(iwae_samples_per_second(variant_model, variant_config, x, labels,
                                                        k, chunk, seconds))
            print(f"  {label}: {rates[label][-1]:.0f} samples/s", flush=True)
    gflops_after = flops.matmul_gflops(seconds=2.0 if args.quick else 6.0)
    gflops = (gflops_before + gflops_after) / 2
    print(f"float32 matmul after: {gflops_after:.0f} GFLOP/s")
    rows = []
    for label, *_ in variants:
        rate = max(rates[label])
        rows.append({"variant": label, "decoded_samples_per_second": rate,
                     "test_set_minutes": 10000 * k / rate / 60,
                     "fraction_of_decoder_roofline": rate * 2 * decoder_macs / (gflops * 1e9)})
    print(f"\nIWAE step, {args.model}, k = {k} ({len(x)} test images per call):")
    print(f"{'variant':<72} {'samples/s':>10} {'% roofline':>10} {'10k images':>11}")
    for row in rows:
        print(f"{row['variant']:<72} {row['decoded_samples_per_second']:>10.0f} "
              f"{row['fraction_of_decoder_roofline']:>10.0%} "
              f"{row['test_set_minutes']:>8.0f} min")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"model": args.model, "k": k, "matmul_gflops": [gflops_before, gflops_after],
                   "decoder_macs": decoder_macs, "layers": [
                       {"layer": n, "microseconds_per_sample": m, "macs": c}
                       for n, m, c in breakdown], "iwae": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
