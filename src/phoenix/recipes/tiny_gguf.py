"""A tiny llama-architecture GGUF model, made here with the `gguf` package: a real model
file for a real llama.cpp, with no model hub.

Its weights are seeded random numbers (the text it writes is gibberish), everything else
is what llama.cpp expects of a llama model: the architecture's hyperparameters, every
tensor of every block, and a real tokenizer vocabulary copied from a vocabulary GGUF
(llama.cpp's own `models/ggml-vocab-llama-spm.gguf`, LLaMA's 32000-token SentencePiece
vocabulary, which the llama.cpp source archive carries). So llama.cpp loads it, tokenizes
prompts, generates and streams real tokens, counts real usage and computes embeddings.
The output projection is tied to the token embeddings (llama.cpp reuses `token_embd`
when `output.weight` is absent), which keeps the file at about 4 MB. The same seed gives
the same file, byte for byte.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phoenix.errors import PhoenixError

VOCAB_MEMBER = "models/ggml-vocab-llama-spm.gguf"
# Chat turns in the shape most chat templates use; llama.cpp renders it with its Jinja
# engine (the vocabulary GGUF has no template of its own).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class Shape:
    """The model's size: small enough to load in milliseconds and run on one core."""

    embedding: int = 64
    layers: int = 2
    heads: int = 4
    feed_forward: int = 128
    context: int = 2048


def vocab_from_source(archive: Path, out: Path) -> Path:
    """Extract the vocabulary GGUF from a llama.cpp source archive (`leaf/models/...`)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.split("/", 1)[-1] == VOCAB_MEMBER:
                    data = tar.extractfile(member)
                    assert data is not None
                    out.write_bytes(data.read())
                    return out
    except (OSError, tarfile.TarError) as exc:
        raise PhoenixError(f"{archive}: cannot read it as a source archive: {exc}") from None
    raise PhoenixError(f"{archive} has no {VOCAB_MEMBER} (is it llama.cpp's source?)")


def _gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise PhoenixError(
            "making a model needs the `gguf` package: .venv/bin/pip install 'gguf>=0.17' "
            "(scripts/install-deps.sh installs it)"
        ) from None
    return gguf


def _tokenizer_fields(vocab: Path) -> list[tuple[str, Any, Any, Any]]:
    """(key, value, type, array item type) of every `tokenizer.*` field of a vocab GGUF."""
    gguf = _gguf()
    try:
        reader = gguf.GGUFReader(str(vocab))
    except (OSError, ValueError) as exc:
        raise PhoenixError(f"{vocab}: not a GGUF file: {exc}") from None
    fields = []
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        fields.append((key, field.contents(), kind, sub))
    if not any(key == "tokenizer.ggml.tokens" for key, *_ in fields):
        raise PhoenixError(f"{vocab}: no tokenizer vocabulary (tokenizer.ggml.tokens)")
    return fields


def write_model(vocab: Path, out: Path, seed: int = 0, shape: Shape | None = None) -> int:
    """Write the model to `out` (atomically: a `.part` file renamed); returns its size."""
    gguf = _gguf()
    import numpy as np

    shape = shape or Shape()
    fields = _tokenizer_fields(vocab)
    n_vocab = next(len(value) for key, value, *_ in fields if key == "tokenizer.ggml.tokens")
    rng = np.random.default_rng(seed)
    part = out.with_name(out.name + ".part")
    writer = gguf.GGUFWriter(str(part), "llama")
    writer.add_name("phoenix-tiny-llama")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.embedding)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.feed_forward)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.heads)
    writer.add_rope_dimension_count(shape.embedding // shape.heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for key, value, kind, sub in fields:
        if key != "tokenizer.chat_template":
            writer.add_key_value(key, value, kind, sub_type=sub)
    writer.add_chat_template(CHAT_TEMPLATE)

    def weights(*dims: int) -> Any:
        return (rng.standard_normal(dims) * 0.02).astype(np.float32)

    e, ff = shape.embedding, shape.feed_forward
    writer.add_tensor("token_embd.weight", weights(n_vocab, e).astype(np.float16))
    writer.add_tensor("output_norm.weight", np.ones(e, dtype=np.float32))
    for i in range(shape.layers):
        block = f"blk.{i}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(e, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{block}.{name}.weight", weights(e, e))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(e, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", weights(ff, e))
        writer.add_tensor(f"{block}.ffn_up.weight", weights(ff, e))
        writer.add_tensor(f"{block}.ffn_down.weight", weights(e, ff))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        part.replace(out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise PhoenixError(f"writing {out}: {exc}") from None
    return out.stat().st_size


def describe(path: Path) -> dict[str, Any]:
    """What a GGUF file holds, as llama.cpp reads it: architecture, sizes, vocabulary."""
    gguf = _gguf()
    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise PhoenixError(f"{path}: not a GGUF file: {exc}") from None

    def value(key: str) -> Any:
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture")
    return {
        "architecture": arch,
        "name": value("general.name"),
        "tokenizer": value("tokenizer.ggml.model"),
        "vocab": len(value("tokenizer.ggml.tokens") or []),
        "layers": value(f"{arch}.block_count"),
        "embedding": value(f"{arch}.embedding_length"),
        "tensors": {t.name: [int(d) for d in t.shape] for t in reader.tensors},
    }
