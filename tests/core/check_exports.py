#!/usr/bin/env python3
"""A library (libnde, libnde-train) exports exactly the functions and objects
its public headers mark NDE_API: no internal symbol leaks, no public one is
hidden.

Usage: check_exports.py NM LIBRARY_SO HEADER...

Every declaration at file scope of a public header (a function or an extern
object; not a typedef, macro or static inline definition) must carry NDE_API,
and the names so declared must equal the names `nm -D --defined-only` lists
for the library. Names starting with '_' belong to the compiler and runtime
(sanitizer instrumentation adds some) and are not counted.
"""
import re
import subprocess
import sys

IDENT = r'[A-Za-z_]\w*'


def strip_source(text):
    """The header without comments, string literals, preprocessor lines and
    `#ifdef __cplusplus` blocks (extern "C" braces), so only C declarations
    remain (line breaks kept for messages)."""
    text = re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group().count('\n'),
                  text, flags=re.S)
    text = re.sub(r'//[^\n]*', '', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    out, in_macro, in_cxx = [], False, False
    for line in text.split('\n'):
        words = line.replace('#', '# ').split()
        if words[:3] == ['#', 'ifdef', '__cplusplus']:
            in_cxx = True
        directive = in_macro or in_cxx or line.lstrip().startswith('#')
        in_macro = directive and line.rstrip().endswith('\\')
        if in_cxx and words[:2] == ['#', 'endif']:
            in_cxx = False
        out.append('' if directive else line)
    return '\n'.join(out)


def declarations(text):
    """(line, text) of every statement at brace depth 0; a function body or
    struct body is dropped, a definition with a body ends its statement."""
    stmts, cur, depth, line, start = [], [], 0, 1, None
    for c in text:
        if c == '\n':
            line += 1
        if depth == 0 and c not in '{};':
            if start is None and not c.isspace():
                start = line
            cur.append(c)
        if c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
            # a function definition: "...) { body }" ends here
            if depth == 0 and ''.join(cur).rstrip().endswith(')'):
                stmts.append((start, ''.join(cur), True))
                cur, start = [], None
        elif c == ';' and depth == 0:
            stmts.append((start, ''.join(cur), False))
            cur, start = [], None
    return stmts


def declared_name(stmt):
    """The name a function or object declaration declares."""
    head = stmt.split('(', 1)[0] if '(' in stmt else stmt.split('[', 1)[0]
    names = re.findall(IDENT, head)
    return names[-1] if names else None


def header_api(path, errors):
    with open(path) as f:
        text = strip_source(f.read())
    api = {}
    for line, stmt, is_definition in declarations(text):
        words = re.findall(IDENT, stmt)
        if not words or words[0] in ('typedef', 'struct', 'enum', 'union'):
            continue
        if is_definition:
            if 'static' not in words:
                errors.append('%s:%d: a definition in a public header that '
                              'is not static' % (path, line))
            continue
        name = declared_name(stmt)
        if 'NDE_API' not in words:
            errors.append('%s:%d: %s is declared without NDE_API'
                          % (path, line, name))
        else:
            api[name] = '%s:%d' % (path, line)
    return api


def exported(nm, lib):
    out = subprocess.run([nm, '-D', '--defined-only', lib], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for row in out.splitlines():
        fields = row.split()
        if fields and not fields[-1].startswith('_'):
            names.add(fields[-1].split('@')[0])
    return names


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    nm, lib, headers = argv[1], argv[2], argv[3:]
    errors, api = [], {}
    for h in headers:
        api.update(header_api(h, errors))
    exp = exported(nm, lib)
    for name in sorted(exp - set(api)):
        errors.append('%s exports %s, which no public header declares '
                      'NDE_API' % (lib, name))
    for name in sorted(set(api) - exp):
        errors.append('%s: %s is declared NDE_API but %s does not export it'
                      % (api[name], name, lib))
    if not api:
        errors.append('no NDE_API declaration found in %s' % ' '.join(headers))
    for e in errors:
        print('check_exports: ' + e, file=sys.stderr)
    if errors:
        return 1
    print('check_exports: %d symbols, all declared NDE_API' % len(exp))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
