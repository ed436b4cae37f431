"""The tiny llama model: written with the `gguf` package and read back with its reader, the
way llama.cpp reads it (architecture, hyperparameters, every block's tensors in llama.cpp's
names and shapes, the vocabulary copied whole), reproducible from its seed, and the CLI."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import gguf
import numpy as np
import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.errors import PhoenixError
from phoenix.recipes import tiny_gguf

TOKENS = ["<unk>", "<s>", "</s>", *[f"\u2581w{i}" for i in range(61)]]


def make_vocab(path: Path) -> Path:
    """A vocabulary GGUF shaped like llama.cpp's ggml-vocab-llama-spm.gguf (64 tokens)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(TOKENS)
    writer.add_token_scores([-float(i) for i in range(len(TOKENS))])
    writer.add_token_types([2, 3, 3, *[1] * 61])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_model_is_a_complete_llama_with_the_vocabulary_it_was_given(tmp_path: Path) -> None:
    vocab = make_vocab(tmp_path / "vocab.gguf")
    size = tiny_gguf.write_model(vocab, tmp_path / "tiny.gguf", seed=7)
    assert size == (tmp_path / "tiny.gguf").stat().st_size
    facts = tiny_gguf.describe(tmp_path / "tiny.gguf")
    tensors = facts.pop("tensors")
    assert facts == {
        "architecture": "llama", "name": "phoenix-tiny-llama", "tokenizer": "llama",
        "vocab": 64, "layers": 2, "embedding": 64,
    }  # fmt: skip
    # gguf lists shapes as ggml's ne (fastest dimension first).
    assert tensors["token_embd.weight"] == [64, 64]
    assert "output.weight" not in tensors  # tied to token_embd, as llama.cpp allows
    per_block = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                 "ffn_gate", "ffn_up", "ffn_down"}  # fmt: skip
    for block in (0, 1):
        assert {n.split(".")[2] for n in tensors if n.startswith(f"blk.{block}.")} == per_block
    assert tensors["blk.0.ffn_gate.weight"] == [64, 128]
    assert tensors["blk.0.ffn_down.weight"] == [128, 64]
    reader = gguf.GGUFReader(str(tmp_path / "tiny.gguf"))
    assert reader.fields["tokenizer.ggml.tokens"].contents() == TOKENS
    assert reader.fields["tokenizer.ggml.eos_token_id"].contents() == 2
    assert reader.fields["llama.rope.dimension_count"].contents() == 16
    assert "add_generation_prompt" in reader.fields["tokenizer.chat_template"].contents()
    weights = {t.name: np.array(t.data) for t in reader.tensors}
    assert 0.01 < float(weights["blk.1.attn_q.weight"].std()) < 0.03  # seeded N(0, 0.02)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_weights(
    tmp_path: Path,
) -> None:
    vocab = make_vocab(tmp_path / "vocab.gguf")
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        tiny_gguf.write_model(vocab, tmp_path / f"{name}.gguf", seed=seed)
    a, b, c = ((tmp_path / f"{n}.gguf").read_bytes() for n in "abc")
    assert a == b and a != c and len(a) == len(c)
    assert not list(tmp_path.glob("*.part"))


def test_the_vocabulary_comes_out_of_a_llama_cpp_source_archive(tmp_path: Path) -> None:
    data = make_vocab(tmp_path / "vocab.gguf").read_bytes()
    archive = tmp_path / "src.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("llama.cpp/models/ggml-vocab-llama-spm.gguf")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    out = tiny_gguf.vocab_from_source(archive, tmp_path / "got.gguf")
    assert out.read_bytes() == data
    with tarfile.open(tmp_path / "empty.tar.gz", "w:gz"):
        pass
    with pytest.raises(PhoenixError, match=r"has no models/ggml-vocab-llama-spm\.gguf"):
        tiny_gguf.vocab_from_source(tmp_path / "empty.tar.gz", tmp_path / "x.gguf")


def test_a_file_that_is_no_vocabulary_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(PhoenixError, match="not a GGUF file"):
        tiny_gguf.write_model(tmp_path / "junk.gguf", tmp_path / "m.gguf")
    writer = gguf.GGUFWriter(str(tmp_path / "bare.gguf"), "llama")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(PhoenixError, match="no tokenizer vocabulary"):
        tiny_gguf.write_model(tmp_path / "bare.gguf", tmp_path / "m.gguf")


def test_phoenix_model_tiny_writes_the_model_from_the_cached_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_vocab(tmp_path / "vocab.gguf").read_bytes()
    archive = tmp_path / "src.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("llama.cpp/models/ggml-vocab-llama-spm.gguf")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    asked: list[tuple[str, str | None]] = []

    def fetch(url: str, sha256: str | None = None, cache: Path | None = None) -> Path:
        asked.append((url, sha256))
        return archive

    monkeypatch.setattr("phoenix.recipes.hostcache.fetch", fetch)
    out = tmp_path / "models" / "tiny.gguf"
    result = CliRunner().invoke(app, ["model", "tiny", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "sha256 " in result.output
    assert asked == [
        ("pypi:llama-cpp-python==0.3.36#vendor/llama.cpp", tiny_gguf_sha()),
    ]
    shown = CliRunner().invoke(app, ["model", "info", str(out)])
    assert "architecture: llama" in shown.output and "vocab: 64" in shown.output
    bad = CliRunner().invoke(app, ["model", "info", str(archive)])
    assert bad.exit_code == 1 and "not a GGUF file" in bad.output


def tiny_gguf_sha() -> str:
    from phoenix.recipes.llamacpp import DEFAULT_SHA256

    return DEFAULT_SHA256
