"""workdir.py: atomic writes leave either the old or the new content, never a partial one
nor a temporary; model_info.json guards a workdir against another model."""

import json
import os

import pytest

from ssgan_tf import errors
from ssgan_tf import workdir


def test_write_atomically_replaces_a_file_whole(tmp_path):
  path = str(tmp_path / "sub" / "info.json")
  workdir.write_atomically(path, "old")
  workdir.write_atomically(path, b"new")
  assert open(path, "rb").read() == b"new"
  assert os.listdir(tmp_path / "sub") == ["info.json"]


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path, kind):
  path = tmp_path / "out"
  if kind == "file":
    path.write_text("old")
  else:
    path.mkdir()
    (path / "a").write_text("old")
  with pytest.raises(OSError, match="disk full"):
    with workdir.atomic_output(str(path)) as tmp:
      if kind == "file":
        open(tmp, "w").write("half")
      else:
        os.mkdir(tmp)
        open(os.path.join(tmp, "a"), "w").write("half")
      raise OSError("disk full")
  assert os.listdir(tmp_path) == ["out"]
  assert (path if kind == "file" else path / "a").read_text() == "old"


def test_a_directory_is_replaced_whole(tmp_path):
  path = tmp_path / "export"
  path.mkdir()
  (path / "stale").write_text("x")
  with workdir.atomic_output(str(path)) as tmp:
    os.mkdir(tmp)
    open(os.path.join(tmp, "fresh"), "w").write("y")
  assert os.listdir(path) == ["fresh"] and os.listdir(tmp_path) == ["export"]


def test_no_overwrite_refuses_before_writing(tmp_path):
  (tmp_path / "f").write_text("keep")
  with pytest.raises(errors.WorkdirError, match="exists already"):
    with workdir.atomic_output(str(tmp_path / "f"), overwrite=False):
      pytest.fail("must not be reached")
  assert (tmp_path / "f").read_text() == "keep"


def test_model_info_is_written_once_and_then_guards_the_workdir(tmp_path):
  info = {"image_shape": [32, 32, 1], "architecture": "sndcgan", "z_dim": 64,
          "z_distribution": "normal"}
  workdir.check_model_info(str(tmp_path), info, write=True)
  assert workdir.read_model_info(str(tmp_path)) == info
  workdir.check_model_info(str(tmp_path), info, write=True)  # The same model: fine.
  with pytest.raises(errors.WorkdirError, match="holds a different model"):
    workdir.check_model_info(str(tmp_path), {**info, "z_dim": 128}, write=True)


def test_model_info_of_an_older_workdir_without_z_distribution_still_matches(tmp_path):
  (tmp_path / workdir.MODEL_INFO).write_text(json.dumps(
      {"image_shape": [32, 32, 1], "architecture": "sndcgan", "z_dim": 64}))
  before = (tmp_path / workdir.MODEL_INFO).read_text()
  workdir.check_model_info(str(tmp_path), {"image_shape": [32, 32, 1], "architecture": "sndcgan",
                                           "z_dim": 64, "z_distribution": "normal"}, write=True)
  assert (tmp_path / workdir.MODEL_INFO).read_text() == before  # Only grows: not rewritten.
  with pytest.raises(errors.WorkdirError, match="holds a different model"):
    workdir.check_model_info(str(tmp_path), {"image_shape": [32, 32, 1],
                                             "architecture": "resnet_cifar", "z_dim": 64,
                                             "z_distribution": "normal"}, write=True)
