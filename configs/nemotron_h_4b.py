"""Nemotron-H-4B shapes: the 8B run config (v5p:4x4x4) with the width-pruned model.
Shape-only here."""

from configs import nemotron_h_8b
from train import config as run_config


def get_config():
  config = nemotron_h_8b.get_config()
  config.model = run_config.model_section("nemotron_h_4b", remat="full")
  return config
