"""Scripts: command-line entries that drive the library (training the shipped probes, DiT training under torchrun).

They live apart from the library code they drive, above every layer as the notebooks are: nothing in the library
imports them.

    python -m vgcourse.scripts.train_probes                                  # retrain the metric probes
    torchrun --standalone --nproc_per_node=8 -m vgcourse.scripts.train_dit   # a DiT, data-parallel over 8 GPUs
"""
