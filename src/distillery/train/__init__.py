"""LoRA SFT + DPO on the mix and base-vs-tuned evaluation."""
