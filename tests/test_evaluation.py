"""Inception loading (a stand-in SavedModel through the real paths), `evaluate` records,
the real-activation cache and periodic evaluation during `fit`."""

import hashlib
import json
import logging
import re
import shutil
import signal
import time
import types

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

import inception_standin

from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf import losses
from ssgan_tf import preemption
from ssgan_tf import rotation
from ssgan_tf import ssgan
from ssgan_tf import workdir as workdir_lib
from ssgan_tf.evaluation import activations
from ssgan_tf.evaluation import classifiers
from ssgan_tf.evaluation import eval_lib
from ssgan_tf.evaluation import metrics
from ssgan_tf.evaluation import records
from ssgan_tf.nets import build_networks

FEATURES = 64  # The real module has 2048; a small D keeps the covariances well-posed.


@pytest.fixture(scope="module")
def inception_path(tmp_path_factory):
  # Takes only 299x299 input, as compare_gan feeds it: a missing resize fails here.
  return inception_standin.save_standin(tmp_path_factory.mktemp("inception"),
                                        features=FEATURES)


@pytest.fixture(scope="module")
def inception(inception_path):
  return classifiers.load_inception(inception_path)


@pytest.fixture(scope="module")
def mnist():
  return data.get_source("mnist")


def _tiny_model():
  generator, discriminator = build_networks(
      (32, 32, 1), architecture="sndcgan", generator_kwargs={"base_channels": 8},
      discriminator_kwargs={"base_channels": 8})
  model = ssgan.SSGAN(generator, discriminator, batch=rotation.BatchSizes(8, 1, 8), z_dim=128,
                      gan_loss=losses.adversarial_loss("hinge"))
  model.compile(*ssgan.build_optimizers())
  return model


@pytest.fixture(scope="module")
def tiny_model():
  return _tiny_model()


def _images(num, seed=0, channels=3):
  return tf.random.stateless_uniform([num, 32, 32, channels], [seed, 0], -1.0, 1.0)


# ---------------------------------------------------------------- loading Inception

def test_local_path_and_hub_cache_load_the_same_module(inception_path, tmp_path,
                                                       monkeypatch):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
  url_hash = hashlib.sha1(classifiers.INCEPTION_TFHUB.encode()).hexdigest()
  shutil.copytree(inception_path, tmp_path / url_hash)
  from_path = classifiers.load_inception(inception_path)
  from_cache = classifiers.load_inception()  # The URL handle, resolved offline.
  images = _images(5)
  out_path, out_cache = from_path(images), from_cache(images)
  assert out_path["pool_3"].shape == (5, FEATURES)  # Flattened from [5, 1, 1, D].
  assert out_path["logits"].shape == (5, 1008)
  np.testing.assert_array_equal(out_path["pool_3"], out_cache["pool_3"])
  assert from_path.name == from_cache.name  # Same graph, same cache key.


def test_missing_inception_fails_fast_naming_the_flag(tmp_path, monkeypatch):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))  # An empty cache.
  start = time.monotonic()
  with pytest.raises(classifiers.InceptionUnavailableError) as error:
    classifiers.load_inception()
  message = str(error.value)
  assert time.monotonic() - start < 5
  assert "--inception_path" in message and "TFHUB_CACHE_DIR" in message
  assert "\n" not in message
  # Also through the entry points' classifier selection.
  with pytest.raises(ValueError, match="--inception_path"):
    eval_lib.get_classifier("inception")


def test_inception_path_without_a_savedmodel_is_rejected(tmp_path):
  with pytest.raises(classifiers.InceptionUnavailableError,
                     match="--inception_path=.*saved_model.pb"):
    classifiers.load_inception(str(tmp_path))


def test_an_inception_path_given_to_the_mnist_classifier_is_warned_about(caplog):
  with caplog.at_level(logging.WARNING, logger="absl"):
    classifier = eval_lib.get_classifier("mnist", inception_path="/nonexistent")
  assert classifier.family == "mnist"
  assert "--inception_path) '/nonexistent' is unused" in caplog.text


def test_grey_images_are_tiled_to_rgb(inception):
  grey = _images(3, channels=1)
  np.testing.assert_allclose(inception(grey)["pool_3"],
                             inception(tf.tile(grey, [1, 1, 1, 3]))["pool_3"])


def test_images_outside_unit_range_are_refused(inception):
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[-1, 1\]"):
    inception(_images(2) * 127.5 + 127.5)  # [0, 255] by mistake.


def test_unknown_classifier_name_is_rejected():
  with pytest.raises(errors.ConfigError, match="unknown classifier.name 'vgg'"):
    eval_lib.get_classifier("vgg")


# ------------------------------------------------------------------------ streaming

def test_streaming_keeps_order_and_stops_at_num(inception):
  images = _images(10)
  batches = [images[i:i + 4] for i in range(0, 10, 4)]  # 4, 4, 2
  streamed = activations.stream_activations(inception, batches, 7)
  assert streamed["pool_3"].shape == (7, FEATURES)
  np.testing.assert_allclose(streamed["pool_3"], inception(images[:7])["pool_3"],
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="ended after 10"):
    activations.stream_activations(inception, batches, 11)


# ------------------------------------------------------------------------- evaluate

def test_evaluate_writes_protocol_named_records(tiny_model, mnist, inception, tmp_path):
  workdir, cache = str(tmp_path / "work"), str(tmp_path / "cache")
  restored = types.SimpleNamespace(model=tiny_model, source=mnist, step=7,
                                   checkpoint_path="ckpt-7")
  written = eval_lib.evaluate(workdir, restored, num_samples=50, classifier=inception,
                              batch_size=16, cache_dir=cache)
  assert [r["metric"] for r in written] == ["fid50_test", "is50", "kid50_test",
                                            "precision50_test", "recall50_test"]
  for record in written:
    assert set(records.RECORD_KEYS) <= set(record)
    assert (record["step"], record["checkpoint"], record["num_fake"]) == (7, "ckpt-7", 50)
    assert record["num_real"] == (0 if record["metric"] == "is50" else 50)
    assert record["classifier"] == inception.name
    # compare_gan's averaging: 3 fake sets, their mean and (ddof 0) std.
    assert record["runs"] == 3 and len(record["values"]) == 3
    assert record["value"] == pytest.approx(np.mean(record["values"]))
    assert record["std"] == pytest.approx(np.std(record["values"]))
    assert np.all(np.isfinite(record["values"]))
  # Three different fake sets (precision can tie on so few samples).
  assert len(set(written[0]["values"])) == 3
  assert records.read_records(workdir) == written
  # The same scalars in TensorBoard under workdir/eval.
  logged = {}
  for path in tf.io.gfile.glob(f"{workdir}/eval/events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        logged[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
  assert logged == {r["metric"]: (7, pytest.approx(r["value"], rel=1e-6)) for r in written}


def test_real_activations_are_cached_and_reused(tiny_model, mnist, inception, tmp_path):
  cache = str(tmp_path / "cache")
  kwargs = dict(num_samples=40, metrics=("fid",), batch_size=16, cache_dir=cache)
  first = eval_lib.compute_metrics(tiny_model, mnist, inception, **kwargs)
  [path] = tf.io.gfile.glob(f"{cache}/real_activations/*.npz")
  assert f"mnist-32x32x1_test_40_{inception.name}" in path
  with np.load(path) as cached:
    assert cached["pool_3"].shape == (40, FEATURES)
    shifted = {"pool_3": cached["pool_3"] + 1.0, "logits": cached["logits"]}
  np.savez(path, **shifted)
  second = eval_lib.compute_metrics(tiny_model, mnist, inception, **kwargs)
  # A shift by 1 in each of D dimensions adds D to the mean term, iff the cache is read
  # (and the generated samples are the same: the noise seed is fixed).
  assert second[0]["value"] == pytest.approx(first[0]["value"] + FEATURES, rel=0.1)
  assert second[0]["value"] - first[0]["value"] > FEATURES / 2


def test_cache_file_names_of_folder_sources_are_flat_and_follow_their_files(inception, tmp_path):
  image_dir = tmp_path / "my images"
  image_dir.mkdir()
  for i in range(3):
    PIL.Image.new("RGB", (40, 40), (80 * i, 0, 0)).save(image_dir / f"{i}.png")
  folder = data.get_source("folder", image_dir=str(image_dir), resolution=32)
  cache = tmp_path / "cache"
  activations.real_activations(inception, folder, "test", 3, 2, str(cache))
  [name] = [p.name for p in (cache / "real_activations").iterdir()]
  assert name.startswith("folder_")
  assert f"my_images-{folder.content_id}-32x32x3_test_3_" in name
  # Other images in the folder: other activations, not the cached ones.
  PIL.Image.new("RGB", (40, 40), (0, 0, 255)).save(image_dir / "0.png")
  changed = data.get_source("folder", image_dir=str(image_dir), resolution=32)
  assert changed.content_id != folder.content_id
  activations.real_activations(inception, changed, "test", 3, 2, str(cache))
  assert len(list((cache / "real_activations").iterdir())) == 2


@pytest.mark.parametrize("damage", ["truncated", "empty", "other bytes", "fewer rows"])
def test_a_damaged_cache_file_is_computed_again_and_replaced(inception, tmp_path, caplog,
                                                             damage):
  # It raised (BadZipFile, EOFError, ValueError) in every evaluation, periodic ones
  # included, until deleted by hand.
  image_dir = tmp_path / "images"
  image_dir.mkdir()
  for i in range(3):
    PIL.Image.new("RGB", (32, 32), (80 * i, 0, 0)).save(image_dir / f"{i}.png")
  folder = data.get_source("folder", image_dir=str(image_dir), resolution=32)
  cache = str(tmp_path / "cache")
  computed = activations.real_activations(inception, folder, "test", 3, 2, cache)
  [path] = (tmp_path / "cache" / "real_activations").iterdir()
  good = path.read_bytes()
  if damage == "fewer rows":
    np.savez(path, **{key: value[:2] for key, value in computed.items()})
  else:
    path.write_bytes({"truncated": good[:len(good) // 2], "empty": b"",
                      "other bytes": b"\x93NUMPY" + bytes(range(200))}[damage])
  with caplog.at_level(logging.WARNING):
    again = activations.real_activations(inception, folder, "test", 3, 2, cache)
  assert f"the cached activations {path} cannot be used" in caplog.text
  for key, value in computed.items():
    np.testing.assert_allclose(again[key], value, rtol=1e-6)
  with np.load(path) as replaced:
    assert replaced["pool_3"].shape == computed["pool_3"].shape


def test_an_unwritable_cache_costs_only_the_cache(tiny_model, mnist, inception, tmp_path,
                                                  caplog):
  kwargs = dict(num_samples=20, metrics=("fid",), batch_size=10)
  cached = eval_lib.compute_metrics(tiny_model, mnist, inception, **kwargs,
                                    cache_dir=str(tmp_path / "cache"))
  with caplog.at_level(logging.WARNING):
    uncached = eval_lib.compute_metrics(tiny_model, mnist, inception, **kwargs,
                                        cache_dir=_unwritable(tmp_path))
  assert uncached[0]["value"] == pytest.approx(cached[0]["value"], rel=1e-5)
  assert "could not cache the real images' activations in " in caplog.text


def test_more_samples_than_the_split_is_a_clear_error(tiny_model, mnist, inception):
  with pytest.raises(ValueError, match="num_samples=501.*at most 500"):
    eval_lib.compute_metrics(tiny_model, mnist, inception, num_samples=501)


@pytest.mark.parametrize("kwargs, match", [
    # Before any sampling (precision and recall failed after every fake set was made).
    ({"num_samples": 3, "metrics": ("fid", "pr")},
     r"evaluation.num_samples = 3 is too few for 'pr' in evaluation.metrics, which needs "
     r"at least 4; raise it or drop 'pr'\."),
    # 0 was taken for "unset" and became 3.
    ({"num_samples": 20, "num_fake_sets": 0}, r"evaluation.num_fake_sets must be >= 1; got 0"),
])
def test_settings_no_metric_can_run_on_are_refused_at_once(tiny_model, mnist, inception,
                                                           kwargs, match):
  with pytest.raises(errors.ConfigError, match=match):
    eval_lib.compute_metrics(tiny_model, mnist, inception, **kwargs)


def test_evaluation_repeats_and_never_touches_the_training_noise(tiny_model, mnist,
                                                                 inception, tmp_path):
  kwargs = dict(num_samples=20, metrics=("fid",), batch_size=10, cache_dir=str(tmp_path))
  noise_state = tiny_model.noise.state.numpy().copy()
  first = eval_lib.compute_metrics(tiny_model, mnist, inception, **kwargs)
  np.testing.assert_array_equal(tiny_model.noise.state.numpy(), noise_state)
  assert eval_lib.compute_metrics(tiny_model, mnist, inception, **kwargs) == first
  other_seed = eval_lib.compute_metrics(tiny_model, mnist, inception, seed=1, **kwargs)
  assert other_seed[0]["values"] != first[0]["values"]


class _LabelRecordingGenerator:
  """A conditional model as evaluation sees one; records the labels it is given."""
  num_classes = 3

  def __init__(self):
    self.labels = []

  def sample_z(self, num, rng):
    return rng.normal([num, 4])

  def generate(self, z, labels):
    self.labels += list(labels.numpy())
    return tf.tanh(z[:, :1, None, None]) * tf.ones([1, 32, 32, 1])


class _SkewedSource(data.ImageSource):
  """200 blank 32x32x1 images: 150 of class 0, 50 of class 1, none of class 2."""

  def _examples(self, split):
    return tf.data.Dataset.from_tensor_slices((tf.zeros([200, 32, 32, 1]),
                                               tf.constant([0, 0, 0, 1] * 50, tf.int64)))

  def _num_examples(self, split):
    return 200


def test_conditional_fakes_get_the_class_mix_of_the_real_split(inception):
  # compare_gan drew uniform labels for its balanced test sets; a model's own mix (the
  # training split's, ssgan.label_distribution) would differ from the real images'.
  model = _LabelRecordingGenerator()
  eval_lib.compute_metrics(model, _SkewedSource("skewed", (32, 32, 1), 3), inception,
                           num_samples=200, num_fake_sets=1, metrics=("is",), batch_size=50)
  counts = np.bincount(model.labels, minlength=3)
  assert counts[2] == 0 and 120 <= counts[0] <= 180 and counts.sum() == 200


def test_repeated_evaluations_trace_the_generator_once(mnist, inception, tmp_path):
  # As in training with train.eval_every: a trace per fake set or evaluation cost
  # seconds each time and logged TensorFlow's retracing warnings.
  model = _tiny_model()
  for _ in range(2):
    eval_lib.compute_metrics(model, mnist, inception, num_samples=20, metrics=("fid",),
                             batch_size=10, cache_dir=str(tmp_path))  # 3 fake sets each.
  assert model.generate.experimental_get_tracing_count() == 1


def test_the_classifier_score_of_the_real_images_is_recorded_beside_the_fakes(
    tiny_model, mnist, inception, tmp_path):
  kwargs = dict(num_samples=40, batch_size=16, cache_dir=str(tmp_path), num_fake_sets=1)
  score, fid = eval_lib.compute_metrics(tiny_model, mnist, inception, metrics=("is", "fid"),
                                        **kwargs)
  [path] = tf.io.gfile.glob(f"{tmp_path}/real_activations/*.npz")
  with np.load(path) as real:
    assert score["real_value"] == pytest.approx(metrics.classifier_score(real["logits"]))
  assert score["real_value"] != pytest.approx(score["value"])
  assert "real_value" not in fid  # The real images' FID to themselves says nothing.


def test_default_sample_count_is_capped_by_the_split(tiny_model, mnist, inception, tmp_path):
  [record] = eval_lib.compute_metrics(tiny_model, mnist, inception, metrics=("is",),
                                      num_fake_sets=1, batch_size=250,
                                      cache_dir=str(tmp_path))
  assert (record["metric"], record["num_fake"]) == ("is500", 500)


def test_periodic_evaluation_during_fit(tiny_model, mnist, inception, tmp_path):
  workdir = str(tmp_path)
  callback = eval_lib.PeriodicEvaluation(2, workdir, mnist, inception, num_samples=20,
                                         metrics=("fid",), batch_size=20,
                                         cache_dir=str(tmp_path / "cache"))
  start = int(tiny_model.g_optimizer.iterations.numpy())
  tiny_model.fit(data.train_pipeline(mnist, "train", 8, seed=0), steps_per_epoch=3,
                 epochs=1, callbacks=[callback], shuffle=False, verbose=0)
  # Each multiple of 2 crossed, then the final step.
  expected = [s for s in range(start + 1, start + 4) if s % 2 == 0] + [start + 3]
  assert [r["step"] for r in callback.history] == expected
  assert all(r["checkpoint"] is None and r["metric"] == "fid20_test"
             for r in callback.history)
  assert records.read_records(workdir) == callback.history


def test_a_torn_record_is_left_out_with_a_warning_and_the_next_is_kept(tmp_path, caplog):
  # A killed append left half a record without its newline; the next evaluation appends.
  good = {"step": 2, "checkpoint": None, "metric": "fid10k_test", "value": 1.5,
          "num_real": 8, "num_fake": 8, "classifier": "c"}
  (tmp_path / "metrics.jsonl").write_text(json.dumps(good) + "\n" + '{"step": 4, "met')
  records.append_records(str(tmp_path), [{**good, "step": 6}])
  with caplog.at_level(logging.WARNING):
    assert records.read_records(str(tmp_path)) == [good, {**good, "step": 6}]
  assert "metrics.jsonl, line 2: not a record" in caplog.text


def test_only_the_evaluation_during_training_counts_as_done_for_its_catch_up(tmp_path):
  # A probe or an --mode=eval of the step's checkpoint (own settings) is no stand-in for
  # the evaluation a preemption left out: a probe at the last step used to hide it.
  of_checkpoint = {"step": 40, "checkpoint": "w/checkpoints/ckpt-40", "value": 0.9,
                   "num_real": 8, "num_fake": 0, "classifier": "c"}
  records.append_records(str(tmp_path), [{**of_checkpoint, "metric": "probe_top1_test"},
                                         {**of_checkpoint, "metric": "fid10k_test"}])
  assert not records.evaluated_in_training_at(str(tmp_path), 40)
  records.append_records(str(tmp_path), [{**of_checkpoint, "checkpoint": None,
                                          "metric": "fid10k_test"}])
  assert records.evaluated_in_training_at(str(tmp_path), 40)
  assert not records.evaluated_in_training_at(str(tmp_path), 20)


def test_periodic_evaluation_is_skipped_once_training_must_stop(tiny_model, mnist,
                                                                inception, tmp_path):
  watcher = preemption.PreemptionWatcher()
  watcher._handle(signal.SIGTERM, None)  # What the installed handler does on SIGTERM.
  callback = eval_lib.PeriodicEvaluation(1, str(tmp_path), mnist, inception, watcher=watcher,
                                         num_samples=20, metrics=("fid",), batch_size=20)
  tiny_model.fit(data.train_pipeline(mnist, "train", 8, seed=0), steps_per_epoch=2,
                 epochs=1, callbacks=[callback], shuffle=False, verbose=0)
  assert callback.history == [] and records.read_records(str(tmp_path)) == []


class _SignalDuringEvaluation:
  """`classifier`, recording a SIGTERM in `watcher` at each batch it runs (as the
  installed handler would)."""

  def __init__(self, classifier, watcher):
    self.classifier, self.watcher, self.batches = classifier, watcher, 0

  def __call__(self, images):
    self.batches += 1
    self.watcher._handle(signal.SIGTERM, None)
    return self.classifier(images)

  def __getattr__(self, name):
    return getattr(self.classifier, name)


def test_periodic_evaluation_gives_up_when_a_signal_comes_during_it(tiny_model, mnist,
                                                                    inception, tmp_path):
  watcher = preemption.PreemptionWatcher()
  classifier = _SignalDuringEvaluation(inception, watcher)
  callback = eval_lib.PeriodicEvaluation(1, str(tmp_path), mnist, classifier,
                                         watcher=watcher, num_samples=20, metrics=("fid",),
                                         batch_size=10, cache_dir=str(tmp_path / "cache"))
  tiny_model.fit(data.train_pipeline(mnist, "train", 8, seed=0), steps_per_epoch=1,
                 epochs=1, callbacks=[callback], shuffle=False, verbose=0)
  assert classifier.batches == 1  # Of 2 real and 3 x 2 fake batches.
  assert callback.history == [] and records.read_records(str(tmp_path)) == []


def _unwritable(tmp_path):
  """A workdir that cannot be created (its parent is a file): unwritable even for root."""
  (tmp_path / "a_file").write_text("")
  return str(tmp_path / "a_file" / "w")


def test_evaluate_on_an_unwritable_workdir_fails_before_evaluating(tiny_model, mnist,
                                                                   inception, tmp_path):
  restored = types.SimpleNamespace(model=tiny_model, source=mnist, step=7,
                                   checkpoint_path="ckpt-7")
  with pytest.raises(errors.WorkdirError,
                     match=r"^cannot append to .*a_file/w/metrics.jsonl \(\w+Error\); no "
                     "evaluation was run. Make the workdir writable"):
    eval_lib.evaluate(_unwritable(tmp_path), restored, classifier=inception, num_samples=20)


def test_a_full_disk_is_named_as_such_not_as_a_permission_problem(tmp_path):
  full = tf.errors.ResourceExhaustedError(None, None, "w/metrics.jsonl; No space left on device")
  assert str(records.unwritable(str(tmp_path), full, "no evaluation was run")).endswith(
      "(ResourceExhaustedError); no evaluation was run. The disk is full: free space, or run "
      "on a writable copy of it.")


def test_results_that_cannot_be_written_are_logged_first(tiny_model, mnist, inception,
                                                         tmp_path, caplog):
  callback = eval_lib.PeriodicEvaluation(1, _unwritable(tmp_path), mnist, inception,
                                         num_samples=20, metrics=("fid",), batch_size=20,
                                         cache_dir=str(tmp_path / "cache"))
  with caplog.at_level(logging.INFO, logger="absl"):
    with pytest.raises(errors.WorkdirError, match="the results are in the log lines above"):
      tiny_model.fit(data.train_pipeline(mnist, "train", 8, seed=0), steps_per_epoch=1,
                     epochs=1, callbacks=[callback], shuffle=False, verbose=0)
  assert re.search(r"step \d+: fid20_test = [\d.e+-]+ \+- ", caplog.text), caplog.text


def test_periodic_evaluation_needs_a_positive_period(mnist, inception, tmp_path):
  with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
    eval_lib.PeriodicEvaluation(0, str(tmp_path), mnist, inception)


def test_eval_without_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="no checkpoint in .*train first"):
    workdir_lib.restore_for_inference(str(tmp_path))
