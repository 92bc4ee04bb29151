"""The training bundle: SFT/DPO files TRL, axolotl and LLaMA-Factory load as they are, and the dataset card."""
