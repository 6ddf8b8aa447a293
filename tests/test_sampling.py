"""One way to get images out of G: sample grids, evaluation and export all go through
`SSGAN.generate`, so whatever network it runs (later: G's weight average) is what each
of them shows."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import callbacks
from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf import export_lib
from ssgan_tf import losses
from ssgan_tf import rotation
from ssgan_tf import ssgan
from ssgan_tf.evaluation import classifiers
from ssgan_tf.evaluation import eval_lib
from ssgan_tf.nets import build_networks

from test_checkpoints import file_size_limit

IMAGE_SHAPE = (16, 16, 3)
Z_DIM = 8


def _networks(seed):
  keras.utils.set_random_seed(seed)
  return build_networks(IMAGE_SHAPE, architecture="sndcgan", z_dim=Z_DIM,
                        generator_kwargs={"base_channels": 4},
                        discriminator_kwargs={"base_channels": 4})


def _model(generator, discriminator, sampling_generator=None):
  model = ssgan.SSGAN(generator, discriminator, batch=rotation.BatchSizes(8, 1, 8),
                      z_dim=Z_DIM, gan_loss=losses.NON_SATURATING,
                      sampling_generator=sampling_generator)
  model.compile(*ssgan.build_optimizers())
  return model


@pytest.fixture(scope="module")
def models():
  """{"plain": G1's model, "swapped": G1 trained but sampling with G2, "g2": G2's model}."""
  g1, d = _networks(seed=1)
  g2, _ = _networks(seed=2)
  return {"plain": _model(g1, d), "swapped": _model(g1, d, sampling_generator=g2),
          "g2": _model(g2, d)}


def _grid_png(model, tmp_path):
  callback = callbacks.SampleGrids(str(tmp_path), tf.summary.create_file_writer(
      str(tmp_path / "logs")), fixed_z=tf.random.stateless_normal([4, Z_DIM], [0, 1]),
                                   every=1)
  callback.set_model(model)
  callback.on_train_begin()
  callback.on_train_batch_end(0)  # Step 0 is a multiple of every=1: a grid is written.
  return (tmp_path / "samples" / "fakes_00000000.png").read_bytes()


def _evaluation(model):
  # The classifier's "features" are the pixels themselves, so the metric sees exactly
  # what was sampled.
  network = lambda images: {"pool_3": tf.reshape(images, [tf.shape(images)[0], -1]),  # noqa: E731
                            "logits": tf.reshape(images, [tf.shape(images)[0], -1])[:, :10]}
  classifier = classifiers.Classifier(network, name="pixels", family="inception")
  records = eval_lib.compute_metrics(model, data.get_source("mnist"), classifier,
                                     num_samples=20, metrics=("is",), batch_size=10)
  return records[0]["value"]


def _export(model):
  metadata = {**model.info, "resolution": 16, "channels": 3}
  module, _ = export_lib.build_module(model, metadata, "config")
  return module.sample(tf.constant(3), tf.constant(7, tf.int64))["images"].numpy()


def test_grids_evaluation_and_export_all_show_what_generate_runs(models, tmp_path):
  outputs = {}
  for name, model in models.items():
    (tmp_path / name).mkdir()
    outputs[name] = (_grid_png(model, tmp_path / name), _evaluation(model), _export(model))
  # Swapping the sampling network changes all three ...
  grid, value, exported = outputs["swapped"]
  assert grid != outputs["plain"][0]
  assert value != outputs["plain"][1]
  assert not np.allclose(exported, outputs["plain"][2])
  # ... to exactly what that network shows when it is G itself.
  assert grid == outputs["g2"][0]
  assert value == outputs["g2"][1]
  np.testing.assert_array_equal(exported, outputs["g2"][2])


def test_a_grid_that_meets_a_file_size_limit_is_one_line_and_leaves_no_torn_file(models,
                                                                                 tmp_path):
  # A grid write cut short left a 0-byte PNG and a traceback (or, with a file-size
  # limit's OutOfRangeError, training ended as if the data had run out).
  with file_size_limit(100), pytest.raises(errors.WorkdirError) as raised:
    _grid_png(models["plain"], tmp_path)
  assert str(raised.value).startswith(
      "a file size limit (e.g. `ulimit -f`) was reached: could not write "
      f"{tmp_path / 'samples' / 'fakes_00000000.png'}; the checkpoints saved so far are kept.")
  assert not list((tmp_path / "samples").iterdir())
