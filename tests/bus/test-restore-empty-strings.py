#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A saved mapping record without AppId and Description (written by hand before pcpd
starts, as an older pcpd or an administrator may leave one): the restored mapping's AppId
and Description are "" on the bus, like a new mapping's without them, Get and GetAll answer
(and pcpd survives the refresh it sends upstream); once pcpd has saved the mapping again
itself, a restart restores "" once more.

Two things give "" today: the state codec reads an absent string as "" (its own unit test:
test_old_snapshot in tests/unit/test-state.c), and the one constructor of new and restored
mappings turns a NULL into "". A NULL that got past both would read as "" through sd-bus,
but pcpd dies on it when it builds the restored mapping's request: this test fails then."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import EXTERNAL, MANAGER, MAPPING, PATH, BusTestCase, main, slurp, wait_until  # noqa: E402

# Caps on waiting for events: generous (a loaded machine, valgrind); a passing test never
# waits for them.
CAP = 60
# Far longer than the test: the restored mapping is persistent anyway, no grace runs out.
GRACE = 600
ID = 7
PORT = 8750
NONCE = '00112233445566778899aabb'


class RestoreEmptyStringsTest(BusTestCase):

    def assert_empty_strings(self, env, path, what):
        self.assertEqual(env.get(path, MAPPING, 'AppId'), '', what)
        self.assertEqual(env.get(path, MAPPING, 'Description'), '', what)
        self.assertEqual(env.get_raw(path, MAPPING, 'AppId').get_type_string(), 's', what)
        self.assertEqual(env.get_raw(path, MAPPING, 'Description').get_type_string(), 's', what)
        props = env.get_all(path)
        self.assertEqual(props['AppId'], '', what)
        self.assertEqual(props['Description'], '', what)
        self.assertEqual(props['AppIdSource'], 'none', what)
        self.assertEqual(props['InternalPort'], PORT, what)
        self.assertTrue(props['Persistent'], what)
        objs = env.call(PATH, 'org.freedesktop.DBus.ObjectManager', 'GetManagedObjects')[0]
        self.assertEqual(objs[path][MAPPING]['AppId'], '', what)
        self.assertEqual(objs[path][MAPPING]['Description'], '', what)

    def test_record_without_app_id_and_description(self):
        env = self.make_env(start=False, config={'GraceSeconds': GRACE})
        os.makedirs(env.state, mode=0o700)
        snapshot = os.path.join(env.state, 'mappings.state')
        journal = os.path.join(env.state, 'mappings.journal')
        # every key pcpd writes but AppId and Description
        with open(snapshot, 'w') as f:
            f.write(f'[State]\nNextMappingId={ID + 1}\n'
                    f'[Mapping {ID}]\nNonce={NONCE}\nServer={env.ip}:{env.port}\nOpcode=1\nProtocol=17\n'
                    f'InternalPort={PORT}\nSuggestedExternalPort=0\nFamily=ipv4\nLifetime=600\n'
                    f'ExternalAddress=\nExternalPort=0\nPersistent=true\nUID=0\nAppIdSource=none\n'
                    f'Created=1700000000000000\n')
        env.start_pcpd()
        path = f'{PATH}/mapping/{ID}'
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 1)
        self.assert_empty_strings(env, path, 'restored from a record without them')

        # refreshed upstream with its old nonce, granted: pcpd saves the mapping itself
        env.wait_state(path, 'active', CAP)
        env.assert_alive()
        self.assertEqual([m['nonce'] for m in env.dump()], [NONCE])
        ext = env.get(path, MAPPING, 'ExternalPort')
        self.assertNotEqual(ext, 0)
        self.assertEqual(env.get(path, MAPPING, 'ExternalAddress'), EXTERNAL)
        self.assert_empty_strings(env, path, 'granted')
        wait_until(lambda: f'ExternalPort={ext}\n' in slurp(journal) + slurp(snapshot), CAP,
                   'the grant saved by pcpd')

        # what pcpd saved: the same empty strings after a restart
        env.kill_pcpd()
        env.start_pcpd()
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 1)
        self.assert_empty_strings(env, path, 'restored from the record pcpd saved')
        self.assertEqual(env.get(path, MAPPING, 'ExternalPort'), ext, 'restored from the record pcpd saved')
        env.wait_state(path, 'active', CAP)
        env.assert_alive()


if __name__ == '__main__':
    main()
