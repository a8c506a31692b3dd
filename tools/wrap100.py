"""Wrap code lines over LIMIT characters in notebooks' code cells with black, one statement at a time:

    pip install black   # a tool of this script, not a requirement of spurnb
    python tools/wrap100.py nbs/*.ipynb nbs/tutorials/*.ipynb && nbdev_export


Only the statements (or compound-statement headers) that hold a long line are reformatted; the rest of the cell keeps
its style. Every rewritten cell must parse to the same AST as before, or it is left alone."""
import ast, json, sys
from pathlib import Path
import black

LIMIT = 100

def _docnorm(tree):
    "The tree with every docstring's whitespace collapsed (a wrapped docstring reads the same in show_doc and --help)."
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and n.body:
            d = n.body[0]
            if isinstance(d, ast.Expr) and isinstance(d.value, ast.Constant) and isinstance(d.value.value, str):
                d.value.value = " ".join(d.value.value.split())
    return tree

def _same(a, b):
    try: return ast.dump(_docnorm(ast.parse(a))) == ast.dump(_docnorm(ast.parse(b)))
    except SyntaxError: return False

def wrap_docstrings(src: str) -> str:
    "One-line docstrings over LIMIT (a plain \"...\" literal) rewritten as a triple-quoted docstring filled to LIMIT."
    import textwrap
    tree = ast.parse(src); lines = src.split("\n"); todo = []
    for n in ast.walk(tree):
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or not n.body: continue
        d = n.body[0]
        if not (isinstance(d, ast.Expr) and isinstance(d.value, ast.Constant) and isinstance(d.value.value, str)): continue
        if d.lineno != d.end_lineno or len(lines[d.lineno - 1]) <= LIMIT: continue
        line = lines[d.lineno - 1]; lit = line[d.col_offset:d.end_col_offset]
        if not (lit.startswith('"') and not lit.startswith('"""') and lit.endswith('"')) or "\\" in lit: continue
        if line[:d.col_offset].strip() or line[d.end_col_offset:].strip(): continue   # the docstring shares its line
        todo.append((d.lineno, d.col_offset, d.value.value))
    for ln, col, text in sorted(todo, reverse=True):
        ind = " " * col
        body = textwrap.wrap(text, width=LIMIT - col - 3, break_long_words=False, break_on_hyphens=False)
        if '"' in body[-1][-1:]: continue
        new = [ind + '"""' + body[0]] + [ind + l for l in body[1:]]
        new[-1] += '"""'
        lines[ln - 1:ln] = new
    return "\n".join(lines)

def _fmt(src, width):
    return black.format_str(src, mode=black.Mode(line_length=max(40, width), string_normalization=False,
                                                 enabled_features={black.mode.Preview.string_processing}))

def _region(node, lines):
    "(first, last) 1-based lines to reformat for statement `node`, the dummy suffix needed, or None when not safe."
    first = node.lineno
    body = getattr(node, "body", None)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.end_lineno > node.lineno:
        return None                                   # signatures keep their layout: their comments document parameters (docments)
    if body and isinstance(body, list) and body and body[0].lineno > node.lineno and node.end_lineno > node.lineno:
        last = body[0].lineno - 1                     # the header only (its body stays as it is)
        while last > first and (not lines[last - 1].strip() or lines[last - 1].lstrip().startswith("#")): last -= 1
        return first, last, True
    return first, node.end_lineno, False

def protected(tree) -> set:
    "Lines whose trailing comments document something (fastcore's docments): def headers' parameters, class fields."
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)): out |= set(range(n.lineno, n.body[0].lineno))
        if isinstance(n, ast.ClassDef):
            for b in n.body:
                if isinstance(b, (ast.AnnAssign, ast.Assign)): out |= set(range(b.lineno, b.end_lineno + 1))
    return out

def lift_comments(src: str) -> str:
    "Move the trailing comment of each line over LIMIT to a line of its own above it (same indent): the comment made it long."
    import io, tokenize
    try: toks = list(tokenize.generate_tokens(io.StringIO(src).readline)); keep = protected(ast.parse(src))
    except (tokenize.TokenError, IndentationError, SyntaxError): return src
    lines = src.split("\n"); moves = {}
    for t in toks:
        if t.type != tokenize.COMMENT: continue
        r, c = t.start; line = lines[r - 1]
        if len(line) <= LIMIT or not line[:c].strip() or r in keep: continue
        if r > 1 and lines[r - 2].rstrip().endswith("\\"): continue
        moves[r] = c
    for r in sorted(moves, reverse=True):
        line, c = lines[r - 1], moves[r]; ind = line[:len(line) - len(line.lstrip())]
        lines[r - 1:r] = [ind + line[c:].strip(), line[:c].rstrip()]
    return "\n".join(lines)

def wrap_source(src: str) -> tuple[str, int]:
    try: tree = ast.parse(src)
    except SyntaxError: return src, 0
    try:
        doc = wrap_docstrings(src)
        if doc != src and _same(src, doc): src = doc
    except SyntaxError: pass
    lifted = lift_comments(src)
    if lifted != src and _same(src, lifted): src = lifted; tree = ast.parse(src)
    lines = src.split("\n")
    long = [i + 1 for i, l in enumerate(lines) if len(l) > LIMIT]
    if not long: return src, int(src != "\n".join(lines))
    stmts = [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    keep = protected(tree)
    fields = {n.lineno for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for n in c.body if isinstance(n, (ast.AnnAssign, ast.Assign))}
    regions = {}
    for ln in long:
        cands = [n for n in stmts if n.lineno <= ln <= n.end_lineno]
        if not cands: continue
        # innermost statement whose region (header or whole) holds the line
        for n in sorted(cands, key=lambda n: n.end_lineno - n.lineno):
            r = _region(n, lines)
            if r is None: break
            if r[0] <= ln <= r[1]:
                if r[0] not in fields: regions[(r[0], r[1])] = (n, r[2])   # class fields keep their line (and comment)
                break
    done = 0
    # apply bottom-up so line numbers above stay valid; skip overlapping regions
    taken = []
    for (a, b), (n, header) in sorted(regions.items(), key=lambda kv: -kv[0][0]):
        if any(not (b < x or a > y) for x, y in taken): continue
        first, last = lines[a - 1], lines[b - 1]
        indent = len(first) - len(first.lstrip())
        if first[:n.col_offset].strip(): continue                       # shares its first line with another statement
        if not header and lines[b - 1][n.end_col_offset:].strip() and not lines[b - 1][n.end_col_offset:].strip().startswith("#"): continue
        if first.lstrip().startswith(("elif", "else", "except", "finally")): continue
        if isinstance(n, (ast.Import, ast.ImportFrom)): continue           # nbdev_export makes imports relative line by line
        chunk = "\n".join(l[indent:] if l[:indent].strip() == "" else l for l in lines[a - 1:b])
        if lines[a - 1].lstrip().startswith("@"): continue
        try:
            if header:
                out = _fmt(chunk + "\n    pass\n", LIMIT - indent).rstrip("\n").split("\n")
                assert out[-1].strip() == "pass"; out = out[:-1]
            else:
                out = _fmt(chunk + "\n", LIMIT - indent).rstrip("\n").split("\n")
        except Exception: continue
        if len(out) > max(4 * (b - a + 1), b - a + 11): continue          # exploded one item per line: worse to read than long
        new = [(" " * indent + l) if l.strip() else l for l in out]
        cand = lines[:a - 1] + new + lines[b:]
        if not _same("\n".join(lines), "\n".join(cand)): continue
        lines = cand; taken.append((a, b)); done += 1
    return "\n".join(lines), done

def wrap_notebook(path: Path) -> int:
    nb = json.loads(path.read_text()); n = 0
    for c in nb["cells"]:
        if c["cell_type"] != "code": continue
        src = "".join(c["source"])
        if any(l.lstrip().startswith(("%", "!")) for l in src.split("\n")): continue
        new, k = wrap_source(src); k = k or int(new != src)
        if k and new != src:
            ls = new.split("\n"); c["source"] = [l + "\n" for l in ls[:-1]] + ([ls[-1]] if ls[-1] else []); n += k
    if n: path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return n

if __name__ == "__main__":
    for f in sys.argv[1:]: print(f, wrap_notebook(Path(f)))
