"""Long-CoT traces for the built-in arithmetic task (``sft.source: builtin:arith_traces``).

Each trace works the problem step by step (column addition with carries, column subtraction with
borrows, multiplication split into tens and units), checks the result ("Let me check: ..."), and
ends with ``\\boxed{answer}``. A seeded share of traces makes a mistake (a forgotten carry or
borrow, or a slip in one step) that the check catches ("Wait, that's not right ...") and that is
corrected before the final answer. Problems come from the TRAIN split only, never held-out ones.
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple

from rlsp.data.arithmetic import arithmetic_problems
from rlsp.sft.example import SftExample

COLUMNS = ["Units", "Tens", "Hundreds", "Thousands"]
QUESTION = re.compile(r"What is (\d+) ([-+*]) (\d+)\?")


class Working(NamedTuple):
    lines: list[str]  # the steps, one per line
    result: int  # what the steps arrive at
    slip: str  # with a mistake: what went wrong, said when the check catches it; else ""


def arith_traces(size: int, levels: list[int], seed: int, error_share: float) -> list[SftExample]:
    """``size`` traces of train-split problems; exactly ``round(error_share * size)`` with a corrected mistake."""
    problems = arithmetic_problems("train", size, levels, seed)
    rng = random.Random(f"{seed}-arith-traces")
    with_error = set(rng.sample(range(len(problems)), round(error_share * len(problems))))
    return [
        SftExample(id=f"arith-{i}", prompt=p.question, response=trace(p.question, i in with_error))
        for i, p in enumerate(problems)
    ]


def trace(question: str, with_error: bool = False) -> str:
    """The worked solution of one arithmetic question, optionally with a caught and corrected mistake."""
    match = QUESTION.fullmatch(question)
    if match is None:
        raise ValueError(f"not an arithmetic question: {question!r}")
    a, op, b = int(match[1]), match[2], int(match[3])
    work = {"+": _addition, "-": _subtraction, "*": _multiplication}[op]
    right = work(a, b, slip=False)
    lines = []
    if with_error:
        wrong = work(a, b, slip=True)
        lines += wrong.lines + [_check(a, op, b, wrong.result)]  # the check names the wrong result
        lines.append(f"Wait, that's not right: {wrong.slip}")
        lines += [line for line, bad in zip(right.lines, wrong.lines, strict=True) if line != bad]
    else:
        lines += right.lines
    lines += [f"So {a} {op} {b} = {right.result}.", _check(a, op, b, right.result)]
    lines.append(f"The answer is \\boxed{{{right.result}}}.")
    return "\n".join(lines)


def _check(a: int, op: str, b: int, result: int) -> str:
    """Verify ``result`` by the inverse operation (or the other split, for products)."""
    if op == "+":
        shown, got, want = f"{result} - {b}", result - b, a
    elif op == "-":
        shown, got, want = f"{result} + {b}", result + b, a
    else:
        shown = _split_product(b, a) if a >= 10 else _split_product(a, b, swap=True)
        got, want = a * b, result
    verdict = "Correct." if got == want else f"not {want}."
    return f"Let me check: {shown} = {got}{'. ' if got == want else ', '}{verdict}"


def _digits(n: int) -> list[int]:
    """Digits from the units up: 407 -> [7, 0, 4]."""
    return [int(d) for d in reversed(str(n))]


def _nudge(value: int) -> int:
    """A one-off slip in a column's digit that changes no carry or borrow."""
    return value - 1 if value % 10 == 9 else value + 1


def _addition(a: int, b: int, slip: bool) -> Working:
    """Column addition. The slip forgets the first carry, or misadds the units when nothing carries."""
    da, db = _digits(a), _digits(b)
    width = max(len(da), len(db))
    carries = any(x + y >= 10 for x, y in zip(da[: width - 1], db[: width - 1], strict=False))
    lines, carry, total, forgot = [], 0, 0, False
    for k in range(width):
        terms = [d[k] for d in (da, db) if k < len(d)]
        if carry and slip and not forgot:
            forgot = True
        elif carry:
            terms.append(carry)
        column = sum(terms)
        if slip and not carries and k == 0:
            column = _nudge(column)
        last = k == width - 1
        if len(terms) == 1:
            lines.append(f"{COLUMNS[k]}: {column}.")
        else:
            note = ", carry 1" if column >= 10 and not last else ""
            lines.append(f"{COLUMNS[k]}: {' + '.join(map(str, terms))} = {column}{note}.")
        total += (column if last else column % 10) * 10**k
        carry = 0 if last else column // 10
    units = " + ".join(str(d[0]) for d in (da, db))
    what = (
        "I forgot the carry."
        if carries
        else f"{units} = {da[0] + db[0]}, not {_nudge(da[0] + db[0])}."
    )
    return Working(lines, total, what if slip else "")


def _subtraction(a: int, b: int, slip: bool) -> Working:
    """Column subtraction (a >= b). The slip forgets the first borrow, or a units slip when nothing borrows."""
    da, db = _digits(a), _digits(b)
    borrows = any(x < y for x, y in zip(da, db, strict=False))
    lines, borrow, total, forgot = [], 0, 0, False
    for k, x in enumerate(da):
        y = db[k] if k < len(db) else None
        top = x
        shown = str(x)
        if borrow and slip and not forgot:
            forgot = True
        elif borrow:
            top, shown = x - 1, f"{x} - 1"
        borrow = 0
        if y is None:
            value = top
            lines.append(
                f"{COLUMNS[k]}: {shown} = {value}."
                if shown != str(x)
                else f"{COLUMNS[k]}: {value}."
            )
        elif top < y:
            value, borrow = top + 10 - y, 1
            lines.append(f"{COLUMNS[k]}: {shown} < {y}, borrow 10: {top + 10} - {y} = {value}.")
        else:
            value = top - y
            if slip and not borrows and k == 0:
                value = _nudge(value)
            lines.append(f"{COLUMNS[k]}: {shown} - {y} = {value}.")
        total += value * 10**k
    what = (
        "I forgot the borrow."
        if borrows
        else f"{da[0]} - {db[0]} = {da[0] - db[0]}, not {_nudge(da[0] - db[0])}."
    )
    return Working(lines, total, what if slip else "")


def _split_product(a: int, b: int, units_slip: int = 0, swap: bool = False) -> str:
    """``a * b`` worked as a times the tens of b plus a times the units of b (``swap``: b first)."""
    if b < 10:
        return f"{a} * {b}"
    tens, units = b - b % 10, b % 10
    high, low = a * tens, a * units + units_slip
    if swap:
        return f"{b} * {a} = {tens} * {a} + {units} * {a} = {high} + {low}"
    return f"{a} * {b} = {a} * {tens} + {a} * {units} = {high} + {low}"


def _multiplication(a: int, b: int, slip: bool) -> Working:
    """Split the second factor into tens and units. The slip is 10 off in the units product."""
    units = b % 10
    off = (-10 if a * units >= 10 else 10) if slip else 0
    result = a * b + off
    line = f"{_split_product(a, b, off)} = {result}." if b >= 10 else f"{a} * {b} = {result}."
    what = f"{a} * {units} = {a * units}, not {a * units + off}." if slip else ""
    return Working([line], result, what)
