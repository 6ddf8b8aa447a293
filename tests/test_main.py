"""The command line (main.py), in subprocesses: the quickstart trains and fills its workdir,
the same command run twice does nothing the second time, two replicas on logical CPUs
train, and bad input ends with exit status 1, one `error:` line naming the fix, and the
workdir untouched (another model's workdir and batch arithmetic are checked in-process in
test_train_lib.py: the CLI path of every UserError is the same).

Each subprocess pays TensorFlow's start-up (~10 s here), so one tiny training run is
shared, and every other command runs concurrently in one module fixture. Checks of
main.run's own that need no new process call it in this one (`run_main`).
"""

import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import gin
import numpy as np
import PIL.Image
import pytest

from ssgan_tf import errors
from ssgan_tf import export_lib
from ssgan_tf import main
from ssgan_tf import workdir as workdir_lib
from ssgan_tf import workdir_lock
from tiny_runs import files as _files
from tiny_runs import QUICKSTART
from tiny_runs import ROOT
from tiny_runs import tiny_bindings

TINY = [f"--gin_file={QUICKSTART}",
        *[f"--gin_param={b}" for b in tiny_bindings(log_every=2) + ["train.total_steps = 4"]]]


def _cli(*args, timeout=240):
  """Runs `python -m ssgan_tf.main args` on the CPU; returns (exit status, stderr, seconds)."""
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  start = time.perf_counter()
  process = subprocess.run([sys.executable, "-m", "ssgan_tf.main", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=timeout, check=False)
  return process.returncode, process.stderr, time.perf_counter() - start


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("quickstart") / "run"
  status, stderr, _ = _cli(*TINY, f"--workdir={workdir}")
  return workdir, status, stderr


# Commands run concurrently after `trained`: name -> (arguments, workdir: "new" or "copy"
# of the trained one). "{tmp}" is the case's own folder.
COMMANDS = {
    "rerun": (TINY, "copy"),
    "two_replicas": (TINY + ["--strategy=mirrored", "--num_cpu_devices=2"], "new"),
    "diverging": (TINY + ["--gin_param=train.total_steps = 6",
                          "--gin_param=train.checkpoint_every = 1",
                          "--gin_param=optimizers.g_lr = 1e30"], "copy"),
    "tfds_not_prepared": (TINY + ["--gin_param=dataset.name = 'cifar10'",
                                  "--data_dir={tmp}/empty"], "new"),
    # The offline classifier (built-in mnist); the real activations go to {tmp}/cache.
    "eval": (["--mode=eval", "--gin_param=evaluation.num_samples = 100",
              "--gin_param=evaluation.cache_dir = '{tmp}/cache'"], "copy"),
    # A model setting too: the model is rebuilt as trained, with a warning.
    "probe": (["--mode=probe", "--gin_param=probe.num_train = 100",
               "--gin_param=probe.num_test = 50", "--gin_param=ssgan.z_dim = 16"], "copy"),
    # The model's values left unrestored made TensorFlow warn after the error line.
    "other_normalization": (TINY + ['--gin_param=networks.generator_normalization = '
                                    '"batch_norm"'], "copy"),
    "export": (["--mode=export"], "copy"),
    # Not a checked setting: the failure deep inside Keras is shown as a traceback.
    "unchecked_bad_width": (TINY + ['--gin_param=networks.generator_kwargs = '
                                    '{"base_channels": "wide"}'], "new"),
}


def _workdir_of_kind(workdir, kind, trained):
  """Makes `workdir` a copy of the `trained` fixture's run (kind "copy") or leaves it
  absent ("new"); returns its files, for `_assert_left_alone`."""
  if kind == "copy":
    assert trained[1] == 0, trained[2]
    shutil.copytree(trained[0], workdir)  # copy2: sizes and mtimes kept.
  return _files(workdir)


def _assert_left_alone(workdir, before):
  if before:
    assert _files(workdir) == before
  else:
    assert not workdir.exists()


@pytest.fixture(scope="module")
def runs(trained, tmp_path_factory):
  """name -> {"status", "stderr", "seconds", "workdir", "before": files before the run}."""
  assert trained[1] == 0, trained[2]

  def run(name):
    tmp = tmp_path_factory.mktemp(name)
    (tmp / "empty").mkdir()
    arguments, workdir_kind = COMMANDS[name]
    workdir = tmp / "workdir"
    before = _workdir_of_kind(workdir, workdir_kind, trained)
    status, stderr, seconds = _cli(*[a.replace("{tmp}", str(tmp)) for a in arguments],
                                   f"--workdir={workdir}")
    return dict(status=status, stderr=stderr, seconds=seconds, workdir=workdir, before=before)

  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    results = dict(zip(COMMANDS, pool.map(run, COMMANDS)))
  return results


def test_eval_appends_protocol_named_records(runs):
  run = runs["eval"]
  assert run["status"] == 0, run["stderr"]
  records = [json.loads(line) for line in (run["workdir"] / "metrics.jsonl").read_text()
             .splitlines()]
  assert [r["metric"] for r in records] == [
      "fmd100_test", "mnist_score100", "kmd100_test", "mnist_precision100_test",
      "mnist_recall100_test"]
  for record in records:
    assert record["step"] == 4 and record["checkpoint"].endswith("ckpt-4")
    assert record["num_fake"] == 100 and record["classifier"] == "mnist_cnn_v2"
    assert np.isfinite(record["value"]) and record["runs"] == 3
    # Printed as mean +- std over the 3 fake sets.
    assert re.search(rf"{record['metric']} = [\d.e+-]+ \+- [\d.e+-]+ over 3 fake set",
                     run["stderr"])
  assert any(f.startswith("eval/events.out.tfevents.") for f in _files(run["workdir"]))


def test_probe_appends_the_best_block(runs):
  run = runs["probe"]
  assert run["status"] == 0, run["stderr"]
  [record] = [json.loads(line) for line in (run["workdir"] / "metrics.jsonl").read_text()
              .splitlines()]
  assert record["metric"] == "probe_top1_test" and record["step"] == 4
  assert (record["num_train"], record["num_real"]) == (100, 50)
  assert record["value"] == max(record["per_block"].values())
  [warning] = [line for line in run["stderr"].splitlines() if "--gin_param=ssgan" in line]
  assert warning.endswith(
      "--gin_param=ssgan.z_dim = 16 has no effect in --mode=probe: the model is rebuilt as "
      "trained; only evaluation.*, classifier.*, probe.*, dataset.* bindings apply.")


def test_export_writes_a_savedmodel_of_the_latest_step(runs):
  run = runs["export"]
  assert run["status"] == 0, run["stderr"]
  assert (run["workdir"] / "export" / "4" / "saved_model.pb").exists()


def test_quickstart_fills_the_workdir(trained):
  workdir, status, stderr = trained
  assert status == 0, stderr
  files = set(_files(workdir))
  for step in (2, 4):
    assert f"checkpoints/ckpt-{step}.index" in files
    assert f"samples/fakes_{step:08d}.png" in files
  assert any(f.startswith("train/events.out.tfevents.") for f in files)
  grid = np.asarray(PIL.Image.open(workdir / "samples" / "fakes_00000004.png"))
  assert grid.shape == (8 * 32, 8 * 32) and grid.dtype == np.uint8  # 8 x 8 grey digits.
  config = (workdir / "operative_config.gin").read_text()
  with open(QUICKSTART) as f:  # A binding only the gin file sets (no override, no default).
    beta_2 = re.search(r"^optimizers\.beta_2 = (\S+)$", f.read(), re.M).group(1)
  for binding in ("train.total_steps = 4", "networks.architecture = 'sndcgan'",
                  "ssgan.global_batch_size = 8", f"optimizers.beta_2 = {beta_2}"):
    assert binding in config
  assert json.loads((workdir / "model_info.json").read_text()) == {
      "image_shape": [32, 32, 1], "architecture": "sndcgan", "z_dim": 64,
      "z_distribution": "normal"}


def test_progress_lines_give_the_rate_and_eta(trained):
  stderr = trained[2]
  for step in (2, 4):
    assert re.search(rf"step {step}/4  [\d.]+ steps/s  ETA (\d+h)?\d+m\d\ds  .*loss/d=", stderr)


def test_training_logs_none_of_tensorflows_avoidable_error_lines(trained):
  # Both came from our graphs (sndcgan's leaky ReLU gradient, the sample grid's uint8
  # transpose) and printed "E0000 ..." in every run; grappler dropped the remapper pass
  # that failed.
  stderr = trained[2]
  assert "remapper failed" not in stderr
  assert "oneDNN supports DT_UINT8" not in stderr


def test_no_tensorflow_info_lines_and_no_tfgan_deprecation_notice(trained, runs):
  # TensorFlow logs every checkpoint's sharding time and each export signature's renamed
  # inputs at INFO; TF-GAN's KID calls a deprecated map_fn argument.
  assert "Sharding callback duration" not in trained[2]
  assert "contains input name(s)" not in runs["export"]["stderr"]
  assert "is deprecated" not in runs["eval"]["stderr"]


def test_the_same_command_twice_does_nothing_the_second_time(runs):
  run = runs["rerun"]
  assert run["status"] == 0, run["stderr"]
  assert "nothing to do: step 4 >= total_steps 4" in run["stderr"]
  assert _files(run["workdir"]) == run["before"]


def test_two_replicas_on_logical_cpus(runs):
  run = runs["two_replicas"]
  assert run["status"] == 0, run["stderr"]
  assert "2 replica(s), global batch 8" in run["stderr"]
  assert {"checkpoints/ckpt-4.index", "samples/fakes_00000004.png"} <= set(
      _files(run["workdir"]))


def test_divergence_exits_non_zero_keeping_the_last_good_checkpoint(runs):
  run = runs["diverging"]
  assert run["status"] == 1
  assert re.search(r"non-finite loss or weights at step 5; training stopped and the last "
                   r"good checkpoint \(.*ckpt-4\) was kept", run["stderr"])
  files = _files(run["workdir"])
  assert not any(f.startswith("checkpoints/ckpt-5") for f in files)
  assert {f: files[f] for f in run["before"]} == run["before"]


@pytest.mark.parametrize("name, message", [
    ("tfds_not_prepared", r"TFDS 'cifar10' is not prepared in .*empty.*; build it .*"
                          r"`tfds build cifar10 --data_dir=DIR`"),
    ("other_normalization", r"ckpt-4 does not match the configured model \(its networks "
                            r"were built with other settings: networks.generator_normalization "
                            r"'self_modulated' -> 'batch_norm'\)"),
])
def test_bad_input_is_one_error_line_and_leaves_the_workdir_alone(runs, name, message):
  run = runs[name]
  assert run["status"] == 1, run["stderr"]
  assert "Traceback" not in run["stderr"]
  lines = run["stderr"].strip().splitlines()
  assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
  assert re.search(message, lines[-1])
  _assert_left_alone(run["workdir"], run["before"])


def test_an_error_that_is_not_the_users_keeps_its_traceback(runs):
  run = runs["unchecked_bad_width"]
  assert run["status"] == 1
  assert "Traceback (most recent call last)" in run["stderr"]
  assert not any(line.startswith("error:") for line in run["stderr"].splitlines())
  assert not run["workdir"].exists() or not (run["workdir"] / "checkpoints").exists()


def test_unprepared_tfds_data_fails_in_seconds(runs):
  # Offline, letting TFDS download retries DNS for minutes.
  assert runs["tfds_not_prepared"]["seconds"] < 90


# Reports modules imported by the time the program exits: a config error must come
# before TensorFlow is imported (which alone takes seconds).
_IMPORTS_AT_EXIT = """
import atexit, sys
atexit.register(lambda: print("imported:", sorted(m for m in ("tensorflow", "keras")
                                                 if m in sys.modules), file=sys.stderr))
sys.argv = ["ssgan-tf"] + sys.argv[1:]
from ssgan_tf import main
main.cli()
"""


@pytest.mark.parametrize("args, message", [
    (["--gin_file={tmp}/missing.gin"], r"gin file '.*missing\.gin' not found; pass an "
                                       r"existing file to --gin_file"),
    (["--gin_file={tmp}/unclosed.gin"], r"bad gin syntax in .*unclosed\.gin: EOF in "
                                        r"multi-line statement \(an unclosed bracket"),
    (["--gin_param=train.total_steps = 1 2"], r"bad gin syntax in --gin_param, line 1: "
                                              r"Expected newline"),
    # What bash leaves of --gin_param=dataset.name="folder".
    (["--gin_param=dataset.name=folder"], r"""line 1: 'folder' is not a value; string values """
                                          r"""need quotes: --gin_param='dataset.name="folder"'"""),
    (["--gin_param=a.b = 1", "--mode=export"], r"--mode=export takes no --gin_file"),
])
def test_config_errors_come_before_tensorflow_is_imported(tmp_path, args, message):
  (tmp_path / "unclosed.gin").write_text("train.total_steps = (\n")
  env = dict(os.environ, PYTHONPATH=ROOT)
  process = subprocess.run(
      [sys.executable, "-c", _IMPORTS_AT_EXIT, f"--workdir={tmp_path}/w",
       *[a.replace("{tmp}", str(tmp_path)) for a in args]],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
  assert process.returncode == 1, process.stderr
  lines = process.stderr.strip().splitlines()
  assert re.search(message, lines[-2]), lines
  assert lines[-1] == "imported: []"


def test_verbose_shows_the_traceback_down_to_the_error_behind_the_one_line(tmp_path):
  (tmp_path / "unclosed.gin").write_text("train.total_steps = (\n")
  process = subprocess.run(
      [sys.executable, "-m", "ssgan_tf.main", f"--workdir={tmp_path}/w",
       f"--gin_file={tmp_path}/unclosed.gin", "-v", "1"], cwd=ROOT, capture_output=True,
      text=True, timeout=60, check=False)
  assert process.returncode == 1, process.stderr
  assert process.stderr.strip().splitlines()[-1].startswith("error: bad gin syntax in ")
  # The tokenizer's own error, then the ConfigError raised from it.
  cause, _, error = process.stderr.partition(
      "The above exception was the direct cause of the following exception:")
  assert "tokenize.TokenError: ('EOF in multi-line statement'" in cause
  assert "ssgan_tf.errors.ConfigError: bad gin syntax" in error


def test_help_of_the_console_command_shows_how_to_run_it_and_the_exit_statuses():
  process = subprocess.run([sys.executable, "-c", _IMPORTS_AT_EXIT, "--help"], cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                           text=True, timeout=60, check=False)
  assert process.returncode == 0, process.stderr
  assert process.stdout.startswith("Train, evaluate, export or probe an SS-GAN"), process.stdout
  assert "--mode=eval --workdir=runs/quickstart" in process.stdout
  assert "75 stopped by SIGTERM (in training or not) or a first Ctrl-C" in " ".join(
      process.stdout.split())
  assert "--gin_param: Gin bindings" in process.stdout
  # A flag error exits 1, also where a flag's value is the word "help".
  mistyped = subprocess.run([sys.executable, "-c", _IMPORTS_AT_EXIT, "--workdir", "help",
                             "--no_such_flag"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            capture_output=True, text=True, timeout=60, check=False)
  assert mistyped.returncode == 1 and "Unknown command line flag 'no_such_flag'" in (
      mistyped.stderr)


def test_sigterm_saves_the_step_and_exits_75_then_the_same_command_resumes(tmp_path):
  workdir = tmp_path / "w"
  args = [*TINY, "--gin_param=train.total_steps = 400", "--gin_param=train.log_every = 400",
          "--gin_param=train.checkpoint_every = 1000", f"--workdir={workdir}"]
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  trainer = subprocess.Popen([sys.executable, "-m", "ssgan_tf.main", *args], cwd=ROOT, env=env,
                             stderr=subprocess.PIPE, text=True)
  try:
    # The operative config is written after the first step: training is under way.
    deadline = time.monotonic() + 300
    while (not (workdir / "operative_config.gin").exists() and trainer.poll() is None
           and time.monotonic() < deadline):
      time.sleep(0.01)
    trainer.send_signal(signal.SIGTERM)
    _, stderr = trainer.communicate(timeout=120)
  finally:
    trainer.kill()
  assert trainer.returncode == 75, stderr
  match = re.search(r"error: stopped by SIGTERM at step (\d+): saved .*ckpt-(\d+); run the "
                    r"same command again to resume\.", stderr)
  assert match and match.group(1) == match.group(2), stderr[-2000:]
  step = int(match.group(1))
  assert 1 <= step < 400 and (workdir / "checkpoints" / f"ckpt-{step}.index").exists()
  assert not (workdir / "lock.json").exists()
  status, stderr, _ = _cli(*args[:-1], "--gin_param=train.total_steps = " + str(step + 2),
                           f"--workdir={workdir}")
  assert status == 0, stderr
  assert f"resumed from {workdir / 'checkpoints' / f'ckpt-{step}'}" in stderr


@pytest.fixture
def run_main():
  """`run_main(*flags)`: main.run in this process, as `python -m ssgan_tf.main flags`."""
  def run(*args):
    main.FLAGS(["ssgan-tf", *args])
    main.run([])
  try:
    yield run
  finally:
    main.FLAGS.unparse_flags()
    gin.clear_config()


@pytest.mark.parametrize("args, workdir_kind, message", [
    (TINY + ["--gin_param=train.no_such_setting = 1"], "new",
     r"bad gin config: .*no_such_setting"),
    (TINY + ["--gin_param=dataset.name = 'nosuch'"], "new",
     r"unknown dataset 'nosuch'; choose one of \[.*'mnist'"),
    # A training config's dataset would have evaluated the model on other data.
    (["--mode=eval", "--gin_param=dataset.name = 'cifar10'"], "copy",
     r"dataset.name = 'cifar10' \(from --gin_file/--gin_param\) is not the data the model "
     r"was trained on \('mnist'\); drop it"),
    (["--mode=eval"], "new",
     r"workdir .* does not exist; pass a training workdir, or train first: "
     r"python -m ssgan_tf.main"),
    (["--mode=eval", "--export_dir={tmp}/export/4", "--checkpoint=4"], "new",
     r"--export_dir is for --mode=eval, instead of --checkpoint"),
])
def test_bad_input_is_an_error_naming_it_and_leaves_the_workdir_alone(
    trained, run_main, tmp_path, args, workdir_kind, message):
  # In this process: the CLI prints every UserError as the one line checked above.
  workdir = tmp_path / "workdir"
  before = _workdir_of_kind(workdir, workdir_kind, trained)
  with pytest.raises(errors.UserError) as error:
    run_main(*[a.replace("{tmp}", str(tmp_path)) for a in args], f"--workdir={workdir}")
  assert re.search(message, errors.first_line(error.value)), error.value
  _assert_left_alone(workdir, before)


@pytest.mark.parametrize("workdir", ["", "  "])
def test_an_empty_workdir_is_refused_before_anything_is_written(run_main, tmp_path,
                                                                 monkeypatch, workdir):
  # "" used to put checkpoints/ in the working directory, then fail on its lock.
  monkeypatch.chdir(tmp_path)
  with pytest.raises(errors.ConfigError, match=r"--workdir is empty; name a folder"):
    run_main(*TINY, f"--workdir={workdir}")
  assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, binding", [
    ([], "train.total_steps"),  # No --gin_file at all.
    (["--gin_param=train.total_steps = 2"], "dataset.name"),
])
def test_a_required_binding_left_unset_is_one_line_naming_it(run_main, tmp_path, args,
                                                             binding):
  with pytest.raises(errors.ConfigError, match=(
      rf"required gin binding {binding} is not set; start from a config "
      r"\(e\.g\. --gin_file=gin_configs/quickstart\.gin\)")):
    run_main(*args, f"--workdir={tmp_path / 'w'}")
  assert not (tmp_path / "w").exists()


def test_an_exports_model_info_is_that_of_its_workdir(runs):
  workdir = runs["export"]["workdir"]
  restored = export_lib.load_for_evaluation(str(workdir / "export" / "4"))
  gin.clear_config()
  assert (workdir_lib.model_info(restored.model, restored.image_shape)
          == workdir_lib.read_model_info(str(workdir)))


def test_evaluating_an_export_refuses_a_workdir_of_another_model(runs, run_main, tmp_path):
  # A conditional model's records once went into an unconditional model's metrics.jsonl.
  exported = runs["export"]["workdir"]
  other = tmp_path / "other"
  other.mkdir()
  info = json.loads((exported / "model_info.json").read_text())
  (other / "model_info.json").write_text(json.dumps({**info, "num_classes": 10}))
  before = _files(other)
  with pytest.raises(errors.WorkdirError, match=r"workdir .*other' holds a different model"):
    run_main("--mode=eval", f"--export_dir={exported / 'export' / '4'}", f"--workdir={other}")
  assert _files(other) == before


def test_a_tilde_in_a_path_flag_is_the_home_directory(run_main, tmp_path, monkeypatch):
  # A shell leaves `--workdir=~/...` as is; it once made a folder named "~" here.
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.chdir(tmp_path)
  with pytest.raises(errors.WorkdirError, match=re.escape(
      f"workdir '{tmp_path / 'home' / 'nope'}' does not exist")):
    run_main("--mode=eval", "--workdir=~/nope")
  with pytest.raises(errors.ConfigError, match=re.escape(
      f"gin file '{tmp_path / 'home' / 'x.gin'}' not found")):
    run_main("--gin_file=~/x.gin", "--workdir=~/w")
  assert not (tmp_path / "~").exists()


@pytest.fixture
def flags_given():
  """`flags_given(*flags)`: main's flags as the command line would set them."""
  yield lambda *args: main.FLAGS(["ssgan-tf", *args])
  main.FLAGS.unparse_flags()


KEPT = {"train": "the checkpoints saved so far are kept (run the same command again to "
                 "resume).",
        "eval": "the eval wrote nothing (run the same command again)."}


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_sigterm_outside_training_is_one_line_and_exit_75(monkeypatch, capsys, tmp_path,
                                                            flags_given, mode):
  # Start-up (here: with the workdir locked), evaluation, export: a scheduler that
  # preempts then must see "requeue me", not 143; the lock is released on the way out.
  def preempted_at_start_up(argv):
    with workdir_lock.WorkdirLock(str(tmp_path)):
      os.kill(os.getpid(), signal.SIGTERM)
      pytest.fail("the handler raises as soon as the signal is delivered")
  monkeypatch.setattr(main, "run", preempted_at_start_up)
  flags_given(f"--workdir={tmp_path}", f"--mode={mode}")
  before = signal.getsignal(signal.SIGTERM)
  with pytest.raises(SystemExit) as exit_:
    main.main([])
  assert exit_.value.code == errors.EXIT_CODE_PREEMPTED == 75
  assert capsys.readouterr().err.splitlines() == [
      f"error: stopped by SIGTERM outside the training steps; {KEPT[mode]}"]
  assert not (tmp_path / "lock.json").exists()
  assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_ctrl_c_outside_training_is_one_line_and_exit_130(monkeypatch, capsys, flags_given,
                                                            mode):
  # Where training's own handler (save, exit 75) is not installed: start-up, say.
  def interrupted(argv):
    raise KeyboardInterrupt
  monkeypatch.setattr(main, "run", interrupted)
  flags_given("--workdir=w", f"--mode={mode}")
  with pytest.raises(SystemExit) as exit_:
    main.main([])
  assert exit_.value.code == main.EXIT_CODE_INTERRUPTED == 130
  assert capsys.readouterr().err.splitlines() == [f"error: interrupted by Ctrl-C; {KEPT[mode]}"]
