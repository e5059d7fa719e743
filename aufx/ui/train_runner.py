"""One LoRA training run per server, in the background: the steps of training/README.md (annotations, alignment,
AU regressor, training) as subprocesses one after another, their output appended to one log file.

Each step runs in its own process group, so Stop ends it together with its data-loader workers. On Linux a step also
dies with the thread that started it, so a run never outlives the app that owns it. No Gradio and no torch here.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

LOG_NAME = "train_app.log"
HISTORY = "history.jsonl"  # the trainer's losses, one JSON line per optimiser step
LORA_FILE = "lora_unet.safetensors"  # aufx.training.train.LORA_FILE (importing that module would load torch)
PR_SET_PDEATHSIG = 1


class RunBusy(RuntimeError):
    """A run is already going on this server."""


@dataclass(frozen=True)
class Step:
    name: str  # shown as the run's stage
    argv: tuple[str, ...]  # arguments after `python -m`


@dataclass
class Run:
    steps: tuple[Step, ...]
    output_dir: Path
    max_steps: int
    state: str = "running"  # running, done, failed, stopped
    stage: str = ""
    pid: int | None = None  # of the current (or last) step's process
    returncode: int | None = None
    started: float = field(default_factory=time.time)
    train_started: float | None = None  # when the training step was launched: older loss logs are not this run's
    ended: float | None = None
    _history: tuple = field(default=(None, []), repr=False)  # (file stamp, rows): pollers parse a changed file once

    @property
    def log(self) -> Path:
        return self.output_dir / LOG_NAME

    def history(self) -> list[dict]:
        """This run's loss log; a file older than its training step (a previous run's) is not shown."""
        path = self.output_dir / HISTORY
        if self.train_started is None or not path.is_file():
            return []
        stat = path.stat()
        if stat.st_mtime < self.train_started - 1:
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._history[0] != stamp:
            self._history = (stamp, _read_jsonl(path))
        return self._history[1]


class TrainRunner:
    def __init__(self, grace_s: float = 10.0):
        self.grace_s = grace_s  # how long a stopped step may take to exit before it is killed
        self.run: Run | None = None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self, steps: list[Step], output_dir: Path, max_steps: int) -> Run:
        with self._lock:
            if self.run is not None and self.run.state == "running":
                raise RunBusy(f"a training run is already going ({self.run.output_dir}, {self.run.stage}); "
                              "stop it first: one run per server")
            output_dir.mkdir(parents=True, exist_ok=True)
            self.run = Run(tuple(steps), output_dir, max_steps)
            self._stopping.clear()
            self._thread = threading.Thread(target=self._work, args=(self.run,), name="aufx-train", daemon=True)
            self._thread.start()
            return self.run

    def stop(self) -> None:
        """Signal the current step's process group; wait for it, killing it after the grace period."""
        with self._lock:
            if self.run is None or self.run.state != "running":
                return
            self._stopping.set()
            pid, thread = self.run.pid if self._proc else None, self._thread
            if pid:
                _signal_group(pid, signal.SIGTERM)
        thread.join(self.grace_s)
        if pid:
            _signal_group(pid, signal.SIGKILL)  # a step that ignored SIGTERM, and any worker left behind
            _wait_group_gone(pid)
        thread.join()

    def status(self) -> dict:
        with self._lock:
            run = self.run
            if run is None:
                return {"state": "idle"}
            history = run.history()
            lora = run.output_dir / LORA_FILE
            return {"state": run.state, "stage": run.stage, "step": history[-1]["step"] if history else 0,
                    "max_steps": run.max_steps, "output_dir": str(run.output_dir), "log": str(run.log),
                    "lora": str(lora) if run.state == "done" and lora.is_file() else None, "pid": run.pid,
                    "returncode": run.returncode,
                    "elapsed_s": round((run.ended or time.time()) - run.started, 1)}

    def _work(self, run: Run) -> None:
        code = -1  # stays so when a step cannot even be started
        try:
            for step in run.steps:
                proc = self._launch(run, step)
                if proc is None:
                    break
                code = proc.wait()
                if code != 0:
                    break
        finally:
            self._finish(run, code)

    def _launch(self, run: Run, step: Step) -> subprocess.Popen | None:
        """The step's process; None once Stop was pressed (between steps nothing runs that could be signalled)."""
        with self._lock:
            if self._stopping.is_set():
                return None
            run.stage = step.name
            if step.name == "training":
                run.train_started = time.time()
            self._proc = _spawn(step, run.log)
            run.pid = self._proc.pid
            return self._proc

    def _finish(self, run: Run, code: int) -> None:
        with self._lock:
            self._proc = None
            run.returncode = code
            run.state = "stopped" if self._stopping.is_set() else "done" if code == 0 else "failed"
            run.ended = time.time()
        _append(run.log, f"=== run {run.state} (exit code {code}) ===\n")


def _spawn(step: Step, log: Path) -> subprocess.Popen:
    _append(log, f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {step.name}: python -m {' '.join(step.argv)} ===\n")
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", *step.argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                start_new_session=True, preexec_fn=_die_with_parent())


def _die_with_parent():
    """Linux: SIGTERM to the step when the thread that started it ends (the app exited, was killed or crashed)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _wait_group_gone(pgid: int, timeout_s: float = 10.0) -> None:
    """Until no process of the group is left (orphaned workers are reaped by init a moment after they die)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line the trainer is writing right now
            break
    return rows


def log_tail(path: Path, max_bytes: int = 20_000) -> str:
    """The end of a log, with progress bars collapsed to their latest state (tqdm redraws a line with CR)."""
    if not path.is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - max_bytes))
        text = f.read().decode("utf-8", errors="replace")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))
