"""Tiny random causal LMs of every supported family, with a real BPE tokenizer, saved the way the
Hub stores them (config.json, model.safetensors, tokenizer files)."""

from __future__ import annotations

from pathlib import Path

VOCAB = 512
COMMON = dict(vocab_size=VOCAB, max_position_embeddings=256)
# hidden 128 and intermediate 256 keep every linear layer a multiple of the 64-element
# quantization groups (bitsandbytes 4-bit blocks and HQQ's group size).
LLAMA_LIKE = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    **COMMON,
)

FAMILIES: dict[str, dict] = {
    "llama": dict(LLAMA_LIKE, tie_word_embeddings=False),
    "mistral": dict(LLAMA_LIKE, sliding_window=None),
    "mixtral": dict(LLAMA_LIKE, num_local_experts=4, num_experts_per_tok=2),
    "qwen2": dict(LLAMA_LIKE),
    "qwen3": dict(LLAMA_LIKE, head_dim=32),
    "gemma": dict(LLAMA_LIKE, head_dim=32),
    "gemma2": dict(LLAMA_LIKE, head_dim=32),
    "gemma3_text": dict(LLAMA_LIKE, head_dim=32, sliding_window=64),
    # Gemma 3 from 4B up is multimodal: a causal LM around the text decoder, plus a vision tower.
    "gemma3": dict(
        text_config=dict(LLAMA_LIKE, head_dim=32, sliding_window=64),
        vision_config=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        mm_tokens_per_image=4,
        image_token_index=500,
        boi_token_index=501,
        eoi_token_index=502,
    ),
    "phi": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, **COMMON),
    "phi3": dict(LLAMA_LIKE, pad_token_id=0),
    "gpt2": dict(n_embd=128, n_layer=2, n_head=4, n_positions=256, vocab_size=VOCAB),
    "gpt_neox": dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, **COMMON
    ),
    "falcon": dict(
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        new_decoder_architecture=False,
        multi_query=True,
        vocab_size=VOCAB,
    ),
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
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_TRAINING_TEXT, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
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

    BertModel(
        BertConfig(
            vocab_size=VOCAB,
            hidden_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=128,
        )
    ).save_pretrained(target)
    return target


REMOTE_CONFIG = """
from transformers import PretrainedConfig


class TinyDecoderConfig(PretrainedConfig):
    model_type = "tiny_decoder"

    def __init__(
        self, vocab_size=512, hidden_size=128, num_hidden_layers=2, block_style="standard", **kwargs
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.block_style = block_style
        super().__init__(**kwargs)
"""

REMOTE_MODEL = """
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .configuration_tiny_decoder import TinyDecoderConfig


class Mixer(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x):
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        if config.block_style == "standard":
            self.attention = Mixer(config.hidden_size)
            self.feed_forward = Mixer(config.hidden_size)
        else:  # a block whose parts have names nobody could guess
            self.left = Mixer(config.hidden_size)
            self.right = Mixer(config.hidden_size)

    def forward(self, x):
        parts = list(self.children())
        x = x + parts[0](x)
        return x + parts[1](x)


class TinyDecoderForCausalLM(PreTrainedModel):
    config_class = TinyDecoderConfig
    base_model_prefix = "decoder"

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.num_hidden_layers)])
        self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self):
        return self.head

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x)
        return CausalLMOutput(logits=self.head(x))
"""


def build_remote_code_model(target: Path, block_style: str = "standard") -> Path:
    """A decoder-only family transformers has never heard of, shipped as repository code."""
    import importlib.util
    import sys

    target.mkdir(parents=True, exist_ok=True)
    (target / "configuration_tiny_decoder.py").write_text(REMOTE_CONFIG)
    (target / "modeling_tiny_decoder.py").write_text(REMOTE_MODEL)
    package = f"tiny_decoder_{block_style}"
    spec = importlib.util.spec_from_file_location(
        package, target / "__init__.py", submodule_search_locations=[str(target)]
    )
    (target / "__init__.py").write_text("")
    assert spec is not None and spec.loader is not None  # a file location always has both
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    config_mod = importlib.import_module(f"{package}.configuration_tiny_decoder")
    model_mod = importlib.import_module(f"{package}.modeling_tiny_decoder")
    config = config_mod.TinyDecoderConfig(block_style=block_style)
    config.auto_map = {
        "AutoConfig": "configuration_tiny_decoder.TinyDecoderConfig",
        "AutoModelForCausalLM": "modeling_tiny_decoder.TinyDecoderForCausalLM",
    }
    config.architectures = ["TinyDecoderForCausalLM"]
    model_mod.TinyDecoderForCausalLM(config).save_pretrained(target)
    (target / "__init__.py").unlink()
    build_tokenizer(target)
    return target
