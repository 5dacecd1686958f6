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

import test_ssd_kernels
from configs import tiny_hybrid
from model import attention
from model import blockwise
from model import config as mcfg
from model import layers
from model import lm
from model.kernels import ssd_pallas
from train import aot

pytestmark = pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                                reason="libtpu is not installed (pip install -e '.[tpu]')")

TOPOLOGY = "v5e:2x2"  # 4 chips of 15.75 GiB


def _mesh(topology: str, shape: dict[str, int]) -> jax.sharding.Mesh:
  """A user's mesh over the chips of ``topology`` (``jax.make_mesh``, GSPMD axes)."""
  return jax.make_mesh(tuple(shape.values()), tuple(shape),
                       devices=aot.topology_devices(topology),
                       axis_types=(jax.sharding.AxisType.Auto,) * len(shape))


def _compile(fn, mesh, *args):
  """``fn`` compiled the way a user calls it: ``jax.jit`` under ``jax.set_mesh``."""
  with jax.set_mesh(mesh):
    compiled = jax.jit(fn).trace(*args).lower().compile()
  assert "tpu_custom_call" in compiled.as_text()  # the Mosaic kernels, not a fallback
  return compiled


@pytest.mark.parametrize("chunk,p,n", [
    *test_ssd_kernels.TILE_TABLE[:3],
    *(pytest.param(*shape, marks=pytest.mark.slow)   # ~20 s each; lowered by default
      for shape in test_ssd_kernels.TILE_TABLE[3:])])
def test_ssd_kernels_compile_for_a_tpu_mesh_at_every_table_shape(chunk, p, n):
  """Forward+backward and decode of the Pallas SSD kernels on v5e:2x2 (batch over data,
  heads over tensor), bf16, for every (chunk, head dim, state) of the table: production
  sizes, and sizes Mosaic does not tile as they are (the kernel runs them at
  ``ssd_pallas.tile_sizes``)."""
  mesh = _mesh(TOPOLOGY, {"data": 2, "tensor": 2})
  b, l, h, g = 4, 512, 4, 2
  rows = lambda *rest: NamedSharding(mesh, PartitionSpec("data", *rest))
  s = lambda shape, dtype, sharding_: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding_)
  replicated = NamedSharding(mesh, PartitionSpec())
  args = (s((b, l, h, p), jnp.bfloat16, rows(None, "tensor")),
          s((b, l, h), jnp.float32, rows()), s((h,), jnp.float32, replicated),
          s((b, l, g, n), jnp.bfloat16, rows()), s((b, l, g, n), jnp.bfloat16, rows()),
          s((h,), jnp.float32, replicated))

  def forward_backward(*a):
    y, vjp = jax.vjp(lambda *a: ssd_pallas.ssd(*a, chunk_size=chunk)[0], *a)
    return vjp(y)

  def decode(state, x, dt, A, B, C, D):
    return ssd_pallas.ssd_step(state, x, dt, A, B, C, D)

  step_args = (s((b, h, p, n), jnp.float32, rows("tensor")),
               s((b, h, p), jnp.bfloat16, rows("tensor")), s((b, h), jnp.float32, rows()),
               args[2], s((b, g, n), jnp.bfloat16, rows()),
               s((b, g, n), jnp.bfloat16, rows()), args[5])
  grads = _compile(forward_backward, mesh, *args)
  chex.assert_trees_all_equal_shapes(grads.out_info, args)
  _compile(decode, mesh, *step_args)


def test_splash_attention_compiles_for_a_tpu_mesh_at_any_head_size():
  """attention_impl='flash' on v5e:2x2 (rows over data, kv heads over tensor): the
  splash kernel's forward and backward compile for head sizes that are and are not
  multiples of 128, and a ragged length (200); attention_block is refused at config
  unless a multiple of 128."""
  mesh = _mesh(TOPOLOGY, {"data": 2, "tensor": 2})
  rows = NamedSharding(mesh, PartitionSpec("data"))
  for e in (32, 80, 128):
    s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.bfloat16, sharding=rows)
    q, k, v = s(4, 200, 2, 2, e), s(4, 2, 200, e), s(4, 2, 200, e)
    segments = jax.ShapeDtypeStruct((4, 200), jnp.int32, sharding=rows)

    def forward_backward(q, k, v, segments):
      out, vjp = jax.vjp(lambda *a: attention.flash_attention(*a, segments, block=128),
                         q, k, v)
      return vjp(out)
    _compile(forward_backward, mesh, q, k, v, segments)
  with pytest.raises(ValueError, match="attention_block.*multiple of 128"):
    mcfg.tiny(attention_impl="flash", attention_block=64)


@pytest.mark.parametrize("topology,shape", [
    (TOPOLOGY, {"data": 4}),
    ("v5p:2x2x2", {"data": 4, "tensor": 2})])
def test_a_users_jit_under_set_mesh_compiles_the_pallas_hybrid(topology, shape):
  """The README's model API as a user calls it on a mesh: ``jax.grad`` of a loss of
  ``lm.forward`` and a cached decode step under their own ``jax.jit``, the batch sharded
  over the chips, the mesh set with ``jax.set_mesh``: the hybrid with the Pallas SSD
  kernels and splash attention compiles (the kernels shard_map themselves over JAX's
  mesh), at the kernels' production tile sizes and at a chunk Mosaic cannot tile (64)."""
  mesh = _mesh(topology, shape)
  for chunk in (128, 64):
    cfg = mcfg.tiny(ssm_impl="pallas", attention_impl="flash", attention_block=128,
                    ssm_heads=4, ssm_head_dim=64, ssm_state=128, chunk_size=chunk)
    replicated = lambda tree: jax.tree.map(lambda a: jax.ShapeDtypeStruct(
        a.shape, a.dtype, sharding=NamedSharding(mesh, PartitionSpec())), tree)
    params = replicated(lm.abstract_params(cfg))
    rows = NamedSharding(mesh, PartitionSpec("data"))
    tokens = jax.ShapeDtypeStruct((8, 256), jnp.int32, sharding=rows)

    def loss(params, tokens):
      logits, _ = lm.forward(params, tokens, cfg)
      return jnp.mean(jax.nn.logsumexp(logits.astype(jnp.float32), axis=-1))

    grads = _compile(jax.grad(loss), mesh, params, tokens)
    chex.assert_trees_all_equal_shapes(grads.out_info, params)
    cache = replicated(jax.eval_shape(lambda: lm.init_cache(cfg, batch=8, max_len=64)))
    token = jax.ShapeDtypeStruct((8, 1), jnp.int32, sharding=rows)
    _compile(lambda p, t, c: lm.forward(p, t, cfg, cache=c), mesh, params, token, cache)


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


def _compile_pooled_layer(topology: str, length: int):
  """Forward+backward of a pooled blockwise layer (arXiv 2209.10052;
  ``model/blockwise.py``) with attention_impl='flash', compiled for one chip."""
  device = aot.topology_devices(topology)[:1]
  replicated = NamedSharding(jax.sharding.Mesh(device, ("x",)), PartitionSpec())
  cfg = mcfg.tiny(attention="pooled", attention_impl="flash", attention_block=128,
                  local_block=256, head_dim=128, dtype="bfloat16")
  core = layers.causal_core(cfg)

  def forward_backward(q, k, v, segments):
    out, vjp = jax.vjp(lambda *a: blockwise.sequence_attention(*a, segments, cfg, core),
                       q, k, v)
    return vjp(out)

  s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.bfloat16, sharding=replicated)
  args = (s(1, length, 2, 2, 128), s(1, 2, length, 128), s(1, 2, length, 128),
          jax.ShapeDtypeStruct((1, length), jnp.int32, sharding=replicated))
  compiled = jax.jit(forward_backward).trace(*args).lower().compile()
  assert "tpu_custom_call" in compiled.as_text()   # the local branch: splash per block
  return compiled


def test_pooled_blockwise_attention_compiles_for_tpu():
  _compile_pooled_layer(TOPOLOGY, 1000)           # a length no block divides


@pytest.mark.slow
def test_pooled_blockwise_attention_memory_is_linear_in_length_on_tpu():
  """The compiled step's temporary memory doubles, not quadruples, when the length
  doubles (v5p; bench/long_context.py measures 32K-128K)."""
  temp = [_compile_pooled_layer("v5p:2x2x1", length).memory_analysis().temp_size_in_bytes
          for length in (8192, 16384)]
  assert 1.5 < temp[1] / temp[0] < 2.5, temp
