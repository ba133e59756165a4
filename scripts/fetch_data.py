"""Writes JSONL problem sets generated with reasoning-gym (run by scripts/fetch_data.sh).

Two modes:

* ``--out DIR``: the training and evaluation sets (``<task>/train.jsonl``, ``<task>/test.jsonl``)
  for ``gsm_symbolic``, ``basic_arithmetic``, ``chain_sum`` and ``countdown``;
* ``--fixtures DIR``: the small test fixtures of ``epgrpo-eval`` (64 items per task) and the
  countdown cross-check file, whose expected scores come from reasoning-gym's own
  ``score_answer``.

Everything is deterministic: fixed seeds and sizes, sorted keys, one JSON object per line.
"""

import argparse
import ast
import hashlib
import importlib.metadata
import itertools
import json
import os
import random
import sys
import time
from fractions import Fraction

import reasoning_gym
from reasoning_gym.arithmetic.gsm_symbolic import generators_00_49, generators_50_99
from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import tasks_ok

REASONING_GYM_VERSION = "0.1.25"

# Seeds. reasoning-gym seeds item ``i`` of a data set with ``Random(seed + i)``, so the train and
# test seeds are far apart: their item generators never share a seed.
TRAIN_SEED = 1_000
TEST_SEED = 1_000_000
FIXTURE_SEED = 2_000_000

SIZES = {
    # task: (train, test)
    "gsm_symbolic": (5_000, 500),
    "basic_arithmetic": (2_000, 200),
    "chain_sum": (2_000, 200),
    "countdown": (2_000, 200),
}
FIXTURE_SIZE = 64
CROSSCHECK_ITEMS = 16
CROSSCHECK_SYNTHETIC = 24

# Every 5th working GSM template (in reasoning-gym's ``tasks_ok`` order) is held out for testing.
HOLDOUT_EVERY = 5
GSM_TEST_TEMPLATES = [t for i, t in enumerate(tasks_ok) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
GSM_TRAIN_TEMPLATES = [t for t in tasks_ok if t not in GSM_TEST_TEMPLATES]
# The sentence reasoning-gym's gsm_symbolic data set appends to every question.
GSM_SUFFIX = " Give the result as your final answer. Do not include units."


def gsm_generator(template):
    module = generators_00_49 if template < 50 else generators_50_99
    return getattr(module, f"generate_{template}")


def gsm_items(split, templates, seed, size, seen):
    """``size`` distinct GSM8K-style items drawn from ``templates``.

    Only items with an integer answer whose worked solution ends in ``#### <answer>`` are kept.
    """
    pick = random.Random(seed)
    items, skipped = [], 0
    idx = 0
    while len(items) < size:
        template = pick.choice(templates)
        rng = random.Random(seed + idx)
        idx += 1
        try:
            example = gsm_generator(template)(rng, 1.0)
        except Exception:  # a template that fails for this draw: skip the draw
            skipped += 1
            continue
        meta = example["metadata"]
        value = meta["answer_value"]
        solution = meta["answer_cot"]
        final = solution.rsplit("####", 1)[-1].strip() if "####" in solution else None
        question = example["question"] + GSM_SUFFIX
        if (
            isinstance(value, bool)
            or not float(value).is_integer()
            or final is None
            or final != str(int(value))
            or question in seen
        ):
            skipped += 1
            continue
        seen.add(question)
        items.append(
            {
                "id": f"gsm_symbolic-{split}-{len(items):05d}",
                "question": question,
                "answer": int(value),
                "solution": solution,
                "template": template,
            }
        )
    return items, skipped


def exact_value(expression):
    """The exact value of an arithmetic expression (integers, + - * /, unary signs, brackets)."""

    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            v = value(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if isinstance(node.op, ast.Div):
                return a / b
        raise ValueError(f"unsupported expression {expression!r}")

    return value(ast.parse(expression, mode="eval"))


def exact_answer(task, entry):
    """Whether an arithmetic item's answer is the exact value of its expression.

    reasoning-gym's basic_arithmetic computes ``/`` as Python's floor division ``//``, so
    "Calculate -42 / 3151." has the answer -1; such items are dropped.
    """
    if task == "countdown":
        return True
    try:
        return exact_value(entry["metadata"]["expression"]) == Fraction(entry["answer"])
    except (ValueError, ZeroDivisionError):
        return False


def rg_items(task, split, seed, size, seen, key):
    """``size`` distinct items of a reasoning-gym data set; ``key(entry)`` identifies a problem."""
    items, skipped = [], 0
    batch = size * 2
    offset = 0
    while len(items) < size:
        data = reasoning_gym.create_dataset(task, size=batch, seed=seed + offset)
        for entry in data:
            k = key(entry)
            if k in seen or not exact_answer(task, entry):
                skipped += 1
                continue
            seen.add(k)
            items.append(record(task, split, len(items), entry))
            if len(items) == size:
                break
        offset += batch
    return items, skipped


def record(task, split, index, entry):
    meta = entry["metadata"]
    out = {"id": f"{task}-{split}-{index:05d}", "question": entry["question"]}
    if task == "countdown":
        out.update(
            answer=meta["target"],
            target=meta["target"],
            numbers=meta["numbers"],
            expression=meta["expression"],
        )
    else:
        answer = entry["answer"]
        try:
            answer = int(answer)
        except ValueError:
            pass
        out.update(answer=answer, expression=meta["expression"])
    return out


def question_key(entry):
    return entry["question"]


def countdown_key(entry):
    meta = entry["metadata"]
    return (meta["target"], tuple(sorted(meta["numbers"])))


def write_jsonl(path, items):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp, path)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def build_sets(out):
    written = []
    # gsm_symbolic: disjoint template sets, so no test question can appear in train.
    seen = set()
    train, skipped_train = gsm_items(
        "train", GSM_TRAIN_TEMPLATES, TRAIN_SEED, SIZES["gsm_symbolic"][0], seen
    )
    test, skipped_test = gsm_items(
        "test", GSM_TEST_TEMPLATES, TEST_SEED, SIZES["gsm_symbolic"][1], seen
    )
    written += [("gsm_symbolic/train.jsonl", train, skipped_train)]
    written += [("gsm_symbolic/test.jsonl", test, skipped_test)]
    for task in ("basic_arithmetic", "chain_sum", "countdown"):
        key = countdown_key if task == "countdown" else question_key
        seen = set()
        # Test first, so that the test set is independent of the train size; train then skips
        # every problem already in the test set.
        test, skipped_test = rg_items(task, "test", TEST_SEED, SIZES[task][1], seen, key)
        train, skipped_train = rg_items(task, "train", TRAIN_SEED, SIZES[task][0], seen, key)
        written += [(f"{task}/train.jsonl", train, skipped_train)]
        written += [(f"{task}/test.jsonl", test, skipped_test)]
    for name, items, _ in written:
        write_jsonl(os.path.join(out, name), items)
    meta = {
        "generator": f"reasoning-gym=={REASONING_GYM_VERSION}",
        "seeds": {"train": TRAIN_SEED, "test": TEST_SEED},
        "sizes": SIZES,
        "gsm_symbolic_train_templates": GSM_TRAIN_TEMPLATES,
        "gsm_symbolic_test_templates": GSM_TEST_TEMPLATES,
    }
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(meta, sort_keys=True, indent=1) + "\n")
    return [(name, len(items), skipped) for name, items, skipped in written]


# ---------------------------------------------------------------------------------------------
# Fixtures and the countdown cross-check


def all_expressions(numbers):
    """Every expression using each of ``numbers`` exactly once (for 4 numbers: 7,680 strings)."""
    if len(numbers) == 1:
        yield str(numbers[0]), Fraction(numbers[0]), True
        return
    for split in range(1, len(numbers)):
        for left_idx in itertools.combinations(range(len(numbers)), split):
            left = [numbers[i] for i in left_idx]
            right = [n for i, n in enumerate(numbers) if i not in left_idx]
            for ls, lv, lint in all_expressions(left):
                for rs, rv, rint in all_expressions(right):
                    for op in "+-*/":
                        if op == "/" and rv == 0:
                            continue
                        if op == "+":
                            value = lv + rv
                        elif op == "-":
                            value = lv - rv
                        elif op == "*":
                            value = lv * rv
                        else:
                            value = lv / rv
                        yield f"({ls} {op} {rs})", value, lint and rint and value.denominator == 1


def crosscheck_cases(entry, rng):
    """(case label, expression) pairs for one countdown item."""
    meta = entry["metadata"]
    numbers, target, ref = meta["numbers"], meta["target"], meta["expression"]
    cases = [
        ("reference", ref),
        ("no_spaces", ref.replace(" ", "")),
        ("extra_spaces", " " + ref.replace("*", " * ").replace("-", " -  ") + " "),
        ("tabs", ref.replace(" ", "\t")),
        ("parenthesised", f"({ref})"),
        ("unicode_times", ref.replace("*", "\u00d7")),
        ("unicode_divide", ref.replace("/", "\u00f7")),
        ("unicode_minus", ref.replace("-", "\u2212")),
        ("equals_target", f"{ref} = {target}"),
        ("plus_zero", f"{ref} + 0"),
        ("times_one", f"({ref}) * 1"),
        ("power", f"({ref}) ** 1"),
        ("double_negation", f"-(-({ref}))"),
        ("unary_plus", f"+{ref}"),
        ("leading_zero", ref.replace(str(numbers[0]), "0" + str(numbers[0]), 1)),
        ("decimal", ref.replace(str(numbers[0]), f"{numbers[0]}.0", 1)),
        ("newline_in_parens", f"({ref.replace(' ', chr(10), 1)})"),
        ("newline_outside_parens", ref.replace(" ", "\n", 1)),
        ("implicit_multiplication", f"2({ref})"),
        ("python_comment", f"{ref} # done"),
        ("brackets", f"[{ref}]"),
        ("unbalanced", f"({ref}"),
        ("empty", ""),
    ]
    # Wrong number: one literal replaced by a number not in the list.
    other = next(n for n in range(1, 200) if n not in numbers)
    cases.append(("wrong_number", ref.replace(str(numbers[0]), str(other), 1)))
    # Reused number: one literal replaced by another given number.
    if len(set(numbers)) > 1:
        a, b = next((x, y) for x in numbers for y in numbers if x != y)
        cases.append(("reused_number", ref.replace(str(a), str(b), 1)))
    # Missing number: drop the last "op literal" of the expression when it ends with one.
    head, _, last = ref.rpartition(" ")
    if head and last.isdigit():
        cases.append(("missing_number", head.rpartition(" ")[0]))
    # Extra number.
    cases.append(("extra_number", f"{ref} + 1 - 1"))
    # Wrong target: an operator changed, so the numbers are right and the value is not.
    for old, new in (("+", "-"), ("-", "+"), ("*", "+")):
        if old in ref:
            cases.append(("wrong_value", ref.replace(old, new, 1)))
            break
    # Every expression of the numbers: one that reaches the target through a fraction, one that
    # ends in a fraction, and a few random ones.
    if len(numbers) <= 4:
        exprs = list(all_expressions(numbers))
        through_fraction = [s for s, v, whole in exprs if v == target and not whole]
        if through_fraction:
            cases.append(("fraction_on_the_way", rng.choice(through_fraction)))
        fractional = [s for s, v, _ in exprs if v.denominator != 1]
        if fractional:
            cases.append(("fractional_value", rng.choice(fractional)))
        other_correct = [s for s, v, _ in exprs if v == target]
        if other_correct:
            cases.append(("other_solution", rng.choice(other_correct)))
        cases += [("random", s) for s, _, _ in rng.sample(exprs, 2)]
        division_by_zero = f"{numbers[0]} / ({numbers[1]} - {numbers[1]})"
        cases.append(("division_by_zero", division_by_zero))
    return cases


def synthetic_cases(rng, count):
    """(numbers, target, case, expression) items that reasoning-gym's generator rarely makes."""
    items = []
    while len(items) < count:
        numbers = [rng.randint(1, 20) for _ in range(4)]
        exprs = list(all_expressions(numbers))
        through_fraction = [(s, v) for s, v, whole in exprs if v.denominator == 1 and not whole]
        if not through_fraction:
            continue
        expression, target = rng.choice(through_fraction)
        items.append((numbers, int(target), "fraction_on_the_way", expression))
    a, b, c = rng.randint(1, 20), rng.randint(1, 20), rng.randint(1, 20)
    items.append(([a, b, b, c], a + c, "division_by_zero", f"{a} / ({b} - {b}) + {c}"))
    # reasoning-gym parses Python, so `**` is a power; this grammar has no power.
    items.append(([2, 3], 8, "power_of_numbers", "2 ** 3"))
    # reasoning-gym compares floats with an absolute tolerance of 1e-6; this parser is exact.
    items.append(([100, 1, 10000000], 100, "float_tolerance", "100 + 1 / 10000000"))
    return items


def build_fixtures(out):
    os.makedirs(out, exist_ok=True)
    seen = set()
    gsm, gsm_skipped = gsm_items("fixture", GSM_TEST_TEMPLATES, FIXTURE_SEED, FIXTURE_SIZE, seen)
    write_jsonl(os.path.join(out, "gsm_symbolic.jsonl"), gsm)
    arith, arith_skipped = rg_items(
        "basic_arithmetic", "fixture", FIXTURE_SEED, FIXTURE_SIZE, set(), question_key
    )
    write_jsonl(os.path.join(out, "basic_arithmetic.jsonl"), arith)
    countdown_data = reasoning_gym.create_dataset("countdown", size=FIXTURE_SIZE, seed=FIXTURE_SEED)
    entries = list(countdown_data)
    countdown = [record("countdown", "fixture", i, e) for i, e in enumerate(entries)]
    write_jsonl(os.path.join(out, "countdown.jsonl"), countdown)
    # The cross-check: expressions for the first CROSSCHECK_ITEMS fixture items and synthetic
    # items, each scored by reasoning-gym's own score_answer. Every record is self-contained.
    rng = random.Random(FIXTURE_SEED)
    cases = []
    for entry in entries[:CROSSCHECK_ITEMS]:
        meta = entry["metadata"]
        seen_expressions = set()
        for case, expression in crosscheck_cases(entry, rng):
            if expression not in seen_expressions:
                seen_expressions.add(expression)
                cases.append((meta["numbers"], meta["target"], case, expression))
    cases += synthetic_cases(rng, CROSSCHECK_SYNTHETIC)
    checks = []
    for numbers, target, case, expression in cases:
        entry = {"metadata": {"numbers": numbers, "target": target}}
        score = countdown_data.score_answer(expression, entry)
        checks.append(
            {
                "case": case,
                "expression": expression,
                "numbers": numbers,
                "rg_score": score,
                "target": target,
            }
        )
    write_jsonl(os.path.join(out, "countdown_crosscheck.jsonl"), checks)
    return [
        ("gsm_symbolic.jsonl", len(gsm), gsm_skipped),
        ("basic_arithmetic.jsonl", len(arith), arith_skipped),
        ("countdown.jsonl", len(countdown), 0),
        ("countdown_crosscheck.jsonl", len(checks), 0),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", help="directory for the train/test sets")
    mode.add_argument("--fixtures", help="directory for the epgrpo-eval test fixtures")
    args = parser.parse_args()
    version = importlib.metadata.version("reasoning-gym")
    if version != REASONING_GYM_VERSION:
        sys.exit(f"reasoning-gym {REASONING_GYM_VERSION} required, found {version}")
    start = time.time()
    out = args.out or args.fixtures
    counts = build_sets(out) if args.out else build_fixtures(out)
    for name, count, skipped in counts:
        path = os.path.join(out, name)
        print(f"{sha256(path)}  {count:6d} items  ({skipped} skipped)  {path}")
    print(f"generated in {time.time() - start:.1f} s with reasoning-gym {version}")


if __name__ == "__main__":
    main()
