"""One run on N processes and M nodes: torchrun (``torch.distributed.run``) with the worker as entry point.

Every rank runs ``python -m tunebridge.worker JOB`` in the backend's interpreter; global rank 0 reports progress
and writes the run folder, the other ranks write only their logs (``<output>/logs/rank-R.log``). A rank that dies
stops the run (torchrun ends the others) with an error naming the rank and its log's tail. The command and its
environment are built by pure functions (``torchrun_command``, ``torchrun_environment``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..backend import BackendOutput, BackendStatus, TrainingJob, checked_status
from .interpreter import Worker, WorkerFailed, interpreter_status, read_result
from .strategies import accelerate_config, strategy_environment, write_accelerate_config
from .streamer import Streamed, tail_text

LOOPBACK = ("127.0.0.1", "localhost", "::1")
RANK_IN_SUMMARY = re.compile(r"\brank\s*:\s*(\d+)")
LAUNCH_FOLDER = "work/launch"


def rank_log(output_dir: Path, rank: int) -> Path:
    """Where global rank ``rank`` (not 0) keeps its output."""
    return output_dir / "logs" / f"rank-{rank}.log"


def torchrun_command(python: str, launch: Any, entry: list[str]) -> list[str]:
    """``python -m torch.distributed.run ...`` for ``launch`` (tunebridge.spec.LaunchSpec), running ``entry``
    (``["-m", "module", args...]``) on every rank. One node: a standalone rendezvous on a free port. Several:
    static rendezvous at ``launch.rdzv_endpoint`` (node 0), so that ``--node-rank`` is this node's rank."""
    cmd = [python, "-m", "torch.distributed.run", "--nproc-per-node", str(launch.nproc_per_node)]
    if launch.nnodes == 1:
        cmd += ["--standalone", "--nnodes", "1"]
    else:
        host, _, port = launch.rdzv_endpoint.rpartition(":")
        cmd += ["--nnodes", str(launch.nnodes), "--node-rank", str(launch.node_rank),
                "--master-addr", host.strip("[]"), "--master-port", port]
    return [*cmd, *entry]


def torchrun_environment(base: dict[str, str], launch: Any, strategy_env: dict[str, str]) -> dict[str, str]:
    """The environment every rank starts with: ``base``, the strategy's accelerate variables, and gloo bound to
    the loopback interface when the run stays on this machine (gloo's own choice of interface is unreliable)."""
    env = {**base, **strategy_env, "PYTHONUNBUFFERED": "1", "TUNEBRIDGE_NODE_RANK": str(launch.node_rank)}
    endpoint_host = (launch.rdzv_endpoint or "").rpartition(":")[0].strip("[]")
    if (launch.nnodes == 1 or endpoint_host in LOOPBACK) and "GLOO_SOCKET_IFNAME" not in base:
        env["GLOO_SOCKET_IFNAME"] = "lo"
    return env


class Torchrun(Worker):
    """The backend on ``launch.world_size`` processes, started by torchrun in ``python`` (default: this one)."""

    kind = "torchrun"

    def __init__(self, backend: Any, python: str | None, launch: Any, timeout: float | None = None):
        super().__init__(backend, python or sys.executable, timeout)
        self.named_python = python
        self.launch = launch

    @property
    def install_hint(self) -> str:
        """What torchrun needs."""
        return self.backend.install_hint if self.named_python is None else super().install_hint

    def _check(self) -> BackendStatus:
        if self.named_python is not None:
            return interpreter_status(self.named_python, self.name)
        status = checked_status(self.backend)
        from importlib.util import find_spec

        if status.ready and find_spec("torch") is None:
            return BackendStatus("missing", "torchrun needs torch in this interpreter", status.versions)
        return status

    def notes(self) -> list[str]:
        """How the run is launched."""
        where = "this interpreter" if self.named_python is None else self.python
        launch = self.launch
        nodes = f" x {launch.nnodes} nodes (this is node {launch.node_rank})" if launch.nnodes > 1 else ""
        return [f"torchrun: {self.launch.nproc_per_node} process(es) per node{nodes}, world size "
                f"{self.launch.world_size}, strategy {self.launch.strategy}, in {where}"]

    def describe(self) -> dict[str, Any]:
        """run.json ``execution``."""
        return {"executor": self.kind, "world_size": self.launch.world_size, "nnodes": self.launch.nnodes,
                "nproc_per_node": self.launch.nproc_per_node, "strategy": self.launch.strategy,
                "python": self.python}

    def log_path(self, job: TrainingJob) -> Path:
        """Node 0: worker.log (rank 0 and torchrun); other nodes keep everything under logs/."""
        return super().log_path(job) if self.launch.node_rank == 0 else job.output_dir / "logs" / "torchrun.log"

    def command(self, folder: Path, job: TrainingJob) -> tuple[list[str], dict[str, str]]:
        """torchrun around the worker, with the strategy's configuration."""
        strategy_env: dict[str, str] = {}
        if self.launch.strategy != "ddp":
            config = accelerate_config(self.launch.strategy, self.launch.nproc_per_node, self.launch.nnodes,
                                       job.spec.training.precision)
            write_accelerate_config(config, job.output_dir / LAUNCH_FOLDER)
            strategy_env = strategy_environment(config)
        argv = torchrun_command(self.python, self.launch, ["-m", "tunebridge.worker", str(folder)])
        return argv, torchrun_environment(dict(os.environ), self.launch, strategy_env)

    def result(self, folder: Path, streamed: Streamed, log_path: Path, job: TrainingJob) -> BackendOutput:
        """Rank 0's result (node 0), or what a failed rank said; every rank's failure names the rank."""
        for failed in sorted(folder.glob("result-rank-*.json")):
            rank = int(failed.stem.rsplit("-", 1)[-1])
            if not json.loads(failed.read_text())["ok"]:
                own_log = rank_log(job.output_dir, rank)
                read_result(failed, own_log, lambda what, r=rank, p=own_log: self.rank_message(r, what, p))
        if self.launch.node_rank > 0:  # node 0 holds rank 0 and writes the run folder
            if streamed.returncode != 0:
                raise WorkerFailed(self.died(streamed, log_path, job))
            return BackendOutput(metrics={}, native_config={}, global_step=0)
        rank0 = folder / "result.json"
        rank0_ok = rank0.is_file() and json.loads(rank0.read_text())["ok"]
        if not rank0.is_file() or (rank0_ok and streamed.returncode != 0):  # another rank died without a word
            raise WorkerFailed(self.died(streamed, log_path, job))
        return super().result(folder, streamed, log_path, job)

    def died(self, streamed: Streamed, log_path: Path, job: TrainingJob) -> str:
        """A rank ended the run without a result (killed, or out of memory): name it from torchrun's summary."""
        summary = "\n".join(streamed.tail)
        root = summary.rpartition("Root Cause")[2] if "Root Cause" in summary else summary  # torchrun's verdict
        ranks = [int(r) for r in RANK_IN_SUMMARY.findall(root)]
        if ranks and ranks[0] != 0:
            own = rank_log(job.output_dir, ranks[0])
            if own.is_file():
                lines = own.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
                return self.rank_message(ranks[0], f"died (torchrun exit code {streamed.returncode})", own, lines)
        who = f"rank {ranks[0]}" if ranks else "a rank"
        return (f"torchrun ({self.name}, world size {self.launch.world_size}): {who} died (exit code "
                f"{streamed.returncode})\n{tail_text(streamed.tail, log_path)}")

    def rank_message(self, rank: int, what: str, log: Path, lines: list[str] | None = None) -> str:
        """An error naming the rank and its log's tail."""
        if lines is None:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:] if log.is_file() else []
        return f"rank {rank} of {self.launch.world_size} ({self.name}) {what}\n{tail_text(lines, log)}"
