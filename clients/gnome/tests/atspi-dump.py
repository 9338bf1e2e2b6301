#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Prints the accessibility tree (AT-SPI) of a running application, one JSON object a
node: {"depth", "role", "name", "description"}.

  atspi-dump.py APP_NAME TIMEOUT [NAME...]

Waits (polling the accessibility registry, up to TIMEOUT seconds) until APP_NAME is on the
desktop and every NAME is the name of one of its nodes, then prints the tree. Exits 1 with
the last tree on stderr when that does not happen in time."""

import json
import sys
import time

import gi

gi.require_version('Atspi', '2.0')
from gi.repository import Atspi  # noqa: E402

MAX_NODES = 5000


def walk(node, depth, out):
    if node is None or len(out) >= MAX_NODES:
        return
    try:
        out.append({'depth': depth, 'role': node.get_role_name(), 'name': node.get_name() or '',
                    'description': node.get_description() or ''})
        n = node.get_child_count()
    except gi.repository.GLib.Error:
        return  # gone while walking
    for i in range(n):
        try:
            child = node.get_child_at_index(i)
        except gi.repository.GLib.Error:
            continue
        walk(child, depth + 1, out)


def find_app(name):
    desktop = Atspi.get_desktop(0)
    for i in range(desktop.get_child_count()):
        app = desktop.get_child_at_index(i)
        if app is not None and app.get_name() == name:
            return app
    return None


def main():
    name, timeout, wanted = sys.argv[1], float(sys.argv[2]), set(sys.argv[3:])
    end = time.monotonic() + timeout
    tree = []
    while True:
        app = find_app(name)
        tree = []
        if app is not None:
            walk(app, 0, tree)
            if wanted <= {n['name'] for n in tree}:
                for n in tree:
                    print(json.dumps(n))
                return 0
        if time.monotonic() > end:
            missing = wanted - {n['name'] for n in tree}
            print(f'after {timeout} s: application {name!r} ' +
                  ('not on the accessibility bus' if app is None else f'has no node named {sorted(missing)}'),
                  file=sys.stderr)
            for n in tree:
                print(json.dumps(n), file=sys.stderr)
            return 1
        time.sleep(0.2)


if __name__ == '__main__':
    sys.exit(main())
