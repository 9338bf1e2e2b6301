#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Reload (SIGHUP, what `systemctl reload pcpd` sends): pcpd re-reads its configuration and
applies the limits, lifetimes and configured servers without dropping a mapping (same
nonce, same external port at the refserver); an invalid configuration changes nothing and
says why; what needs a restart is said and kept. Every wait is for an event (a log line,
a property) with a generous cap."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import ERR, MANAGER, MAPPING, NOBODY, PATH, Agent, BusTestCase, main, wait_until  # noqa: E402

CAP = 60


class ReloadTest(BusTestCase):

    def reload(self, env):
        """SIGHUP, then wait for pcpd's verdict in its log; returns that line."""
        done = env.log().count('Configuration reloaded') + env.log().count('Reload failed')
        env.pcpd.send_signal(signal.SIGHUP)
        wait_until(lambda: env.log().count('Configuration reloaded') + env.log().count('Reload failed') > done,
                   CAP, 'the reload to finish')
        env.assert_alive()
        lines = [ln for ln in env.log().splitlines() if 'Configuration reloaded' in ln or 'Reload failed' in ln]
        return lines[-1]

    def test_reload_applies_limits_and_keeps_mappings(self):
        env = self.make_env(config={'DefaultLifetime': 600, 'MaxMappingsPerUser': 64})
        path = env.add_mapping('tcp', 8600, 0, {})
        env.wait_state(path, 'active')
        before = env.dump()
        self.assertEqual(len(before), 1)
        ext = env.get(path, MAPPING, 'ExternalPort')

        env.config.update({'DefaultLifetime': 900, 'MaxMappingsPerUser': 7})
        env.write_config()
        n_signals = len(env.signals)
        line = self.reload(env)
        self.assertIn('Configuration reloaded', line)
        self.assertTrue(line.endswith(': 2 settings changed, 1 mapping kept'), line)
        self.assertEqual(env.get(PATH, MANAGER, 'DefaultLifetime'), 900)
        self.assertEqual(env.get(PATH, MANAGER, 'MaxMappingsPerUser'), 7)
        # clients that cache properties hear of it
        wait_until(lambda: any(s[2] == 'PropertiesChanged' and 'DefaultLifetime' in s[3][1]
                               for s in env.signals[n_signals:]), CAP, 'PropertiesChanged of DefaultLifetime')
        # the mapping is the same one, upstream too
        self.assertEqual(env.get(path, MAPPING, 'State'), 'active')
        self.assertEqual(env.get(path, MAPPING, 'ExternalPort'), ext)
        after = env.dump()
        self.assertEqual([(m['nonce'], m['external_port']) for m in after],
                         [(m['nonce'], m['external_port']) for m in before])
        self.assertFalse(any(r['lifetime'] == 0 and r.get('nonce') == before[0]['nonce']
                             for r in env.reflog_requests()), 'nothing was deleted upstream')
        # the new default applies to the next request
        p2 = env.add_mapping('udp', 8601, 0, {})
        env.wait_state(p2, 'active')
        self.assertEqual(env.get(p2, MAPPING, 'Lifetime'), 900)

    def test_reload_servers(self):
        """A configured server added by a reload appears in Servers; the one that stays keeps
        its mapping; one that is removed goes."""
        env = self.make_env()
        path = env.add_mapping('tcp', 8602, 0, {})
        env.wait_state(path, 'active')
        nonce = env.dump()[0]['nonce']
        base = f'{env.ip}:{env.port}'
        extra = '192.0.2.77:15351'
        conf = env.write_config()
        with open(conf) as f:
            text = f.read().replace(f'Servers={base}', f'Servers={base} {extra}')
        with open(conf, 'w') as f:
            f.write(text)
        self.assertIn('Configuration reloaded', self.reload(env))
        servers = [s[1] for s in env.get(PATH, MANAGER, 'Servers')]
        self.assertIn(extra, servers)
        self.assertIn(base, servers)
        self.assertEqual(env.get(path, MAPPING, 'State'), 'active')
        self.assertEqual(env.dump()[0]['nonce'], nonce)

        env.write_config()  # back to the one server
        self.assertIn('Configuration reloaded', self.reload(env))
        servers = [s[1] for s in env.get(PATH, MANAGER, 'Servers')]
        self.assertEqual(servers, [base])
        self.assertEqual(env.get(path, MAPPING, 'State'), 'active')
        self.assertEqual(env.dump()[0]['nonce'], nonce)

    def test_invalid_config_changes_nothing(self):
        env = self.make_env(config={'DefaultLifetime': 600})
        path = env.add_mapping('tcp', 8603, 0, {})
        env.wait_state(path, 'active')
        conf = env.write_config()
        with open(conf, 'a') as f:
            f.write('[Daemon]\nDefaultLifetime=5\n')  # below the minimum (120)
        # a valid change before the bad line must not be half-applied either
        with open(conf) as f:
            text = f.read().replace('DefaultLifetime=600', 'MaxMappingsPerUser=3', 1)
        with open(conf, 'w') as f:
            f.write(text)
        line = self.reload(env)
        self.assertIn('Reload failed', line)
        self.assertIn('DefaultLifetime=5', line)
        self.assertIn('old configuration stays', line)
        self.assertEqual(env.get(PATH, MANAGER, 'DefaultLifetime'), 600)
        self.assertEqual(env.get(PATH, MANAGER, 'MaxMappingsPerUser'), 64)
        self.assertEqual(env.get(path, MAPPING, 'State'), 'active')

        with open(conf, 'w') as f:
            f.write('this is [ not a key file\n')
        self.assertIn('Reload failed', self.reload(env))
        self.assertEqual(env.get(PATH, MANAGER, 'DefaultLifetime'), 600)
        self.assertEqual(env.get(path, MAPPING, 'State'), 'active')

        env.config['DefaultLifetime'] = 1200
        env.write_config()
        self.assertIn('Configuration reloaded', self.reload(env))
        self.assertEqual(env.get(PATH, MANAGER, 'DefaultLifetime'), 1200)

    def test_restart_only_settings_kept(self):
        env = self.make_env(config={'MaxMappings': 100})
        old_announce = env.announce_port
        env.announce_port = old_announce + 1 if old_announce < 65535 else old_announce - 1
        env.config['MaxMappings'] = 200
        env.write_config()
        # nothing applied, no mapping: said so, without a "0 mappings" clause
        self.assertTrue(self.reload(env).endswith(': no setting changed'), env.log()[-2000:])
        log = env.log()
        self.assertIn(f'AnnouncePort={env.announce_port} needs a restart', log)
        self.assertIn('raising MaxMappings= to 200 needs a restart', log)
        # lowering MaxMappings applies
        env.config['MaxMappings'] = 1
        env.announce_port = old_announce
        env.write_config()
        self.assertTrue(self.reload(env).endswith(': 1 setting changed'), env.log()[-2000:])
        env.add_mapping('tcp', 8604, 0, {})
        with self.assertRaises(Exception) as cm:
            env.add_mapping('tcp', 8605, 0, {})
        self.assertIn('QuotaExceeded', str(cm.exception))

    def test_disable_by_reload(self):
        env = self.make_env()
        path = env.add_mapping('tcp', 8606, 0, {})
        env.wait_state(path, 'active')
        env.config['Enabled'] = 'false'
        env.write_config()
        self.reload(env)
        self.assertFalse(env.get(PATH, MANAGER, 'Enabled'))
        wait_until(lambda: env.dump() == [], CAP, 'the mapping deleted upstream')

    def test_reload_method(self):
        """Manager.Reload (the unit's ExecReload=): returns once applied; an invalid file is
        InvalidConfiguration naming it, and changes nothing; it needs `configure`."""
        env = self.make_env(polkit=True, config={'DefaultLifetime': 600})
        path = env.add_mapping('tcp', 8607, 0, {})
        env.wait_state(path, 'active')
        nonce = env.dump()[0]['nonce']
        env.config['DefaultLifetime'] = 700
        env.write_config()
        env.manager('Reload')
        # applied when the call returns: no waiting
        self.assertEqual(env.get(PATH, MANAGER, 'DefaultLifetime'), 700)
        self.assertIn('Configuration reloaded', env.log())

        conf = env.write_config()
        with open(conf, 'a') as f:
            f.write('[Daemon]\nNoSuchSetting=1\n')
        e = self.assertDBusError(ERR + 'InvalidConfiguration', env.manager, 'Reload')
        self.assertIn(conf, e.msg)
        self.assertIn('NoSuchSetting', e.msg)
        self.assertEqual(env.get(PATH, MANAGER, 'DefaultLifetime'), 700)
        self.assertEqual(env.get(path, MAPPING, 'State'), 'active')
        self.assertEqual(env.dump()[0]['nonce'], nonce)

        env.write_config()
        nobody = Agent(env, uid=NOBODY)
        env.polkit_call('SetAllowed', 'as', [])
        self.assertAgentError(ERR + 'NotAuthorized', nobody.call('Reload'))
        env.polkit_call('SetAllowed', 'as', ['org.freedesktop.PCP1.configure'])
        self.assertEqual(nobody.call('Reload'), {'ok': []})
        env.assert_alive()


if __name__ == '__main__':
    main()
