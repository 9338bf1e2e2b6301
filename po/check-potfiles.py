#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""po/POTFILES.in lists files that exist, and every C file under clients/ and daemon/
that marks strings for translation with _("...") or N_("...") is listed.

  check-potfiles.py SOURCE_ROOT
"""

import os
import re
import sys


def main():
    root = sys.argv[1]
    with open(os.path.join(root, 'po', 'POTFILES.in'), encoding='utf-8') as f:
        listed = [l.strip() for l in f if l.strip() and not l.startswith('#')]
    errors = 0
    for path in listed:
        if not os.path.isfile(os.path.join(root, path)):
            print(f'FAIL: po/POTFILES.in lists {path}, which does not exist')
            errors += 1
    for top in ('clients', 'daemon'):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in names:
                if not name.endswith('.c'):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                with open(os.path.join(root, path), encoding='utf-8', errors='replace') as f:
                    marked = re.search(r'\bN?_\("', f.read())
                if marked and path not in listed:
                    print(f'FAIL: {path} has translatable strings but is not in po/POTFILES.in')
                    errors += 1
    print('ok' if errors == 0 else f'{errors} problem(s)')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
