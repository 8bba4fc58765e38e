"""A local HTTP server that speaks OpenAI's wire protocol and plays a scripted model, for tests.

Real sockets on 127.0.0.1, real JSON and SSE streams: Chat Completions (OpenAI, Ollama's and vLLM's
`/v1`, Azure's `/openai/deployments/{deployment}/…?api-version=` and `/openai/v1`) and Responses.
The protocol is real, the model is scripted: each request to a model takes the next step of that
model's script (text, tool calls, an HTTP error, a delay), and every request is recorded so a test
can assert what the client sent.

    with LLMServer() as llm:
        llm.script("gpt-test", ToolCalls([Call("search_knowledge", {"query": "warranty"})]), Text("Two years [1]."))
        ...  # point a client at llm.base_url (or llm.url for Azure)
        assert llm.requests("gpt-test")[1].tool_results

A step may also be a function of the recorded request that returns a step: a model that reacts to
what it was sent (e.g. one that obeys instructions injected into a tool result).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# --- script steps --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Text:
    """An answer, streamed `words_per_chunk` words per chunk; optionally stalls after some chunks."""

    text: str
    words_per_chunk: int = 2
    usage: Usage | None = None
    stall_after_chunks: int | None = None
    stall_seconds: float = 0.0


@dataclass(frozen=True)
class Call:
    """One tool call; `arguments` as a dict, or as a raw string (to script malformed JSON)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    call_id: str = ""

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class ToolCalls:
    """The model asks for tool calls (after optional `text`).

    Streamed, OpenAI sends each call's id and name first and then its JSON arguments in fragments;
    Ollama sends each call whole in one chunk (`split_arguments=False`).
    """

    calls: Sequence[Call]
    text: str = ""
    split_arguments: bool = True
    usage: Usage | None = None


@dataclass(frozen=True)
class Fail:
    """An HTTP error in OpenAI's error format, e.g. 429 with Retry-After, 500 or 503."""

    status: int
    message: str = ""
    retry_after: float | None = None
    code: str | None = None
    # The OpenAI SDK obeys this non-standard header over its own retry rules.
    should_retry: bool | None = None


@dataclass(frozen=True)
class Delay:
    """Wait (before any response header is sent), then play `then`; ends early when the client hangs up."""

    seconds: float
    then: Step | None = None


Responder = Callable[["RecordedRequest"], "Step"]
Step = Text | ToolCalls | Fail | Delay | Responder


def call(name: str, **arguments: Any) -> ToolCalls:
    """One tool call, streamed the way OpenAI streams it."""
    return ToolCalls([Call(name, arguments)])


# --- what the client sent ------------------------------------------------------------------------

Api = Literal["chat.completions", "responses"]


def _text_of(content: Any) -> str:
    """The text of a message's content: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


@dataclass
class RecordedRequest:
    """One HTTP request as the server received it (header names lower-case)."""

    api: Api
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    model: str

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Chat Completions `messages`, or the Responses `input` items."""
        items = self.body.get("messages") if self.api == "chat.completions" else self.body.get("input")
        if isinstance(items, str):
            return [{"role": "user", "content": items}]
        return list(items or [])

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools") or []
        if self.api == "chat.completions":
            return [t["function"]["name"] for t in tools if t.get("type") == "function"]
        return [t["name"] for t in tools if t.get("type") == "function"]

    def tool_schema(self, name: str) -> dict[str, Any]:
        """The JSON schema of a tool's parameters."""
        for t in self.body.get("tools") or []:
            spec = t.get("function", t)
            if spec.get("name") == name:
                return dict(spec.get("parameters") or {})
        raise KeyError(f"no tool {name!r} in the request; tools: {self.tool_names}")

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Earlier tool calls the client sent back: `{"id", "name", "arguments"}`."""
        found: list[dict[str, Any]] = []
        for m in self.messages:
            for c in m.get("tool_calls") or []:
                found.append({"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]})
            if m.get("type") == "function_call":
                found.append({"id": m["call_id"], "name": m["name"], "arguments": m["arguments"]})
        return found

    @property
    def tool_results(self) -> dict[str, str]:
        """Tool results the client sent, by call id."""
        results: dict[str, str] = {}
        for m in self.messages:
            if m.get("role") == "tool":
                results[str(m.get("tool_call_id"))] = _text_of(m.get("content"))
            elif m.get("type") == "function_call_output":
                output = m.get("output")
                results[str(m.get("call_id"))] = output if isinstance(output, str) else _text_of(output)
        return results

    @property
    def last_tool_result(self) -> str | None:
        """The newest tool result in the request, which the model reacts to."""
        results = list(self.tool_results.values())
        return results[-1] if results else None

    def texts(self, role: str) -> list[str]:
        """The text of every message with `role` (system instructions included for "system")."""
        found = [_text_of(m.get("content")) for m in self.messages if m.get("role") == role]
        if role == "system" and isinstance(self.body.get("instructions"), str):
            found.insert(0, self.body["instructions"])
        return found


# --- the server ----------------------------------------------------------------------------------

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_scripted{next(_ids):06d}"


def _chunks(text: str, words: int) -> list[str]:
    """Pieces of `text` that join back to it exactly, `words` words each."""
    if not text:
        return []
    parts = text.split(" ")
    step = max(1, words)
    pieces = [" ".join(parts[i : i + step]) for i in range(0, len(parts), step)]
    return [p if i == len(pieces) - 1 else p + " " for i, p in enumerate(pieces)]


def _pieces(step: Text | ToolCalls) -> list[str]:
    return _chunks(step.text, step.words_per_chunk if isinstance(step, Text) else 2)


def _fragments(arguments: str, size: int = 7) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def _usage(step: Text | ToolCalls, request: RecordedRequest) -> Usage:
    if step.usage is not None:
        return step.usage
    produced = step.text if isinstance(step, Text) else step.text + "".join(c.arguments_json for c in step.calls)
    return Usage(max(1, len(json.dumps(request.body)) // 4), max(1, len(produced) // 4))


def _sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


class LLMServer:
    """Serves the OpenAI protocol on a free loopback port from a thread; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Step]] = {}
        self._otherwise: dict[str, Step] = {}
        self._requests: list[RecordedRequest] = []
        # Exceptions raised by scripted responders (the client saw an HTTP 400 naming them).
        self.errors: list[Exception] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/openai/deployments/{deployment}/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/openai/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/openai/v1/responses", self._responses, methods=["POST"]),
            ]
        )

    # -- lifecycle

    @property
    def url(self) -> str:
        """The server root, e.g. an Azure endpoint."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (`…/v1`), as OpenAI, Ollama and vLLM clients take it."""
        return f"{self.url}/v1"

    def start(self) -> LLMServer:
        # Listening before the thread starts: connections queue in the kernel until uvicorn accepts.
        self._socket.listen(64)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="llm-server", daemon=True)
        self._thread.start()
        return self

    async def _serve(self) -> None:
        assert self._server is not None
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await self._server.serve(sockets=[self._socket])

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and recording

    def script(self, model: str, *steps: Step, otherwise: Step | None = None) -> None:
        """Queue steps for requests naming `model` (the Azure deployment for Azure routes).

        Each request takes the next step; once they are used up it gets `otherwise`, or without
        one an HTTP 400 that names the model (never retried by the SDK).
        """
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(steps)
            if otherwise is not None:
                self._otherwise[model] = otherwise

    def pending(self, model: str) -> int:
        """Scripted steps not played yet."""
        with self._lock:
            return len(self._scripts.get(model, ()))

    def requests(self, model: str | None = None) -> list[RecordedRequest]:
        """Requests received so far, oldest first (only those naming `model` if given)."""
        with self._lock:
            return [r for r in self._requests if model is None or r.model == model]

    def reset(self) -> None:
        """Forget all scripts and recorded requests."""
        with self._lock:
            self._scripts.clear()
            self._otherwise.clear()
            self._requests.clear()
            self.errors.clear()

    def _next(self, request: RecordedRequest) -> Step | None:
        with self._lock:
            self._requests.append(request)
            queue = self._scripts.get(request.model)
            if queue:
                return queue.popleft()
            return self._otherwise.get(request.model)

    # -- HTTP

    async def _record(self, request: Request, api: Api) -> RecordedRequest:
        body = await request.json()
        deployment = request.path_params.get("deployment")
        return RecordedRequest(
            api=api,
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            model=str(deployment or body.get("model", "")),
        )

    async def _models(self, request: Request) -> Response:
        with self._lock:
            names = sorted(self._scripts)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "scripted"} for n in names]
        return JSONResponse({"object": "list", "data": data})

    async def _chat_completions(self, request: Request) -> Response:
        recorded = await self._record(request, "chat.completions")
        return await self._play(request, recorded, self._next(recorded))

    async def _responses(self, request: Request) -> Response:
        recorded = await self._record(request, "responses")
        return await self._play(request, recorded, self._next(recorded))

    async def _play(self, request: Request, recorded: RecordedRequest, step: Step | None) -> Response:
        if step is None:
            with self._lock:
                known = recorded.model in self._scripts
            if not known:
                return _error(404, f"The model `{recorded.model}` does not exist", "model_not_found")
            return _error(
                400, f"llm_server: the script for model `{recorded.model}` has no step left", "script_exhausted"
            )
        if isinstance(step, Delay):
            if not await self._pause(request, step.seconds):
                return Response(status_code=499)  # the client is gone; nobody reads this
            return await self._play(request, recorded, step.then or Fail(504, "scripted delay ended"))
        if isinstance(step, Fail):
            return _fail(step)
        if isinstance(step, Text | ToolCalls):
            azure = "/deployments/" in recorded.path
            if recorded.api == "chat.completions":
                if recorded.stream:
                    return _event_stream(self._chat_stream(request, recorded, step, azure=azure))
                return JSONResponse(_chat_completion(recorded, step))
            if recorded.stream:
                return _event_stream(self._responses_stream(request, recorded, step))
            return JSONResponse(_response_object(recorded, step, "completed"))
        try:
            reaction = step(recorded)
        except Exception as err:  # a bug in the test's responder: say so, and keep the SDK from retrying it
            with self._lock:
                self.errors.append(err)
            message = f"llm_server: the scripted responder failed: {type(err).__name__}: {err}"
            return _error(400, message, "responder_failed", {"x-should-retry": "false"})
        return await self._play(request, recorded, reaction)

    async def _pause(self, request: Request, seconds: float) -> bool:
        """Wait `seconds`; False as soon as the client disconnects or the server stops."""
        assert self._stopping is not None
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stopping.is_set() or await request.is_disconnected():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=min(0.05, remaining))
        return not self._stopping.is_set()

    async def _carry_on(self, request: Request, step: Text | ToolCalls, chunk: int) -> bool:
        """Before text chunk number `chunk`: stall if the step says so; False once the client is gone."""
        if isinstance(step, Text) and step.stall_after_chunks == chunk:
            return await self._pause(request, step.stall_seconds)
        return True

    async def _chat_stream(
        self, request: Request, recorded: RecordedRequest, step: Text | ToolCalls, *, azure: bool
    ) -> AsyncIterator[str]:
        cid, created = _id("chatcmpl"), int(time.time())
        include_usage = bool((recorded.body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            data: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": recorded.model,
                "system_fingerprint": "fp_scripted",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                data["usage"] = None
            return _sse(data)

        if azure:
            # Azure opens with the prompt's content-filter verdict in a chunk without choices.
            yield _sse(
                {
                    "id": "",
                    "object": "",
                    "created": 0,
                    "model": "",
                    "choices": [],
                    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
                }
            )
        text = step.text
        yield chunk({"role": "assistant", "content": "" if text or isinstance(step, Text) else None, "refusal": None})
        for n, piece in enumerate(_pieces(step)):
            if not await self._carry_on(request, step, n):
                return
            yield chunk({"content": piece})
        finish = "stop"
        if isinstance(step, ToolCalls):
            finish = "tool_calls"
            for index, c in enumerate(step.calls):
                call_id = c.call_id or _id("call")
                head = {"index": index, "id": call_id, "type": "function", "function": {"name": c.name}}
                if step.split_arguments:
                    yield chunk({"tool_calls": [{**head, "function": {"name": c.name, "arguments": ""}}]})
                    for fragment in _fragments(c.arguments_json):
                        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                else:
                    whole = {**head, "function": {"name": c.name, "arguments": c.arguments_json}}
                    yield chunk({"tool_calls": [whole]})
        yield chunk({}, finish)
        if include_usage:
            usage = _usage(step, recorded)
            yield _sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": recorded.model,
                    "system_fingerprint": "fp_scripted",
                    "choices": [],
                    "usage": _chat_usage(usage),
                }
            )
        yield "data: [DONE]\n\n"

    async def _responses_stream(
        self, request: Request, recorded: RecordedRequest, step: Text | ToolCalls
    ) -> AsyncIterator[str]:
        sequence = itertools.count()
        response = _response_object(recorded, step, "in_progress")
        final_output = response.pop("_final_output")
        response["output"] = []

        def event(kind: str, **data: Any) -> str:
            return _sse({"type": kind, "sequence_number": next(sequence), **data}, event=kind)

        yield event("response.created", response=response)
        yield event("response.in_progress", response=response)
        for index, item in enumerate(final_output):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                yield event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                yield event(
                    "response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part
                )
                for n, piece in enumerate(_pieces(step)):
                    if not await self._carry_on(request, step, n):
                        return
                    yield event(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        delta=piece,
                        logprobs=[],
                    )
                yield event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                )
                yield event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part={**part, "text": text},
                )
            else:
                yield event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                for fragment in _fragments(item["arguments"]):
                    yield event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=fragment,
                    )
                yield event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            yield event("response.output_item.done", output_index=index, item=item)
        yield event(
            "response.completed",
            response={
                **response,
                "status": "completed",
                "output": final_output,
                "usage": _responses_usage(_usage(step, recorded)),
            },
        )


# --- wire formats --------------------------------------------------------------------------------


def _error(status: int, message: str, code: str | None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    kind = {429: "requests", 400: "invalid_request_error", 404: "invalid_request_error", 401: "invalid_request_error"}
    body = {"error": {"message": message, "type": kind.get(status, "server_error"), "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _fail(step: Fail) -> JSONResponse:
    headers: dict[str, str] = {}
    if step.retry_after is not None:
        headers["retry-after"] = f"{step.retry_after:g}"
    if step.should_retry is not None:
        headers["x-should-retry"] = "true" if step.should_retry else "false"
    default = {
        429: "Rate limit reached; please try again later.",
        500: "The server had an error.",
        503: "The server is overloaded.",
    }
    code = step.code or {429: "rate_limit_exceeded"}.get(step.status)
    return _error(step.status, step.message or default.get(step.status, f"HTTP {step.status}"), code, headers)


def _event_stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _chat_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _responses_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _chat_completion(recorded: RecordedRequest, step: Text | ToolCalls) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text or None, "refusal": None}
    finish = "stop"
    if isinstance(step, ToolCalls):
        finish = "tool_calls"
        message["tool_calls"] = [
            {
                "id": c.call_id or _id("call"),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json},
            }
            for c in step.calls
        ]
    return {
        "id": _id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": recorded.model,
        "system_fingerprint": "fp_scripted",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _chat_usage(_usage(step, recorded)),
    }


def _response_object(recorded: RecordedRequest, step: Text | ToolCalls, status: str) -> dict[str, Any]:
    """A Responses API `response`; streaming callers take `_final_output` out for the closing event."""
    output: list[dict[str, Any]] = []
    if step.text:
        content = [{"type": "output_text", "text": step.text, "annotations": [], "logprobs": []}]
        output.append(
            {"id": _id("msg"), "type": "message", "status": "completed", "role": "assistant", "content": content}
        )
    if isinstance(step, ToolCalls):
        for c in step.calls:
            output.append(
                {
                    "id": _id("fc"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": c.call_id or _id("call"),
                    "name": c.name,
                    "arguments": c.arguments_json,
                }
            )
    body = recorded.body
    response: dict[str, Any] = {
        "id": _id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": recorded.model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _responses_usage(_usage(step, recorded)) if status == "completed" else None,
        "user": None,
        "metadata": {},
    }
    if status != "completed":
        response["_final_output"] = output
    return response
