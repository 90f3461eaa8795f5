"""Training: distribution strategy, protocol callbacks, one- and two-phase fine-tuning, resume."""
