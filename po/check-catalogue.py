#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every translatable message of the current sources is translated in every po file of
po/LINGUAS: present, not fuzzy, not empty, not only an obsolete (#~) entry, with the same
plural shape; and the po file, merged with the current template, passes msgfmt --check
(format strings checked against the flags xgettext gives today).

  check-catalogue.py BUILD_ROOT [SOURCE_ROOT]

The template is extracted as `ninja -C BUILD_ROOT pcpd-pot` does: the xgettext command,
keywords and flags are read from that target's command in BUILD_ROOT/build.ninja, with
the files of SOURCE_ROOT/po/POTFILES.in (SOURCE_ROOT defaults to the one the build was
configured with), but written into a temporary directory; nothing in SOURCE_ROOT is
written. Each po file is compared as it is on disk, since that is what msgfmt compiles.

Exit 0 when complete, 1 with one line per gap (source file:line first), 77 (skip) when
the gettext tools are missing, except with CI=true, where that is a failure.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

POT_TARGET = 'meson-internal__pcpd-pot'


def prerequisite_missing(what):
    msg = f'this test needs {what} (Debian: apt-get install gettext)'
    if os.environ.get('CI') == 'true':
        print('FAIL (CI must not skip): ' + msg)
        sys.exit(1)
    print('SKIP: ' + msg)
    sys.exit(77)


def ninja_unescape(s):
    return re.sub(r'\$(.)', lambda m: m.group(1), s)


def pot_command(build_root):
    """The arguments of meson's `gettext pot` helper for the pcpd-pot target, as a dict."""
    try:
        with open(os.path.join(build_root, 'build.ninja'), encoding='utf-8') as f:
            lines = f.read().split('\n')
    except OSError as e:
        print(f'FAIL: cannot read the build file: {e}')
        sys.exit(1)
    for i, line in enumerate(lines):
        if line.startswith('build ' + POT_TARGET + ':'):
            for cmd in lines[i + 1:i + 4]:
                cmd = cmd.strip()
                if cmd.startswith('COMMAND = '):
                    argv = shlex.split(ninja_unescape(cmd[len('COMMAND = '):]))
                    opts = {}
                    for a in argv:
                        if a.startswith('--') and '=' in a:
                            k, v = a[2:].split('=', 1)
                            opts[k] = v
                    return opts
    return None


C_ESCAPES = {'n': '\n', 't': '\t', 'r': '\r', 'a': '\a', 'b': '\b', 'f': '\f', 'v': '\v',
             '"': '"', '\\': '\\', "'": "'", '?': '?'}


def c_unescape(s):
    def one(m):
        e = m.group(1)
        if e[0] in 'xX':
            return chr(int(e[1:], 16))
        if e[0] in '01234567':
            return chr(int(e, 8))
        return C_ESCAPES.get(e, '\\' + e)
    return re.sub(r'\\(x[0-9a-fA-F]+|[0-7]{1,3}|.)', one, s)


class Entry:
    def __init__(self):
        self.refs = []
        self.flags = set()
        self.obsolete = False
        self.fields = {}      # 'msgctxt', 'msgid', 'msgid_plural', 'msgstr', 'msgstr[N]'
        self.previous = {}    # '#|' fields: the msgid a fuzzy entry was translated from
        self.line = 0

    def key(self):
        return (self.fields.get('msgctxt'), self.fields.get('msgid'))

    def msgstrs(self):
        return [v for k, v in sorted(self.fields.items()) if k.startswith('msgstr')]

    def translated(self):
        strs = self.msgstrs()
        return bool(strs) and all(strs)


def parse_po(path):
    """The entries of a PO file (header included), obsolete ones marked so."""
    entries = []
    cur = Entry()
    last = None           # (dict, field) continued by a bare "..." line
    seen_msgstr = False
    field_re = re.compile(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+"(.*)"\s*$')
    with open(path, encoding='utf-8') as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip('\n')
            obsolete = False
            previous = False
            if line.startswith('#~|'):
                line, obsolete, previous = line[3:].lstrip(), True, True
            elif line.startswith('#~'):
                line, obsolete = line[2:].lstrip(), True
            elif line.startswith('#|'):
                line, previous = line[2:].lstrip(), True
            if not line.strip():
                continue
            m = field_re.match(line)
            starts_entry = (line.startswith('#') or previous
                            or (m is not None and m.group(1) in ('msgctxt', 'msgid')))
            if seen_msgstr and starts_entry:
                entries.append(cur)
                cur, last, seen_msgstr = Entry(), None, False
            if line.startswith('#:'):
                cur.refs += line[2:].split()
            elif line.startswith('#,'):
                cur.flags |= {x.strip() for x in line[2:].split(',') if x.strip()}
            elif line.startswith('#'):
                pass
            elif field_re.match(line):
                m = field_re.match(line)
                target = cur.previous if previous else cur.fields
                target[m.group(1)] = c_unescape(m.group(2))
                last = (target, m.group(1))
                if not cur.line:
                    cur.line = n
                cur.obsolete = cur.obsolete or (obsolete and not previous)
                if m.group(1).startswith('msgstr'):
                    seen_msgstr = True
            elif line.startswith('"') and line.rstrip().endswith('"') and last:
                last[0][last[1]] += c_unescape(line.strip()[1:-1])
            else:
                print(f'FAIL: {path}:{n}: cannot parse: {line}')
                sys.exit(1)
    if cur.fields:
        entries.append(cur)
    return entries


def short(s, limit=70):
    s = s.replace('\n', '\\n')
    return '"' + (s if len(s) <= limit else s[:limit - 3] + '...') + '"'


def changed_part(old, new, context=25):
    """old and new from a little before the first character where they differ."""
    i = 0
    while i < min(len(old), len(new)) and old[i] == new[i]:
        i += 1
    start = max(0, i - context)
    cut = (lambda s: '...' + s[start:]) if start else (lambda s: s)
    return short(cut(old)), short(cut(new))


def read_linguas(po_dir):
    langs = []
    with open(os.path.join(po_dir, 'LINGUAS'), encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith('#'):
                langs += line.split()
    return langs


def check_language(lang, po_path, pot_entries, tmp, msgmerge, msgfmt):
    """Lines describing every gap of one po file, source position first."""
    gaps, bad = [], 0
    merged = os.path.join(tmp, lang + '.po')
    r = subprocess.run([msgmerge, '--quiet', '--previous', '--output-file=' + merged,
                        po_path, os.path.join(tmp, 'pcpd.pot')],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return [f'po/{lang}.po: msgmerge failed: {r.stderr.strip()}'], 0
    merged_entries = parse_po(merged)
    suggestions = {e.key(): e for e in merged_entries if not e.obsolete}

    active, obsolete = {}, {}
    for e in parse_po(po_path):
        (obsolete if e.obsolete else active)[e.key()] = e
    for t in pot_entries:
        if t.fields.get('msgid') == '':
            continue
        where = t.refs[0] if t.refs else 'po/pcpd.pot'
        also = f' (also {", ".join(t.refs[1:])})' if len(t.refs) > 1 else ''
        what = short(t.fields['msgid'])
        if 'msgctxt' in t.fields:
            what = f'[{t.fields["msgctxt"]}] ' + what
        e = active.get(t.key())
        bad += 1
        if e is None:
            if t.key() in obsolete:
                problem = (f'only an obsolete (#~) entry at po/{lang}.po:{obsolete[t.key()].line}, '
                           'which msgfmt does not compile')
            else:
                problem = 'missing'
                s = suggestions.get(t.key())
                if s is not None and 'fuzzy' in s.flags and 'msgid' in s.previous:
                    was, now = changed_part(s.previous['msgid'], t.fields['msgid'])
                    problem += f'; the source changed {was} to {now}, so the old ' \
                               'translation is stale'
                problem += f' in po/{lang}.po'
            gaps.append(f'{where}: {what}: {problem}{also}')
            continue
        pos = f'po/{lang}.po:{e.line}'
        if ('msgid_plural' in t.fields) != ('msgid_plural' in e.fields):
            shape = 'plural' if 'msgid_plural' in t.fields else 'singular'
            gaps.append(f'{where}: {what}: the source uses it as {shape}, {pos} does not{also}')
        elif 'fuzzy' in e.flags:
            gaps.append(f'{where}: {what}: fuzzy at {pos}{also}')
        elif not e.translated():
            gaps.append(f'{where}: {what}: untranslated at {pos}{also}')
        else:
            bad -= 1

    # the translations against the format flags and plural forms of today's sources
    r = subprocess.run([msgfmt, '--check', '--output-file=/dev/null', merged],
                       capture_output=True, text=True)
    if r.returncode != 0:
        for line in r.stderr.strip().split('\n'):
            m = re.match(re.escape(merged) + r':(\d+): (.*)', line)
            if m is None:
                if not line.startswith(msgfmt):      # "found N fatal errors"
                    gaps.append(f'po/{lang}.po (merged with the sources): {line}')
                continue
            # the entry of the merged file that holds the line: its source and msgid
            at = [e for e in merged_entries if e.line <= int(m.group(1))]
            if not at or not at[-1].fields.get('msgid'):
                gaps.append(f'po/{lang}.po (merged with the sources): {m.group(2)}')
                continue
            e = at[-1]
            where = e.refs[0] if e.refs else f'po/{lang}.po'
            on_disk = active.get(e.key())
            pos = f'po/{lang}.po:{on_disk.line}' if on_disk else f'po/{lang}.po'
            gaps.append(f'{where}: {short(e.fields["msgid"])}: {m.group(2)} at {pos}')

    used = {t.key() for t in pot_entries}
    for key, e in active.items():
        if key[1] and key not in used:
            print(f'note: po/{lang}.po:{e.line}: {short(key[1])} is no longer used by the '
                  'sources (ninja pcpd-update-po marks it obsolete)')
    return gaps, bad


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip())
        return 2
    build_root = sys.argv[1]
    opts = pot_command(build_root)
    tools = {t: shutil.which(t) for t in ('xgettext', 'msgmerge', 'msgfmt')}
    if opts is None and tools['xgettext'] is None:
        prerequisite_missing('xgettext')
    if opts is None:
        print(f'FAIL: no {POT_TARGET} command in {build_root}/build.ninja: '
              'reconfigure (meson setup --reconfigure) with gettext installed')
        return 1
    xgettext = opts.get('xgettext', tools['xgettext'])
    missing = [t for t, p in (('xgettext', xgettext), ('msgmerge', tools['msgmerge']),
                              ('msgfmt', tools['msgfmt']))
               if p is None or not os.access(p, os.X_OK)]
    if missing:
        prerequisite_missing(' and '.join(missing))

    source_root = sys.argv[2] if len(sys.argv) == 3 else opts['source-root']
    po_dir = os.path.join(source_root, opts.get('subdir', 'po'))
    pkg = opts.get('pkgname', 'pcpd')
    extra = opts['extra-args'].split('@@') if opts.get('extra-args') else []

    with tempfile.TemporaryDirectory(prefix='pcpd-check-catalogue-') as tmp:
        pot = os.path.join(tmp, 'pcpd.pot')
        # the argument list of meson's gettext helper (run_potgen), with the output moved
        r = subprocess.run([xgettext, '--package-name=' + pkg, '-p', tmp,
                            '-f', os.path.join(po_dir, 'POTFILES.in'), '-D', source_root,
                            '-k_', '-o', pot] + extra, capture_output=True, text=True)
        if r.returncode != 0 or not os.path.isfile(pot):
            print(f'FAIL: xgettext failed ({r.returncode}): {r.stderr.strip()}')
            return 1
        pot_entries = parse_po(pot)
        count = sum(1 for e in pot_entries if e.fields.get('msgid'))
        if count == 0:
            print('FAIL: xgettext extracted no message from po/POTFILES.in')
            return 1
        langs = read_linguas(po_dir)
        if not langs:
            print('FAIL: po/LINGUAS lists no language')
            return 1
        failed = 0
        for lang in langs:
            po_path = os.path.join(po_dir, lang + '.po')
            if not os.path.isfile(po_path):
                print(f'FAIL: po/LINGUAS lists {lang}, but po/{lang}.po does not exist')
                failed += 1
                continue
            gaps, bad = check_language(lang, po_path, pot_entries, tmp, tools['msgmerge'],
                                  tools['msgfmt'])
            for g in gaps:
                print('FAIL: ' + g)
            print(f'{lang}: {count - bad}/{count} messages translated, {len(gaps)} problem(s)')
            failed += bool(gaps)
    if failed:
        print('Translate the messages above in po/<lang>.po; `ninja -C build pcpd-update-po` '
              'merges the new strings in first.')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
