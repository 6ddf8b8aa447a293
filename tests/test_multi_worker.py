"""`--strategy=multi_worker`: two localhost worker processes (TF_CONFIG) resume a tiny run
from the chief's checkpoint, train in step, and only the chief writes to the workdir.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time

import gin
import keras
import pytest
import tensorflow as tf

from ssgan_tf import train_lib

from tiny_runs import files
from tiny_runs import QUICKSTART
from tiny_runs import ROOT
from tiny_runs import tiny_bindings

BINDINGS = tiny_bindings(log_every=2)
TIMEOUT = 300  # Seconds for both workers; a worker whose peer died would block forever.


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _files(workdir):
  return set(files(workdir))


def _run_workers(workdir, total_steps):
  """Runs the CLI as 2 workers; returns [(exit status, stderr)] for workers 0 and 1."""
  cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
  args = [sys.executable, "-m", "ssgan_tf.main", f"--gin_file={QUICKSTART}",
          *[f"--gin_param={b}" for b in BINDINGS + [f"train.total_steps = {total_steps}"]],
          "--strategy=multi_worker", f"--workdir={workdir}"]
  logs = [open(workdir.parent / f"worker_{i}.log", "w+") for i in range(2)]
  workers = [subprocess.Popen(
      args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
      env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})))
             for i, log in enumerate(logs)]
  deadline = time.monotonic() + TIMEOUT
  try:
    while any(w.poll() is None for w in workers):
      if time.monotonic() > deadline or any(w.poll() for w in workers):
        break  # Timed out, or one failed: its peer would wait on it forever.
      time.sleep(0.5)  # Polling two processes, not synchronising with them.
  finally:
    for worker in workers:
      if worker.poll() is None:
        worker.kill()
      worker.wait()
  results = []
  for worker, log in zip(workers, logs):
    log.seek(0)
    results.append((worker.returncode, log.read()))
    log.close()
  return results


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
  """A 2-step single-device run in this process, resumed to 4 steps by two workers."""
  workdir = tmp_path_factory.mktemp("multi_worker") / "run"
  gin.clear_config()
  gin.parse_config_files_and_bindings([QUICKSTART], BINDINGS + ["train.total_steps = 2"])
  keras.utils.set_random_seed(1)
  try:
    train_lib.train(str(workdir), tf.distribute.get_strategy())
  finally:
    gin.clear_config()
  before = _files(workdir)
  return workdir, before, _run_workers(workdir, 4)


def test_both_workers_resume_from_the_chiefs_checkpoint(resumed):
  workdir, _, results = resumed
  for status, log in results:
    assert status == 0, log
    assert f"resumed from {workdir}/checkpoints/ckpt-2" in log
    assert "training mnist from step 2 to 4: 2 replica(s), global batch 8" in log


def test_workers_log_the_same_all_reduced_losses(resumed):
  progress = [re.search(r"step 4/4 .* ETA \S+  (.*)", log).group(1) for _, log in resumed[2]]
  assert "loss/g=" in progress[0] and progress[0] == progress[1]


def test_only_the_chief_writes_to_the_workdir(resumed):
  workdir, before, _ = resumed
  new = _files(workdir) - before
  assert {"checkpoints/ckpt-4.index", "samples/fakes_00000004.png"} <= new
  # operative_config-2.gin: the resumed run's total_steps differs from the first run's.
  assert all(f.startswith(("checkpoints/", "samples/", "train/events.out.tfevents.",
                           "operative_config-2.gin")) for f in new), new
