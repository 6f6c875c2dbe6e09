"""The example plugin is held to tunebridge's contract suite: subclass, set ``backend_name``, done."""

import pytest

from tunebridge.plugins import get_registry
from tunebridge.testing.contract import RewardContract, SFTContract

if "plainhf" not in get_registry().names():
    pytest.skip("the example plugin tunebridge-plainhf is not installed: pip install --no-deps -e examples/plugin "
                "(torch==2.13.0 and tunebridge[trl] installed first)", allow_module_level=True)


class TestPlainHFContract(SFTContract):
    backend_name = "plainhf"


class TestPlainHFRewardContract(RewardContract):
    backend_name = "plainhf"
