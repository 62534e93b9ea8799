""".dockerignore: its file format and Docker's matching rules (moby/patternmatcher): ``*``
and ``?`` stop at ``/``, ``**`` spans directories, ``!`` re-includes, the last matching
pattern wins, and a pattern that matches a directory matches everything below it."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


class IgnoreError(ValueError):
    """A .dockerignore pattern that can't be compiled; the message says which."""


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, as ignorefile.ReadAll reads them: one a line,
    blank lines and ``#`` comments skipped, ``!`` kept, paths cleaned, a leading ``/``
    dropped."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append(("!" if invert else "") + line)
    return patterns


def compile_patterns(patterns: list[str]) -> list[Pattern]:
    compiled = []
    for text in patterns:
        exclusion = text.startswith("!")
        body = text[1:] if exclusion else text
        if exclusion and not body:
            raise IgnoreError('illegal exclusion pattern: "!"')
        body = posixpath.normpath(body) if body else body
        compiled.append(Pattern(body, exclusion, _regex(body)))
    return compiled


def _regex(pattern: str) -> re.Pattern[str]:
    out = "^"
    position = 0
    while position < len(pattern):
        character = pattern[position]
        position += 1
        if character == "*":
            if pattern[position : position + 1] == "*":
                position += 1
                if pattern[position : position + 1] == "/":
                    position += 1
                if position >= len(pattern):
                    out += ".*"
                else:
                    out += "(.*/)?"
            else:
                out += "[^/]*"
        elif character == "?":
            out += "[^/]"
        elif character == "\\":
            if position < len(pattern):
                out += re.escape(pattern[position])
                position += 1
            else:
                out += re.escape("\\")
        elif character == "[":
            end = pattern.find("]", position + 1)
            if end < 0:
                raise IgnoreError(f"syntax error in pattern: {pattern}")
            inner = pattern[position:end]
            if inner.startswith("^") or inner.startswith("!"):
                inner = "^" + inner[1:]
            out += "[" + inner.replace("\\", "\\\\") + "]"
            position = end + 1
        else:
            out += re.escape(character)
    try:
        return re.compile(out + "$", re.DOTALL)
    except re.error as error:
        raise IgnoreError(f"syntax error in pattern: {pattern}: {error}") from None


class Matcher:
    """Decides which context paths a .dockerignore excludes."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = compile_patterns(patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative, ``/``-separated) or one of its parents is excluded."""
        path = posixpath.normpath(path)
        parents = []
        parent = posixpath.dirname(path)
        while parent not in ("", "."):
            parents.append(parent)
            parent = posixpath.dirname(parent)
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            if pattern.regex.match(path) or any(pattern.regex.match(p) for p in parents):
                matched = not pattern.exclusion
        return matched
