"""Run a sweep on Ray Tune: one spec, several values per setting, one ordinary tunebridge run per trial.

The parameters are parsed and every value validated before Ray starts (tunebridge.sweeps.params). The output
folder is locked for the sweep's life and holds ``sweep.json``, ``report.md``/``report.html`` and
``trials/<trial-id>/`` (one run folder per trial). Ray is imported only once the sweep starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..errors import TunebridgeError
from ..files import WriteError, write_json
from ..progress import note
from ..signals import interrupt_on_signals, interrupted_by
from .params import Param, parse_params, trial_count, validate
from .trial import TRIALS, run_trial

SWEEP_JSON = "sweep.json"
MODES = ("min", "max")


class SweepError(TunebridgeError):
    """A sweep cannot start (bad --metric, --mode, --max-concurrent, ...)."""


def default_metric(spec: Any) -> str:
    """``eval_loss`` when the spec holds out an eval split, else the last logged training loss (``final_loss``)."""
    return "eval_loss" if spec.data.eval_fraction > 0 else "final_loss"


def _say(stream: TextIO | None, text: str) -> None:
    if stream is not None:
        stream.write(text + "\n")
        stream.flush()


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _value(metrics: dict[str, Any], metric: str) -> float | None:
    value = metrics.get(metric)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def best_trial(trials: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    """The completed trial with the lowest (``min``) or highest (``max``) ``metric``; None when none has it."""
    scored = [(t, v) for t in trials if t["status"] == "completed" and (v := _value(t["metrics"], metric)) is not None]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return pick(scored, key=lambda item: item[1])[0]


def param_space(params: list[Param]) -> dict[str, Any]:
    """The Tune search space: grid_search / choice / loguniform per dotted key."""
    from ray import tune

    space: dict[str, Any] = {}
    for p in params:
        if p.kind == "grid":
            space[p.key] = tune.grid_search(list(p.values))
        elif p.kind == "choice":
            space[p.key] = tune.choice(list(p.values))
        else:
            space[p.key] = tune.loguniform(*p.values)
    return space


def _read_run(out: Path, row: dict[str, Any]) -> dict[str, Any]:
    try:
        run = json.loads((out / row["run_dir"] / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return run if isinstance(run, dict) else {}


def finish_rows(out: Path, rows: list[dict[str, Any]], interrupted: str = "") -> None:
    """Each trial's final metrics from its run.json; trials that did not end are ``interrupted`` (run.json too)."""
    for row in rows:
        run = _read_run(out, row)
        if row["status"] in ("pending", "running") and interrupted:
            row["status"], row["reason"] = "interrupted", interrupted
            if run.get("status") == "running":  # its worker was stopped with the sweep before it could say so
                run.update(status="interrupted", error=interrupted)
                with contextlib.suppress(WriteError):
                    write_json(out / row["run_dir"] / "run.json", run)
        if isinstance(run.get("metrics"), dict):
            row["metrics"] = run["metrics"]
        if row["status"] == "failed" and not row["reason"]:
            row["reason"] = str(run.get("error") or "failed")
        row["wall_time_s"] = run.get("wall_time_s")
        row["steps"] = run.get("global_step")
        if not (out / row["run_dir"]).is_dir():
            row["run_dir"] = None


def sweep(spec: Any, params: list[str] | list[Param], output_dir: str | Path, *, backend: str | None = None,
          samples: int | None = None, metric: str | None = None, mode: str | None = None,
          max_concurrent: int | None = None, address: str | None = None, num_cpus: int | None = None,
          cpus_per_trial: float = 1, gpus_per_trial: float = 0, overwrite: bool = False,
          progress: TextIO | bool | None = None) -> dict[str, Any]:
    """Train ``spec`` once per trial on Ray Tune and write ``output_dir/sweep.json`` and the report.

    ``params``: ``["training.learning_rate=1e-3,3e-3", "lora.r=choice:4,8"]`` (see tunebridge.sweeps.params);
    ``samples``: the random-search samples. ``metric``/``mode`` choose ``best`` (default ``eval_loss``/min with an
    eval split, else ``final_loss``/min). ``address``: a running Ray cluster; without it a local Ray is started with
    ``num_cpus`` (default: this machine's). Returns the record written to sweep.json; a trial that fails is
    recorded with its reason while the others go on; ``KeyboardInterrupt`` (Ctrl-C, SIGTERM) stops the trials
    and is raised again once sweep.json holds their statuses.
    """
    from ..prepare import protected_paths
    from ..redact import redact
    from ..run import Run
    from ..run_folder import prepare_output_dir
    from ..spec import load_spec

    stream: TextIO | None = sys.stderr if progress is True else (progress or None)
    started = time.monotonic()
    spec = load_spec(spec).with_backend(backend)
    params = parse_params(params, samples)
    validate(spec, params)
    mode = mode or "min"
    if mode not in MODES:
        raise SweepError(f"--mode {mode}: choose min or max")
    metric = metric or default_metric(spec)
    if max_concurrent is not None and max_concurrent < 1:
        raise SweepError(f"--max-concurrent {max_concurrent}: give 1 or more")
    Run(spec).validate()  # the spec, the backend's support and the data, before Ray starts
    from ..cluster import import_ray

    import_ray()  # Ray missing: said before anything is written
    out = Path(output_dir).resolve()
    total = trial_count(params, samples)
    with interrupt_on_signals(), prepare_output_dir(out, overwrite, protect=protected_paths(spec)) as lock:
        if lock.note:
            note(lock.note)
        rows: dict[str, dict[str, Any]] = {}
        record: dict[str, Any] = {
            "kind": "sweep", "spec": redact(spec.to_dict()), "spec_source": spec.source,
            "spec_base_dir": str(spec.base_dir), "backend": spec.backend, "task": spec.task,
            "params": [p.to_dict() for p in params], "samples": samples, "trial_count": total,
            "metric": metric, "mode": mode, "max_concurrent": max_concurrent, "scheduler": None,
            "status": "running", "trials": [], "best": None, "all_completed": False,
        }

        def save(event: str = "", row: dict[str, Any] | None = None) -> None:
            record["trials"] = [rows[k] for k in sorted(rows)]
            write_json(out / SWEEP_JSON, record)
            if row is not None:
                detail = f": {row['reason'].splitlines()[0]}" if row.get("reason") else ""
                _say(stream, f"trial {row['id']} ({_short(row['params'])}): {event}{detail}")

        save()
        (out / TRIALS).mkdir(exist_ok=True)
        interrupted: KeyboardInterrupt | None = None
        from ..cluster import connect

        try:
            with connect(address, num_cpus) as cluster:
                record["scheduler"] = cluster.describe()
                cpus = cluster.resources.get("CPU", "?")
                _say(stream, f"sweep: {total} trial(s) of task {spec.task} on backend {spec.backend} -> {out} "
                             f"(Ray {cluster.ray_version}, {cluster.address}, {cpus} CPUs)")
                flag = StopFlag()
                with flag.catching():
                    _fit(spec, params, samples, out, rows, save, max_concurrent, cpus_per_trial, gpus_per_trial,
                         cluster, flag)
                if flag.signum is not None:
                    interrupted = flag.exception()
        except KeyboardInterrupt as exc:  # while Ray started, or a second Ctrl-C: Ray ends the trials with the driver
            interrupted = exc
        except Exception as exc:  # Ray would not start, or Ray Tune failed: the record says so, trials as they were
            finish_rows(out, [rows[k] for k in sorted(rows)], "not finished: the sweep failed")
            record.update(status="failed", error=str(exc) if isinstance(exc, TunebridgeError) else
                          f"{type(exc).__name__}: {exc}", wall_time_s=round(time.monotonic() - started, 3))
            save()
            if isinstance(exc, TunebridgeError):
                raise
            raise TunebridgeError(f"the sweep failed on Ray: {type(exc).__name__}: {exc} (what was recorded is in "
                                  f"{out / SWEEP_JSON})") from exc
        finish_rows(out, [rows[k] for k in sorted(rows)],
                    f"interrupted by {interrupted_by(interrupted)}" if interrupted else "")
        trials = [rows[k] for k in sorted(rows)]
        record["trials"] = trials
        best = best_trial(trials, metric, mode)
        record["best"] = best
        completed = [t for t in trials if t["status"] == "completed"]
        if completed and best is None:
            names = ", ".join(sorted(completed[0]["metrics"]))
            record.setdefault("warnings", []).append(
                f"no completed trial has the metric {metric!r}; its metrics: {names}")
        record["status"] = "interrupted" if interrupted else "finished"
        record["all_completed"] = bool(trials) and len(completed) == len(trials) == total
        record["wall_time_s"] = round(time.monotonic() - started, 3)
        write_sweep(out, record)
        if interrupted:
            raise interrupted
        return record


class StopFlag:
    """Ctrl-C, SIGTERM and SIGHUP while the trials run: the first asks Ray Tune to stop every trial (the sweep then
    records their statuses and raises the interrupt); a second one raises at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handler(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise self.exception()
        self.signum = signum

    def exception(self) -> KeyboardInterrupt:
        """The interrupt to raise once the trials have stopped."""
        from ..signals import RunInterrupted

        return KeyboardInterrupt() if self.signum in (None, signal.SIGINT) else RunInterrupted(self.signum)

    @contextlib.contextmanager
    def catching(self) -> Iterator[None]:
        """The handlers, for the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        names = ("SIGINT", "SIGTERM", "SIGHUP")
        previous = {s: signal.signal(s, self._handler) for n in names if (s := getattr(signal, n, None)) is not None}
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)


def _fit(spec: Any, params: list[Param], samples: int | None, out: Path, rows: dict[str, dict[str, Any]], save: Any,
         max_concurrent: int | None, cpus_per_trial: float, gpus_per_trial: float, cluster: Any,
         flag: StopFlag) -> None:
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from .tracking import StopOnSignal, Tracker

    storage = cluster.temp_dir or tempfile.mkdtemp(prefix="tb-tune-")
    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec, backend=None, out=str(out)),
                                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(params),
        tune_config=tune.TuneConfig(num_samples=samples or 1, max_concurrent_trials=max_concurrent, reuse_actors=True,
                                    search_alg=BasicVariantGenerator(random_state=spec.training.seed)),
        run_config=tune.RunConfig(name="sweep", storage_path=str(Path(storage) / "tune"), verbose=0,
                                  callbacks=[Tracker(rows, save, flag)], stop=StopOnSignal(flag),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    try:
        tuner.fit()
    finally:
        if not cluster.temp_dir:
            shutil.rmtree(storage, ignore_errors=True)


def write_sweep(out: Path, record: dict[str, Any]) -> None:
    """sweep.json, then the report (a report that cannot be drawn never loses the record)."""
    from ..report import write_record_with_report

    write_record_with_report(out, SWEEP_JSON, record)
