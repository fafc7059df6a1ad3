"""The Responses and Anthropic Messages translations on their own: requests into OpenAI chat bodies, engine
deltas into the two APIs' events and objects.

No engine here (`test_gateway_agents.py` runs both APIs against real llama-server engines): the state machines
are fed the deltas llama-server's stream yields, including what Gemma 270M never produces (reasoning, a
tool call cut off by the token limit, an engine failure mid-answer), and every event and final object is
validated against the official `openai` and `anthropic` SDKs' own types, so a missing or misnamed field fails
here rather than in a user's client.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic.types as at
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llmctl.server import anthropic, errors, responses
from llmctl.server.anthropic_stream import MessageStream
from llmctl.server.chatbridge import ChatDelta, ToolFragment, Totals, parse_chunk
from llmctl.server.errors import GatewayError
from llmctl.server.responses_stream import ResponseStream

RESPONSE_EVENT = TypeAdapter(ResponseStreamEvent)
MESSAGE_EVENT = TypeAdapter(at.RawMessageStreamEvent)


def _events(out: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in out.decode().split("\n\n"):
        if chunk:
            head, data = chunk.split("\n", 1)
            assert head.startswith("event: ") and data.startswith("data: "), chunk
            events.append((head[7:], json.loads(data[6:])))
    return events


def _run(tr: Any, deltas: list[ChatDelta], *, fail: bool = False) -> list[tuple[str, dict[str, Any]]]:
    totals, out = Totals(), tr.begin()
    for d in deltas:
        totals.add(d)
        out += tr.feed(d, totals)
    out += tr.fail(GatewayError(502, "the engine died")) if fail else tr.finish(totals)
    return _events(out)


# what llama-server streams for: some reasoning, "Hello", then a call split in fragments
ANSWER = [
    parse_chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}],
                 "prompt_progress": {"total": 12, "cache": 0, "processed": 0}}),
    parse_chunk({"choices": [{"index": 0, "delta": {"reasoning_content": "The user greets."}}]}),
    parse_chunk({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
    parse_chunk({"choices": [{"index": 0, "delta": {"content": "lo"}}]}),
    parse_chunk({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_7", "type": "function", "function": {"name": "weather", "arguments": "{"}}]}}]}),
    parse_chunk({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {
        "arguments": '"city": "Paris"}'}}]}}]}),
    parse_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    parse_chunk({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
                 "timings": {"prompt_ms": 5.0, "predicted_ms": 40.0}}),
]


# -- Anthropic --------------------------------------------------------------------------------------------------
def test_anthropic_request_becomes_an_openai_chat() -> None:
    req = anthropic.parse({
        "model": "m", "max_tokens": 20,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "stop_sequences": ["END"], "temperature": 0, "top_k": 5, "stream": True,
        "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "Call it.", "signature": "x"},
                                              {"type": "tool_use", "id": "toolu_1", "name": "weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": [{"type": "text", "text": "18 C"}]},
                                         {"type": "text", "text": "And tomorrow?"}]},
        ]})
    assert req.stream is True and req.stop_sequences == ("END",)
    chat = req.chat
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief.\n\nBe kind."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "reasoning_content": "Call it.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C", "name": "weather"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert (chat["max_tokens"], chat["stop"], chat["temperature"], chat["top_k"]) == (20, ["END"], 0, 5)
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["tools"] == [{"type": "function", "function": {"name": "weather", "description": "Weather",
                                                               "parameters": {"type": "object"}}}]
    # count_tokens needs no max_tokens, and never streams
    counted = anthropic.parse({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                              count_only=True)
    assert counted.stream is False and "max_tokens" not in counted.chat


@pytest.mark.parametrize("change, where", [
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"temperature": 1.5}, "temperature"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "image content is not supported"),
    ({"system": [{"type": "image"}]}, "system[0]"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tool"),
    ({"tools": [{"name": "f"}], "tool_choice": {"type": "tool", "name": "g"}}, "not in tools"),
    ({"tools": [{"name": "f"}], "tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"tools": [{"name": "f"}], "tool_choice": {"type": ["tool"]}}, "tool_choice"),  # was a 500: unhashable
    ({"messages": [{"role": ["user"], "content": "hi"}]}, "messages[0]"),
])
def test_bad_anthropic_requests_are_a_400(change: dict[str, Any], where: str) -> None:
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], **change}
    with pytest.raises(GatewayError) as exc:
        anthropic.parse({k: v for k, v in body.items() if v is not None})
    assert exc.value.status == 400 and where in exc.value.message


def test_message_stream_is_what_the_anthropic_sdk_reads() -> None:
    tr = MessageStream("m", (), stream=True)
    events = _run(tr, ANSWER)
    for name, data in events:
        assert MESSAGE_EVENT.validate_python(data).type == name
    assert [e[0] for e in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    assert events[0][1]["message"]["usage"] == {"input_tokens": 12, "output_tokens": 0}  # from prompt_progress
    assert events[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2][1]["usage"] == {"input_tokens": 12, "output_tokens": 9}
    message = at.Message.model_validate(tr.result())
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[1].text == "Hello" and message.content[2].input == {"city": "Paris"}
    assert message.content[2].id == "call_7" and message.stop_reason == "tool_use"
    # not streamed: no events, the same Message
    quiet = MessageStream("m", (), stream=False)
    assert _run(quiet, ANSWER) == [] and quiet.result()["content"] == tr.result()["content"]


@pytest.mark.parametrize("finish, word, stops, reason, sequence", [
    ("stop", None, (), "end_turn", None),
    ("length", None, (), "max_tokens", None),
    ("stop", "END", ("END",), "stop_sequence", "END"),
    ("stop", "\n\n", ("END",), "end_turn", None),  # a stop of the model's own (a transcript stop), not the client's
])
def test_anthropic_stop_reasons(finish: str, word: str | None, stops: tuple[str, ...], reason: str,
                                sequence: str | None) -> None:
    tr = MessageStream("m", stops, stream=False)
    _run(tr, [ChatDelta(text="Hi"), ChatDelta(finish=finish, stop_word=word, prompt_tokens=3, completion_tokens=1)])
    assert (tr.result()["stop_reason"], tr.result()["stop_sequence"]) == (reason, sequence)


def test_a_tool_call_cut_off_by_max_tokens_is_dropped() -> None:
    tr = MessageStream("m", (), stream=False)
    _run(tr, [ChatDelta(tools=(ToolFragment(0, "c", "weather", '{"city": "Pa'),)), ChatDelta(finish="length")])
    assert tr.result()["content"] == [] and tr.result()["stop_reason"] == "max_tokens"


def test_an_engine_failure_mid_stream_is_an_anthropic_error_event() -> None:
    events = _run(MessageStream("m", (), stream=True), ANSWER[:3], fail=True)
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "the engine died"}})


ECHO = responses.parse({"model": "m", "input": "hi"}).echo  # the request fields a Response repeats


# -- Responses --------------------------------------------------------------------------------------------------
def test_responses_request_becomes_an_openai_chat() -> None:
    req = responses.parse({
        "model": "m", "instructions": "Be brief.", "max_output_tokens": 16, "temperature": 0.2, "top_p": 0.9,
        "store": False, "stream": True, "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "weather"},
        "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "Hm."}]},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "18 C"},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Celsius."}]},
        ]})
    assert req.stream is True
    assert req.chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "reasoning_content": "Hm.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C", "name": "weather"},
        {"role": "system", "content": "Celsius."},
    ]
    assert (req.chat["max_tokens"], req.chat["temperature"], req.chat["top_p"]) == (16, 0.2, 0.9)
    assert req.chat["tool_choice"] == "required" and req.chat["parallel_tool_calls"] is False
    assert req.chat["response_format"] == {"type": "json_schema",
                                           "json_schema": {"name": "w", "schema": {"type": "object"}}}
    assert req.echo["instructions"] == "Be brief." and req.echo["tools"][0]["name"] == "weather"
    assert responses.parse({"model": "m", "input": "Hi"}).chat["messages"] == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("change, where", [
    ({"store": True}, "stateless"),
    ({"previous_response_id": "resp_1"}, "stateless"),
    ({"conversation": "conv_1"}, "stateless"),
    ({"background": True}, "background"),
    ({"input": ""}, "input"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input_image"),
    ({"input": [{"role": "tool", "content": "x"}]}, "role"),
    ({"tools": [{"type": "web_search"}]}, "function tools only"),
    ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}}, "not in tools"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format"),
    ({"text": {"format": "json"}}, "text.format"),
])
def test_bad_responses_requests_are_a_400(change: dict[str, Any], where: str) -> None:
    with pytest.raises(GatewayError) as exc:
        responses.parse({"model": "m", "input": "hi", **change})
    assert exc.value.status == 400 and where in exc.value.message


@pytest.mark.parametrize("change, where", [  # these were a 500 (AttributeError, TypeError) on both routes
    ({"text": True}, "text must be an object"),
    ({"text": "json"}, "text must be an object"),
    ({"text": [{"type": "text"}]}, "text must be an object"),
    ({"input": [{"type": "reasoning", "content": 5}]}, "reasoning"),
    ({"input": [{"type": "reasoning", "summary": "thought"}]}, "reasoning"),
    ({"input": [{"role": ["user"], "content": "hi"}]}, "role"),
    ({"input": [{"type": "message", "role": {"r": 1}, "content": "hi"}]}, "role"),
])
@pytest.mark.parametrize("count_only", [False, True])
def test_odd_shapes_of_text_and_reasoning_are_a_400(change: dict[str, Any], where: str, count_only: bool) -> None:
    with pytest.raises(GatewayError) as exc:
        responses.parse({"model": "m", "input": "hi", **change}, count_only=count_only)
    assert exc.value.status == 400 and where in exc.value.message


def test_a_text_format_is_echoed_as_sent() -> None:
    schema = {"type": "json_schema", "name": "w", "schema": {"type": "object"}}
    assert responses.parse({"model": "m", "input": "hi", "text": {"format": schema}}).echo["text"] == {"format": schema}
    for text in (None, {}, {"format": {"type": "text"}}):
        assert responses.parse({"model": "m", "input": "hi", "text": text}).echo["text"] == {"format": {"type": "text"}}


def test_response_stream_is_what_the_openai_sdk_reads() -> None:
    tr = ResponseStream("m", ECHO, stream=True)
    events = _run(tr, ANSWER)
    for name, data in events:
        assert RESPONSE_EVENT.validate_python(data).type == name
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    names = [e[0] for e in events]
    assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.completed"
    assert names.count("response.output_item.added") == names.count("response.output_item.done") == 3
    assert "response.reasoning_text.delta" in names and names.count("response.output_text.delta") == 2
    assert names.count("response.function_call_arguments.delta") == 2
    final = Response.model_validate(tr.result())
    assert final.output_text == "Hello" and final.status == "completed"
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[2].call_id == "call_7" and json.loads(final.output[2].arguments) == {"city": "Paris"}
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (12, 9, 21)
    assert events[-1][1]["response"] == tr.result()
    quiet = ResponseStream("m", ECHO, stream=False)
    assert _run(quiet, ANSWER) == []
    assert quiet.result()["output"][1]["content"] == tr.result()["output"][1]["content"]


def test_a_response_cut_off_by_the_token_limit_is_incomplete() -> None:
    tr = ResponseStream("m", ECHO, stream=True)
    events = _run(tr, [ChatDelta(text="Hi"), ChatDelta(finish="length", prompt_tokens=3, completion_tokens=1)])
    assert events[-1][0] == "response.incomplete"
    final = Response.model_validate(tr.result())
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert final.output[0].status == "incomplete"


def test_an_engine_failure_mid_stream_is_an_error_and_a_failed_response() -> None:
    events = _run(ResponseStream("m", ECHO, stream=True), ANSWER[:3], fail=True)
    assert [e[0] for e in events[-2:]] == ["error", "response.failed"]
    for _, data in events[-2:]:
        RESPONSE_EVENT.validate_python(data)
    assert events[-1][1]["response"]["error"] == {"code": "server_error", "message": "the engine died"}


# -- errors: one table, three dialects ------------------------------------------------------------------------
def test_error_dialects_follow_the_path() -> None:
    assert errors.dialect_of("/v1/messages") == errors.dialect_of("/v1/messages/count_tokens") == errors.ANTHROPIC
    assert errors.dialect_of("/v1/responses") == errors.dialect_of("/v1/messagesx") == errors.OPENAI
    assert errors.dialect_of("/api/chat") == errors.OLLAMA
    err = GatewayError(404, "model 'x' not found", code="model_not_found")
    assert errors.body(err, errors.ANTHROPIC) == {"type": "error", "error": {"type": "not_found_error",
                                                                             "message": "model 'x' not found"}}
    assert errors.body(err, errors.OPENAI)["error"]["type"] == "not_found_error"
    assert errors.body(err, errors.OLLAMA) == {"error": "model 'x' not found"} == errors.body(err, False)
    kinds = {s: errors.anthropic_type(s) for s in (400, 401, 403, 404, 413, 429, 500, 502, 503, 529, 418)}
    assert kinds == {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                     404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                     502: "api_error", 503: "overloaded_error", 529: "overloaded_error", 418: "invalid_request_error"}
