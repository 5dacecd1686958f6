"""MathML presentation markup to LaTeX, as Nemotron-CC-Math (arXiv 2508.15096) keeps the
equations of web pages that carry MathML instead of a TeX source.

`mathml_to_latex` renders an element tree (`xml.etree.ElementTree.Element`, or a MathML
string) of the presentation elements: math, mrow, mi, mn, mo, mtext, ms, mspace, msup,
msub, msubsup, mfrac, msqrt, mroot, mover, munder, munderover, mfenced, mtable/mtr/mtd,
mstyle, mpadded, mphantom, menclose and semantics, whose `application/x-tex` annotation
is taken verbatim when present. Unicode identifiers and operators become LaTeX commands
(α → \\alpha, ≤ → \\leq, ∑ → \\sum, ...). The output is canonical: pieces are written
without spaces (a space only where a control word meets a letter), every script and
fraction argument in braces (`x^{2}`, `\\frac{1}{2}`). Malformed markup (an element we
cannot render, a wrong number of children, unparsable XML, nesting deeper than
`MAX_DEPTH`) raises `MathMLError`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

_GREEK = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
          "pi rho varsigma sigma tau upsilon phi chi psi omega").split()
SYMBOLS: dict[str, str] = {
    **{chr(0x3B1 + i): "\\" + name for i, name in enumerate(_GREEK) if name != "omicron"},
    "ο": "o", "ϕ": "\\phi", "φ": "\\varphi", "ϵ": "\\epsilon", "ε": "\\varepsilon",
    "ϑ": "\\vartheta",
    **{chr(0x391 + i): ("\\" + name.capitalize()) for i, name in enumerate(_GREEK)
       if name.capitalize() in ("Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma",
                                "Upsilon", "Phi", "Psi", "Omega")},
    "≤": "\\leq", "≥": "\\geq", "≠": "\\neq", "±": "\\pm", "∓": "\\mp", "×": "\\times",
    "÷": "\\div", "⋅": "\\cdot", "·": "\\cdot", "∗": "\\ast", "∘": "\\circ", "−": "-",
    "∑": "\\sum", "∏": "\\prod", "∫": "\\int", "∬": "\\iint", "∮": "\\oint",
    "∞": "\\infty",
    "∂": "\\partial", "∇": "\\nabla", "√": "\\surd", "→": "\\to", "←": "\\leftarrow",
    "↔": "\\leftrightarrow", "⇒": "\\Rightarrow", "⇐": "\\Leftarrow",
    "⇔": "\\Leftrightarrow", "↦": "\\mapsto", "∈": "\\in", "∉": "\\notin", "∋": "\\ni",
    "⊂": "\\subset", "⊃": "\\supset", "⊆": "\\subseteq", "⊇": "\\supseteq", "∪": "\\cup",
    "∩": "\\cap", "∅": "\\emptyset", "∀": "\\forall", "∃": "\\exists", "¬": "\\neg",
    "∧": "\\wedge", "∨": "\\vee", "≈": "\\approx", "≡": "\\equiv", "∼": "\\sim",
    "≅": "\\cong", "∝": "\\propto", "∣": "\\mid", "∥": "\\parallel", "⊥": "\\perp",
    "…": "\\ldots", "⋯": "\\cdots", "⋮": "\\vdots", "⋱": "\\ddots", "′": "'", "″": "''",
    "⟨": "\\langle", "⟩": "\\rangle", "⌊": "\\lfloor", "⌋": "\\rfloor", "⌈": "\\lceil",
    "⌉": "\\rceil", "ℝ": "\\mathbb{R}", "ℕ": "\\mathbb{N}", "ℤ": "\\mathbb{Z}",
    "ℚ": "\\mathbb{Q}", "ℂ": "\\mathbb{C}", "ℓ": "\\ell", "ℏ": "\\hbar", "°": "^{\\circ}",
    "\u2061": "", "\u2062": "", "\u2063": "", "\u2064": "",
    "{": "\\{", "}": "\\}", "%": "\\%", "#": "\\#", "&": "\\&", "_": "\\_", "$": "\\$",
}
FUNCTIONS = frozenset("sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg "
                      "exp lim limsup liminf max min sup inf det gcd deg dim ker arg Pr mod"
                      .split())
_ACCENTS = {"¯": "\\overline", "‾": "\\overline", "^": "\\hat", "ˆ": "\\hat", "~": "\\tilde",
            "˜": "\\tilde", "→": "\\vec", "⃗": "\\vec", "˙": "\\dot", "¨": "\\ddot"}
_UNDER_ACCENTS = {"_": "\\underline", "¯": "\\underline", "‾": "\\underline"}
_LARGE_OPS = frozenset("∑ ∏ ∫ ∬ ∮ ⋃ ⋂ lim max min sup inf".split())
_TEX_ENCODINGS = ("application/x-tex", "tex", "text/x-tex", "application/x-latex")
_TEXT_ESCAPES = {c: "\\" + c for c in "{}$&%#_"}
_CONTROL_WORD_END = re.compile(r"\\[A-Za-z]+$")
_OPENERS = frozenset("([{⟨|‖⌊⌈")
_CLOSERS = frozenset(")]}⟩|‖⌋⌉")
MAX_DEPTH = 64  # deeper markup is malformed for our purposes (and would exhaust the stack)
_ARITY = {"msup": 2, "msub": 2, "msubsup": 3, "mfrac": 2, "mroot": 2, "mover": 2,
          "munder": 2, "munderover": 3}


class MathMLError(ValueError):
  """MathML that cannot be rendered to LaTeX."""


def mathml_to_latex(element: ET.Element | str) -> str:
  """The LaTeX of a MathML element tree (or a MathML string); raises `MathMLError`."""
  if isinstance(element, str):
    try:
      element = ET.fromstring(element)
    except ET.ParseError as e:
      raise MathMLError(f"unparsable MathML: {e}") from e
  _check_depth(element)
  return _render(element).strip()


def _check_depth(element: ET.Element) -> None:
  stack = [(element, 1)]
  while stack:
    node, depth = stack.pop()
    if depth > MAX_DEPTH:
      raise MathMLError(f"MathML nested deeper than {MAX_DEPTH} elements")
    stack.extend((child, depth + 1) for child in node)


def _tag(element: ET.Element) -> str:
  return element.tag.rsplit("}", 1)[-1].lower() if isinstance(element.tag, str) else ""


def _text(element: ET.Element) -> str:
  if len(element):
    raise MathMLError(f"<{_tag(element)}> holds elements, want text only")
  return " ".join((element.text or "").split())


def _join(pieces) -> str:
  """Concatenates LaTeX pieces, with a space only where a control word meets a letter."""
  out = ""
  for piece in pieces:
    if piece and out and _CONTROL_WORD_END.search(out) and piece[0].isalpha():
      out += " "
    out += piece
  return out


def _symbols(text: str) -> str:
  return _join(SYMBOLS.get(c, c) for c in text)


def _group(latex: str) -> str:
  return "{" + latex + "}"


def _children(element: ET.Element) -> list[ET.Element]:
  return [c for c in element if isinstance(c.tag, str)]


def _row(elements) -> str:
  return _join(_render(c) for c in elements)


def _base(element: ET.Element) -> str:
  """A script's base, braced when it is a row of several pieces not enclosed by fences."""
  latex = _render(element)
  kids = _children(element)
  if _tag(element) in ("mrow", "mstyle") and len(kids) > 1:
    first, last = kids[0], kids[-1]
    fenced = (_tag(first) == "mo" and _tag(last) == "mo" and (first.text or "").strip() in _OPENERS
              and (last.text or "").strip() in _CLOSERS)
    if not fenced:
      return _group(latex)
  return latex


def _render(element: ET.Element) -> str:
  tag = _tag(element)
  kids = _children(element)
  if tag in _ARITY and len(kids) != _ARITY[tag]:
    raise MathMLError(f"<{tag}> has {len(kids)} children, want {_ARITY[tag]}")
  if tag in ("math", "mrow", "mstyle", "mpadded", "menclose", "mtd", "maction"):
    return _row(kids[:1] if tag == "maction" else kids)
  if tag == "mi":
    text = _text(element)
    if len(text) > 1 and text.isalpha() and text.isascii():
      return "\\" + text if text in FUNCTIONS else "\\mathrm{" + text + "}"
    return _symbols(text)
  if tag in ("mn", "mo"):
    return _symbols(_text(element))
  if tag == "mtext":
    text = _text(element)
    return "\\text{" + "".join(_TEXT_ESCAPES.get(c, c) for c in text) + "}" if text else ""
  if tag == "ms":
    return "\\text{\"" + "".join(_TEXT_ESCAPES.get(c, c) for c in _text(element)) + "\"}"
  if tag == "mspace":
    width = element.get("width", "")
    return "\\quad" if width.endswith("em") and _em(width) >= 1 else "\\,"
  if tag == "mphantom":
    return "\\phantom" + _group(_row(kids))
  if tag == "msup":
    return _base(kids[0]) + "^" + _group(_render(kids[1]))
  if tag == "msub":
    return _base(kids[0]) + "_" + _group(_render(kids[1]))
  if tag in ("msubsup", "munderover"):
    return _base(kids[0]) + "_" + _group(_render(kids[1])) + "^" + _group(_render(kids[2]))
  if tag == "mfrac":
    return "\\frac" + _group(_render(kids[0])) + _group(_render(kids[1]))
  if tag == "msqrt":
    return "\\sqrt" + _group(_row(kids))
  if tag == "mroot":
    return "\\sqrt[" + _render(kids[1]) + "]" + _group(_render(kids[0]))
  if tag == "mover":
    return _over_under(kids, _ACCENTS, "^", "\\overset")
  if tag == "munder":
    return _over_under(kids, _UNDER_ACCENTS, "_", "\\underset")
  if tag == "mfenced":
    open_, close = element.get("open", "("), element.get("close", ")")
    separators = "".join(element.get("separators", ",").split()) or ""
    pieces = []
    for i, kid in enumerate(kids):
      if i and separators:
        pieces.append(_symbols(separators[min(i - 1, len(separators) - 1)]))
      pieces.append(_render(kid))
    return _symbols(open_) + _join(pieces) + _symbols(close)
  if tag == "mtable":
    rows = [kid for kid in kids if _tag(kid) in ("mtr", "mlabeledtr")]
    if len(rows) != len(kids):
      raise MathMLError("<mtable> holds something other than <mtr>")
    return "\\begin{matrix}" + "\\\\".join(_table_row(row) for row in rows) + "\\end{matrix}"
  if tag == "semantics":
    for kid in kids:
      if (_tag(kid) == "annotation" and (kid.text or "").strip()
          and kid.get("encoding", "").strip().lower() in _TEX_ENCODINGS):
        return kid.text.strip()
    if not kids:
      raise MathMLError("empty <semantics>")
    return _render(kids[0])
  if tag in ("annotation", "annotation-xml", "none", "mprescripts", "malignmark", "maligngroup"):
    return ""
  raise MathMLError(f"cannot render <{tag}>")


def _table_row(row: ET.Element) -> str:
  cells = _children(row)[1:] if _tag(row) == "mlabeledtr" else _children(row)
  if any(_tag(cell) != "mtd" for cell in cells):
    raise MathMLError("<mtr> holds something other than <mtd>")
  return "&".join(_render(cell) for cell in cells)


def _over_under(kids: list[ET.Element], accents: dict[str, str], script: str, command: str) -> str:
  base, mark = kids
  mark_text = (mark.text or "").strip() if _tag(mark) == "mo" and not len(mark) else None
  if mark_text in accents:
    return accents[mark_text] + _group(_render(base))
  base_text = (base.text or "").strip() if not len(base) else None
  if base_text in _LARGE_OPS:
    return _render(base) + script + _group(_render(mark))
  return command + _group(_render(mark)) + _group(_render(base))


def _em(width: str) -> float:
  try:
    return float(width[:-2])
  except ValueError:
    return 0.0
