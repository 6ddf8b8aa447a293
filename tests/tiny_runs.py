"""Shared by the tests of the training program: the tiny quickstart and workdir snapshots."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "gin_configs", "quickstart.gin")


def tiny_bindings(log_every):
  """Gin bindings that shrink quickstart.gin to seconds per run (nets of width 4, no EMA
  of G: test_ema.py tests it)."""
  return ['networks.generator_kwargs = {"base_channels": 4}', "ssgan.ema_decay = None",
          'networks.discriminator_kwargs = {"base_channels": 4}',
          "ssgan.global_batch_size = 8", f"train.log_every = {log_every}",
          "train.checkpoint_every = 2", "train.sample_every = 2"]


def files(workdir):
  """{relative path: (size, mtime_ns)} of every file under `workdir`."""
  out = {}
  for folder, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(folder, name)
      out[os.path.relpath(path, workdir)] = (os.path.getsize(path), os.stat(path).st_mtime_ns)
  return out
