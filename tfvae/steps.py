"""Compiled training and evaluation steps, shared by tfvae.train and tfvae.evaluate.

Steps take tensors only; everything that changes the graph comes from the config when the
function is built, so a step is traced once.
"""

import tensorflow as tf

from tfvae import losses


def per_example_terms(model, x, labels, eps, *, objective="elbo", kl="analytic", kl_weight=1.0):
    """The training objective and its terms for each image of a batch.

    Args:
      x: [B, H, W, C] targets; labels: [B] (used by conditional models); eps: [B, S, latent]
        standard-normal noise, S = 1 for the ELBO (and the autoencoder) and k for the IWAE bound.

    Returns:
      A dict of [B] tensors: 'objective' (to maximise), 'elbo', 'reconstruction', 'kl'.
    """
    mean, logvar = model.encode(x, labels)
    if objective in ("elbo", "autoencoder"):
        if kl == "analytic" and not model.closed_form_kl:
            raise ValueError("this model's KL has no closed form: use kl='mc'")
        z, log_qz = model.posterior.sample(mean, logvar, eps[:, 0])
        log_px_z = model.likelihood.log_prob(x, model.decode(z, labels))
        log_pz = model.prior.log_prob(z) if kl == "mc" else None
        terms = losses.elbo(log_px_z, z, mean, logvar, kl, kl_weight, log_pz, log_qz)
        if objective == "autoencoder":
            # A plain autoencoder: reconstruct from the mean itself, no noise, no KL. The ELBO
            # terms above are still the ones logged; only this objective is trained.
            terms["objective"] = model.likelihood.log_prob(x, model.decode(mean, labels))
        return terms
    log_weights, terms = importance_weights(model, x, labels, mean, logvar, eps, kl_weight)
    return {"objective": losses.iwae_bound(log_weights), **terms}


def importance_weights(model, x, labels, mean, logvar, eps, kl_weight=1.0, prior_context=None):
    """Log importance weights [B, S] for z ~ q(z|x) drawn from eps [B, S, latent].

    Also returns the sample-averaged ELBO terms of the same draws. With `kl_weight` < 1 the
    weights are log p(x|z) + kl_weight * (log p(z) - log q(z|x)), the warm-up form.
    `prior_context`: the prior's `context()` when the caller already has it.
    """
    batch, samples = tf.shape(eps)[0], tf.shape(eps)[1]
    z, log_qz = model.posterior.sample(mean, logvar, eps)  # [B, S, latent], [B, S]
    repeated_labels = None if labels is None else tf.repeat(labels, samples)
    logits = model.decode(tf.reshape(z, [batch * samples, -1]), repeated_labels)
    logits = tf.reshape(logits, tf.concat([[batch, samples], tf.shape(logits)[1:]], 0))
    log_px_z = model.likelihood.log_prob(x[:, None], logits)
    log_prior_ratio = losses.log_prior_ratio(z, mean, logvar,
                                             model.prior.log_prob(z, prior_context), log_qz)
    elbo = tf.reduce_mean(log_px_z + log_prior_ratio, axis=1)
    terms = {"elbo": elbo, "reconstruction": tf.reduce_mean(log_px_z, axis=1),
             "kl": tf.reduce_mean(-log_prior_ratio, axis=1)}
    return log_px_z + kl_weight * log_prior_ratio, terms


METRIC_NAMES = ("elbo", "reconstruction", "kl")


def make_gradient_function(model, optimizer, config):
    """Builds `gradients(x, labels, eps, kl_weight) -> (grads, sums)` for one replica's batch.

    The loss is this replica's summed objective over the GLOBAL batch size, so the replicas'
    gradients (and `sums`, the mean METRIC_NAMES terms) add up to one device's on the whole
    batch. Only this part is XLA-compiled under a distribution strategy: applying the
    gradients makes the optimizer's cross-replica merge_call, which is kept out of XLA.
    """
    global_batch = config.batch_size

    @tf.function(jit_compile=config.xla)
    def gradients(x, labels, eps, kl_weight):
        with tf.GradientTape() as tape:
            terms = per_example_terms(model, x, labels, eps, objective=config.objective,
                                      kl=config.kl, kl_weight=kl_weight)
            loss = -tf.reduce_sum(terms["objective"]) / global_batch
            scaled = optimizer.scale_loss(loss)  # loss scaling under mixed_float16, else as is
        grads = tape.gradient(scaled, model.trainable_variables)
        sums = tf.stack([tf.reduce_sum(terms[n]) for n in METRIC_NAMES]) / global_batch
        return grads, sums

    return gradients


def make_train_function(model, optimizer, config, strategy, warmup_steps=0, jit_whole_step=None):
    """Builds `train_steps(iterator, first_step, num_steps) -> [num_steps, 3]`.

    Runs `num_steps` optimizer steps in one compiled call. Row i holds the global batch's mean
    ELBO, reconstruction and KL of step `first_step + i`, computed before that step's update.
    The loss is the summed per-example objective over the global batch size, so gradients
    summed across replicas equal one device's on the whole batch.

    With XLA (`config.xla`) under the default (no-op) strategy, the optimizer update is
    compiled into the same XLA cluster as the gradients (`jit_whole_step`, default: exactly
    then): no merge_call happens there, and the mlp trains ~1.2x faster for it
    (benchmarks/train_speed.py --ablations).
    """
    gradients = make_gradient_function(model, optimizer, config)

    def replica_step(x, labels, eps, kl_weight):
        # Copies the batch onto this replica's device: a distributed dataset may hand over
        # tensors on another one (it does with logical CPUs), and XLA runs the compiled
        # gradients where its inputs live, far from this replica's variables.
        x, labels, eps = tf.nest.map_structure(tf.identity, (x, labels, eps))
        grads, sums = gradients(x, labels, eps, kl_weight)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return sums

    if jit_whole_step is None:
        # Outside any strategy scope, get_strategy() is the default strategy itself.
        jit_whole_step = config.xla and strategy is tf.distribute.get_strategy() and (
            not tf.distribute.has_strategy())
    if jit_whole_step:
        replica_step = tf.function(replica_step, jit_compile=True)

    @tf.function
    def train_steps(iterator, first_step, num_steps):
        rows = tf.TensorArray(tf.float32, size=num_steps)
        for i in tf.range(num_steps):
            step = tf.cast(first_step + tf.cast(i, tf.int64), tf.float32)
            # beta (beta-VAE) weights the KL of the objective only: the logged ELBO is the true one.
            kl_weight = config.beta * losses.kl_warmup_weight(step, warmup_steps)
            x, labels, eps = next(iterator)
            per_replica = strategy.run(replica_step, args=(x, labels, eps, kl_weight))
            rows = rows.write(i, strategy.reduce("SUM", per_replica, axis=None))
        return rows.stack()

    return train_steps


def make_eval_function(model, config):
    """Builds `eval_step(x, labels, eps) -> [B, 3]`: per-image ELBO, reconstruction, KL."""

    @tf.function(jit_compile=config.xla)
    def eval_step(x, labels, eps):
        terms = per_example_terms(model, x, labels, eps, objective="elbo", kl=config.kl)
        return tf.stack([terms[n] for n in METRIC_NAMES], axis=1)

    return eval_step


def evaluate_elbo(eval_step, batches):
    """Mean per-image ELBO, reconstruction and KL over a dataset of (x, labels, eps)."""
    totals, count = tf.zeros([3]), 0
    for x, labels, eps in batches:
        totals += tf.reduce_sum(eval_step(x, labels, eps), axis=0)
        count += int(x.shape[0])
    return dict(zip(METRIC_NAMES, (totals / count).numpy().tolist()))


IWAE_METRIC_NAMES = ("iwae", "elbo", "reconstruction", "kl")


def iwae_terms(model, x, labels, draw, k, chunk):
    """The IWAE bound L_k and the ELBO terms of each image, decoding `chunk` samples at a time.

    Memory holds one chunk's logits, [B, chunk, H, W, C], whatever k is.

    Args:
      x: [B, H, W, C].
      labels: [B]; only conditional models use them.
      draw: `draw(start, size) -> eps [B, size, latent]`, the noise of samples
        start .. start + size - 1; `start` may be a tensor, `size` is a Python int.
      k: the number of samples (a Python int).
      chunk: how many samples to decode at once (a Python int).

    Returns:
      A dict of [B] tensors: 'iwae' (L_k), 'reconstruction' (log p(x|z) averaged over the k
      samples), 'kl' (the analytic KL where it has a closed form, exact where a Monte Carlo
      estimate would add noise; otherwise the average over the k samples) and 'elbo' (their
      difference).
    """
    mean, logvar, scored = start_iwae(model, x, labels)
    for start, count, size in chunk_calls(k, chunk, calls_of=k):
        scored = add_chunks(model, x, labels, mean, logvar, draw, scored, start, count, size)
    return finish_iwae(model, mean, logvar, scored, k)


def start_iwae(model, x, labels):
    """The encoder's (mean, logvar) and the running scores of no samples yet: a [B]
    logsumexp of log weights and [2, B] sums of the reconstruction and sampled KL terms."""
    mean, logvar = model.encode(x, labels)
    running = tf.fill(tf.shape(mean[:, 0]), float("-inf"))
    return mean, logvar, (running, tf.zeros_like(tf.stack([running, running])))


def add_chunks(model, x, labels, mean, logvar, draw, scored, start, count, size):
    """`scored` with `count` chunks of `size` samples more, the first sample `start`.

    A running logsumexp over the chunks, not a list of them: memory stays one chunk's
    whatever k is (a list of 10**9 / 50 chunks' [B] logsumexps is 8 GB at B = 100).
    """
    running, sums = scored
    prior_context = model.prior.context()  # what log p(z) reuses: computed once
    # A loop, not a Python unroll: XLA then compiles one chunk's graph, not one per chunk.
    for i in tf.range(count):
        log_weights, terms = importance_weights(
            model, x, labels, mean, logvar, draw(start + i * size, size),
            prior_context=prior_context)
        chunk_logsumexp = tf.reduce_logsumexp(log_weights, axis=1)
        running = tf.reduce_logsumexp(tf.stack([running, chunk_logsumexp], axis=1), axis=1)
        sums += tf.stack([terms["reconstruction"], terms["kl"]]) * size
    return running, sums


def finish_iwae(model, mean, logvar, scored, k):
    """iwae_terms' dict from the running scores of all k samples."""
    running, sums = scored
    bound = losses.iwae_bound_from_chunks(running[:, None], k)
    reconstruction, sampled_kl = tf.unstack(sums / k)
    kl = losses.analytic_kl(mean, logvar) if model.closed_form_kl else sampled_kl
    return {"iwae": bound, "elbo": reconstruction - kl, "reconstruction": reconstruction,
            "kl": kl}


def chunk_calls(k, chunk, calls_of):
    """(first sample, chunks, chunk size) of each call that scores k samples `chunk` at a
    time, at most `calls_of` samples (and one chunk) a call."""
    chunk = min(chunk, k)
    full_chunks, rest = divmod(k, chunk)
    per_call = max(1, calls_of // chunk)
    for first in range(0, full_chunks, per_call):
        yield first * chunk, min(per_call, full_chunks - first), chunk
    if rest:
        yield full_chunks * chunk, 1, rest


# Samples one compiled call of an evaluation scores at most: the call's time, and so how long
# Ctrl-C waits for Python, stays bounded whatever k is; at the default chunk of 50, k up to
# 5000 is one call.
SAMPLES_PER_CALL = 5000


def make_iwae_function(model, config, k, chunk):
    """Builds `iwae_step(x, labels, seed) -> [B, 4]`: per-image IWAE_METRIC_NAMES.

    `seed` is a [2] int64 tensor; the noise of samples start.. comes from
    stateless_fold_in(seed, start), so a batch's result depends on its seed alone. The
    samples are scored in compiled calls of at most SAMPLES_PER_CALL each (`iwae_step.calls`
    are the compiled functions).
    """

    def draw_from(x, seed):
        def draw(start, size):
            noise_seed = tf.random.experimental.stateless_fold_in(seed, start)
            return tf.random.stateless_normal([tf.shape(x)[0], size, model.latent_dim],
                                              seed=noise_seed)
        return draw

    compiled = tf.function(jit_compile=config.xla)
    start = compiled(lambda x, labels: start_iwae(model, x, labels))
    more = compiled(lambda x, labels, seed, mean, logvar, scored, first, count, size: add_chunks(
        model, x, labels, mean, logvar, draw_from(x, seed), scored, first, count, size))
    finish = compiled(lambda mean, logvar, scored: tf.stack(
        [finish_iwae(model, mean, logvar, scored, k)[n] for n in IWAE_METRIC_NAMES], axis=1))

    def iwae_step(x, labels, seed):
        mean, logvar, scored = start(x, labels)
        for first, count, size in chunk_calls(k, chunk, SAMPLES_PER_CALL):
            # int32, as tf.range made them when one call scored every sample: stateless_fold_in
            # draws its seed in the dtype of `start`, so this keeps the numbers of tfvae 0.2.0.
            scored = more(x, labels, seed, mean, logvar, scored, tf.constant(first, tf.int32),
                          tf.constant(count, tf.int32), size)
        return finish(mean, logvar, scored)

    iwae_step.calls = (start, more, finish)
    return iwae_step
