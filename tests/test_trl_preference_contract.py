"""The preference contract (tunebridge.testing.preference) on the TRL backend: DPO, KTO and ORPO."""

from tunebridge.testing.preference import PreferenceContract


class TestTRLDPO(PreferenceContract):
    backend_name = "trl"
    algorithm = "dpo"


class TestTRLKTO(PreferenceContract):
    backend_name = "trl"
    algorithm = "kto"


class TestTRLORPO(PreferenceContract):
    backend_name = "trl"
    algorithm = "orpo"
