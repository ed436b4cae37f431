"""`phoenix model`: the tiny llama-architecture model the llama.cpp lab serves."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from phoenix.cli.context import console, report_error
from phoenix.errors import PhoenixError

model_app = typer.Typer(
    help="Model files for llama.cpp guests: make the tiny test model, inspect a GGUF.",
    no_args_is_help=True,
)


@model_app.command("tiny")
def tiny(
    out: Annotated[Path, typer.Argument(help="Where to write the .gguf file.")],
    seed: Annotated[
        int, typer.Option(help="Seed of the random weights (same seed, same file).")
    ] = 0,
) -> None:
    """Write a tiny llama model (~5 MB): seeded random weights, LLaMA's real 32000-token
    vocabulary (from llama.cpp's source, fetched once into the host's download cache with
    pip). llama.cpp loads it, tokenizes, generates (gibberish) and computes embeddings."""
    from phoenix.files import sha256_of
    from phoenix.recipes import hostcache, llamacpp, tiny_gguf

    url = llamacpp.source_url(llamacpp.DEFAULT_SOURCE)
    try:
        source = hostcache.fetch(url, llamacpp.DEFAULT_SHA256)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            vocab = tiny_gguf.vocab_from_source(source, Path(tmp) / "vocab.gguf")
            size = tiny_gguf.write_model(vocab, out, seed)
    except PhoenixError as exc:
        report_error(exc)
    console.print(f"wrote {out} ({size / 1e6:.1f} MB, sha256 {sha256_of(out)})", highlight=False)


@model_app.command("info")
def info(path: Annotated[Path, typer.Argument(help="A .gguf file.")]) -> None:
    """What a GGUF file holds: architecture, name, tokenizer, vocabulary, sizes."""
    from phoenix.recipes import tiny_gguf

    try:
        facts = tiny_gguf.describe(path)
    except PhoenixError as exc:
        report_error(exc)
    tensors = facts.pop("tensors")
    for key, value in facts.items():
        console.print(f"{key}: {value}", highlight=False, markup=False)
    console.print(f"tensors: {len(tensors)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
