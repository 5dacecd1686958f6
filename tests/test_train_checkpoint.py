"""Checkpoints: state and data iterator round-trip, atomic saves, clear shape mismatches."""

import os

import grain
import jax
import numpy as np
import optax
import pytest

from model import config as mcfg
from train import checkpoint as checkpoint_lib
from train import sharding
from train import state as state_lib

CFG = mcfg.tiny(d_model=32, pattern="M*-", mlp_dim=64, ssm_heads=2, n_heads=2,
                n_kv_heads=1, chunk_size=8)
OPTIMIZER = optax.adamw(1e-3)


def make_state(cfg=CFG, seed=0):
  return state_lib.init_state(jax.random.PRNGKey(seed), cfg, OPTIMIZER)


def abstract_with_shardings(cfg=CFG):
  abstract = state_lib.abstract_state(cfg, OPTIMIZER)
  mesh = sharding.make_mesh({"data": 1, "fsdp": 2, "tensor": 1}, jax.devices()[:2])
  shardings = state_lib.state_shardings(
      abstract, sharding.param_shardings(cfg, mesh, (("embed", "fsdp"),) + tuple(
          (name, None) for name in ("vocab", "mlp", "q_heads", "kv_heads", "head_dim",
                                    "ssm_heads", "ssm_head_dim", "ssm_groups", "ssm_state",
                                    "conv_width"))), OPTIMIZER, mesh)
  return sharding.with_shardings(abstract, shardings)


def test_state_and_data_iterator_round_trip(tmp_path):
  state = make_state()
  data = iter(grain.MapDataset.range(100).shuffle(seed=1).to_iter_dataset())
  next(data), next(data)
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=1, max_to_keep=2)
  assert checkpointer.save(7, state, data)
  checkpointer.wait()
  expected_next = [next(data) for _ in range(3)]

  fresh = iter(grain.MapDataset.range(100).shuffle(seed=1).to_iter_dataset())
  restored = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=1, max_to_keep=2)
  assert restored.latest_step() == 7
  target = abstract_with_shardings()
  got = restored.restore(target, fresh)
  assert [next(fresh) for _ in range(3)] == expected_next
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Restored straight into the requested (FSDP) layout.
  assert got.params["embed"].sharding == target.params["embed"].sharding


def test_keeps_the_newest_and_saves_on_its_interval(tmp_path):
  state = make_state()
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=2, max_to_keep=2)
  saved = [step for step in range(1, 8) if checkpointer.save(step, state)]
  assert saved == [2, 4, 6]
  assert checkpointer.save(7, state, force=True)
  checkpointer.wait()
  assert checkpointer.all_steps() == [6, 7]


class _ListingIterator:
  """A data 'iterator' whose state is the checkpoint dir's listing while it is saved."""

  def __init__(self, directory):
    self.directory = directory
    self.listing = None

  def get_state(self):
    self.listing = sorted(os.listdir(self.directory))
    return b"{}"


def test_saves_are_atomic_and_unfinished_ones_are_ignored(tmp_path):
  state = make_state()
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=1, max_to_keep=3,
                                             async_save=False)
  checkpointer.save(1, state)
  spy = _ListingIterator(str(tmp_path))
  checkpointer.save(2, state, spy)
  # While step 2 was being written it lived in a temporary directory, not in '2'.
  assert "2" not in spy.listing
  assert any(name.startswith("2.orbax-checkpoint-tmp") for name in spy.listing)
  assert sorted(os.listdir(tmp_path)) == ["1", "2"]

  # A save killed half-way leaves only such a temporary directory: it is never restored.
  partial = tmp_path / "3.orbax-checkpoint-tmp-1234567"
  (partial / "state").mkdir(parents=True)
  (partial / "state" / "garbage").write_bytes(b"\0" * 10)
  reopened = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=1, max_to_keep=3)
  assert reopened.latest_step() == 2
  restored = reopened.restore(jax.eval_shape(lambda: state))
  assert int(restored.step) == int(state.step)


def test_a_checkpoint_of_another_model_names_the_dir_and_parameter(tmp_path):
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=1, max_to_keep=1)
  checkpointer.save(3, make_state())
  checkpointer.wait()
  wider = CFG.replace(d_model=48)
  with pytest.raises(checkpoint_lib.CheckpointMismatchError) as error:
    checkpointer.restore(state_lib.abstract_state(wider, OPTIMIZER))
  message = str(error.value)
  assert str(tmp_path / "3") in message
  assert "params/embed" in message and "(512, 32)" in message and "(512, 48)" in message
  deeper = CFG.replace(pattern="M*-M")
  with pytest.raises(checkpoint_lib.CheckpointMismatchError, match="no parameter params/layers/3"):
    checkpointer.restore(state_lib.abstract_state(deeper, OPTIMIZER))
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    checkpoint_lib.Checkpointer(str(tmp_path / "empty"), every_steps=1,
                                max_to_keep=1).restore(make_state())
