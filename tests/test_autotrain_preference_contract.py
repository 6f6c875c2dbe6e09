"""The preference contract on AutoTrain (llm-dpo, one real run of about a minute): the margin rises, the model is a
causal LM, metrics use the neutral names, ``plan`` predicts the steps AutoTrain makes, kto fails early."""

from __future__ import annotations

from tunebridge.testing.preference import PreferenceContract


class TestAutoTrainDPO(PreferenceContract):
    backend_name = "autotrain"
    algorithm = "dpo"
    training = {"max_steps": None, "epochs": 2}  # AutoTrain runs whole epochs: 2 x 6 steps of 4 pairs
    follows_step_rule = False  # transformers 4.48's own step arithmetic; the plan predicts it (test_plan_predicts...)
    runs_twice = False  # a second AutoTrain run is outside the suite's time budget (the TRL classes check it)
