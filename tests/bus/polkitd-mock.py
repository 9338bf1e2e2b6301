'''polkitd mock for pcpd's bus tests: python-dbusmock's polkitd template, plus what real
polkitd does and that template does not, and that pcpd's polkit limits rely on.

  - CancelCheckAuthorization(cancellation_id): a check still waiting is answered with
    org.freedesktop.PolicyKit1.Error.Cancelled (as polkitd does); an unknown id is an
    error. Every cancellation id seen is recorded.
  - interactive checks can hang on their own (SimulateHangInteractive(b)), the way a real
    polkitd waits for an authentication agent that never completes: non-interactive ones
    are still answered.
  - a refusal can be a challenge (SetChallenge(b)): is_challenge set, as polkitd answers
    when authentication would allow the action (and, for an interactive check, no
    authentication agent could ask for it).

Control (org.freedesktop.DBus.Mock), besides the stock SetAllowed(as), AllowUnknown(b),
SetDelay(d), SimulateHang(b), SimulateHangActions(as), ReleaseHangingCalls():
  SimulateHangInteractive(b)
  SetChallenge(b)
  CountHangingCalls() -> u
  GetCancelled() -> as        every cancellation id CancelCheckAuthorization got
  CountChecks() -> u          every CheckAuthorization received
Run as: python3 -m dbusmock --system --template tests/bus/polkitd-mock.py
'''

# SPDX-License-Identifier: LGPL-2.1-or-later

import time

import dbus

from dbusmock import MOCK_IFACE
# the stock template's methods and constants; the ones defined below replace theirs
from dbusmock.templates.polkitd import (AllowUnknown, RegisterAuthenticationAgent, SetAllowed,  # noqa: F401
                                        SetDelay, SimulateHang, SimulateHangActions)
from dbusmock.templates import polkitd as _stock

BUS_NAME = _stock.BUS_NAME
MAIN_OBJ = _stock.MAIN_OBJ
MAIN_IFACE = _stock.MAIN_IFACE
SYSTEM_BUS = True


def load(mock, parameters):
    _stock.load(mock, parameters)
    mock.hang_interactive = False
    mock.challenge = False
    mock.waiting = {}  # cancellation id -> (ok_cb, err_cb, answer); ids '' are not kept here
    mock.cancelled = []
    mock.checks = 0


@dbus.service.method(MAIN_IFACE, in_signature='(sa{sv})sa{ss}us', out_signature='(bba{ss})',
                     async_callbacks=('ok_cb', 'err_cb'))
def CheckAuthorization(self, _subject, action_id, _details, flags, cancellation_id, ok_cb, err_cb):
    self.checks += 1
    time.sleep(self.delay)
    allowed = action_id in self.allowed or self.allow_unknown
    # a refusal polkit would lift after authentication (SetChallenge(True)): is_challenge,
    # what a real polkitd answers when no authentication agent can ask the user
    ret = (allowed, not allowed and self.challenge, {'test': 'test'})
    if self.simulate_hang or action_id in self.hanging_actions or (self.hang_interactive and flags & 1):
        self.hanging_calls.append((ok_cb, ret))
        if cancellation_id:
            self.waiting[cancellation_id] = (ok_cb, err_cb, ret)
    else:
        ok_cb(ret)


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def CancelCheckAuthorization(self, cancellation_id):
    self.cancelled.append(cancellation_id)
    entry = self.waiting.pop(cancellation_id, None)
    if entry is None:
        raise dbus.exceptions.DBusException(f'No such cancellation_id {cancellation_id!r}',
                                            name='org.freedesktop.PolicyKit1.Error.Failed')
    ok_cb, err_cb, _ = entry
    self.hanging_calls = [h for h in self.hanging_calls if h[0] is not ok_cb]
    err_cb(dbus.exceptions.DBusException('The authorization check was cancelled',
                                         name='org.freedesktop.PolicyKit1.Error.Cancelled'))


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='')
def ReleaseHangingCalls(self):
    '''Answers every check that hangs'''
    calls, self.hanging_calls = self.hanging_calls, []
    self.waiting = {}
    for (cb, ret) in calls:
        cb(ret)


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='b')
def HaveHangingCalls(self):
    return len(self.hanging_calls) > 0


@dbus.service.method(MOCK_IFACE, in_signature='b', out_signature='')
def SimulateHangInteractive(self, hang):
    '''Makes interactive checks hang (an agent that never answers)'''
    self.hang_interactive = hang


@dbus.service.method(MOCK_IFACE, in_signature='b', out_signature='')
def SetChallenge(self, challenge):
    '''Makes refusals challenges (authentication would allow the action)'''
    self.challenge = challenge


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='u')
def CountHangingCalls(self):
    return len(self.hanging_calls)


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='as')
def GetCancelled(self):
    return self.cancelled


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='u')
def CountChecks(self):
    return self.checks
