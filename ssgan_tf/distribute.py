"""Strategies by name, and the global vs per-replica batch arithmetic.

Names: "default" (one device), "mirrored" (all local GPUs; `num_cpu_devices` logical
CPU devices where there is no GPU, for tests), "multi_worker" (reads TF_CONFIG),
"tpu" (a Cloud TPU through its cluster resolver; TensorFlow 2.21 has no TPU build, so
this route needs `tensorflow-tpu<=2.20` and is untested on hardware).
"""

import dataclasses

import tensorflow as tf

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
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    if num_cpu_devices > 1 and not tf.config.list_physical_devices("GPU"):
      split_cpu(num_cpu_devices)
      return tf.distribute.MirroredStrategy(
          [d.name for d in tf.config.list_logical_devices("CPU")])
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(f"unknown strategy {name!r}; choose one of {list(STRATEGIES)}.")


def is_chief(strategy):
  """True on the one worker that writes checkpoints and summaries (always, off a cluster)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if "chief" in resolver.cluster_spec().as_dict():
    return resolver.task_type == "chief"
  return resolver.task_type == "worker" and resolver.task_id == 0


@dataclasses.dataclass(frozen=True)
class BatchSizes:
  """Global and per-replica batch sizes, checked once at construction.

  Attributes:
    global_batch_size: real images per D step, over all replicas.
    num_replicas: replicas in sync.
    rotated_batch_size: GLOBAL count of images in each rotation loss (compare_gan's
      `rotated_batch_size`): per replica, n = rotated_per_replica / 4 upright images plus
      their 3n rotations. Must be a multiple of 4 x num_replicas.
  """
  global_batch_size: int
  num_replicas: int
  rotated_batch_size: int

  def __post_init__(self):
    if self.global_batch_size < 1 or self.global_batch_size % self.num_replicas:
      raise ValueError(
          f"global batch size {self.global_batch_size} is not divisible by the "
          f"{self.num_replicas} replicas; choose a multiple of {self.num_replicas}.")
    if self.rotated_batch_size % (4 * self.num_replicas):
      raise ValueError(
          f"rotated batch size {self.rotated_batch_size} must be a multiple of 4 x "
          f"{self.num_replicas} replicas = {4 * self.num_replicas} (each replica rotates "
          "n images by 0, 90, 180 and 270 degrees).")
    if not 0 <= self.rotated_per_angle <= self.per_replica_batch:
      raise ValueError(
          f"rotated batch size {self.rotated_batch_size} asks each replica to rotate "
          f"{self.rotated_per_angle} images, but it has only {self.per_replica_batch}; "
          f"use at most 4 x global batch size = {4 * self.global_batch_size}.")

  @property
  def per_replica_batch(self):
    return self.global_batch_size // self.num_replicas

  @property
  def rotated_per_replica(self):
    return self.rotated_batch_size // self.num_replicas

  @property
  def rotated_per_angle(self):
    """n: images per replica that are rotated by each of k = 1, 2, 3."""
    return self.rotated_per_replica // 4
