"""The TRL backend runs the contract suite for its three tasks."""

from tunebridge.testing.contract import RewardContract, RLContract, SFTContract


class TestTRLContract(SFTContract):
    backend_name = "trl"


class TestTRLRewardContract(RewardContract):
    backend_name = "trl"


class TestTRLGRPOContract(RLContract):
    backend_name = "trl"


class TestTRLRLOOContract(RLContract):
    backend_name = "trl"
    algorithm = "rloo"
