"""Models: configs, parameter declarations, transformer / Mamba-2 / hybrid forward passes."""
