"""Tiny mlx-lm models built from their configs (nothing downloaded), and a tiny data set.

Every architecture here is mlx-lm's own model code with hidden sizes of 32,
two layers and a 64-token vocabulary, so a whole ``mlx_lm.tuner.trainer.train``
run takes a second on a CPU.

Example:
    >>> model = build("llama")
    >>> model(mx.array([[1, 2, 3]])).shape
    (1, 3, 64)
"""

from __future__ import annotations

import importlib

import mlx.core as mx
import mlx.nn as nn

__all__ = ["CONFIGS", "DENSE", "MOE", "build", "lora", "qlora", "token_dataset"]

VOCAB = 64
_COMMON = {"hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64,
           "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
           "vocab_size": VOCAB}

CONFIGS = {
    "llama": {"model_type": "llama", **_COMMON, "tie_word_embeddings": False},
    "qwen3": {"model_type": "qwen3", **_COMMON, "head_dim": 8, "max_position_embeddings": 128,
              "rope_theta": 10000.0,
              "tie_word_embeddings": True},
    "gemma3_text": {"model_type": "gemma3_text", **_COMMON, "head_dim": 8,
                    "query_pre_attn_scalar": 8, "sliding_window": 16,
                    "sliding_window_pattern": 2, "max_position_embeddings": 128},
    "phi3": {"model_type": "phi3", **_COMMON},
    "mixtral": {"model_type": "mixtral", **_COMMON, "num_local_experts": 4,
                "num_experts_per_tok": 2},
    "qwen3_moe": {"model_type": "qwen3_moe", **_COMMON, "num_experts": 4,
                  "num_experts_per_tok": 2, "decoder_sparse_step": 1, "mlp_only_layers": [],
                  "moe_intermediate_size": 32, "head_dim": 8, "rope_theta": 10000.0,
                  "tie_word_embeddings": False, "max_position_embeddings": 128,
                  "norm_topk_prob": True},
    "deepseek_v3": {"model_type": "deepseek_v3", **_COMMON, "moe_intermediate_size": 32,
                    "n_shared_experts": 1, "n_routed_experts": 4, "num_experts_per_tok": 2,
                    "kv_lora_rank": 16, "q_lora_rank": 16, "qk_rope_head_dim": 8,
                    "v_head_dim": 8, "qk_nope_head_dim": 8, "n_group": 1, "topk_group": 1,
                    "first_k_dense_replace": 1, "max_position_embeddings": 128},
}
DENSE = ("llama", "qwen3", "gemma3_text", "phi3")
MOE = ("mixtral", "qwen3_moe", "deepseek_v3")


def build(name: str, seed: int = 0) -> nn.Module:
    """mlx-lm's model ``name`` from its tiny config, seeded, parameters evaluated."""
    module = importlib.import_module(f"mlx_lm.models.{name}")
    mx.random.seed(seed)
    model = module.Model(module.ModelArgs.from_dict(CONFIGS[name]))
    mx.eval(model.parameters())
    return model


def lora(model: nn.Module, rank: int = 4) -> nn.Module:
    """Freeze ``model`` and put LoRA adapters on every layer (mlx-lm's own function)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model.freeze()
    linear_to_lora_layers(model, len(model.layers), {"rank": rank, "scale": 20.0, "dropout": 0.0})
    mx.eval(model.parameters())
    return model


def qlora(model: nn.Module, rank: int = 4) -> nn.Module:
    """4-bit quantised weights (``nn.quantize``, group size 32), then LoRA: QLoRA."""
    nn.quantize(model, group_size=32, bits=4)
    return lora(model, rank)


def token_dataset(count: int = 16, length: int = 12, seed: int = 0) -> list:
    """``count`` sequences of ``length`` tokens with a pattern to learn, as mlx-lm's
    ``iterate_batches`` reads them: ``(tokens, offset)`` pairs."""
    mx.random.seed(seed)
    starts = mx.random.randint(0, VOCAB, (count,)).tolist()
    return [([(start + 3 * i) % VOCAB for i in range(length)], 0) for start in starts]
