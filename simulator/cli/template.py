"""The subset of Go's text/template that `docker … --format` uses: text, {{.Field}} chains and
methods with arguments, pipelines, function calls, parentheses, string and number literals,
{{if}}/{{with}}/{{else}}/{{else if}}/{{end}}, trim markers and comments, with Go's error texts.
Not supported: {{range}}, variables, {{define}}/{{template}}/{{block}}, and printing whole
structs with {{.}}."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
    text = f"{value:g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = exponent[0]
        digits = exponent[1:].lstrip("0").rjust(2, "0")
        text = f"{mantissa}e{sign}{digits}"
    return text


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
    # lparen, rparen, bool, nil, variable, keyword, eof, error
    value: str
    pos: int


KEYWORDS = {
    "if", "else", "end", "with", "range", "define", "template", "block", "break", "continue"
}  # fmt: skip
_NUMBER = re.compile(
    r"[+-]?(0[xX][0-9a-fA-F_]+|0[oObB][0-7_]+|[0-9_]*\.?[0-9_]+([eE][+-]?[0-9]+)?)"
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_space(ch: str) -> bool:
    return ch in " \t\r\n"


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
            trim_right = text.startswith(" -}}", after)
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
        if text.startswith(" -}}", pos) or (
            text.startswith("-}}", pos) and pos > 0 and _is_space(text[pos - 1])
        ):
            if depth:
                yield Token("error", "unclosed left paren", pos)
                return -1
            close = pos + (1 if text[pos] == " " else 0)
            yield Token("right", "}}", close)
            pos = close + 3
            while pos < length and _is_space(text[pos]):
                pos += 1
            return pos
        if text.startswith("}}", pos):
            if depth:
                yield Token("error", "unclosed left paren", pos)
                return -1
            yield Token("right", "}}", pos)
            return pos + 2
        if pos >= length:
            yield Token("error", "unclosed action", pos)
            return -1
        ch = text[pos]
        if ch in " \t\r":
            end = pos
            while end < length and text[end] in " \t\r":
                end += 1
            yield Token("space", text[pos:end], pos)
            pos = end
        elif ch == "\n":
            yield Token("error", "unclosed action", pos)
            return -1
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
        elif ch == "." and (pos + 1 >= length or not text[pos + 1].isdigit()):
            match = _IDENT.match(text, pos + 1)
            if match:
                yield Token("field", "." + match.group(0), pos)
                pos = match.end()
            else:
                yield Token("dot", ".", pos)
                pos += 1
        elif ch == "$":
            match = _IDENT.match(text, pos + 1)
            end = match.end() if match else pos + 1
            yield Token("variable", text[pos:end], pos)
            pos = end
        elif ch.isdigit() or (ch in "+-." and pos + 1 < length and text[pos + 1].isdigit()):
            match = _NUMBER.match(text, pos)
            end = match.end() if match else pos + 1
            yield Token("number", text[pos:end], pos)
            pos = end
        elif ch.isalpha() or ch == "_":
            match = _IDENT.match(text, pos)
            assert match is not None
            word = match.group(0)
            if word in KEYWORDS:
                kind = "keyword"
            elif word in ("true", "false"):
                kind = "bool"
            elif word == "nil":
                kind = "nil"
            else:
                kind = "ident"
            yield Token(kind, word, pos)
            pos = match.end()
        elif ch == ":" and text.startswith(":=", pos) or ch == "=" or ch == ",":
            yield Token("error", "variables are not supported in --format templates", pos)
            return -1
        else:
            yield Token("error", f"unrecognized character in action: {_go_quote_rune(ch)}", pos)
            return -1


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

    def __str__(self) -> str:
        return " | ".join(str(c) for c in self.commands)


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
    keyword: str  # "if" or "with"
    pipe: PipeNode
    body: list[Node]
    otherwise: list[Node]


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


class _Parser:
    def __init__(self, text: str, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.text = text
        self.functions = functions
        self.tokens = list(_lex(text))
        self.index = 0

    def fail(self, message: str, pos: int) -> TemplateError:
        line = 1 + self.text.count("\n", 0, pos)
        return TemplateError(f"template: :{line}: {message}")

    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        if token.kind == "error":
            raise self.fail(token.value, token.pos)
        self.index += 1
        return token

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

    def parse(self) -> list[Node]:
        nodes, terminator = self.item_list(top_level=True)
        if terminator is not None:
            raise self.fail(f"unexpected {{{{{terminator.value}}}}}", terminator.pos)
        return nodes

    def item_list(self, top_level: bool = False) -> tuple[list[Node], Token | None]:
        """Nodes up to {{end}} or {{else}} (returned as the terminator) or the end of input."""
        nodes: list[Node] = []
        while True:
            token = self.next()
            if token.kind == "eof":
                if not top_level:
                    raise self.fail("unexpected EOF", token.pos)
                return nodes, None
            if token.kind == "text":
                nodes.append(TextNode(token.pos, token.value))
                continue
            # token.kind == "left"
            keyword = self.peek_non_space()
            if keyword.kind == "keyword":
                self.next()
                if keyword.value in ("end", "else"):
                    return nodes, keyword
                if keyword.value in ("if", "with"):
                    nodes.append(self.branch(keyword))
                    continue
                raise self.fail(f"{{{{{keyword.value}}}}} is not supported", keyword.pos)
            nodes.append(ActionNode(token.pos, self.pipeline("command")))

    def branch(self, keyword: Token) -> BranchNode:
        pipe = self.pipeline(keyword.value)
        body, terminator = self.item_list()
        otherwise: list[Node] = []
        if terminator is not None and terminator.value == "else":
            following = self.peek_non_space()
            if following.kind == "keyword" and following.value in ("if", "with"):
                # {{else if …}} is an {{if}} nested in the else branch, sharing the {{end}}.
                self.next()
                otherwise = [self.branch(following)]
                return BranchNode(keyword.pos, keyword.value, pipe, body, otherwise)
            if self.next_non_space().kind != "right":
                raise self.fail("unexpected token in else", following.pos)
            otherwise, terminator = self.item_list()
            if terminator is None or terminator.value != "end":
                raise self.fail(f"expected end; found {terminator}", following.pos)
        if self.next_non_space().kind != "right":
            raise self.fail("unexpected token in end", keyword.pos)
        return BranchNode(keyword.pos, keyword.value, pipe, body, otherwise)

    def pipeline(self, context: str, end: str = "right") -> PipeNode:
        start = self.peek_non_space()
        pipe = PipeNode(start.pos)
        while True:
            token = self.peek_non_space()
            if token.kind == end:
                self.next()
                if not pipe.commands:
                    raise self.fail(f"missing value for {context}", token.pos)
                return pipe
            if token.kind in ("right", "rparen", "eof"):
                raise self.fail(f"unexpected {_describe(token)} in {context}", token.pos)
            pipe.commands.append(self.command())

    def command(self) -> CommandNode:
        command = CommandNode(self.peek_non_space().pos)
        while True:
            token = self.peek_non_space()
            if token.kind in ("right", "rparen"):
                break
            if token.kind == "pipe":
                self.next()
                break
            command.args.append(self.operand())
        if not command.args:
            raise self.fail("empty command", command.pos)
        return command

    def operand(self) -> Node:
        node = self.term()
        if self.peek().kind == "field":
            chain_pos = self.peek().pos
            names: list[str] = []
            while self.peek().kind == "field":
                names.append(self.next().value[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain_pos, node.names + names)
            raise self.fail(f"unexpected . after term {str(node)!r}", chain_pos)
        return node

    def term(self) -> Node:
        token = self.next_non_space()
        if token.kind == "ident":
            if token.value not in self.functions:
                raise self.fail(f'function "{token.value}" not defined', token.pos)
            return IdentifierNode(token.pos, token.value)
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
                raise self.fail(f"illegal number syntax: {token.value!r}", token.pos) from None
        if token.kind == "char":
            value = _unquote('"' + token.value[1:-1].replace('"', '\\"') + '"')
            return LiteralNode(token.pos, token.value, ord(value))
        if token.kind == "bool":
            return LiteralNode(token.pos, token.value, token.value == "true")
        if token.kind == "nil":
            return LiteralNode(token.pos, "nil", None)
        if token.kind == "lparen":
            return self.pipeline("parenthesized pipeline", end="rparen")
        if token.kind == "variable":
            raise self.fail("variables are not supported in --format templates", token.pos)
        raise self.fail(f"unexpected {_describe(token)} in operand", token.pos)


def _describe(token: Token) -> str:
    if token.kind == "right":
        return '"}}"'
    if token.kind == "rparen":
        return '")"'
    if token.kind == "eof":
        return "EOF"
    if token.kind == "keyword":
        return f"<{token.value}>"
    return f'"{token.value}"'


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


class Template:
    """A parsed template. execute() runs it against a value with the docker CLI's functions;
    execute(…, functions=HEADER_FUNCTIONS) is how the CLI renders a table's header row."""

    def __init__(self, text: str, functions: Mapping[str, TemplateFunction] | None = None):
        self.text = text
        self.nodes = _Parser(text, functions or DOCKER_FUNCTIONS).parse()

    def execute(self, data: Any, functions: Mapping[str, TemplateFunction] | None = None) -> str:
        out: list[str] = []
        run = _Execution(self.text, functions or DOCKER_FUNCTIONS, out)
        try:
            run.walk(self.nodes, data)
        except _Failure as failure:
            raise TemplateExecError(run.describe(failure), "".join(out)) from None
        return "".join(out)


def parse(text: str, functions: Mapping[str, TemplateFunction] | None = None) -> Template:
    """Parse a Go template; raises TemplateError with Go's message."""
    return Template(text, functions)


class _Execution:
    def __init__(self, text: str, functions: Mapping[str, TemplateFunction], out: list[str]):
        self.text = text
        self.functions = functions
        self.out = out

    def describe(self, failure: _Failure) -> str:
        prefix = self.text[: failure.node.pos]
        line = 1 + prefix.count("\n")
        column = len(prefix[prefix.rfind("\n") + 1 :].encode())
        return f'template: :{line}:{column}: executing "" at <{failure.node}>: {failure.message}'

    def walk(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, TextNode):
                self.out.append(node.text)
            elif isinstance(node, ActionNode):
                self.out.append(go_print(self.pipeline(node.pipe, dot)))
            elif isinstance(node, BranchNode):
                value = self.pipeline(node.pipe, dot)
                if go_truthy(value):
                    self.walk(node.body, value if node.keyword == "with" else dot)
                else:
                    self.walk(node.otherwise, dot)

    def pipeline(self, pipe: PipeNode, dot: Any) -> Any:
        value: Any = _FINAL_NONE
        for command in pipe.commands:
            value = self.command(command, dot, value)
        return value

    def command(self, command: CommandNode, dot: Any, final: Any) -> Any:
        first, rest = command.args[0], command.args[1:]
        if isinstance(first, FieldNode):
            return self.field_chain(first, dot, dot, rest, final)
        if isinstance(first, IdentifierNode):
            return self.call(first, command, dot, rest, final)
        if rest or final is not _FINAL_NONE:
            raise _Failure(first, f"can't give argument to non-function {first}")
        return self.argument(first, dot)

    def argument(self, node: Node, dot: Any) -> Any:
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, LiteralNode):
            return node.value
        if isinstance(node, FieldNode):
            return self.field_chain(node, dot, dot, [], _FINAL_NONE)
        if isinstance(node, PipeNode):
            return self.pipeline(node, dot)
        if isinstance(node, IdentifierNode):
            return self.call(node, CommandNode(node.pos, [node]), dot, [], _FINAL_NONE)
        raise _Failure(node, f"can't evaluate {node}")

    def field_chain(
        self, node: FieldNode, receiver: Any, dot: Any, args: list[Node], final: Any
    ) -> Any:
        for index, name in enumerate(node.names):
            last = index == len(node.names) - 1
            receiver = self.field(node, receiver, dot, name, args if last else [], final, last)
        return receiver

    def field(
        self,
        node: FieldNode,
        receiver: Any,
        dot: Any,
        name: str,
        args: list[Node],
        final: Any,
        last: bool,
    ) -> Any:
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
        if receiver is None or receiver is NO_VALUE:
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
