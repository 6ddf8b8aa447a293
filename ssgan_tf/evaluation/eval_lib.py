"""Stage 7: sample-based evaluation of a generator, for `--mode=eval` and during training.

`evaluate` takes restored weights (`workdir.restore_for_inference`), draws `num_samples`
images from `model.generate` (fixed-seed noise), compares their classifier activations with
those of the first `num_samples` images of the data's `split` (cached, activations.py)
and appends one record per metric to the workdir (records.py). `PeriodicEvaluation` does
the same for the live generator every N generator steps of `fit`.

Defaults follow compare_gan (protocols.py): each dataset's eval-split size (CIFAR-10 and
CelebA 10k, LSUN-Bedroom 30k, ImageNet 50k, CelebA-HQ 3k; all 500 built-in MNIST test
digits), the test split, 3 independent fake sets reported as mean and std, FID and IS on
TF-GAN's Inception fed as compare_gan feeds it; KID and precision/recall besides. With the
built-in "mnist" the default classifier is the offline MNIST CNN (mnist_classifier.py),
whose metrics are named fmd/mnist_score/kmd/mnist_precision/mnist_recall.

A model that keeps an EMA of G's weights (ssgan.ema_decay) is evaluated through the EMA
by default, and its metrics are named apart ("fid10k_test_ema"); `evaluation.generator =
"raw"` evaluates G itself under the plain names.
"""

import math

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf import labels as labels_lib
from ssgan_tf import progress
from ssgan_tf import ssgan
from ssgan_tf.evaluation import activations
from ssgan_tf.evaluation import classifiers
from ssgan_tf.evaluation import metrics as metrics_lib
from ssgan_tf.evaluation import mnist_classifier
from ssgan_tf.evaluation import protocols
from ssgan_tf.evaluation import records as records_lib

CLASSIFIERS = ("inception", "mnist")
GENERATORS = ("ema", "raw")


@gin.configurable("classifier", denylist=["source"])
def get_classifier(name=None, source=None, *, inception_path=None, allow_download=False,
                   cache_dir=None):
  """The classifier called `name`, loaded from disk on each call (gin: `classifier.*`).

  Args:
    name: "inception" (TF-GAN's Inception), "mnist" (the offline MNIST CNN) or None:
      "mnist" for the built-in "mnist" source, else "inception".
    source: the evaluated `data.ImageSource` (only read when `name` is None).
    inception_path, allow_download: see `classifiers.load_inception`.
    cache_dir: unused: where mnist_cnn_v1 cached the MNIST CNN it trained; v2's weights
      ship with the package. Kept so that the operative configs of older workdirs
      (which bind it) still load.
  """
  del cache_dir  # Unused: see above.
  if name is None:
    name = "mnist" if source is not None and source.name == "mnist" else "inception"
  if name == "inception":
    return classifiers.load_inception(inception_path, allow_download)
  if name == "mnist":
    if inception_path:
      logging.warning("classifier.inception_path (--inception_path) %r is unused: the "
                      "classifier is the MNIST CNN (classifier.name = 'inception' picks "
                      "Inception).", inception_path)
    return mnist_classifier.load_mnist_classifier()
  raise errors.ConfigError(f"unknown classifier.name {name!r}; choose one of {list(CLASSIFIERS)}.")


@gin.configurable("evaluation", denylist=["model", "source", "classifier"])
def compute_metrics(model, source, classifier, *, num_samples=None, split="test",
                    num_fake_sets=None, metrics=metrics_lib.KINDS, batch_size=None,
                    cache_dir=None, seed=0, generator=None):
  """Metrics of `model`'s generator against `source`; records without step/checkpoint.

  The keyword arguments are the gin bindings `evaluation.*`, shared by `--mode=eval` and
  periodic evaluation. Defaults are the dataset's protocol (protocols.py: compare_gan's
  sample counts, 3 fake sets).

  Args:
    model: anything with `generate(z)` and `sample_z(num, rng)` (an `ssgan.SSGAN`, or
      an `export_lib.ExportedGenerator`).
    source: the `data.ImageSource` G was trained on.
    classifier: a `classifiers.Classifier`.
    num_samples: real images, and images per fake set; None = the protocol's.
    split: real images to compare with.
    num_fake_sets: independent fake sets, each scored against the same real images;
      None = the protocol's (3).
    metrics: keys of metrics.METRICS ("fid", "is", "kid", "pr").
    batch_size: images per generator and classifier call; None = sized for the device:
      500 with a GPU or TPU, 100 on a CPU.
    cache_dir: for the real activations (activations.py); None = the default.
    seed: of the evaluation's own noise stream (the fake sets follow each other in
      it): the same seed gives the same samples for the same weights, and evaluating
      never touches the training noise.
    generator: which generator makes the fakes: "ema" (the EMA of G's weights, ema.py),
      "raw" (G itself) or None (what `model.generate` samples by default: the EMA when
      the model keeps one). The EMA's metrics are named with "_ema" (records.py).

  Returns:
    A list of dicts, one per metric output: metric, value (the mean over the fake
    sets), std (their standard deviation, ddof 0, as compare_gan), runs (how many),
    values (each set's), num_real, num_fake (per set), classifier, generator ("ema" or
    "raw"); for a metric that can score real images too (the classifier score), also
    real_value: its value on `num_samples` images of `split`.
  """
  kind, sampler = _sampler(model, generator)
  if batch_size is None:
    batch_size = 500 if tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices(
        "TPU") else 100
  errors.check_range("evaluation.batch_size", batch_size, minimum=1, integer=True)
  chosen = metrics_lib.get_metrics(metrics)
  uses_real = any(metric.uses_real or metric.on_real for _, metric in chosen)
  if num_samples is None:
    num_samples = protocols.default_protocol(source.name,
                                             source.num_examples("test")).num_samples
  num = _check_num_samples(source, split, num_samples, uses_real, chosen)
  runs = errors.check_range(
      "evaluation.num_fake_sets",
      protocols.NUM_FAKE_SETS if num_fake_sets is None else num_fake_sets, minimum=1,
      integer=True)
  # Named before the sampling: a classifier family without names fails at once.
  suffix = records_lib.EMA_SUFFIX if kind == "ema" else ""
  names = {key: tuple(name + suffix for name in
                      metrics_lib.metric_names(metric, classifier.family, num, split))
           for key, metric in chosen}
  real = (activations.real_activations(classifier, source, split, num, batch_size, cache_dir)
          if uses_real else None)
  label_probabilities = _fake_label_probabilities(sampler, source, split)
  rng = tf.random.Generator.from_seed(seed)
  values = {key: [] for key, _ in chosen}
  for run in range(runs):
    batches = progress.progress_bar(
        activations.generated_batches(sampler, num, batch_size, rng, label_probabilities),
        math.ceil(num / batch_size), f"fake set {run + 1}/{runs}", unit="batches")
    fake = activations.stream_activations(classifier, batches, num)
    for key, metric in chosen:
      values[key].append(metric.compute(real, fake))
  records = []
  for key, metric in chosen:
    on_real = metric.on_real(real) if metric.on_real else [None] * len(names[key])
    for name, per_run, real_value in zip(names[key], zip(*values[key]), on_real):
      record = {"metric": name, "value": float(np.mean(per_run)),
                "std": float(np.std(per_run)), "runs": runs,
                "values": [float(v) for v in per_run],
                "num_real": num if metric.uses_real else 0, "num_fake": num,
                "classifier": classifier.name, "generator": kind}
      if real_value is not None:
        record["real_value"] = float(real_value)
      records.append(record)
  return records


class _RawGenerator:
  """An `ssgan.SSGAN` as evaluation sees a model, sampling from G instead of its EMA."""

  def __init__(self, model):
    self.model = model
    self.num_classes = getattr(model, "num_classes", None)

  def generate(self, z, labels=None):
    return self.model.generate(z, labels, ema=False)

  def sample_z(self, num, rng):
    return self.model.sample_z(num, rng)


def _fake_label_probabilities(model, source, split):
  """A conditional model's fakes get the class mix of the real images they are compared
  with: `split`'s label frequencies, or None (uniform labels, compare_gan's) where its
  classes are balanced (CIFAR-10's test set, ImageNet's validation set, our MNIST's) or
  the model is unconditional. The training split's mix (`ssgan.label_distribution`,
  ImageNet's 732-1300 images a class) would skew FID against a balanced real set."""
  num_classes = getattr(model, "num_classes", None)
  if num_classes is None:
    return None
  counts = source.label_counts(split)
  return None if np.all(counts == counts[0]) else labels_lib.probabilities(num_classes,
                                                                           counts)


def _sampler(model, generator):
  """`(kind, model to sample from)` for `evaluation.generator`; ConfigError if the model
  cannot sample that generator."""
  # A model without the attribute (a stand-in, an older export) samples G itself.
  default = getattr(model, "generator_kind", "raw")
  if generator is None or generator == default:
    return default, model
  if generator not in GENERATORS:
    raise errors.ConfigError(f"unknown evaluation.generator {generator!r}; choose None or "
                             f"one of {list(GENERATORS)}.")
  if generator == "ema":
    raise errors.ConfigError("evaluation.generator = 'ema' but the model keeps no EMA of "
                             "G's weights (trained with ssgan.ema_decay = None).")
  if not isinstance(model, ssgan.SSGAN):  # An export serves one generator only.
    raise errors.ConfigError("evaluation.generator = 'raw' but this export serves only the "
                             "EMA of G; evaluate the workdir's checkpoint instead.")
  return "raw", _RawGenerator(model)


def evaluate(workdir, restored, classifier=None, **metric_kwargs):
  """Evaluates restored weights and appends the records to `workdir`.

  Args:
    workdir: the run's directory; records go to metrics.jsonl and eval/ (records.py).
    restored: `workdir.restore_for_inference(...)`'s result (model, source, step,
      checkpoint_path).
    classifier: a `classifiers.Classifier`, or None for `get_classifier` (gin
      `classifier.*`: name, inception_path, allow_download).
    **metric_kwargs: override the gin bindings `evaluation.*` of `compute_metrics`.

  Returns:
    The records written, one dict per metric output: `compute_metrics`' dicts with
    step and checkpoint (records.RECORD_KEYS and the keys records.py lists beside them).

  Raises:
    errors.WorkdirError: `workdir`'s metrics.jsonl cannot be appended to (checked before
      the evaluation; if it fails only when writing, the results are logged first).
  """
  records_lib.check_appendable(workdir, "no evaluation was run")
  classifier = classifier or get_classifier(source=restored.source)
  results = compute_metrics(restored.model, restored.source, classifier, **metric_kwargs)
  return _write(workdir, restored.step, restored.checkpoint_path, results)


class PeriodicEvaluation(keras.callbacks.Callback):
  """Evaluates the live generator every `every_n_steps` generator steps, and at the end.

  The step is the generator optimizer's iteration count, which checkpoints restore, so
  a resumed run keeps its schedule; at its start, a run resumed from a step whose
  evaluation was due but has no record (a preemption stops before it) evaluates that
  step first. Records have `checkpoint: None`. Add it on the chief only. The classifier
  is loaded here, so a missing Inception fails before training.

  Args:
    every_n_steps: evaluation period in generator steps (>= 1).
    workdir: where records go.
    source: the `data.ImageSource` being trained on.
    classifier: a `classifiers.Classifier`, or None for `get_classifier` (gin).
    watcher: the run's `preemption.PreemptionWatcher`, or None: once it has seen a
      signal, an evaluation is skipped, or given up before its next classifier batch, so
      that the run stops within its grace period (preemption.SaveOnPreemption stops it
      before the next call).
    total_steps: the run's last step, which is evaluated too (None: not known).
    **metric_kwargs: override the gin bindings `evaluation.*` of `compute_metrics`.
  """

  def __init__(self, every_n_steps, workdir, source, classifier=None, watcher=None,
               total_steps=None, **metric_kwargs):
    super().__init__()
    if every_n_steps < 1:
      raise errors.ConfigError(f"every_n_steps must be >= 1; got {every_n_steps}.")
    classifier = classifier or get_classifier(source=source)
    if watcher is not None:
      classifier = _GivesUpOnSignal(classifier, watcher)
    self.every_n_steps, self.workdir, self.source = every_n_steps, workdir, source
    self.classifier, self.metric_kwargs, self.watcher = classifier, metric_kwargs, watcher
    self.total_steps = total_steps
    self.history = []  # All records written, oldest first.
    self._last_step = None

  def on_train_begin(self, logs=None):
    step = self._last_step = self.model.step
    # A preemption stops before the evaluation of its step: the one due at the step
    # resumed from (a multiple of every_n_steps, or the last step) is run now.
    if (step and (step % self.every_n_steps == 0 or step == self.total_steps)
        and not records_lib.evaluated_in_training_at(self.workdir, step)):
      self._evaluate(step)

  def on_train_batch_end(self, batch, logs=None):
    step = self.model.step
    # Crossing a multiple, not landing on it: fit may run several steps per batch call.
    if step // self.every_n_steps > self._last_step // self.every_n_steps:
      self._evaluate(step)

  def on_train_end(self, logs=None):
    step = self.model.step
    if step != self._last_step:
      self._evaluate(step)

  def _evaluate(self, step):
    try:
      results = compute_metrics(self.model, self.source, self.classifier,
                                **self.metric_kwargs)
    except _GaveUp:
      logging.warning("step %d: no evaluation: %s came, training is stopping.", step,
                      self.watcher.signal_name)
      return
    self.history += _write(self.workdir, step, None, results)
    self._last_step = step


class _GaveUp(Exception):
  """An evaluation stopped because training must stop."""


class _GivesUpOnSignal:
  """A `classifiers.Classifier` that raises _GaveUp instead of running a batch once
  `watcher` has seen a signal: an evaluation takes minutes (FID on a CPU: half an hour),
  a preemption's grace period seconds."""

  def __init__(self, classifier, watcher):
    self.classifier, self.watcher = classifier, watcher

  def __call__(self, images):
    if self.watcher.requested:
      raise _GaveUp()
    return self.classifier(images)

  def __getattr__(self, name):  # name, family, ...: the wrapped classifier's.
    return getattr(self.classifier, name)


def _check_num_samples(source, split, num_samples, uses_real, chosen):
  # >= 2: a covariance needs two.
  errors.check_range("evaluation.num_samples", num_samples, minimum=2, integer=True)
  # Before the minutes of sampling that the metric would fail after.
  for kind, metric in chosen:
    if num_samples < metric.min_samples:
      raise errors.ConfigError(
          f"evaluation.num_samples = {num_samples} is too few for {kind!r} in "
          f"evaluation.metrics, which needs at least {metric.min_samples}; raise it or "
          f"drop {kind!r}.")
  available = source.num_examples(split)
  if uses_real and available is not None and num_samples > available:
    raise errors.ConfigError(
        f"evaluation.num_samples={num_samples} but split {split!r} of {source.name} has "
        f"{available} images; lower evaluation.num_samples to at most {available}.")
  return num_samples


def _write(workdir, step, checkpoint, results):
  """Logs the records, then appends them (logged first: a failed write loses nothing)."""
  written = [{"step": int(step), "checkpoint": checkpoint, **result} for result in results]
  for record in written:
    real = (f"; real images: {record['real_value']:.5g}"
            if "real_value" in record else "")
    logging.info("step %d: %s = %.5g +- %.2g over %d fake set(s) (%s%s)", record["step"],
                 record["metric"], record["value"], record["std"], record["runs"],
                 record["classifier"], real)
  try:
    records_lib.append_records(workdir, written)
  except (tf.errors.OpError, OSError) as e:
    raise records_lib.unwritable(workdir, e, "the results are in the log lines above") from e
  return written
