"""Exact, bounded evaluation of Countdown answers: ASCII integers, binary + - * / and parentheses.

Model output is hostile input, so nothing here calls ``eval``: an expression is tokenized against a
closed grammar, checked as a sequence of operand/operator states (which rules out unary signs, ``**``
and empty parentheses), converted to postfix with an iterative shunting-yard (no recursion, so
10,000 nested parentheses cannot hit the recursion limit) and evaluated with ``int`` and
``fractions.Fraction``, never floats. Callers cap the length first (``MAX_EXPRESSION_CHARS``), which
bounds time, memory and the size of every intermediate number.
"""

from __future__ import annotations

import re
from fractions import Fraction

Number = int | Fraction

# Longest expression (after stripping) that is parsed at all; Countdown answers are ~20 characters.
MAX_EXPRESSION_CHARS = 256

# Only these characters may appear; explicit ASCII classes, because "\d" and str.isdigit() also
# accept Arabic-Indic or fullwidth digits.
_ALLOWED = re.compile(r"[0-9+\-*/() \t\r\n]*")
_TOKEN = re.compile(r"[0-9]+|[-+*/()]")
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def tokenize(expression: str) -> list[int | str] | None:
    """Integers and operator/parenthesis characters of ``expression``, or None if outside the grammar.

    The token sequence is also checked to alternate operand and operator, so ``-3``, ``2**3``,
    ``()`` and ``1 2`` are rejected here rather than in the evaluator.
    """
    if len(expression) > MAX_EXPRESSION_CHARS or not _ALLOWED.fullmatch(expression):
        return None
    tokens: list[int | str] = []
    expect_operand = True
    depth = 0
    for text in _TOKEN.findall(expression):
        if text[0] in "0123456789":
            if not expect_operand:
                return None
            tokens.append(int(text))
            expect_operand = False
        elif text == "(":
            if not expect_operand:
                return None
            depth += 1
            tokens.append(text)
        elif text == ")":
            if expect_operand or depth == 0:
                return None
            depth -= 1
            tokens.append(text)
        else:
            if expect_operand:
                return None
            tokens.append(text)
            expect_operand = True
    if expect_operand or depth != 0:
        return None
    return tokens


def evaluate_tokens(tokens: list[int | str]) -> Number | None:
    """Exact value of a token list accepted by ``tokenize``; None on division by zero."""
    output: list[Number] = []
    operators: list[str] = []

    def apply(op: str) -> bool:
        right = output.pop()
        left = output.pop()
        if op == "+":
            output.append(left + right)
        elif op == "-":
            output.append(left - right)
        elif op == "*":
            output.append(left * right)
        else:
            if right == 0:
                return False
            output.append(Fraction(left, right) if type(left) is int and type(right) is int else Fraction(left) / right)
        return True

    for token in tokens:
        if type(token) is int:
            output.append(token)
        elif token == "(":
            operators.append(token)
        elif token == ")":
            while operators[-1] != "(":
                if not apply(operators.pop()):
                    return None
            operators.pop()
        else:
            precedence = _PRECEDENCE[token]
            # All four operators are left-associative: pop while the stacked one binds at least as tightly.
            while operators and operators[-1] != "(" and _PRECEDENCE[operators[-1]] >= precedence:
                if not apply(operators.pop()):
                    return None
            operators.append(token)
    while operators:
        if not apply(operators.pop()):
            return None
    return output[0]


def evaluate(expression: str) -> Number | None:
    """Exact value of ``expression``, or None if it is outside the grammar, too long or divides by zero."""
    tokens = tokenize(expression)
    return None if tokens is None else evaluate_tokens(tokens)
