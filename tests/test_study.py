"""The study runner (study.py), its study files (study_file.py) and its report
(study_report.py).

One real study, 2 arms x 2 seeds of the tiny quickstart (4 steps), is run as a subprocess,
stopped by SIGTERM once one run has finished and the next has a checkpoint, and run again:
the finished run is skipped untouched, the interrupted one resumes from its checkpoint,
and the report's numbers are those of the runs' metrics.jsonl, recomputed here. That costs
5 training processes (~10-15 s each); everything else (statistics, what a re-run would do,
bad study files, the shipped studies) is checked in-process on synthetic run folders.
"""

import json
import logging
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time

import gin
import numpy as np
import PIL.Image
import pytest

from ssgan_tf import errors
from ssgan_tf import gin_files
from ssgan_tf import study as study_lib
from ssgan_tf import study_file
from ssgan_tf import study_report
from ssgan_tf import study_runs
from ssgan_tf import workdir_lock
from tiny_runs import files as _files
from tiny_runs import QUICKSTART
from tiny_runs import ROOT
from tiny_runs import tiny_bindings

BASELINE = os.path.join(ROOT, "gin_configs", "quickstart_baseline.gin")
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _write_study(path, arms, seeds, extra_params=(), eval_every=2, other=""):
  params = list(extra_params)
  path.write_text(f"# a test study\nstudy.arms = {json.dumps(arms)}\nstudy.seeds = {seeds}\n"
                  f"study.eval_every = {eval_every}\nstudy.gin_params = {params!r}\n{other}")
  return str(path)


def _runner(*args):
  return [sys.executable, "-m", "ssgan_tf.study", *args]


# ----------------------------------------------------------------------------------------
# The real study: interrupted, then run again.


@pytest.fixture(scope="module")
def study(tmp_path_factory):
  """Runs the tiny study, SIGTERMs it during its second run, runs it again.

  Returns a dict: workdir, study file, the first runner's (status, output), what the
  folders held in between, and the second runner's (status, output).
  """
  tmp = tmp_path_factory.mktemp("study")
  cache = tmp / "cache"
  path = _write_study(
      tmp / "tiny.gin", {"gan": [BASELINE], "ssgan": [QUICKSTART]}, [0, 1],
      tiny_bindings(log_every=2) + [
          "train.checkpoint_every = 1", "train.total_steps = 4",
          f"evaluation.cache_dir = '{cache}'",
          "evaluation.num_samples = 64", "evaluation.num_fake_sets = 2",
          "evaluation.batch_size = 64", 'evaluation.metrics = ("fid", "is", "pr")'])
  workdir = tmp / "workdir"
  output = tmp / "first.txt"
  # Runs go seed by seed: gan/seed0, ssgan/seed0, gan/seed1, ssgan/seed1.
  second_run_checkpoint = workdir / "ssgan" / "seed0" / "checkpoints" / "ckpt-1.index"
  with open(output, "w") as out:
    runner = subprocess.Popen(_runner(f"--study={path}", f"--workdir={workdir}"), cwd=tmp,
                              env=ENV, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    # Training saves ckpt-1 before it evaluates at step 2 and checks for SIGTERM after every
    # step: the signal lands well before step 4.
    while not second_run_checkpoint.exists() and runner.poll() is None:
      assert time.monotonic() < deadline, "the study's second run never wrote a checkpoint"
      time.sleep(0.02)
    runner.send_signal(signal.SIGTERM)
    first_status = runner.wait(timeout=120)
  first = dict(status=first_status, output=output.read_text())
  between = {"gan0": _files(workdir / "gan" / "seed0"),
             "ssgan0_steps": study_runs.checkpoint_steps(workdir / "ssgan" / "seed0"),
             "listing": sorted(os.listdir(workdir))}
  rerun = subprocess.run(_runner(f"--study={path}", f"--workdir={workdir}"), cwd=tmp,
                         env=ENV, capture_output=True, text=True, timeout=300, check=False)
  second = dict(status=rerun.returncode, output=rerun.stdout + rerun.stderr)
  return dict(workdir=workdir, path=path, first=first, between=between, second=second,
              tmp=tmp)


def test_the_run_folder_names_are_the_trainers():
  # study_runs copies them so that the runner starts without TensorFlow.
  from ssgan_tf import checkpoints
  from ssgan_tf import workdir
  from ssgan_tf.evaluation import probe
  from ssgan_tf.evaluation import records
  assert (study_runs.MODEL_INFO, study_runs.CHECKPOINTS, study_runs.METRICS,
          study_runs.SAMPLES) == (workdir.MODEL_INFO, workdir.CHECKPOINTS, workdir.METRICS,
                                  workdir.SAMPLES)
  assert study_runs.CHECKPOINT_INDEX.match(f"{checkpoints.NAME}-120.index").group(1) == "120"
  assert study_runs.SAMPLE_GRID.match(workdir.sample_grid_name(120)).group(1) == "00000120"
  assert study_runs.PROBE_PREFIX == probe.METRIC_PREFIX
  assert study_runs.MINIMAL_RECORD_KEYS == records.MINIMAL_RECORD_KEYS


def test_lines_of_metrics_jsonl_that_are_not_records_are_left_out(tmp_path, caplog):
  from ssgan_tf.evaluation import records
  # A host crash can leave other bytes than a torn record: they raised UnicodeDecodeError,
  # TypeError or KeyError in training's resume and the study's report.
  good = {"step": 4, "checkpoint": None, "metric": "fmd64_test", "value": 1.5,
          "num_real": 64, "num_fake": 64, "classifier": "mnist_cnn_v2"}
  (tmp_path / study_runs.METRICS).write_bytes(
      b"\xff\xfe\x80garbage\nnull\n42\n" + json.dumps(good).encode() + b"\n"
      + b'{"metric": "x", "value": 1}\n{"step": 4, "metr')
  assert study_runs.read_records(str(tmp_path)) == [good]
  with caplog.at_level(logging.WARNING):
    assert records.read_records(str(tmp_path)) == [good]
  assert caplog.text.count("not a record") == 5
  assert records.evaluated_in_training_at(str(tmp_path), 4)
  # And the runner's own log.
  entry = {"arm": "gan", "seed": 0, "mode": "train", "checkpoint": None, "seconds": 2.5,
           "exit_status": 0}
  (tmp_path / study_runs.STUDY_LOG).write_bytes(
      b"\xff\xfe\nnull\n42\n" + json.dumps(entry).encode() + b"\n")
  assert study_report._children(str(tmp_path)) == ({("gan", 0): 2.5}, {("gan", 0): entry})


def test_sigterm_stops_the_study_after_the_running_child_saved(study):
  first, between, workdir = study["first"], study["between"], study["workdir"]
  assert first["status"] == errors.EXIT_CODE_PREEMPTED, first["output"]
  assert re.search(r"\[1/4\] gan/seed0: done in \d+m\d\ds \(step 4/4", first["output"])
  assert re.search(r"error: stopped by SIGTERM during ssgan/seed0 \(train; exit status 75\); "
                   r"run the same command again to resume\.", first["output"])
  assert between["listing"] == ["gan", "logs", "ssgan", "study.gin", "study_log.jsonl"]
  # The child saved the step it had reached, short of the end.
  assert 1 <= between["ssgan0_steps"][-1] < 4, between["ssgan0_steps"]
  log = (workdir / "logs" / "ssgan.seed0.log").read_text()
  assert f"stopped by SIGTERM at step {between['ssgan0_steps'][-1]}" in log


def test_the_rerun_skips_the_finished_run_and_resumes_the_interrupted_one(study):
  second, between, workdir = study["second"], study["between"], study["workdir"]
  assert second["status"] == 0, second["output"]
  lines = [line for line in second["output"].splitlines() if line.startswith("[")]
  assert lines[0] == "[1/4] gan/seed0: finished earlier (step 4/4), skipped"
  assert lines[1].startswith(f"[2/4] ssgan/seed0: training from step "
                             f"{between['ssgan0_steps'][-1]} to 4; log ")
  assert _files(workdir / "gan" / "seed0") == between["gan0"]  # Untouched.
  log = (workdir / "logs" / "ssgan.seed0.log").read_text()
  assert re.search(rf"resumed from .*ckpt-{between['ssgan0_steps'][-1]}\b", log)
  for arm in ("gan", "ssgan"):
    for seed in (0, 1):
      assert study_runs.checkpoint_steps(workdir / arm / f"seed{seed}")[-1] == 4
  entries = [json.loads(line) for line in (workdir / "study_log.jsonl").read_text().splitlines()]
  assert [(e["arm"], e["seed"], e["exit_status"]) for e in entries] == [
      ("gan", 0, 0), ("ssgan", 0, 75), ("ssgan", 0, 0), ("gan", 1, 0), ("ssgan", 1, 0)]


def _final_values(run_dir, metric, step=4):
  """The value of `metric` at `step` in a run's metrics.jsonl (the last record wins)."""
  values = [json.loads(line)["value"] for line in (run_dir / "metrics.jsonl").read_text()
            .splitlines() if json.loads(line)["metric"] == metric
            and json.loads(line)["step"] == step]
  return values[-1]


def test_the_report_holds_the_runs_numbers(study):
  workdir = study["workdir"]
  report = json.loads((workdir / "report.json").read_text())
  assert report["seeds"] == [0, 1] and report["finished_runs"] == 4
  assert report["headline_metric"] == "fmd64_test"
  assert report["metrics"] == ["fmd64_test", "mnist_score64", "mnist_precision64_test",
                               "mnist_recall64_test"]
  means = {}
  for arm in ("gan", "ssgan"):
    for metric in report["metrics"]:
      values = np.array([_final_values(workdir / arm / f"seed{s}", metric) for s in (0, 1)])
      summary = report["arms"][arm]["metrics"][metric]
      np.testing.assert_allclose(summary["values"], values, rtol=0, atol=0)
      np.testing.assert_allclose(summary["mean"], values.mean(), rtol=1e-12)
      np.testing.assert_allclose(summary["std"], np.std(values, ddof=1), rtol=1e-9, atol=1e-15)
      best = values.min() if metric.startswith("fmd") else values.max()
      assert summary["best"] == best and summary["n"] == 2
      means[arm, metric] = values.mean()
    assert report["arms"][arm]["finished_seeds"] == [0, 1]
    assert report["arms"][arm]["mean_wall_seconds"] > 0
  [comparison] = report["comparisons"]["fmd64_test"]
  np.testing.assert_allclose(comparison["difference"],
                             means["gan", "fmd64_test"] - means["ssgan", "fmd64_test"])
  assert comparison["better"] is None  # 2 seeds never name a better arm.
  # The markdown table prints the same numbers.
  markdown = (workdir / "report.md").read_text()
  gan = report["arms"]["gan"]["metrics"]["fmd64_test"]
  assert (f"| gan | 2/2 | 4 | {gan['mean']:.4g} ± {gan['std']:.4g} | {gan['best']:.4g} "
          "(n = 2) |") in markdown
  assert "Only 2 finished seed(s) in an arm: too few" in markdown
  for name in ("curves.png", "samples.png"):
    assert f"]({name})" in markdown
    with PIL.Image.open(workdir / name) as image:
      assert image.format == "PNG" and min(image.size) > 200
  assert not (workdir / "probe.png").exists()  # No probe records.


def test_printed_commands_are_the_ones_the_runner_ran(study):
  printed = subprocess.run(_runner(f"--study={study['path']}",
                                   f"--workdir={study['workdir']}", "--print_commands"),
                           cwd=study["tmp"], env=ENV, capture_output=True, text=True,
                           timeout=60, check=True)
  lines = printed.stdout.splitlines()
  assert len(lines) == 4
  assert "--aggregate_only" in printed.stderr  # What to run afterwards, off stdout.
  for line, (arm, seed) in zip(lines, [("gan", 0), ("ssgan", 0), ("gan", 1), ("ssgan", 1)]):
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "ssgan_tf.main"]
    assert argv[-1] == f"--workdir={study['workdir']}/{arm}/seed{seed}"
    assert {f"--gin_param=train.seed = {seed}", f"--gin_param=ssgan.seed = {seed}",
            "--gin_param=train.eval_every = 2"} <= set(argv)
    header = (study["workdir"] / "logs" / f"{arm}.seed{seed}.log").read_text().splitlines()[0]
    ran = shlex.split(header.split(" ", 2)[2])
    assert ran[1:] == argv[1:]


def test_printed_commands_to_a_closed_pipe_end_without_a_traceback(study):
  # As `--print_commands | head -3` can: the reader is gone before the runner writes.
  read_end, write_end = os.pipe()
  os.close(read_end)
  try:
    printed = subprocess.run(_runner(f"--study={study['path']}",
                                     f"--workdir={study['workdir']}", "--print_commands"),
                             cwd=study["tmp"], env=ENV, stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=60, check=False)
  finally:
    os.close(write_end)
  assert printed.returncode == 1
  assert "Traceback" not in printed.stderr and "BrokenPipeError" not in printed.stderr


def test_a_changed_arm_is_refused_and_a_grown_study_is_not(study, tmp_path):
  workdir, text = study["workdir"], (study["tmp"] / "tiny.gin").read_text()
  ran = study_file.load_study(study["path"])
  for arm in ran.arms:  # Recorded by the runner, as the runs were started.
    recorded = json.loads((workdir / arm.name / study_file.ARM_RECORD).read_text())
    assert recorded == study_file.arm_config(ran, arm)
    assert "train.total_steps = 4" in recorded["gin_params"]
  grown = tmp_path / "grown.gin"
  grown.write_text(text.replace("study.seeds = [0, 1]", "study.seeds = [0, 1, 2]")
                   .replace('{"gan": ', f'{{"more": [{json.dumps(BASELINE)}], "gan": '))
  study_file.check_arms(study_file.load_study(str(grown)), workdir)
  respaced = tmp_path / "respaced.gin"  # The same arms, written otherwise.
  respaced.write_text(text.replace("train.total_steps = 4", "train.total_steps=4"))
  assert "train.total_steps=4" in respaced.read_text()
  study_file.check_arms(study_file.load_study(str(respaced)), workdir)
  changed = tmp_path / "changed.gin"
  changed.write_text(text.replace(f"{json.dumps(QUICKSTART)}]",
                                  f'{json.dumps(QUICKSTART)}, "ssgan.rotation_weight_g = 0.5"]'))
  before = _files(workdir)
  with pytest.raises(errors.ConfigError) as error:
    study_lib.run_study(study_file.load_study(str(changed)), workdir)
  assert re.fullmatch(
      r"arm 'ssgan' of .*changed\.gin differs from the one its runs in .*ssgan were started "
      r"with \(.*study_arm\.json\): gin_params added \['ssgan\.rotation_weight_g = 0\.5'\]; "
      r"restore the arm in the study file, or pass a new --workdir .*", str(error.value))
  assert _files(workdir) == before  # Nothing ran, no report rewritten.


def test_a_second_runner_on_the_study_folder_is_refused_before_it_runs_anything(tmp_path):
  path = _write_study(tmp_path / "s.gin", {"gan": [BASELINE]}, [0])
  workdir = tmp_path / "workdir"
  with workdir_lock.WorkdirLock(workdir, holder="study runner"):  # The first runner.
    before = _files(workdir)
    with pytest.raises(errors.WorkdirError, match=(
        rf"workdir '{re.escape(str(workdir))}' is in use by another study runner \(.*pid "
        rf"{os.getpid()}.*\); wait for it to end or stop it")):
      study_lib.run_study(study_file.load_study(path), str(workdir))
    assert _files(workdir) == before


# Starts a child as the runner does, prints its pid, waits to be killed. The child writes
# its argument file on SIGTERM, and exits.
_RUNNER_OF_A_SLEEPER = r"""
import os, subprocess, sys, time
from ssgan_tf import study
child = subprocess.Popen(
    [sys.executable, "-c", "import signal, sys, time\n"
     "signal.signal(signal.SIGTERM, lambda *_: (open(sys.argv[1], 'w').close(), sys.exit(75)))\n"
     "print('ready', flush=True)\n"
     "time.sleep(120)", sys.argv[1]],
    stdout=subprocess.PIPE, start_new_session=True,
    preexec_fn=study._stop_with_the_runner(os.getpid()))
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_child_is_stopped_when_its_runner_is_killed(tmp_path):
  # Without it, kill -9 of the runner left the child training, holding its run's lock.
  stopped = tmp_path / "stopped"
  runner = subprocess.Popen([sys.executable, "-c", _RUNNER_OF_A_SLEEPER, str(stopped)],
                            stdout=subprocess.PIPE, text=True, env=ENV)
  child_pid = int(runner.stdout.readline())
  child = os.pidfd_open(child_pid)
  try:
    runner.kill()
    runner.wait()
    # The pidfd is readable once the child has exited: no polling of /proc.
    assert select.select([child], [], [], 30)[0], "the child outlived its runner"
    assert stopped.exists()  # It got SIGTERM: a trainer saves its step on it.
  finally:
    if not select.select([child], [], [], 0)[0]:
      os.kill(child_pid, signal.SIGKILL)
    os.close(child)


def test_an_edited_gin_file_or_include_is_refused_and_a_new_comment_is_not(tmp_path,
                                                                          monkeypatch):
  monkeypatch.chdir(tmp_path)
  configs = tmp_path / "configs"
  configs.mkdir()
  (configs / "base.gin").write_text("train.total_steps = 4\nssgan.rotation_weight_g = 0.2\n")
  (configs / "arm.gin").write_text("include 'base.gin'\nssgan.z_dim = @custom_z()\n")
  path = _write_study(tmp_path / "s.gin", {"a": ["./configs/arm.gin"]}, [0])
  workdir = tmp_path / "workdir"
  record = workdir / "a" / study_file.ARM_RECORD

  def study_and_arm():  # As the runner reads them just before it starts a run.
    study = study_file.load_study(path)
    return study, study_file.reread_arm(study, study.arms[0])

  def check():
    study_file.check_arms(study_file.load_study(path), workdir)

  study_file.record_arm(*study_and_arm(), workdir)
  assert sorted(json.loads(record.read_text())["gin_file_digests"]) == [
      "configs/arm.gin", "configs/base.gin"]  # Normalized: "./configs" or "configs".
  (configs / "base.gin").write_text("train.total_steps = 4\nssgan.rotation_weight_g = 0.5\n")
  check()  # No run of the arm has begun training: it may still change, and is recorded
  study, arm = study_and_arm()  # anew when the next run starts.
  assert study_file.arm_refusal(study, arm, workdir) is None
  study_file.record_arm(study, arm, workdir)
  assert json.loads(record.read_text())["gin_file_digests"] == dict(arm.gin_file_digests)
  (workdir / "a" / "seed0").mkdir()
  (workdir / "a" / "seed0" / "model_info.json").write_text("{}")  # Training has begun.
  (configs / "base.gin").write_text("# tried 0.2: worse\ntrain.total_steps = 4\n\n"
                                    "ssgan.rotation_weight_g =   0.5  # 0.2 in the paper\n"
                                    "evaluation.num_samples = 100\n")
  check()  # Comments, layout and how runs are evaluated are not what they train.
  (tmp_path / "base.gin").write_text((configs / "base.gin").read_text())
  for file, text in [("configs/base.gin", "train.total_steps = 4\n"),
                     ("configs/arm.gin", "include 'base.gin'\nssgan.z_dim = @other_z()\n"),
                     # The same settings, but the include now found in the working
                     # directory: another file, which may change apart from this one.
                     ("configs/base.gin", None)]:
    original = (tmp_path / file).read_text()
    if text is None:
      (tmp_path / file).unlink()
    else:
      (tmp_path / file).write_text(text)
    with pytest.raises(errors.ConfigError) as error:
      check()
    assert re.fullmatch(
        r"gin file (\./)?(configs/)?(base|arm)\.gin of arm 'a' has other settings than "
        r"when the arm's runs in .*workdir/a were started \(recorded in .*study_arm\.json\); "
        r"restore the file, or pass a new --workdir \(or save the edited file under a new "
        r"name for a new arm\)\.", str(error.value)), str(error.value)
    study, arm = study_and_arm()  # What the runner checks before each run.
    assert study_file.arm_refusal(study, arm, workdir) == str(error.value)
    (tmp_path / file).write_text(original)
  check()
  # A record written before digests were kept checks names and bindings only.
  (configs / "base.gin").write_text("train.total_steps = 4\nssgan.rotation_weight_g = 0.9\n")
  old = json.loads(record.read_text())
  del old["gin_file_digests"]
  record.write_text(json.dumps(old))
  check()


# ----------------------------------------------------------------------------------------
# Statistics and aggregation on synthetic run folders (no training).


def test_direction_follows_the_metric_name():
  for name in ("fid10k_test", "fmd500_test", "kid10k_test", "kmd500_test", "fid10k_test_ema"):
    assert study_report.direction(name) == "lower"
  for name in ("is10k", "mnist_score500", "precision10k_test", "mnist_recall500_test",
               "probe_top1_test"):
    assert study_report.direction(name) == "higher"
  assert study_report.direction("loss_something") is None


def test_summary_is_mean_sample_std_and_best():
  summary = study_report.summarize([3.0, 1.0, 2.0], "lower")
  assert summary == {"n": 3, "mean": 2.0, "std": 1.0, "best": 1.0, "values": [3.0, 1.0, 2.0]}
  assert study_report.summarize([3.0, 1.0, 2.0], "higher")["best"] == 3.0
  assert study_report.summarize([5.0], "lower")["std"] is None
  assert study_report.summarize([5.0, 7.0], None)["best"] is None


@pytest.mark.parametrize("a, b, better, verdict, winner", [
    ([10.0, 12.0, 14.0], [11.0, 13.0, 15.0], "lower", "within_one_std", None),
    ([10.0, 10.5, 11.0], [20.0, 20.5, 21.0], "lower", "beyond_one_std", "a"),
    ([10.0, 10.5, 11.0], [20.0, 20.5, 21.0], "higher", "beyond_one_std", "b"),
    ([10.0, 10.5, 11.0], [20.0, 20.5, 21.0], None, "beyond_one_std", None),
    ([10.0, 10.5], [20.0, 20.5], "lower", "beyond_one_std", None),  # 2 seeds: no winner.
    ([10.0], [20.0, 20.5, 21.0], "lower", "too_few_seeds", None),
    ([1.0, 1.0 + 1e-13, 1.0], [1.0 + 5e-10] * 3, "higher", "within_one_std", None),
])
def test_comparisons_name_a_better_arm_only_when_the_seeds_support_it(a, b, better, verdict,
                                                                       winner):
  result = study_report.compare("a", study_report.summarize(a, better),
                                "b", study_report.summarize(b, better), better)
  assert (result["verdict"], result["better"]) == (verdict, winner), result["text"]
  assert result["difference"] == pytest.approx(np.mean(a) - np.mean(b))
  if verdict == "beyond_one_std":
    from scipy import stats
    assert result["welch_p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert "Welch's t-test p = " in result["text"]


def test_arms_whose_seeds_all_agree_are_apart_without_a_t_test_saying_why():
  result = study_report.compare("a", study_report.summarize([5.0] * 3, "lower"),
                                "b", study_report.summarize([6.0] * 3, "lower"), "lower")
  assert result["verdict"] == "beyond_one_std" and result["welch_p"] is None
  assert "every seed of each arm gave the same value (no t-test" in result["text"]


def _fake_run(run_dir, total_steps, values, *, final_step=None, samples=True):
  """A run folder: checkpoints up to `final_step` (default total_steps), a record per
  (step, metric) of `values` = {metric: {step: value}}."""
  final_step = total_steps if final_step is None else final_step
  (run_dir / "checkpoints").mkdir(parents=True)
  for step in range(1, final_step + 1):
    (run_dir / "checkpoints" / f"ckpt-{step}.index").write_text("")
  records = [{"step": step, "checkpoint": None, "metric": metric, "value": value, "std": 0.1,
              "runs": 3, "num_real": 10, "num_fake": 10, "classifier": "x"}
             for metric, by_step in values.items() for step, value in by_step.items()]
  (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  if samples:
    (run_dir / "samples").mkdir()
    PIL.Image.fromarray(np.full((16, 16), 128, np.uint8)).save(
        run_dir / "samples" / f"fakes_{final_step:08d}.png")


@pytest.fixture
def synthetic(tmp_path):
  """A 2-arm x 3-seed study over synthetic run folders (4 steps)."""
  path = _write_study(tmp_path / "s.gin", {"gan": [BASELINE], "ssgan": [QUICKSTART]}, [0, 1, 2],
                      ["train.total_steps = 4"], other="study.probe_steps = ['final']\n")
  workdir = tmp_path / "w"
  fid = {"gan": [20.0, 22.0, 27.0], "ssgan": [12.0, 13.0, 14.0]}
  for arm in ("gan", "ssgan"):
    for seed in range(3):
      values = {"fid10k_test": {2: 40.0 + seed, 4: fid[arm][seed]},
                "recall10k_test": {2: 0.3, 4: 0.5 + 0.1 * seed},
                "probe_top1_test": {4: 0.6 + 0.01 * seed}}
      if (arm, seed) == ("ssgan", 2):
        values["fid10k_test"][4] = 99.0  # Superseded by the record appended below.
      _fake_run(workdir / arm / f"seed{seed}", 4, values)
  with open(workdir / "ssgan" / "seed2" / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": 4, "metric": "fid10k_test", "value": 14.0}) + "\n{torn")
  return study_file.load_study(path), workdir, fid


def test_the_report_counts_finished_runs_only(synthetic):
  study, workdir, fid = synthetic
  # Seed 2 of gan: trained, but its final evaluation is missing; a 4th run is not there.
  lines = (workdir / "gan" / "seed2" / "metrics.jsonl").read_text().splitlines()
  (workdir / "gan" / "seed2" / "metrics.jsonl").write_text(
      "\n".join(line for line in lines if '"step": 4' not in line) + "\n")
  report = study_report.write(study, workdir)
  gan, ssgan = report["arms"]["gan"], report["arms"]["ssgan"]
  assert gan["finished_seeds"] == [0, 1] and ssgan["finished_seeds"] == [0, 1, 2]
  assert gan["runs"]["2"]["status"] == "trained, final evaluation missing"
  assert gan["metrics"]["fid10k_test"]["values"] == fid["gan"][:2]
  assert ssgan["metrics"]["fid10k_test"]["values"] == fid["ssgan"]  # The last record won.
  assert ssgan["metrics"]["fid10k_test"]["std"] == pytest.approx(1.0)
  assert ssgan["metrics"]["recall10k_test"]["best"] == pytest.approx(0.7)
  assert report["headline_metric"] == "fid10k_test"
  [c] = report["comparisons"]["fid10k_test"]
  # 2 gan seeds: more than one std apart, and no winner called.
  assert c["verdict"] == "beyond_one_std" and c["better"] is None
  assert set(report["figures"]) == {"curves", "probe", "samples"}
  markdown = (workdir / "report.md").read_text()
  assert "| gan | 2/3 | 4 | 21 ± 1.414 | 20 (n = 2) |" in markdown
  assert "| ssgan | 3/3 | 4 | 13 ± 1 | 12 (n = 3) |" in markdown


def test_three_seeds_apart_by_more_than_one_std_name_the_better_arm(synthetic):
  study, workdir, _ = synthetic
  report = study_report.collect(study, workdir)
  [c] = report["comparisons"]["fid10k_test"]
  assert (c["verdict"], c["better"]) == ("beyond_one_std", "ssgan")
  assert c["difference"] == pytest.approx(23.0 - 13.0)


def test_what_a_rerun_would_do(synthetic, tmp_path):
  study, workdir, _ = synthetic
  gan, ssgan = study.arms
  assert study_lib.pending(study, workdir, gan, 0)[0] == []  # Finished and probed.
  lines = (workdir / "gan" / "seed1" / "metrics.jsonl").read_text().splitlines()
  (workdir / "gan" / "seed1" / "metrics.jsonl").write_text(lines[0] + "\n")
  assert study_lib.pending(study, workdir, gan, 1)[0] == [("eval", 4), ("probe", 4)]
  _fake_run(tmp_path / "other" / "ssgan" / "seed0", 4, {}, final_step=2, samples=False)
  todo, state = study_lib.pending(study, tmp_path / "other", ssgan, 0)
  assert todo == [("train", None), ("probe", 4)] and state.step == 2
  assert study_lib.pending(study, tmp_path / "none", ssgan, 0)[0] == [("train", None),
                                                                      ("probe", 4)]


def test_the_cluster_route_holds_arms_to_their_config_and_finishes_trained_runs(
    synthetic, tmp_path, capsys):
  study, workdir, _ = synthetic
  arms = {"gan": [BASELINE], "ssgan": [QUICKSTART]}

  def cli(*flags, **study_changes):
    path = _write_study(tmp_path / "now.gin", {**arms, **study_changes.get("arms", {})},
                        [0, 1, 2], ["train.total_steps = 4"] + study_changes.get("params", []),
                        other="study.probe_steps = ['final']\n" + study_changes.get("other", ""))
    capsys.readouterr()
    try:
      study_lib.main([f"--study={path}", f"--workdir={workdir}", *flags])
      status = 0
    except SystemExit as e:
      status = e.code
    return status, capsys.readouterr()

  status, printed = cli("--print_commands")
  assert status == 0 and len(printed.out.splitlines()) == 6
  for arm in study.arms:  # The printed commands start runs: their config is recorded.
    assert json.loads((workdir / arm.name / study_file.ARM_RECORD).read_text()) == (
        study_file.arm_config(study, arm))
  for flag in ("--aggregate_only", "--print_commands"):
    status, printed = cli(flag, arms={"ssgan": [QUICKSTART, "ssgan.rotation_weight_g = 0.5"]})
    assert status == 1 and re.fullmatch(
        r"error: arm 'ssgan' of .* differs from the one its runs in .* were started with "
        r".*gin_params added \['ssgan\.rotation_weight_g = 0\.5'\]; .*\n", printed.err)
  status, printed = cli("--aggregate_only", params=["evaluation.num_samples = 100",
                                                    "dataset.data_dir = '/data'"])
  assert status == 0 and printed.out.startswith("report: ")
  assert "miss their final evaluation" not in printed.out  # Every run is finished.
  status, printed = cli("--aggregate_only", other="study.metric = 'fmd500_test_ema'\n")
  assert status == 0 and printed.out.splitlines()[1] == (
      "warning: study.metric 'fmd500_test_ema' was not recorded by any finished run "
      "(recorded: ['fid10k_test', 'recall10k_test', 'probe_top1_test']); showing "
      "'fid10k_test' instead.")
  # gan/seed1 trained, but its final evaluation and probe were lost (preempted, say).
  lines = (workdir / "gan" / "seed1" / "metrics.jsonl").read_text().splitlines()
  (workdir / "gan" / "seed1" / "metrics.jsonl").write_text(lines[0] + "\n")
  status, printed = cli("--aggregate_only")
  _, header, line = printed.out.splitlines()
  assert status == 0 and header.startswith("1 trained run(s) miss their final evaluation")
  evaluate, probe = [shlex.split(part) for part in line.split(" && ")]
  assert evaluate[:5] == ["python", "-m", "ssgan_tf.main", "--mode=eval", "--checkpoint=4"]
  assert probe[3:5] == ["--mode=probe", "--checkpoint=4"]
  assert f"--workdir={workdir / 'gan' / 'seed1'}" in evaluate
  assert "--gin_param=train.seed = 1" in evaluate


def test_a_run_whose_last_child_failed_says_so_with_its_log(synthetic):
  study, workdir, _ = synthetic
  for seed in (1, 2):
    lines = (workdir / "gan" / f"seed{seed}" / "metrics.jsonl").read_text().splitlines()
    (workdir / "gan" / f"seed{seed}" / "metrics.jsonl").write_text(lines[0] + "\n")
  before = study_report.collect(study, workdir)["arms"]["gan"]["runs"]
  with open(workdir / study_runs.STUDY_LOG, "a") as f:
    for seed, status in [(1, 75), (2, 1)]:
      f.write(json.dumps({"arm": "gan", "seed": seed, "mode": "eval", "checkpoint": 4,
                          "seconds": 3.0, "exit_status": status}) + "\n")
  runs = study_report.collect(study, workdir)["arms"]["gan"]["runs"]
  assert runs["1"]["status"] == "trained, final evaluation missing"  # Preempted: no failure.
  assert runs["2"]["status"] == ("trained, final evaluation missing; its last eval failed "
                                 "(exit status 1, logs/gan.seed2.log)")
  # A run's wall time counts every child of it, stopped and failed ones too.
  for seed in ("1", "2"):
    assert runs[seed]["wall_seconds"] == (before[seed]["wall_seconds"] or 0.0) + 3.0


def test_a_failed_childs_message_is_its_own_not_an_earlier_ones(tmp_path):
  log = tmp_path / "run.log"
  log.write_text("=== 2026-01-01T00:00:00 python -m ssgan_tf.main --workdir=w\n"
                 "step 10/10\nerror: stopped by SIGTERM at step 10: saved w/ckpt-10; ...\n"
                 "=== 2026-01-01T00:05:00 python -m ssgan_tf.main --mode=eval\n"
                 "I1207 eval_lib.py] sampling\n")
  assert study_lib._last_error_line(str(log), -9) == "killed by SIGKILL"
  assert study_lib._last_error_line(str(log), 1) == "I1207 eval_lib.py] sampling"
  with open(log, "a") as f:
    f.write("error: bad gin config: no parameter named 'rotation_weigth_g'\nmore\n")
  assert study_lib._last_error_line(str(log), 1) == (
      "error: bad gin config: no parameter named 'rotation_weigth_g'")


def test_a_crashed_childs_message_is_its_exception_not_gins_trailer(tmp_path):
  log = tmp_path / "run.log"
  log.write_text(
      "=== 2026-01-01T00:00:00 python -m ssgan_tf.main --workdir=w\n"
      "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
      "ValueError: Exception encountered when calling DiscriminatorTrunk.call().\n\n"
      "\x1b[1mCannot convert '(3, 3, 1, -3)' to a shape.\x1b[0m\n\n"
      "Arguments received by DiscriminatorTrunk.call():\n  \u2022 training=False\n"
      "  In call to configurable 'networks' (<function build_networks at 0x7fc2>)\n"
      "  In call to configurable 'train' (<function train at 0x7fc3>)\n")
  assert study_lib._last_error_line(str(log), 1) == (
      "ValueError: Exception encountered when calling DiscriminatorTrunk.call(). Cannot "
      "convert '(3, 3, 1, -3)' to a shape.")
  with open(log, "a") as f:
    f.write("Traceback (most recent call last):\n"
            "tensorflow.python.framework.errors_impl.InvalidArgumentError: bad shape\n"
            "  In call to configurable 'train' (<function train at 0x7fc3>)\n")
  assert study_lib._last_error_line(str(log), 1) == (
      "tensorflow.python.framework.errors_impl.InvalidArgumentError: bad shape")
  with open(log, "a") as f:  # An exception without a message.
    f.write("Traceback (most recent call last):\nAssertionError\n"
            "  In call to configurable 'train' (<function train at 0x7fc3>)\n")
  assert study_lib._last_error_line(str(log), 1) == "AssertionError"


# ----------------------------------------------------------------------------------------
# Study files.


GOOD = ('study.arms = {"gan": ["%s"]}\nstudy.eval_every = 2\n' % BASELINE)


@pytest.mark.parametrize("text, message", [
    ("study.eval_every = 2\n", r"study\.arms is required"),
    ('study.arms = {"gan": ["%s"]}\n' % BASELINE, r"study\.eval_every is required"),
    (GOOD + "study.seed = [1]\n", r"line 3: unknown setting study\.seed; a study file binds"),
    (GOOD + "train.total_steps = 3\n", r"unknown setting train\.total_steps"),
    (GOOD + "study.seeds = [0, 0]\n", r"study\.seeds repeats a seed"),
    (GOOD + "study.seeds = [-1]\n", r"study\.seeds must be a non-empty list of integers"),
    (GOOD + "study.seeds = @foo\n", r"literal values only, not @foo"),
    (GOOD + "study.eval_every = 3\n", r"line 3: study\.eval_every is bound twice \(also line 2\)"),
    (GOOD.replace("= 2", "= 0"), r"study\.eval_every must be an integer >= 1; got 0"),
    (GOOD + 'include "x.gin"\n', r"study\.\* bindings only \(no include or import\)"),
    (GOOD + "study.probe_steps = ['last']\n", r"study\.probe_steps must be a list of "
                                              r"checkpoint steps"),
    (GOOD + "study.gin_params = ['train.seed = 3']\n",
     r"binds train\.seed, which the study sets for every run"),
    (GOOD + "study.gin_params = ['ssgan.z_dim = ']\n", r"bad gin syntax in .*ssgan\.z_dim"),
    (GOOD + "study.arms = {\n", r"bad gin syntax"),
    ('study.arms = {"a b": ["%s"]}\nstudy.eval_every = 2\n' % BASELINE,
     r"arm name 'a b' must be a folder name"),
    ('study.arms = {"gan": ["ssgan.z_dim = 3"]}\nstudy.eval_every = 2\n',
     r"study\.arms\['gan'\] must start with a gin file"),
    ('study.arms = {"gan": ["missing.gin"]}\nstudy.eval_every = 2\n',
     r"gin file 'missing\.gin' not found \(paths are relative to the directory"),
    ('study.arms = {"report.md": ["%s"]}\nstudy.eval_every = 2\n' % BASELINE,
     r"arm name 'report\.md' is taken by the study's own files \(study_log\.jsonl, logs, "),
    ('study.arms = {"gan": ["%s", "train.eval_every = 5"]}\nstudy.eval_every = 2\n' % BASELINE,
     r"binds train\.eval_every, which the study sets"),
    ('study.arms = {"gan": ["%s", "train.total_steps = %%steps"]}\nstudy.eval_every = 2\n'
     % BASELINE, r"cannot read train\.total_steps as an integer >= 1"),
])
def test_a_bad_study_file_is_one_line_naming_the_fix(tmp_path, text, message):
  path = tmp_path / "bad.gin"
  path.write_text(text)
  with pytest.raises(errors.ConfigError) as error:
    study_file.load_study(str(path))
  assert "\n" not in str(error.value)
  assert re.search(message, str(error.value)), str(error.value)


def test_total_steps_come_from_the_arms_files_and_bindings(tmp_path):
  path = _write_study(tmp_path / "s.gin", {"gan": [BASELINE], "short": [QUICKSTART,
                                                                        "train.total_steps = 7"]},
                      [0], [])
  study = study_file.load_study(path)
  # quickstart_baseline.gin includes quickstart.gin, found next to it.
  with open(QUICKSTART) as f:
    quickstart_steps = int(re.search(r"^train\.total_steps = (\d+)", f.read(), re.M).group(1))
  assert [(a.name, a.total_steps) for a in study.arms] == [("gan", quickstart_steps),
                                                           ("short", 7)]


def test_includes_are_found_where_the_trainers_gin_finds_them(tmp_path, monkeypatch):
  from ssgan_tf import train_lib  # pylint: disable=import-outside-toplevel,unused-import
  monkeypatch.chdir(tmp_path)  # train_lib: gin knows `train` (no configurable of our own:
  # one registered here would make the name ambiguous in every later in-process test).
  for path, steps in [("base.gin", 99), ("configs/base.gin", 10), ("configs/leaf.gin", 30),
                      ("configs/sub/leaf.gin", 40)]:
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(f"train.total_steps = {steps}\n")
  (tmp_path / "configs" / "top.gin").write_text("include 'base.gin'\n")
  (tmp_path / "configs" / "sub" / "mid.gin").write_text("include 'leaf.gin'\n")
  (tmp_path / "configs" / "nested.gin").write_text("include 'sub/mid.gin'\n")
  for top in ["configs/top.gin", "configs/nested.gin"]:
    study = study_file.load_study(_write_study(tmp_path / "s.gin", {"a": [top]}, [0]))
    try:
      gin_files.parse([top], [])
      assert study.arms[0].total_steps == gin.query_parameter("train.total_steps")
    finally:
      gin.clear_config()
  assert study.arms[0].total_steps == 30  # Not sub/leaf.gin's 40: gin looks next to the top.


def test_the_cli_prints_one_error_line(tmp_path):
  path = tmp_path / "bad.gin"
  path.write_text(GOOD + "study.nope = 1\n")
  result = subprocess.run(_runner(f"--study={path}", f"--workdir={tmp_path}/w"), env=ENV,
                          capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().count("\n") == 0
  assert result.stderr.startswith("error: ") and "unknown setting study.nope" in result.stderr
  assert not (tmp_path / "w").exists()


def test_the_shipped_studies(monkeypatch, tmp_path):
  monkeypatch.chdir(ROOT)  # Their paths are relative to the repository root.
  mnist = study_file.load_study(os.path.join(ROOT, "studies", "mnist_table1.gin"))
  assert [a.name for a in mnist.arms] == ["gan", "ssgan"] and mnist.seeds == (0, 1, 2)
  assert [a.gin_files for a in mnist.arms] == [("gin_configs/quickstart_baseline.gin",),
                                               ("gin_configs/quickstart.gin",)]
  assert mnist.metric == "fmd500_test_ema"
  with open(mnist.path) as f:
    text = f.read()
  # The header says what the whole study took, on which CPU.
  assert re.search(r"measured: \d+ min \d+ s for the whole study", text) and "AVX-512" in text
  for optional in ('# "ssgan_bn": ["gin_configs/quickstart.gin",',
                   '#              \'networks.generator_normalization = "batch_norm"\'],',
                   '# "cond_gan": ["gin_configs/quickstart_cond.gin"],'):
    assert optional in text
  # Uncommented, the optional arms are a valid study: their files and bindings parse.
  uncommented = tmp_path / "mnist_all_arms.gin"
  uncommented.write_text(re.sub(r"^    # (\"|  )", r"    \1", text, flags=re.M))
  arms = {a.name: a for a in study_file.load_study(str(uncommented)).arms}
  assert list(arms) == ["gan", "ssgan", "ssgan_bn", "cond_gan"]
  assert arms["ssgan_bn"].gin_files == ("gin_configs/quickstart.gin",)
  assert arms["ssgan_bn"].gin_params == ('networks.generator_normalization = "batch_norm"',)
  cifar = study_file.load_study(os.path.join(ROOT, "studies", "cifar10_table1.gin"))
  assert {a.name: a.gin_files for a in cifar.arms} == {
      name: (f"gin_configs/cifar10/{name}.gin",) for name in ("gan", "cond_gan", "ssgan",
                                                                "ssgan_sbn")}
  assert cifar.metric == "fid10k_test" and cifar.seeds == (0, 1, 2)
  with open(cifar.path) as f:
    text = f.read()
  for expected in ("GAN 19.73 [recalled]", "Cond-GAN 15.60 [recalled]",
                   "SS-GAN 17.11 [recalled]", "SS-GAN (sBN) 15.65 [verified]"):
    assert expected in text


def test_values_from_different_classifiers_are_flagged(synthetic, capsys):
  study, workdir, _ = synthetic
  assert study_report.collect(study, workdir)["mixed_classifiers"] == {}
  # gan/seed1 re-evaluated with another classifier (e.g. a new version of it).
  with open(workdir / "gan" / "seed1" / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": 4, "metric": "fid10k_test", "value": 21.5,
                        "classifier": "y"}) + "\n")
  report = study_lib.write_report(study, workdir)
  assert report["mixed_classifiers"] == {"fid10k_test": {
      "x": ["gan/seed0", "gan/seed2", "ssgan/seed0", "ssgan/seed1"], "y": ["gan/seed1"]}}
  assert "recall10k_test" not in report["mixed_classifiers"]
  assert report["comparisons"]["fid10k_test"] == []  # Not compared: no arm called better.
  assert report["comparisons"]["recall10k_test"]
  markdown = (workdir / "report.md").read_text()
  assert ("**Not comparable: `fid10k_test` from different classifiers** "
          "(x: gan/seed0, gan/seed2, ssgan/seed0, ssgan/seed1; y: gan/seed1)") in markdown
  assert ("warning: fid10k_test from different classifiers (x, y): not comparable"
          in capsys.readouterr().out)


def test_a_non_finite_final_value_is_left_out_and_named(synthetic):
  # A NaN once made gan's mean NaN and "ssgan" lose to it; report.json held NaN tokens.
  study, workdir, fid = synthetic
  with open(workdir / "ssgan" / "seed1" / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": 4, "checkpoint": None, "metric": "fid10k_test",
                        "value": float("nan"), "classifier": "x"}) + "\n")
  report = study_report.write(study, workdir)
  ssgan = report["arms"]["ssgan"]
  assert ssgan["metrics"]["fid10k_test"]["values"] == [fid["ssgan"][0], fid["ssgan"][2]]
  assert ssgan["metrics"]["fid10k_test"]["seeds"] == [0, 2]
  assert ssgan["non_finite"] == {"fid10k_test": [1]}
  [c] = report["comparisons"]["fid10k_test"]
  assert c["better"] is None and c["difference"] == pytest.approx(23.0 - 13.0)

  def no_constants(name):
    raise AssertionError(f"report.json holds {name}")
  strict = json.loads((workdir / "report.json").read_text(), parse_constant=no_constants)
  assert strict["arms"]["ssgan"]["runs"]["1"]["final"]["fid10k_test"]["value"] is None
  assert ("**ssgan: `fid10k_test` is not finite for seed(s) 1: left out of its "
          "statistics.**") in (workdir / "report.md").read_text()


def test_curves_hold_the_evaluation_during_training_of_finished_runs(synthetic):
  study, workdir, _ = synthetic
  # An --mode=eval of checkpoint 3 (its own settings) is no point of the curve.
  with open(workdir / "ssgan" / "seed0" / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": 3, "checkpoint": "ssgan/seed0/checkpoints/ckpt-3",
                        "metric": "fid10k_test", "value": 500.0}) + "\n")
  report = study_report.collect(study, workdir)
  runs = report["arms"]["ssgan"]["runs"]
  assert runs["0"]["curves"]["fid10k_test"] == [[2, 40.0], [4, 12.0]]
  # seed 2's final value is the last record of step 4 (as in the table), not 99.
  assert runs["2"]["curves"]["fid10k_test"] == [[2, 42.0], [4, 14.0]]
  assert runs["0"]["curves"]["probe_top1_test"] == [[4, 0.6]]
