"""The Dockerfile parser, the variable lexer and .dockerignore matching, with Docker's rules
and messages; and a fuzz of the parser: whatever the bytes, a clean DockerfileError at worst."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.build.dockerfile import DockerfileError, parse
from simulator.build.ignore import Matcher, read_patterns
from simulator.build.shell import Lexer, ShellError


def commands(text: str) -> list[tuple[str, dict]]:
    dockerfile = parse(text.encode())
    return [(c.name, c.params) for stage in dockerfile.stages for c in stage.commands]


def test_course_multi_stage_dockerfile_parses_into_named_stages() -> None:
    dockerfile = parse(
        b"FROM golang:1.19 AS base\nWORKDIR /src\nCOPY go.mod go.sum .\n"
        b"FROM base AS build-client\nRUN go build -o /bin/client ./cmd/client\n"
        b"FROM scratch AS prod\nCOPY --from=build-client /bin/client /bin/\n"
        b'ENTRYPOINT [ "/bin/server" ]\n'
    )
    assert [(s.base, s.name) for s in dockerfile.stages] == [
        ("golang:1.19", "base"),
        ("base", "build-client"),
        ("scratch", "prod"),
    ]
    copy = dockerfile.stages[2].commands[0]
    assert copy.params["flags"] == {"from": "build-client"}
    assert copy.params["sources"] == ["/bin/client"] and copy.params["dest"] == "/bin/"
    assert dockerfile.stages[2].commands[1].params["cmd"] == ["/bin/server"]
    assert dockerfile.stage_index("BUILD-CLIENT") == 1


def test_continuations_comments_and_escape_directive() -> None:
    assert commands("FROM a\nRUN echo one \\\n  # a comment inside\n  two\n") == [
        ("RUN", {"cmd": ["echo one   two"], "shell": True, "heredocs": [], "flags": {}})
    ]
    parsed = commands("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo ok\n")
    assert parsed[0][1]["cmd"] == ["dir c:\\   && echo ok"]


def test_heredoc_is_read_into_the_instruction() -> None:
    ((name, params),) = commands("FROM a\nRUN <<EOF\necho hi\necho there\nEOF\n")
    assert name == "RUN" and params["cmd"] == ["<<EOF"]
    assert params["heredocs"][0].content == "echo hi\necho there\n"
    ((_, copied),) = commands("FROM a\nCOPY <<-END /etc/motd\n\thello\nEND\n")
    assert copied["contents"] == [("END", "hello\n", True)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM busybox\nFOOBAR x\n", "parse error on line 2: unknown instruction: FOOBAR"),
        ("FROM busybox\nCOPPY a b\n", "unknown instruction: COPPY (did you mean COPY?)"),
        ("RUN true\n", "no build stage in current context"),
        ("FROM a b\n", "dockerfile parse error on line 1: FROM requires either one or three"),
        ("FROM a AS 1x\n", 'invalid name for build stage: "1x"'),
        ("FROM a\nCOPY onlyone\n", "COPY requires at least two arguments"),
        ("FROM a\nENV\n", "ENV requires at least one argument"),
        ("FROM a\nCOPY --frm=x a b\n", "dockerfile parse error on line 2: Unknown flag: frm"),
        ("FROM a\nRUN <<EOF\necho\n", "failed to parse Dockerfile: unterminated heredoc"),
        ("\n# only a comment\n", "failed to parse Dockerfile: file with no instructions"),
        ("", "the Dockerfile (Dockerfile) cannot be empty"),
        ("x" * 70000, "failed to parse Dockerfile: file with no instructions"),
        ("FROM a\n" + "x" * 70000, "dockerfile line greater than max allowed size of 65535"),
        ("FROM a\nSHELL /bin/bash -c\n", "SHELL requires the arguments to be in JSON form"),
        ("FROM a\nONBUILD FROM b\n", "FROM isn't allowed as an ONBUILD trigger"),
    ],
)
def test_bad_dockerfiles_get_dockers_message(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as raised:
        parse(text.encode())
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("word", "env", "expected"),
    [
        ("$HOME/bin", {"HOME": "/root"}, "/root/bin"),
        ("${NAME:-default}", {}, "default"),
        ("${NAME:-default}", {"NAME": ""}, "default"),
        ("${NAME-default}", {"NAME": ""}, ""),
        ("${NAME:+alt}", {"NAME": "x"}, "alt"),
        ("${NAME:+alt}", {}, ""),
        ("'$NAME' \"$NAME\"", {"NAME": "v"}, "$NAME v"),
        ("\\$NAME", {"NAME": "v"}, "$NAME"),
        ("${FILE%.tar.gz}", {"FILE": "app.tar.gz"}, "app"),
        ("${PATH##*/}", {"PATH": "/a/b/c"}, "c"),
        ("${V/a/b}", {"V": "banana"}, "bbnana"),
        ("${V//a/b}", {"V": "banana"}, "bbnbnb"),
    ],
)
def test_variable_substitution_follows_dockers_rules(
    word: str, env: dict[str, str], expected: str
) -> None:
    assert Lexer().word(word, env) == expected


def test_substitution_errors_are_dockers() -> None:
    with pytest.raises(ShellError, match="missing '}'"):
        Lexer().word("${NAME", {})
    with pytest.raises(ShellError, match="NAME: is not allowed to be unset"):
        Lexer().word("${NAME:?}", {})
    with pytest.raises(ShellError, match="bad substitution"):
        Lexer().word("${}", {})
    assert Lexer().words("a 'b c' $X", {"X": "d e"}) == ["a", "b c", "d", "e"]


def test_dockerignore_matching_follows_dockers_rules() -> None:
    patterns = read_patterns("# comment\nnode_modules\n*.log\n!keep.log\n**/*.tmp\n/secret\n")
    matcher = Matcher(patterns)
    assert matcher.excluded("node_modules/express/index.js")
    assert matcher.excluded("debug.log") and not matcher.excluded("keep.log")
    assert not matcher.excluded("logs/debug.log")  # * stops at /
    assert matcher.excluded("a/b/c.tmp") and matcher.excluded("c.tmp")
    assert matcher.excluded("secret") and not matcher.excluded("app.js")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzzed_bytes_parse_or_fail_cleanly(data: bytes) -> None:
    try:
        parse(data)
    except DockerfileError as error:
        assert str(error).encode()  # sent as JSON: no lone surrogates


INSTRUCTION_WORDS = [
    "FROM", "RUN", "CMD", "COPY", "ADD", "ENV", "ARG", "LABEL", "EXPOSE", "WORKDIR", "USER",
    "VOLUME", "ENTRYPOINT", "SHELL", "ONBUILD", "HEALTHCHECK", "STOPSIGNAL", "MAINTAINER",
    "AS", "--from=x", "--chown=1", "<<EOF", "EOF", "[", "]", '"', "'", "\\", "\n", " ", "$",
    "{", "}", "#", "# escape=`", "--mount=x", "NONE", "CMD-SHELL",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(INSTRUCTION_WORDS) | st.text(max_size=5), max_size=40))
def test_fuzzed_instructions_parse_or_fail_cleanly(words: list[str]) -> None:
    try:
        dockerfile = parse(" ".join(words).encode())
    except DockerfileError as error:
        assert str(error)
        return
    for stage in dockerfile.stages:
        assert stage.commands is not None
