"""Checkpoints: state and batch source round-trip, atomic saves, checksums that catch damage
and fall back to an intact step, mismatches named by their first differing key."""

import errno
import os

import grain
import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from model import config as mcfg
from model import lm
from train import checkpoint as checkpoint_lib
from train import loops
from train import sharding
from train import state as state_lib

CFG = mcfg.tiny(d_model=32, pattern="M*-", mlp_dim=64, ssm_heads=2, n_heads=2,
                n_kv_heads=1, chunk_size=8)
OPTIMIZER = optax.adamw(1e-3)
RULES = (("embed", "fsdp"),) + tuple(
    (name, None) for name in ("vocab", "mlp", "q_heads", "kv_heads", "head_dim", "ssm_heads",
                              "ssm_head_dim", "ssm_groups", "ssm_state", "conv_width"))


def make_state(cfg=CFG, seed=0, optimizer=OPTIMIZER):
  init_rng, state_rng = jax.random.split(jax.random.PRNGKey(seed))
  return state_lib.TrainState.create(lm.init(init_rng, cfg), optimizer, state_rng)


def abstract_state(cfg=CFG, optimizer=OPTIMIZER):
  return jax.eval_shape(lambda: make_state(cfg, optimizer=optimizer))


def abstract_with_shardings(cfg=CFG, optimizer=OPTIMIZER):
  abstract = abstract_state(cfg, optimizer)
  mesh = sharding.make_mesh({"data": 1, "fsdp": 2, "tensor": 1}, jax.devices()[:2])
  shardings = state_lib.state_shardings(
      abstract, sharding.param_shardings(cfg, mesh, RULES), optimizer, mesh)
  return sharding.with_shardings(abstract, shardings)


def batches(seed=1):
  dataset = grain.MapDataset.range(100).shuffle(seed=seed).map(lambda x: {"x": x}).batch(2)
  return loops.IteratorBatches(iter(dataset.to_iter_dataset()))


def saved(tmp_path, steps=(2, 4), **options):
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=1, max_to_keep=3,
                                             **options)
  for step in steps:
    checkpointer.save(step, make_state(seed=step), batches(), loop="pretrain")
  checkpointer.close()
  return checkpoint_lib.Checkpointer(str(tmp_path), every_steps=1, max_to_keep=3)


def test_state_and_batch_source_round_trip(tmp_path):
  state, source = make_state(), batches()
  source(None, 0), source(None, 1)
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=1, max_to_keep=2)
  assert checkpointer.save(7, state, source, loop="pretrain")
  checkpointer.close()
  expected_next = source(None, 2)["x"]

  fresh = batches()
  restored = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=1, max_to_keep=2)
  target = abstract_with_shardings()
  got, step = restored.restore(target, fresh, loop="pretrain", report=lambda m: None)
  assert step == 7
  np.testing.assert_array_equal(fresh(None, 2)["x"], expected_next)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Restored straight into the requested (FSDP) layout.
  assert got.params["embed"].sharding == target.params["embed"].sharding


def test_keeps_the_newest_and_saves_on_its_interval(tmp_path):
  state = make_state()
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), every_steps=2, max_to_keep=2)
  saved_steps = [step for step in range(1, 8) if checkpointer.save(step, state)]
  assert saved_steps == [2, 4, 6]
  assert checkpointer.save(7, state, force=True)
  checkpointer.wait()
  assert checkpointer.all_steps() == [6, 7]


class _ListingSource(loops.StepSeededBatches):
  """A batch source whose state is the checkpoint dir's listing while it is saved."""

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
  spy = _ListingSource(str(tmp_path))
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
  _, step = reopened.restore(jax.eval_shape(lambda: state), report=lambda m: None)
  assert step == 2


def largest_array_file(step_dir):
  files = [os.path.join(root, name) for root, _, names in os.walk(step_dir / "state")
           for name in names]
  return max(files, key=os.path.getsize)


@pytest.mark.parametrize("damage", ["flip", "truncate", "metadata", "iterator", "missing"])
def test_a_damaged_newest_checkpoint_is_named_and_the_intact_one_restores(tmp_path, damage):
  checkpointer = saved(tmp_path)
  if damage == "missing":
    path = tmp_path / "4" / "state" / "_METADATA"
    path.unlink()
  elif damage in ("metadata", "iterator"):
    path = tmp_path / "4" / ("state/_METADATA" if damage == "metadata"
                             else "data/process_0-of-1.json")
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
  else:
    path = largest_array_file(tmp_path / "4")
    data = bytearray(open(path, "rb").read())
    if damage == "flip":
      data[len(data) // 2] ^= 0x40
    else:
      data = data[:len(data) // 2]
    open(path, "wb").write(bytes(data))
  messages = []
  state, step = checkpointer.restore(abstract_with_shardings(), batches(), loop="pretrain",
                                     report=messages.append)
  assert step == 2
  if damage in ("metadata", "iterator", "missing"):
    assert str(path) in messages[0], messages
  if damage == "truncate":  # the array and the file at fault, not only the slice read
    assert 'Error reading "' in messages[0], messages
    assert f'local file "{tmp_path / "4" / "state"}/"' in messages[0], messages
  np.testing.assert_array_equal(np.asarray(state.params["embed"]),
                                np.asarray(make_state(seed=2).params["embed"]))
  assert str(tmp_path / "4") in messages[0] and "4.damaged" in messages[0], messages
  assert "step 2" in messages[-1]
  assert sorted(os.listdir(tmp_path)) == ["2", "4.damaged"]


@pytest.mark.parametrize("error", [OSError(errno.EIO, os.strerror(errno.EIO)),
                                   MemoryError("out of memory")])
def test_a_read_that_fails_for_a_passing_reason_moves_nothing(tmp_path, monkeypatch, error):
  """An I/O hiccup or too little memory while the newest checkpoint's state is read is no
  sign of damage: the error names the step, and nothing is moved aside."""
  checkpointer = saved(tmp_path)
  restore, failed = ocp.CheckpointManager.restore, []

  def fails_once(self, step, *args, **kwargs):
    if "state" in kwargs["args"] and not failed:
      failed.append(step)
      raise error
    return restore(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "restore", fails_once)
  with pytest.raises(checkpoint_lib.CheckpointIOError) as raised:
    checkpointer.restore(abstract_with_shardings(), batches(), loop="pretrain")
  assert str(raised.value) == (
      f"checkpoint {tmp_path / '4'} does not restore ({type(error).__name__}: {error}); that "
      "is no sign of damage, so nothing was moved: rerun once it has passed")
  assert sorted(os.listdir(tmp_path)) == ["2", "4"]
  _, step = checkpointer.restore(abstract_with_shardings(), batches(), loop="pretrain")
  assert step == 4


def test_no_intact_checkpoint_is_an_error(tmp_path):
  checkpointer = saved(tmp_path, steps=(2,))
  path = largest_array_file(tmp_path / "2")
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0x01
  open(path, "wb").write(bytes(data))
  with pytest.raises(checkpoint_lib.CheckpointDamagedError, match="no intact checkpoint"):
    checkpointer.restore(abstract_with_shardings(), report=lambda m: None)


def test_a_checkpoint_of_another_model_loop_or_optimizer_names_the_key(tmp_path):
  checkpointer = saved(tmp_path, steps=(3,))
  wider = CFG.replace(d_model=48)
  with pytest.raises(checkpoint_lib.CheckpointMismatchError) as error:
    checkpointer.restore(abstract_state(wider, OPTIMIZER))
  message = str(error.value)
  assert str(tmp_path / "3") in message and "different model" in message
  assert "params/embed" in message and "(512, 32)" in message and "(512, 48)" in message
  deeper = CFG.replace(pattern="M*-M")
  with pytest.raises(checkpoint_lib.CheckpointMismatchError, match="no params/layers/3"):
    checkpointer.restore(abstract_state(deeper, OPTIMIZER))
  clipped = optax.chain(optax.clip_by_global_norm(1.0), OPTIMIZER)
  with pytest.raises(checkpoint_lib.CheckpointMismatchError, match="optimizer settings"):
    checkpointer.restore(abstract_state(CFG, clipped))
  with pytest.raises(checkpoint_lib.CheckpointMismatchError,
                     match="written by loop 'pretrain', this run is loop 'rlp'"):
    checkpointer.restore(abstract_with_shardings(), loop="rlp")
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    checkpoint_lib.Checkpointer(str(tmp_path / "empty"), every_steps=1,
                                max_to_keep=1).restore(make_state())


def test_starting_weights_come_from_a_run_without_touching_it(tmp_path):
  saved(tmp_path / "run" / "checkpoints", steps=(2, 4)).close()
  before = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
  abstract = abstract_with_shardings()
  params, step = checkpoint_lib.load_params(str(tmp_path / "run"), CFG, jax.tree.map(
      lambda x: x.sharding, abstract.params))
  assert step == 4
  np.testing.assert_array_equal(np.asarray(params["embed"]),
                                np.asarray(make_state(seed=4).params["embed"]))
  assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == before
  with pytest.raises(FileNotFoundError, match="no such directory"):
    checkpoint_lib.load_params(str(tmp_path / "nowhere"), CFG, None)
  assert not (tmp_path / "nowhere").exists()
