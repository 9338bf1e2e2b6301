#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpd's structured log: run as a service is (stderr connected to the journal), its
events reach the journal's native socket with their MESSAGE_ID and fields (PCPD_MAPPING,
PCPD_UID, PCPD_APP_ID, PCPD_SERVER, PCP_RESULT, PCPD_REASON, ...), one readable line each
and nothing on the stream; on a plain file (a terminal, a test log) each event is one
readable line. The journal is fake-journald.py in a private mount namespace: GLib's own
journald detection and writer are what is tested. Every MESSAGE_ID is documented in
pcpd(8). Needs root (mount namespaces)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import (EXTERNAL, HERE, MAPPING, PCPD, PYTHON, SRC, BusTestCase, V, main, preflight,  # noqa: E402
                      slurp, wait_until)

FAKE_JOURNALD = os.path.join(HERE, 'fake-journald.py')
MANPAGE = os.path.join(SRC, 'man', 'pcpd.8')
LOG_H = os.path.join(SRC, 'daemon', 'pcpd-log.h')


def message_ids():
    """name -> id, from daemon/pcpd-log.h"""
    text = slurp(LOG_H)
    return dict(re.findall(r'#define PCPD_MSGID_(\w+) "([0-9a-f]{32})"', text))


IDS = message_ids()


def complete_lines(text):
    """The lines of text that have their newline. A file another process is writing can be
    read in the middle of a line (fake-journald.py, or pcpd, has written only part of it):
    that tail is not a line yet and is taken on a later read, once its newline is there."""
    return text[:text.rfind('\n') + 1].splitlines()


class Entries:
    """The journal entries fake-journald.py has written to path so far, one JSON object a
    line, read on from where the last read stopped; a partly written last line stays
    buffered until the rest of it (with its newline) arrives."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.tail = b''
        self.seen = []

    def __call__(self):
        try:
            with open(self.path, 'rb') as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.seen
        self.offset += len(data)
        data = self.tail + data
        cut = data.rfind(b'\n') + 1
        self.tail = data[cut:]
        for line in data[:cut].decode().splitlines():
            try:
                self.seen.append(json.loads(line))
            except ValueError as e:  # a complete line that is not JSON: fake-journald.py is wrong
                raise AssertionError(f'{self.path}: not a JSON line: {line!r}: {e}') from e
        return self.seen


def entries(path):
    """All complete entries in path (a partly written last line is left out)."""
    return Entries(path)()


def journal_preflight():
    """Exit 77 (skip) when mount namespaces cannot be made; never silently in CI."""
    reason = None
    if shutil.which('unshare') is None or shutil.which('mount') is None:
        reason = 'unshare and mount (util-linux)'
    else:
        r = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'true'], capture_output=True,
                           text=True)
        if r.returncode != 0:
            reason = 'mount namespaces: ' + r.stderr.strip()
    if reason is not None:
        if os.environ.get('CI') == 'true':
            print('FAIL (CI must not skip): this test needs ' + reason)
            sys.exit(1)
        print('SKIP: this test needs ' + reason)
        sys.exit(77)


class LoggingTest(BusTestCase):

    def journal_env(self):
        self.out = os.path.join(self.make_tmp(), 'journal.jsonl')
        self.journal = Entries(self.out)
        return self.make_env(wrapper=[PYTHON, FAKE_JOURNALD, self.out, '--'])

    def make_tmp(self):
        import tempfile
        d = tempfile.mkdtemp(prefix='pcpd-journal-')
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def find(self, name, **fields):
        want = IDS[name]
        return [e for e in self.journal()
                if e.get('MESSAGE_ID') == want and all(e.get(k) == v for k, v in fields.items())]

    def wait_entry(self, name, **fields):
        return wait_until(lambda: self.find(name, **fields), 10, f'a {name} journal entry with {fields}')[0]

    def assertEntry(self, e, priority):
        self.assertEqual(e['PRIORITY'], str(priority), e)
        self.assertNotIn('\n', e['MESSAGE'])
        self.assertTrue(e['CODE_FILE'].endswith('.c'), e)
        self.assertTrue(e['CODE_LINE'].isdigit(), e)

    def test_events_reach_the_journal_with_their_fields(self):
        env = self.journal_env()
        server = f'{env.ip}:{env.port}'

        e = self.wait_entry('STARTED')
        self.assertEntry(e, 5)
        e = self.wait_entry('SERVER_ADDED', PCPD_SERVER=server)
        self.assertEqual(e['PCPD_INTERFACE'], '')
        e = self.wait_entry('SERVER_STATE', PCPD_SERVER=server)
        self.assertEqual(e['PCPD_SERVER_STATE'], 'pcp')
        self.assertEntry(e, 5)

        path = env.add_mapping('tcp', 8090, 0, {'app-id': V('s', 'org.example.Logged')})
        env.wait_state(path, 'active')
        app_id = env.get(path, MAPPING, 'AppId')  # declared, or the test's own systemd unit
        e = self.wait_entry('MAPPING_ADDED', PCPD_MAPPING=path)
        self.assertEntry(e, 5)
        self.assertEqual((e['PCPD_UID'], e['PCPD_APP_ID'], e['PCPD_PROTOCOL'], e['PCPD_INTERNAL_PORT'],
                          e['PCPD_SERVER']), ('0', app_id, 'tcp', '8090', server))
        self.assertIn(path, e['MESSAGE'])
        e = self.wait_entry('MAPPING_GRANTED', PCPD_MAPPING=path)
        ext = env.get(path, MAPPING, 'ExternalPort')
        self.assertEqual(e['PCPD_EXTERNAL'], f'{EXTERNAL}:{ext}')
        self.assertIn(f'{EXTERNAL}:{ext}', e['MESSAGE'])

        # a failure names the RFC 6887 result
        taken = env.add_mapping('udp', 8091, 40100)
        env.wait_state(taken, 'active')
        failing = env.add_mapping('udp', 8092, 40100, {'prefer-failure': V('b', True)})
        env.wait_state(failing, 'failed')
        e = self.wait_entry('MAPPING_FAILED', PCPD_MAPPING=failing)
        self.assertEqual(e['PCP_RESULT'], 'CANNOT_PROVIDE_EXTERNAL')
        self.assertEntry(e, 4)

        # the router restarts, once its epoch is far enough along for a jump back to 0 to
        # be a reset (RFC 6887 §8.5: more than a second back)
        wait_until(lambda: int(env.ctl('dump').splitlines()[0].split('epoch ')[1]) >= 3, 10, 'refserver epoch 3',
                   step=0.2)
        env.ctl('restart')
        e = self.wait_entry('EPOCH_RESET', PCPD_SERVER=server)
        self.assertEntry(e, 5)

        # removal, with the reason
        env.call(path, MAPPING, 'Release')
        e = self.wait_entry('MAPPING_REMOVED', PCPD_MAPPING=path)
        self.assertEqual(e['PCPD_REASON'], 'released')

        env.manager('SetEnabled', 'b', (False,))
        e = self.wait_entry('ENABLED', PCPD_ENABLED='false')
        self.assertEqual(len(self.find('MAPPING_REMOVED', PCPD_REASON='disabled')), 2)

        # all of it went the native way: nothing about it on the stream
        env.kill_pcpd(signal.SIGTERM)
        stream = slurp(self.out + '.stream')
        self.assertNotIn(path, stream)
        self.assertNotIn('ready', stream)
        # and plain g_message() lines go the native way too (GLib's own fields)
        def shutting_down():
            return any('MESSAGE_ID' not in x and x['MESSAGE'].startswith('Shutting down') for x in self.journal())
        wait_until(shutting_down, 10, "the plain 'Shutting down' entry")

    def test_config_error(self):
        d = self.make_tmp()
        self.out = os.path.join(d, 'journal.jsonl')
        self.journal = Entries(self.out)
        conf = os.path.join(d, 'bad.conf')
        with open(conf, 'w') as f:
            f.write('[Daemon]\nDefaultLifetime=soon\n')
        r = subprocess.run([PYTHON, FAKE_JOURNALD, self.out, '--', PCPD, '--config', conf, '--state-dir',
                            os.path.join(d, 'state')], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 78, r.stderr)  # EX_CONFIG (pcpd(8), EXIT STATUS)
        e = self.find('CONFIG_ERROR')
        self.assertEqual(len(e), 1, entries(self.out))
        self.assertEntry(e[0], 3)
        self.assertEqual(e[0]['PCPD_CONFIG'], conf)
        self.assertIn('DefaultLifetime', e[0]['MESSAGE'])

    def test_plain_lines_on_a_file(self):
        env = self.make_env()
        path = env.add_mapping('tcp', 8093)
        env.wait_state(path, 'active')
        env.call(path, MAPPING, 'Release')
        wait_until(lambda: f'Mapping {path} removed (released)' in env.log(), 5, 'the removal line')
        line = re.compile(r'^\d\d:\d\d:\d\d\.\d{3} (error|critical|warning|message|info|debug): \S')
        for ln in complete_lines(env.log()):  # pcpd may be writing the next one
            self.assertRegex(ln, line)
            self.assertNotIn('MESSAGE_ID', ln)
        self.assertRegex(env.log(), r'(?m)^[\d:.]+ message: Mapping ' + re.escape(path) + r' granted by ')

    def test_without_networkmanager_says_where_servers_come_from(self):
        """No NetworkManager on the bus: one line says so, and where PCP servers come from
        as configured (Servers=, UseDefaultRouters=), not "the default routes" when they
        are off."""
        cases = [({}, "NetworkManager is not running: PCP servers from pcpd.conf's Servers= only "
                      "(UseDefaultRouters=false)"),
                 ({'refserver': False}, 'NetworkManager is not running: no PCP servers at all (no Servers= in '
                                        'pcpd.conf, UseDefaultRouters=false)')]
        for kw, want in cases:
            env = self.make_env(start=False, **kw)
            env.start_pcpd(wait_ready=False)  # (without any server pcpd is never "ready")
            wait_until(lambda: 'NetworkManager is not running' in env.log(), 10, 'the NetworkManager line')
            env.barrier()
            lines = [ln for ln in complete_lines(env.log()) if 'NetworkManager' in ln]
            self.assertEqual(len(lines), 1, lines)
            self.assertTrue(lines[0].endswith(want), (lines[0], want))
            self.assertNotIn('default routes', env.log())
            env.close()

    def test_a_half_written_line_waits_for_its_newline(self):
        path = os.path.join(self.make_tmp(), 'journal.jsonl')
        read = Entries(path)
        self.assertEqual(read(), [])
        line = json.dumps({'MESSAGE': 'one', 'PCPD_UID': '0'}) + '\n'
        with open(path, 'a') as f:
            f.write(line[:10])
            f.flush()
            self.assertEqual(read(), [], 'a line without its newline is not an entry yet')
            self.assertEqual(complete_lines(line[:10]), [])
            f.write(line[10:] + line[:3])
            f.flush()
            self.assertEqual(read(), [{'MESSAGE': 'one', 'PCPD_UID': '0'}])
            f.write(line[3:])
            f.flush()
        self.assertEqual(read(), [{'MESSAGE': 'one', 'PCPD_UID': '0'}] * 2)
        self.assertEqual(entries(path), read())
        self.assertEqual(complete_lines('a\nb\nc'), ['a', 'b'])

    def test_message_ids_documented(self):
        self.assertGreaterEqual(len(IDS), 10, IDS)
        self.assertEqual(len(set(IDS.values())), len(IDS), 'MESSAGE_IDs must be unique')
        man = slurp(MANPAGE)
        for name, mid in IDS.items():
            self.assertIn(mid, man, f'PCPD_MSGID_{name} is not in man/pcpd.8')


if __name__ == '__main__':
    preflight()
    journal_preflight()
    main()
