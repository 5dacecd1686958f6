"""Compiles for TPU topologies on this host, without TPUs: libtpu's compiler (XLA:TPU and
Mosaic for the Pallas kernels) through ``jax.experimental.topologies``. Skipped only
where libtpu is not installed (the ``tpu`` extra, which the ``test`` extra includes)."""

import importlib
import importlib.util
import re

import chex
import jax
import jax.numpy as jnp
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from configs import base, tiny_hybrid
from model import config as mcfg
from model import lm
from model import partitioning
from model.kernels import ssd_pallas
from train import aot, sharding

pytestmark = pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                                reason="libtpu is not installed (pip install -e '.[tpu]')")

TOPOLOGY = "v5e:2x2"  # 4 chips of 15.75 GiB


@pytest.fixture(scope="module")
def mesh():
  mesh_config = {"data": 1, "fsdp": 2, "tensor": 2}
  return sharding.make_mesh(mesh_config, aot.topology_devices(TOPOLOGY))


def _compile(fn, mesh, *args):
  compiled = jax.jit(partitioning.on_mesh(fn, mesh, base.LOGICAL_AXIS_RULES)).trace(
      *args).lower().compile()
  text = compiled.as_text()
  assert "tpu_custom_call" in text  # the Mosaic kernels, not an XLA fallback
  return compiled


def test_ssd_kernels_compile_for_a_tpu_mesh(mesh):
  """Forward, forward+backward and decode of the Pallas SSD kernels at production tile
  sizes (p 64, n 128, chunk 256, bf16), sharded over batch (fsdp) and heads (tensor)."""
  b, l, h, p, g, n = 4, 512, 4, 64, 2, 128
  rows = lambda *rest: NamedSharding(mesh, PartitionSpec("fsdp", *rest))
  s = lambda shape, dtype, sharding_: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding_)
  replicated = NamedSharding(mesh, PartitionSpec())
  args = (s((b, l, h, p), jnp.bfloat16, rows(None, "tensor")),
          s((b, l, h), jnp.float32, rows()), s((h,), jnp.float32, replicated),
          s((b, l, g, n), jnp.bfloat16, rows()), s((b, l, g, n), jnp.bfloat16, rows()),
          s((h,), jnp.float32, replicated))

  def forward(*a):
    return ssd_pallas.ssd(*a, chunk_size=256)

  def forward_backward(*a):
    y, vjp = jax.vjp(lambda *a: ssd_pallas.ssd(*a, chunk_size=256)[0], *a)
    return vjp(y)

  def decode(state, x, dt, A, B, C, D):
    return ssd_pallas.ssd_step(state, x, dt, A, B, C, D)

  step_args = (s((b, h, p, n), jnp.float32, rows("tensor")),
               s((b, h, p), jnp.bfloat16, rows("tensor")), s((b, h), jnp.float32, rows()),
               args[2], s((b, g, n), jnp.bfloat16, rows()),
               s((b, g, n), jnp.bfloat16, rows()), args[5])
  _compile(forward, mesh, *args)
  grads = _compile(forward_backward, mesh, *args)
  chex.assert_trees_all_equal_shapes(grads.out_info, args)
  _compile(decode, mesh, *step_args)


def test_tiny_hybrid_pallas_train_step_compiles_and_reports_memory():
  """The driver's train step of the tiny hybrid with the Pallas kernels (SSD scan and
  splash attention) on v5e:2x2 (FSDP 2 x tensor 2): each phase is reported with the time
  elapsed, the memory report adds up and the step fits with room."""
  config = tiny_hybrid.get_config()
  config.model.ssm_impl = "pallas"
  config.model.attention_impl, config.model.attention_block = "flash", 128
  config.model.chunk_size = 128  # Mosaic's row blocks are multiples of 128
  config.train.seq_len = 128
  config.train.global_batch_size = 8
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 2, 2
  phases = []
  compiled, report = aot.compile_train_step(config, TOPOLOGY, report=phases.append)
  assert [re.sub(r"^\[ *[0-9.]+ s\] ", "", phase).split()[0] for phase in phases] == [
      "describing", "building", "tracing", "compiling", "compiled"], phases
  text = compiled.as_text()
  assert "tpu_custom_call" in text
  assert "splash" in text  # the attention kernel, not the chunked XLA fallback
  assert report.mesh == {"data": 1, "fsdp": 2, "tensor": 2}
  assert report.device_kind == "TPU v5 lite" and report.hbm_bytes == 15.75 * aot.GiB
  # The state is split over the mesh; the compiled arguments hold it and the batch.
  assert report.param_bytes < report.params * 4 / 2
  assert report.state_bytes < report.argument_bytes < report.state_bytes + 2 ** 20
  assert report.alias_bytes >= report.state_bytes * 0.9  # the donated state is reused
  assert 0 < report.total_bytes < 0.05 * report.hbm_bytes
  assert report.flops > 0 and report.bytes_accessed > 0
  assert "headroom" in report.table()


def test_shipped_config_fits_its_slice_at_reduced_depth():
  """configs/llama_1b.py as shipped (batch 256 x 4096, accumulation, full remat, splash
  attention) on the slice it names, with one of its 16 attention + MLP blocks: the
  compiler's total per chip is under HBM. bench/fit.py compiles every config whole."""
  config = importlib.import_module("configs.llama_1b").get_config()
  config.model.pattern = "*-"
  _, report = aot.compile_train_step(config)
  assert report.topology == "v5p:2x2x2" and report.mesh["fsdp"] == 8
  assert report.temp_bytes > 2 ** 30  # a real step's activations, not an empty program
  assert report.total_bytes < report.hbm_bytes, report.table()


@pytest.mark.slow   # ~2 minutes of TPU compile; bench/fit.py compiles it whole
def test_prune_recipe_distill_step_fits_its_slice_at_reduced_depth():
  """configs/prune_nemotron_h_8b.py (the 8B teacher inside the step of its pruned 4B
  student, batch 512 x 8192 in 16 micro-batches) on v5p:4x4x4 with one layer of each kind
  for both: the student derived from the shortened teacher has the 4B's widths, and the
  step fits."""
  config = importlib.import_module("configs.prune_nemotron_h_8b").get_config()
  config.teacher.model.pattern = "M-*-"
  _, report = aot.compile_train_step(config)
  assert report.topology == "v5p:4x4x4" and report.mesh == {"data": 1, "fsdp": 16,
                                                            "tensor": 4}
  assert report.params == lm.count_params(mcfg.nemotron_h_4b(pattern="M-*-"))
  assert report.temp_bytes > 2 ** 30
  assert report.total_bytes < report.hbm_bytes, report.table()
