#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Check pcpd's introspection XML against the D-Bus contract.

  check-introspection.py contract XML...
      Every member of the contract (DBUS-API.md, copied below) is in the XML
      files with the same signature and access; every member is documented.
      With --api-md FILE, also check that the contract copy below still
      matches the methods, properties and signals named in that DBUS-API.md.

  check-introspection.py compare REFERENCE.xml... --live LIVE.xml
      Every interface of the reference XML files that LIVE.xml (for example
      the output of `busctl introspect --xml-interface`) also contains must
      match it member by member: same names, signatures, directions and
      property access. Members that the live object adds are reported but
      allowed only with --allow-additions.

Exit status: 0 all good, 1 a mismatch (each one printed), 2 usage.
"""

import argparse
import re
import sys
import xml.etree.ElementTree as ET

MANAGER = 'org.freedesktop.PCP1.Manager'
MAPPING = 'org.freedesktop.PCP1.Mapping'
ANNOTATION_EMITS = 'org.freedesktop.DBus.Property.EmitsChangedSignal'

# The contract, as written in DBUS-API.md. Methods: name -> (in, out) argument
# signatures; properties: name -> type; signals: name -> argument signatures.
CONTRACT = {
    MANAGER: {
        'methods': {
            'AddMapping': (['s', 'q', 'q', 'a{sv}'], ['o']),
            'AddMappingForSocket': (['h', 'a{sv}'], ['o']),
            'AddPeer': (['s', 'q', 's', 'q', 'a{sv}'], ['o']),
            'RemoveMapping': (['o'], []),
            'RevokeApp': (['s'], []),
            'SetEnabled': (['b'], []),
            'GetExternalAddress': (['s'], ['s', 's']),
        },
        'properties': {
            'Version': 's',
            'Enabled': 'b',
            'State': 's',
            'Servers': 'a(ssssu)',
            'ExternalAddresses': 'as',
            'Prefix64': 'as',
            'DefaultLifetime': 'u',
            'MaxMappingsPerUser': 'u',
            'MappingCount': 'u',
        },
        'signals': {
            'MappingRemoved': ['o', 's'],
        },
        'const': {'Version'},
    },
    MAPPING: {
        'methods': {
            'Release': ([], []),
        },
        'properties': {
            'Opcode': 's',
            'Family': 's',
            'Protocol': 's',
            'ProtocolNumber': 'y',
            'InternalAddress': 's',
            'InternalPort': 'q',
            'SuggestedExternalPort': 'q',
            'ExternalAddress': 's',
            'ExternalPort': 'q',
            'RemoteAddress': 's',
            'RemotePort': 'q',
            'Lifetime': 'u',
            'ExpiresAt': 't',
            'State': 's',
            'Error': 's',
            'Server': 's',
            'Description': 's',
            'Persistent': 'b',
            'Owner': 's',
            'UID': 'u',
            'PID': 'u',
            'AppId': 's',
            'AppIdSource': 's',
            'Created': 't',
        },
        'signals': {},
        # Persistent, Owner and PID change (a persistent request of the same user; a
        # mapping reclaimed after a restart) and are signalled: not const
        'const': {'Opcode', 'Family', 'Protocol', 'ProtocolNumber', 'InternalPort', 'Created',
                  'UID', 'AppId', 'AppIdSource'},
    },
}


class Problems:
    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)
        print(f'FAIL: {msg}', file=sys.stderr)


def parse_interfaces(path, problems, docs=False):
    """Returns {interface: {'methods': {name: (in, out)}, 'properties': {name: (type, access,
    emits)}, 'signals': {name: [types]}}}. With docs, records members without a comment."""
    try:
        tree = ET.parse(path, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    except (ET.ParseError, OSError) as e:
        problems.add(f'{path}: cannot parse: {e}')
        return {}
    result = {}
    for iface in tree.getroot().iter('interface'):
        name = iface.get('name')
        entry = {'methods': {}, 'properties': {}, 'signals': {}}
        previous = None
        if docs and not _has_doc_before(tree.getroot(), iface):
            problems.add(f'{path}: interface {name} has no doc comment')
        for child in iface:
            if child.tag is ET.Comment:
                previous = child
                continue
            member = child.get('name')
            if docs and child.tag in ('method', 'property', 'signal'):
                if previous is None or member + ':' not in previous.text:
                    problems.add(f'{path}: {name}.{member} has no doc comment starting "{member}:"')
                else:
                    for arg in child.iter('arg'):
                        if f'@{arg.get("name")}:' not in previous.text:
                            problems.add(f'{path}: argument {arg.get("name")} of {name}.{member} '
                                         'is not documented')
            previous = None
            if child.tag == 'method':
                ins = [a.get('type') for a in child.iter('arg') if a.get('direction', 'in') == 'in']
                outs = [a.get('type') for a in child.iter('arg') if a.get('direction') == 'out']
                entry['methods'][member] = (ins, outs)
            elif child.tag == 'property':
                emits = None
                for a in child.iter('annotation'):
                    if a.get('name') == ANNOTATION_EMITS:
                        emits = a.get('value')
                entry['properties'][member] = (child.get('type'), child.get('access'), emits)
            elif child.tag == 'signal':
                entry['signals'][member] = [a.get('type') for a in child.iter('arg')]
        result[name] = entry
    return result


def _has_doc_before(root, iface):
    children = list(root)
    i = children.index(iface) if iface in children else -1
    while i > 0:
        i -= 1
        if children[i].tag is ET.Comment:
            return iface.get('name') + ':' in children[i].text
        return False
    return False


def check_contract(files, problems):
    found = {}
    for f in files:
        for name, entry in parse_interfaces(f, problems, docs=True).items():
            if name in found:
                problems.add(f'{f}: interface {name} is defined twice')
            found[name] = entry
    for iface, want in CONTRACT.items():
        have = found.get(iface)
        if have is None:
            problems.add(f'interface {iface} is missing')
            continue
        for m, sig in want['methods'].items():
            if m not in have['methods']:
                problems.add(f'{iface}.{m}: method missing')
            elif have['methods'][m] != sig:
                problems.add(f'{iface}.{m}: signature {have["methods"][m]} != contract {sig}')
        for p, t in want['properties'].items():
            if p not in have['properties']:
                problems.add(f'{iface}.{p}: property missing')
                continue
            ht, access, emits = have['properties'][p]
            if ht != t:
                problems.add(f'{iface}.{p}: type {ht} != contract {t}')
            if access != 'read':
                problems.add(f'{iface}.{p}: access {access}, the contract has read-only properties')
            want_emits = 'const' if p in want['const'] else 'true'
            if emits != want_emits:
                problems.add(f'{iface}.{p}: EmitsChangedSignal is {emits}, should be {want_emits}')
        for s, args in want['signals'].items():
            if s not in have['signals']:
                problems.add(f'{iface}.{s}: signal missing')
            elif have['signals'][s] != args:
                problems.add(f'{iface}.{s}: arguments {have["signals"][s]} != contract {args}')
        for kind in ('methods', 'properties', 'signals'):
            for extra in sorted(set(have[kind]) - set(want[kind])):
                print(f'note: {iface}.{extra} is an addition to the contract')


def check_api_md(path, problems):
    """Cross-check CONTRACT with the names and signatures in DBUS-API.md."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as e:
        problems.add(f'{path}: {e}')
        return
    methods = {}
    for m in re.finditer(r'^([A-Z]\w+)\(([^)]*)\)(?:\s*->\s*\(([^)]*)\))?', text, re.M):
        name, ins, outs = m.group(1), m.group(2), m.group(3) or ''
        sig = lambda s: [a.split()[0] for a in s.split(',') if a.strip()]  # noqa: E731
        methods[name] = (sig(ins), sig(outs))
    props = dict(re.findall(r'\b([A-Z][A-Za-z0-9]+) (a\(\w+\)|a\{\w+\}|a?[sbyqutxnido])(?=[,\s(])', text))
    for iface, want in CONTRACT.items():
        for name, sig in want['methods'].items():
            if name not in methods:
                problems.add(f'{path}: method {name} not found')
            elif name != 'MappingRemoved' and methods[name] != sig:
                problems.add(f'{path}: {name}{methods[name]} differs from the checker {sig}')
        for name, sig in want['signals'].items():
            if name not in methods or methods[name][0] != sig:
                problems.add(f'{path}: signal {name} not found or differs')
        for name, t in want['properties'].items():
            if props.get(name) != t:
                problems.add(f'{path}: property {name} {props.get(name)} differs from the checker {t}')


def compare_live(reference_files, live_file, allow_additions, problems):
    ref = {}
    for f in reference_files:
        ref.update(parse_interfaces(f, problems))
    live = parse_interfaces(live_file, problems)
    compared = 0
    for iface, want in ref.items():
        have = live.get(iface)
        if have is None:
            continue
        compared += 1
        for kind in ('methods', 'signals'):
            for name, sig in want[kind].items():
                if name not in have[kind]:
                    problems.add(f'live {iface}.{name}: missing')
                elif have[kind][name] != sig:
                    problems.add(f'live {iface}.{name}: {have[kind][name]} != reference {sig}')
        for name, (t, access, _) in want['properties'].items():
            if name not in have['properties']:
                problems.add(f'live {iface}.{name}: property missing')
            elif have['properties'][name][:2] != (t, access):
                problems.add(f'live {iface}.{name}: {have["properties"][name][:2]} != '
                             f'reference {(t, access)}')
        for kind in ('methods', 'properties', 'signals'):
            for extra in sorted(set(have[kind]) - set(want[kind])):
                if allow_additions:
                    print(f'note: live {iface}.{extra} is not in the reference XML')
                else:
                    problems.add(f'live {iface}.{extra}: not in the reference XML')
    if compared == 0:
        problems.add(f'{live_file}: none of the reference interfaces is there')


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    c = sub.add_parser('contract')
    c.add_argument('xml', nargs='+')
    c.add_argument('--api-md')
    p = sub.add_parser('compare')
    p.add_argument('xml', nargs='+')
    p.add_argument('--live', required=True)
    p.add_argument('--allow-additions', action='store_true')
    args = parser.parse_args()

    problems = Problems()
    if args.command == 'contract':
        check_contract(args.xml, problems)
        if args.api_md:
            check_api_md(args.api_md, problems)
    else:
        compare_live(args.xml, args.live, args.allow_additions, problems)
    if problems.items:
        print(f'{len(problems.items)} problem(s)', file=sys.stderr)
        return 1
    print('ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
