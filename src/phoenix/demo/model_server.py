"""DEMO stand-in for an OpenAI-compatible model server (vLLM's API surface), stdlib only.

Not a model: it answers with canned text so tests can drive the gateway end to end.
Every answer names the backend that produced it (header `X-Phoenix-Demo-Backend` and a
`backend` field in the JSON), so a test can tell which upstream served a request.

    python3 -m phoenix.demo.model_server --model NAME --port 8000 [--host 0.0.0.0]
        [--backend-id ID] [--chunks 3] [--chunk-delay 0.5]

Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions (also with
"stream": true: SSE chunks `--chunk-delay` seconds apart, then `data: [DONE]`),
POST /v1/completions, POST /v1/embeddings, POST /v1/responses; any other POST under /v1/
(or vLLM's root-level /rerank, /score, /tokenize, ...) that names this model, JSON or a
multipart form, is echoed back with the path that was asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BACKEND_HEADER = "X-Phoenix-Demo-Backend"
# vLLM serves these at the root as well as under /v1.
OTHER_ENDPOINTS = ("/rerank", "/score", "/tokenize", "/detokenize", "/classify", "/pooling")


class DemoConfig:
    def __init__(self, model: str, backend: str, chunks: int, delay: float) -> None:
        self.model = model
        self.backend = backend
        self.chunks = chunks
        self.delay = delay


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "phoenix-demo-model-server"
    # Headers and body are two writes: with Nagle on, the body waits for the client's
    # delayed ACK of the headers (~40 ms per request on a kept-alive connection).
    disable_nagle_algorithm = True
    config: DemoConfig

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        return

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header(BACKEND_HEADER, self.config.backend)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str) -> None:
        self._json(
            status,
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": code,
                },
                "backend": self.config.backend,
            },
        )

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok", "backend": self.config.backend})
        elif self.path == "/":
            self._json(
                200,
                {
                    "service": "phoenix DEMO model server (a stand-in, not a model)",
                    "model": self.config.model,
                    "backend": self.config.backend,
                },
            )
        elif self.path == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "backend": self.config.backend,
                    "data": [
                        {
                            "id": self.config.model,
                            "object": "model",
                            "created": 0,
                            "owned_by": "phoenix-demo",
                        }
                    ],
                },
            )
        else:
            self._error(404, f"no route {self.path}", "not_found")

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Type", "").startswith("multipart/form-data"):
            # Form endpoints (transcriptions): only the `model` field matters here.
            field = re.search(rb'name="model"\r\n(?:[^\r\n]+\r\n)*?\r\n([^\r\n]*)\r\n', raw)
            raw = json.dumps({"model": field.group(1).decode() if field else None}).encode()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._error(400, "malformed JSON", "invalid_json")
            return None
        if not isinstance(body, dict):
            self._error(400, "expected a JSON object", "invalid_body")
            return None
        if body.get("model") != self.config.model:
            self._error(404, f"The model `{body.get('model')}` does not exist.", "model_not_found")
            return None
        return body

    def do_POST(self) -> None:
        if not self.path.startswith(("/v1/", "/v2/")) and self.path not in OTHER_ENDPOINTS:
            self._error(404, f"no route {self.path}", "not_found")
            return
        body = self._body()
        if body is None:
            return
        if self.path == "/v1/embeddings":
            self._embeddings(body)
        elif self.path in ("/v1/chat/completions", "/v1/completions") and body.get("stream"):
            self._stream(body)
        elif self.path in ("/v1/chat/completions", "/v1/completions"):
            self._complete(body)
        elif self.path == "/v1/responses":
            self._response()
        else:  # any other endpoint that names its model: say which one answered
            self._json(
                200,
                {
                    "object": "demo.echo",
                    "path": self.path,
                    "model": self.config.model,
                    "backend": self.config.backend,
                },
            )

    def _response(self) -> None:
        """A minimal Responses API object (what `client.responses.create` parses)."""
        self._json(
            200,
            {
                "id": "resp_demo",
                "object": "response",
                "created_at": int(time.time()),
                "status": "completed",
                "model": self.config.model,
                "backend": self.config.backend,
                "output": [
                    {
                        "type": "message",
                        "id": "msg_demo",
                        "status": "completed",
                        "role": "assistant",
                        "content": [
                            {"type": "output_text", "text": self._text(), "annotations": []}
                        ],
                    }
                ],
                "parallel_tool_calls": False,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": 1,
                    "output_tokens": 8,
                    "total_tokens": 9,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            },
        )

    def _text(self) -> str:
        return f"Hello from {self.config.backend} serving {self.config.model}."

    def _complete(self, body: dict[str, Any]) -> None:
        chat = self.path == "/v1/chat/completions"
        choice: dict[str, Any] = (
            {
                "index": 0,
                "message": {"role": "assistant", "content": self._text()},
                "finish_reason": "stop",
            }
            if chat
            else {"index": 0, "text": self._text(), "finish_reason": "stop"}
        )
        self._json(
            200,
            {
                "id": "demo-1",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": self.config.model,
                "backend": self.config.backend,
                "choices": [choice],
                "usage": {"prompt_tokens": 1, "completion_tokens": 8, "total_tokens": 9},
            },
        )

    def _stream(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header(BACKEND_HEADER, self.config.backend)
        self.end_headers()

        def chunk(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        for i in range(self.config.chunks):
            if i:
                time.sleep(self.config.delay)
            event = {
                "id": "demo-1",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.config.model,
                "backend": self.config.backend,
                "choices": [
                    {"index": 0, "delta": {"content": f"part {i} "}, "finish_reason": None}
                ],
                "sent_at": time.time(),
            }
            chunk(f"data: {json.dumps(event)}\n\n".encode())
        chunk(b"data: [DONE]\n\n")
        chunk(b"")

    def _embeddings(self, body: dict[str, Any]) -> None:
        inputs = body.get("input", "")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for i, item in enumerate(items):
            digest = hashlib.sha256(str(item).encode()).digest()
            data.append(
                {"object": "embedding", "index": i, "embedding": [b / 255.0 for b in digest[:8]]}
            )
        self._json(
            200,
            {
                "object": "list",
                "model": self.config.model,
                "backend": self.config.backend,
                "data": data,
                "usage": {"prompt_tokens": len(items), "total_tokens": len(items)},
            },
        )


def serve(host: str, port: int, config: DemoConfig) -> ThreadingHTTPServer:
    handler = type("DemoHandler", (Handler,), {"config": config})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # A listen backlog like a real server's (socketserver's default is 5): a burst of new
    # connections beyond it is dropped by the kernel, which a gateway takes for a dead server.
    server_cls = type(
        "DemoServer",
        (ThreadingHTTPServer,),
        {"address_family": family, "daemon_threads": True, "request_queue_size": 1024},
    )
    server: ThreadingHTTPServer = server_cls((host, port), handler)
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DEMO OpenAI-compatible model server")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--backend-id", default=socket.gethostname())
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--chunk-delay", type=float, default=0.5)
    args = parser.parse_args(argv)
    server = serve(
        args.host, args.port, DemoConfig(args.model, args.backend_id, args.chunks, args.chunk_delay)
    )
    print(
        f"demo model server: {args.model} on {args.host}:{args.port} as {args.backend_id}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
