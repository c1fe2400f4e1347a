"""Data-parallel training with ``tf.distribute``: the strategy, the batch and learning-rate scaling.

Strategies (``training.strategy``):

- ``default``: TensorFlow's default strategy, one device. It trains on a GPU when TensorFlow
  finds one and on the CPU otherwise.
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over every GPU of this machine, or over
  every logical CPU device when there is no GPU. Variables are copied to each device, and
  the gradients are summed across devices after every step.
- ``multi_worker_mirrored``: ``tf.distribute.MultiWorkerMirroredStrategy`` over several hosts.
  Each host runs the same command with its own ``TF_CONFIG`` environment variable, which lists
  the cluster and names this host's task. Without ``TF_CONFIG`` it trains on this host alone.

Scaling: ``training.batch_size`` is the batch of one replica. With ``R`` replicas in sync, a
step trains on the global batch ``B = batch_size * R``, and both learning rates are scaled
linearly, ``lr = configured_lr * R`` (the linear scaling rule of Goyal et al., 2017, "Accurate,
Large Minibatch SGD"). With the same per-replica batch, ``R`` replicas then take the same
steps per image as one replica. ``R = 1`` changes nothing.

Sharding: ``mirrored`` splits each global batch across the devices of one host. With
``multi_worker_mirrored``, every worker builds the same seeded input pipeline, and
``shard_by_data`` sets ``AutoShardPolicy.DATA``, so worker ``i`` of ``N`` keeps every N-th
element. Sharding by file does not apply, because the datasets start from in-memory lists of
paths or arrays, not from files.

NOTE: under any strategy but the default, Keras 3.15 ``fit`` first takes one batch from a new
iterator to build the model (``TensorFlowTrainer._maybe_symbolic_build``), which draws one more
seeded shuffle order per ``fit`` call. A mirrored run therefore trains on other (equally
random) batch orders than a one-device run with the same seed.

NOTE: ``multi_worker_mirrored`` is tested only as a single worker. The validation fairness
callback and the test evaluation call ``model.predict``, and their row order across several
workers has not been checked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import tensorflow as tf

from fer_fairness.config import STRATEGIES, RunConfig

logger = logging.getLogger(__name__)

TF_CONFIG = "TF_CONFIG"


def read_tf_config() -> dict | None:
    """Parse the ``TF_CONFIG`` environment variable; None when it is unset or empty.

    Raises:
        ValueError: if it is not a JSON object with ``cluster`` and ``task`` entries.
    """
    text = os.environ.get(TF_CONFIG, "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{TF_CONFIG} is not valid JSON: {error}") from error
    if not isinstance(value, dict) or "cluster" not in value or "task" not in value:
        raise ValueError(
            f"{TF_CONFIG}={text!r} is invalid; expected a JSON object with 'cluster' (task type "
            "to a list of host:port) and 'task' ({'type': 'worker', 'index': 0})"
        )
    return value


def is_chief(tf_config: dict | None) -> bool:
    """Return whether this process is the chief: the ``chief`` task, or worker 0 without one.

    A process without ``TF_CONFIG`` is the only worker, so it is the chief.
    """
    if tf_config is None:
        return True
    task = tf_config["task"]
    if task.get("type") == "chief":
        return True
    has_chief = bool(tf_config["cluster"].get("chief"))
    return not has_chief and task.get("type") == "worker" and int(task.get("index", 0)) == 0


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Create the ``tf.distribute`` strategy named by ``training.strategy``.

    Create it before any model, and build and compile every model inside its ``scope()``.

    Raises:
        ValueError: for an unknown name, or an invalid ``TF_CONFIG`` with
            ``multi_worker_mirrored``.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
        logger.info("mirrored strategy over %s", ", ".join(device.name for device in devices))
        return strategy
    if name == "multi_worker_mirrored":
        tf_config = read_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = len(tf_config["cluster"].get("worker", [])) if tf_config else 1
        logger.info(
            "multi-worker mirrored strategy: %d worker(s), %d replica(s) in sync",
            workers,
            strategy.num_replicas_in_sync,
        )
        return strategy
    raise ValueError(f"strategy={name!r} is invalid; expected one of {', '.join(STRATEGIES)}")


def scale_to_replicas(config: RunConfig, replicas: int) -> RunConfig:
    """Return ``config`` with the global batch and linearly scaled learning rates.

    ``batch_size`` becomes ``batch_size * replicas``, and ``heads_learning_rate`` and
    ``finetune_learning_rate`` are multiplied by ``replicas``. One replica returns ``config``.
    """
    if replicas == 1:
        return config
    training = config.training
    scaled = dataclasses.replace(
        training,
        batch_size=training.batch_size * replicas,
        heads_learning_rate=training.heads_learning_rate * replicas,
        finetune_learning_rate=training.finetune_learning_rate * replicas,
    )
    logger.info(
        "%d replicas: global batch %d (%d per replica), learning rates %g and %g "
        "(configured values times %d)",
        replicas,
        scaled.batch_size,
        training.batch_size,
        scaled.heads_learning_rate,
        scaled.finetune_learning_rate,
        replicas,
    )
    return dataclasses.replace(config, training=scaled)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Return ``dataset`` with auto-sharding by element, for multi-worker training.

    It has no effect on one worker. Every worker must build the dataset with the same seed,
    so that their shuffled orders agree and the shards do not overlap.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
