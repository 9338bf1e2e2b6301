#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Many mappings: the page does work in proportion to what changed, not to how many rows it
has. Each user's name is looked up once (it was looked up for every row of a group at every
new row: quadratic, seconds of frozen window at 1,000 ports), and the timer that brings the
"expires in" texts up to date changes only the texts that are different (it set every row's
texts: a second of frozen window every 30 s at 1,000 ports). The app's test control counts
the passwd lookups and the row texts changed; no timing is measured here. Against the
stand-in of fake-pcpd.py (python-dbusmock)."""

import os
import pwd
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util  # noqa: E402

from pfapp import APP_UID, HERE, GuiTestCase, main  # noqa: E402

_spec = importlib.util.spec_from_file_location('readded', os.path.join(HERE, 'test-gui-readded.py'))
readded = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readded)
FakePcpd = readded.FakePcpd

# the viewer, a user with a name, and one without
UIDS = [APP_UID, pwd.getpwnam('daemon').pw_uid, 4242]
BEFORE, AFTER = 40, 20  # mappings there when the app starts, and announced while it runs


def counts(app):
    app.send('counts')
    ans = app._answer('counts')
    m = re.fullmatch(r'COUNTS passwd=(\d+) texts=(\d+)', ans)
    if m is None:
        raise AssertionError(f'counts: {ans}')
    return int(m.group(1)), int(m.group(2))


def tick(app):
    app.send('tick')
    ans = app._answer('tick')
    if ans != 'OK':
        raise AssertionError(f'tick: {ans}')


class ManyTest(GuiTestCase):

    def test_work_follows_changes(self):
        env = self.make_env(start=False, refserver=False)
        fake = FakePcpd(env)
        # days away: the "expires in" texts do not move while the test runs
        expires = int((time.time() + 5 * 86400) * 1e6)

        def mapping(i):
            return dict(InternalPort=20000 + i, ExternalPort=30000 + i, AppId='org.example.Chat',
                        AppIdSource='flatpak', UID=UIDS[i % len(UIDS)], ExpiresAt=expires)

        for i in range(BEFORE):
            fake.add(i, **mapping(i))
        app = self.make_app(env)
        app.wait_dump(lambda d: f'expander: Chat | {BEFORE} ports · user ' in d, f'{BEFORE} ports')
        for i in range(BEFORE, BEFORE + AFTER):
            fake.add(i, **mapping(i))
            fake.announce(i)
        total = BEFORE + AFTER
        d = app.wait_dump(lambda d: f'expander: Chat | {total} ports · user ' in d, f'{total} ports')
        self.assertEqual(d.count('row: TCP '), total, d)

        # one lookup a user, not one a row (or a row at every new row)
        passwd, texts = counts(app)
        self.assertLessEqual(passwd, len(UIDS), f'{passwd} passwd lookups for {len(UIDS)} users')
        self.assertGreater(texts, 0)

        # the timer with nothing to change changes nothing
        tick(app)
        self.assertEqual(counts(app), (passwd, texts), 'the tick changed texts that were the same')

        # one mapping changes: its title only
        fake.update(3, ExternalPort=31003)
        app.wait_dump(lambda d: 'row: TCP 20003 → 198.51.100.7:31003 | ' in d, 'the changed port')
        self.assertEqual(counts(app), (passwd, texts + 1), 'one changed port changed more than its title')
        tick(app)
        self.assertEqual(counts(app), (passwd, texts + 1), 'the tick changed texts that were the same')


if __name__ == '__main__':
    main()
