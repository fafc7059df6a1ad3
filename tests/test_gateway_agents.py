"""/v1/responses and /v1/messages driven by the official `openai` and `anthropic` SDKs against a real gateway and
real llama-server engines on the bundled Gemma 3 270M.

`gemma-agent` is the Gemma GGUF packaged with a Hermes-style chat template (Gemma's turns, tools in
`<tools>`, calls as `<tool_call>{"name": ..., "arguments": ...}</tool_call>`), so the engine runs in jinja mode
and llama-server's own template analysis builds the tool-call grammar and parser. Its Modelfile PARAMETERs
(`temperature 0`, `stop "</tool_call>"`) apply to every request, as on the other routes.

The tool round-trips are deterministic without a model that really reasons about tools: greedy, this 270M
base model repeats the user's message, so a user turn that *is* a call in the template's format comes back as
that call; the engine's grammar, its parser and the stop at `</tool_call>` turn it into a real tool call
(finish reason `tool_calls`), and the call's result is fed back as a tool result the template renders.

Token counts are checked against the engine itself: the same chat sent straight to the engine's port must
report the same `usage`, and count_tokens / input_tokens (the engine's /apply-template + /tokenize) must equal
the `usage` of the request they count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx
import openai
import pytest

from fixtures_gateway import MODEL, MODEL_B, RunningGateway, metric_value, settled_metrics

pytestmark = pytest.mark.slow

AGENT = "gemma-agent"
AGENT_TEMPLATE = """{{- bos_token }}
{%- if tools %}
{{- '<start_of_turn>user\\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}
{{- '# Tools\\n\\nYou may call functions. Their signatures are within <tools></tools>:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\\n</tools>\\n\\nFor each call, return a JSON object with the name and arguments' }}
{{- ' within <tool_call></tool_call>:\\n' }}
{{- '<tool_call>\\n{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><end_of_turn>\\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<start_of_turn>user\\n' + messages[0].content + '<end_of_turn>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}
{{- '<start_of_turn>' + ('model' if message.role == 'assistant' else 'user') + '\\n' }}
{{- message.content + '<end_of_turn>\\n' }}
{%- elif message.role == 'assistant' %}
{{- '<start_of_turn>model' }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for call in message.tool_calls %}
{%- if call.function is defined %}{%- set call = call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' + call.name + '", "arguments": ' }}
{{- call.arguments | tojson }}{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<end_of_turn>\\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.index0 == 0 or messages[loop.index0 - 1].role != 'tool' %}{{- '<start_of_turn>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<end_of_turn>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}
"""
CALL = '<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call>'  # what the model repeats
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ANTHROPIC_TOOLS = [{"name": "weather", "description": "Weather in a city", "input_schema": SCHEMA}]
RESPONSES_TOOLS = [{"type": "function", "name": "weather", "description": "Weather in a city", "parameters": SCHEMA}]
ASK = "Name a color."
SYSTEM = "Answer in one word."


@pytest.fixture(scope="module")
def agent_model(gateway: RunningGateway, gemma_gguf: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gemma-agent: packaged with AGENT_TEMPLATE, then given its PARAMETERs through the real /api/create."""
    from llmctl.api.package import PackageSpec, package
    from llmctl.settings import Settings

    template = tmp_path_factory.mktemp("agent-tpl") / "agent.jinja"
    template.write_text(AGENT_TEMPLATE)
    package(Settings.from_env({"LLMCTL_HOME": str(gateway.home)}), "gemma-agent-base",
            PackageSpec(gguf=gemma_gguf, chat_template=template))
    r = gateway.http.post("/api/create", json={"model": AGENT, "from": "gemma-agent-base", "stream": False,
                                               "parameters": {"temperature": 0, "stop": ["</tool_call>"]}})
    assert r.status_code == 200, r.text
    yield AGENT
    for name in (AGENT, "gemma-agent-base"):
        gateway.http.request("DELETE", "/api/delete", json={"model": name})


@pytest.fixture(scope="module")
def ant(gateway: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def oai(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def _engine_auth(pid: int) -> dict[str, str]:
    """The engine's own API key, where the gateway gave it one (LLAMA_API_KEY in its environment, which this
    test, run by the same user, may read)."""
    env = dict(e.split(b"=", 1) for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in e)
    key = env.get(b"LLAMA_API_KEY")
    return {"Authorization": "Bearer " + key.decode()} if key else {}


def engine_tokens(gateway: RunningGateway, model: str) -> tuple[float, float]:
    """The engine's own counters (llama-server's /metrics on its loopback port): prompt tokens (evaluated +
    taken from its cache) and generated tokens. Their change over one request is that request's true usage."""
    row = next(m for m in gateway.ps() if m["name"] == f"{model}:latest" and m["mode"] == "generate")
    text = httpx.get(f"http://127.0.0.1:{row['port']}/metrics", headers=_engine_auth(row["pid"]), timeout=30,
                     trust_env=False).text
    values = {k: float(v) for k, _, v in (line.partition(" ") for line in text.splitlines() if line[:1] != "#")}
    return (values["llamacpp:prompt_tokens_total"] + values["llamacpp:prompt_tokens_cached_total"],
            values["llamacpp:tokens_predicted_total"])


# -- Anthropic's Messages API ---------------------------------------------------------------------------------------
def test_messages_with_a_system_prompt_streamed_and_not(gateway: RunningGateway, agent_model: str,
                                                        ant: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": ASK}]
    ant.messages.count_tokens(model=agent_model, messages=ask)  # loads the model: its engine has counters
    before = engine_tokens(gateway, agent_model)
    m = ant.messages.create(model=agent_model, max_tokens=4, system=SYSTEM, messages=ask)
    after = engine_tokens(gateway, agent_model)
    assert m.type == "message" and m.role == "assistant" and m.model == agent_model
    assert m.id.startswith("msg_") and [b.type for b in m.content] == ["text"]
    assert m.stop_reason in ("end_turn", "max_tokens") and 0 < m.usage.output_tokens <= 4
    assert (m.usage.input_tokens, m.usage.output_tokens) == (after[0] - before[0], after[1] - before[1])
    # count_tokens is the engine's count of the same prompt; the system prompt is in it
    counted = ant.messages.count_tokens(model=agent_model, system=SYSTEM, messages=ask).input_tokens
    assert counted == m.usage.input_tokens
    assert ant.messages.count_tokens(model=agent_model, messages=ask).input_tokens < counted

    with ant.messages.stream(model=agent_model, max_tokens=4, system=SYSTEM, messages=ask) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "message_delta" in kinds
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert final.content[0].text and final.stop_reason == m.stop_reason
    assert (final.usage.input_tokens, final.usage.output_tokens) == (m.usage.input_tokens, m.usage.output_tokens)
    metrics = settled_metrics(gateway, "llmctl_requests_total", 2, route="/v1/messages", code="200")
    assert metric_value(metrics, "llmctl_requests_total", route="/v1/messages", code="200") >= 2
    assert metric_value(metrics, "llmctl_requests_total", route="/v1/messages/count_tokens", code="200") >= 2


def test_messages_tool_round_trip(agent_model: str, ant: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": CALL}]
    with ant.messages.stream(model=agent_model, max_tokens=40, tools=ANTHROPIC_TOOLS,
                             tool_choice={"type": "any"}, messages=ask) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        called = stream.get_final_message()
    assert called.stop_reason == "tool_use" and set(deltas) == {"input_json_delta"}
    use = called.content[-1]
    assert use.type == "tool_use" and use.name == "weather" and use.input == {"city": "Paris"}
    # the client runs the tool and sends its result back
    turns = [*ask, {"role": "assistant", "content": called.content},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                           "content": "18 C and sunny"}]}]
    after = ant.messages.create(model=agent_model, max_tokens=3, tools=ANTHROPIC_TOOLS, messages=turns)
    assert after.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert after.usage.input_tokens > called.usage.input_tokens + 10  # the call and its result reached the template
    assert after.usage.input_tokens == ant.messages.count_tokens(model=agent_model, tools=ANTHROPIC_TOOLS,
                                                                 messages=turns).input_tokens


def test_messages_stop_sequence_on_a_completion_mode_model(ant: anthropic.Anthropic) -> None:
    """The bundled base model is served in completion mode, where the engine says which stop string ended the
    answer. (Which words a 270M model picks shifts with llama-server's prompt cache even when greedy, so the
    stops are letters any answer of a few words has.)"""
    stops = ["a", "e", "i", "o"]
    m = ant.messages.create(model=MODEL, max_tokens=8, stop_sequences=stops, extra_body={"temperature": 0},
                            messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence in stops, m
    assert not any(s in m.content[0].text for s in stops)


def test_messages_errors_and_the_models_system(gateway: RunningGateway, ant: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": ASK}]
    with pytest.raises(anthropic.NotFoundError) as nf:
        ant.messages.create(model="no-such-model", max_tokens=4, messages=ask)
    assert nf.value.body["type"] == "error" and nf.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in nf.value.body["error"]["message"]
    bad = [({"max_tokens": 4, "messages": []}, "messages"),
           ({"messages": ask}, "max_tokens"),
           ({"max_tokens": 4, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "image"),
           ({"max_tokens": 4, "messages": ask, "tools": ANTHROPIC_TOOLS}, "cannot call tools")]
    for body, words in bad:
        r = gateway.http.post("/v1/messages", json={"model": MODEL, **body},
                              headers={"anthropic-version": "2023-06-01"})
        assert r.status_code == 400 and r.json()["type"] == "error", r.text
        assert r.json()["error"]["type"] == "invalid_request_error" and words in r.json()["error"]["message"]
    r = gateway.http.post("/v1/messages", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    # a Modelfile's SYSTEM applies (tiny-b has one, the bundled model none), and a request's system replaces it
    def count(model: str, **extra: Any) -> int:
        return ant.messages.count_tokens(model=model, messages=ask, **extra).input_tokens

    assert count(MODEL_B) > count(MODEL)
    assert count(MODEL_B, system=SYSTEM) == count(MODEL, system=SYSTEM)


def test_a_client_that_leaves_frees_the_engine(gateway: RunningGateway, agent_model: str,
                                               ant: anthropic.Anthropic) -> None:
    """A non-streamed answer (this prompt makes the model loop to max_tokens) whose client gives up after a
    few seconds: the gateway notices, closes the engine's connection and the slot is free again at once."""
    ant.messages.count_tokens(model=agent_model, messages=[{"role": "user", "content": ASK}])  # loaded first
    before = metric_value(gateway.metrics(), "llmctl_requests_total", route="/v1/messages", code="499")
    impatient = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=3)
    with pytest.raises(anthropic.APITimeoutError):
        impatient.messages.create(model=agent_model, max_tokens=2000, messages=[{"role": "user", "content": ASK}])
    row = next(m for m in gateway.ps() if m["name"] == f"{agent_model}:latest" and m["mode"] == "generate")
    deadline = time.monotonic() + 15
    while True:
        slots = httpx.get(f"http://127.0.0.1:{row['port']}/slots", headers=_engine_auth(row["pid"]), timeout=10,
                          trust_env=False).json()
        if not any(s.get("is_processing") for s in slots):
            break
        assert time.monotonic() < deadline, "the engine kept generating after the client left"
        time.sleep(0.1)
    while metric_value(gateway.metrics(), "llmctl_requests_total", route="/v1/messages", code="499") <= before:
        assert time.monotonic() < deadline, "the cancelled request was not counted"
        time.sleep(0.1)


def test_x_api_key_and_bearer_both_pass_the_api_key(gateway_factory: Any) -> None:
    gw = gateway_factory("--ctx-size", "1024", api_key="s3cret")
    ask = [{"role": "user", "content": ASK}]
    for client in (anthropic.Anthropic(base_url=gw.url, api_key="s3cret", max_retries=0),  # x-api-key
                   anthropic.Anthropic(base_url=gw.url, auth_token="s3cret", max_retries=0)):  # Authorization: Bearer
        with pytest.raises(anthropic.NotFoundError):  # past the key check, to the model lookup
            client.messages.create(model="no-such-model", max_tokens=4, messages=ask)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        anthropic.Anthropic(base_url=gw.url, api_key="wrong", max_retries=0).messages.create(
            model="no-such-model", max_tokens=4, messages=ask)
    assert denied.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.url + "/v1", api_key="wrong", max_retries=0).responses.create(
            model="no-such-model", input=ASK)


# -- OpenAI's Responses API -----------------------------------------------------------------------------------------
def test_responses_with_instructions_streamed_and_not(gateway: RunningGateway, agent_model: str,
                                                      oai: openai.OpenAI) -> None:
    oai.responses.input_tokens.count(model=agent_model, input=ASK)  # loads the model: its engine has counters
    before, counted = engine_tokens(gateway, agent_model), gateway.metrics()
    r = oai.responses.create(model=agent_model, instructions=SYSTEM, input=ASK, max_output_tokens=4, store=False)
    after = engine_tokens(gateway, agent_model)
    assert r.object == "response" and r.id.startswith("resp_") and r.model == agent_model
    assert r.status in ("completed", "incomplete") and [o.type for o in r.output] == ["message"]
    assert r.output_text and r.instructions == SYSTEM and r.store is False
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens"
    usage = r.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens and 0 < usage.output_tokens <= 4
    assert (usage.input_tokens, usage.output_tokens) == (after[0] - before[0], after[1] - before[1])
    gained = metric_value(gateway.metrics(), "llmctl_generated_tokens_total", model=agent_model) \
        - metric_value(counted, "llmctl_generated_tokens_total", model=agent_model)
    assert gained == usage.output_tokens  # and the gateway's /metrics counts what the engine counted
    assert oai.responses.input_tokens.count(model=agent_model, instructions=SYSTEM, input=ASK).input_tokens \
        == usage.input_tokens

    events = list(oai.responses.create(model=agent_model, instructions=SYSTEM, input=ASK, max_output_tokens=4,
                                       stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          f"response.{r.status}"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == final.output_text
    assert (final.usage.input_tokens, final.usage.output_tokens) == (usage.input_tokens, usage.output_tokens)


def test_responses_tool_round_trip(agent_model: str, oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model=agent_model, input=CALL, tools=RESPONSES_TOOLS,
                                       tool_choice="required", max_output_tokens=40, stream=True))
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    called = events[-1].response
    call = called.output[-1]
    assert call.type == "function_call" and call.name == "weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.status == "completed" and call.call_id
    # the client runs the function and sends the whole conversation back (stateless)
    turns = [{"role": "user", "content": CALL}, call.model_dump(exclude_none=True),
             {"type": "function_call_output", "call_id": call.call_id, "output": "18 C and sunny"}]
    after = oai.responses.create(model=agent_model, input=turns, tools=RESPONSES_TOOLS, max_output_tokens=3)
    assert after.status in ("completed", "incomplete")
    assert after.usage.input_tokens > called.usage.input_tokens + 10
    assert after.usage.input_tokens == oai.responses.input_tokens.count(model=agent_model, input=turns,
                                                                        tools=RESPONSES_TOOLS).input_tokens


def test_responses_is_stateless_and_says_so(oai: openai.OpenAI) -> None:
    for extra, words in (({"store": True}, "stateless"), ({"previous_response_id": "resp_1"}, "stateless"),
                         ({"tools": [{"type": "web_search"}]}, "function tools only")):
        with pytest.raises(openai.BadRequestError) as bad:
            oai.responses.create(model=MODEL, input=ASK, **extra)
        assert bad.value.status_code == 400 and words in bad.value.message
    with pytest.raises(openai.BadRequestError, match="cannot call tools"):
        oai.responses.create(model=MODEL, input=ASK, tools=RESPONSES_TOOLS)
    with pytest.raises(openai.NotFoundError):
        oai.responses.create(model="no-such-model", input=ASK)


def test_responses_text_format_constrains_a_rendered_prompt(oai: openai.OpenAI) -> None:
    """`text.format` is a grammar on the engine in every prompt mode: the bundled model is in completion mode,
    where the engine's /completion takes it as `json_schema`."""
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    r = oai.responses.create(model=MODEL, input="Is the sky blue?", max_output_tokens=16, temperature=0,
                             text={"format": {"type": "json_schema", "name": "answer", "schema": schema}})
    assert isinstance(json.loads(r.output_text)["ok"], bool), r.output_text
