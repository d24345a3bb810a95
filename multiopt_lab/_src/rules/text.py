"""Text-level checks of a rule, before and around ``ast``: limits, tokens, messages.

Limits are checked before ``ast.parse`` sees the text, so a hostile string
cannot hang or crash the process: at most ``MAX_LENGTH`` characters,
``MAX_NESTING`` open brackets (checked with the non-recursive tokenizer),
``MAX_DEPTH`` levels of syntax tree, string literals and patterns of at most
``MAX_LITERAL`` characters.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize

from multiopt_lab._src.rules.errors import RuleError

__all__ = ["MAX_LENGTH", "MAX_NESTING", "MAX_DEPTH", "MAX_LITERAL", "FEATURE_KINDS", "MODULE_NAMES",
           "FUNCTIONS", "needs_model_message",
           "NAMES_HELP", "REFUSED", "BINOPS", "UNQUOTED_PATTERN", "flat_text", "kind_name",
           "scan_tokens", "operand_text", "quote_pattern"]

MAX_LENGTH = 2000
MAX_NESTING = 30
MAX_DEPTH = 50
MAX_LITERAL = 256

FEATURE_KINDS = {"path": "str", "name": "str", "ndim": "int", "shape": "shape",
                 "size": "int", "dtype": "str", "module": "str", "modules": "tuple"}
#: Names known only when the model itself is at hand (not from a parameter dict).
MODULE_NAMES = frozenset({"module", "modules"})
FUNCTIONS = ("glob", "regex", "within")
# glob(*embed*) is a syntax error; say what is missing instead.
UNQUOTED_PATTERN = re.compile(r"\b(glob|regex)\(\s*(?=[^\s\"')rRbBfFuU])")
NAMES_HELP = ("the names are path, name, ndim, shape, size, dtype, module, modules; "
              "the functions glob(), regex() and within()")

REFUSED = {
    "Attribute": "attribute access is not part of the rule language; " + NAMES_HELP,
    "Lambda": "lambdas are not allowed in a rule",
    "ListComp": "comprehensions are not allowed in a rule",
    "SetComp": "comprehensions are not allowed in a rule",
    "DictComp": "comprehensions are not allowed in a rule",
    "GeneratorExp": "comprehensions are not allowed in a rule",
    "Starred": "starred expressions (*x) are not allowed in a rule",
    "JoinedStr": "f-strings are not allowed; write a plain string",
    "List": "list literals are not allowed; write a tuple, e.g. (2, 3)",
    "Set": "set literals are not allowed; write a tuple, e.g. (2, 3)",
    "Dict": "dict literals are not allowed in a rule",
    "IfExp": "conditional expressions (x if c else y) are not allowed; combine conditions with and/or",
    "NamedExpr": "assignment expressions (:=) are not allowed in a rule",
    "Await": "await is not allowed in a rule",
    "Yield": "yield is not allowed in a rule",
    "YieldFrom": "yield is not allowed in a rule",
}
BINOPS = {"Pow": "'**'", "BitAnd": "'&' (write 'and')", "BitOr": "'|' (write 'or')",
           "BitXor": "'^'", "Add": "'+'", "Sub": "'-'", "Mult": "'*'", "Div": "'/'",
           "FloorDiv": "'//'", "Mod": "'%'", "MatMult": "'@'", "LShift": "'<<'", "RShift": "'>>'"}


def needs_model_message(names) -> str:
    """Why a rule reading ``module``/``modules`` cannot run on a bare parameter tree.
    """
    read = " and ".join(sorted(set(names) & MODULE_NAMES)) or "module"
    return (f"this rule reads {read}, the class of the module holding each parameter, which is "
            "known only from the model itself; pass the model (an nn.Module) instead of its "
            "parameter dict: mol.assign(model, filters), optimizer.update(model, gradients), "
            "optimizer.init(model), or build the widget with the model")


def flat_text(text: str) -> str:
    r"""``text`` as one line without surrounding blanks, as the parser reads it.
    """
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ").strip()


def kind_name(kind: str) -> str:
    """A static type in words, with its article."""
    return {"int": "an int", "float": "a float", "str": "a string", "bool": "a bool",
            "shape": "a shape", "tuple": "a tuple"}.get(kind, kind)


def scan_tokens(text: str, body: str, lead: int) -> None:
    """Bound bracket nesting and refuse comments, before the recursive parser runs."""
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(body).readline):
            column = lead + tok.start[1]
            if tok.type == tokenize.COMMENT:
                raise RuleError("comments (#) are not part of the rule language", text, column)
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
                if depth > MAX_NESTING:
                    raise RuleError(f"brackets nested more than {MAX_NESTING} deep", text, column)
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
    except (tokenize.TokenError, SyntaxError):
        pass  # ast.parse reports the same problem with a better message.


def operand_text(text: str, word: str) -> str:
    """``text`` ready to be an operand of ``and``/``or``/``not``: parenthesised
    only where Python's precedence (not > and > or) needs it, and under
    ``not`` around a comparison, for readability.
    """
    text = flat_text(text)
    top = ast.parse(text, mode="eval").body
    if word == "and":
        needs = isinstance(top, ast.BoolOp) and isinstance(top.op, ast.Or)
    else:
        needs = word == "not" and isinstance(top, (ast.BoolOp, ast.Compare))
    return f"({text})" if needs else text


def quote_pattern(pattern: str) -> str:
    """A string literal for ``pattern`` in a rule: raw when it reads better.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"expected a pattern string, got {type(pattern).__name__}")
    printable = pattern.isprintable()
    if printable and '"' not in pattern and "\\" in pattern and not pattern.endswith("\\"):
        return f'r"{pattern}"'  # regexes read best raw
    body = pattern.replace("\\", "\\\\").replace('"', '\\"')
    if not printable:  # control characters, separators, lone surrogates: as escapes
        body = "".join(c if c.isprintable() else repr(c)[1:-1] for c in body)
    return '"' + body + '"'
