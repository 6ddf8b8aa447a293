"""Stage 7: sample-based evaluation of a generator, for `--mode=eval` and during training.

`evaluate` takes restored weights (`workdir.restore_for_inference`), draws `num_samples`
images from `model.generate` (fixed-seed noise), compares their classifier activations with
those of the first `num_samples` images of the data's `split` (cached, activations.py)
and appends one record per metric to the workdir (records.py). `PeriodicEvaluation` does
the same for the live generator every N generator steps of `fit`.

Defaults follow compare_gan: 10k samples each side for 32x32 data (fewer when the split
is smaller, e.g. the 500 built-in MNIST test digits), the test split, FID and IS on
TF-GAN's Inception; KID besides. With the built-in "mnist" the default classifier is the
offline MNIST CNN (mnist_classifier.py), whose metrics are named fmd/mnist_score/kmd.
"""

from absl import logging
import gin
import keras

from ssgan_tf import errors
from ssgan_tf.evaluation import activations
from ssgan_tf.evaluation import classifiers
from ssgan_tf.evaluation import metrics as metrics_lib
from ssgan_tf.evaluation import mnist_classifier
from ssgan_tf.evaluation import records as records_lib

DEFAULT_NUM_SAMPLES = 10_000
CLASSIFIERS = ("inception", "mnist")


@gin.configurable("classifier", denylist=["source"])
def get_classifier(name=None, source=None, *, inception_path=None, allow_download=False,
                   cache_dir=None):
  """The classifier called `name`, loaded once (gin: `classifier.*`).

  Args:
    name: "inception" (TF-GAN's Inception), "mnist" (the offline MNIST CNN) or None:
      "mnist" for the built-in "mnist" source, else "inception".
    source: the evaluated `data.ImageSource` (only read when `name` is None).
    inception_path, allow_download: see `classifiers.load_inception`.
    cache_dir: where the MNIST CNN's weights are cached (activations.py).
  """
  if name is None:
    name = "mnist" if source is not None and source.name == "mnist" else "inception"
  if name == "inception":
    return classifiers.load_inception(inception_path, allow_download)
  if name == "mnist":
    return mnist_classifier.load_mnist_classifier(cache_dir)
  raise errors.ConfigError(f"unknown classifier.name {name!r}; choose one of {list(CLASSIFIERS)}.")


@gin.configurable("evaluation", denylist=["model", "source", "classifier"])
def compute_metrics(model, source, classifier, *, num_samples=None, split="test",
                    metrics=metrics_lib.KINDS, batch_size=100, cache_dir=None, seed=0):
  """Metrics of `model`'s generator against `source`; records without step/checkpoint.

  The keyword arguments are the gin bindings `evaluation.*`, shared by `--mode=eval` and
  periodic evaluation.

  Args:
    model: an `ssgan.SSGAN` (its `generate` and `sample_z` are used).
    source: the `data.ImageSource` G was trained on.
    classifier: a `classifiers.Classifier`.
    num_samples: images each side; None = min(10k, size of `split`).
    split: real images to compare with.
    metrics: keys of metrics.METRICS ("fid", "is", "kid").
    batch_size: images per generator and classifier call.
    cache_dir: for the real activations (activations.py); None = the default.
    seed: of the noise; the same seed gives the same samples for the same weights.

  Returns:
    A list of dicts with keys metric, value, num_real, num_fake, classifier (+ std).
  """
  chosen = metrics_lib.get_metrics(metrics)
  uses_real = any(metric.uses_real for _, metric in chosen)
  num = _num_samples(source, split, num_samples, uses_real)
  names = {kind: metrics_lib.metric_name(metric, classifier.family, num, split)
           for kind, metric in chosen}  # Before the sampling: a bad family fails at once.
  fake = activations.stream_activations(
      classifier, activations.generated_batches(model, num, batch_size, seed), num)
  real = (activations.real_activations(classifier, source, split, num, batch_size, cache_dir)
          if uses_real else None)
  return [{"metric": names[kind], **metric.compute(real, fake),
           "num_real": num if metric.uses_real else 0, "num_fake": num,
           "classifier": classifier.name}
          for kind, metric in chosen]


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
    The records written, one dict per metric (records.RECORD_KEYS, + "std" for KID).
  """
  classifier = classifier or get_classifier(source=restored.source)
  results = compute_metrics(restored.model, restored.source, classifier, **metric_kwargs)
  return _write(workdir, restored.step, restored.checkpoint_path, results)


class PeriodicEvaluation(keras.callbacks.Callback):
  """Evaluates the live generator every `every_n_steps` generator steps, and at the end.

  The step is the generator optimizer's iteration count, which checkpoints restore, so
  a resumed run keeps its schedule. Records have `checkpoint: None`. Add it on the chief
  only. The classifier is loaded here, so a missing Inception fails before training.

  Args:
    every_n_steps: evaluation period in generator steps (>= 1).
    workdir: where records go.
    source: the `data.ImageSource` being trained on.
    classifier: a `classifiers.Classifier`, or None for `get_classifier` (gin).
    **metric_kwargs: override the gin bindings `evaluation.*` of `compute_metrics`.
  """

  def __init__(self, every_n_steps, workdir, source, classifier=None, **metric_kwargs):
    super().__init__()
    if every_n_steps < 1:
      raise errors.ConfigError(f"every_n_steps must be >= 1; got {every_n_steps}.")
    classifier = classifier or get_classifier(source=source)
    self.every_n_steps, self.workdir, self.source = every_n_steps, workdir, source
    self.classifier, self.metric_kwargs = classifier, metric_kwargs
    self.history = []  # All records written, oldest first.
    self._last_step = None

  def on_train_begin(self, logs=None):
    self._last_step = self.model.step

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
    results = compute_metrics(self.model, self.source, self.classifier,
                              **self.metric_kwargs)
    self.history += _write(self.workdir, step, None, results)
    self._last_step = step


def _num_samples(source, split, num_samples, uses_real):
  available = source.num_examples(split)
  if num_samples is None:
    return min(DEFAULT_NUM_SAMPLES, available or DEFAULT_NUM_SAMPLES)
  if num_samples < 2:
    raise errors.ConfigError(f"evaluation.num_samples must be >= 2 (a covariance needs two); got {num_samples}.")
  if uses_real and available is not None and num_samples > available:
    raise errors.ConfigError(f"evaluation.num_samples={num_samples} but split {split!r} of {source.name} has "
                     f"{available} images; lower num_samples to at most {available}.")
  return num_samples


def _write(workdir, step, checkpoint, results):
  written = [{"step": int(step), "checkpoint": checkpoint, **result} for result in results]
  records_lib.append_records(workdir, written)
  for record in written:
    logging.info("step %d: %s = %.5g (%s)", record["step"], record["metric"],
                 record["value"], record["classifier"])
  return written
