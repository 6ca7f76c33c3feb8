"""Every format for real on the CPU, the fallback chains, and the architecture view of every
supported family."""

from __future__ import annotations

import pytest
import torch

from models_app.ml import architecture, hooks, loading
from models_app.ml import quantization as q
from tests.tinymodels import FAMILIES


@pytest.mark.slow
def test_it_measures_smaller_footprints_for_more_compact_formats(model_sources):
    folder = model_sources["llama"]
    footprints = {}
    for fmt in q.FORMATS:
        loaded = loading.load(folder, fmt, device="cpu")
        assert loaded.effective_format == fmt, loaded.fallback_reason
        footprints[fmt] = loaded.footprint_bytes
        logits = loaded.model(torch.tensor([[1, 2, 3, 4]])).logits
        assert logits.shape == (1, 4, 512) and torch.isfinite(logits.float()).all()
    assert footprints["q2"] < footprints["q4"] < footprints["q8"] < footprints["fp16"] < footprints["fp32"]


@pytest.mark.slow
def test_it_uses_real_quantized_layers(model_sources):
    from bitsandbytes.nn import Linear4bit, Linear8bitLt
    from hqq.core.quantize import HQQLinear

    kinds = {"q8": Linear8bitLt, "q4": Linear4bit, "q2": HQQLinear}
    for fmt, kind in kinds.items():
        model = loading.load(model_sources["qwen2"], fmt, device="cpu").model
        mlp = model.model.layers[0].mlp
        assert isinstance(mlp.down_proj, kind), fmt
    q4 = loading.load(model_sources["qwen2"], "q4", device="cpu").model
    weight = q4.model.layers[0].mlp.down_proj.weight
    assert weight.quant_state.quant_type == "nf4" and weight.quant_state.nested  # double quantization
    q2 = loading.load(model_sources["qwen2"], "q2", device="cpu").model
    layer = q2.model.layers[0].mlp.down_proj
    assert layer.meta["nbits"] == 2 and layer.meta["group_size"] == 64


def test_it_counts_the_unquantized_parameters_on_disk(model_sources):
    from transformers import AutoModelForCausalLM

    for family in ("llama", "gpt2", "mixtral"):
        expected = AutoModelForCausalLM.from_pretrained(model_sources[family]).num_parameters()
        assert loading.count_parameters_on_disk(model_sources[family]) == expected


def test_it_saves_and_reloads_a_4bit_copy(model_sources, tmp_path):
    from bitsandbytes.nn import Linear4bit

    loaded = loading.load(model_sources["mistral"], "q4", device="cpu")
    target = loading.save_quantized(loaded, tmp_path / "3_q4")
    assert target.exists() and not (tmp_path / "3_q4.partial").exists()
    again = loading.load(model_sources["mistral"], "q4", device="cpu", quantized_dir=target)
    assert isinstance(again.model.model.layers[1].mlp.up_proj, Linear4bit)
    ids = torch.tensor([[5, 6, 7]])
    assert torch.allclose(loaded.model(ids).logits, again.model(ids).logits, atol=1e-4)


def test_it_falls_back_to_a_supported_format(model_sources):
    """The injected failure stands in for a device without the format's kernels, which this
    CPU machine cannot produce (bitsandbytes and hqq both run here)."""
    attempts = []

    def loader(path, fmt, device, trust, quantized_dir):
        attempts.append(fmt)
        if fmt in ("q2", "q4"):
            raise RuntimeError(f"{fmt} backend not supported on this device")
        return loading.load_exact(path, fmt, device, trust, quantized_dir)

    loaded = loading.load(model_sources["llama"], "q2", device="cpu", loader=loader)
    assert attempts == ["q2", "q4", "q8"]
    assert loaded.effective_format == "q8"
    assert loaded.fallback_reason.startswith("Q2 not available on cpu: q2 backend")
    assert "Q4 not available on cpu: q4 backend" in loaded.fallback_reason


def test_it_falls_back_to_a_more_compact_format_on_out_of_memory(model_sources):
    """Out-of-memory injected: the CPU machine has far more memory than a tiny model needs."""

    def loader(path, fmt, device, trust, quantized_dir):
        if fmt in ("fp32", "fp16"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return loading.load_exact(path, fmt, device, trust, quantized_dir)

    loaded = loading.load(model_sources["llama"], "fp32", device="cpu", loader=loader)
    assert loaded.effective_format == "q8"
    assert loaded.fallback_reason == "FP32, FP16 out of memory on cpu"


def test_it_does_not_label_unquantized_falcon_as_quantized(model_sources):
    loaded = loading.load(model_sources["falcon"], "q4", device="cpu")
    assert loaded.effective_format == "fp16"
    assert loaded.fallback_reason == (
        "Q4, Q8 not available on cpu: bitsandbytes found no linear layer it can quantize in FalconForCausalLM"
    )
    q2 = loading.load(model_sources["falcon"], "q2", device="cpu")
    assert q2.effective_format == "q2" and loading.quantized_layer_count(q2.model) > 0


def test_it_raises_a_clear_error_when_nothing_loads(model_sources):
    def loader(*args):
        raise ImportError("no backend")

    with pytest.raises(loading.LoadError, match="No format could be loaded"):
        loading.load(model_sources["llama"], "q4", device="cpu", loader=loader)


def test_it_reraises_real_bugs_instead_of_falling_back(model_sources):
    def loader(*args):
        raise KeyError("broken checkpoint")

    with pytest.raises(KeyError):
        loading.load(model_sources["llama"], "q4", device="cpu", loader=loader)


EXPECTED_HOOKS = {
    "llama": ("model.layers", "self_attn", "mlp"),
    "mistral": ("model.layers", "self_attn", "mlp"),
    "mixtral": ("model.layers", "self_attn", "mlp"),
    "qwen2": ("model.layers", "self_attn", "mlp"),
    "qwen3": ("model.layers", "self_attn", "mlp"),
    "gemma": ("model.layers", "self_attn", "mlp"),
    "gemma2": ("model.layers", "self_attn", "mlp"),
    "gemma3_text": ("model.layers", "self_attn", "mlp"),
    "gemma3": ("model.language_model.layers", "self_attn", "mlp"),
    "phi": ("model.layers", "self_attn", "mlp"),
    "phi3": ("model.layers", "self_attn", "mlp"),
    "gpt2": ("transformer.h", "attn", "mlp"),
    "gpt_neox": ("gpt_neox.layers", "attention", "mlp"),
    "falcon": ("transformer.h", "self_attention", "mlp"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_it_describes_every_family(family, model_sources):
    import json

    from transformers import AutoModelForCausalLM

    config = json.loads((model_sources[family] / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(model_sources[family])
    summary = architecture.summarize(config)
    assert summary["num_layers"] == model.config.get_text_config().num_hidden_layers == 2
    assert summary["hidden_size"] == 128 and summary["vocab_size"] == 512
    blocks = [layer for layer in summary["layers"] if layer["kind"] == "block"]
    assert [b["name"] for b in blocks] == ["TransformerBlock_0", "TransformerBlock_1"]
    assert summary["layers"][0]["name"] == "Embedding" and summary["layers"][-1]["name"] == "Output"
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert summary["tied_embeddings"] == tied
    # The estimate covers the language model (a vision tower is not part of it).
    language = sum(p.numel() for p in model.get_decoder().parameters()) + (
        0 if tied else model.get_output_embeddings().weight.numel()
    )
    estimate = architecture.estimate_parameters(config)
    assert abs(estimate - language) / language < 0.05

    points = hooks.find_hook_points(model)
    assert (points.layers_path, points.attention_name, points.mlp_name) == EXPECTED_HOOKS[family]
    assert points.templates() == hooks.hook_points_for_folder(model_sources[family]).templates()
    modules = dict(model.named_modules())
    for hook in hooks.HOOK_TYPES:
        assert points.path(hook, 1) in modules


def test_it_finds_layers_in_an_unknown_decoder_and_refuses_a_shapeless_one():
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.Linear(8, 8)
            self.feed_forward = nn.Linear(8, 8)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.blocks = nn.ModuleList([Block() for _ in range(3)])

    points = hooks.find_hook_points(Decoder())
    assert points.templates()["mlp"] == "blocks.{i}.feed_forward" and points.num_layers == 3

    class Opaque(nn.Module):
        def __init__(self):
            super().__init__()
            self.stack = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])

    with pytest.raises(hooks.UnsupportedArchitecture, match="could not be identified"):
        hooks.find_hook_points(Opaque())
    with pytest.raises(hooks.UnsupportedArchitecture, match="no list of decoder layers"):
        hooks.find_hook_points(nn.Linear(2, 2))


@pytest.mark.slow
def test_it_saves_and_reloads_a_2bit_copy_without_requantizing(model_sources, tmp_path, monkeypatch):
    from hqq.core.quantize import HQQLinear

    loaded = loading.load(model_sources["gpt2"], "q2", device="cpu")
    target = loading.save_quantized(loaded, tmp_path / "4_q2")
    assert (target / loading.HQQ_STATE).exists() and (target / loading.HQQ_META).exists()

    def no_quantizing(*args, **kwargs):
        raise AssertionError("a stored Q2 copy must not be quantized again")

    monkeypatch.setattr(loading, "quantize_hqq_2bit", no_quantizing)
    again = loading.load(model_sources["gpt2"], "q2", device="cpu", quantized_dir=target)
    assert isinstance(again.model.transformer.h[0].mlp.c_fc, HQQLinear)
    assert again.footprint_bytes == loaded.footprint_bytes
    ids = torch.tensor([[5, 6, 7, 8]])
    assert torch.equal(loaded.model(ids).logits, again.model(ids).logits)


# Falcon's linear layers are a Linear subclass that transformers' bitsandbytes integration does
# not swap: the studio reports FP16 rather than a Q8/Q4 it did not do.
EXPECTED_FALLBACKS = {("falcon", "q8"): "fp16", ("falcon", "q4"): "fp16"}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_loads_and_runs_in_every_format(family, model_sources):
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    for fmt in q.FORMATS:
        loaded = loading.load(model_sources[family], fmt, device="cpu")
        assert loaded.effective_format == EXPECTED_FALLBACKS.get((family, fmt), fmt), loaded.fallback_reason
        with torch.inference_mode():
            logits = loaded.model(ids).logits
        assert logits.shape[:2] == (1, 5) and torch.isfinite(logits.float()).all(), fmt
