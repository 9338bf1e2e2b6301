#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A mapping's description is shown to other users as one line (pcpctl list, the GNOME
app): AddMapping, AddPeer and DeclareMapping refuse one with a control character (C0,
C1), a line break or a bidirectional embedding, override or isolate with InvalidArgs,
naming the character and its position, and nothing is made: no Mapping object, no
signal, no request to the server, no saved record or declaration. The control: a
description in a right-to-left script with left-to-right marks is taken as given."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import INVALID_ARGS, MANAGER, MAPPING, OM, PATH, BusTestCase, V, main, slurp  # noqa: E402

# Caps on waiting for events: generous (a loaded machine, valgrind); a passing test never
# waits for them.
CAP = 60
PORT = 8760

# (description, what pcpd's refusal says about it)
REFUSED = [
    ('web\u202etxt.exe', 'a bidirectional formatting character, U+202E, at character 4'),
    ('a\u2066b', 'a bidirectional formatting character, U+2066, at character 2'),
    ('first line\nsecond line', 'a line break, U+000A, at character 11'),
    ('\u2028', 'a line break, U+2028, at character 1'),
    ('tab\there', 'a control character, U+0009, at character 4'),
    ('\x1b[2Jcleared', 'a control character, U+001B, at character 1'),
    ('caf\u00e9 \u009b31m', 'a control character, U+009B, at character 6'),
]
# Hebrew with a left-to-right mark, and é: a description as an application may well send
KEPT = '\u05e9\u05dc\u05d5\u05dd \u200eweb caf\u00e9'


class DescriptionTest(BusTestCase):

    def mapping_paths(self, env):
        objs = env.call(PATH, OM, 'GetManagedObjects')[0]
        return sorted(p for p, ifaces in objs.items() if MAPPING in ifaces)

    def about_mappings(self, signal):
        """A signal of a mapping made, changed or removed (not of the servers' state)."""
        path, iface, member, args = signal
        if path.startswith(PATH + '/mapping/') or member in ('InterfacesAdded', 'InterfacesRemoved', 'MappingRemoved'):
            return True
        return member == 'PropertiesChanged' and bool({'MappingCount', 'DeclaredMappings'} & set(args[1]))

    def saved(self, env):
        return slurp(os.path.join(env.state, 'mappings.state')) + slurp(os.path.join(env.state, 'mappings.journal'))

    def test_refused_and_nothing_made(self):
        env = self.make_env()
        count = env.get(PATH, MANAGER, 'MappingCount')
        paths = self.mapping_paths(env)
        declared = env.get(PATH, MANAGER, 'DeclaredMappings')
        n_signals = len(env.signals)
        n_requests = len(env.reflog_requests())
        saved = self.saved(env)
        calls = [
            ('AddMapping', lambda d: env.add_mapping('tcp', PORT, 0, {'description': V('s', d)})),
            ('AddPeer', lambda d: env.manager('AddPeer', 'sqsqa{sv}',
                                              ('udp', PORT, '192.0.2.50', 3478, {'description': V('s', d)}))),
            ('DeclareMapping', lambda d: env.manager('DeclareMapping', 'ssqqa{sv}',
                                                     ('bad', 'tcp', PORT, 0, {'description': V('s', d)}))),
        ]
        for desc, says in REFUSED:
            for method, call in calls:
                with self.subTest(method=method, description=desc):
                    e = self.assertDBusError(INVALID_ARGS, call, desc)
                    self.assertTrue(e.msg.endswith(f"Option 'description' has {says}: a description is one line "
                                                   'of text, without control characters, line breaks or '
                                                   'bidirectional formatting characters.'), e.msg)
        # every call has been answered: whatever pcpd did for them is done and signalled
        env.barrier()
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), count)
        self.assertEqual(self.mapping_paths(env), paths)
        self.assertEqual(env.get(PATH, MANAGER, 'DeclaredMappings'), declared)
        self.assertEqual([s for s in env.signals[n_signals:] if self.about_mappings(s)], [],
                         'signals about mappings after the refused calls')
        self.assertEqual(env.requests_for(PORT, n_requests), [], 'requests to the server for the refused mappings')
        self.assertFalse(os.path.exists(os.path.join(env.state, 'mappings.d', 'bad.conf')))
        self.assertEqual(self.saved(env), saved, 'the state directory after the refused calls')
        env.assert_alive()

        # the control: the same call with a description pcpd takes makes the mapping
        path = env.add_mapping('tcp', PORT, 0, {'description': V('s', KEPT)})
        self.assertEqual(env.get(path, MAPPING, 'Description'), KEPT)
        env.wait_state(path, 'active', CAP)
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), count + 1)
        self.assertTrue(env.requests_for(PORT, n_requests), 'a request for the mapping that was made')


if __name__ == '__main__':
    main()
