"""The ``tunebridge`` command line. Only the command that runs imports what it needs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import __version__
from .errors import TunebridgeError


def _spec_and_backend(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("spec", help="spec file (.yaml, .yml or .json)")
    sub.add_argument("--backend", "-b", help="backend to use (overrides the spec's `backend`)")


def _launch(sub: argparse.ArgumentParser) -> None:
    group = sub.add_argument_group("one run on several processes (torchrun; overrides the spec's `launch`)")
    group.add_argument("--nproc-per-node", type=int, metavar="N", help="processes (devices) on this node")
    group.add_argument("--nnodes", type=int, metavar="M", help="nodes in the run")
    group.add_argument("--node-rank", type=int, metavar="R", help="this node's rank (0 writes the run folder)")
    group.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="node 0's address, with --nnodes > 1")
    group.add_argument("--strategy", choices=["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"],
                       help="ddp (default), or on GPUs fsdp, deepspeed-zero2, deepspeed-zero3")


def launch_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The launch settings given on the command line."""
    names = ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint", "strategy")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs test)."""
    parser = argparse.ArgumentParser(
        prog="tunebridge",
        description="Fine-tune language models from human-feedback data on TRL, TRLX or AutoTrain with one spec.",
    )
    parser.add_argument("--version", action="version", version=f"tunebridge {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = subs.add_parser("backends", help="list backends: source, status, tasks and algorithms")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = subs.add_parser("validate", help="check a spec and its data (no torch import)")
    _spec_and_backend(p)

    subs.add_parser("schema", help="print the JSON Schema of the spec")

    p = subs.add_parser("plan", help="print the native config a backend would run; trains nothing")
    _spec_and_backend(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    _launch(p)

    p = subs.add_parser("train", help="train and write a run folder")
    _spec_and_backend(p)
    p.add_argument("--output", "-o", required=True, help="output folder (must be empty or new)")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in the output folder from its newest complete checkpoint (same spec; "
                        "training.max_steps / epochs may change)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    _launch(p)

    p = subs.add_parser("export", help="write a project the backend's own tool runs (e.g. AutoTrain's config.yml)")
    _spec_and_backend(p)
    p.add_argument("--output", "-o", required=True, help="output folder (must be empty or new)")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty output folder")

    p = subs.add_parser("data", help="write the examples a run would train on to .csv, .jsonl or .parquet")
    _spec_and_backend(p)
    p.add_argument("--output", "-o", required=True, help="file to write (.csv, .jsonl or .parquet)")
    p.add_argument("--split", choices=["train", "eval", "all"], default="train",
                   help="which examples (default train; all adds a `split` column)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")

    p = subs.add_parser("compare", help="train one spec on several backends, evaluate them alike, write a report")
    p.add_argument("spec", help="spec file (.yaml, .yml or .json)")
    p.add_argument("--backends", required=True,
                   help="comma-separated backend names, e.g. trl,trlx,autotrain; `available`: every backend ready "
                        "here for the spec's task")
    p.add_argument("--output", "-o", required=True, help="output folder (must be empty or new)")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty output folder")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    group = p.add_argument_group("on Ray (pip install 'tunebridge[ray]'; docs/ray.md)")
    group.add_argument("--ray", action="store_true",
                       help="run each backend as a Ray task (in its own interpreter where it has one), concurrently "
                            "when resources allow")
    group.add_argument("--address", metavar="ADDR", help="an existing Ray cluster (default: start a local Ray)")

    p = subs.add_parser("sweep", help="one spec, several values per setting: one run per trial on Ray Tune")
    _spec_and_backend(p)
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=V1,V2",
                   help="a dotted spec path and its values: KEY=V1,V2 (grid), KEY=choice:V1,V2 or KEY=loguniform:LO,HI "
                        "(random search, with --samples); repeat for more settings")
    p.add_argument("--output", "-o", required=True, help="output folder (must be empty or new)")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty output folder")
    p.add_argument("--samples", type=int, metavar="N", help="random-search samples (per grid combination)")
    p.add_argument("--metric", metavar="NAME",
                   help="the run metric that picks the best trial (default: eval_loss with an eval split, else "
                        "final_loss, the last logged training loss)")
    p.add_argument("--mode", choices=["min", "max"], help="whether the lowest or the highest metric is best (min)")
    p.add_argument("--max-concurrent", type=int, metavar="K", help="at most K trials at a time")
    p.add_argument("--address", metavar="ADDR", help="an existing Ray cluster (default: start a local Ray)")
    p.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local Ray (default: this machine's)")
    p.add_argument("--cpus-per-trial", type=float, default=1, metavar="N", help="CPUs each trial takes (1)")
    p.add_argument("--gpus-per-trial", type=float, default=0, metavar="N", help="GPUs each trial takes (0)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")

    p = subs.add_parser("evaluate", help="the neutral evaluation of one run folder on its held-out split")
    p.add_argument("run_dir", help="a run folder (holds run.json and model/)")
    p.add_argument("--spec", help="spec file the run was trained from (default: the spec stored in run.json)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = subs.add_parser("report", help="render report.md and report.html again from a compare or sweep folder")
    p.add_argument("dir", help="a compare or sweep output folder (holds comparison.json or sweep.json)")
    return parser


def cmd_backends(args: argparse.Namespace) -> int:
    from .execution import executor_for
    from .plugins import get_registry

    registry = get_registry()
    rows: list[dict[str, Any]] = []
    for name in registry.names():
        item = registry.backends[name]
        executor = executor_for(item.backend)
        status = executor.status()
        rows.append({
            "name": name,
            "plugin": item.plugin,
            "package": item.package,
            "version": item.version,
            "status": status.kind,
            "detail": status.detail,
            "install_hint": executor.install_hint if status.kind in ("missing", "broken") else "",
            "versions": status.versions,
            "capabilities": item.backend.capabilities.to_dict(),
            "description": item.backend.description,
        })
    failures = [{"plugin": f.plugin, "error": f.error} for f in registry.failures]
    if args.json:
        print(json.dumps({"backends": rows, "failed_plugins": failures, "disabled_plugins": registry.disabled},
                         indent=2))
        return 0
    for row in rows:
        source = f"{row['package']} {row['version']}" if row["package"] else f"plugin {row['plugin']}"
        caps = row["capabilities"]
        algos = "; ".join(f"{task}: {', '.join(a)}" for task, a in caps["algorithms"].items()) or "-"
        print(f"{row['name']}  ({source})")
        print(f"  status: {row['status']}" + (f" - {row['detail']}" if row["detail"] else ""))
        if row["install_hint"]:
            print(f"  install: {row['install_hint']}")
        print(f"  tasks: {', '.join(caps['tasks']) or '-'}   algorithms: {algos}")
        extras = [k for k in ("peft", "packing", "completion_only_loss", "plain_text", "resume") if caps[k]]
        print(f"  features: {', '.join(extras) or '-'}")
        if caps["distributed"]:
            print(f"  several processes (torchrun): {', '.join(caps['distributed'])}")
    for f in failures:
        print(f"{f['plugin']}  (plugin failed to load)\n  status: broken - {f['error']}")
    for name in registry.disabled:
        print(f"{name}  (disabled by TUNEBRIDGE_DISABLE_PLUGINS)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .run import Run

    run = Run(args.spec, backend=args.backend)
    examples = run.validate()
    _print_data_report(run, examples)
    first = examples.train[0]
    for key, value in first.items():
        text = value if isinstance(value, str) else json.dumps(value)
        print(f"  first example {key}: {text[:200]!r}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .run import Run

    run = Run(args.spec, backend=args.backend)
    path, n, examples = run.write_data(args.output, split=args.split, overwrite=args.overwrite)
    _print_data_report(run, examples)
    print(f"wrote {n} {args.split} examples to {path}")
    return 0


def _print_data_report(run: Any, examples: Any) -> None:
    """What `validate` prints about the spec and the data: counts, adapted defaults, the conversion's drops."""
    from .execution import status

    r = examples.report
    print(f"spec ok: task {run.spec.task}, backend {run.backend.name} "
          f"({status(run.backend, run.spec).describe()})")
    for diff in run.differences:
        print(f"  adapted {_difference_line(diff.to_dict())}")
    print(f"data ok: {r['rows']} rows -> {r['train']} train / {r['eval']} eval examples, template {r['template']}")
    if "argilla" in r:
        _print_conversion(r["argilla"])
    for reason, n in r.get("dialogue", {}).get("dropped", {}).items():
        print(f"  dialogue rows dropped {n}: {reason}")


def _print_conversion(c: dict) -> None:
    """The Argilla conversion: records in, rows out, and every drop by reason."""
    print(f"argilla {c['format']}, recipe {c['recipe']}, annotators {c['annotators']}, counting "
          f"{'/'.join(c['statuses'])} responses: {c['records']} records -> {c['rows']} rows "
          f"({c['records_used']} records used)")
    ignored = ", ".join(f"{n} {status}" for status, n in c.get("ignored_responses", {}).items())
    if ignored:
        print(f"  responses not counted: {ignored}")
    for reason, n in c.get("dropped", {}).items():
        print(f"  dropped {n}: {reason}")
    for reason, n in c.get("skipped_pairs", {}).items():
        print(f"  pairs not made {n}: {reason}")
    for column, sources in c.get("sources", {}).items():
        print(f"  {column} from: " + ", ".join(f"{name} {n}" for name, n in sources.items()))
    for line in c.get("drop_examples", [])[:5]:
        print(f"  e.g. {line}")


def cmd_schema(args: argparse.Namespace) -> int:
    from .spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .run import Run

    plan = Run(args.spec, backend=args.backend, launch=launch_overrides(args)).plan()
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, default=str))
        return 0
    print(f"backend: {plan.backend}")
    print(f"optimizer steps: {plan.optimizer_steps if plan.optimizer_steps is not None else 'unknown'}")
    rows = f", {plan.train_rows} rows per epoch" if plan.train_rows not in (None, plan.train_examples) else ""
    print(f"examples: {plan.train_examples} train, {plan.eval_examples} eval{rows}")
    print(f"truncation: {plan.truncation}")
    print("effective settings:")
    for key, value in plan.effective.items():
        print(f"  {key}: {value}")
    print("native config:")
    print(json.dumps(plan.native_config, indent=2, default=str))
    print("defaults adapted to this backend:" + (" none" if not plan.differences else ""))
    for diff in plan.differences:
        print(f"  - {_difference_line(diff)}")
    print("settings not honoured:" + (" none" if not plan.unhonoured else ""))
    for line in plan.unhonoured:
        print(f"  - {line}")
    for line in plan.notes:
        print(f"note: {line}")
    return 0


def _difference_line(diff: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else repr(value)

    return f"{diff['setting']}: default {show(diff['default'])}, {show(diff['used'])} here ({diff['why']})"


def cmd_train(args: argparse.Namespace) -> int:
    from .progress import ProgressLine
    from .run import Run

    line = None if args.quiet else ProgressLine()
    run = Run(args.spec, backend=args.backend, preparing=line.stage if line else None, launch=launch_overrides(args))
    processes = f" on {run.spec.world_size} processes" if run.spec.world_size > 1 else ""
    print(f"training: task {run.spec.task} on backend {run.backend.name}{processes} -> {args.output}",
          file=sys.stderr)
    try:
        result = run.train(args.output, overwrite=args.overwrite, progress=line.update if line else None,
                           resume=args.resume)
    except KeyboardInterrupt as exc:
        from .signals import exit_code, interrupted_by

        if line:
            line.close()
        print(f"\ninterrupted by {interrupted_by(exc)}; what the run wrote is kept in {args.output}", file=sys.stderr)
        if run.backend.capabilities.resume:
            from pathlib import Path

            from .resume import newest_complete

            checkpoint = newest_complete(Path(args.output))
            if checkpoint is not None:
                print(f"its newest checkpoint is at step {checkpoint.step}: continue from it with the same command, "
                      "adding --resume (and no --overwrite)", file=sys.stderr)
        return exit_code(exc)
    finally:
        if line:
            line.close()
    m = result.metrics
    if run.spec.launch.node_rank > 0:
        print(f"\n== tunebridge: {result.warnings[0]} ==")
        print(f"logs           {result.output_dir / 'logs'}")
        return 0
    print("\n== tunebridge run finished ==")
    print(f"backend        {result.backend} ({', '.join(f'{k} {v}' for k, v in result.versions.items() if v)})")
    if result.world_size > 1:
        print(f"processes      {result.world_size} ({result.distributed_type}); global batch "
              f"{run.spec.global_batch_size} per step")
    d = result.data
    if "truncated" in d:
        detail = f"{d['truncated']} truncated"
    elif "longest_prompt_tokens" in d:
        detail = f"longest prompt {d['longest_prompt_tokens']} tokens"
    else:  # reward pairs: dropped / cut to fit
        dropped = sum(d.get("dropped", {}).values())
        detail = f"{dropped} dropped, {d.get('train_truncated_pairs', 0) + d.get('eval_truncated_pairs', 0)} cut to fit"
    print(f"examples       {d.get('train')} train, {d.get('eval')} eval (template {d.get('template')}; {detail})")
    planned = result.plan.get("optimizer_steps")
    seen = f", {result.examples_seen} sequences seen" if result.examples_seen else ""
    print(f"steps          {m.get('global_step')}" + (f" (planned {planned})" if planned is not None else "") + seen)
    if "first_loss" in m:
        print(f"loss           {m['first_loss']:.4f} -> {m['final_loss']:.4f} "
              f"(train_loss {m.get('train_loss', 0):.4f})")
    if "first_reward_mean" in m:
        print(f"reward mean    {m['first_reward_mean']:.4f} -> {m['final_reward_mean']:.4f}")
    if "first_accuracy" in m:
        print(f"accuracy       {m['first_accuracy']:.3f} -> {m['final_accuracy']:.3f} (pairs ranked right)")
    if "first_margin" in m:
        print(f"margin         {m['first_margin']:.4f} -> {m['final_margin']:.4f} (chosen - rejected)")
    if "eval_loss" in m:
        print(f"eval loss      {m['eval_loss']:.4f}" + (f" (eval accuracy {m['eval_accuracy']:.3f})"
                                                      if "eval_accuracy" in m else ""))
    print(f"wall time      {result.wall_time_s:.1f} s")
    print(f"model          {result.model_dir} ({result.model_format})")
    print(f"report         {result.output_dir / 'run.json'}, {result.output_dir / 'metrics.jsonl'}, "
          f"{result.output_dir / 'README.md'}")
    if result.peak_memory_mb:
        print(f"peak memory    {result.peak_memory_mb:.0f} MiB")
    for diff in result.differences:
        print(f"adapted        {_difference_line(diff)}")
    for item in result.unhonoured:
        print(f"not honoured   {item}")
    for item in result.warnings:
        print(f"warning        {item}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .run import Run

    run = Run(args.spec, backend=args.backend)
    path = run.export(args.output, overwrite=args.overwrite)
    print(f"exported: task {run.spec.task} for backend {run.backend.name} -> {path}")
    readme = path.parent / "README.md"
    if readme.is_file():
        print(f"how to run it: {readme}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .comparison import compare
    from .comparison.record import summary_table

    try:
        record = compare(args.spec, args.backends, args.output, overwrite=args.overwrite,
                         progress=None if args.quiet else sys.stderr, ray=args.ray, address=args.address)
    except KeyboardInterrupt as exc:
        from .signals import exit_code, interrupted_by

        print(f"\ninterrupted by {interrupted_by(exc)}; what was written is kept in {args.output}", file=sys.stderr)
        return exit_code(exc)
    return _finished("compare", summary_table(record), Path(args.output), "comparison.json", record)


def _finished(command: str, table: str, out: Any, record_file: str, record: dict[str, Any]) -> int:
    """The end of a compare or sweep: the summary table, where the report is; exit 1 unless all completed."""
    print(f"\n== tunebridge {command} finished ==")
    print(table)
    print(f"report: {out / 'report.html'} (also {out / 'report.md'}, {out / record_file})")
    return 0 if record["all_completed"] else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .sweeps import sweep
    from .sweeps.record import summary_table

    try:
        record = sweep(args.spec, args.param, args.output, backend=args.backend, samples=args.samples,
                       metric=args.metric, mode=args.mode, max_concurrent=args.max_concurrent, address=args.address,
                       num_cpus=args.num_cpus, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                       overwrite=args.overwrite, progress=None if args.quiet else sys.stderr)
    except KeyboardInterrupt as exc:
        from .signals import exit_code, interrupted_by

        print(f"\ninterrupted by {interrupted_by(exc)}; the trials were stopped and their statuses are in "
              f"{Path(args.output) / 'sweep.json'}", file=sys.stderr)
        return exit_code(exc)
    return _finished("sweep", summary_table(record), Path(args.output), "sweep.json", record)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate

    result = evaluate(args.run_dir, spec=args.spec)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"run {result['run_dir']} (backend {result.get('backend')}, task {result['task']})")
    if result["task"] == "sft":
        print(f"eval loss {result['loss']:.6f}  perplexity {result['perplexity']:.4f}  "
              f"({result['examples']} held-out examples, {result['tokens']} tokens)")
    elif result["task"] == "reward":
        print(f"accuracy {result['accuracy']:.4f}  margin {result['margin']:.4f}  ({result['pairs']} held-out pairs)")
    elif result["task"] == "preference":
        print(f"accuracy {result['accuracy']:.4f}  log-prob margin {result['margin']:.4f} (chosen - rejected, "
              f"summed over answer tokens; {result['pairs']} held-out pairs)")
    else:
        print(f"reward mean {result['reward_mean']:.6f}  ({result['samples']} completions for "
              f"{result['prompts']} held-out prompts)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import render_report

    md, html = render_report(args.dir)
    print(f"report: {html} (also {md})")
    return 0


COMMANDS = {"backends": cmd_backends, "validate": cmd_validate, "schema": cmd_schema, "plan": cmd_plan,
            "train": cmd_train, "export": cmd_export, "compare": cmd_compare, "sweep": cmd_sweep, "data": cmd_data,
            "evaluate": cmd_evaluate, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 tunebridge error, 2 usage, 128 + N stopped by signal N:
    130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    from .signals import exit_code, interrupt_on_signals, interrupted_by

    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        with interrupt_on_signals():
            return COMMANDS[args.command](args)
    except TunebridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted by {interrupted_by(exc)}", file=sys.stderr)
        return exit_code(exc)
    except BrokenPipeError:  # e.g. `tunebridge schema | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
