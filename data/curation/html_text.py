"""HTML pages to text that keeps their mathematics: the extraction of Nemotron-CC-Math
(arXiv 2508.15096), which renders pages layout-aware with `lynx -dump` after putting every
equation back as LaTeX, where a generic HTML-to-text conversion drops or garbles it.

`decode_html` turns a page's bytes into text (declared charset, `<meta>` charset, UTF-8,
then detection), `extract` cleans the DOM and renders it:

  boilerplate  nav, header, footer, aside, forms, scripts, styles and elements whose class
               or id says navigation, menu, footer, sidebar, cookie, share, comment, ...
               (a header, form or such an element is kept when it wraps an article, main
               or h1: ASP.NET pages put the whole page in one form)
  math         MathJax `<script type="math/tex">` (`; mode=display` → `$$…$$`), KaTeX
               (`.katex`: its `application/x-tex` annotation; the rendered HTML duplicate
               is dropped), MathML `<math>` (→ `mathml.mathml_to_latex`, `display="block"`
               → `$$…$$`; malformed MathML keeps its text and is counted); inline `$…$`,
               `\\(…\\)`, `\\[…\\]` written in the text are left as they are
  code         `<pre>` blocks, verbatim with their indentation
  render       `lynx -dump` (the paper's renderer) or resiliparse's `extract_plain_text`
               (pure Python); equations and code blocks travel through the renderer as
               placeholders and are substituted back, so line wrapping or character
               mapping cannot touch them

`plain_text` is the baseline: a generic conversion (resiliparse, default options) with no
math handling. Every function that meets bad input returns a drop reason, never raises
(except `extract` when the lynx renderer is asked for and lynx is not installed).
"""

from __future__ import annotations

import codecs
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree, NodeType

from data.curation.mathml import MAX_DEPTH, MathMLError, mathml_to_latex

RENDERERS = ("lynx", "resiliparse")
MAX_HTML_CHARS = 10 * 2**20
LYNX_WIDTH = 1024
LYNX_TIMEOUT_S = 30.0
_MAX_REPLACEMENT_SHARE = 0.01
_DROP_TAGS = frozenset("nav footer aside style noscript iframe button select "
                       "textarea template canvas svg object embed dialog menu".split())
_CONTENT_WRAPPING_TAGS = frozenset(("header", "form"))  # boilerplate unless they wrap content
_BOILERPLATE_WORDS = frozenset(
    "nav navbar navigation menu menubar topbar footer sidebar cookie cookies consent share "
    "sharing social comment comments breadcrumb breadcrumbs advert advertisement ads ad "
    "banner popup modal newsletter subscribe related signup login skip".split())
_MATHJAX_OUTPUT = frozenset("mathjax_preview mathjax mathjax_display mathjax_svg mathjax_chtml "
                            "mjx-chtml".split())
_TEX_ENCODINGS = frozenset(("application/x-tex", "text/x-tex", "tex"))
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u3000]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_INLINE_TEX = re.compile(r"\$\$[^$]+\$\$|\\\((?:.|\n)+?\\\)|\\\[(?:.|\n)+?\\\]"
                         r"|(?<![\\$])\$(?=\S)[^$\n]+?(?<=\S)(?<!\\)\$(?!\d)")


class LynxNotFound(RuntimeError):
  """The lynx renderer was asked for and `lynx` is not on the PATH."""


def decode_html(body: bytes, http_charset: str | None) -> tuple[str | None, str]:
  """(text, "") or (None, "decode_error"). Tries the HTTP charset, the `<meta>` charset,
  UTF-8, then detection. A declared single-byte charset (latin-1, cp1252, ...) never fails
  to decode, so bytes that are valid non-ASCII UTF-8 are read as UTF-8 first: a page
  labelled latin-1 that holds UTF-8 is the common mislabelling; a page labelled UTF-8
  that holds cp1252 fails the strict UTF-8 decode and falls through to detection."""
  declared = [c for c in (http_charset, _meta_charset(body)) if c]
  for charset in declared:
    codec = _codec(charset)
    if codec is None:
      continue
    if _single_byte(codec) and not body.isascii() and _decodes(body, "utf-8"):
      return _strip_bom(body.decode("utf-8")), ""
    if _decodes(body, codec):
      return _strip_bom(body.decode(codec)), ""
  if _decodes(body, "utf-8"):
    return _strip_bom(body.decode("utf-8")), ""
  detected = _codec(detect_encoding(body)) or "cp1252"
  try:
    text = bytes_to_str(body, detected, errors="replace")
  except (UnicodeError, LookupError):
    return None, "decode_error"
  bad = text.count("\ufffd") + sum(1 for c in text if c < " " and c not in "\t\n\r\f")
  if not text.strip() or bad > _MAX_REPLACEMENT_SHARE * len(text):
    return None, "decode_error"
  return text, ""


def _meta_charset(body: bytes) -> str | None:
  match = _META_CHARSET.search(body[:4096])
  return match.group(1).decode("ascii") if match else None


def _codec(label: str) -> str | None:
  try:
    return codecs.lookup(label.strip().strip("\"'")).name
  except LookupError:
    return None


def _single_byte(codec: str) -> bool:
  return codec in ("iso8859-1", "iso8859-15", "cp1250", "cp1252", "ascii")


def _decodes(body: bytes, codec: str) -> bool:
  try:
    body.decode(codec)
  except (UnicodeError, LookupError):  # LookupError: a codec that is no text encoding
    return False
  return True


def _strip_bom(text: str) -> str:
  return text[1:] if text.startswith("\ufeff") else text


def extract(html: str, *, renderer: str = "lynx", max_chars: int = MAX_HTML_CHARS
            ) -> tuple[str | None, str, dict]:
  """(text, "", stats) or (None, reason, stats): the page's main text with its equations as
  `$…$` / `$$…$$` delimited LaTeX and its code blocks verbatim. Reasons: `too_large` (over
  `max_chars`), `render_error` (lynx failed or timed out), `no_text` (nothing left).
  stats: {"equations": kept, "code_blocks": kept, "malformed_mathml": n}."""
  lynx = check_renderer(renderer)
  stats = {"equations": 0, "code_blocks": 0, "malformed_mathml": 0}
  if len(html) > max_chars:
    return None, "too_large", stats
  html = _encodable(html)
  tree = HTMLTree.parse(html)
  if tree.body is None:
    return None, "no_text", stats
  prefix = _placeholder_prefix(html)
  substitutes, stats["malformed_mathml"] = _clean(tree, prefix)
  if lynx is not None:
    rendered = _lynx(lynx, "<html><head><meta charset=\"utf-8\"></head>" + tree.body.html
                     + "</html>")
    if rendered is None:
      return None, "render_error", stats
  else:
    rendered = extract_plain_text(tree, preserve_formatting=True, main_content=False,
                                  list_bullets=True, alt_texts=False)
  text = _normalise(rendered)
  stats["equations"] = len(_INLINE_TEX.findall(text))
  kept = set()

  def put_back(match: re.Match) -> str:
    index = int(match.group(1))
    kept.add(index)
    return substitutes[index][1]

  text = re.sub(re.escape(prefix) + r"(\d+)Q", put_back, text).strip("\n")
  for index in kept:
    stats["equations" if substitutes[index][0] == "math" else "code_blocks"] += 1
  if not text.strip():
    return None, "no_text", stats
  return text, "", stats


def check_renderer(renderer: str) -> str | None:
  """The path of lynx for `renderer="lynx"`, None for resiliparse; `LynxNotFound` when lynx
  is asked for and not installed (a pipeline calls this once before its workers start)."""
  if renderer not in RENDERERS:
    raise ValueError(f"unknown renderer {renderer!r}; want one of {RENDERERS}")
  return _lynx_path() if renderer == "lynx" else None


def _lynx_path() -> str:
  path = shutil.which("lynx")
  if path is None:
    raise LynxNotFound(
        "extract(renderer='lynx') renders pages with `lynx -dump` as Nemotron-CC-Math "
        "(arXiv 2508.15096) does, and lynx is not installed: install it (Debian/Ubuntu: "
        "`apt-get install lynx`) or use extract(renderer='resiliparse'), the pure-Python "
        "renderer.")
  return path


def _lynx(lynx: str, html: str) -> str | None:
  command = [lynx, "-dump", "-nolist", "-stdin", "-force_html", f"-width={LYNX_WIDTH}",
             "-nomargins", "-dont_wrap_pre", "-noreferer", "-assume_charset=utf-8",
             "-display_charset=utf-8"]
  try:
    done = subprocess.run(command, input=html.encode("utf-8"), capture_output=True,
                          timeout=LYNX_TIMEOUT_S, check=False)
  except (subprocess.TimeoutExpired, OSError):
    return None
  if done.returncode != 0:
    return None
  return done.stdout.decode("utf-8", errors="replace")


def _placeholder_prefix(html: str) -> str:
  """A letters-only prefix that the page does not contain: placeholders are `prefix`, a
  number and `Q`, one word that the renderers pass through unchanged."""
  prefix = "QXMATHQ"
  while prefix in html:
    prefix += "Z"
  return prefix


def _holds_content(node) -> bool:
  """Whether an element that looks like boilerplate by its tag (header, form) or its class or id
  words ("content has-sidebar") wraps the page's main content (an article, main or h1)."""
  return node.query_selector("main, article, h1") is not None


def _words(node) -> set[str]:
  names = " ".join(filter(None, (node.getattr("class"), node.getattr("id")))).lower()
  return set(_WORD_SPLIT.split(names)) - {""}


def _children(node) -> list:
  """A node's children by sibling links (resiliparse's `child_nodes` list rebuilds itself on
  every index, which makes iterating it quadratic)."""
  children, child = [], node.first_child
  while child is not None:
    children.append(child)
    child = child.next_sibling
  return children


def _clean(tree: HTMLTree, prefix: str) -> tuple[list[tuple[str, str]], int]:
  """Drops boilerplate and replaces math and code in `tree.body` by placeholders (`prefix`,
  the substitute's index, `Q`); returns the substitutes `("math" | "code", text)` and the
  number of malformed MathML elements."""
  drop, math, code = [], [], []
  stack = _children(tree.body)[::-1]
  while stack:
    node = stack.pop()
    if node.type == NodeType.COMMENT:
      drop.append(node)
      continue
    if node.type != NodeType.ELEMENT:
      continue
    tag = node.tag
    classes = set((node.getattr("class") or "").lower().split())
    if tag == "script":
      (math if (node.getattr("type") or "").lower().startswith("math/tex") else drop).append(node)
    elif "katex" in classes or tag == "math":
      math.append(node)
    elif tag == "pre":
      code.append(node)
    elif tag in _DROP_TAGS or classes & _MATHJAX_OUTPUT or (
        (tag in _CONTENT_WRAPPING_TAGS or _words(node) & _BOILERPLATE_WORDS)
        and not _holds_content(node)):
      drop.append(node)
    else:
      stack.extend(_children(node)[::-1])
  for node in drop:
    node.parent.remove_child(node)
  substitutes, malformed = [], 0

  def substitute(node, kind: str, value: str, block: bool) -> None:
    token = f"{prefix}{len(substitutes):06d}Q"
    substitutes.append((kind, value))
    new = tree.create_text_node(token)
    if block:
      new, text = tree.create_element("div"), new
      new.append_child(text)
    node.parent.replace_child(new, node)

  for node in math:
    latex, display, ok = _latex_of(node)
    malformed += not ok
    if latex is None:
      node.parent.remove_child(node)
    elif not ok:
      node.parent.replace_child(tree.create_text_node(latex), node)
    else:
      substitute(node, "math", f"$${latex}$$" if display else f"${latex}$", display)
  for node in code:
    block = node.text.strip("\n")
    if block.strip():
      substitute(node, "code", block, True)
    else:
      node.parent.remove_child(node)
  return substitutes, malformed


def _latex_of(node) -> tuple[str | None, bool, bool]:
  """(latex, display, ok) of a math element: a MathJax script, a KaTeX span or MathML.
  Not ok: malformed MathML, whose latex is then its text content; None: nothing to keep."""
  if node.tag == "script":
    latex = node.text.strip()
    return latex or None, "mode=display" in (node.getattr("type") or "").replace(" ", ""), True
  if node.tag == "math":
    display = (node.getattr("display") or "").lower() == "block"
    try:
      latex = mathml_to_latex(_etree(node))
    except MathMLError:
      text = " ".join(node.text.split())
      return text or None, display, False
    return latex or None, display, True
  parent = node.parent
  display = parent is not None and "katex-display" in (parent.getattr("class") or "").split()
  for annotation in node.query_selector_all("annotation"):
    if (annotation.getattr("encoding") or "").lower() in _TEX_ENCODINGS and annotation.text.strip():
      return annotation.text.strip(), display, True
  math = node.query_selector("math")
  if math is None:
    return None, display, True
  latex, _, ok = _latex_of(math)
  return latex, display, ok


def _etree(node, depth: int = 1) -> ET.Element:
  """The element tree of a DOM element (tags, attributes and text), for the MathML
  converter; `MathMLError` past `mathml.MAX_DEPTH` levels."""
  if depth > MAX_DEPTH:
    raise MathMLError(f"MathML nested deeper than {MAX_DEPTH} elements")
  element = ET.Element(node.tag, {name: node.getattr(name) or "" for name in node.attrs})
  last = None
  for child in _children(node):
    if child.type == NodeType.ELEMENT:
      last = _etree(child, depth + 1)
      element.append(last)
    elif child.type == NodeType.TEXT:
      if last is None:
        element.text = (element.text or "") + child.text
      else:
        last.tail = (last.tail or "") + child.text
  return element


def _normalise(text: str) -> str:
  """Collapses runs of spaces within lines, strips every line, and keeps at most one blank
  line between blocks (code blocks are substituted after this, so they keep theirs)."""
  lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r", "").split("\n")]
  return _BLANK_RUNS.sub("\n\n", "\n".join(lines))


def plain_text(html: str) -> str:
  """A generic HTML-to-text conversion with no math handling (resiliparse's
  `extract_plain_text` with its default options): the baseline extraction."""
  return extract_plain_text(_encodable(html[:MAX_HTML_CHARS]))


def _encodable(text: str) -> str:
  """`text` with lone surrogates (which no parser or renderer accepts) replaced by '?'."""
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    return text.encode("utf-8", errors="replace").decode("utf-8")
  return text
