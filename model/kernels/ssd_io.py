"""What the SSD scan kernels take and give back, in the model's (b l h p) layout.

The custom_vjp wrapper (``ssd_pallas``) prepares ``ScanInputs`` once; each lowering
(``ssd_gpu``, ``ssd_tpu``) rearranges them into its own kernel layout and returns
``ScanGrads`` in this layout again. The sequence length L is already padded to a
multiple of the chunk. ``acc`` below is the accumulation dtype (fp32, or fp64 in
float64 tests); ``cd`` the compute dtype of x (B and C are cast to it).
"""

from __future__ import annotations

from typing import NamedTuple

import jax


class ScanInputs(NamedTuple):
  x: jax.Array           # (b L h p) cd
  B: jax.Array           # (b L g n) cd
  C: jax.Array           # (b L g n) cd
  dt: jax.Array          # (b L h) acc
  a: jax.Array           # (b L h) acc: Σ dt·A from the chunk start, inclusive
  seg: jax.Array         # (b L) int32 segment ids
  from_start: jax.Array  # (b L) acc: 1 where the position continues the entering segment
  to_end: jax.Array      # (b L) acc: 1 where the position is in its chunk's last segment
  D: jax.Array           # (h,) acc
  state0: jax.Array      # (b h p n) acc


class ScanGrads(NamedTuple):
  dx: jax.Array          # (b L h p) cd
  dB: jax.Array          # (b L h n) acc, per head (summed over each group by the caller)
  dC: jax.Array          # (b L h n) acc, per head
  ddt: jax.Array         # (b L h) acc, through dt's explicit uses only
  da: jax.Array          # (b L h) acc, through the cumulative log-decay a
  dD: jax.Array          # (h,) acc
  dstate0: jax.Array     # (b h p n) acc
