"""Pretraining that the harness owns: the loop (`loop`), corpus frames and crops (`frames`),
the default checkpoint (`checkpoints`), safetensors checkpoints (`train_state`) and the
validation-only recipe ablation (`ablate`)."""
