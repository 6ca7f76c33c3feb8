"""Turn a HuggingFace config (a plain dict) into the summary the architecture viewer shows.

Pure Python on purpose: the web process renders previews from this without importing torch.
"""

from __future__ import annotations

from typing import Any

# Families whose MLP is gated (gate, up and down projections) rather than up and down only.
GATED_MLP_FAMILIES = frozenset(
    {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "phi3",
        "olmo",
        "olmo2",
        "granite",
        "cohere",
        "starcoder2x",
    }
)

# Families with a learned position-embedding table (the others use rotary or ALiBi positions).
LEARNED_POSITION_FAMILIES = frozenset({"gpt2", "gpt_bigcode", "opt", "codegen"})


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Multimodal configs (gemma3) keep the language model's settings under text_config."""
    inner = config.get("text_config")
    if isinstance(inner, dict):
        merged = dict(inner)
        merged.setdefault("model_type", config.get("model_type"))
        merged["architectures"] = config.get("architectures")
        return merged
    return config


def _first(config: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        value = config.get(key)
        if value is not None:
            return value
    return default


def rope_theta(config: dict[str, Any]) -> float | None:
    params = config.get("rope_parameters")
    if isinstance(params, dict) and params.get("rope_theta") is not None:
        return params["rope_theta"]
    if isinstance(params, dict) and isinstance(params.get("full_attention"), dict):
        return params["full_attention"].get("rope_theta")
    return _first(config, "rope_theta", "rotary_emb_base")


def dimensions(config: dict[str, Any]) -> dict[str, Any]:
    """The numbers every view needs, whatever each family calls them."""
    cfg = text_config(config)
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model", default=0)
    heads = _first(cfg, "num_attention_heads", "n_head", "num_heads", default=0)
    kv_heads = _first(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    # Falcon's original layout shares one key/value head across all heads whatever num_kv_heads says.
    if cfg.get("multi_query") and not cfg.get("new_decoder_architecture"):
        kv_heads = 1
    if kv_heads is None:
        kv_heads = heads
    intermediate = _first(cfg, "intermediate_size", "n_inner", "ffn_hidden_size")
    if intermediate is None:
        intermediate = 4 * hidden  # gpt2 (n_inner null), falcon and phi-1 use 4x
    experts = _first(cfg, "num_local_experts", "num_experts", default=0) or 0
    return {
        "model_type": cfg.get("model_type") or config.get("model_type") or "unknown",
        "architectures": config.get("architectures") or [],
        "num_layers": _first(cfg, "num_hidden_layers", "n_layer", "num_layers", default=0),
        "hidden_size": hidden,
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": _first(cfg, "head_dim", default=(hidden // heads) if heads else 0),
        "vocab_size": _first(cfg, "vocab_size", "padded_vocab_size", default=0),
        "max_position": _first(
            cfg, "max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length"
        ),
        "intermediate_size": intermediate,
        "num_experts": experts,
        "experts_per_token": _first(cfg, "num_experts_per_tok", "num_experts_per_token"),
        "tied_embeddings": bool(
            _first(config, "tie_word_embeddings", default=_first(cfg, "tie_word_embeddings", default=True))
        ),
        "rope_theta": rope_theta(cfg),
        "dtype": _first(config, "dtype", "torch_dtype", default=_first(cfg, "dtype", "torch_dtype")),
        "gated_mlp": (cfg.get("model_type") or config.get("model_type")) in GATED_MLP_FAMILIES,
    }


def estimate_parameters(config: dict[str, Any]) -> int:
    """Language-model parameters from the config alone (a multimodal model's vision tower is not
    counted); used only when the Hub has no safetensors metadata."""
    d = dimensions(config)
    hidden, head_dim = d["hidden_size"], d["head_dim"]
    attention = hidden * d["num_heads"] * head_dim * 2 + hidden * d["num_kv_heads"] * head_dim * 2
    mlp = hidden * d["intermediate_size"] * (3 if d["gated_mlp"] else 2)
    if d["num_experts"]:
        mlp = mlp * d["num_experts"] + hidden * d["num_experts"]
    per_layer = attention + mlp + 2 * hidden
    embedding = d["vocab_size"] * hidden
    output = 0 if d["tied_embeddings"] else embedding
    positions = (d["max_position"] or 0) * hidden if d["model_type"] in LEARNED_POSITION_FAMILIES else 0
    return embedding + positions + d["num_layers"] * per_layer + hidden + output


def layer_list(config: dict[str, Any]) -> list[dict[str, str]]:
    d = dimensions(config)
    hidden, vocab = d["hidden_size"], d["vocab_size"]
    kv = "" if d["num_kv_heads"] == d["num_heads"] else f", {d['num_kv_heads']} KV heads"
    attention = f"{d['num_heads']} heads × {d['head_dim']} dim{kv}"
    mlp = f"{hidden} → {d['intermediate_size']} → {hidden}" + (" (gated)" if d["gated_mlp"] else "")
    if d["num_experts"]:
        mlp += f"; {d['num_experts']} experts, {d['experts_per_token']} active per token"
    layers = [{"name": "Embedding", "kind": "embedding", "detail": f"{vocab:,} × {hidden:,}"}]
    for index in range(d["num_layers"]):
        layers.append(
            {"name": f"TransformerBlock_{index}", "kind": "block", "attention": attention, "mlp": mlp}
        )
    layers.append({"name": "FinalNorm", "kind": "norm", "detail": f"{hidden:,}"})
    tied = "tied to the embedding" if d["tied_embeddings"] else "separate weights"
    layers.append({"name": "Output", "kind": "output", "detail": f"{hidden:,} × {vocab:,} ({tied})"})
    return layers


def summarize(config: dict[str, Any], hook_points: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the architecture modal renders, JSON-serializable."""
    d = dimensions(config)
    ratio = d["intermediate_size"] / d["hidden_size"] if d["hidden_size"] else None
    return {
        **d,
        "mlp_ratio": round(ratio, 2) if ratio else None,
        "decoder_only": True,
        "layers": layer_list(config),
        "hook_points": hook_points or {},
    }
