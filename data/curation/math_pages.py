"""Synthetic math web pages with their ground truth, for the extraction tests and the
`cc_math_extraction` claim (Nemotron-CC-Math, arXiv 2508.15096, in miniature).

`pages(seed, count)` makes small HTML pages about arithmetic and algebra facts whose
numbers the seed draws. Each page has a nav menu, a cookie banner, a sidebar and a footer
(boilerplate the extraction must drop), paragraphs of text, and one equation in each way
the web writes them: MathJax script tags (inline and display), KaTeX HTML (inline and
display, with its rendered duplicate), MathML presentation markup without a TeX annotation
(inline and block), and `$…$` and `\\(…\\)` in the text; plus a `<pre><code>` block, a
small indented Python function computing one of the facts. The truth is what the
extraction must output: `equations` as delimited LaTeX (`$…$`, `$$…$$`, `\\(…\\)`; for
MathML, the canonical LaTeX `mathml.mathml_to_latex` writes) and `code` verbatim.

`held_out_text(seed, count)` writes documents of the same kind of facts as plain LaTeX
text, for the claim's held-out evaluation.
"""

from __future__ import annotations

import dataclasses
import html
import random
import re

STYLES = ("mathjax", "mathjax_display", "katex", "katex_display", "mathml", "mathml_block",
          "dollar", "paren")
_CONTROL_WORD_END = re.compile(r"\\[A-Za-z]+$")


@dataclasses.dataclass(frozen=True)
class MathPage:
  """A generated page and what its extraction must keep (`equations`, `code`) and drop
  (`boilerplate`: texts of the nav, banner, sidebar and footer)."""
  url: str
  html: str
  equations: tuple[str, ...]
  code: tuple[str, ...]
  boilerplate: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Fact:
  sentence: str  # with "{eq}" where the equation goes
  latex: str     # as a person writes it
  mathml: str    # presentation MathML, no annotation
  mathml_latex: str  # what the converter renders the MathML to


# MathML builders: each returns (markup, the canonical LaTeX of mathml.mathml_to_latex).
def _mn(value) -> tuple[str, str]:
  return f"<mn>{value}</mn>", str(value)


def _mi(name: str, tex: str | None = None) -> tuple[str, str]:
  return f"<mi>{name}</mi>", tex or name


def _mo(op: str, tex: str | None = None) -> tuple[str, str]:
  return f"<mo>{html.escape(op)}</mo>", tex or op


def _row(*items: tuple[str, str]) -> tuple[str, str]:
  latex = ""
  for _, piece in items:
    if latex and _CONTROL_WORD_END.search(latex) and piece[:1].isalpha():
      latex += " "
    latex += piece
  return "<mrow>" + "".join(m for m, _ in items) + "</mrow>", latex


def _sup(base, exponent) -> tuple[str, str]:
  return f"<msup>{base[0]}{exponent[0]}</msup>", f"{base[1]}^{{{exponent[1]}}}"


def _frac(num, den) -> tuple[str, str]:
  return f"<mfrac>{num[0]}{den[0]}</mfrac>", f"\\frac{{{num[1]}}}{{{den[1]}}}"


def _sqrt(arg) -> tuple[str, str]:
  return f"<msqrt>{arg[0]}</msqrt>", f"\\sqrt{{{arg[1]}}}"


def _sum(low, high) -> tuple[str, str]:
  return (f"<munderover><mo>∑</mo>{low[0]}{high[0]}</munderover>",
          f"\\sum_{{{low[1]}}}^{{{high[1]}}}")


def _fact(rng: random.Random) -> _Fact:
  kind = rng.choice(("pythagoras", "gauss", "fractions", "binomial", "root", "greek", "product"))
  if kind == "pythagoras":
    base = rng.choice(((3, 4, 5), (5, 12, 13), (8, 15, 17)))
    scale = rng.randint(1, 9)
    a, b, c = (scale * x for x in base)
    row = _row(_sup(_mn(a), _mn(2)), _mo("+"), _sup(_mn(b), _mn(2)), _mo("="),
               _sup(_mn(c), _mn(2)))
    return _Fact(f"The numbers {a}, {b} and {c} form a Pythagorean triple: {{eq}}.",
                 f"{a}^2 + {b}^2 = {c}^2", *row)
  if kind == "gauss":
    n = rng.randint(3, 99)
    row = _row(_sum(_row(_mi("k"), _mo("="), _mn(1)), _mn(n)), _mi("k"), _mo("="),
               _mn(n * (n + 1) // 2))
    return _Fact(f"Adding the whole numbers from 1 to {n} gives {{eq}}.",
                 f"\\sum_{{k=1}}^{{{n}}} k = {n * (n + 1) // 2}", *row)
  if kind == "fractions":
    a, b, c, d = (rng.randint(1, 9) for _ in range(4))
    num, den = a * d + b * c, b * d
    row = _row(_frac(_mn(a), _mn(b)), _mo("+"), _frac(_mn(c), _mn(d)), _mo("="),
               _frac(_mn(num), _mn(den)))
    return _Fact("Over a common denominator the sum of two fractions is {eq}.",
                 f"\\frac{{{a}}}{{{b}}} + \\frac{{{c}}}{{{d}}} = \\frac{{{num}}}{{{den}}}", *row)
  if kind == "binomial":
    a = rng.randint(2, 12)
    square = _row(_mo("("), _mi("x"), _mo("+"), _mn(a), _mo(")"))
    row = _row(_sup(square, _mn(2)), _mo("="), _sup(_mi("x"), _mn(2)), _mo("+"), _mn(2 * a),
               _mi("x"), _mo("+"), _mn(a * a))
    return _Fact(f"Squaring the binomial x + {a} gives {{eq}}.",
                 f"(x + {a})^2 = x^2 + {2 * a}x + {a * a}", *row)
  if kind == "root":
    m = rng.randint(2, 40)
    row = _row(_sqrt(_mn(m * m)), _mo("="), _mn(m))
    return _Fact(f"The square root of {m * m} is a whole number: {{eq}}.",
                 f"\\sqrt{{{m * m}}} = {m}", *row)
  if kind == "greek":
    a, b = sorted(rng.sample(range(2, 30), 2))
    alpha = _mi("α", "\\alpha")
    cdot = _mo("⋅", "\\cdot")
    row = _row(alpha, cdot, _mn(a), _mo("≤", "\\leq"), alpha, cdot, _mn(b))
    return _Fact(f"For every nonnegative alpha, scaling by {a} gives at most scaling by {b}: "
                 "{eq}.", f"\\alpha \\cdot {a} \\leq \\alpha \\cdot {b}", *row)
  a, b = rng.randint(2, 99), rng.randint(2, 99)
  row = _row(_mn(a), _mo("×", "\\times"), _mn(b), _mo("="), _mn(a * b))
  return _Fact(f"Multiplying {a} by {b} gives {{eq}}.", f"{a} \\times {b} = {a * b}", *row)


def _katex(latex: str, display: bool) -> str:
  visual = "".join(f'<span class="mord">{html.escape(c)}</span>' for c in latex
                   if c not in "\\{}^_")
  span = (f'<span class="katex"><span class="katex-mathml"><math><semantics><mrow>'
          f'<mtext>{html.escape(latex)}</mtext></mrow><annotation encoding="application/x-tex">'
          f'{html.escape(latex)}</annotation></semantics></math></span>'
          f'<span class="katex-html" aria-hidden="true"><span class="base">{visual}</span>'
          f'</span></span>')
  return f'<span class="katex-display">{span}</span>' if display else span


def _styled(fact: _Fact, style: str) -> tuple[str, str]:
  """(the equation's markup in the page, what the extraction must output for it)."""
  latex = fact.latex
  if style == "mathjax":
    return f'<script type="math/tex">{latex}</script>', f"${latex}$"
  if style == "mathjax_display":
    return f'<script type="math/tex; mode=display">{latex}</script>', f"$${latex}$$"
  if style in ("katex", "katex_display"):
    display = style == "katex_display"
    return _katex(latex, display), f"$${latex}$$" if display else f"${latex}$"
  if style in ("mathml", "mathml_block"):
    block = style == "mathml_block"
    attrs = ' display="block"' if block else ""
    return (f'<math xmlns="http://www.w3.org/1998/Math/MathML"{attrs}>{fact.mathml}</math>',
            f"$${fact.mathml_latex}$$" if block else f"${fact.mathml_latex}$")
  if style == "dollar":
    return html.escape(f"${latex}$"), f"${latex}$"
  return html.escape(f"\\({latex}\\)"), f"\\({latex}\\)"


def _code(rng: random.Random) -> str:
  a, b = rng.randint(2, 30), rng.randint(2, 30)
  return (f"def sum_of_squares(a, b):\n"
          f'    """The sum of the squares of a and b."""\n'
          f"    total = 0\n"
          f"    for x in (a, b):\n"
          f"        total += x * x\n"
          f"    return total\n\n"
          f"print(sum_of_squares({a}, {b}))  # {a * a + b * b}")


_NAV = ("Home", "Algebra", "Geometry", "Number theory", "About us")
_TOPICS = ("Pythagorean triples", "sums of integers", "adding fractions", "squares of binomials",
           "square roots", "inequalities", "products")


def pages(seed: int, count: int) -> list[MathPage]:
  """`count` pages drawn by `seed` (the same seed gives the same pages)."""
  rng = random.Random(seed)
  out = []
  for index in range(count):
    site = f"site{rng.randint(0, 9)}.example.org"
    title = f"Notes on {rng.choice(_TOPICS)}, part {index + 1}"
    styles = list(STYLES)
    rng.shuffle(styles)
    body, equations = [], []
    for style in styles:
      fact = _fact(rng)
      markup, truth = _styled(fact, style)
      equations.append(truth)
      sentence = html.escape(fact.sentence).replace("{eq}", markup)
      if style.endswith(("_display", "_block")):
        lead, _, _ = fact.sentence.partition("{eq}")
        sentence = (f"{html.escape(lead.rstrip(': '))}, written out:</p>\n"
                    f"<div>{markup}</div>\n<p>This holds exactly.")
      body.append(f"<p>{sentence}</p>")
    code = _code(rng)
    body.insert(rng.randint(1, len(body) - 1), "<p>The following program checks it.</p>\n"
                f"<pre><code>{html.escape(code)}</code></pre>")
    boilerplate = (f"Welcome to {site}", "Subscribe to our newsletter",
                   "We use cookies to improve your experience",
                   f"Copyright {site} all rights reserved", "Related posts and popular tags")
    nav = "".join(f'<li><a href="/{i}">{name}</a></li>' for i, name in enumerate(_NAV))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script src="https://cdn.example.org/mathjax/tex-chtml.js"></script>
<style>.katex {{ font-size: 1.1em; }}</style></head>
<body>
<header><span class="logo">{boilerplate[0]}</span></header>
<nav class="main-menu"><ul>{nav}</ul></nav>
<div class="cookie-banner">{boilerplate[2]}. <button>OK</button></div>
<article><h1>{title}</h1>
{chr(10).join(body)}
</article>
<aside class="sidebar"><p>{boilerplate[4]}</p>
<form><input name="q"><p>{boilerplate[1]}</p></form></aside>
<footer><p>{boilerplate[3]}</p></footer>
</body></html>
"""
    out.append(MathPage(url=f"https://{site}/notes/{seed}/{index}", html=page,
                        equations=tuple(equations), code=(code,), boilerplate=boilerplate))
  return out


def held_out_text(seed: int, count: int) -> list[str]:
  """`count` documents of math facts in plain LaTeX text (`$…$`, some `$$…$$` on a line of
  their own), without blank lines, so that a text source reads each as one document."""
  rng = random.Random(seed)
  documents = []
  for _ in range(count):
    lines = []
    for _ in range(rng.randint(3, 6)):
      fact = _fact(rng)
      if rng.random() < 0.25:
        lead, _, _ = fact.sentence.partition("{eq}")
        lines.append(f"{lead.rstrip(': ')}, written out:\n$${fact.latex}$$\nThis holds exactly.")
      else:
        lines.append(fact.sentence.replace("{eq}", f"${fact.latex}$"))
    documents.append("\n".join(lines))
  return documents
