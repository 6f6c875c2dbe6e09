"""The AutoTrain backend runs the contract suite for sft and reward (needs $TUNEBRIDGE_AUTOTRAIN_PYTHON).

Where AutoTrain legitimately differs, a flag says so: it cannot show its first batch, its llm-sft
always packs (step counts follow token counts), and its trainer always seeds with 42 (its plan says so).
Its SFT trains on every token, so the SFT spec turns
completion-only loss off; it has no max_steps, so the spec gives epochs.
"""

from __future__ import annotations

from typing import Any

import pytest

from tunebridge.testing import sft_spec_dict
from tunebridge.testing.contract import RewardContract, SFTContract


class TestAutoTrainContract(SFTContract):
    backend_name = "autotrain"
    supports_first_batch = False
    follows_step_rule = False
    honours_seed = False  # AutoTrain never passes the seed to its TrainingArguments (plan: not honoured)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_spec(cls, contract_data) -> dict[str, Any]:
        spec = sft_spec_dict(contract_data, cls.backend_name, max_steps=None, epochs=4, batch_size=2)
        spec["sft"] = {"completion_only_loss": False}
        return spec


class TestAutoTrainRewardContract(RewardContract):
    backend_name = "autotrain"
    logs_train_accuracy = False
    honours_seed = False
