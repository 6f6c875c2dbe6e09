"""The TRLX backend (CarperAI trlx 0.7 on transformers 4.57): SFT, PPO and ILQL, run in trlx's own interpreter."""
