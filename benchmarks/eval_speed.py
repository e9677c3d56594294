"""Where tfvae.evaluate's time goes, and its speed against this CPU's roofline, in one run.

    TFVAE_DATA_DIR=../shared/data python -m benchmarks.eval_speed [--quick] [--model conv|mlp]
        [--k 5000] [--out benchmarks/results/eval_speed.json]

1. The decoder layer by layer on one decode's latents (tfvae.evaluate's default: 100 test images
   x a chunk of 50 samples), then the Bernoulli log-likelihood and logsumexp on its logits: time
   per decoded sample and each layer's FLOPs over its time as a fraction of the roofline.
   Beside each layer, the same multiply-adds as the one float32 matmul they amount to (a
   transposed convolution's [pixels, in] x [in, taps x out]): what the layer would cost if its
   scatter, bias and ReLU were free, and so how far any rewrite of it could go.
   The logits layer (tfvae.models.Conv2DTranspose) is also timed as Keras's own layer.
2. tfvae.evaluate's IWAE step at k = 5000 on a few test images, as decoded samples/s and as a
   fraction of the decoder's forward roofline: "before", with Keras's Conv2DTranspose as the
   logits layer; then float32 (the default) at several decode sizes (images x chunk), and
   --mixed-precision. Variants are timed in turn, twice, keeping each one's faster pass.

The roofline is this machine's float32 matmul rate, measured before and after (both printed;
the fractions use their mean). Freshly initialised models: the speed does not depend on the
weights.
"""

import argparse
import json
import os
import time

import keras
import tensorflow as tf

from benchmarks import flops
from tfvae import checkpoints, data, evaluate, models, steps
from tfvae.config import Config
from tfvae.models import layers


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


def as_one_matmul(layer, h):
    """(inputs, kernel) of the one matmul doing a Dense or Conv2DTranspose layer's
    multiply-adds on `h`: a transposed convolution's is [pixels, in] x [in, taps x out]."""
    kernel = tf.convert_to_tensor(layer.kernel)
    if isinstance(layer, keras.layers.Conv2DTranspose):  # kernel [kh, kw, out, in]
        kernel = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [kernel.shape[-1], -1])
    return tf.reshape(h, [-1, kernel.shape[0]]), kernel


def layer_breakdown(model, x, num_latents, seconds):
    """Rows (name, microseconds per decoded sample, MACs per sample, microseconds of the same
    MACs as one matmul or None) for each decoder layer on `num_latents` latents, then the
    log-likelihood and logsumexp of the IWAE step. A layer and its matmul are timed in turn,
    twice, keeping each one's faster pass, so both see the machine in the same state."""
    rows = []
    h = tf.random.normal([num_latents, model.latent_dim])
    matmul = tf.function(tf.matmul)
    for layer in model.decoder.layers:
        call = tf.function(layer.__call__)
        out = call(h)
        macs = flops.layer_macs(layer, (1, *h.shape[1:]), (1, *out.shape[1:]))
        timings = [(call, (h,))] + ([(matmul, as_one_matmul(layer, h))] if macs else [])
        if isinstance(layer, models.Conv2DTranspose):
            timings.append((tf.function(layers.keras_twin(layer).__call__), (h,)))
        best = [float("inf")] * len(timings)
        for _ in range(2):
            for i, (function, args) in enumerate(timings):
                best[i] = min(best[i], seconds_per_call(function, args, seconds / 2))
        micros = [b / num_latents * 1e6 for b in best]
        name = f"{layer.name} -> {'x'.join(map(str, out.shape[1:]))}"
        rows.append((name, micros[0], macs, micros[1] if macs else None))
        if len(micros) == 3:
            rows.append((f"{name} (Keras's layer)", micros[2], macs, micros[1]))
        h = out
    logits = tf.cast(h, tf.float32)[None]  # one image's [1, samples, H, W, C]

    @tf.function
    def likelihood_and_logsumexp(logits):
        return tf.reduce_logsumexp(steps.log_likelihood(model, x[:1, None], logits), axis=1)

    rows.append(("log-likelihood + logsumexp",
                 seconds_per_call(likelihood_and_logsumexp, (logits,), seconds)
                 / num_latents * 1e6, 0, None))
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
    config = Config(model=args.model, latent_dim=2 if args.model == "conv" else 20).resolved()
    images, labels = data.load_subset(config.dataset, "test", size=args.images)
    x, labels = (tf.constant(a) for a in data.test_set(images, labels, config.binarize))
    model = checkpoints.new_model(config)
    mixed_config, mixed_model = checkpoints.mixed_precision_copy(config, model)
    decoder_macs = flops.sequence_macs([model.decoder], tf.zeros([1, config.latent_dim]))
    gflops_before = flops.matmul_gflops(seconds=2.0 if args.quick else 6.0)
    print(f"float32 matmul: {gflops_before:.0f} GFLOP/s; decoder forward: "
          f"{2 * decoder_macs / 1e6:.2f} MFLOP per sample", flush=True)

    default_latents = evaluate.DEFAULT_BATCH_SIZE * min(evaluate.DEFAULT_CHUNK, k)
    breakdown = layer_breakdown(model, x, default_latents, seconds / 2)

    def of_roofline(macs, micros):
        return f"{2 * macs / (micros * 1e3) / gflops_before:4.0%}"

    print(f"  {'decoder layer':<48} {'us/sample':>10} {'roofline':>9} {'as a matmul':>12} "
          f"{'roofline':>9}")
    for name, micros, macs, matmul_micros in breakdown:
        print(f"  {name:<48} {micros:10.1f} {of_roofline(macs, micros) if macs else '':>9}"
              + (f" {matmul_micros:12.1f} {of_roofline(macs, matmul_micros):>9}"
                 if matmul_micros else ""), flush=True)
    matmuls = sum(row[3] for row in breakdown if row[3])
    print(f"  the decoder's multiply-adds as plain matmuls, nothing else: {matmuls:.1f} us/sample,"
          f" {of_roofline(decoder_macs, matmuls)} of the roofline", flush=True)

    # (label, model, config, chunk): decode sizes are images x chunk latents.
    default_chunk = max(1, min(k, default_latents // len(x)))
    chunks = sorted({max(1, min(k, size // len(x))) for size in (500, default_latents, 10000)})
    default = " (tfvae.evaluate's default)"
    variants = [(f"before: float32, Keras's Conv2DTranspose logits, {len(x) * default_chunk} "
                 "latents per decode", layers.with_keras_logits_layer(model), config,
                 default_chunk)]
    variants += [(f"float32, {len(x) * chunk} latents per decode"
                  + default * (chunk == default_chunk), model, config, chunk) for chunk in chunks]
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
                       {"layer": n, "microseconds_per_sample": m, "macs": c,
                        "as_one_matmul_microseconds_per_sample": mm}
                       for n, m, c, mm in breakdown], "iwae": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
