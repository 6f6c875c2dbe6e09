"""The TRLX backend runs the contract suite (skips unless TUNEBRIDGE_TRLX_PYTHON names an env with trlx)."""

from tunebridge.testing.contract import RLContract, SFTContract


class TestTRLXContract(SFTContract):
    backend_name = "trlx"


class TestTRLXPPOContract(RLContract):
    backend_name = "trlx"
    algorithm = "ppo"
    builtin_model = "tiny-gpt2"  # trlx's PPO reference branch does not run Llama on transformers 4.5x
    # PPO learns from a new round of rollouts every 4 steps (ppo_epochs): more steps, no KL brake.
    rl_overrides = {"training": {"max_steps": 40}, "rl": {"kl_coef": 0.0}}
