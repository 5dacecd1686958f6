"""Procedural reasoning problems with step-by-step solutions and checkable answers.

A problem is a dict {"kind", "question", "solution", "answer", "text"}. The solution is
one step per line and ends with the line "Answer: <answer>"; with `think=True` the steps
are wrapped as "<think>\\n...\\n</think>". `text == question + "\\n" + solution` is the
pretraining form; SFT uses question as prompt and solution as target. The "Answer:"
line is the format `data.answers` reads: `answers.is_correct(generated, problem)`
checks a generated solution.

Kinds: addition, subtraction, multiplication, expression, word_problem, equation,
sequence, boxes. Modular sums "a b c = s" (`modular_sum`) have their own compact form
without "Answer:", for the RLP toy experiment (``modular_sum_lines``: the claims' form,
question and solution on two lines). ``chain_sum`` (running sums of digits) feeds the
long chain-of-thought claim; ``code_state_updates`` (Python variable and list updates)
and ``box_operations`` the code entity-tracking claim.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Optional, Union

from data import answers
from data import english_grammar
from data import tokenizer as tokenizer_lib

PLACE_NAMES = ("ones", "tens", "hundreds", "thousands", "ten thousands")


def make_problem(kind: str, question: str, steps: list[str], answer: Union[int, str],
                 think: bool) -> dict[str, str]:
  answer = str(answer)
  body = "\n".join(steps)
  if think:
    body = f"{tokenizer_lib.THINK_START}\n{body}\n{tokenizer_lib.THINK_END}"
  solution = f"{body}\n{answers.ANSWER_PREFIX}{answer}"
  return {"kind": kind, "question": question, "solution": solution, "answer": answer,
          "text": f"{question}\n{solution}"}


def _number(rng: random.Random, digits: int) -> int:
  return rng.randrange(10 ** (digits - 1), 10 ** digits)


def addition(rng: random.Random, think: bool) -> dict[str, str]:
  """Column addition, one line per place value with its carry."""
  a, b = _number(rng, rng.randrange(2, 5)), _number(rng, rng.randrange(2, 5))
  steps, carry, place = [], 0, 0
  while (a // 10 ** place) or (b // 10 ** place) or carry:
    if not (a // 10 ** place or b // 10 ** place):
      steps.append(f"Write the carry {carry} in the {PLACE_NAMES[place]}.")
      break
    x, y = a // 10 ** place % 10, b // 10 ** place % 10
    total = x + y + carry
    terms = f"{x} + {y}" + (f" + {carry}" if carry else "")
    step = f"Add the {PLACE_NAMES[place]}: {terms} = {total}."
    if total >= 10:
      step += f" Write {total % 10}, carry 1."
    steps.append(step)
    carry, place = total // 10, place + 1
  steps.append(f"So {a} + {b} = {a + b}.")
  return make_problem("addition", f"What is {a} + {b}?", steps, a + b, think)


def _place_parts(n: int) -> list[int]:
  """537 -> [500, 30, 7] (zero parts left out)."""
  digits = str(n)
  return [int(d) * 10 ** (len(digits) - i - 1) for i, d in enumerate(digits) if d != "0"]


def subtraction(rng: random.Random, think: bool) -> dict[str, str]:
  """Subtract the place values of the smaller number one at a time."""
  a = rng.randrange(20, 10 ** rng.randrange(2, 5))
  b = rng.randrange(10, a)
  steps, current = [], a
  for part in _place_parts(b):
    steps.append(f"{current} - {part} = {current - part}.")
    current -= part
  steps.append(f"So {a} - {b} = {a - b}.")
  return make_problem("subtraction", f"What is {a} - {b}?", steps, a - b, think)


def multiplication(rng: random.Random, think: bool) -> dict[str, str]:
  """Split the first factor into place values and add the partial products."""
  a, b = _number(rng, rng.randrange(2, 4)), rng.randrange(2, 13)
  parts = _place_parts(a)
  products = [p * b for p in parts]
  steps = [f"Split {a} into {' + '.join(map(str, parts))}."]
  steps += [f"{p} * {b} = {q}." for p, q in zip(parts, products)]
  if len(products) > 1:
    steps.append(f"{' + '.join(map(str, products))} = {a * b}.")
  steps.append(f"So {a} * {b} = {a * b}.")
  return make_problem("multiplication", f"What is {a} * {b}?", steps, a * b, think)


@dataclasses.dataclass(frozen=True)
class _Op:
  symbol: str
  left: Union[_Op, int]
  right: Union[_Op, int]


_PRECEDENCE = {"+": 1, "-": 1, "*": 2}


def _random_expression(rng: random.Random, num_ops: int) -> Union[_Op, int]:
  if num_ops == 0:
    return rng.randrange(1, 13)
  left_ops = rng.randrange(num_ops)
  return _Op(rng.choice("+-*"), _random_expression(rng, left_ops),
             _random_expression(rng, num_ops - 1 - left_ops))


def _format(node: Union[_Op, int], parent_precedence: int = 0, is_right: bool = False) -> str:
  if isinstance(node, int):
    return str(node)
  precedence = _PRECEDENCE[node.symbol]
  text = (f"{_format(node.left, precedence)} {node.symbol} "
          f"{_format(node.right, precedence, is_right=True)}")
  needs_parentheses = precedence < parent_precedence or (
      is_right and precedence == parent_precedence)
  return f"({text})" if needs_parentheses else text


def _evaluate(node: Union[_Op, int], steps: list[str]) -> int:
  """Value of `node`; appends one "x op y = z." line per operation, innermost first."""
  if isinstance(node, int):
    return node
  left, right = _evaluate(node.left, steps), _evaluate(node.right, steps)
  value = {"+": left + right, "-": left - right, "*": left * right}[node.symbol]
  steps.append(f"{left} {node.symbol} {right} = {value}.")
  return value


def expression(rng: random.Random, think: bool) -> dict[str, str]:
  """Order of operations with 2-3 operators; redrawn until no value is negative."""
  while True:
    tree = _random_expression(rng, rng.randrange(2, 4))
    steps = []
    value = _evaluate(tree, steps)
    if all(int(step.rsplit("= ", 1)[1][:-1]) >= 0 for step in steps):
      break
  text = _format(tree)
  return make_problem("expression", f"Compute {text}.", steps + [f"So {text} = {value}."],
                      value, think)


def word_problem(rng: random.Random, think: bool) -> dict[str, str]:
  """Multi-step stories about shopping, collecting, sharing, travel, ages and reading."""
  person, friend = (english_grammar.Person(*p) for p in rng.sample(english_grammar.NAMES, 2))
  he, his = person.subject, person.possessive
  kind = rng.randrange(6)
  if kind == 0:
    count, price, extra = rng.randrange(2, 10), rng.randrange(2, 15), rng.randrange(1, 20)
    item, other = rng.sample(("pencils", "apples", "notebooks", "stickers", "cookies",
                              "balloons"), 2)
    question = (f"{person.name} buys {count} {item} that cost {price} dollars each and a bag "
                f"of {other} that costs {extra} dollars. How many dollars does {he} spend?")
    steps = [f"The {item} cost {count} * {price} = {count * price} dollars.",
             f"Adding the {other}: {count * price} + {extra} = {count * price + extra} dollars."]
    answer = count * price + extra
  elif kind == 1:
    start, bags, per_bag = rng.randrange(1, 30), rng.randrange(2, 8), rng.randrange(2, 12)
    thing = rng.choice(("marbles", "shells", "stamps", "cards", "beads"))
    total = start + bags * per_bag
    given = rng.randrange(1, total)
    question = (f"{person.name} has {start} {thing}. {he.capitalize()} gets {bags} bags with "
                f"{per_bag} {thing} in each bag. Then {he} gives {given} {thing} to "
                f"{friend.name}. How many {thing} does {person.name} have now?")
    steps = [f"The bags hold {bags} * {per_bag} = {bags * per_bag} {thing}.",
             f"With the {thing} {he} had: {start} + {bags * per_bag} = {total}.",
             f"After giving some away: {total} - {given} = {total - given}."]
    answer = total - given
  elif kind == 2:
    friends, each = rng.randrange(2, 10), rng.randrange(2, 13)
    kept = rng.randrange(0, 10)
    total = friends * each + kept
    thing = rng.choice(("cookies", "grapes", "stickers", "crayons", "coins"))
    question = (f"{person.name} has {total} {thing}. {he.capitalize()} keeps {kept} and "
                f"shares the rest equally among {friends} friends. How many {thing} does each "
                "friend get?")
    steps = [f"{he.capitalize()} shares {total} - {kept} = {total - kept} {thing}.",
             f"Each friend gets {total - kept} / {friends} = {each}."]
    answer = each
  elif kind == 3:
    speed, hours, more = rng.randrange(20, 120, 5), rng.randrange(2, 7), rng.randrange(5, 60)
    vehicle = rng.choice(("train", "bus", "car", "boat"))
    question = (f"A {vehicle} travels {speed} kilometers each hour for {hours} hours, then "
                f"{more} more kilometers. How many kilometers does it travel in total?")
    steps = [f"In {hours} hours it travels {speed} * {hours} = {speed * hours} kilometers.",
             f"Then {speed * hours} + {more} = {speed * hours + more} kilometers."]
    answer = speed * hours + more
  elif kind == 4:
    age, older, years = rng.randrange(4, 15), rng.randrange(1, 30), rng.randrange(1, 20)
    question = (f"{person.name} is {age} years old. {friend.name} is {older} years older "
                f"than {person.name}. How old will {friend.name} be in {years} years?")
    steps = [f"{friend.name} is {age} + {older} = {age + older} years old now.",
             f"In {years} years: {age + older} + {years} = {age + older + years}."]
    answer = age + older + years
  else:
    per_day, days = rng.randrange(5, 30), rng.randrange(2, 8)
    pages = per_day * days + rng.randrange(1, 200)
    question = (f"A book has {pages} pages. {person.name} reads {per_day} pages every day for "
                f"{days} days. How many pages are left for {his} next days?")
    steps = [f"{he.capitalize()} reads {per_day} * {days} = {per_day * days} pages.",
             f"Pages left: {pages} - {per_day * days} = {pages - per_day * days}."]
    answer = pages - per_day * days
  return make_problem("word_problem", question, steps, answer, think)


def equation(rng: random.Random, think: bool) -> dict[str, str]:
  """a*x + b = c or a*x - b = c with a whole-number solution."""
  x, a, b = rng.randrange(1, 13), rng.randrange(2, 10), rng.randrange(1, 40)
  if rng.random() < 0.5:
    c = a * x + b
    question = f"Solve for x: {a}x + {b} = {c}."
    first = f"Subtract {b} from both sides: {a}x = {c} - {b} = {c - b}."
  else:
    c = a * x - b
    question = f"Solve for x: {a}x - {b} = {c}."
    first = f"Add {b} to both sides: {a}x = {c} + {b} = {c + b}."
  steps = [first, f"Divide both sides by {a}: x = {a * x} / {a} = {x}."]
  return make_problem("equation", question, steps, x, think)


def sequence(rng: random.Random, think: bool) -> dict[str, str]:
  """Next term of an arithmetic or geometric sequence."""
  if rng.random() < 0.6:
    start, step = rng.randrange(1, 50), rng.randrange(2, 15)
    terms = [start + i * step for i in range(rng.randrange(4, 7))]
    rule, nxt = f"Each number is {step} more than the one before.", terms[-1] + step
    last_step = f"{terms[-1]} + {step} = {nxt}."
  else:
    start, factor = rng.randrange(1, 6), rng.randrange(2, 4)
    terms = [start * factor ** i for i in range(rng.randrange(4, 6))]
    rule, nxt = f"Each number is {factor} times the one before.", terms[-1] * factor
    last_step = f"{terms[-1]} * {factor} = {nxt}."
  question = f"What number comes next: {', '.join(map(str, terms))}, ?"
  return make_problem("sequence", question, [rule, last_step], nxt, think)


BOX_ITEMS = ("apple", "key", "coin", "ring", "shell", "stone", "book", "cup", "pen", "map")


def box_contents(items: set[str]) -> str:
  """What a box holds in words: "the apple and the key" (sorted) or "nothing"."""
  return " and ".join(f"the {i}" for i in sorted(items)) if items else "nothing"


def boxes(rng: random.Random, think: bool, num_boxes: Optional[int] = None,
          num_operations: Optional[int] = None) -> dict[str, str]:
  """Entity tracking: put, move and remove items, then ask what one box contains.
  ``num_boxes`` (2 to 6) and ``num_operations`` default to draws of 3-4 and 2-4."""
  num_boxes = rng.randrange(3, 5) if num_boxes is None else num_boxes
  items = rng.sample(BOX_ITEMS, 6)
  contents = [set() for _ in range(num_boxes)]
  for item in items[:num_boxes]:
    contents[rng.randrange(num_boxes)].add(item)
  spare = items[num_boxes:]
  lines = [f"Box {i + 1} contains {box_contents(c)}." for i, c in enumerate(contents)]
  steps = []
  for _ in range(rng.randrange(2, 5) if num_operations is None else num_operations):
    full = [i for i, c in enumerate(contents) if c]
    action = rng.randrange(3) if spare else rng.randrange(2)
    if action == 0 and full:
      source = rng.choice(full)
      target = rng.choice([i for i in range(num_boxes) if i != source])
      item = rng.choice(sorted(contents[source]))
      contents[source].remove(item)
      contents[target].add(item)
      lines.append(f"Move the {item} from Box {source + 1} to Box {target + 1}.")
      steps.append(f"Box {source + 1} now contains {box_contents(contents[source])}, and "
                   f"Box {target + 1} contains {box_contents(contents[target])}.")
      continue
    if action == 1 and full:
      source = rng.choice(full)
      item = rng.choice(sorted(contents[source]))
      contents[source].remove(item)
      lines.append(f"Remove the {item} from Box {source + 1}.")
      changed = source
    else:
      item, changed = spare.pop(), rng.randrange(num_boxes)
      contents[changed].add(item)
      lines.append(f"Put the {item} into Box {changed + 1}.")
    steps.append(f"Box {changed + 1} now contains {box_contents(contents[changed])}.")
  asked = rng.randrange(num_boxes)
  lines.append(f"What does Box {asked + 1} contain?")
  steps.append(f"So Box {asked + 1} contains {box_contents(contents[asked])}.")
  return make_problem("boxes", " ".join(lines), steps, box_contents(contents[asked]), think)


KINDS = {f.__name__: f for f in (addition, subtraction, multiplication, expression,
                                 word_problem, equation, sequence, boxes)}


def random_problem(rng: random.Random, think_probability: float = 0.5) -> dict[str, str]:
  """A problem of a uniformly drawn kind, with a thought block with the given probability."""
  kind = rng.choice(sorted(KINDS))
  return KINDS[kind](rng, rng.random() < think_probability)


def modular_sum(a: int, b: int, c: int, think: bool) -> dict[str, str]:
  """"a b c = s" with s = (a + b + c) % 10; the thought is "<think> (a + b) % 10 </think>"."""
  answer = (a + b + c) % 10
  thought = f"{tokenizer_lib.THINK_START} {(a + b) % 10} {tokenizer_lib.THINK_END} "
  solution = (thought if think else "") + str(answer)
  question = f"{a} {b} {c} ="
  return {"kind": "modular_sum", "question": question, "solution": solution,
          "answer": str(answer), "text": f"{question} {solution}"}


def modular_sum_lines(a: int, b: int, c: int, thought: Optional[int]) -> dict[str, str]:
  """"a b c =" then, on the next line, "<think> t </think>s" with s = (t + c) % 10 (the
  answer follows the thought, right or not), or only s = (a + b + c) % 10 without one.
  The answer follows ``</think>`` directly, where RLP scores the next token."""
  if thought is None:
    solution = answer = str((a + b + c) % 10)
  else:
    answer = str((thought + c) % 10)
    solution = f"{tokenizer_lib.THINK_START} {thought} {tokenizer_lib.THINK_END}{answer}"
  question = f"{a} {b} {c} ="
  return {"kind": "modular_sum", "question": question, "solution": solution,
          "answer": answer, "text": f"{question}\n{solution}"}


def chain_sum(rng: random.Random, num_terms: int, think: bool = False) -> dict[str, str]:
  """The sum of ``num_terms`` digits, reduced one addition per line ("3 + 4 + 8 + 1",
  "7 + 8 + 1", "15 + 1", "16"): easy step by step, hard for a tiny model at once."""
  terms = [rng.randrange(1, 10) for _ in range(num_terms)]
  question = f"What is {' + '.join(map(str, terms))}?"
  steps, rest = [], list(terms)
  while len(rest) > 1:
    rest = [rest[0] + rest[1]] + rest[2:]
    steps.append(" + ".join(map(str, rest)))
  return make_problem("chain_sum", question, steps, rest[0], think)


def three_digit_sum(rng: random.Random, think: bool = False) -> dict[str, str]:
  """``chain_sum`` of three digits ("What is 7 + 1 + 5?", "8 + 5", "13"): two additions."""
  return chain_sum(rng, 3, think)


def add_digit(rng: random.Random, think: bool = False) -> dict[str, str]:
  """A two-digit number plus a digit, ones first, then the carry into the tens
  ("What is 39 + 6?", "9 + 6 = 15", "3 + 1 = 4", "Answer: 45")."""
  a, b = rng.randrange(10, 90), rng.randrange(1, 10)
  ones = a % 10 + b
  steps = [f"{a % 10} + {b} = {ones}"]
  if ones >= 10:
    steps.append(f"{a // 10} + 1 = {a // 10 + 1}")
  return make_problem("add_digit", f"What is {a} + {b}?", steps, a + b, think)


def digit_count(rng: random.Random, think: bool = False) -> dict[str, str]:
  """How often a digit occurs in a list of 4-7 digits, counted in one running line
  ("How many 2s are in 8 2 2 7?", "0 1 2 2", "Answer: 2")."""
  target = rng.randrange(1, 10)
  digits = [target if rng.random() < 0.4 else rng.randrange(1, 10)
            for _ in range(rng.randrange(4, 8))]
  running = [sum(d == target for d in digits[:i + 1]) for i in range(len(digits))]
  question = f"How many {target}s are in {' '.join(map(str, digits))}?"
  return make_problem("digit_count", question, [" ".join(map(str, running))], running[-1],
                      think)


VARIABLE_NAMES = "abcdefgh"


def variable_chain(rng: random.Random, think: bool = False) -> dict[str, str]:
  """Pointer chasing: three variables set to digits and three set to earlier variables,
  in shuffled order; the steps follow the asked variable back to its digit ("f = e,
  a = 0, e = 8, h = f. What is h?", "h = f", "f = e", "e = 8", "Answer: 8")."""
  names = rng.sample(VARIABLE_NAMES, 6)
  value = {name: rng.randrange(10) for name in names[:3]}
  source, lines = {}, [f"{name} = {value[name]}" for name in names[:3]]
  for i, name in enumerate(names[3:], start=3):
    source[name] = rng.choice(names[:i])
    value[name] = value[source[name]]
    lines.append(f"{name} = {source[name]}")
  rng.shuffle(lines)
  asked = rng.choice(names[3:])
  steps, current = [], asked
  while current in source:
    steps.append(f"{current} = {source[current]}")
    current = source[current]
  steps.append(f"{current} = {value[current]}")
  return make_problem("variable_chain", f"{', '.join(lines)}. What is {asked}?", steps,
                      value[asked], think)


# The front-loading claim's kinds (arXiv 2510.03264): short step-by-step problems a
# ~1M-parameter model learns in a few hundred CPU steps.
FRONT_LOADING_KINDS = {"chain_sum": three_digit_sum, "add_digit": add_digit,
                       "digit_count": digit_count, "variable_chain": variable_chain}


def small_sums(max_a: int, max_b: int) -> list[dict[str, str]]:
  """Every ``{"kind": "math", "question": "a+b=", "answer": "a+b"}`` with a <= max_a,
  b <= max_b: the short-answer task of the GRPO CPU defaults."""
  return [{"kind": "math", "question": f"{a}+{b}=", "answer": str(a + b)}
          for a in range(max_a + 1) for b in range(max_b + 1)]


def box_operations(question: str, box: int) -> int:
  """How many operations (move, remove, put) of a ``boxes`` question touch Box ``box``:
  the difficulty axis of arXiv 2405.21068."""
  return sum(sentence.startswith(("Move ", "Remove ", "Put ")) and
             str(box) in re.findall(r"Box (\d+)", sentence)
             for sentence in question.split(". "))


CODE_NAMES = "abcdefgh"


def code_state_updates(rng: random.Random) -> str:
  """A short Python program of variable or list updates, then what its ``print`` shows
  (code-like state tracking, arXiv 2405.21068): integers ("x = 3", "y = x", "x += 2")
  or lists of the boxes' items ("a.append('key')", "a.remove('key'); b.append('key')")."""
  names = rng.sample(CODE_NAMES, rng.randrange(3, 5))
  lines = []
  if rng.random() < 0.5:
    values = {}
    for name in names:
      if values and rng.random() < 0.4:
        source = rng.choice(sorted(values))
        values[name] = values[source]
        lines.append(f"{name} = {source}")
      else:
        values[name] = rng.randrange(10)
        lines.append(f"{name} = {values[name]}")
    for _ in range(rng.randrange(2, 6)):
      name, number = rng.choice(names), rng.randrange(1, 10)
      operation = rng.randrange(3)
      if operation == 0:
        values[name] += number
        lines.append(f"{name} += {number}")
      elif operation == 1:
        values[name] -= number
        lines.append(f"{name} -= {number}")
      else:
        source = rng.choice([n for n in names if n != name])
        values[name] = values[source]
        lines.append(f"{name} = {source}")
    asked = rng.choice(names)
    output = str(values[asked])
  else:
    items = rng.sample(BOX_ITEMS, len(names) + 2)
    contents = {name: [] for name in names}
    for item in items[:len(names)]:
      contents[rng.choice(names)].append(item)
    spare = items[len(names):]
    lines = [f"{name} = {contents[name]!r}" for name in names]
    for _ in range(rng.randrange(2, 6)):
      full = [name for name in names if contents[name]]
      operation = rng.randrange(3) if spare else rng.randrange(2)
      if operation == 2 or not full:
        if not spare:
          continue
        name, item = rng.choice(names), spare.pop()
        contents[name].append(item)
        lines.append(f"{name}.append({item!r})")
        continue
      source = rng.choice(full)
      item = rng.choice(contents[source])
      contents[source].remove(item)
      if operation == 0:
        target = rng.choice([n for n in names if n != source])
        contents[target].append(item)
        lines.append(f"{source}.remove({item!r}); {target}.append({item!r})")
      else:
        lines.append(f"{source}.remove({item!r})")
    asked = rng.choice(names)
    output = repr(contents[asked])
  return "\n".join(lines + [f"print({asked})", output])
