"""usage.js (the model locations' js_body_filter) in Debian's njs interpreter: every chunk
goes on at once and unchanged, and the model server's own `usage` sets $phx_usage to
"<prompt> <completion>" — in a non-streamed answer, in a stream's last event, when the
object or its key is cut by a chunk boundary; nothing else sets it."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from phoenix.gateway.layout import asset

LLAMA_CHAT = (
    '{"choices":[{"finish_reason":"length","index":0,"message":{"role":"assistant",'
    '"content":"conf Wit"}}],"model":"tiny-llama","object":"chat.completion","usage":'
    '{"completion_tokens":8,"prompt_tokens":16,"total_tokens":24,"prompt_tokens_details":'
    '{"cached_tokens":0}},"id":"chatcmpl-1"}'
)
STREAM = [
    'data: {"choices":[{"delta":{"content":"lege"}}],"object":"chat.completion.chunk"}\n\n',
    'data: {"choices":[{"delta":{"content":" usage \\"usage\\": {"}}]}\n\n',
    'data: {"choices":[],"object":"chat.completion.chunk","usage":{"completion_tokens":4,'
    '"prompt_tokens":16,"total_tokens":20}}\n\ndata: [DONE]\n\n',
]
EMBEDDINGS = '{"object":"list","usage":{"prompt_tokens":3,"total_tokens":3},"data":[]}'
RUNNER = """import usage from 'usage.js';
import fs from 'fs';
import c from 'case.js';
var sent = [], r = {variables: {phx_usage: '-'}, sendBuffer: function(d, f) {
    sent.push([d, !!(f && f.last)]); }};
c.chunks.forEach(function(d, i) { usage.scan(r, d, {last: i === c.chunks.length - 1}); });
fs.writeFileSync(c.out, JSON.stringify({usage: r.variables.phx_usage, sent: sent}));
"""


def run(tmp_path: Path, chunks: list[str]) -> tuple[str, list[list[object]]]:
    if shutil.which("njs") is None:
        raise AssertionError("njs is not installed: run scripts/install-deps.sh --tests")
    (tmp_path / "usage.js").write_bytes(asset("usage.js"))
    out = tmp_path / "out.json"
    (tmp_path / "case.js").write_text(
        "export default " + json.dumps({"chunks": chunks, "out": str(out)}) + ";\n"
    )
    (tmp_path / "run.js").write_text(RUNNER)
    done = subprocess.run(
        ["njs", "-q", "-t", "module", "-p", str(tmp_path), str(tmp_path / "run.js")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    return result["usage"], result["sent"]


def cut(text: str, *at: int) -> list[str]:
    bounds = [0, *at, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([LLAMA_CHAT], "16 8"),
        (STREAM, "16 4"),  # the last event's usage; a quoted "usage" in content is no key
        (cut(LLAMA_CHAT, LLAMA_CHAT.index('"usage"') + 3), "16 8"),  # the key cut
        (cut(LLAMA_CHAT, LLAMA_CHAT.index('"prompt_tokens"') + 5), "16 8"),  # object cut
        ([EMBEDDINGS], "3 0"),
        ([STREAM[0], STREAM[1]], "-"),  # a stream without include_usage
        (['{"error":{"message":"no","code":404}}'], "-"),
    ],
)
def test_usage_is_taken_from_the_answer_and_every_chunk_passes_unchanged(
    tmp_path: Path, chunks: list[str], expected: str
) -> None:
    usage, sent = run(tmp_path, chunks)
    assert usage == expected
    assert [s[0] for s in sent] == chunks  # each chunk at once, as it came
    assert [s[1] for s in sent] == [i == len(chunks) - 1 for i in range(len(chunks))]
