"""The preference contract on AutoTrain (llm-dpo, one real run of about a minute): the margin rises, the model is a
causal LM, metrics use the neutral names, ``plan`` predicts the steps AutoTrain makes, kto fails early."""

from __future__ import annotations

from tunebridge.testing.preference import PreferenceContract


class TestAutoTrainDPO(PreferenceContract):
    backend_name = "autotrain"
    algorithm = "dpo"
    # AutoTrain runs whole epochs. 20 pairs, batch 4, accumulation 2: transformers 4.48 makes 2 steps an epoch
    # where the neutral rule says 3 (its partial last accumulation makes none): plan must predict 4 x 2 = 8.
    rows = 20
    training = {"max_steps": None, "epochs": 4, "gradient_accumulation": 2}
    follows_step_rule = False  # transformers 4.48's own step arithmetic; the plan predicts it (test_plan_predicts...)
    runs_twice = False  # a second AutoTrain run is outside the suite's time budget (the TRL classes check it)
