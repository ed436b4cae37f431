"""The gateway's njs code (router.js, metrics.js) run in Debian's `njs` interpreter, the
engine of the gateway's nginx module, against fake nginx requests (njs_harness.js).

A test renders a gateway from an inventory (so the key and model tables are the ones
Phoenix ships), then calls `NjsGateway.run([Request(...), ...])`: one interpreter run for
any number of requests, one `Answer` each. `scripts/install-deps.sh --tests` installs njs."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phoenix.gateway.layout import RenderedGateway

HARNESS = Path(__file__).with_name("njs_harness.js")
NJS = "njs"


@dataclass(frozen=True)
class Request:
    """One call of a handler (`router.parse`, `metrics.prometheus`, ...) as nginx makes it."""

    handler: str
    method: str = "POST"
    uri: str = "/v1/chat/completions"
    headersIn: dict[str, str] = field(default_factory=dict)  # njs names
    requestText: str | None = None
    tooLarge: bool = False  # reading the body throws: it was over the limit
    variables: dict[str, str] = field(default_factory=dict)

    def to_js(self) -> dict[str, Any]:
        case = asdict(self)
        # nginx matches header names case-insensitively; the fake object does not.
        case["headersIn"] = {canonical(k): v for k, v in self.headersIn.items()}
        return case


def canonical(header: str) -> str:
    return "-".join(part.capitalize() for part in header.split("-"))


@dataclass(frozen=True)
class Answer:
    """What the handler did: answered (status, body) or redirected internally."""

    status: int | None
    body: str | None
    redirect: str | None
    headers: dict[str, str] | None
    variables: dict[str, str] | None
    value: Any  # what the handler returned: a js_set handler's variable
    error: str | None  # an exception escaped the handler: nginx answers 500

    def json(self) -> Any:
        assert self.body is not None, f"no body: {self}"
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        code = self.json()["error"]["code"]
        assert code is None or isinstance(code, str)
        return code


class NjsGateway:
    """A rendered gateway's njs/ folder, ready to run requests against."""

    def __init__(self, rendered: RenderedGateway, folder: Path, **table: Any) -> None:
        """`table` overrides keys of phoenix_models.js (e.g. metrics paths for a test)."""
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for rel, data in rendered.files.items():
            if rel.startswith("njs/"):
                (folder / rel.removeprefix("njs/")).write_bytes(data)
        if table:
            self.table = {**self.read_table(), **table}
            text = f"export default {json.dumps(self.table)};\n"
            (folder / "phoenix_models.js").write_text(text)
        else:
            self.table = self.read_table()
        shutil.copy(HARNESS, folder / "harness.js")

    def read_table(self) -> dict[str, Any]:
        text = (self.folder / "phoenix_models.js").read_text()
        start = text.index("export default ") + len("export default ")
        table = json.loads(text[start:].rstrip().removesuffix(";"))
        assert isinstance(table, dict)
        return table

    def run(self, requests: list[Request]) -> list[Answer]:
        out = self.folder / "answers.json"
        out.unlink(missing_ok=True)
        cases = json.dumps({"out": str(out), "requests": [r.to_js() for r in requests]})
        (self.folder / "cases.js").write_text(f"export default {cases};\n")
        if shutil.which(NJS) is None:
            raise AssertionError("njs is not installed: run scripts/install-deps.sh --tests")
        done = subprocess.run(
            [NJS, "-q", "-t", "module", "-p", str(self.folder), str(self.folder / "harness.js")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"njs failed ({done.returncode}): {done.stderr}"
        answers = [Answer(**answer) for answer in json.loads(out.read_text())]
        assert len(answers) == len(requests)
        return answers

    def one(self, request: Request) -> Answer:
        (answer,) = self.run([request])
        return answer
