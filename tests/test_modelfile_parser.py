"""Modelfile parsing: Ollama's own test cases, ported, plus the checks `ollama create` adds and our error lines.

The tables marked "ollama parser_test.go" are ported from ollama/ollama `parser/parser_test.go` (TestParseFile*,
TestParseMultiByte, TestCreateRequest): same inputs, same expected commands. Where Ollama only asserts an
error *kind* (io.ErrUnexpectedEOF, ParserError), we assert our exact reason text and line, since those are
what a user reads. Inputs with parameter names Ollama's test makes up (`param1`) go through
`parse_commands` (the syntax layer, Ollama's ParseFile); `parse()` also rejects unknown parameters.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from llmctl.errors import InvalidInput, InvalidModelfile
from llmctl.modelfile import (
    DEPRECATED_PARAMETERS,
    KNOWN_PARAMETERS,
    Command,
    Message,
    Modelfile,
    coerce_parameter,
    parse,
    parse_commands,
)
from llmctl.modelfile.parser import ERR_INVALID_COMMAND, ERR_INVALID_ROLE

REPO = Path(__file__).resolve().parents[1]

LLAMA3_TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
)


def pairs(commands: list[Command]) -> list[tuple[str, str]]:
    """(name, args) of each command: what Ollama's tests compare."""
    return [(c.name, c.args) for c in commands]


def parse_error(text: str | bytes, path: str | None = "Modelfile") -> InvalidModelfile:
    with pytest.raises(InvalidModelfile) as info:
        parse(text, path)
    return info.value


# --- ollama parser_test.go: TestParseFileFile, TestParseFileTrimSpace ------------------------------------


def test_parse_file_file() -> None:
    """ollama TestParseFileFile: every instruction kind; a \"\"\" value followed by trailing blanks."""
    text = (
        "\nFROM model1\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\nPARAMETER param2 value2\n"
        f'TEMPLATE """{LLAMA3_TEMPLATE}"""    \n'
    )
    assert pairs(parse_commands(text)) == [
        ("model", "model1"),
        ("adapter", "adapter1"),
        ("license", "MIT"),
        ("param1", "value1"),
        ("param2", "value2"),
        ("template", LLAMA3_TEMPLATE),
    ]


def test_parse_file_trim_space() -> None:
    """ollama TestParseFileTrimSpace: unquoted values are trimmed, quoted ones keep their inner blanks."""
    tpl = "   " + LLAMA3_TEMPLATE + "   "
    text = (
        '\nFROM "     model 1"\nADAPTER      adapter3\nLICENSE "MIT       "\nPARAMETER param1        value1\n'
        f'PARAMETER param2    value2\nTEMPLATE """{tpl}"""    \n'
    )
    assert pairs(parse_commands(text)) == [
        ("model", "     model 1"),
        ("adapter", "adapter3"),
        ("license", "MIT       "),
        ("param1", "value1"),
        ("param2", "value2"),
        ("template", tpl),
    ]


# --- ollama parser_test.go: TestParseFileFrom --------------------------------------------------------------

FROM_CASES = [
    ('FROM "FOO  BAR  "', [("model", "FOO  BAR  ")]),
    ('FROM "FOO BAR"\nPARAMETER param1 value1', [("model", "FOO BAR"), ("param1", "value1")]),
    ("FROM     FOOO BAR    ", [("model", "FOOO BAR")]),
    ("FROM /what/is/the path ", [("model", "/what/is/the path")]),
    ("FROM foo", [("model", "foo")]),
    ("FROM /path/to/model", [("model", "/path/to/model")]),
    ("FROM /path/to/model/fp16.bin", [("model", "/path/to/model/fp16.bin")]),
    ("FROM llama3:latest", [("model", "llama3:latest")]),
    ("FROM llama3:7b-instruct-q4_K_M", [("model", "llama3:7b-instruct-q4_K_M")]),
    ("PARAMETER param1 value1\nFROM foo", [("param1", "value1"), ("model", "foo")]),
    (
        "PARAMETER what the \nFROM lemons make lemonade ",
        [("what", "the"), ("model", "lemons make lemonade")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), FROM_CASES)
def test_parse_file_from(text: str, expected: list[tuple[str, str]]) -> None:
    """ollama TestParseFileFrom, the cases that parse."""
    assert pairs(parse_commands(text)) == expected


@pytest.mark.parametrize("text", ["", "PARAMETER param1 value1", "# only a comment\n", "SYSTEM hi\n"])
def test_parse_file_from_missing(text: str) -> None:
    """ollama TestParseFileFrom, errMissingFrom cases: no line to point at, so none is given."""
    err = parse_error(text)
    assert (err.reason, err.line, str(err)) == ("no FROM line", None, "Modelfile: no FROM line")


# --- ollama parser_test.go: TestParseFileParametersMissingValue, TestParseFileBadCommand ------------------


def test_parse_file_parameters_missing_value() -> None:
    """ollama TestParseFileParametersMissingValue (Ollama: io.ErrUnexpectedEOF)."""
    err = parse_error("\nFROM foo\nPARAMETER param1\n")
    assert (err.reason, err.line) == ("missing value for parameter param1", 3)


def test_parse_file_bad_command() -> None:
    """ollama TestParseFileBadCommand: ParserError at line 3, errInvalidCommand."""
    err = parse_error("\nFROM foo\nBADCOMMAND param1 value1\n")
    assert err.line == 3
    assert err.reason == f"unknown instruction 'BADCOMMAND': {ERR_INVALID_COMMAND}"
    assert str(err) == f"Modelfile:3: unknown instruction 'BADCOMMAND': {ERR_INVALID_COMMAND}"


@pytest.mark.parametrize("keyword", ["DRAFT", "RENDERER", "PARSER", "REQUIRES", "draft"])
def test_newer_ollama_instructions_refused(keyword: str) -> None:
    """ollama TestParseFileDraft/Renderer/Parser accept these; llmctl refuses them by name (see docs)."""
    err = parse_error(f"\nFROM foo\n{keyword} something\n")
    assert err.line == 3
    assert err.reason == f"unsupported instruction {keyword.upper()} (Ollama-only): {ERR_INVALID_COMMAND}"


# --- ollama parser_test.go: TestParseFileMessages ----------------------------------------------------------

MESSAGE_CASES = [
    (
        "\nFROM foo\nMESSAGE system You are a file parser. Always parse things.\n",
        [("model", "foo"), ("message", "system: You are a file parser. Always parse things.")],
    ),
    (
        "\nFROM foo\nMESSAGE system You are a file parser. Always parse things.",
        [("model", "foo"), ("message", "system: You are a file parser. Always parse things.")],
    ),
    (
        (
            "\nFROM foo\nMESSAGE system You are a file parser. Always parse things.\nMESSAGE user Hey there!\n"
            "MESSAGE assistant Hello, I want to parse all the things!\n"
        ),
        [
            ("model", "foo"),
            ("message", "system: You are a file parser. Always parse things."),
            ("message", "user: Hey there!"),
            ("message", "assistant: Hello, I want to parse all the things!"),
        ],
    ),
    (
        '\nFROM foo\nMESSAGE system """\nYou are a multiline file parser. Always parse things.\n"""\n\t\t\t',
        [("model", "foo"), ("message", "system: \nYou are a multiline file parser. Always parse things.\n")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), MESSAGE_CASES)
def test_parse_file_messages(text: str, expected: list[tuple[str, str]]) -> None:
    """ollama TestParseFileMessages, the cases that parse; also through parse()'s typed view."""
    mf = parse(text)
    assert pairs(mf.commands) == expected
    expected_messages = [tuple(args.split(": ", 1)) for name, args in expected if name == "message"]
    assert [(m.role, m.content) for m in mf.messages] == expected_messages


MESSAGE_ERRORS = [
    # ollama: ParserError{LineNumber: 3, errInvalidMessageRole}
    ("\nFROM foo\nMESSAGE badguy I'm a bad guy!\n", 3, f"invalid message role 'badguy': {ERR_INVALID_ROLE}"),
    # ollama: io.ErrUnexpectedEOF, both
    ("\nFROM foo\nMESSAGE system\n", 3, "missing value for MESSAGE system"),
    ("\nFROM foo\nMESSAGE system", 3, "missing value for MESSAGE system"),
    # ours: roles are case-sensitive in Ollama too; punctuation after the role
    ("FROM foo\nMESSAGE User hi\n", 2, f"invalid message role 'User': {ERR_INVALID_ROLE}"),
    ("FROM foo\nMESSAGE user: hi\n", 2, f"invalid message role 'user:': {ERR_INVALID_ROLE}"),
    ("FROM foo\nMESSAGE  user hi\n", 2, f"invalid message role '': {ERR_INVALID_ROLE}"),
    ("FROM foo\nMESSAGE \n", 2, "missing role and value after MESSAGE"),
    ("FROM foo\nMESSAGE", 2, "missing value for MESSAGE"),
    ("FROM foo\nMESSAGE badguy", 2, f"invalid message role 'badguy': {ERR_INVALID_ROLE}"),
]


@pytest.mark.parametrize(("text", "line", "reason"), MESSAGE_ERRORS)
def test_parse_file_messages_errors(text: str, line: int, reason: str) -> None:
    err = parse_error(text)
    assert (err.line, err.reason) == (line, reason)


# --- ollama parser_test.go: TestParseFileQuoted ------------------------------------------------------------

QUOTED_CASES = [
    ('\nFROM foo\nSYSTEM """\nThis is a\nmultiline system.\n"""\n\t\t\t', "\nThis is a\nmultiline system.\n"),
    ('\nFROM foo\nSYSTEM """\nThis is a\nmultiline system."""\n\t\t\t', "\nThis is a\nmultiline system."),
    ('\nFROM foo\nSYSTEM """This is a\nmultiline system."""\n\t\t\t', "This is a\nmultiline system."),
    ('\nFROM foo\nSYSTEM """This is a multiline system."""\n\t\t\t', "This is a multiline system."),
    (
        '\nFROM foo\nSYSTEM """\nThis is a multiline system with "quotes".\n"""\n',
        '\nThis is a multiline system with "quotes".\n',
    ),
    ('\nFROM foo\nSYSTEM """"""\n', ""),
    ('\nFROM foo\nSYSTEM ""\n', ""),
    ('\nFROM foo\nSYSTEM "\'"\n', "'"),
    ('\nFROM foo\nSYSTEM """\'\'"\'""\'""\'"\'\'\'\'\'""\'""\'"""\n', "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'"),
]


@pytest.mark.parametrize(("text", "system"), QUOTED_CASES)
def test_parse_file_quoted(text: str, system: str) -> None:
    """ollama TestParseFileQuoted, the cases that parse: quotes stripped, inner text verbatim, no escapes."""
    mf = parse(text)
    assert pairs(mf.commands) == [("model", "foo"), ("system", system)]
    assert mf.system == system


def test_parse_file_quoted_template_at_eof() -> None:
    """ollama TestParseFileQuoted, last case: a \"\"\" value closed by the end of the file."""
    mf = parse('\nFROM foo\nTEMPLATE """\n{{ .Prompt }}\n"""')
    assert pairs(mf.commands) == [("model", "foo"), ("template", "\n{{ .Prompt }}\n")]


QUOTED_ERRORS = [
    # ollama TestParseFileQuoted: io.ErrUnexpectedEOF, both
    ('\nFROM foo\nSYSTEM """This is a multiline system.""\n\t\t\t', 3, '"""'),
    ('\nFROM foo\nSYSTEM "\n\t\t\t', 3, '"'),
    # ours: the error points at the instruction that opened the string, not at the end of the file
    ('FROM foo\n\nTEMPLATE """\n{{ .Prompt }}\n\nPARAMETER stop x\n', 3, '"""'),
    ('FROM foo\nSYSTEM "a" b\nPARAMETER stop x\n', 2, '"'),
]


@pytest.mark.parametrize(("text", "line", "quote"), QUOTED_ERRORS)
def test_parse_file_quoted_errors(text: str, line: int, quote: str) -> None:
    err = parse_error(text)
    assert err.line == line
    assert err.reason == f"unterminated {quote} string: reached the end of the file looking for the closing {quote}"


# --- ollama parser_test.go: TestParseFileParameters --------------------------------------------------------

# name value text -> (name, args) from the syntax layer, as in Ollama's map.
PARAMETER_CASES = {
    "numa true": ("numa", "true"),
    "num_ctx 1": ("num_ctx", "1"),
    "num_batch 1": ("num_batch", "1"),
    "num_gqa 1": ("num_gqa", "1"),
    "num_gpu 1": ("num_gpu", "1"),
    "main_gpu 1": ("main_gpu", "1"),
    "use_mmap true": ("use_mmap", "true"),
    "num_thread 1": ("num_thread", "1"),
    "num_keep 1": ("num_keep", "1"),
    "seed 1": ("seed", "1"),
    "num_predict 1": ("num_predict", "1"),
    "top_k 1": ("top_k", "1"),
    "top_p 1.0": ("top_p", "1.0"),
    "min_p 0.05": ("min_p", "0.05"),
    "typical_p 1.0": ("typical_p", "1.0"),
    "repeat_last_n 1": ("repeat_last_n", "1"),
    "temperature 1.0": ("temperature", "1.0"),
    "repeat_penalty 1.0": ("repeat_penalty", "1.0"),
    "presence_penalty 1.0": ("presence_penalty", "1.0"),
    "frequency_penalty 1.0": ("frequency_penalty", "1.0"),
    "penalize_newline true": ("penalize_newline", "true"),
    "stop ### User:": ("stop", "### User:"),
    "stop ### User: ": ("stop", "### User:"),
    'stop "### User:"': ("stop", "### User:"),
    'stop "### User: "': ("stop", "### User: "),
    'stop """### User:"""': ("stop", "### User:"),
    'stop """### User:\n"""': ("stop", "### User:\n"),
    "stop <|endoftext|>": ("stop", "<|endoftext|>"),
    "stop <|eot_id|>": ("stop", "<|eot_id|>"),
    "stop </s>": ("stop", "</s>"),
}


@pytest.mark.parametrize(("line", "expected"), PARAMETER_CASES.items(), ids=list(PARAMETER_CASES))
def test_parse_file_parameters(line: str, expected: tuple[str, str]) -> None:
    """ollama TestParseFileParameters: `FROM foo` + `PARAMETER <line>`, through the syntax layer."""
    assert pairs(parse_commands(f"FROM foo\nPARAMETER {line}\n")) == [("model", "foo"), expected]


@pytest.mark.parametrize(("line", "expected"), PARAMETER_CASES.items(), ids=list(PARAMETER_CASES))
def test_parse_file_parameters_checked(line: str, expected: tuple[str, str]) -> None:
    """The same lines through parse(): known ones get their type, numa/num_gqa (gone from Ollama) are refused."""
    name, args = expected
    text = f"FROM foo\nPARAMETER {line}\n"
    if name in KNOWN_PARAMETERS:
        kind = KNOWN_PARAMETERS[name]
        want = [args] if kind is list else {"true": True}.get(args) if kind is bool else kind(args)
        assert parse(text).parameters == {name: want}
    elif name in DEPRECATED_PARAMETERS:
        mf = parse(text)
        assert (mf.parameters, pairs(mf.commands)[1]) == ({}, expected)
    else:
        err = parse_error(text)
        assert (err.line, err.reason) == (2, f"unknown parameter '{name}'")


# --- ollama parser_test.go: TestParseFileComments ----------------------------------------------------------

COMMENT_CASES = [
    ("\n# comment\nFROM foo\n\t", [("model", "foo")]),  # ollama TestParseFileComments
    ("  # indented comment\nFROM foo # not a comment\n", [("model", "foo # not a comment")]),
    ("#FROM bar\nFROM foo\n#SYSTEM x\n", [("model", "foo")]),
    (
        'FROM foo\nSYSTEM """\n# kept: inside a string\n"""\n',
        [("model", "foo"), ("system", "\n# kept: inside a string\n")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), COMMENT_CASES)
def test_parse_file_comments(text: str, expected: list[tuple[str, str]]) -> None:
    assert pairs(parse(text).commands) == expected


# --- ollama parser_test.go: TestParseFileUTF16ParseFile, TestParseMultiByte ---------------------------------

UTF16_TEXT = "FROM bob\nPARAMETER param1 1\nPARAMETER param2 4096\nSYSTEM You are a utf16 file.\n"


@pytest.mark.parametrize(("bom", "codec"), [(b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")], ids=["le", "be"])
def test_parse_file_utf16(bom: bytes, codec: str) -> None:
    """ollama TestParseFileUTF16ParseFile: a BOM selects UTF-16 in either byte order."""
    data = bom + UTF16_TEXT.encode(codec)
    assert pairs(parse_commands(data)) == [
        ("model", "bob"),
        ("param1", "1"),
        ("param2", "4096"),
        ("system", "You are a utf16 file."),
    ]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be"])
def test_parse_multibyte(encoding: str) -> None:
    """ollama TestParseMultiByte: CJK and an astral-plane emoji, in UTF-8 and BOM-marked UTF-16."""
    text = "FROM test\n\tSYSTEM 你好👋"
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    mf = parse(bom + text.encode(encoding))
    assert pairs(mf.commands) == [("model", "test"), ("system", "你好👋")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    """Go's UTF-8 decoder replaces bad bytes with U+FFFD rather than failing; so do we."""
    assert parse(b"FROM foo\nSYSTEM caf\xe9!\n").system == "caf\ufffd!"


# --- ollama parser_test.go: TestCreateRequest (the typed views are our CreateRequest) ----------------------

CREATE_REQUEST_CASES = [
    ("FROM test", {"froms": ["test"]}),
    ("FROM test\nTEMPLATE some template\n", {"froms": ["test"], "template": "some template"}),
    (
        "FROM test\nLICENSE single license\nPARAMETER temperature 0.5\nMESSAGE user Hello\n",
        {
            "froms": ["test"],
            "licenses": ["single license"],
            "parameters": {"temperature": 0.5},
            "messages": [Message("user", "Hello")],
        },
    ),
    (
        (
            "FROM test\nPARAMETER temperature 0.5\nPARAMETER top_k 1\nSYSTEM You are a bot.\nLICENSE license1\n"
            "LICENSE license2\nMESSAGE user Hello there!\nMESSAGE assistant Hi! How are you?\n"
        ),
        {
            "froms": ["test"],
            "licenses": ["license1", "license2"],
            "system": "You are a bot.",
            "parameters": {"temperature": 0.5, "top_k": 1},
            "messages": [Message("user", "Hello there!"), Message("assistant", "Hi! How are you?")],
        },
    ),
]


def views(mf: Modelfile) -> dict[str, object]:
    """Every typed view, with the defaults left out, to compare against a CreateRequest-like dict."""
    out = {
        "froms": mf.froms(),
        "template": mf.template,
        "system": mf.system,
        "adapters": mf.adapters,
        "licenses": mf.licenses,
        "parameters": mf.parameters,
        "messages": mf.messages,
    }
    return {k: v for k, v in out.items() if v not in (None, [], {})}


@pytest.mark.parametrize(("text", "expected"), CREATE_REQUEST_CASES)
def test_create_request(text: str, expected: dict[str, object]) -> None:
    mf = parse(text)
    assert views(mf) == expected
    assert type(mf.parameters.get("top_k", 0)) is int  # Ollama: int64, not float


# --- beyond Ollama's tests: views, case, CRLF, dropped characters, lines -----------------------------------


def test_views_last_wins_and_lists_accumulate() -> None:
    mf = parse(
        "FROM a.gguf\nFROM b.gguf\nSYSTEM one\nSYSTEM two\nTEMPLATE t1\nTEMPLATE t2\nADAPTER x.gguf\n"
        "ADAPTER y.gguf\nPARAMETER temperature 0.1\nPARAMETER temperature 0.2\nPARAMETER stop a\nPARAMETER stop b\n"
        "PARAMETER mirostat 2\n"
    )
    assert mf.froms() == ["a.gguf", "b.gguf"]
    assert (mf.system, mf.template) == ("two", "t2")
    assert mf.adapters == ["x.gguf", "y.gguf"]
    assert mf.parameters == {"temperature": 0.2, "stop": ["a", "b"]}  # mirostat: deprecated, dropped


def test_command_for_points_at_first_occurrence() -> None:
    mf = parse("# header\nFROM a\n\nPARAMETER stop x\nPARAMETER stop y\n", "M")
    assert (mf.command_for("model").line, mf.command_for("stop").line) == (2, 4)  # type: ignore[union-attr]
    assert mf.command_for("adapter") is None


def test_instructions_are_case_insensitive_and_parameter_names_lowercased() -> None:
    mf = parse("from foo\nSyStEm hi\nparameter Temperature 0.5\nPaRaMeTeR STOP x\nmessage user hey\n")
    assert pairs(mf.commands) == [
        ("model", "foo"),
        ("system", "hi"),
        ("temperature", "0.5"),
        ("stop", "x"),
        ("message", "user: hey"),
    ]


def test_crlf_line_endings() -> None:
    """CRLF ends lines like LF (and counts once); inside an open \"\"\" string it is kept, as Ollama keeps it."""
    text = 'FROM foo\r\nSYSTEM hello  \r\n\r\nTEMPLATE """a\r\nb"""\r\nPARAMETER stop x\r\n'
    mf = parse(text)
    assert pairs(mf.commands) == [("model", "foo"), ("system", "hello"), ("template", "a\r\nb"), ("stop", "x")]
    assert [c.line for c in mf.commands] == [1, 2, 4, 6]
    err = parse_error("FROM foo\r\n\r\nPARAMETER foo 1\r\n")
    assert (err.line, err.reason) == (3, "unknown parameter 'foo'")


def test_lone_cr_is_a_line_break() -> None:
    assert pairs(parse("FROM foo\rSYSTEM x\r").commands) == [("model", "foo"), ("system", "x")]


def test_tabs_separate_and_are_kept_inside_values() -> None:
    mf = parse("FROM\tfoo\nSYSTEM\ta\tb\t\nPARAMETER\tstop\t\tx\n")
    assert pairs(mf.commands) == [("model", "foo"), ("system", "a\tb"), ("stop", "x")]


def test_non_printable_characters_are_dropped_as_ollama_drops_them() -> None:
    """strconv.IsPrint: controls, zero-width and non-ASCII spaces vanish, even inside quotes."""
    mf = parse('FROM foo\nSYSTEM "a\x00b\u200bc\u00a0d\x1b"\n')
    assert mf.system == "abcd"


def test_utf8_bom_is_skipped() -> None:
    assert parse(b"\xef\xbb\xbfFROM foo\n").froms() == ["foo"]


@pytest.mark.parametrize("invisible", ["\ufeff", "\u200b", "\x00"])
def test_invisible_character_before_an_instruction_is_ignored(invisible: str) -> None:
    """Ollama starts the instruction name at it but never stores it (not printable): the name still reads FROM."""
    mf = parse(f"{invisible}FROM foo\n{invisible}SYSTEM hi\n")
    assert pairs(mf.commands) == [("model", "foo"), ("system", "hi")]


def test_value_extends_until_its_quotes_close() -> None:
    """A "..." string may span lines too, and a quote inside an unquoted value is just text."""
    mf = parse('FROM foo\nSYSTEM "line one\nline two"\nLICENSE say "hi" now\n')
    assert (mf.system, mf.licenses) == ("line one\nline two", ['say "hi" now'])


SYNTAX_ERRORS = [
    ("FROM\n", 1, "missing value for FROM"),
    ("FROM", 1, "missing value for FROM"),
    ("FROM foo\nsystem\nx\n", 2, "missing value for SYSTEM"),
    ("FROM foo\n  FROMX bar\n", 2, f"unknown instruction 'FROMX': {ERR_INVALID_COMMAND}"),
    ("FROM foo\nFROM1 bar\n", 2, f"unknown instruction 'FROM1': {ERR_INVALID_COMMAND}"),
    ("FROM foo\nSTOP x\n", 2, f"unknown instruction 'STOP': {ERR_INVALID_COMMAND}"),
    ("FROM foo\nfoo\n", 2, f"unknown instruction 'foo': {ERR_INVALID_COMMAND}"),
    ("FROM foo\nPARAMETER\n", 2, "missing value for PARAMETER"),
    ("FROM foo\nPARAMETER \n", 2, "missing parameter name and value after PARAMETER"),
    ("FROM foo\nPARAMETER temperature", 2, "missing value for parameter temperature"),
    ("FROM foo\nPARAMETER top-k 1\n", 2, "invalid parameter name 'top-k': use letters, digits and _"),
    ("FROM foo\nPARAMETER system hi\n", 2, "unknown parameter 'system'"),
    ("FROM foo\nPARAMETER model bar\n", 2, "unknown parameter 'model'"),
]


@pytest.mark.parametrize(("text", "line", "reason"), SYNTAX_ERRORS)
def test_syntax_errors(text: str, line: int, reason: str) -> None:
    err = parse_error(text)
    assert (err.line, err.reason) == (line, reason)


CHECK_ERRORS = [
    ("FROM \n", 1, "missing value for FROM"),  # Ollama's parser takes an empty FROM; create then fails
    ('FROM foo\nADAPTER ""\n', 2, "missing value for ADAPTER"),
    ("FROM foo\nPARAMETER  temperature 1\n", 2, "missing parameter name after PARAMETER"),
    (
        "FROM foo\n\nPARAMETER temperature abc\n",
        3,
        "invalid value for parameter temperature: 'abc' (expected a number)",
    ),
    ("FROM foo\nPARAMETER temperature \n", 2, "invalid value for parameter temperature: '' (expected a number)"),
    ("FROM foo\nPARAMETER num_ctx 4k\n", 2, "invalid value for parameter num_ctx: '4k' (expected an integer)"),
    ("FROM foo\nPARAMETER num_ctx 2.0\n", 2, "invalid value for parameter num_ctx: '2.0' (expected an integer)"),
    ("FROM foo\nPARAMETER use_mmap yes\n", 2, "invalid value for parameter use_mmap: 'yes' (expected true or false)"),
    (
        "FROM foo\nPARAMETER seed 9223372036854775808\n",
        2,
        "invalid value for parameter seed: '9223372036854775808' (out of range)",
    ),
    ("FROM foo\nPARAMETER top_p 1e39\n", 2, "invalid value for parameter top_p: '1e39' (out of range)"),
    ("FROM foo\nPARAMETER tfs_z 1\n", 2, "unknown parameter 'tfs_z'"),
]


@pytest.mark.parametrize(("text", "line", "reason"), CHECK_ERRORS)
def test_create_checks(text: str, line: int, reason: str) -> None:
    """What Ollama's CreateRequest/FormatParams reject, reported by parse() with the line."""
    err = parse_error(text)
    assert (err.line, err.reason) == (line, reason)
    assert str(err) == f"Modelfile:{line}: {reason}"


def test_error_without_path_names_the_line() -> None:
    with pytest.raises(InvalidModelfile) as info:
        parse("FROM foo\nBAD x\n")
    assert str(info.value).startswith("line 2: unknown instruction 'BAD'")
    assert info.value.exit_code == 4 and info.value.path is None


def test_parse_keeps_path() -> None:
    assert parse("FROM foo\n", "/tmp/Modelfile").path == "/tmp/Modelfile"


def test_command_equality_ignores_line() -> None:
    assert Command("model", "x", 3) == Command("model", "x", 9)
    assert Command("model", "x") != Command("model", "y")


# --- coerce_parameter: Go's strconv rules ------------------------------------------------------------------

COERCE_OK = [
    ("num_ctx", "4096", 4096),
    ("seed", "-1", -1),
    ("seed", "+7", 7),
    ("seed", "-9223372036854775808", -(2**63)),
    ("num_predict", "007", 7),
    ("temperature", "0.7", 0.7),
    ("temperature", "1", 1.0),
    ("temperature", ".5", 0.5),
    ("temperature", "5.", 5.0),
    ("temperature", "1e-3", 0.001),
    ("temperature", "1_000.5", 1000.5),
    ("temperature", "0x1p-2", 0.25),
    ("temperature", "Inf", math.inf),
    ("temperature", "-infinity", -math.inf),
    ("top_p", "1e-50", 1e-50),  # underflows a float32 without error, as in Go
    ("use_mmap", "true", True),
    ("use_mmap", "T", True),
    ("use_mmap", "1", True),
    ("use_mmap", "FALSE", False),
    ("use_mmap", "f", False),
    ("use_mmap", "0", False),
    ("stop", "<end_of_turn>", ["<end_of_turn>"]),
    ("stop", "", [""]),
]


@pytest.mark.parametrize(("name", "text", "value"), COERCE_OK)
def test_coerce_parameter(name: str, text: str, value: object) -> None:
    got = coerce_parameter(name, text)
    assert got == value and type(got) is type(value)


def test_coerce_nan() -> None:
    assert math.isnan(coerce_parameter("temperature", "NaN"))  # type: ignore[arg-type]


COERCE_BAD = [
    ("num_ctx", " 1", "expected an integer"),
    ("num_ctx", "1_000", "expected an integer"),  # ParseInt base 10: no underscores
    ("num_ctx", "١٢", "expected an integer"),  # Arabic-Indic digits: Python's int() takes them, Go's doesn't
    ("num_ctx", "0x10", "expected an integer"),
    ("num_ctx", "", "expected an integer"),
    ("temperature", "1__0", "expected a number"),
    ("temperature", "_1", "expected a number"),
    ("temperature", "+nan", "expected a number"),
    ("temperature", "0x1.8", "expected a number"),  # Go needs the p exponent
    ("temperature", "1,5", "expected a number"),
    ("temperature", "infinit", "expected a number"),
    ("use_mmap", "yes", "expected true or false"),
    ("use_mmap", "tRUE", "expected true or false"),
    ("temperature", "3.5e38", "out of range"),
]


@pytest.mark.parametrize(("name", "text", "why"), COERCE_BAD)
def test_coerce_parameter_rejects(name: str, text: str, why: str) -> None:
    with pytest.raises(InvalidInput) as info:
        coerce_parameter(name, text)
    assert str(info.value) == f"invalid value for parameter {name}: {text!r} ({why})"


def test_float32_range_edge() -> None:
    """Largest float32 is accepted; the next value that rounds past it is not (Go's ErrRange)."""
    biggest = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
    assert coerce_parameter("temperature", repr(biggest)) == biggest
    with pytest.raises(InvalidInput, match="out of range"):
        coerce_parameter("temperature", "3.4028236e38")


def test_coerce_unknown_and_deprecated() -> None:
    with pytest.raises(InvalidInput) as info:
        coerce_parameter("foo", "1")
    assert str(info.value) == "unknown parameter 'foo'"
    with pytest.raises(InvalidInput) as info:
        coerce_parameter("mirostat", "1")
    assert str(info.value) == "parameter 'mirostat' is deprecated: Ollama and llmctl ignore it"


def test_deprecated_parameter_values_are_not_checked() -> None:
    """Ollama skips deprecated parameters before looking at the value; a file it accepts, we accept."""
    mf = parse("FROM foo\nPARAMETER mirostat not-a-number\nPARAMETER penalize_newline true\n")
    assert mf.parameters == {}
    assert [c.name for c in mf.commands if c.is_parameter] == ["mirostat", "penalize_newline"]


def test_known_parameters_table() -> None:
    """The table other modules read: every type is one coerce_parameter knows, stop is the only list."""
    assert {k for k, v in KNOWN_PARAMETERS.items() if v is list} == {"stop"}
    assert set(KNOWN_PARAMETERS.values()) <= {int, float, bool, list}
    assert not set(KNOWN_PARAMETERS) & DEPRECATED_PARAMETERS
    samples = {int: "1", float: "0.5", bool: "true", list: "x"}
    for name, kind in KNOWN_PARAMETERS.items():
        assert coerce_parameter(name, samples[kind]) is not None


# --- the example Modelfiles shipped in modelfiles/ ---------------------------------------------------------


def read_example(name: str) -> Modelfile:
    path = REPO / "modelfiles" / name
    return parse(path.read_bytes(), str(path))


def test_example_gemma3_270m() -> None:
    mf = read_example("gemma3-270m.Modelfile")
    assert mf.froms() == ["gemma3:270m"]
    assert mf.template is not None
    for marker in ("<start_of_turn>user", "<end_of_turn>", "<start_of_turn>model", ".Messages", ".Content"):
        assert marker in mf.template
    assert mf.parameters["stop"] == ["<end_of_turn>"]
    assert mf.parameters["temperature"] == 1.0 and mf.parameters["top_k"] == 64


def test_example_few_shot() -> None:
    mf = read_example("few-shot.Modelfile")
    assert mf.froms() == ["gemma3:270m"] and mf.system
    roles = [m.role for m in mf.messages]
    assert roles and set(roles) == {"user", "assistant"}
    assert roles[::2] == ["user"] * len(roles[::2]) and roles[1::2] == ["assistant"] * len(roles[1::2])
    # the base has no chat template, so this file carries the same one as gemma3-270m.Modelfile
    assert mf.template == read_example("gemma3-270m.Modelfile").template


def test_example_lora() -> None:
    mf = read_example("lora.Modelfile")
    assert (mf.froms(), mf.adapters) == (["gemma3:270m"], ["./adapter.gguf"])
