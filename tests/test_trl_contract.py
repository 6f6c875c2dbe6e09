"""The TRL backend runs the contract suite."""

from tunebridge.testing.contract import SFTContract


class TestTRLContract(SFTContract):
    backend_name = "trl"
