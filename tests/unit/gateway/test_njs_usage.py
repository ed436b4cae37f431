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
from typing import Any

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
var sent = [], done = false, r = {
    status: c.status, headersOut: c.headers, variables: {phx_usage: '-', phx_model: 'm"1'},
    sendBuffer: function(d, f) { sent.push([d, !!(f && f.last)]); },
    done: function() { done = true; }
};
usage.headers(r);
c.chunks.forEach(function(d, i) {
    var flags = {last: i === c.chunks.length - 1};
    if (done) {
        sent.push([d, flags.last]);  // nginx passes it on without the filter
    } else {
        usage.scan(r, d, flags);
    }
});
fs.writeFileSync(c.out, JSON.stringify({usage: r.variables.phx_usage, sent: sent,
                                        headers: r.headersOut, done: done}));
"""


def run(
    tmp_path: Path, chunks: list[str], status: int = 200, type_: str | None = None
) -> tuple[str, list[list[object]]]:
    result = answer(tmp_path, chunks, status, type_)
    return result["usage"], result["sent"]


def answer(
    tmp_path: Path, chunks: list[str], status: int = 200, type_: str | None = None
) -> dict[str, Any]:
    """What the filters did to an answer of `status` and Content-Type `type_` (default:
    an event stream when the first chunk is an event, else JSON) sent in `chunks`."""
    if type_ is None:
        type_ = "text/event-stream" if chunks[0].startswith("data:") else "application/json"
    headers = {"Content-Type": type_, "Content-Length": str(len("".join(chunks)))}
    tmp_path.mkdir(parents=True, exist_ok=True)
    if shutil.which("njs") is None:
        raise AssertionError("njs is not installed: run scripts/install-deps.sh --tests")
    (tmp_path / "usage.js").write_bytes(asset("usage.js"))
    out = tmp_path / "out.json"
    (tmp_path / "case.js").write_text(
        "export default "
        + json.dumps({"chunks": chunks, "out": str(out), "status": status, "headers": headers})
        + ";\n"
    )
    (tmp_path / "run.js").write_text(RUNNER)
    done = subprocess.run(
        ["njs", "-q", "-t", "module", "-p", str(tmp_path), str(tmp_path / "run.js")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert isinstance(result, dict)
    return result


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
        (['{"usage": {\n  "prompt_tokens" :\t7 ,\n  "completion_tokens": 12\n}}'], "7 12"),
        (['{"usage":{"prompt_tokens_details":{"x":1}},"prompt_tokens":5}'], "-"),
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


def test_every_answer_is_searched_to_its_end_and_the_filter_never_steps_aside(
    tmp_path: Path,
) -> None:
    # The filter never steps aside (r.done()): every answer that can carry usage is
    # searched to its end, a JSON answer as a stream (tests/e2e/test_llm_lab.py counts both).
    chunks = [LLAMA_CHAT, " "]
    result = answer(tmp_path / "json", chunks)
    assert not result["done"] and result["usage"] == "16 8"
    assert [s[0] for s in result["sent"]] == chunks
    stream = answer(tmp_path / "stream", [*STREAM, STREAM[2]])
    assert not stream["done"] and stream["usage"] == "16 4"


@pytest.mark.parametrize(
    ("status", "type_"),
    [(200, "audio/mpeg"), (200, "text/plain"), (404, "application/json"), (304, "")],
)
def test_answers_that_carry_no_usage_are_passed_on_untouched(
    tmp_path: Path, status: int, type_: str
) -> None:
    chunks = ['{"usage": {"prompt_tokens": 1}}', "rest"]
    result = answer(tmp_path, chunks, status, type_)
    assert not result["done"] and result["usage"] == "-"
    assert [s[0] for s in result["sent"]] == chunks
    assert result["headers"]["Content-Type"] == type_


@pytest.mark.parametrize(
    ("status", "type_", "kind"),
    [
        (431, "text/html;charset=utf-8", "invalid_request_error"),
        (400, "text/plain; charset=utf-8", "invalid_request_error"),  # uvicorn's bad request
        (500, "", "server_error"),
    ],
)
def test_a_model_servers_error_page_becomes_openai_json_with_its_status(
    tmp_path: Path, status: int, type_: str, kind: str
) -> None:
    page = ["<html><body><h1>Request Header Fields", " Too Large</h1></body></html>\n"]
    result = answer(tmp_path, page, status, type_)
    assert result["headers"]["Content-Type"] == "application/json"
    assert "Content-Length" not in result["headers"]
    assert [s[1] for s in result["sent"]] == [True]  # one body, at the end; the page dropped
    error = json.loads(result["sent"][0][0])["error"]
    assert error == {
        "message": f"the server for model 'm\"1' answered {status} with a page that is not JSON",
        "type": kind,
        "param": "model",
        "code": f"upstream_http_{status}",
    }
