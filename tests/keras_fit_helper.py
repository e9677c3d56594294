"""Subprocess side of tests/test_keras_fit.py: runs that need a process of their own.

`python tests/keras_fit_helper.py mirrored DATA_DIR OUT.json`: splits the CPU into two logical
devices (possible only before TensorFlow starts), fits a ConvVAE under MirroredStrategy and
writes its evaluate numbers beside those of a one-device copy of the same weights.

`python tests/keras_fit_helper.py backup DATA_DIR WORKDIR`: a slowed-down fit with
BackupAndRestore (every 8 batches), 4 steps per compiled call, logging each call's last batch to
WORKDIR/progress.txt, so the test can SIGKILL it mid-epoch and run it again; writes
WORKDIR/done.json at the end.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BACKUP_EPOCHS = 4


def mirrored(data_dir, out_path):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras

    from tfvae import ConvVAE, data

    x, _ = data.load_subset("mnist", "train", data_dir, 256)
    x_test, _ = data.load_subset("mnist", "test", data_dir, 200)
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        vae = ConvVAE(latent_dim=2)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3), seed=3)
    history = vae.fit(x, epochs=2, batch_size=64, validation_data=(x_test,), verbose=0)
    distributed = vae.evaluate(x_test, batch_size=50, return_dict=True, verbose=0)

    single = ConvVAE(latent_dim=2)
    single.compile(optimizer=keras.optimizers.Adam(1e-3))
    single.set_weights(vae.get_weights())
    one_device = single.evaluate(x_test, batch_size=50, return_dict=True, verbose=0)
    with open(out_path, "w") as f:
        json.dump({"replicas": strategy.num_replicas_in_sync, "history": history.history,
                   "distributed": distributed, "one_device": one_device}, f)


def backup(data_dir, workdir):
    import keras

    from tfvae import MlpVAE, data

    x, _ = data.load_subset("mnist", "train", data_dir, 1024)  # 16 batches of 64 per epoch
    x_test, _ = data.load_subset("mnist", "test", data_dir, 200)
    keras.utils.set_random_seed(0)
    vae = MlpVAE(latent_dim=2, hidden_units=(32,))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=4)
    progress = open(os.path.join(workdir, "progress.txt"), "a")

    class Progress(keras.callbacks.Callback):
        """Logs each call's last batch, slowly enough for the test to kill it mid-epoch."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            progress.write(f"{self.epoch} {batch}\n")
            progress.flush()
            time.sleep(0.3)

    history = vae.fit(
        x, epochs=BACKUP_EPOCHS, batch_size=64, validation_data=(x_test,), verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup"),
                                                    save_freq=8),
                   keras.callbacks.CSVLogger(os.path.join(workdir, "log.csv"), append=True),
                   Progress()])
    with open(os.path.join(workdir, "done.json"), "w") as f:
        json.dump({"epochs": history.epoch, "val_elbo": history.history["val_elbo"],
                   "iterations": int(vae.optimizer.iterations.numpy())}, f)


if __name__ == "__main__":
    if sys.argv[1] == "mirrored":
        mirrored(sys.argv[2], sys.argv[3])
    else:
        backup(sys.argv[2], sys.argv[3])
