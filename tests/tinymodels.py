"""Tiny random causal LMs of every supported family, with a real BPE tokenizer, saved the way the
Hub stores them (config.json, model.safetensors, tokenizer files)."""
from __future__ import annotations

import json
from pathlib import Path

VOCAB = 512
COMMON = dict(vocab_size=VOCAB, max_position_embeddings=256)
# hidden 128 and intermediate 256 keep every linear layer a multiple of the 64-element
# quantization groups (bitsandbytes 4-bit blocks and HQQ's group size).
LLAMA_LIKE = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, **COMMON)

FAMILIES: dict[str, dict] = {
    "llama": dict(LLAMA_LIKE, tie_word_embeddings=False),
    "mistral": dict(LLAMA_LIKE, sliding_window=None),
    "mixtral": dict(LLAMA_LIKE, num_local_experts=4, num_experts_per_tok=2),
    "qwen2": dict(LLAMA_LIKE),
    "qwen3": dict(LLAMA_LIKE, head_dim=32),
    "gemma": dict(LLAMA_LIKE, head_dim=32),
    "gemma2": dict(LLAMA_LIKE, head_dim=32),
    "gemma3_text": dict(LLAMA_LIKE, head_dim=32, sliding_window=64),
    "phi": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=4, **COMMON),
    "phi3": dict(LLAMA_LIKE, pad_token_id=0),
    "gpt2": dict(n_embd=128, n_layer=2, n_head=4, n_positions=256, vocab_size=VOCAB),
    "gpt_neox": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                     num_attention_heads=4, **COMMON),
    "falcon": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                   new_decoder_architecture=False, multi_query=True, vocab_size=VOCAB),
}

_TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Mechanistic interpretability studies the internal computations of neural networks.",
    "Residual streams carry information between transformer blocks.",
    "Attention heads move information between token positions.",
    "Sparse autoencoders decompose activations into interpretable features.",
] * 20


def build_tokenizer(target: Path) -> None:
    """A real byte-level BPE tokenizer trained with the tokenizers library."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_TRAINING_TEXT, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>")
    fast.save_pretrained(target)


def build_model(family: str, target: Path, seed: int = 0, **overrides) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.for_model(family, **{**FAMILIES[family], **overrides})
    model = AutoModelForCausalLM.from_config(config)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    build_tokenizer(target)
    return target


def build_non_causal(target: Path) -> Path:
    """A BERT encoder: a real transformers model that is not a causal LM."""
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=128)).save_pretrained(target)
    return target


def write_config_only(target: Path, config: dict) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config))
    return target
