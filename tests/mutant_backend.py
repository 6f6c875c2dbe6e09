"""Test-only: the example plugin's backend (tb_plainhf), once per injected bug, as backends ``mutant-<bug>``.

tests/test_contract_mutations.py installs this module as a plugin and runs the contract suite on each: the suite
must fail for every bug. The training-path bugs hide where the backend's own ``first_batch`` does not show them.
"""

from __future__ import annotations

from tb_plainhf.backend import PlainHFBackend

from tunebridge import hookimpl


class Mutant(PlainHFBackend):
    name = "mutant"
    description = "test-only: tb_plainhf with an injected bug"


class _InTrainOnly(Mutant):
    """Changes the rows ``train`` builds, not the ones ``first_batch`` shows."""

    def change(self, rows):
        raise NotImplementedError

    def train(self, job):
        honest = self.features
        self.features = lambda tokenizer, examples, spec: self.change(honest(tokenizer, examples, spec))
        try:
            return super().train(job)
        finally:
            del self.features


class NoMaskInTrain(_InTrainOnly):
    def change(self, rows):
        return [{"input_ids": r["input_ids"], "labels": list(r["input_ids"])} for r in rows]


class ReversedInTrain(_InTrainOnly):
    def change(self, rows):
        return list(reversed(rows))


class ConstantSeed(Mutant):
    def seed(self, spec):
        return 1234


class OneStepFewer(Mutant):
    def training_arguments(self, spec, job=None):
        args = super().training_arguments(spec, job)
        if job is not None:
            args["max_steps"] -= 1
        return args


class NothingSaved(Mutant):
    def save(self, model, tokenizer, job):
        return "full"


class RenamedMetrics(Mutant):
    def neutral(self, logs):
        return {("train_loss" if k == "loss" else k): v for k, v in super().neutral(logs).items()}


class LoraIgnored(Mutant):
    def wrap_lora(self, model, spec):
        return model


BUGS = {"no-mask-in-train": NoMaskInTrain, "reversed-in-train": ReversedInTrain,
        "constant-seed": ConstantSeed, "one-step-fewer": OneStepFewer, "nothing-saved": NothingSaved,
        "renamed-metrics": RenamedMetrics, "lora-ignored": LoraIgnored}


@hookimpl
def register_backends(register):
    for bug, cls in BUGS.items():
        register(type(cls.__name__, (cls,), {"name": f"mutant-{bug}"}))
