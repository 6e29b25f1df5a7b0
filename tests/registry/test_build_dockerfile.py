"""The Dockerfile parser: continuations, comments, forms, variables, errors with line numbers."""

import pytest

from runtime.build.dockerfile import expand, key_values, parse, split_words
from runtime.build.errors import DockerfileError


def test_continuations_comments_and_forms():
    text = """# syntax comment
ARG BASE=busybox
FROM $BASE

# comments and blank lines inside a continuation vanish
RUN echo one && \\
    # inner comment
    echo two
CMD ["sh", "-c", "echo hi"]
ENTRYPOINT echo shell form
copy --chown=1:2 a b /dst/
"""
    ins = parse(text)
    assert [i.cmd for i in ins] == ["ARG", "FROM", "RUN", "CMD", "ENTRYPOINT", "COPY"]
    run = ins[2]
    assert run.line == 6 and run.args == "echo one &&     echo two" and not run.json_form
    assert ins[3].json_form and ins[3].args == ["sh", "-c", "echo hi"]
    assert ins[4].args == "echo shell form"
    assert ins[5].flags == {"chown": "1:2"} and ins[5].args == "a b /dst/"


def test_json_that_is_not_a_string_list_is_shell_form():
    (_, run) = parse('FROM x\nRUN ["a", 1]\n')
    assert not run.json_form and run.args == '["a", 1]'


def test_escape_directive():
    ins = parse("# escape=`\nFROM x\nRUN echo a `\n  b\n")
    assert ins[1].args == "echo a   b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM x\nBOGUS y\n", "line 2: unknown instruction 'BOGUS'"),
        ("RUN true\nFROM x\n", "line 1: RUN before FROM"),
        ("# only a comment\n", "no FROM"),
        ("FROM x\nCOPY --from=build /a /b\n", "line 2: COPY does not accept --from"),
        ("FROM x\nFROM y\n", "line 2: multi-stage"),
        ("FROM x\nENV\n", "line 2: ENV needs an argument"),
    ],
)
def test_errors_name_the_line(text, message):
    with pytest.raises(DockerfileError, match=message):
        parse(text)


def test_expand_variables():
    env = {"A": "1", "EMPTY": ""}
    assert expand("$A ${A} ${B:-dflt} ${A:+alt} ${EMPTY:-e} \\$A", env, 1) == "1 1 dflt alt e $A"
    assert expand("\\$A", env, 1, keep_escapes=True) == "\\$A"


def test_key_values_and_words():
    assert key_values("a=1 b=\"two words\" c='x y'", 1, "ENV", legacy=True) == [
        ("a", "1"),
        ("b", "two words"),
        ("c", "x y"),
    ]
    assert key_values("NAME some value", 1, "ENV", legacy=True) == [("NAME", "some value")]
    with pytest.raises(DockerfileError, match="key=value"):
        key_values("novalue", 3, "LABEL", legacy=False)
    assert split_words('a "b c" d\\ e', 1) == ["a", "b c", "d e"]
    with pytest.raises(DockerfileError, match="unterminated"):
        split_words('"open', 1)
