"""Real mlx-lm architectures built from a config, with no weights and no download.

Tiny sizes (hidden 64, 2 layers, vocabulary 100) so that each builds and steps
in well under a second on a CPU. :func:`build` gives a model by name:

* dense: ``llama``, ``qwen3`` (tied embeddings), ``gemma3_text``, ``phi3``;
* mixture of experts: ``mixtral``, ``qwen3_moe``, ``deepseek_v3`` (3-D
  ``SwitchLinear`` expert stacks, router gates, MLA's 3-D ``MultiLinear``);
* ``llama+lora``: frozen, then ``linear_to_lora_layers`` (only the adapters train);
* ``mixtral+lora``: the same on a MoE model (``LoRASwitchLinear`` stacks);
* ``llama+qlora``: ``nn.quantize`` (4 bits), then LoRA.

Example:
    >>> model = build("llama")                          # doctest: +SKIP
"""

from __future__ import annotations

import importlib

import mlx.core as mx
import mlx.nn as nn

_BASE = dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
             num_key_value_heads=2, rms_norm_eps=1e-5, vocab_size=100)
VOCAB = _BASE["vocab_size"]

CONFIGS = {
    "llama": dict(_BASE, model_type="llama", tie_word_embeddings=False),
    "qwen3": dict(_BASE, model_type="qwen3", head_dim=16, max_position_embeddings=128,
                  rope_theta=10000.0, tie_word_embeddings=True),
    "gemma3_text": dict(_BASE, model_type="gemma3_text", head_dim=16, rms_norm_eps=1e-6,
                        sliding_window=32, sliding_window_pattern=2),
    "phi3": dict(_BASE, model_type="phi3", num_key_value_heads=4),
    "mixtral": dict(_BASE, model_type="mixtral", num_local_experts=4, num_experts_per_tok=2),
    "qwen3_moe": dict(_BASE, model_type="qwen3_moe", moe_intermediate_size=32, head_dim=16,
                      num_experts=4, num_experts_per_tok=2, decoder_sparse_step=1,
                      mlp_only_layers=[], max_position_embeddings=128, rope_theta=10000.0,
                      tie_word_embeddings=False, norm_topk_prob=True),
    "deepseek_v3": dict(_BASE, model_type="deepseek_v3", num_key_value_heads=4,
                        moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2,
                        n_shared_experts=1, first_k_dense_replace=1, kv_lora_rank=16,
                        q_lora_rank=24, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16,
                        n_group=1, topk_group=1, rms_norm_eps=1e-6, max_position_embeddings=128,
                        rope_theta=10000.0, moe_layer_freq=1, routed_scaling_factor=1.0),
}
DENSE = ("llama", "qwen3", "gemma3_text", "phi3")
MOE = ("mixtral", "qwen3_moe", "deepseek_v3")
ADAPTED = ("llama+lora", "mixtral+lora", "llama+qlora")
ALL = DENSE + MOE + ADAPTED

LORA = {"rank": 4, "scale": 20.0, "dropout": 0.0}


def build(name: str) -> nn.Module:
    """A seeded model by name (see the module docstring)."""
    base, _, adapter = name.partition("+")
    mx.random.seed(0)
    module = importlib.import_module(f"mlx_lm.models.{base}")
    model = module.Model(module.ModelArgs.from_dict(CONFIGS[base]))
    if adapter == "qlora":
        return qlora(model)
    if adapter == "lora":
        return lora(model)
    mx.eval(model.parameters())
    return model


def lora(model: nn.Module) -> nn.Module:
    """Freeze ``model`` and put LoRA adapters on every layer (mlx-lm's own function)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model.freeze()
    linear_to_lora_layers(model, len(model.layers), LORA)
    mx.eval(model.parameters())
    return model


def qlora(model: nn.Module) -> nn.Module:
    """4-bit quantised weights (``nn.quantize``, group size 32), then LoRA: QLoRA."""
    nn.quantize(model, group_size=32, bits=4)
    return lora(model)


def token_dataset(count: int = 16, length: int = 12, seed: int = 0) -> list:
    """``count`` sequences of ``length`` tokens with a pattern to learn, as mlx-lm's
    ``iterate_batches`` reads them: ``(tokens, offset)`` pairs."""
    mx.random.seed(seed)
    starts = mx.random.randint(0, VOCAB, (count,)).tolist()
    return [([(start + 3 * i) % VOCAB for i in range(length)], 0) for start in starts]


def tokens(batch: int = 2, length: int = 8) -> mx.array:
    """A fixed batch of token ids for these models' vocabulary."""
    return (mx.arange(batch * length).reshape(batch, length) * 7) % VOCAB


def loss_fn(model: nn.Module, x: mx.array) -> mx.array:
    """Next-token cross-entropy on ``x``."""
    logits = model(x[:, :-1])
    return nn.losses.cross_entropy(logits, x[:, 1:], reduction="mean")
