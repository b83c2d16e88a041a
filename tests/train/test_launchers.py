"""The sweep's launchers without a cluster: option checks, device groups, the SLURM
bookkeeping against a stand-in for sbatch/squeue, and parallel local processes."""

import json
import os
import signal
import sys

import pytest

from hncl_jax import sweep
from hncl_jax.sweep import launchers
from hncl_jax.sweep import slurm as slurm_lib

BASE = [
    "sweep",
    "--config=configs/synthetic.py:smoke",
    "--config.plots=False",
    "--config.linear_probe=off",
]


def run_cli(tmp_path, *args):
    return sweep.main([*BASE, f"--root={tmp_path / 'root'}", *args])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--launcher=cloud"], "--launcher='cloud' is not a launcher; use one of local, slurm"),
        (["--launcher=slurm", "--slurm.time_min=ten"], "--slurm.time_min=ten"),
        (["--launcher=slurm", "--slurm.gpus_per_run=-1"], "--slurm.gpus_per_run=-1 must be >= 0"),
        (["--launcher=slurm", "--slurm.extra=qos"], "'qos' is not 'option=value'"),
        (["--launcher=slurm", "--slurm.partiton=gpu"], "partiton"),
        (
            ["--launcher=slurm", "--slurm.time_min=1", "--slurm.signal_delay_s=60"],
            "must be shorter than the time limit",
        ),
        (["--launcher=slurm", "--devices_per_run=1"], "--slurm.gpus_per_run"),
        (["--devices_per_run=2", "--devices=0"], "--devices_per_run=2 needs 2 devices"),
    ],
)
def test_bad_launcher_options_fail_before_anything_runs(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        run_cli(tmp_path, "--grid=loss.beta=0,1", *args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "root").exists()  # nothing planned, written or submitted


def test_slurm_without_submitit_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    with pytest.raises(SystemExit):
        run_cli(tmp_path, "--launcher=slurm")
    assert "pip install submitit (in a checkout: pip install -e '.[slurm]')" in (
        capsys.readouterr().err
    )


def test_slurm_without_sbatch_on_the_path(tmp_path, capsys, monkeypatch):
    try:
        slurm_lib.import_submitit()
    except ImportError:
        pytest.skip("submitit is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    with pytest.raises(SystemExit):
        run_cli(tmp_path, "--launcher=slurm")
    assert "sbatch is not on the PATH" in capsys.readouterr().err


def test_slurm_options_are_typed_and_parsed():
    o = slurm_lib.options({"mem_gb": 8, "extra": "qos=high, constraint=a100"})
    assert o["mem_gb"] == 8.0 and isinstance(o["mem_gb"], float)
    assert o["extra"] == {"qos": "high", "constraint": "a100"}
    with pytest.raises(ValueError, match="must be an int"):
        slurm_lib.options({"cpus_per_run": 2.5})
    with pytest.raises(ValueError, match="must be an int"):
        slurm_lib.options({"time_min": True})


def test_device_groups():
    assert launchers.device_groups(["0", "1", "2", "3", "4"], 2) == ["0,1", "2,3"]
    assert launchers.device_groups(["0", "1"], 1) == ["0", "1"]
    with pytest.raises(ValueError, match=">= 1"):
        launchers.device_groups(["0"], 0)


class FakeSlurm:
    """sbatch and squeue stood in for: `submit` records the jobs it was given (nothing
    trains), `active_jobs` answers from a set the test controls."""

    def __init__(self, monkeypatch):
        self.active: set[str] = set()
        self.hold = True  # False: the jobs end at once, unfinished (e.g. cancelled)
        self.submitted: list[list[str]] = []
        self.after: list[tuple[str, ...]] = []
        monkeypatch.setattr(slurm_lib, "check_available", lambda: None)
        monkeypatch.setattr(slurm_lib, "active_jobs", lambda: set(self.active))
        monkeypatch.setattr(slurm_lib, "submit", self.submit)

    def submit(self, plan, opts, folder, *, train_output=False, name="x", after=()):
        array = len(self.submitted) + 1
        ids = [f"{array}_{i}" for i in range(len(plan))]
        for job_id, (_, _, workdir) in zip(ids, plan, strict=True):
            os.makedirs(workdir, exist_ok=True)
            with open(os.path.join(workdir, slurm_lib.JOB_FILE), "w") as fh:
                json.dump({"job_id": job_id, "log": "log"}, fh)
        self.submitted.append([os.path.basename(w) for _, _, w in plan])
        self.after.append(tuple(after))
        if self.hold:
            self.active |= set(ids)
        return ids


def finish(root, name, config_of):
    """Writes a run's sweep_result.json as its job would."""
    plan = {os.path.basename(w): (a, c, w) for a, c, w in config_of}
    a, c, w = plan[name]
    sweep.train_point(a, c, w, train_fn=lambda config, workdir: None)


def test_slurm_reruns_submit_only_unfinished_runs_not_held_and_never_hang(
    tmp_path, capsys, monkeypatch
):
    fake = FakeSlurm(monkeypatch)
    args = ["--launcher=slurm", "--grid=loss.beta=0,1,2"]
    assert run_cli(tmp_path, *args) == []
    out = capsys.readouterr().out
    assert "submitted 3 run(s) to SLURM as job array 1" in out and "squeue -j 1" in out
    assert fake.submitted == [["loss.beta=0", "loss.beta=1", "loss.beta=2"]]

    from configs import synthetic

    base = synthetic.get_config("smoke")
    base.plots, base.linear_probe = False, "off"
    plan = sweep.plan_grid(base, {"loss.beta": [0.0, 1.0, 2.0]}, str(tmp_path / "root"))
    finish(tmp_path, "loss.beta=0", plan)  # run 0 finished, run 1 still running,
    fake.active -= {"1_0", "1_2"}  # run 2 ended unfinished (cancelled)
    rows = run_cli(tmp_path, *args)
    out = capsys.readouterr().out
    assert fake.submitted[-1] == ["loss.beta=2"], fake.submitted
    assert [r["run"] for r in rows] == ["loss.beta=0"]
    assert "1 of 3 runs finished" in out and "| run |" not in out

    # --wait gives up on a run whose job ended without finishing (no accounting: SLURM
    # cannot say so, the workdir's records and squeue can), and says how to go on.
    fake.active -= {"2_0"}
    fake.hold = False
    with pytest.raises(SystemExit) as e:
        run_cli(tmp_path, *args, "--wait", "--poll_s=0")
    assert e.value.code == 1
    assert fake.submitted[-1] == ["loss.beta=2"], fake.submitted
    err = capsys.readouterr().err
    assert "loss.beta=2 (job 3_0" in err and "Rerun the same command" in err


def test_slurm_prints_the_table_once_all_runs_are_finished(tmp_path, capsys, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    from configs import synthetic

    base = synthetic.get_config("smoke")
    base.plots, base.linear_probe = False, "off"
    plan = sweep.plan_grid(base, {"loss.beta": [0.0, 1.0]}, str(tmp_path / "root"))
    for _, _, w in plan:
        finish(tmp_path, os.path.basename(w), plan)
    rows = run_cli(tmp_path, "--launcher=slurm", "--grid=loss.beta=0,1")
    assert fake.submitted == [] and len(rows) == 2
    assert "| run |" in capsys.readouterr().out
    assert (tmp_path / "root" / "results.csv").exists()


def test_a_warm_start_waits_for_its_source_job(tmp_path, capsys, monkeypatch):
    """A run whose init_from is another run's workdir goes in a second array that starts
    after the source's job succeeds; once the source is finished, with no dependency."""
    fake = FakeSlurm(monkeypatch)
    from configs import synthetic

    base = synthetic.get_config("smoke")
    root = tmp_path / "root"
    source = str(root / "loss.beta=0")
    points = [{"loss.beta": 0.0}, {"loss.beta": 1.0, "init_from": source}]
    plan = sweep.plan_grid(base, {}, str(root), points=points)
    sweep.check_plan(plan, num_devices=1)  # the source need not exist yet
    assert slurm_lib.run(plan, slurm_lib.options(), str(root)) is None
    assert fake.submitted == [["loss.beta=0"], [os.path.basename(plan[1][2])]]
    assert fake.after == [(), ("1_0",)]
    assert "after job(s) 1_0 succeed" in capsys.readouterr().out
    # The warm start ended unfinished, its source is finished: resubmitted with no wait.
    finish(tmp_path, "loss.beta=0", plan)
    fake.active.clear()
    slurm_lib.run(plan, slurm_lib.options(), str(root))
    assert fake.submitted[-1] == [os.path.basename(plan[1][2])] and fake.after[-1] == ()


@pytest.mark.slow
def test_local_launcher_trains_one_run_per_device_group_at_once(tmp_path, capsys):
    """Two groups of one device: both runs train at the same time, each in its own process
    told its devices by CUDA_VISIBLE_DEVICES; the table equals the in-process launcher's."""
    rows = run_cli(tmp_path, "--grid=loss.beta=0,1", "--devices=3,5", "--devices_per_run=1")
    records = [sweep.load_record(r["workdir"]) for r in rows]
    launched = [r["launch"] for r in records]
    assert sorted(x["cuda_visible_devices"] for x in launched) == ["3", "5"]
    assert len({x["pid"] for x in launched}) == 2 and os.getpid() not in {
        x["pid"] for x in launched
    }
    (a, b) = launched
    assert a["started"] < b["ended"] and b["started"] < a["ended"]  # they overlapped
    out = capsys.readouterr().out
    assert "on devices 3" in out and "on devices 5" in out
    local = sweep.main([*BASE, f"--root={tmp_path / 'seq'}", "--grid=loss.beta=0,1"])
    strip = lambda rs: [{k: v for k, v in r.items() if k != "workdir"} for r in rs]
    assert strip(rows) == strip(local)


def test_a_slurm_job_saves_on_sigusr2_then_hands_over_to_submitit(tmp_path, monkeypatch):
    """SIGUSR2 (SLURM's time-limit warning) reaches the trainer, which saves and exits with
    128 + SIGUSR2; the job then calls the handler submitit had installed (which requeues)."""
    try:
        slurm_lib.import_submitit()
    except ImportError:
        pytest.skip("submitit is not installed")
    from configs import synthetic
    from hncl_jax import train

    calls = []

    def fake_train(config, workdir, verbose=False):
        with train.catch_signals() as caught:
            signal.raise_signal(signal.SIGUSR2)
            assert caught.signal == signal.SIGUSR2 and calls == []  # the trainer's handler
        raise SystemExit(128 + caught.signal)  # as train_and_evaluate, once it has saved

    monkeypatch.setattr(train, "train_and_evaluate", fake_train)
    old = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        with pytest.raises(SystemExit):
            slurm_lib._Run()({}, synthetic.get_config("smoke"), str(tmp_path))
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert calls == [signal.SIGUSR2]
