"""The subset of Go's text/template (Go 1.24, as in docker CLI 28) that `docker … --format`
uses: text, {{.Field}} chains and methods with arguments, pipelines, function calls,
parentheses and (…).Field, string and number literals, variables ($, $x := …, $x = …,
$x.Field), {{if}}/{{with}}/{{range}} with {{else}}, {{else if}}/{{else with}}, {{break}} and
{{continue}}, trim markers and comments, with Go's error texts. {{range}} walks slices, maps
(in sorted key order) and ints. Not supported: {{define}}/{{template}}/{{block}}, and printing
whole structs with {{.}}."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any


class TemplateError(Exception):
    """A template that doesn't parse; str() is Go's text, e.g. 'template: :1: unclosed action'."""


class TemplateExecError(TemplateError):
    """A template that fails while it runs; partial_output is what it wrote before failing."""

    def __init__(self, message: str, partial_output: str = "") -> None:
        super().__init__(message)
        self.partial_output = partial_output


class NoValue:
    """What a missing map key evaluates to; Go prints it as "<no value>"."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = NoValue()


class TemplateData:
    """A value with Go-style fields and methods, as the CLI's formatter contexts are.
    Subclasses list their fields in `template_fields` (Go name -> attribute or method name);
    methods that take arguments go in `template_methods` with their Go parameter types."""

    go_type: str = "struct"
    template_fields: Mapping[str, str] = MappingProxyType({})
    template_methods: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType({})

    def template_field(self, name: str) -> Any:
        """The value of field `name` (calling the method behind it); KeyError if none."""
        attribute = self.template_fields[name]
        value = getattr(self, attribute)
        return value() if callable(value) else value

    def json_value(self) -> Any:
        """What Go's json encoder makes of this value (a dict for the formatter contexts)."""
        return {name: self.template_field(name) for name in self.template_fields}

    @property
    def go_string(self) -> str:
        """How fmt.Print shows the value."""
        return "{" + " ".join(go_print(v) for v in self.json_value().values()) + "}"


class GoMap(dict[str, Any]):
    """A Go map[string]string, such as the CLI's header context (SubHeaderContext)."""

    go_type = "map[string]string"

    def method(self, name: str) -> Callable[..., Any] | None:
        return None


class GoStruct(dict[str, Any]):
    """A Go struct's JSON form: its members keep their declared order (maps are sorted)."""


def go_type_name(value: Any) -> str:
    """The Go type name Docker's errors would show for value."""
    if isinstance(value, TemplateData | GoMap):
        return value.go_type
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "[]string"
    if value is None or value is NO_VALUE:
        return "<nil>"
    return type(value).__name__


def go_print(value: Any) -> str:
    """fmt.Sprint of one value."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    if isinstance(value, GoMap | dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, TemplateData):
        return value.go_string
    return str(value)


def _go_float(value: float) -> str:
    """fmt.Sprint of a float64 (%g, shortest): its shortest digits, as %e when the exponent
    is below -4 or above 5."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # where the decimal point goes among the digits
    prefix = "-" if sign else ""
    if not -4 <= point - 1 < 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if point < 1 else '+'}{abs(point - 1):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def _go_json_string(text: str, escape_html: bool) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif escape_html and ch in "<>&":
            out.append(f"\\u{code:04x}")
        elif code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value: Any, escape_html: bool = False) -> str:
    """Go's encoding/json output. Formatter contexts marshal themselves with json.Marshal (so
    <, > and & come out as \\u003c…), then the CLI's encoder adds no further HTML escaping."""
    if isinstance(value, TemplateData):
        return go_json(value.json_value(), escape_html=True)
    if value is None or value is NO_VALUE:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        return _go_json_string(value, escape_html)
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v, escape_html) for v in value) + "]"
    if isinstance(value, GoStruct):
        keys: Sequence[str] = list(value)
    elif isinstance(value, dict):
        keys = sorted(value)
    else:
        return _go_json_string(str(value), escape_html)
    members = (f"{_go_json_string(k, escape_html)}:{go_json(value[k], escape_html)}" for k in keys)
    return "{" + ",".join(members) + "}"


# ---------------------------------------------------------------------------------------------
# Lexing


@dataclass(frozen=True)
class Token:
    kind: str  # text, left, right, space, field, dot, ident, string, raw, number, char, pipe,
    # lparen, rparen, bool, nil, variable, declare, assign, punct, keyword, eof, error
    value: str
    pos: int


KEYWORDS = {
    "if", "else", "end", "with", "range", "define", "template", "block", "break", "continue"
}  # fmt: skip
_NUMBER = re.compile(
    r"[+-]?(0[xX][0-9a-fA-F_]+|0[oObB][0-7_]+|[0-9_]*\.?[0-9_]+([eE][+-]?[0-9]+)?)"
)


def _is_space(ch: str) -> bool:
    return ch in " \t\r\n"


def _word_end(text: str, pos: int) -> int:
    """Where the run of Go's letters, digits and underscores from pos ends."""
    while pos < len(text) and (text[pos].isalnum() or text[pos] == "_"):
        pos += 1
    return pos


def _at_terminator(text: str, pos: int) -> bool:
    """Whether a field, variable or identifier may end at pos (Go's atTerminator)."""
    return pos >= len(text) or _is_space(text[pos]) or text[pos] in ".,|:()}"


def _at_right_trim(text: str, pos: int) -> bool:
    """A space, then "-}}": the right delimiter with its trim marker."""
    return pos < len(text) and _is_space(text[pos]) and text.startswith("-}}", pos + 1)


def _lex(text: str) -> Iterator[Token]:
    """Go's template lexer, far enough for --format strings."""
    pos = 0
    length = len(text)
    while pos < length:
        start = text.find("{{", pos)
        if start < 0:
            yield Token("text", text[pos:], pos)
            pos = length
            break
        trim_left = (
            text.startswith("{{-", start) and start + 3 < length and _is_space(text[start + 3])
        )
        chunk = text[pos:start]
        if trim_left:
            chunk = chunk.rstrip(" \t\r\n")
        if chunk:
            yield Token("text", chunk, pos)
        inside = start + 2 + (2 if trim_left else 0)
        if text.startswith("/*", inside):
            end = text.find("*/", inside)
            if end < 0:
                yield Token("error", "unclosed comment", inside)
                return
            after = end + 2
            trim_right = _at_right_trim(text, after)
            if trim_right:
                after += 1
            if not text.startswith("-}}" if trim_right else "}}", after):
                yield Token("error", "comment ends before closing delimiter", after)
                return
            pos = after + (3 if trim_right else 2)
            if trim_right:
                while pos < length and _is_space(text[pos]):
                    pos += 1
            continue
        yield Token("left", "{{", start)
        pos = yield from _lex_action(text, inside)
        if pos < 0:
            return
    yield Token("eof", "", length)


def _lex_action(text: str, pos: int) -> Iterator[Token]:
    """Tokens inside {{ }}; returns the position after the closing delimiter, or -1."""
    length = len(text)
    depth = 0
    while True:
        trim_right = _at_right_trim(text, pos)
        if trim_right or text.startswith("}}", pos):
            if depth:
                yield Token("error", "unclosed left paren", pos)
                return -1
            close = pos + 2 if trim_right else pos
            yield Token("right", "}}", close)
            pos = close + 2
            while trim_right and pos < length and _is_space(text[pos]):
                pos += 1
            return pos
        if pos >= length:
            yield Token("error", "unclosed action", pos)
            return -1
        ch = text[pos]
        if _is_space(ch):
            end = pos
            while end < length and _is_space(text[end]):
                end += 1
            if text.startswith("-}}", end):
                end -= 1  # the last space belongs to the right delimiter's trim marker
            if end > pos:
                yield Token("space", text[pos:end], pos)
            pos = end
        elif ch == "=":
            yield Token("assign", "=", pos)
            pos += 1
        elif ch == ":":
            if not text.startswith(":=", pos):
                yield Token("error", "expected :=", pos)
                return -1
            yield Token("declare", ":=", pos)
            pos += 2
        elif ch == "|":
            yield Token("pipe", "|", pos)
            pos += 1
        elif ch == "(":
            depth += 1
            yield Token("lparen", "(", pos)
            pos += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                yield Token("error", "unexpected right paren", pos)
                return -1
            yield Token("rparen", ")", pos)
            pos += 1
        elif ch == '"':
            end = pos + 1
            while end < length and text[end] != '"':
                if text[end] == "\\":
                    end += 1
                if end >= length or text[end] == "\n":
                    yield Token("error", "unterminated quoted string", pos)
                    return -1
                end += 1
            if end >= length:
                yield Token("error", "unterminated quoted string", pos)
                return -1
            yield Token("string", text[pos : end + 1], pos)
            pos = end + 1
        elif ch == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                yield Token("error", "unterminated raw quoted string", pos)
                return -1
            yield Token("raw", text[pos : end + 1], pos)
            pos = end + 1
        elif ch == "'":
            match = re.compile(r"'(\\.[^']*|[^\\'])'").match(text, pos)
            if not match:
                yield Token("error", "unterminated character constant", pos)
                return -1
            yield Token("char", match.group(0), pos)
            pos = match.end()
        elif ch == "$" or (ch == "." and not text[pos + 1 : pos + 2].isdigit()):
            pos = yield from _lex_field_or_variable(text, pos)
            if pos < 0:
                return -1
        elif ch.isdigit() or ch in "+-" or (ch == "." and text[pos + 1 : pos + 2].isdigit()):
            match = _NUMBER.match(text, pos)
            end = match.end() if match else pos + 1
            if end < length and (text[end].isalnum() or text[end] == "_"):
                yield Token("error", f"bad number syntax: {go_quote(text[pos : end + 1])}", pos)
                return -1
            yield Token("number", text[pos:end], pos)
            pos = end
        elif ch.isalpha() or ch == "_":
            end = _word_end(text, pos)
            if not _at_terminator(text, end):
                yield Token("error", f"bad character {_go_quote_rune(text[end])}", end)
                return -1
            word = text[pos:end]
            if word in KEYWORDS:
                kind = "keyword"
            elif word in ("true", "false"):
                kind = "bool"
            elif word == "nil":
                kind = "nil"
            else:
                kind = "ident"
            yield Token(kind, word, pos)
            pos = end
        elif ch.isascii() and ch.isprintable():
            yield Token("punct", ch, pos)  # Go's itemChar, such as the "," between variables
            pos += 1
        else:
            yield Token("error", f"unrecognized character in action: {_go_quote_rune(ch)}", pos)
            return -1


def _lex_field_or_variable(text: str, pos: int) -> Iterator[Token]:
    """A ".Field" or "$variable" (or a lone "." or "$") at pos; returns where it ends, or -1."""
    kind = "variable" if text[pos] == "$" else "field"
    if _at_terminator(text, pos + 1):
        yield Token("variable" if kind == "variable" else "dot", text[pos], pos)
        return pos + 1
    end = _word_end(text, pos + 1)
    if not _at_terminator(text, end):
        yield Token("error", f"bad character {_go_quote_rune(text[end])}", end)
        return -1
    yield Token(kind, text[pos:end], pos)
    return end


def _go_quote_rune(ch: str) -> str:
    code = ord(ch)
    if ch == "'":
        return "U+0027 '\\''"
    if ch.isprintable():
        return f"U+{code:04X} '{ch}'"
    return f"U+{code:04X}"


# ---------------------------------------------------------------------------------------------
# Parsing


@dataclass
class Node:
    pos: int


@dataclass
class TextNode(Node):
    text: str


@dataclass
class FieldNode(Node):
    names: list[str]

    def __str__(self) -> str:
        return "".join("." + n for n in self.names)


@dataclass
class VariableNode(Node):
    names: list[str]  # "$x", then the fields after it, as in $x.Config.Image

    def __str__(self) -> str:
        return ".".join(self.names)


@dataclass
class ChainNode(Node):
    node: Node  # a parenthesized pipeline or a function, with fields after it: (…).Field
    names: list[str]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return inner + "".join("." + n for n in self.names)


@dataclass
class DotNode(Node):
    def __str__(self) -> str:
        return "."


@dataclass
class IdentifierNode(Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class LiteralNode(Node):
    source: str
    value: Any

    def __str__(self) -> str:
        return self.source


@dataclass
class PipeNode(Node):
    commands: list[CommandNode] = field(default_factory=list)
    declarations: list[VariableNode] = field(default_factory=list)
    is_assign: bool = False  # $x = … rather than $x := …

    def __str__(self) -> str:
        text = " | ".join(str(c) for c in self.commands)
        if self.declarations:
            names = ", ".join(str(v) for v in self.declarations)
            text = f"{names} {'=' if self.is_assign else ':='} {text}"
        return text


@dataclass
class CommandNode(Node):
    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


@dataclass
class ActionNode(Node):
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass
class BranchNode(Node):
    keyword: str  # "if", "with" or "range"
    pipe: PipeNode
    body: list[Node]
    otherwise: list[Node]


@dataclass
class LoopControlNode(Node):
    keyword: str  # "break" or "continue"


def _unquote(source: str) -> str:
    """A Go interpreted string literal's value."""
    body = source[1:-1]
    out: list[str] = []
    index = 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    while index < len(body):
        ch = body[index]
        if ch != "\\":
            out.append(ch)
            index += 1
            continue
        escape = body[index + 1]
        if escape in simple:
            out.append(simple[escape])
            index += 2
        elif escape in "\\\"'":
            out.append(escape)
            index += 2
        elif escape == "x":
            out.append(chr(int(body[index + 2 : index + 4], 16)))
            index += 4
        elif escape == "u":
            out.append(chr(int(body[index + 2 : index + 6], 16)))
            index += 6
        elif escape == "U":
            out.append(chr(int(body[index + 2 : index + 10], 16)))
            index += 10
        elif escape in "01234567":
            out.append(chr(int(body[index + 1 : index + 4], 8)))
            index += 4
        else:
            raise ValueError(f"invalid syntax: {source}")
    return "".join(out)


def _number_value(source: str) -> int | float:
    cleaned = source.replace("_", "")
    try:
        return int(cleaned, 0)
    except ValueError:
        return float(cleaned)


# Tokens that can start an operand (Go's term).
_OPERAND_START = frozenset(
    "bool char number dot field ident nil raw string variable lparen".split()
)


class _Parser:
    def __init__(self, text: str, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.text = text
        self.functions = functions
        self.tokens = list(_lex(text))
        self.index = 0
        self.variables = ["$"]  # the variables in scope, innermost last
        self.range_depth = 0
        self.action_start: int | None = None  # where the action being parsed began

    def line(self, pos: int) -> int:
        return 1 + self.text.count("\n", 0, pos)

    def fail(self, message: str, pos: int) -> TemplateError:
        return TemplateError(f"template: :{self.line(pos)}: {message}")

    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        if token.kind == "error":
            raise self.fail(token.value + self.action_context(token), token.pos)
        self.index += 1
        return token

    def action_context(self, error: Token) -> str:
        """What Go adds to a lexing error in an action that began on an earlier line."""
        if self.action_start is None or self.line(self.action_start) == self.line(error.pos):
            return ""
        context = f" in action started at :{self.line(self.action_start)}"
        return context.removeprefix(" in action") if error.value.endswith(" action") else context

    def next_non_space(self) -> Token:
        token = self.next()
        while token.kind == "space":
            token = self.next()
        return token

    def peek_non_space(self) -> Token:
        while self.peek().kind == "space":
            self.index += 1
        if self.peek().kind == "error":
            self.next()
        return self.peek()

    def non_space_after(self, index: int) -> int:
        """The index of the first token from index on that isn't a space (errors included)."""
        while self.tokens[index].kind == "space":
            index += 1
        return index

    def expect_right(self, context: str) -> None:
        token = self.next_non_space()
        if token.kind != "right":
            raise self.fail(f"unexpected {_describe(token)} in {context}", token.pos)

    def parse(self) -> list[Node]:
        nodes, terminator = self.item_list(top_level=True)
        if terminator is not None:
            raise self.fail(f"unexpected {{{{{terminator.value}}}}}", terminator.pos)
        return nodes

    def item_list(self, top_level: bool = False) -> tuple[list[Node], Token | None]:
        """Nodes up to {{end}} or {{else}} (returned as the terminator) or the end of input."""
        nodes: list[Node] = []
        while True:
            token = self.next_non_space()
            if token.kind == "eof":
                if not top_level:
                    raise self.fail("unexpected EOF", token.pos)
                return nodes, None
            if token.kind == "text":
                nodes.append(TextNode(token.pos, token.value))
                continue
            if token.kind != "left":
                raise self.fail(f"unexpected {_describe(token)} in input", token.pos)
            self.action_start = token.pos
            node = self.action(token)
            self.action_start = None
            if isinstance(node, Token):
                return nodes, node
            nodes.append(node)

    def action(self, left: Token) -> Node | Token:
        """What follows a "{{": a control structure, or a pipeline to print. {{end}} and
        {{else}} come back as their keyword token; an {{else}} followed by if or with leaves
        that keyword to be read."""
        keyword = self.peek_non_space()
        if keyword.kind != "keyword":
            return ActionNode(left.pos, self.pipeline("command"))
        self.next()
        word = keyword.value
        if word == "end":
            self.expect_right("end")
            return keyword
        if word == "else":
            following = self.peek_non_space()
            if not (following.kind == "keyword" and following.value in ("if", "with")):
                self.expect_right("else")
            return keyword
        if word in ("if", "with", "range"):
            return self.control(word)
        if word in ("break", "continue"):
            self.expect_right(f"{{{{{word}}}}}")
            if not self.range_depth:
                raise self.fail(f"{{{{{word}}}}} outside {{{{range}}}}", keyword.pos)
            return LoopControlNode(keyword.pos, word)
        raise self.fail(f"{{{{{word}}}}} is not supported", keyword.pos)

    def control(self, keyword: str) -> BranchNode:
        """{{if|with|range pipeline}} body [{{else}} otherwise] {{end}}; the variables the
        pipeline and the body declare go out of scope at the {{end}}."""
        in_scope = len(self.variables)
        pipe = self.pipeline(keyword)
        looping = keyword == "range"
        self.range_depth += looping
        body, terminator = self.item_list()
        self.range_depth -= looping
        otherwise: list[Node] = []
        if terminator is not None and terminator.value == "else":
            following = self.peek()
            if keyword != "range" and following.kind == "keyword" and following.value == keyword:
                # {{else if …}} is an {{if}} nested in the else branch, sharing the {{end}}.
                self.next()
                otherwise = [self.control(keyword)]
            else:
                otherwise, terminator = self.item_list()
                if terminator is None or terminator.value != "end":
                    raise self.fail("expected end; found {{else}}", terminator.pos)
        del self.variables[in_scope:]
        return BranchNode(pipe.pos, keyword, pipe, body, otherwise)

    def pipeline(self, context: str, end: str = "right") -> PipeNode:
        pipe = PipeNode(self.tokens[self.non_space_after(self.index)].pos)
        self.declarations(pipe, context)
        while True:
            token = self.peek_non_space()
            if token.kind == end:
                self.next()
                self.check_pipeline(pipe, context, token.pos)
                return pipe
            if token.kind not in _OPERAND_START:
                raise self.fail(f"unexpected {_describe(token)} in {context}", token.pos)
            pipe.commands.append(self.command())

    def declarations(self, pipe: PipeNode, context: str) -> None:
        """The "$x :=", "$x =" or (in range) "$i, $v :=" that may start a pipeline."""
        while True:
            variable = self.tokens[self.non_space_after(self.index)]
            if variable.kind != "variable":
                return
            after = self.non_space_after(self.non_space_after(self.index) + 1)
            following = self.tokens[after]
            if following.kind in ("declare", "assign"):
                pipe.is_assign = following.kind == "assign"
                self.index = after + 1
                self.declare(pipe, variable)
                return
            if following.kind != "punct" or following.value != ",":
                return  # a variable used as an operand
            self.index = after + 1
            self.declare(pipe, variable)
            if context == "range" and len(pipe.declarations) < 2:
                if self.tokens[self.non_space_after(self.index)].kind in (
                    "variable",
                    "right",
                    "rparen",
                ):
                    continue
                raise self.fail("range can only initialize variables", following.pos)
            raise self.fail(f"too many declarations in {context}", following.pos)

    def declare(self, pipe: PipeNode, variable: Token) -> None:
        pipe.declarations.append(VariableNode(variable.pos, [variable.value]))
        self.variables.append(variable.value)

    def check_pipeline(self, pipe: PipeNode, context: str, pos: int) -> None:
        if not pipe.commands:
            raise self.fail(f"missing value for {context}", pos)
        for stage, command in enumerate(pipe.commands[1:], start=2):
            if isinstance(command.args[0], LiteralNode | DotNode):
                raise self.fail(f"non executable command in pipeline stage {stage}", pos)

    def command(self) -> CommandNode:
        command = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                command.args.append(operand)
            token = self.next()
            if token.kind == "space":
                continue
            if token.kind in ("right", "rparen"):
                self.index -= 1
            elif token.kind != "pipe":
                raise self.fail(f"unexpected {_describe(token)} in operand", token.pos)
            break
        if not command.args:
            raise self.fail("empty command", command.pos)
        return command

    def operand(self) -> Node | None:
        node = self.term()
        if node is None or self.peek().kind != "field":
            return node
        chain_pos = self.peek().pos
        names: list[str] = []
        while self.peek().kind == "field":
            names.append(self.next().value[1:])
        if isinstance(node, FieldNode):
            return FieldNode(chain_pos, node.names + names)
        if isinstance(node, VariableNode):
            return VariableNode(chain_pos, node.names + names)
        if isinstance(node, LiteralNode | DotNode):
            raise self.fail(f"unexpected . after term {go_quote(str(node))}", chain_pos)
        return ChainNode(chain_pos, node, names)

    def term(self) -> Node | None:
        """One operand, or None (nothing read) when the next token can't start one."""
        if self.peek_non_space().kind not in _OPERAND_START:
            return None
        token = self.next()
        if token.kind == "ident":
            if token.value not in self.functions:
                raise self.fail(f'function "{token.value}" not defined', token.pos)
            return IdentifierNode(token.pos, token.value)
        if token.kind == "variable":
            if token.value not in self.variables:
                raise self.fail(f'undefined variable "{token.value}"', token.pos)
            return VariableNode(token.pos, [token.value])
        if token.kind == "dot":
            return DotNode(token.pos)
        if token.kind == "field":
            return FieldNode(token.pos, [token.value[1:]])
        if token.kind == "string":
            try:
                return LiteralNode(token.pos, token.value, _unquote(token.value))
            except (ValueError, IndexError) as error:
                raise self.fail(str(error), token.pos) from None
        if token.kind == "raw":
            return LiteralNode(token.pos, token.value, token.value[1:-1])
        if token.kind == "number":
            try:
                return LiteralNode(token.pos, token.value, _number_value(token.value))
            except ValueError:
                raise self.fail(
                    f"illegal number syntax: {go_quote(token.value)}", token.pos
                ) from None
        if token.kind == "char":
            value = _unquote('"' + token.value[1:-1].replace('"', '\\"') + '"')
            return LiteralNode(token.pos, token.value, ord(value))
        if token.kind == "bool":
            return LiteralNode(token.pos, token.value, token.value == "true")
        if token.kind == "nil":
            return LiteralNode(token.pos, "nil", None)
        return self.pipeline("parenthesized pipeline", end="rparen")


def _describe(token: Token) -> str:
    """How Go's parse errors show a token."""
    if token.kind == "eof":
        return "EOF"
    if token.kind in ("keyword", "dot", "nil"):
        return f"<{token.value}>"
    if len(token.value) > 10:
        return go_quote(token.value[:10]) + "..."
    return go_quote(token.value)


# ---------------------------------------------------------------------------------------------
# Functions


class _MissingArgument:
    pass


_FINAL_NONE = _MissingArgument()


@dataclass(frozen=True)
class TemplateFunction:
    """A template function with Go parameter types ("string", "int", "[]string", "any");
    a trailing "..." type makes it variadic."""

    call: Callable[..., Any]
    params: tuple[str, ...]
    lazy: bool = False  # and/or: arguments evaluated one at a time


def _check_type(value: Any, go_type: str) -> bool:
    if go_type in ("any", "...any"):
        return True
    if go_type in ("string", "...string"):
        return isinstance(value, str)
    if go_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if go_type == "[]string":
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    return True


def go_truthy(value: Any) -> bool:
    """Go template truth: false, 0, nil, and empty strings, slices and maps are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _go_title(text: str) -> str:
    out: list[str] = []
    previous = " "
    for ch in text:
        separator = not (previous.isalnum() or previous == "_")
        out.append(ch.title() if separator else ch)
        previous = ch
    return "".join(out)


def _split(text: str, separator: str) -> list[str]:
    if separator == "":
        return list(text)
    return text.split(separator)


def _pad(text: str, prefix: int, suffix: int) -> str:
    return text if text == "" else " " * prefix + text + " " * suffix


def _truncate(text: str, length: int) -> str:
    data = text.encode()
    return text if len(data) < length else data[:length].decode(errors="replace")


def _go_len(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list | tuple | dict):
        return len(value)
    raise ValueError(f"len of type {go_type_name(value)}")


def _go_index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, str):
            data = value.encode()
            if not isinstance(key, int) or not 0 <= key < len(data):
                raise ValueError("reflect: string index out of range")
            value = data[key]
        elif isinstance(value, list | tuple):
            if not isinstance(key, int) or not 0 <= key < len(value):
                raise ValueError(f"index out of range: {key}")
            value = value[key]
        elif isinstance(value, dict):
            value = value.get(key, "")
        else:
            raise ValueError(f"can't index item of type {go_type_name(value)}")
    return value


def _go_sprint(*args: Any) -> str:
    out: list[str] = []
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            out.append(" ")
        out.append(go_print(arg))
    return "".join(out)


def _go_sprintln(*args: Any) -> str:
    return " ".join(go_print(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _go_sprintf(template: str, *args: Any) -> str:
    """fmt.Sprintf for %s, %v, %d, %q, %t, %x and %% with flags, width and precision."""
    remaining = list(args)
    out: list[str] = []
    position = 0
    for match in _VERB.finditer(template):
        out.append(template[position : match.start()])
        position = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if not remaining:
            out.append(f"%!{verb}(MISSING)")
            continue
        value = remaining.pop(0)
        if verb == "q":
            text = go_quote(str(value)) if isinstance(value, str) else go_print(value)
        elif verb == "d" and isinstance(value, int):
            text = str(value)
        elif verb == "x" and isinstance(value, int):
            text = f"{value:x}"
        elif verb == "x" and isinstance(value, str):
            text = value.encode().hex()
        elif verb in "sv" or (verb == "t" and isinstance(value, bool)):
            text = go_print(value)
        else:
            text = f"%!{verb}({go_type_name(value)}={go_print(value)})"
        if precision is not None and verb in "sv" and isinstance(value, str):
            text = text[: int(precision)]
        if width:
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width))
        out.append(text)
    out.append(template[position:])
    if remaining:
        extras = ", ".join(f"{go_type_name(v)}={go_print(v)}" for v in remaining)
        out.append(f"%!(EXTRA {extras})")
    return "".join(out)


def _compare(name: str) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        if type(left) is not type(right) and not (
            isinstance(left, int | float) and isinstance(right, int | float)
        ):
            raise ValueError("incompatible types for comparison")
        if name == "lt":
            return left < right
        if name == "le":
            return left <= right
        if name == "gt":
            return left > right
        if name == "ge":
            return left >= right
        return left != right

    return compare


def _go_eq(left: Any, *others: Any) -> bool:
    if not others:
        raise ValueError("missing arguments for comparison")
    return any(left == other for other in others)


BUILTIN_FUNCTIONS: Mapping[str, TemplateFunction] = MappingProxyType(
    {
        "and": TemplateFunction(lambda *a: a, ("any", "...any"), lazy=True),
        "or": TemplateFunction(lambda *a: a, ("any", "...any"), lazy=True),
        "not": TemplateFunction(lambda v: not go_truthy(v), ("any",)),
        "len": TemplateFunction(_go_len, ("any",)),
        "index": TemplateFunction(_go_index, ("any", "...any")),
        "print": TemplateFunction(_go_sprint, ("...any",)),
        "println": TemplateFunction(_go_sprintln, ("...any",)),
        "printf": TemplateFunction(_go_sprintf, ("string", "...any")),
        "eq": TemplateFunction(_go_eq, ("any", "...any")),
        "ne": TemplateFunction(_compare("ne"), ("any", "any")),
        "lt": TemplateFunction(_compare("lt"), ("any", "any")),
        "le": TemplateFunction(_compare("le"), ("any", "any")),
        "gt": TemplateFunction(_compare("gt"), ("any", "any")),
        "ge": TemplateFunction(_compare("ge"), ("any", "any")),
    }
)

# The docker CLI's templates.basicFunctions.
DOCKER_FUNCTIONS: Mapping[str, TemplateFunction] = MappingProxyType(
    {
        **BUILTIN_FUNCTIONS,
        "json": TemplateFunction(go_json, ("any",)),
        "split": TemplateFunction(_split, ("string", "string")),
        "join": TemplateFunction(lambda items, sep: sep.join(items), ("[]string", "string")),
        "title": TemplateFunction(_go_title, ("string",)),
        "lower": TemplateFunction(str.lower, ("string",)),
        "upper": TemplateFunction(str.upper, ("string",)),
        "pad": TemplateFunction(_pad, ("string", "int", "int")),
        "truncate": TemplateFunction(_truncate, ("string", "int")),
    }
)

# templates.HeaderFunctions: for the header row, these return their first argument unchanged.
HEADER_FUNCTIONS: Mapping[str, TemplateFunction] = MappingProxyType(
    {
        **DOCKER_FUNCTIONS,
        "json": TemplateFunction(lambda v: v, ("string",)),
        "split": TemplateFunction(lambda v, _: v, ("string", "string")),
        "join": TemplateFunction(lambda v, _: v, ("string", "string")),
        "title": TemplateFunction(lambda v: v, ("string",)),
        "lower": TemplateFunction(lambda v: v, ("string",)),
        "upper": TemplateFunction(lambda v: v, ("string",)),
        "truncate": TemplateFunction(lambda v, _: v, ("string", "int")),
    }
)


def go_quote(text: str) -> str:
    """Go's strconv.Quote: a double-quoted string with Go escapes for what isn't printable."""
    out = ['"']
    simple = {
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
        "\\": "\\\\",
        '"': '\\"',
    }
    for ch in text:
        code = ord(ch)
        if ch in simple:
            out.append(simple[ch])
        elif ch == " " or (ch.isprintable() and not 0xD800 <= code <= 0xDFFF):
            out.append(ch)
        elif code < 0x80 or 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code & 0xFF:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Execution


class _Failure(Exception):
    def __init__(self, node: Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class _LoopControl(Exception):
    """{{break}} or {{continue}}, on its way out to the innermost {{range}}."""

    def __init__(self, keyword: str) -> None:
        super().__init__(keyword)
        self.keyword = keyword


class Template:
    """A parsed template. execute() runs it against a value with the docker CLI's functions;
    execute(…, functions=HEADER_FUNCTIONS) is how the CLI renders a table's header row."""

    def __init__(self, text: str, functions: Mapping[str, TemplateFunction] | None = None):
        self.text = text
        self.nodes = _Parser(text, functions or DOCKER_FUNCTIONS).parse()

    def execute(self, data: Any, functions: Mapping[str, TemplateFunction] | None = None) -> str:
        out: list[str] = []
        run = _Execution(self.text, functions or DOCKER_FUNCTIONS, out, data)
        try:
            run.walk(self.nodes, data)
        except _Failure as failure:
            raise TemplateExecError(run.describe(failure), "".join(out)) from None
        return "".join(out)


def parse(text: str, functions: Mapping[str, TemplateFunction] | None = None) -> Template:
    """Parse a Go template; raises TemplateError with Go's message."""
    return Template(text, functions)


class _Execution:
    def __init__(
        self, text: str, functions: Mapping[str, TemplateFunction], out: list[str], data: Any
    ) -> None:
        self.text = text
        self.functions = functions
        self.out = out
        # Go's variable stack: [name, value] pairs, innermost last; $ is the data.
        self.variables: list[list[Any]] = [["$", data]]
        self.node: Node = TextNode(0, "")  # the node being evaluated, which errors name

    def describe(self, failure: _Failure) -> str:
        prefix = self.text[: failure.node.pos]
        line = 1 + prefix.count("\n")
        column = len(prefix[prefix.rfind("\n") + 1 :].encode())
        return f'template: :{line}:{column}: executing "" at <{failure.node}>: {failure.message}'

    def at(self, node: Node) -> None:
        self.node = node

    def walk(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, TextNode):
                self.out.append(node.text)
            elif isinstance(node, ActionNode):
                value = self.pipeline(node.pipe, dot)
                if not node.pipe.declarations:
                    self.out.append(go_print(value))
            elif isinstance(node, BranchNode):
                in_scope = len(self.variables)
                try:
                    if node.keyword == "range":
                        self.walk_range(node, dot)
                    else:
                        self.walk_branch(node, dot)
                finally:
                    del self.variables[in_scope:]
            elif isinstance(node, LoopControlNode):
                raise _LoopControl(node.keyword)

    def walk_branch(self, node: BranchNode, dot: Any) -> None:
        value = self.pipeline(node.pipe, dot)
        if go_truthy(value):
            self.walk(node.body, value if node.keyword == "with" else dot)
        else:
            self.walk(node.otherwise, dot)

    def walk_range(self, node: BranchNode, dot: Any) -> None:
        """{{range}}: the body once per element with dot (and the variables) set to it; the
        else branch when there are none. Variables the body declares last one iteration."""
        pipe = node.pipe
        items = self.iteration(pipe, self.pipeline(pipe, dot))
        in_scope = len(self.variables)
        empty = True
        for index, element in items:
            empty = False
            self.set_range_variables(pipe, index, element)
            try:
                self.walk(node.body, element)
            except _LoopControl as control:
                if control.keyword == "break":
                    break
            finally:
                del self.variables[in_scope:]
        if empty:
            self.walk(node.otherwise, dot)

    def iteration(self, pipe: PipeNode, value: Any) -> Iterable[tuple[Any, Any]]:
        """(index or key, element) pairs: slices in order, maps by sorted key, and 0…n-1 for
        an int n (Go 1.22+); nil and missing values have none."""
        if value is None or value is NO_VALUE:
            return ()
        if isinstance(value, list | tuple):
            return enumerate(value)
        if isinstance(value, dict):
            return ((key, value[key]) for key in sorted(value))
        if isinstance(value, int) and not isinstance(value, bool):
            if len(pipe.declarations) > 1:
                raise _Failure(
                    self.node, f"can't use {value} to iterate over more than one variable"
                )
            return ((NO_VALUE, number) for number in range(value))
        raise _Failure(self.node, f"range can't iterate over {go_print(value)}")

    def set_range_variables(self, pipe: PipeNode, index: Any, element: Any) -> None:
        """{{range $v := …}} sets $v to the element; {{range $i, $v := …}} sets $i to the
        index or key too. With "=", the variables are existing ones, assigned."""
        names = [variable.names[0] for variable in pipe.declarations]
        if not names:
            return
        if pipe.is_assign:
            self.find_variable(names[0])[1] = index if len(names) > 1 else element
            if len(names) > 1:
                self.find_variable(names[1])[1] = element
            return
        self.variables[-1][1] = element
        if len(names) > 1:
            self.variables[-2][1] = index

    def find_variable(self, name: str) -> list[Any]:
        for variable in reversed(self.variables):
            if variable[0] == name:
                return variable
        raise _Failure(self.node, f"undefined variable: {name}")

    def pipeline(self, pipe: PipeNode, dot: Any) -> Any:
        self.at(pipe)
        value: Any = _FINAL_NONE
        for command in pipe.commands:
            value = self.command(command, dot, value)
        for variable in pipe.declarations:
            if pipe.is_assign:
                self.find_variable(variable.names[0])[1] = value
            else:
                self.variables.append([variable.names[0], value])
        return value

    def command(self, command: CommandNode, dot: Any, final: Any) -> Any:
        first, rest = command.args[0], command.args[1:]
        if isinstance(first, FieldNode):
            self.at(first)
            return self.field_chain(first, first.names, dot, dot, rest, final)
        if isinstance(first, VariableNode):
            return self.variable(first, dot, rest, final)
        if isinstance(first, ChainNode):
            return self.chain(first, dot, rest, final)
        if isinstance(first, IdentifierNode):
            self.at(first)
            return self.call(first, command, dot, rest, final)
        if not isinstance(first, PipeNode):
            self.at(first)
        if rest or final is not _FINAL_NONE:
            raise _Failure(self.node, f"can't give argument to non-function {first}")
        if isinstance(first, LiteralNode) and first.source == "nil":
            raise _Failure(first, "nil is not a command")
        return self.argument(first, dot)

    def argument(self, node: Node, dot: Any) -> Any:
        self.at(node)
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, LiteralNode):
            return node.value
        if isinstance(node, FieldNode):
            return self.field_chain(node, node.names, dot, dot, [], _FINAL_NONE)
        if isinstance(node, VariableNode):
            return self.variable(node, dot, [], _FINAL_NONE)
        if isinstance(node, ChainNode):
            return self.chain(node, dot, [], _FINAL_NONE)
        if isinstance(node, PipeNode):
            return self.pipeline(node, dot)
        if isinstance(node, IdentifierNode):
            return self.call(node, CommandNode(node.pos, [node]), dot, [], _FINAL_NONE)
        raise _Failure(node, f"can't evaluate {node}")

    def variable(self, node: VariableNode, dot: Any, args: list[Node], final: Any) -> Any:
        """$x, or $x.Field… (which may be a method call taking args)."""
        self.at(node)
        value = self.find_variable(node.names[0])[1]
        if len(node.names) > 1:
            return self.field_chain(node, node.names[1:], value, dot, args, final)
        if args or final is not _FINAL_NONE:
            raise _Failure(node, f"can't give argument to non-function {node}")
        return value

    def chain(self, node: ChainNode, dot: Any, args: list[Node], final: Any) -> Any:
        """(pipeline).Field…: Go names the last node evaluated inside in its errors."""
        self.at(node)
        receiver = self.argument(node.node, dot)
        return self.field_chain(self.node, node.names, receiver, dot, args, final)

    def field_chain(
        self,
        node: Node,
        names: list[str],
        receiver: Any,
        dot: Any,
        args: list[Node],
        final: Any,
    ) -> Any:
        for index, name in enumerate(names):
            last = index == len(names) - 1
            receiver = self.field(node, receiver, dot, name, args if last else [], final, last)
        return receiver

    def field(
        self,
        node: Node,
        receiver: Any,
        dot: Any,
        name: str,
        args: list[Node],
        final: Any,
        last: bool,
    ) -> Any:
        if receiver is NO_VALUE:
            return NO_VALUE  # Go: a field of a missing map entry is missing too
        has_args = bool(args) or (last and final is not _FINAL_NONE)
        if isinstance(receiver, TemplateData):
            if name in receiver.template_methods:
                attribute, params = receiver.template_methods[name]
                values = [self.argument(a, dot) for a in args]
                if last and final is not _FINAL_NONE:
                    values.append(final)
                if len(values) != len(params):
                    raise _Failure(
                        node,
                        f"wrong number of args for {name}: want {len(params)} got {len(values)}",
                    )
                for arg_node, value, param in zip(args, values, params, strict=False):
                    if not _check_type(value, param):
                        raise _Failure(arg_node, _wrong_type(param, value))
                return getattr(receiver, attribute)(*values)
            try:
                value = receiver.template_field(name)
            except KeyError:
                raise _Failure(
                    node, f"can't evaluate field {name} in type {receiver.go_type}"
                ) from None
            if has_args:
                raise _Failure(node, f"{name} is not a method but has arguments")
            return value
        if isinstance(receiver, GoMap):
            method = receiver.method(name)
            if method is not None:
                values = [self.argument(a, dot) for a in args]
                if last and final is not _FINAL_NONE:
                    values.append(final)
                return method(*values)
            if has_args:
                raise _Failure(node, f"{name} is not a method but has arguments")
            return receiver.get(name, NO_VALUE)
        if isinstance(receiver, dict):
            return receiver.get(name, NO_VALUE)
        if receiver is None:
            raise _Failure(node, f"nil pointer evaluating interface {{}}.{name}")
        raise _Failure(node, f"can't evaluate field {name} in type {go_type_name(receiver)}")

    def call(
        self,
        name_node: IdentifierNode,
        command: CommandNode,
        dot: Any,
        args: list[Node],
        final: Any,
    ) -> Any:
        function = self.functions[name_node.name]
        params = function.params
        variadic = bool(params) and params[-1].startswith("...")
        fixed = params[:-1] if variadic else params
        count = len(args) + (0 if final is _FINAL_NONE else 1)
        if count < len(fixed) or (not variadic and count != len(fixed)):
            wanted = f"at least {len(fixed)}" if variadic else str(len(fixed))
            raise _Failure(
                name_node, f"wrong number of args for {name_node.name}: want {wanted} got {count}"
            )
        if function.lazy:
            return self.lazy_logic(name_node.name, dot, args, final)
        values: list[Any] = []
        for index, arg in enumerate(args):
            value = self.argument(arg, dot)
            param = fixed[index] if index < len(fixed) else params[-1]
            if not _check_type(value, param):
                raise _Failure(arg, _wrong_type(param, value))
            values.append(value)
        if final is not _FINAL_NONE:
            param = fixed[len(values)] if len(values) < len(fixed) else params[-1]
            if not _check_type(final, param):
                raise _Failure(command, _wrong_type(param, final))
            values.append(final)
        try:
            return function.call(*values)
        except (ValueError, TypeError, IndexError) as error:
            raise _Failure(command, f"error calling {name_node.name}: {error}") from None

    def lazy_logic(self, name: str, dot: Any, args: list[Node], final: Any) -> Any:
        """and/or, which stop at the first argument that decides the result (Go 1.18+)."""
        values: Iterator[Any] = (self.argument(a, dot) for a in args)
        if final is not _FINAL_NONE:
            values = _chain(values, final)
        value: Any = None
        for value in values:
            if go_truthy(value) != (name == "and"):
                return value
        return value


def _chain(values: Iterator[Any], last: Any) -> Iterator[Any]:
    yield from values
    yield last


def _wrong_type(param: str, value: Any) -> str:
    expected = param.removeprefix("...")
    if expected == "any":
        expected = "interface {}"
    return f"wrong type for value; expected {expected}; got {go_type_name(value)}"
