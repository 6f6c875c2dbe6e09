"""The TRL backend (TRL 1.16, transformers 5.x): supervised fine-tuning through ``trl.SFTTrainer``."""
