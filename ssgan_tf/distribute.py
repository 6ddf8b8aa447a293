"""Strategies by name, and which worker is the chief.

Names: "default" (one device), "mirrored" (all local GPUs; `num_cpu_devices` logical
CPU devices where there is no GPU, for tests), "multi_worker" (reads TF_CONFIG),
"tpu" (a Cloud TPU through its cluster resolver; TensorFlow 2.21 has no TPU build, so
this route needs `tensorflow-tpu<=2.20` and is untested on hardware).
"""

import json
import os

from absl import logging
import tensorflow as tf

from ssgan_tf import errors

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def split_cpu(num_devices):
  """Splits the host CPU into `num_devices` logical devices (before TF is initialised).

  Lets MirroredStrategy run several replicas on a machine without GPUs; the replicas
  share the same cores, so this is for correctness checks, not speed.
  """
  cpu = tf.config.list_physical_devices("CPU")[0]
  if len(tf.config.get_logical_device_configuration(cpu) or []) == num_devices:
    return  # Already split (e.g. by a test harness); TF refuses to split twice.
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def make_strategy(name="default", num_cpu_devices=0, tpu=""):
  """Returns the `tf.distribute.Strategy` called `name`.

  Args:
    name: one of STRATEGIES.
    num_cpu_devices: for "mirrored" on a host without GPUs: split the CPU into this
      many logical devices first (0 or 1: a single CPU replica).
    tpu: for "tpu": the TPU name or grpc address ("" = the local TPU VM).
  """
  if num_cpu_devices > 1 and name != "mirrored":
    raise errors.ConfigError(f"--num_cpu_devices={num_cpu_devices} splits the CPU for "
                             f"--strategy=mirrored only, not {name!r}; add that flag or drop "
                             "this one.")
  if tpu and name != "tpu":
    raise errors.ConfigError(f"--tpu={tpu} is read by --strategy=tpu only, not {name!r}; add "
                             "that flag or drop this one.")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    if tf.config.list_physical_devices("GPU"):
      return tf.distribute.MirroredStrategy()
    if num_cpu_devices > 1:
      split_cpu(num_cpu_devices)
      return tf.distribute.MirroredStrategy(
          [d.name for d in tf.config.list_logical_devices("CPU")])
    strategy = tf.distribute.MirroredStrategy()
    logging.warning("--strategy=mirrored found no GPU: it trains on the CPU, %d replica(s) "
                    "(--num_cpu_devices=N splits the CPU into N replicas, for tests).",
                    strategy.num_replicas_in_sync)
    return strategy
  if name == "multi_worker":
    _check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    except (ValueError, OSError) as e:  # No --tpu off a TPU VM; a name it cannot look up.
      raise errors.ConfigError(f"--strategy=tpu: {e} (--tpu=NAME, or run on a TPU "
                               "VM).") from e
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise errors.ConfigError(f"unknown strategy {name!r}; choose one of {list(STRATEGIES)}.")


def _check_tf_config():
  """One-line ConfigError for a TF_CONFIG that MultiWorkerMirroredStrategy cannot read."""
  example = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
             '"task": {"type": "worker", "index": 0}}')
  text = os.environ.get("TF_CONFIG", "")
  if not text:
    logging.warning("--strategy=multi_worker without TF_CONFIG: this process trains as a "
                    "single worker; set TF_CONFIG on every worker, like %s.", example)
  try:
    config = json.loads(text) if text else None
  except json.JSONDecodeError as e:
    raise errors.ConfigError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}); "
                             f"set it like {example}.") from e
  if config is None:
    return
  if not (isinstance(config, dict) and isinstance(config.get("cluster"), dict)
          and isinstance(config.get("task"), dict)):
    raise errors.ConfigError(f"TF_CONFIG needs a 'cluster' and a 'task'; set it like "
                             f"{example}.")
  cluster, task = config["cluster"], config["task"]
  jobs = cluster.get(task.get("type"))
  if not isinstance(jobs, list):
    raise errors.ConfigError(f"TF_CONFIG's task type {task.get('type')!r} is not a job of its "
                             f"cluster ({sorted(cluster)}); set it like {example}.")
  index = task.get("index")
  if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs):
    raise errors.ConfigError(f"TF_CONFIG's task index {index!r} is not one of the "
                             f"{len(jobs)} {task['type']} address(es) of its cluster (0 to "
                             f"{len(jobs) - 1}); set it like {example}.")


def is_chief(strategy):
  """True on the one worker that writes checkpoints and summaries (always, off a cluster)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if "chief" in resolver.cluster_spec().as_dict():
    return resolver.task_type == "chief"
  return resolver.task_type == "worker" and resolver.task_id == 0


def num_workers(strategy):
  """Processes training together: the cluster's chief + workers under
  MultiWorkerMirroredStrategy, else 1 (one process drives every local replica)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 1
  spec = resolver.cluster_spec().as_dict()
  return max(1, sum(len(spec.get(job, ())) for job in ("chief", "worker")))


def any_worker_fn(strategy):
  """`fn(flag: bool) -> bool`: whether `flag` is set on any worker.

  Workers decide together whether to save or stop (a decision one worker makes alone
  would leave the others waiting in the next collective). With several workers it is a
  collective: every worker must call it, in the same order relative to the other
  collectives (about 3 ms on localhost); with one, the flag itself.
  """
  if num_workers(strategy) == 1:
    return bool

  @tf.function
  def count(flag):
    def replica_fn(flag):
      # The identity puts the flag on this replica's device: all_reduce needs one.
      return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                            tf.identity(flag))
    return strategy.run(replica_fn, args=(flag,))

  def any_worker(flag):
    with strategy.scope():
      total = strategy.experimental_local_results(count(tf.constant(float(flag))))[0]
    return float(total) > 0
  return any_worker
