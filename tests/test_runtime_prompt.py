"""Prompt building: Ollama Go templates (checked against Ollama's own templates and expected outputs),
the completion-mode transcript, parameter mapping and llama-server response parsing.

Templates and expected renderings below are copied from ollama/ollama (MIT): `template/*.gotmpl`,
`template/testdata/<name>/<case>` and the cases of `template/template_test.go`. Only pairs whose template and
expected file come from the same Ollama era are used (system-prompt handling changed between versions).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from llmctl.errors import InvalidInput
from llmctl.runtime import gotemplate
from llmctl.runtime.events import parse_event
from llmctl.runtime.params import load_params, sampling_params
from llmctl.runtime.prompt import COMPLETION_STOPS, build_completion, completion_prompt, prompt_mode, render_template

# -- Ollama's TestTemplate: three conversations, rendered by named templates ---------------------------------
CASES = {
    "user": [{"role": "user", "content": "Hello, how are you?"}],
    "user-assistant-user": [
        {"role": "user", "content": "Hello, how are you?"},
        {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
        {"role": "user", "content": "I'd like to show off how chat templating works!"},
    ],
    "system-user-assistant-user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello, how are you?"},
        {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
        {"role": "user", "content": "I'd like to show off how chat templating works!"},
    ],
}

TEMPLATES = {
    "llama3-instruct": (
        "{{- if .Messages }}\n{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>\n"
        "{{- end }}\n{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n"
        "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ else -}}\n{{ if .System }}<|start_header_id|>"
        "system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>user"
        "<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
        "{{ .Response }}<|eot_id|>\n{{- end -}}"
    ),
    "gemma3-instruct": (
        "{{- $system := .System }}\n{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
        "{{- if eq .Role \"user\" }}<start_of_turn>user\n{{- if and (eq $i 1) $system }}\n{{ $system }}\n{{- end }}\n"
        "{{ .Content }}<end_of_turn>\n{{ else if eq .Role \"assistant\" }}<start_of_turn>model\n{{ .Content }}"
        "<end_of_turn>\n{{ end }}\n{{- if $last }}<start_of_turn>model\n{{ end }}\n{{- end }}\n"
    ),
    "mistral-instruct": (
        "{{- if .Messages }}\n{{- range $index, $_ := .Messages }}\n{{- if eq .Role \"user\" }}[INST] {{ if and "
        "$.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}\n{{ end }}{{ .Content }}\n{{- else if eq "
        ".Role \"assistant\" }}[/INST] {{ .Content }}</s>\n{{- end }}\n{{- end }}[/INST]\n{{- else -}}\n[INST] {{ if "
        ".System }}{{ .System }} {{ end }}{{ .Prompt }}[/INST] {{ .Response }}</s>\n{{- end -}}"
    ),
    "llama2-chat": (
        "{{- if .Messages }}\n{{- range $index, $_ := .Messages }}\n{{- if eq .Role \"user\" }}[INST] {{ if eq $index "
        "0 }}<<SYS>>\n{{- if $.System }}\n{{ $.System }}\n{{ end }}<</SYS>>\n\n{{ end }}{{ .Content }}\n{{- else }} "
        "[/INST] {{ .Content }}</s><s>\n{{- end }}\n{{- end }} [/INST]\n{{- else -}}\n[INST] <<SYS>>{{ if .System }}"
        "{{ .System }}{{ end }}<</SYS>>\n\n{{ .Prompt }} [/INST] {{ .Response }}</s>\n{{- end -}}"
    ),
    "chatml": (
        "{{- if .Messages }}\n{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\n{{- range "
        ".Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ else }}\n"
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}<|im_start|>user\n"
        "{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n{{- end }}"
    ),
    "alpaca": (
        "{{- $system := \"\" }}\n{{- range .Messages }}\n{{- if eq .Role \"system\" }}\n{{- if not $system }}{{ $system "
        "= .Content }}\n{{- else }}{{ $system = printf \"%s\\n\\n%s\" $system .Content }}\n{{- end }}\n{{- else if eq "
        ".Role \"user\" }}\n{{- if $system }}{{ $system }}\n\n{{ $system = \"\" }}\n{{- end }}### Instruction:\n"
        "{{ .Content }}\n\n{{ else if eq .Role \"assistant\" }}### Response:\n{{ .Content }}\n\n{{ end }}\n{{- end }}"
        "### Response:\n"
    ),
    "command-r": (
        "{{- if or .Tools .System }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>\n{{- if .Tools }}# Safety Preamble\n"
        "{{ if .System }}# User Preamble\n{{ .System }}\n{{- end }}\n\n## Available Tools\n{{- range .Tools }}\n\n"
        "def {{ .Function.Name }}(\n{{- range $name, $property := .Function.Parameters.Properties }}{{ $name }}: "
        "{{ $property.Type }}, {{ end }}) -> List[Dict]:\n{{- end }}\n{{- else if .System }}{{ .System }}\n{{- end }}"
        "<|END_OF_TURN_TOKEN|>\n{{- end }}\n{{- range .Messages }}\n{{- if eq .Role \"system\" }}\n{{- continue }}\n"
        "{{- end }}<|START_OF_TURN_TOKEN|>\n{{- if eq .Role \"user\" }}<|USER_TOKEN|>{{ .Content }}\n{{- else if eq "
        ".Role \"assistant\" }}<|CHATBOT_TOKEN|>\n{{- if .Content }}{{ .Content }}\n{{- else if .ToolCalls }}\n"
        "Action: ```json\n[\n{{- range .ToolCalls }}\n    {\n        \"tool_name\": \"{{ .Function.Name }}\",\n"
        "        \"parameters\": {{ .Function.Arguments }}\n    }\n{{- end }}\n]```\n{{- end }}\n{{- else if eq .Role "
        "\"tool\" }}<|SYSTEM_TOKEN|><results>\nconsole_output: {{ .Content }}\n</results>\n{{- end }}"
        "<|END_OF_TURN_TOKEN|>\n{{- end }}<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n"
    ),
}

EXPECTED = [
    ("gemma3-instruct", "user-assistant-user",
     "<start_of_turn>user\nHello, how are you?<end_of_turn>\n<start_of_turn>model\nI'm doing great. How can I help "
     "you today?<end_of_turn>\n<start_of_turn>user\nI'd like to show off how chat templating works!<end_of_turn>\n"
     "<start_of_turn>model\n\n"),
    ("llama3-instruct", "user-assistant-user",
     "<|start_header_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|><|start_header_id|>assistant"
     "<|end_header_id|>\n\nI'm doing great. How can I help you today?<|eot_id|><|start_header_id|>user"
     "<|end_header_id|>\n\nI'd like to show off how chat templating works!<|eot_id|><|start_header_id|>assistant"
     "<|end_header_id|>\n\n"),
    ("chatml", "user-assistant-user",
     "<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\nI'm doing great. How can I help you "
     "today?<|im_end|>\n<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n"
     "<|im_start|>assistant\n"),
    ("mistral-instruct", "user", "[INST] Hello, how are you?[/INST]"),
    ("llama2-chat", "user", "[INST] <<SYS>><</SYS>>\n\nHello, how are you? [/INST]"),
    ("alpaca", "system-user-assistant-user",
     "You are a helpful assistant.\n\n### Instruction:\nHello, how are you?\n\n### Response:\nI'm doing great. How "
     "can I help you today?\n\n### Instruction:\nI'd like to show off how chat templating works!\n\n### Response:\n"),
    ("command-r", "system-user-assistant-user",
     "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a helpful assistant.<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|>"
     "<|USER_TOKEN|>Hello, how are you?<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>I'm doing great. "
     "How can I help you today?<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>I'd like to show off how "
     "chat templating works!<|END_OF_TURN_TOKEN|><|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n"),
]


@pytest.mark.parametrize("name,case,expected", EXPECTED, ids=[f"{n}/{c}" for n, c, _ in EXPECTED])
def test_ollama_named_templates(name: str, case: str, expected: str) -> None:
    got = render_template(TEMPLATES[name], system=None, messages=CASES[case])
    if name in ("llama2-chat", "mistral-instruct") and got.endswith(" "):
        got = got[:-1]  # Ollama's test strips one trailing space for these
    assert got == expected


# -- Ollama's TestExecuteWithMessages: legacy .Prompt/.Response templates and .Messages ones agree -----------
MISTRAL_LEGACY = [
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] ",
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}",
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n{{- if eq .Role \"user\" }}"
    "{{ .Content }}[/INST] {{ else if eq .Role \"assistant\" }}{{ .Content }}[INST] {{ end }}\n{{- end }}",
]
EXEC_CASES = [
    (MISTRAL_LEGACY,
     [("user", "Hello friend!"), ("assistant", "Hello human!"), ("user", "What is your name?")],
     "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] "),
    (MISTRAL_LEGACY,
     [("system", "You are a helpful assistant!"), ("user", "Hello friend!"), ("assistant", "Hello human!"),
      ("user", "What is your name?")],
     "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] "),
    (["[INST] {{ .Prompt }}[/INST] ", "[INST] {{ .Prompt }}[/INST] {{ .Response }}",
      "\n{{- range $i, $m := .Messages }}\n{{- if eq .Role \"user\" }}[INST] {{ .Content }}[/INST] {{ else if eq "
      ".Role \"assistant\" }}{{ .Content }}{{ end }}\n{{- end }}"],
     [("user", "Hello friend!"), ("assistant", "Hello human!"), ("user", "What is your name?"),
      ("assistant", "My name is Ollama and I")],
     "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] My name is Ollama and I"),
    (["{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}<|im_start|>user\n"
      "{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n",
      "\n{{- range $index, $_ := .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
      "<|im_start|>assistant\n"],
     [("system", "You are a helpful assistant!"), ("user", "Hello friend!"), ("assistant", "Hello human!"),
      ("user", "What is your name?")],
     "<|im_start|>system\nYou are a helpful assistant!<|im_end|>\n<|im_start|>user\nHello friend!<|im_end|>\n"
     "<|im_start|>assistant\nHello human!<|im_end|>\n<|im_start|>user\nWhat is your name?<|im_end|>\n"
     "<|im_start|>assistant\n"),
]


@pytest.mark.parametrize("templates,turns,expected", EXEC_CASES)
def test_ollama_execute_with_messages(templates: list[str], turns: list[tuple[str, str]], expected: str) -> None:
    messages = [{"role": r, "content": c} for r, c in turns]
    for template in templates:
        assert render_template(template, system=None, messages=messages) == expected, template


def test_ollama_suffix_template_without_suffix_renders_prompt() -> None:
    t = "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n{{- end }}"
    assert render_template(t, system=None, messages=[{"role": "user", "content": "hello"}]) == "hello"


def test_prompt_and_system_arguments_and_identifiers() -> None:
    # Ollama's TestParse variable sets, and the prompt/system/response keyword arguments
    assert gotemplate.parse("{{ .System }} {{ .Prompt }}").identifiers() == {"system", "prompt"}
    names = gotemplate.parse('{{ range .Messages }}{{ if eq .Role "tool" }}{{ .ToolName }}{{ end }}{{ end }}')
    assert names.identifiers() == {"messages", "role", "toolname"}
    t = "{{ if .System }}S:{{ .System }}\n{{ end }}U:{{ .Prompt }}\nA:{{ .Response }}<end>"
    assert render_template(t, system="be brief", messages=[], prompt="hi") == "S:be brief\nU:hi\nA:"
    assert render_template(t, system=None, messages=[], prompt="hi", response="Hel") == "U:hi\nA:Hel"
    # earlier turns render whole, the last is cut after .Response
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert render_template(t, system=None, messages=msgs) == "U:a\nA:b<end>U:c\nA:"


def test_collate_merges_consecutive_roles_but_not_tools() -> None:
    t = "{{ range .Messages }}[{{ .Role }}|{{ .Content }}]{{ end }}|{{ .System }}"
    msgs = [{"role": "system", "content": "s1"}, {"role": "system", "content": "s2"},
            {"role": "user", "content": "Hello"}, {"role": "user", "content": "How are you?"},
            {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "72F"}]
    assert render_template(t, system=None, messages=msgs) == (
        "[system|s1\n\ns2][user|Hello\n\nHow are you?][tool|sunny][tool|72F]|s1\n\ns2")


# -- the interpreter itself -----------------------------------------------------------------------------------
@pytest.mark.parametrize("source,data,expected", [
    ("a  {{- 1 -}}  b", {}, "a1b"),
    ("a {{- /* note */ -}} b", {}, "ab"),
    ("{{/* c */}}x", {}, "x"),
    ("{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}", {"M": {"b": 2, "a": 1}}, "a=1;b=2;"),
    ("{{ range 3 }}{{ . }}{{ end }}", {}, "012"),
    ("{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}",
     {"L": [1, 2, 3, 4, 5]}, "13"),
    ("{{ range .L }}x{{ else }}empty{{ end }}", {"L": []}, "empty"),
    ("{{ with .A }}{{ .B }}{{ else }}none{{ end }}", {"A": {"B": "b"}}, "b"),
    ("{{ with .A }}{{ .B }}{{ else with .C }}c={{ . }}{{ end }}", {"A": None, "C": 7}, "c=7"),
    ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", {}, "2"),
    ("{{ or .Missing \"dflt\" }}|{{ and 1 0 }}|{{ not .E }}", {"E": ""}, "dflt|0|true"),
    ("{{ .A | printf \"%s!\" }}", {"A": "hi"}, "hi!"),
    ("{{ printf \"%q %d %.2f %v\" \"s\" 3 1.5 true }}", {}, '"s" 3 1.50 true'),
    ("{{ index .L 1 }} {{ index .M \"k\" }} {{ len .L }} {{ slice .L 1 2 }}", {"L": [1, 2, 3], "M": {"k": "v"}},
     "2 v 3 [2]"),
    ("{{ (index .L 0).Name }} {{ $.Top }}", {"L": [{"name": "n"}], "Top": "t"}, "n t"),
    ("{{ json .M }}", {"M": {"a": "<b>"}}, '{"a":"\\u003cb\\u003e"}'),
    ("{{ if lt 1 2 }}lt{{ end }}{{ if ne \"a\" \"b\" }}ne{{ end }}{{ if eq 1 2 3 1 }}eq{{ end }}", {}, "ltneeq"),
    ("{{ print 1 2 \"a\" 3 }}", {}, "1 2a3"),
    ("{{ \"\\u00e9\\t\" }}{{ `raw\\n` }}", {}, "é\traw\\n"),
    ("{{ printf \"%c%c\" 'o' 'k' }}", {}, "ok"),
])
def test_go_template_features(source: str, data: dict, expected: str) -> None:
    assert gotemplate.parse(source).execute(data) == expected


@pytest.mark.parametrize("source", ["{{ if .A }}x", "{{ end }}", "{{ .A", "{{ nosuchfunc 1 }}", "{{ define \"x\" }}{{ end }}",
                                    "{{ (1 }}"])
def test_bad_templates_raise_invalid_input(source: str) -> None:
    with pytest.raises(InvalidInput):
        render_template(source, system=None, messages=[{"role": "user", "content": "x"}])


# -- completion mode, parameters, requests --------------------------------------------------------------------
def test_completion_prompt_transcript() -> None:
    assert completion_prompt([{"role": "user", "content": " Why is the sky blue? "}]) == (
        "Q: Why is the sky blue?\nA:")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert completion_prompt(msgs) == "Be brief.\n\nQ: a\nA: b\n\nQ: c\nA:"


def test_sampling_and_load_params() -> None:
    params = {"temperature": 0.2, "top_k": 5, "top_p": 0.5, "min_p": 0.1, "typical_p": 0.9, "repeat_penalty": 1.2,
              "repeat_last_n": 32, "presence_penalty": 0.3, "frequency_penalty": 0.4, "seed": 7, "num_predict": 12,
              "stop": ["x", ""], "num_keep": 4, "mirostat": 2, "mirostat_tau": 4.0, "mirostat_eta": 0.2,
              "num_ctx": 2048, "num_thread": 2, "num_gpu": 0, "penalize_newline": True}
    s = sampling_params(params)
    assert s == {"temperature": 0.2, "top_k": 5, "top_p": 0.5, "min_p": 0.1, "typical_p": 0.9, "repeat_penalty": 1.2,
                 "repeat_last_n": 32, "presence_penalty": 0.3, "frequency_penalty": 0.4, "seed": 7, "n_predict": 12,
                 "max_tokens": 12, "stop": ["x"], "n_keep": 4, "mirostat": 2, "mirostat_tau": 4.0,
                 "mirostat_eta": 0.2}
    assert sampling_params({"stop": "one"}) == {"stop": ["one"]}
    assert load_params(params) == {"ctx_size": 2048, "threads": 2, "gpu_layers": 0}


def _model(**kw):
    base = dict(chat_template=None, template=None, system=None, parameters={}, messages=(), weights=())
    return SimpleNamespace(**{**base, **kw})


def test_build_completion_jinja_mode_uses_chat_endpoint() -> None:
    m = _model(chat_template="{{ messages }}", system="sys", parameters={"temperature": 0.1, "stop": ["<x>"]},
               messages=(SimpleNamespace(role="user", content="u0"), SimpleNamespace(role="assistant", content="a0")))
    req = build_completion(m, [{"role": "user", "content": "hi"}], {"temperature": 0.5})
    assert req.mode == "jinja" and req.endpoint == "/v1/chat/completions"
    assert [x["role"] for x in req.body["messages"]] == ["system", "user", "assistant", "user"]
    assert req.body["temperature"] == 0.5 and req.body["stop"] == ["<x>"] and req.body["stream"] is True
    # the caller's own system message replaces the model's SYSTEM
    req = build_completion(m, [{"role": "system", "content": "mine"}, {"role": "user", "content": "hi"}])
    assert [x["content"] for x in req.body["messages"] if x["role"] == "system"] == ["mine"]


def test_build_completion_template_mode_renders_prompt() -> None:
    m = _model(template="{{ if .System }}[{{ .System }}]{{ end }}Q:{{ .Prompt }} A:{{ .Response }}", system="terse",
               parameters={"num_predict": 9})
    req = build_completion(m, [{"role": "user", "content": "hello"}], stream=False)
    assert req.mode == "template" and req.endpoint == "/completion"
    assert req.body["prompt"] == "[terse]Q:hello A:" and req.body["n_predict"] == 9 and req.body["stream"] is False


def test_build_completion_base_model_has_stops_and_limit(gemma_gguf: Path) -> None:
    m = _model(weights=(gemma_gguf,))
    assert prompt_mode(m) == "completion"  # the default Gemma GGUF carries no chat template
    req = build_completion(m, [{"role": "user", "content": "Why?"}], {"stop": ["END"]})
    assert req.endpoint == "/completion" and req.body["prompt"] == "Q: Why?\nA:"
    assert req.body["stop"][0] == "END" and set(COMPLETION_STOPS) <= set(req.body["stop"])
    assert req.body["n_predict"] > 0
    retry = req.fallback()
    assert retry is not None and retry.body["ignore_eos"] is True and retry.body["stop"] == ["END"]
    assert retry.fallback() is None


def test_parse_event_both_apis() -> None:
    d = parse_event("/completion", {"content": "x", "stop": False})
    assert (d.text, d.done) == ("x", False)
    d = parse_event("/completion", {"content": "", "stop": True, "stop_type": "limit", "tokens_evaluated": 5,
                                     "tokens_predicted": 3, "timings": {"predicted_n": 3}, "prompt": "<bos>p"})
    assert d.done and d.finish_reason == "length" and d.prompt_tokens == 5 and d.prompt == "<bos>p"
    d = parse_event("/v1/chat/completions", {"choices": [{"delta": {"content": "y"}, "finish_reason": None}]})
    assert (d.text, d.done) == ("y", False)
    d = parse_event("/v1/chat/completions", {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2},
                                              "timings": {"predicted_n": 2}})
    assert d.done and d.completion_tokens == 2
