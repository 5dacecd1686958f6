"""Distillation: divergences, a student's KL to a fixed teacher falls, sequence-level KD."""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from model import config as mcfg
from model import lm
from train import distill
from model import generate as gen
from train import state as state_lib

VOCAB, SEQ, BATCH = 64, 16, 8
TEACHER = mcfg.tiny_transformer(vocab_size=VOCAB, d_model=48, mlp_dim=96, init_std=0.3)
STUDENT = mcfg.tiny_mamba(vocab_size=VOCAB, d_model=32, mlp_dim=64, chunk_size=8)


def lm_batch(rng):
  tokens = jax.random.randint(rng, (BATCH, SEQ), 0, VOCAB)
  return {"tokens": tokens, "targets": jnp.roll(tokens, -1, axis=1),
          "segment_ids": jnp.ones((BATCH, SEQ), jnp.int32),
          "positions": jnp.broadcast_to(jnp.arange(SEQ), (BATCH, SEQ)),
          "loss_mask": jnp.ones((BATCH, SEQ), jnp.float32).at[:, -1].set(0.0)}


def test_top_k_kl_with_k_equal_to_vocab_is_the_full_kl():
  student, teacher = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, VOCAB)) * 2.0
  full = distill.forward_kl(student, teacher)
  np.testing.assert_allclose(distill.top_k_kl(student, teacher, VOCAB), full, rtol=1e-5,
                             atol=1e-6)
  assert np.all(np.asarray(distill.top_k_kl(student, teacher, 4)) >= 0)
  assert np.all(np.asarray(distill.reverse_kl(student, teacher)) >= 0)
  np.testing.assert_allclose(distill.forward_kl(teacher, teacher), 0.0, atol=1e-5)


@pytest.mark.parametrize("divergence, top_k, alpha", [("forward_kl", 0, 0.0),
                                                      ("reverse_kl", 0, 0.0),
                                                      ("top_k_kl", 8, 0.3)])
def test_student_kl_to_a_fixed_teacher_falls(divergence, top_k, alpha):
  """A Mamba-2 student learns a differently sized transformer teacher."""
  teacher_params = lm.init(jax.random.PRNGKey(0), TEACHER)
  teacher_embed = np.asarray(teacher_params["embed"])
  optimizer = optax.adam(1e-2)
  state = state_lib.create(distill.DistillState, lm.init(jax.random.PRNGKey(1), STUDENT),
                           optimizer, jax.random.PRNGKey(2), teacher_params=teacher_params)
  config = distill.DistillConfig(divergence=divergence, top_k=top_k, hard_label_weight=alpha)
  step = jax.jit(distill.make_distill_step(STUDENT, TEACHER, optimizer, config),
                 donate_argnums=0)
  batch = lm_batch(jax.random.PRNGKey(3))
  kls = []
  for _ in range(30):
    state, metrics = step(state, batch)
    kls.append(float(metrics["distill"]))
  print(f"{divergence}: KL {kls[0]:.3f} → {kls[-1]:.3f}")
  assert kls[-1] < 0.5 * kls[0], kls
  # The teacher rides along in the donated state, unchanged (its input buffers were donated).
  np.testing.assert_array_equal(state.teacher_params["embed"], teacher_embed)


def test_sequence_level_distillation_on_teacher_samples():
  teacher_params = lm.init(jax.random.PRNGKey(0), TEACHER)
  prompt, mask = gen.left_pad([[5, 6, 7], [9], [1, 2, 3, 4]], width=4)
  samples = gen.generate(teacher_params, prompt, mask, jax.random.PRNGKey(1),
                         model_cfg=TEACHER,
                         sampling=gen.SamplingConfig(max_new_tokens=6, temperature=1.0,
                                                     stop_tokens=(0,)))
  batch = distill.sequence_batch(prompt, mask, samples.tokens, samples.mask, pad_id=0)
  # The loss falls exactly on the sampled tokens (targets = the teacher's samples).
  learned = np.asarray(batch["targets"])[np.asarray(batch["loss_mask"]) > 0]
  sampled = np.asarray(samples.tokens)[np.asarray(samples.mask) > 0]
  assert learned.tolist() == sampled.tolist()
  optimizer = optax.adam(1e-2)
  state = state_lib.create(distill.DistillState, lm.init(jax.random.PRNGKey(1), STUDENT),
                           optimizer, jax.random.PRNGKey(2), teacher_params=teacher_params)
  step = jax.jit(distill.make_distill_step(STUDENT, TEACHER, optimizer,
                                           distill.DistillConfig(hard_label_weight=1.0)),
                 donate_argnums=0)
  losses = []
  for _ in range(15):
    state, metrics = step(state, batch)
    losses.append(float(metrics["cross_entropy"]))
  assert losses[-1] < 0.5 * losses[0], losses


def test_bad_distillation_configs_raise():
  with pytest.raises(ValueError, match="vocab_size"):
    distill.make_distill_step(STUDENT, TEACHER.replace(vocab_size=VOCAB * 2), optax.sgd(0.1),
                              distill.DistillConfig())
  with pytest.raises(ValueError, match="top_k"):
    distill.DistillConfig(divergence="top_k_kl")
  with pytest.raises(ValueError, match="unknown distillation divergence"):
    distill.DistillConfig(divergence="js")
