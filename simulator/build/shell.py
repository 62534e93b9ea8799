"""Docker's word processing for Dockerfile arguments: quotes, escapes and variable
substitution (``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:+alt}``, ``${VAR:?msg}``,
``${VAR#pattern}``, ``${VAR%pattern}``, ``${VAR/pattern/replacement}``), as BuildKit's
shell lexer does them, with its error messages."""

from __future__ import annotations

import re
from collections.abc import Mapping

_SPECIAL_PARAMETERS = "@*#?-$!0"


class ShellError(ValueError):
    """A word the lexer cannot process; the message is BuildKit's."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def next(self) -> str:
        character = self.peek()
        if character:
            self.position += 1
        return character


class Lexer:
    """Processes words with an escape token (``\\`` or a backtick) and an environment."""

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes

    def word(self, text: str, env: Mapping[str, str]) -> str:
        """The text with quotes removed and variables substituted (spaces kept)."""
        return self._process(text, env)[0]

    def words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """The text split into words at unquoted whitespace, after substitution."""
        return self._process(text, env)[1]

    def _process(self, text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        try:
            return _Word(self, _Scanner(text), env).until("")
        except ShellError as error:
            raise ShellError(f'failed to process "{text}": {error}') from None


class _Words:
    def __init__(self) -> None:
        self.buffer: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, character: str) -> None:
        if character.isspace():
            if self.in_word and self.buffer:
                self.words.append("".join(self.buffer))
                self.buffer = []
                self.in_word = False
        else:
            self.add_raw(character)

    def add_raw(self, text: str) -> None:
        self.buffer.append(text)
        self.in_word = True

    def finish(self) -> list[str]:
        if self.buffer:
            self.words.append("".join(self.buffer))
            self.buffer = []
        return self.words


class _Word:
    def __init__(self, lexer: Lexer, scanner: _Scanner, env: Mapping[str, str]) -> None:
        self.lexer = lexer
        self.scanner = scanner
        self.env = env

    def until(self, stop: str, raw_escapes: bool = False) -> tuple[str, list[str]]:
        """Process up to ``stop`` (consumed; "" means the end of the text)."""
        result: list[str] = []
        words = _Words()
        scanner = self.scanner
        while scanner.peek():
            character = scanner.peek()
            if stop and character == stop:
                scanner.next()
                return "".join(result), words.finish()
            if character == "$":
                text = self.dollar()
                result.append(text)
                for part in text:
                    words.add_char(part)
            elif character == "'":
                text = self.single_quote()
                result.append(text)
                words.add_raw(text)
            elif character == '"':
                text = self.double_quote()
                result.append(text)
                words.add_raw(text)
            else:
                character = scanner.next()
                if character == self.lexer.escape:
                    if raw_escapes:
                        words.add_raw(character)
                        result.append(character)
                    character = scanner.next()
                    if not character:
                        break
                    words.add_raw(character)
                else:
                    words.add_char(character)
                result.append(character)
        if stop:
            raise ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def single_quote(self) -> str:
        quote = self.scanner.next()
        result = [quote] if self.lexer.raw_quotes else []
        while True:
            character = self.scanner.next()
            if not character:
                raise ShellError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if character == "'":
                if self.lexer.raw_quotes:
                    result.append(character)
                return "".join(result)
            result.append(character)

    def double_quote(self) -> str:
        quote = self.scanner.next()
        result = [quote] if self.lexer.raw_quotes else []
        while True:
            character = self.scanner.peek()
            if not character:
                raise ShellError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if character == '"':
                self.scanner.next()
                if self.lexer.raw_quotes:
                    result.append(character)
                return "".join(result)
            if character == "$":
                result.append(self.dollar())
                continue
            character = self.scanner.next()
            if character == self.lexer.escape:
                following = self.scanner.peek()
                if not following:
                    continue
                if following in ('"', "$", self.lexer.escape):
                    character = self.scanner.next()
            result.append(character)

    def name(self) -> str:
        scanner = self.scanner
        name: list[str] = []
        while scanner.peek():
            character = scanner.peek()
            if not name and character.isdigit():
                while scanner.peek() and scanner.peek().isdigit():
                    name.append(scanner.next())
                return "".join(name)
            if not name and character in _SPECIAL_PARAMETERS:
                return scanner.next()
            if not (character.isalnum() or character == "_"):
                break
            name.append(scanner.next())
        return "".join(name)

    def dollar(self) -> str:
        scanner = self.scanner
        scanner.next()
        if scanner.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        scanner.next()
        if not scanner.peek():
            raise ShellError("syntax error: missing '}'")
        if scanner.peek() in "{}:":
            raise ShellError("syntax error: bad substitution")
        name = self.name()
        character = scanner.next()
        if not character:
            raise ShellError("syntax error: missing '}'")
        if character == "}":
            return self.env.get(name, "")
        if character == "/":
            return self._replace(name)
        modifier = character
        null_is_unset = False
        if character == ":":
            null_is_unset = True
            character = scanner.next()
            modifier += character
        if character not in ("+", "-", "?", "#", "%"):
            raise ShellError(f"unsupported modifier ({modifier}) in substitution")
        raw = character in "#%"
        if null_is_unset and raw:
            raise ShellError(f"unsupported modifier ({modifier}) in substitution")
        try:
            word, _ = self.until("}", raw)
        except ShellError:
            if not scanner.peek():
                raise ShellError("syntax error: missing '}'") from None
            raise
        value = self.env.get(name)
        unset = value is None or (null_is_unset and value == "")
        if character == "-":
            return word if unset else str(value)
        if character == "+":
            return "" if unset else word
        if character == "?":
            if value is None:
                raise ShellError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ShellError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(character)
        if greedy:
            word = word[1:]
        value = value or ""
        if character == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def _replace(self, name: str) -> str:
        scanner = self.scanner
        replace_all = scanner.peek() == "/"
        if replace_all:
            scanner.next()
        try:
            pattern, _ = self.until("/", True)
        except ShellError:
            if not scanner.peek():
                raise ShellError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.until("}", True)
        except ShellError:
            if not scanner.peek():
                raise ShellError("syntax error: missing '}'") from None
            raise
        value = self.env.get(name, "")
        expression = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return expression.sub(lambda _: replacement, value)
        match = expression.search(value)
        if match is None:
            return value
        return value[: match.start()] + replacement + value[match.end() :]


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard pattern (``*``, ``?``, ``\\`` escapes) as a regular expression."""
    out = ["^"] if anchored else []
    position = 0
    while position < len(pattern):
        character = pattern[position]
        position += 1
        if character == "*":
            out.append(".*" if greedy else ".*?")
        elif character == "?":
            out.append(".")
        elif character == "\\":
            following = pattern[position : position + 1]
            if following in ("}", "/"):
                continue
            position += 1
            if following not in ("*", "?", "\\"):
                raise ShellError(f"invalid pattern ({pattern}) in substitution: invalid escape")
            out.append(re.escape(following))
        else:
            out.append(re.escape(character))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end() :] if match else value


def _reverse_pattern(pattern: str) -> str:
    parts: list[str] = []
    position = 0
    while position < len(pattern):
        if pattern[position] == "\\" and position + 1 < len(pattern):
            parts.append(pattern[position : position + 2])
            position += 2
        else:
            parts.append(pattern[position])
            position += 1
    return "".join(reversed(parts))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]
