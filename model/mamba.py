"""Mamba-2 mixer (state-spaces/mamba ``Mamba2``), pure functions over a parameter dict.

Shapes: b batch, l length, d model width, h SSM heads, p head dim, g B/C groups,
n state size, w conv width. The input projection is kept as five matrices (z, x, B, C,
dt) rather than one fused [z, x, B, C, dt] matrix so each can be sharded along its own
logical axis; the depthwise conv over xBC is likewise split into x, B and C parts (a
depthwise conv is per channel, so the split is exact).

Packed documents: the conv window and the SSM state reset where ``segment_ids``
changes. With a cache, the conv window and state continue the cached document.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from model import layers
from model import params as P
from model.partitioning import constrain
from model import ssd as ssd_lib
from model.config import ModelConfig

CONV_PARTS = ("x", "B", "C")


def _inverse_softplus(y):
  return y + jnp.log(-jnp.expm1(-y))


def mamba_specs(cfg: ModelConfig) -> dict:
  d, h, p, g, n, w = (cfg.d_model, cfg.ssm_heads, cfg.ssm_head_dim, cfg.ssm_groups,
                      cfg.ssm_state, cfg.conv_width)
  std = P.normal(cfg.init_std)
  conv = P.uniform(-1.0 / math.sqrt(w), 1.0 / math.sqrt(w))
  log_dt_min, log_dt_max = math.log(cfg.dt_min), math.log(cfg.dt_max)
  return {
      "norm": P.ParamSpec((d,), ("embed",), P.constant(1.0)),
      "in_z": P.ParamSpec((d, h, p), ("embed", "ssm_heads", "ssm_head_dim"), std),
      "in_x": P.ParamSpec((d, h, p), ("embed", "ssm_heads", "ssm_head_dim"), std),
      "in_B": P.ParamSpec((d, g, n), ("embed", "ssm_groups", "ssm_state"), std),
      "in_C": P.ParamSpec((d, g, n), ("embed", "ssm_groups", "ssm_state"), std),
      "in_dt": P.ParamSpec((d, h), ("embed", "ssm_heads"), std),
      "conv_x": P.ParamSpec((w, h, p), ("conv_width", "ssm_heads", "ssm_head_dim"), conv),
      "conv_x_bias": P.ParamSpec((h, p), ("ssm_heads", "ssm_head_dim"), P.constant(0.0)),
      "conv_B": P.ParamSpec((w, g, n), ("conv_width", "ssm_groups", "ssm_state"), conv),
      "conv_B_bias": P.ParamSpec((g, n), ("ssm_groups", "ssm_state"), P.constant(0.0)),
      "conv_C": P.ParamSpec((w, g, n), ("conv_width", "ssm_groups", "ssm_state"), conv),
      "conv_C_bias": P.ParamSpec((g, n), ("ssm_groups", "ssm_state"), P.constant(0.0)),
      # dt_bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max] (Mamba-2 init).
      "dt_bias": P.ParamSpec((h,), ("ssm_heads",), P.uniform(
          log_dt_min, log_dt_max, lambda u: _inverse_softplus(jnp.exp(u)))),
      "A_log": P.ParamSpec((h,), ("ssm_heads",), P.uniform(1.0, 16.0, jnp.log)),
      "D": P.ParamSpec((h,), ("ssm_heads",), P.constant(1.0)),
      "gate_norm": P.ParamSpec((h, p), ("ssm_heads", "ssm_head_dim"), P.constant(1.0)),
      "out": P.ParamSpec((h, p, d), ("ssm_heads", "ssm_head_dim", "embed"), std),
  }


def mamba_cache(cfg: ModelConfig, batch: int, dtype) -> dict:
  w = cfg.conv_width - 1
  h, p, g, n = cfg.ssm_heads, cfg.ssm_head_dim, cfg.ssm_groups, cfg.ssm_state
  return {
      "conv_x": jnp.zeros((batch, w, h, p), dtype),
      "conv_B": jnp.zeros((batch, w, g, n), dtype),
      "conv_C": jnp.zeros((batch, w, g, n), dtype),
      "ssm": jnp.zeros((batch, h, p, n), jnp.float32),
  }


def causal_conv(u, weight, bias, segment_ids, window):
  """Depthwise causal conv with SiLU. u (b l ...c), weight (w ...c), bias (...c).

  ``window`` (b w-1 ...c) holds the raw inputs before ``u`` (zeros for a fresh
  sequence) and is taken to continue the first position's segment. Taps that reach
  into another segment are dropped. Returns (silu(conv) (b l ...c), next window).
  """
  w, l = weight.shape[0], u.shape[1]
  padded = jnp.concatenate([window.astype(u.dtype), u], axis=1)   # b (w-1+l) ...c
  padded_segments = jnp.concatenate(
      [jnp.repeat(segment_ids[:, :1], w - 1, axis=1), segment_ids], axis=1)
  channel_dims = (1,) * (u.ndim - 2)
  out = jnp.broadcast_to(bias.astype(u.dtype), u.shape)
  for tap in range(w):
    same = (padded_segments[:, tap:tap + l] == segment_ids).reshape(
        segment_ids.shape + channel_dims)
    out = out + jnp.where(same, padded[:, tap:tap + l] * weight[tap].astype(u.dtype)[None, None], 0)
  # The next window keeps only inputs of the last segment, which a decode continues.
  tail_same = (padded_segments[:, -(w - 1):] == segment_ids[:, -1:]).reshape(
      (segment_ids.shape[0], w - 1) + channel_dims)
  next_window = jnp.where(tail_same, padded[:, -(w - 1):], 0)
  return jax.nn.silu(out), next_window


def gated_rms_norm(y, z, weight, n_groups, eps):
  """RMSNorm(y * silu(z)) with the RMS taken per group of heads. y, z (b l h p)."""
  b, l, h, p = y.shape
  gated = y.astype(jnp.float32) * jax.nn.silu(z.astype(jnp.float32))
  grouped = gated.reshape(b, l, n_groups, (h // n_groups) * p)
  grouped = grouped * jax.lax.rsqrt(
      jnp.mean(jnp.square(grouped), axis=-1, keepdims=True) + eps)
  weight = weight.astype(jnp.float32)[None, None]
  return (grouped.reshape(b, l, h, p) * weight).astype(y.dtype)


def mamba(p, x, cfg: ModelConfig, *, segment_ids, cache=None):
  """Mamba-2 mixer. x (b l d) → (out (b l d), updated cache or None).

  With a cache and l == 1 the single-token state update is used (decode); otherwise
  the chunked scan runs from the cached state (prefill or training).
  """
  dtype = x.dtype
  w = lambda name: p[name].astype(dtype)
  heads = ("batch", None, "ssm_heads", None)
  z = constrain(layers.dense(x, w("in_z")), heads)                               # b l h p
  pre_conv = {"x": constrain(layers.dense(x, w("in_x")), heads),                 # b l h p
              "B": layers.dense(x, w("in_B")), "C": layers.dense(x, w("in_C"))}  # b l g n
  dt = layers.dense(x, w("in_dt")).astype(jnp.float32)                          # b l h
  dt = jax.nn.softplus(dt + p["dt_bias"].astype(jnp.float32)[None, None])
  dt = jnp.clip(dt, *cfg.dt_limit)
  A = -jnp.exp(p["A_log"].astype(jnp.float32))

  batch = x.shape[0]
  fresh = cache is None
  windows = mamba_cache(cfg, batch, dtype) if fresh else cache
  conv_out, new_windows = {}, {}
  for part in CONV_PARTS:
    conv_out[part], new_windows[part] = causal_conv(
        pre_conv[part], p[f"conv_{part}"], p[f"conv_{part}_bias"], segment_ids,
        windows[f"conv_{part}"])
  xs, B, C = conv_out["x"], conv_out["B"], conv_out["C"]

  if not fresh and x.shape[1] == 1:
    y, state = ssd_lib.ssd_decode(cache["ssm"], xs[:, 0], dt[:, 0], A, B[:, 0], C[:, 0],
                                  p["D"], impl=cfg.ssm_impl)
    y = y[:, None]
  else:
    y, state = ssd_lib.ssd(xs, dt, A, B, C, p["D"], chunk_size=cfg.chunk_size,
                           initial_state=None if fresh else cache["ssm"],
                           segment_ids=segment_ids, impl=cfg.ssm_impl)
  y = gated_rms_norm(y, z, p["gate_norm"], cfg.ssm_groups, cfg.norm_eps)
  out = layers.dense(y, w("out"), contract=2)
  if fresh:
    return out, None
  new_cache = {f"conv_{part}": new_windows[part].astype(cache[f"conv_{part}"].dtype)
               for part in CONV_PARTS}
  new_cache["ssm"] = state.astype(jnp.float32)
  return out, new_cache
