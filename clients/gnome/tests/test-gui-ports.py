#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The "Forwarded Ports" page against the real pcpd: empty, then four programs holding
ports (a Flatpak with its /.flatpak-info, an app a desktop launched as a systemd scope, an app that declares its
id, a bare process; as the viewer, root and a third user), a mapping the router refuses, a
program killed, a port closed with the mouse and an app's ports closed with the keyboard
(polkit asked interactively), and the lock unlocked so that the switch turns pcpd off."""

import os
import pwd
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pfapp import APP_UID, GuiTestCase, main  # noqa: E402
from pcpdtest import EXTERNAL, MANAGER, PATH, Agent, fake_flatpak_prefix, wait_until  # noqa: E402

STATUS = 'row: Automatic Port Forwarding | '
SWITCHED_OFF = 'banner: Port forwarding is switched off. Applications cannot open ports to the Internet.'
# a third user (the system bus only lets in users it can name)
OTHER_USER = 'daemon'
OTHER_UID = pwd.getpwnam(OTHER_USER).pw_uid


def bind(agent, proto, port):
    """A socket of the agent bound to port, or to any free port if another test has it."""
    ans = agent.req(op='bind', proto=proto, port=port)
    if 'ok' not in ans:
        ans = agent.req(op='bind', proto=proto, port=0)
    return ans['ok']


def ok(ans):
    assert 'ok' in ans, ans
    return ans['ok'][0]


class PortsTest(GuiTestCase):

    def test_ports(self):
        env = self.make_env()
        cg = self.make_cgroups()
        app = self.make_app(env)

        d = app.wait_lines(STATUS + 'Your router accepts port-forwarding requests')
        self.assertIn('status-page: No Forwarded Ports | Games, calls and file sharing', d)
        self.assertIn('switch: Automatic Port Forwarding | on [insensitive]', d)
        self.assertIn('button: Unlock…', d)
        # the router, where it was learned, and no external address before a first port
        app.activate('Details')
        app.wait_lines(f'row: Router {env.ip}:{env.port} | Port Control Protocol · configured by the administrator',
                       'row: External Address | None known')
        app.screenshot('empty')
        app.activate('Details')

        # a Flatpak (the viewer's own), as pcpd sees it: a /.flatpak-info in its root
        chat = Agent(env, uid=APP_UID, prefix=fake_flatpak_prefix(
            env, '[Application]\nname=org.example.Chat\nruntime=runtime/org.gnome.Platform/x86_64/43\n'))
        # (agent.py keeps one socket a port number: the UDP one gets another number)
        chat_tcp, chat_udp = bind(chat, 'tcp', 22000), bind(chat, 'udp', 22020)
        ok(chat.add_mapping('tcp', chat_tcp, options="{'description': <'Voice and video calls'>}"))
        ok(chat.add_mapping('udp', chat_udp))
        # an app GNOME launched (root's): a persistent port and a PEER flow
        games = Agent(env)
        cg.place(games.pid, 'app-gnome-org.example.Games-2048.scope')
        ok(games.add_mapping('udp', 27015, options="{'persistent': <true>}"))
        ok(games.call('AddPeer', 'sqsqa{sv}', "('tcp', uint16 27016, '203.0.113.9', uint16 443, @a{sv} {})"))
        # a program of a third user that declares an old-style id ("Sync" for
        # org.example.Sync.desktop)
        sync = Agent(env, uid=OTHER_UID)
        sync_port = bind(sync, 'tcp', 22001)
        ok(sync.add_mapping('tcp', sync_port, options="{'app-id': <'Sync'>}"))
        # and one that says nothing about itself
        tool = Agent(env, uid=APP_UID)
        tool_port = bind(tool, 'udp', 41641)
        ok(tool.add_mapping('udp', tool_port))

        e = re.escape(EXTERNAL)
        d = app.wait_dump(lambda d: d.count('Active · expires in') == 6, 'six active ports')
        lines = [l.strip() for l in d.splitlines()]
        self.assertIn(f'expander: Details | External address {EXTERNAL} | expanded=0', lines)
        self.assertIn('expander: Chat | 2 ports | expanded=1', lines)
        self.assertIn('icon: org.example.Chat', lines)
        self.assertIn('expander: Game Server | 2 ports · user root | expanded=1', lines)
        self.assertIn('icon: org.example.Games', lines)
        self.assertIn(f'expander: File Sync | 1 port · user {OTHER_USER} | expanded=1', lines)
        self.assertIn('icon: org.example.Sync', lines)
        self.assertIn('expander: python3 | 1 port | expanded=1', lines)
        self.assertIn('icon: application-x-executable-symbolic', lines)
        # groups in name order, each with its remove-all button and a remove button a row
        names = [l.split(' | ')[0][len('expander: '):] for l in lines if l.startswith('expander: ')]
        self.assertEqual(names, ['Details', 'Chat', 'File Sync', 'Game Server', 'python3'])
        for name in names[1:]:
            self.assertIn(f'button: Stop forwarding all ports of {name}', lines)
        lease = r'Active · expires in \d+ min, renewed automatically'
        for pattern in (rf'row: TCP {chat_tcp} → {e}:\d+ \| Voice and video calls · {lease}',
                        rf'row: UDP {chat_udp} → {e}:\d+ \| {lease}',
                        rf'row: UDP 27015 → {e}:\d+ \| {lease} · kept when the application exits · user root',
                        rf'row: TCP 27016 → {e}:\d+ \| Connection with 203\.0\.113\.9:443 · {lease} · user root',
                        rf'row: TCP {sync_port} → {e}:\d+ \| {lease} · user {OTHER_USER}',
                        rf'row: UDP {tool_port} → {e}:\d+ \| {lease}'):
            self.assertTrue(any(re.fullmatch(pattern, l) for l in lines), f'{pattern} in\n{d}')
        for proto, port in (('TCP', chat_tcp), ('UDP', chat_udp), ('UDP', 27015), ('TCP', 27016),
                            ('TCP', sync_port), ('UDP', tool_port)):
            self.assertIn(f'button: Stop forwarding {proto} port {port}', lines)
        app.screenshot('apps')

        # the keyboard reaches every control: one round of Tab visits each button, the switch's
        # row and each app's header (and comes back to where it started). Midway another
        # window takes the keyboard focus (another GUI test's app on the same X server): the
        # keys go to the app's window as a keyboard would, once it has the focus again.
        chain = [app.key('Tab')]
        while len(chain) < 80:
            if len(chain) == 3:
                app.lose_focus()
            chain.append(app.key('Tab'))
            if chain[-1] == chain[0]:
                break
        else:
            self.fail(f'Tab never came back to {chain[0]}: {chain}\n{app.dump()}')
        controls = [l for l in lines if l.startswith(('button: ', 'menu-button: ', 'expander: '))]
        missed = sorted(set(c.split(' | ')[0] for c in controls) - set(chain))
        if missed:
            self.fail(f'Tab never reached {missed}; it went {chain}; the page now:\n{app.dump()}')
        self.assertIn('row: Automatic Port Forwarding', chain)

        # the overview (README and AppStream screenshot): one app open, the others closed
        for name in ('File Sync', 'Game Server', 'python3'):
            app.activate(name)
        app.wait_lines('expander: Chat | 2 ports | expanded=1', 'expander: python3 | 1 port | expanded=0',
                       f'expander: File Sync | 1 port · user {OTHER_USER} | expanded=0',
                       'expander: Game Server | 2 ports · user root | expanded=0')
        app.screenshot('overview')

        # the router refuses one: the row says why in words
        env.ctl('result', 'NO_RESOURCES', '0', '0')
        chat_more = bind(chat, 'tcp', 22002)
        ok(chat.add_mapping('tcp', chat_more))
        app.wait_lines(f'row: TCP {chat_more} | Failed: the router has no room for more forwarded ports; '
                       'trying again', 'expander: Chat | 3 ports | expanded=1')
        env.ctl('result', 'clear')
        app.screenshot('failing')

        # a program killed: its ports go, and so does its group
        sync.kill()
        d = app.wait_dump(lambda d: 'File Sync' not in d, 'File Sync gone')
        self.assertIn('expander: Game Server', d)

        # the viewer closes one of its own ports (no polkit needed: same user)
        app.activate(f'Stop forwarding UDP port {chat_udp}')
        d = app.wait_dump(lambda d: f'UDP {chat_udp} →' not in d, 'the closed port gone')
        self.assertIn('expander: Chat | 2 ports | expanded=1', d)
        self.assertEqual(len([m for m in env.dump() if m['internal_port'] == chat_udp and m['proto'] == 'udp']), 0)

        # removing another user's port when nobody can say yes to polkit (no agent): the
        # row stays, and a toast says why
        env.polkit_call('SetAgent', 's', 'none')
        app.activate('Game Server')  # open again (closed for the overview)
        app.activate('Stop forwarding UDP port 27015')
        d = app.wait_dump(lambda d: 'toast: Could not stop forwarding the port: ' in d, 'the toast')
        self.assertIn('button: Stop forwarding UDP port 27015', d)
        self.assertNotIn('button: Stop forwarding UDP port 27015 [insensitive]', d)
        env.polkit_call('SetAgent', 's', 'yes')

        # root's app, closed from the keyboard: Tab to its button, Return; pcpd asks polkit
        # with interaction allowed (the agent says yes), persistent port included
        target = 'button: Stop forwarding all ports of Game Server'
        seen = []
        for _ in range(60):
            seen.append(app.key('Tab'))
            if seen[-1] == target:
                break
        else:
            self.fail(f'Tab never reached {target}: {seen}\n{app.dump()}')
        app.key('Return')
        app.wait_dump(lambda d: 'Game Server' not in d, 'Game Server gone')
        self.assertIn(('org.freedesktop.PCP1.revoke', True), env.polkit_calls())
        wait_until(lambda: not any(m['internal_port'] in (27015, 27016) for m in env.dump()), 10,
                   'the app\'s ports deleted at the router')

        # the lock: no agent to ask for the password, so it stays locked and says so
        env.polkit_call('SetAgent', 's', 'none')
        app.activate('Unlock…')
        d = app.wait_dump(lambda d: 'toast: Could not unlock: the password was not accepted' in d, 'the toast')
        self.assertIn('switch: Automatic Port Forwarding | on [insensitive]', d)
        env.polkit_call('SetAgent', 's', 'yes')

        # unlocked (the agent says yes), the switch turns pcpd off
        app.activate('Unlock…')
        d = app.wait_lines('button: Lock', 'switch: Automatic Port Forwarding | on')
        app.activate('Automatic Port Forwarding')
        d = app.wait_lines(SWITCHED_OFF, 'switch: Automatic Port Forwarding | off', absent=['expander: Chat'])
        self.assertIn(STATUS + 'Switched off: applications cannot open ports to the Internet', d)
        self.assertFalse(env.get(PATH, MANAGER, 'Enabled'))
        self.assertIn(('org.freedesktop.PCP1.configure', True), env.polkit_calls())
        wait_until(lambda: env.dump() == [], 10, 'every port deleted at the router')
        app.screenshot('switched-off-by-user')

        # and on again
        app.activate('Automatic Port Forwarding')
        app.wait_lines('switch: Automatic Port Forwarding | on', STATUS + 'Your router accepts port-forwarding requests',
                       absent=[SWITCHED_OFF])
        self.assertTrue(env.get(PATH, MANAGER, 'Enabled'))
        app.activate('Automatic Port Forwarding')
        app.wait_lines(SWITCHED_OFF, 'switch: Automatic Port Forwarding | off')

        # locked again: the switch cannot be used until the next unlock
        app.activate('Lock')
        app.wait_lines('button: Unlock…', 'switch: Automatic Port Forwarding | off [insensitive]')


if __name__ == '__main__':
    main()
