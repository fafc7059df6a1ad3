"""Go TEMPLATE render limits: the bombs of issue #11 end at once with a reason, ordinary templates are untouched.

Pure: the interpreter on strings. The gateway's side (a bomb refused at /api/create, a render running off the
event loop while other requests are answered) is in test_gateway_security.py.
"""

from __future__ import annotations

import pytest

from llmctl.runtime import gotemplate
from llmctl.runtime.gotemplate import Limits, TemplateLimitError
from llmctl.runtime.gotemplate.errors import TemplateError
from llmctl.runtime.prompt import render_template
from llmctl.settings import Settings


@pytest.mark.parametrize("source, needle", [
    ('{{ printf "%0999999999d" 1 }}', "LLMCTL_TEMPLATE_MAX_WIDTH"),
    ('{{ printf "%.999999999f" 1.5 }}', "LLMCTL_TEMPLATE_MAX_WIDTH"),
    ("{{ range 100000000 }}x{{ end }}", "LLMCTL_TEMPLATE_MAX_ITERATIONS"),
    ("{{ range 1000 }}{{ range 1000 }}{{ end }}{{ end }}", "LLMCTL_TEMPLATE_MAX_ITERATIONS"),
    ('{{ $x := "ab" }}{{ range 64 }}{{ $x = printf "%s%s" $x $x }}{{ end }}{{ $x }}', "LLMCTL_TEMPLATE_MAX_OUTPUT"),
    ('{{ range 90000 }}{{ printf "%4000d" 1 }}{{ end }}', "LLMCTL_TEMPLATE_MAX_OUTPUT"),
    ("{{" + "(" * 300 + "1" + ")" * 300 + "}}", "LLMCTL_TEMPLATE_MAX_DEPTH"),
    ("{{ if 1 }}" * 300 + "x" + "{{ end }}" * 300, "LLMCTL_TEMPLATE_MAX_DEPTH"),
])
def test_bombs_stop_with_the_limit_they_break(source: str, needle: str) -> None:
    with pytest.raises(TemplateLimitError) as info:
        gotemplate.parse(source).execute({})
    assert needle in str(info.value)


def test_a_range_over_a_huge_number_is_refused_before_it_is_built() -> None:
    """`range 10^12` would build a list of 10^12 pairs before the first step: it is refused by its size."""
    with pytest.raises(TemplateLimitError):
        gotemplate.parse("{{ range 1000000000000 }}{{ end }}").execute({})


def test_limits_are_the_settings_and_can_be_raised_or_lowered() -> None:
    limits = Settings.from_env({"LLMCTL_HOME": "/tmp/x", "LLMCTL_TEMPLATE_MAX_ITERATIONS": "10",
                                "LLMCTL_TEMPLATE_MAX_WIDTH": "3", "LLMCTL_TEMPLATE_MAX_OUTPUT": "1k",
                                "LLMCTL_TEMPLATE_MAX_DEPTH": "2"}).limits
    assert (limits.template_max_iterations, limits.template_max_width, limits.template_max_output,
            limits.template_max_depth) == (10, 3, 1024, 2)
    small = Limits(max_output=1024, max_iterations=10, max_width=3, max_depth=2)
    assert gotemplate.parse("{{ range 10 }}.{{ end }}").execute({}, small) == "." * 10
    with pytest.raises(TemplateLimitError):
        gotemplate.parse("{{ range 11 }}.{{ end }}").execute({}, small)
    assert gotemplate.parse('{{ printf "%3d" 7 }}').execute({}, small) == "  7"
    with pytest.raises(TemplateLimitError):
        gotemplate.parse('{{ printf "%4d" 7 }}').execute({}, small)
    with pytest.raises(TemplateLimitError):
        gotemplate.parse("{{ if 1 }}{{ if 1 }}{{ if 1 }}x{{ end }}{{ end }}{{ end }}", max_depth=2)
    bad = Settings.from_env({"LLMCTL_HOME": "/tmp/x", "LLMCTL_TEMPLATE_MAX_WIDTH": "wide"})
    assert bad.limits.template_max_width == 4096 and "LLMCTL_TEMPLATE_MAX_WIDTH" in bad.problems[0]


def test_a_per_turn_template_is_bounded_as_a_whole() -> None:
    """Templates without .Messages render once per turn; the limit holds for the whole prompt, not each turn."""
    tmpl = '{{ .Prompt }}{{ printf "%1000d" 1 }}'
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}] * 30
    small = Limits(max_output=20_000)
    with pytest.raises(TemplateLimitError):
        render_template(tmpl, system=None, messages=turns, limits=small)
    assert len(render_template(tmpl, system=None, messages=turns[:2], limits=small)) < 20_000


def test_python_conversion_errors_become_template_errors() -> None:
    """What Python's conversions refuse (a bad %d argument, chr of a huge number, a 5000-digit literal)
    is the template's error, never an unexpected exception (a 500 in the gateway)."""
    for source in ('{{ printf "%d" "x" }}', '{{ printf "%c" 99999999999 }}', "{{ " + "9" * 5000 + " }}",
                   '{{ printf "%e" 1 }}{{ printf "%d" 1e400 }}'):
        with pytest.raises(TemplateError):
            gotemplate.parse(source).execute({})


def test_printf_pads_like_go() -> None:
    out = gotemplate.parse('{{ printf "%5s|%-4s|%.2s|%05d|%-3d|%+d|%x|%.2f|%%" "a" "b" "xyz" 42 7 3 255 3.14159 }}'
                           ).execute({})
    assert out == "    a|b   |xy|00042|7  |+3|ff|3.14|%"
