# slurmbook's runner of Python assets (the job binary and the kernel run it
# with the environment's python):
#   python runner.py ASSET CODE_FILE OUTPUT_FILE [NAME=VALUE_FILE ...]
# Upstream values (JSON files) become variables of their names; the body
# runs as a module; the value of its final expression (like IPython) is
# written to OUTPUT_FILE as JSON (atomically). An exception prints its
# traceback (the body's frames only) to stderr, reports a `failed` event
# on stdout and exits 1.
import ast
import json
import linecache
import os
import sys
import traceback

EVENT = "\x1eSLURMBOOK "


def emit(event):
    sys.stdout.flush()
    sys.stdout.write(EVENT + json.dumps(event) + "\n")
    sys.stdout.flush()


def report_metadata(metadata):
    """Reports metadata for this asset (shown in %assets and stored)."""
    emit({"event": "metadata", "metadata": metadata})


def fail(summary):
    sys.stderr.flush()
    emit({"event": "failed", "error": summary})
    sys.exit(1)


def main():
    asset, code_file, output = sys.argv[1:4]
    namespace = {"__name__": "__main__", "__builtins__": __builtins__,
                 "report_metadata": report_metadata}
    for spec in sys.argv[4:]:
        name, path = spec.split("=", 1)
        with open(path, "rb") as f:
            namespace[name] = json.load(f)
    with open(code_file, encoding="utf-8") as f:
        source = f.read()
    filename = "<asset %s>" % asset
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        tree = ast.parse(source, filename)
    except SyntaxError:
        traceback.print_exc(limit=0)
        fail("SyntaxError in the body of %s" % asset)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    try:
        exec(compile(tree, filename, "exec"), namespace)
        value = eval(compile(last, filename, "eval"), namespace) if last is not None else None
    except BaseException as e:  # noqa: B902 - everything the body raises is its failure
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        traceback.print_exception(type(e), e, tb)
        code = e.code if isinstance(e, SystemExit) else None
        if isinstance(e, SystemExit) and code in (None, 0):
            value = None
        else:
            fail("".join(traceback.format_exception_only(type(e), e)).strip())
    try:
        data = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        fail("the value of %s is not JSON: %s (%s)" % (asset, e, type(value).__name__))
    tmp = "%s.tmp.%d" % (output, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, output)


main()
