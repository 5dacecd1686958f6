"""Generation: greedy decode equals argmax of the full forward; sampling knobs; bad input."""

import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model import config as mcfg
from model import lm
from model import generate as gen
from model import sampling

PROMPTS = ([5, 9, 14, 3, 7, 22], [11, 4], [8, 30, 2, 19])
NEW = 6
FAMILIES = {"transformer": mcfg.tiny_transformer, "mamba": mcfg.tiny_mamba, "hybrid": mcfg.tiny}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def model(request):
  cfg = FAMILIES[request.param](vocab_size=64, d_model=32, mlp_dim=64, chunk_size=4)
  params = lm.init(jax.random.PRNGKey(1), cfg)
  return cfg, params


def reference_greedy(params, cfg, prompt, steps, width=16):
  """Step-by-step argmax of the full, uncached forward on the unpadded prompt (right
  padding to a fixed width is causal-safe and keeps one compile)."""
  forward = jax.jit(lambda p, t: jax.nn.log_softmax(lm.forward(p, t, cfg)[0], axis=-1))
  tokens, log_probs = list(prompt), []
  for _ in range(steps):
    log_p = forward(params, jnp.asarray([tokens + [0] * (width - len(tokens))]))
    tokens.append(int(jnp.argmax(log_p[0, len(tokens) - 1])))
    log_probs.append(float(log_p[0, len(tokens) - 2, tokens[-1]]))
  return tokens[len(prompt):], log_probs


def test_greedy_matches_full_forward_argmax(model):
  cfg, params = model
  prompt, mask = gen.left_pad(PROMPTS)
  out = gen.generate(params, prompt, mask, jax.random.PRNGKey(0), model_cfg=cfg,
                     sampling=gen.SamplingConfig(max_new_tokens=NEW, temperature=0.0))
  assert out.tokens.shape == out.log_probs.shape == out.mask.shape == (len(PROMPTS), NEW)
  for row, p in enumerate(PROMPTS):
    want_tokens, want_log_probs = reference_greedy(params, cfg, p, NEW)
    assert out.tokens[row].tolist() == want_tokens, f"row {row}"
    np.testing.assert_allclose(out.log_probs[row], want_log_probs, atol=1e-4)
  assert out.mask.tolist() == [[1] * NEW] * len(PROMPTS)


def test_stop_tokens_min_length_and_padding(model):
  cfg, params = model
  prompt, mask = gen.left_pad(PROMPTS)
  greedy = gen.generate(params, prompt, mask, jax.random.PRNGKey(0), model_cfg=cfg,
                        sampling=gen.SamplingConfig(max_new_tokens=NEW, temperature=0.0))
  stop = int(greedy.tokens[0, 2])  # row 0 emits it at step 2 (or earlier)
  out = gen.generate(params, prompt, mask, jax.random.PRNGKey(0), model_cfg=cfg,
                     sampling=gen.SamplingConfig(max_new_tokens=NEW, temperature=0.0,
                                                 stop_tokens=(stop,), pad_id=63))
  for row in range(len(PROMPTS)):
    tokens = greedy.tokens[row].tolist()
    length = tokens.index(stop) + 1 if stop in tokens else NEW
    assert out.mask[row].tolist() == [1] * length + [0] * (NEW - length)
    assert out.tokens[row].tolist() == tokens[:length] + [63] * (NEW - length)
    assert np.all(np.asarray(out.log_probs[row, length:]) == 0)
  # min_new_tokens forbids the stop token early, so row 0 cannot stop before step 3.
  forced = gen.generate(params, prompt, mask, jax.random.PRNGKey(0), model_cfg=cfg,
                        sampling=gen.SamplingConfig(max_new_tokens=NEW, temperature=0.0,
                                                    stop_tokens=(stop,), min_new_tokens=3))
  assert stop not in forced.tokens[0, :3].tolist()
  assert int(forced.mask[0].sum()) >= 3


def test_sampling_is_reproducible_and_top_k_one_is_greedy():
  cfg = mcfg.tiny_transformer(vocab_size=64, d_model=32, mlp_dim=64)
  params = lm.init(jax.random.PRNGKey(1), cfg)
  prompt, mask = gen.left_pad(PROMPTS)
  run = lambda sampling, seed: gen.generate(params, prompt, mask, jax.random.PRNGKey(seed),
                                            model_cfg=cfg, sampling=sampling)
  hot = gen.SamplingConfig(max_new_tokens=NEW, temperature=1.5)
  a, b, c = run(hot, 0), run(hot, 0), run(hot, 1)
  assert a.tokens.tolist() == b.tokens.tolist()
  assert a.tokens.tolist() != c.tokens.tolist()
  greedy = run(gen.SamplingConfig(max_new_tokens=NEW, temperature=0.0), 0)
  top1 = run(gen.SamplingConfig(max_new_tokens=NEW, temperature=1.5, top_k=1), 3)
  assert top1.tokens.tolist() == greedy.tokens.tolist()
  # Behaviour log-probs are the tempered policy's, whatever the filter.
  forward = lm.forward(params, jnp.concatenate([prompt, top1.tokens], axis=1), cfg,
                       positions=gen.prompt_positions(jnp.concatenate(
                           [mask, top1.mask], axis=1)),
                       segment_ids=jnp.concatenate([mask, top1.mask], axis=1))[0]
  p = prompt.shape[1]
  want = sampling.policy_log_probs(forward[:, p - 1:-1], top1.tokens, 1.5)
  np.testing.assert_allclose(top1.log_probs, want, atol=1e-4)


def test_top_k_and_top_p_filters():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
  kept = lambda x: np.isfinite(np.asarray(x))[0].tolist()
  assert kept(sampling.filter_top_k(logits, 2)) == [True, True, False, False]
  assert kept(sampling.filter_top_p(logits, 0.5)) == [True, False, False, False]
  assert kept(sampling.filter_top_p(logits, 0.7)) == [True, True, False, False]
  assert kept(sampling.filter_top_p(logits, 0.81)) == [True, True, True, False]
  draws = jax.vmap(lambda k: sampling.choose_tokens(k, logits, temperature=1.0, top_p=0.7))(
      jax.random.split(jax.random.PRNGKey(0), 2000))
  frequency_of_first = float(jnp.mean(draws == 0))
  assert set(np.unique(draws).tolist()) == {0, 1}
  assert abs(frequency_of_first - 0.5 / 0.8) < 0.05


def test_greedy_tokens_take_the_first_maximum_like_argmax():
  logits = jnp.array([[0.0, 2.0, 2.0, 1.0], [-jnp.inf] * 4, [1.0, jnp.nan, 3.0, jnp.nan],
                      [5.0, 4.0, 3.0, 5.0]])
  chosen = sampling.greedy_tokens(logits)
  chex.assert_type(chosen, jnp.int32)
  assert chosen.tolist() == jnp.argmax(logits, axis=-1).tolist() == [1, 0, 1, 0]


def test_bad_prompts_raise_clear_errors():
  cfg = mcfg.tiny_transformer(vocab_size=64, d_model=32, mlp_dim=64)
  params = lm.init(jax.random.PRNGKey(1), cfg)
  prompt, mask = gen.left_pad(PROMPTS)
  greedy = gen.SamplingConfig(max_new_tokens=NEW, temperature=0.0)
  with pytest.raises(ValueError, match="cache_len"):
    gen.generate(params, prompt, mask, jax.random.PRNGKey(0), model_cfg=cfg, sampling=greedy,
                 cache_len=prompt.shape[1] + NEW - 1)
  with pytest.raises(ValueError, match="non-empty"):
    gen.generate(params, prompt[:0], mask[:0], jax.random.PRNGKey(0), model_cfg=cfg,
                 sampling=greedy)
  with pytest.raises(ValueError, match="left-padded"):
    gen.generate(params, prompt[:, ::-1], mask[:, ::-1], jax.random.PRNGKey(0),
                 model_cfg=cfg, sampling=greedy)
  with pytest.raises(ValueError, match="longer than 3 slots"):
    gen.left_pad(PROMPTS, width=3)
  with pytest.raises(ValueError, match="max_new_tokens"):
    gen.SamplingConfig(max_new_tokens=0)


def test_generate_bench_splits_rows_over_two_host_devices_with_the_same_tokens():
  """bench/generate.py on two XLA host devices: each decodes its rows in its own loop and
  the greedy tokens still match Hugging Face's (its last column)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
  env = dict(os.environ, XLA_FLAGS=flags.strip())
  result = subprocess.run(
      [sys.executable, "bench/generate.py", "--batches=2", "--new_tokens=17", "--repeats=1"],
      cwd=root, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "ours on 2 device(s)" in result.stdout
  rows = [line for line in result.stdout.splitlines() if line.startswith("| llama")
          or line.startswith("| mamba2")]
  assert len(rows) == 2 and all(row.rstrip().endswith("| 100% |") for row in rows), rows


def test_vocab_limit_bans_ids_the_tokenizer_lacks():
  """A model whose embedding is wider than its tokenizer (span sentinels after the
  tokenizer's ids) never generates those ids."""
  limited = gen.SamplingConfig(max_new_tokens=2, vocab_limit=6)
  logits = jnp.arange(8, dtype=jnp.float32)[None]
  banned = limited.ban(logits, jnp.zeros((), jnp.int32))
  assert int(jnp.argmax(banned)) == 5 and bool(jnp.all(jnp.isneginf(banned[0, 6:])))
  unchanged = gen.SamplingConfig(max_new_tokens=2, vocab_limit=8)
  np.testing.assert_array_equal(unchanged.ban(logits, jnp.zeros((), jnp.int32)), logits)
