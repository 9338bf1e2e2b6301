# SPDX-License-Identifier: LGPL-2.1-or-later
'''polkitd mock template with temporary authorisations and an authentication agent

python3-dbusmock's own polkitd template answers yes or no and never "ask": that cannot
drive a lock button (PolkitPermission only offers to unlock an action that polkit would
allow after a challenge). This one keeps polkit's behaviour for "auth_admin_keep" actions:

  - CheckAuthorization of an action set with SetChallenge() answers "not authorised, but a
    challenge would do" (is_challenge, polkit.retains_authorization_after_challenge=1)
    without ALLOW_USER_INTERACTION; with it, the mock agent answers (SetAgent: "yes",
    "dismiss", "none"), and "yes" grants a temporary authorisation that every later check
    of the action (and of the actions it implies, SetImplies) sees, with its id;
  - RevokeTemporaryAuthorizationById takes it back; every change emits Changed, as polkitd
    does, so PolkitPermission re-checks;
  - SetAllowed() actions are allowed outright, like the stock template.

The subject is not looked at (one user, one session). Calls are recorded (GetCalls).
'''

import dbus

from dbusmock import MOCK_IFACE

BUS_NAME = 'org.freedesktop.PolicyKit1'
MAIN_OBJ = '/org/freedesktop/PolicyKit1/Authority'
MAIN_IFACE = 'org.freedesktop.PolicyKit1.Authority'
SYSTEM_BUS = True

INTERACTION = 1  # POLKIT_CHECK_AUTHORIZATION_FLAGS_ALLOW_USER_INTERACTION


def load(mock, _parameters):
    mock.AddProperties(MAIN_IFACE, dbus.Dictionary({
        'BackendName': 'local',
        'BackendVersion': '0.8.15',
        'BackendFeatures': dbus.UInt32(1, variant_level=1),
    }, signature='sv'))
    mock.allowed = set()
    mock.challenge = set()
    mock.implies = {}
    mock.agent = 'yes'
    mock.temporary = {}  # id -> action
    mock.next_id = 1
    mock.calls = []


def _temporary_for(self, action):
    for tid, granted in self.temporary.items():
        if granted == action or action in self.implies.get(granted, ()):
            return tid
    return None


@dbus.service.method(MAIN_IFACE, in_signature='(sa{sv})sa{ss}us', out_signature='(bba{ss})')
def CheckAuthorization(self, _subject, action_id, _details, flags, _cancellation_id):
    action_id = str(action_id)
    interactive = bool(flags & INTERACTION)
    self.calls.append((action_id, interactive))
    if action_id in self.allowed:
        return (True, False, dbus.Dictionary({}, signature='ss'))
    tid = _temporary_for(self, action_id)
    if tid is not None:
        return (True, False, dbus.Dictionary({'polkit.temporary_authorization_id': tid}, signature='ss'))
    if action_id not in self.challenge:
        return (False, False, dbus.Dictionary({}, signature='ss'))
    if interactive and self.agent == 'yes':
        tid = 'tmpauthz%d' % self.next_id
        self.next_id += 1
        self.temporary[tid] = action_id
        self.EmitSignal(MAIN_IFACE, 'Changed', '', [])
        return (True, False, dbus.Dictionary({'polkit.temporary_authorization_id': tid}, signature='ss'))
    if interactive and self.agent == 'dismiss':
        return (False, True, dbus.Dictionary({'polkit.dismissed': 'true',
                                              'polkit.retains_authorization_after_challenge': '1'},
                                             signature='ss'))
    return (False, True, dbus.Dictionary({'polkit.retains_authorization_after_challenge': '1'}, signature='ss'))


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def RevokeTemporaryAuthorizationById(self, tid):
    if self.temporary.pop(str(tid), None) is not None:
        self.EmitSignal(MAIN_IFACE, 'Changed', '', [])


@dbus.service.method(MAIN_IFACE, in_signature='(sa{sv})ss', out_signature='')
def RegisterAuthenticationAgent(_self, _subject, _locale, _object_path):
    pass


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def CancelCheckAuthorization(_self, _cancellation_id):
    pass


@dbus.service.method(MOCK_IFACE, in_signature='as', out_signature='')
def SetAllowed(self, actions):
    '''Actions allowed without asking'''
    self.allowed = set(str(a) for a in actions)
    self.EmitSignal(MAIN_IFACE, 'Changed', '', [])


@dbus.service.method(MOCK_IFACE, in_signature='as', out_signature='')
def SetChallenge(self, actions):
    '''Actions allowed after the agent asked (auth_admin_keep)'''
    self.challenge = set(str(a) for a in actions)
    self.EmitSignal(MAIN_IFACE, 'Changed', '', [])


@dbus.service.method(MOCK_IFACE, in_signature='sas', out_signature='')
def SetImplies(self, action, implied):
    '''A temporary authorisation of ACTION also covers IMPLIED (org.freedesktop.policykit.imply)'''
    self.implies[str(action)] = set(str(a) for a in implied)


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='')
def SetAgent(self, answer):
    '''What the authentication agent's user does: "yes", "dismiss" or "none" (no agent)'''
    self.agent = str(answer)


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='a(sb)')
def GetCalls(self):
    '''Every CheckAuthorization so far: (action, interactive)'''
    return dbus.Array(self.calls, signature='(sb)')
