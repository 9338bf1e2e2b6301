#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real GDBusObjectManagerClient (what the GNOME app uses, through gdbus-codegen) across
a restart of pcpd that restores enough mappings for the restore's InterfacesAdded to be
paced (pcpd-restore.c): some go out before pcpd owns its name, the rest after it, so the
client reads the mappings with GetManagedObjects and then gets an InterfacesAdded again for
objects it knows; a PropertiesChanged (the grant) may come before a mapping's
InterfacesAdded; a mapping removed before its turn gets InterfacesRemoved and nothing after.

  1. HELD mappings (persistent ones and app ones, kept by a long GraceSeconds), all active
     and saved; the object manager client made while pcpd runs; pcpd killed -9;
  2. pcpd started again; the moment the bus's NameOwnerChanged of the name reaches another
     client, the last REMOVED of the restore order are removed (RemoveMapping), racing
     their paced InterfacesAdded (and the client's GetManagedObjects);
  3. settled (every mapping active, every one's InterfacesAdded or InterfacesRemoved seen
     by a witness connection, then a round trip on the client's connection), the client
     holds exactly the restored mappings that were not removed, each once (one
     object-added since the restart), with every property equal to GetManagedObjects'; no
     object for the removed ones; GLib printed no warning (but one of its own race, below).

The witness (a connection matching the signals by interface, not by sender) shows the
pacing happened with no clock: restored mappings' InterfacesAdded come after the
NameOwnerChanged of pcpd's name on it (one connection: the bus's order).

That pacing needs the bus to fall behind pcpd while pcpd tells the restore (its socket's
unread output above 64 KiB at one of its looks): left to the scheduler it did not always
(an ASan pcpd sent all 1000 before its name, 1 run in 8). So the test makes it so: the
moment the first InterfacesAdded of the restore reaches a connection of the test (a filter,
on GDBus's worker thread), the test stops its own dbus-daemon (SIGSTOP), and lets it go on
(SIGCONT) once pcpd has logged the end of its restore ("Restored N mappings from ...", before it
asks for its name). pcpd is not touched: a bus that reads slowly is all it sees. (What is
left to chance: BusStopper.)

What GDBusObjectManagerClient does with an InterfacesAdded for an object it knows (GLib
2.74, gdbusobjectmanagerclient.c add_interfaces()): no second object-added, no warning,
but a new interface proxy with the signal's properties that REPLACES the object's old one
(the object proxy emits interface-removed then interface-added, the manager emits
interface-added only). Looked up again through the manager, the values are right (what
this test asserts); a proxy a client kept from object-added (the GNOME app keeps its
Pcp1Mapping in PfItem.proxy) is detached from then on and never updated again. The last
part of the test documents that defect of such clients: it asserts the replacement and
that the kept proxy goes stale, so that a change in GLib shows here."""

import os
import re
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import BUS_NAME, MANAGER, MAPPING, OM, PATH, PROPS, BusTestCase, main, slurp, wait_until  # noqa: E402
from gi.repository import Gio, GLib  # noqa: E402

CAP = 180
# pcpd holds the restore's signals back once its bus socket has 64 KiB unread: the bus is
# stopped from the first of them on (BusStopper), so the restore must last longer than the
# test takes to stop it (a filter on GDBus's worker thread: well under a millisecond when
# the test is scheduled); 3000 take pcpd tens of milliseconds, an ASan pcpd more
HELD = 3000
PERSISTENT_EVERY = 3  # every third one is an app mapping, the others persistent
REMOVED = 40  # the last ones of the restore order, removed right after the name appears
IN_FLIGHT = 50  # AddMapping calls in flight at a time (below the bus's pending replies limit)
BASE_PORT = 30000


class StderrCapture:
    """What the process writes on fd 2 (GLib's warnings) while it is active, kept in a file
    and copied back to the real stderr at the end."""

    def __init__(self, directory):
        self.file = tempfile.TemporaryFile(dir=directory)
        self.saved = None

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode(errors='replace')
        self.file.close()
        sys.stderr.write(self.text)
        return False


class Witness:
    """Every InterfacesAdded, InterfacesRemoved and PropertiesChanged under PATH whoever sends
    it (matched by interface and path, not by sender: pcpd's signals from before it owns its
    name too), and NameOwnerChanged of BUS_NAME, in the order the bus delivered them."""

    def __init__(self, env):
        self.conn = env.new_conn()
        self.events = []  # (member, path, args)
        self.conn.signal_subscribe(None, OM, None, PATH, None, Gio.DBusSignalFlags.NONE, self.on_om)
        self.conn.signal_subscribe(None, PROPS, 'PropertiesChanged', None, None, Gio.DBusSignalFlags.NONE,
                                   self.on_props)
        self.conn.signal_subscribe('org.freedesktop.DBus', 'org.freedesktop.DBus', 'NameOwnerChanged',
                                   '/org/freedesktop/DBus', BUS_NAME, Gio.DBusSignalFlags.NONE, self.on_owner)

    def on_om(self, conn, sender, path, iface, member, params):
        args = params.unpack()
        self.events.append((member, args[0], args[1]))

    def on_props(self, conn, sender, path, iface, member, params):
        if path.startswith(PATH + '/mapping/'):
            self.events.append((member, path, params.unpack()))

    def on_owner(self, conn, sender, path, iface, member, params):
        name, old, new = params.unpack()
        self.events.append((member, name, (old, new)))

    def mark(self):
        return len(self.events)

    def close(self):
        self.conn.close_sync(None)


class BusStopper:
    """Stops the test's dbus-daemon (SIGSTOP) the moment the first InterfacesAdded under PATH
    (whoever sends it) reaches this connection once armed, from a filter on GDBus's worker
    thread (no main loop in between); a thread then lets it go on (SIGCONT) once pcpd's log
    has the end of its restore after the offset given to arm() (self.restored), or after
    CAP or pcpd's death (self.restored stays None). The bus is never left stopped: close()
    lets it go on in any case.

    What is left to chance: only that the test is scheduled before pcpd has told the whole
    restore (HELD signals, ~2.7 KB each, through a bus that routes them): the stop landed
    within pcpd's first two batches of 32 in every run so far (10 ASan, 4 gcc); a stop that
    came too late fails the test's "paced nothing past its name" assertion, loudly."""

    RESTORED = re.compile(r'Restored (\d+) mappings? from')

    def __init__(self, env):
        self.env = env
        self.conn = env.new_conn()
        self.armed = False
        self.closing = False
        self.stopped = threading.Event()
        self.released = threading.Event()
        self.stopped_at = self.continued_at = None
        self.restored = None  # pcpd's "Restored N mappings" line seen while the bus was stopped
        self.thread = None
        self.conn.signal_subscribe(None, OM, 'InterfacesAdded', PATH, None, Gio.DBusSignalFlags.NONE,
                                   lambda *a: None)
        self.filter_id = self.conn.add_filter(self.on_message)
        env.barrier(conn=self.conn)  # the match rule is in place

    def on_message(self, conn, msg, incoming):
        if incoming and self.armed and msg.get_message_type() == Gio.DBusMessageType.SIGNAL \
                and msg.get_member() == 'InterfacesAdded' and msg.get_path() == PATH:
            self.armed = False
            os.kill(self.env.bus.pid, signal.SIGSTOP)
            self.stopped_at = time.monotonic()
            self.stopped.set()
        return msg

    def arm(self, log_offset):
        """From now on: the next InterfacesAdded stops the bus; it goes on once pcpd's log
        (from log_offset on) says the restore is done."""
        def wait_and_continue():
            if not self.stopped.wait(CAP) or self.closing:
                return
            try:
                end = time.monotonic() + CAP
                while time.monotonic() < end and self.env.pcpd.poll() is None and not self.closing:
                    with open(self.env.pcpd_log, errors='replace') as f:
                        f.seek(log_offset)
                        m = self.RESTORED.search(f.read())
                    if m:
                        self.restored = m[0]
                        break
                    time.sleep(0.005)
            finally:
                self.cont()
        self.armed = True
        self.thread = threading.Thread(target=wait_and_continue, daemon=True)
        self.thread.start()

    def cont(self):
        if self.stopped.is_set() and not self.released.is_set():
            os.kill(self.env.bus.pid, signal.SIGCONT)
            self.continued_at = time.monotonic()
            self.released.set()

    def close(self):
        self.armed = False
        self.closing = True
        if self.thread is not None:
            self.stopped.set()  # (ends the thread's wait if nothing came)
            self.thread.join(CAP)
        self.cont()
        self.conn.remove_filter(self.filter_id)
        self.conn.close_sync(None)


class ObjectManagerRestartTest(BusTestCase):

    def add_many(self, env, specs):
        """AddMapping for each (proto, port, persistent), IN_FLIGHT at a time, on the
        harness's connection; their paths in order."""
        paths = [None] * len(specs)
        errors = []
        pending = [0]

        def done(conn, res, k):
            pending[0] -= 1
            try:
                paths[k] = conn.call_finish(res).unpack()[0]
            except GLib.Error as e:
                errors.append((specs[k], e.message))

        k = 0
        while k < len(specs) or pending[0] > 0:
            while k < len(specs) and pending[0] < IN_FLIGHT:
                proto, port, persistent = specs[k]
                opts = {'persistent': GLib.Variant('b', True)} if persistent else {}
                env.conn.call(BUS_NAME, PATH, MANAGER, 'AddMapping',
                              GLib.Variant('(sqqa{sv})', (proto, port, 0, opts)), None, Gio.DBusCallFlags.NONE,
                              int(CAP * 1000), None, done, k)
                pending[0] += 1
                k += 1
            GLib.MainContext.default().iteration(True)
        self.assertEqual(errors, [], 'AddMapping failed')
        return paths

    def managed(self, env):
        objs = env.call(PATH, OM, 'GetManagedObjects', timeout=int(CAP * 1000))[0]
        return {p: v[MAPPING] for p, v in objs.items() if MAPPING in v}

    def om_mappings(self, om):
        """What the object manager client holds: path -> (object, Mapping interface proxy)."""
        out = {}
        for obj in om.get_objects():
            iface = obj.get_interface(MAPPING)
            if iface is not None:
                self.assertNotIn(obj.get_object_path(), out, 'one object per path')
                out[obj.get_object_path()] = (obj, iface)
        return out

    @staticmethod
    def cached(proxy):
        return {n: proxy.get_cached_property(n).unpack() for n in proxy.get_cached_property_names()}

    def test_object_manager_client_across_restart(self):
        env = self.make_env(refserver_args=['--max-mappings', '4096'],
                            config={'MaxMappings': 4096, 'DefaultLifetime': 3600, 'GraceSeconds': 3600})

        # 1. the mappings, active and saved
        specs = [('tcp' if k % 2 else 'udp', BASE_PORT + k, k % PERSISTENT_EVERY != 0) for k in range(HELD)]
        paths = self.add_many(env, specs)
        wait_until(lambda: all(v['State'] == 'active' for v in self.managed(env).values())
                   and len(self.managed(env)) == HELD, CAP, f'{HELD} mappings active', step=0.5)
        nonces = [m['nonce'] for m in env.dump()]
        self.assertEqual(len(nonces), HELD, 'every mapping held upstream')
        state = os.path.join(env.state, 'mappings.state')
        journal = os.path.join(env.state, 'mappings.journal')

        def unsaved():
            text = slurp(state) + slurp(journal)
            return [n for n in nonces if n not in text]
        wait_until(lambda: not unsaved(), CAP, f'every one of the {HELD} mappings saved', step=0.2)
        # the restore order is the ids' order (pcpd_state_sorted()): the last REMOVED go
        by_id = sorted(paths, key=lambda p: int(p.rsplit('/', 1)[1]))
        removed = set(by_id[-REMOVED:])
        kept = set(by_id) - removed

        # the client, on a connection of its own, made while pcpd runs
        om_conn = env.new_conn()
        self.addCleanup(om_conn.close_sync, None)
        om = Gio.DBusObjectManagerClient.new_sync(om_conn, Gio.DBusObjectManagerClientFlags.NONE, BUS_NAME, PATH,
                                                  None, None, None)
        self.assertEqual(len(self.om_mappings(om)), HELD, 'the client read every mapping before the restart')
        witness = Witness(env)
        self.addCleanup(witness.close)

        counts = {'object-added': {}, 'object-removed': {}, 'interface-added': {}, 'interface-removed': {}}
        kept_proxy = {}  # path -> the Mapping proxy the client had at object-added (as PfItem.proxy)

        def count(name, path):
            counts[name][path] = counts[name].get(path, 0) + 1

        def on_object_added(_om, obj):
            count('object-added', obj.get_object_path())
            kept_proxy[obj.get_object_path()] = obj.get_interface(MAPPING)

        om.connect('object-added', on_object_added)
        om.connect('object-removed', lambda _om, obj: count('object-removed', obj.get_object_path()))
        # (each object has other interfaces too: Peer, Introspectable, Properties)
        om.connect('interface-added', lambda _om, obj, i: i.get_interface_name() == MAPPING
                   and count('interface-added', obj.get_object_path()))
        om.connect('interface-removed', lambda _om, obj, i: i.get_interface_name() == MAPPING
                   and count('interface-removed', obj.get_object_path()))

        # the removals go out as early as a client can send them: from a filter on the
        # remover's connection (GDBus's worker thread), the moment the bus's NameOwnerChanged
        # of BUS_NAME arrives, before any main loop runs; their answers are caught there too
        remover = env.new_conn()
        self.addCleanup(remover.close_sync, None)
        removals = {}  # path -> 'pending', None (answered) or the error
        serials = {}

        def remover_filter(conn, msg, incoming):
            if not incoming:
                return msg
            kind = msg.get_message_type()
            if kind == Gio.DBusMessageType.SIGNAL and msg.get_member() == 'NameOwnerChanged' \
                    and msg.get_arg0() == BUS_NAME and msg.get_body().unpack()[2] != '' and not removals:
                for p in sorted(removed):
                    call = Gio.DBusMessage.new_method_call(BUS_NAME, PATH, MANAGER, 'RemoveMapping')
                    call.set_body(GLib.Variant('(o)', (p,)))
                    removals[p] = 'pending'
                    _, serial = conn.send_message(call, Gio.DBusSendMessageFlags.NONE)
                    serials[serial] = p
            elif kind in (Gio.DBusMessageType.METHOD_RETURN, Gio.DBusMessageType.ERROR) \
                    and msg.get_reply_serial() in serials:
                p = serials[msg.get_reply_serial()]
                removals[p] = None if kind == Gio.DBusMessageType.METHOD_RETURN else msg.get_error_name()
                return None
            return msg

        remover.signal_subscribe('org.freedesktop.DBus', 'org.freedesktop.DBus', 'NameOwnerChanged',
                                 '/org/freedesktop/DBus', BUS_NAME, Gio.DBusSignalFlags.NONE,
                                 lambda *a: None)
        remover.add_filter(remover_filter)
        env.barrier(conn=remover)  # the match rule is in place
        stopper = BusStopper(env)
        self.addCleanup(stopper.close)

        with StderrCapture(env.tmp) as err:
            env.kill_pcpd(signal.SIGKILL)
            wait_until(lambda: not self.om_mappings(om), CAP, 'the client to drop the objects of the old owner')
            counts['object-removed'].clear()
            mark = witness.mark()
            # the bus stops at the restore's first InterfacesAdded and goes on once pcpd
            # logged the restore's end (start_pcpd()'s look for the name waits meanwhile)
            stopper.arm(os.path.getsize(env.pcpd_log))
            env.start_pcpd(wait_ready=False)

            # 3. settled: every removal answered, every kept mapping active, and the witness
            # has every kept mapping's InterfacesAdded and every removed one's
            # InterfacesRemoved (nothing more is paced)
            def told():
                ev = witness.events[mark:]
                added = {p for m, p, _ in ev if m == 'InterfacesAdded'}
                gone = {p for m, p, _ in ev if m == 'InterfacesRemoved'}
                return kept - added, removed - gone
            wait_until(lambda: len(removals) == REMOVED and 'pending' not in removals.values(), CAP,
                       f'the {REMOVED} removals answered')
            self.assertEqual({p: e for p, e in removals.items() if e is not None}, {}, 'RemoveMapping failed')
            wait_until(lambda: not any(told()), CAP,
                       'the witness to see every kept mapping\'s InterfacesAdded and every removed one\'s '
                       'InterfacesRemoved')
            wait_until(lambda: len(self.managed(env)) == len(kept)
                       and all(v['State'] == 'active' for v in self.managed(env).values()), CAP,
                       'every restored mapping active again', step=0.5)
            env.barrier(conn=om_conn)
            managed = self.managed(env)
            env.barrier(conn=om_conn)

        # the bus was stopped from the restore's first InterfacesAdded until pcpd's restore
        # was over (else the pacing below was left to chance)
        self.assertTrue(stopper.stopped.is_set() and stopper.stopped_at is not None,
                        'no InterfacesAdded of the restore reached the stopper')
        self.assertIsNotNone(stopper.restored, f'pcpd did not log the end of its restore within {CAP} s of the '
                             f'bus being stopped at its first InterfacesAdded (the bus was let go on then)')
        print(f'bus stopped at the restore\'s first InterfacesAdded for '
              f'{stopper.continued_at - stopper.stopped_at:.3f} s, until pcpd logged "{stopper.restored}"',
              file=sys.stderr)

        # what the witness saw: the pacing happened, and in which order things came
        ev = witness.events[mark:]
        owned = [i for i, (m, name, a) in enumerate(ev) if m == 'NameOwnerChanged' and a[1] != '']
        self.assertEqual(len(owned), 1, f'pcpd took its name once: {[e for e in ev if e[0] == "NameOwnerChanged"]}')
        owned = owned[0]
        added_at = {}
        for i, (m, p, _) in enumerate(ev):
            if m == 'InterfacesAdded':
                self.assertNotIn(p, added_at, f'{p}: one InterfacesAdded from the restore')
                added_at[p] = i
        before_name = sum(1 for i in added_at.values() if i < owned)
        after_name = len(added_at) - before_name
        self.assertGreater(after_name, 0,
                           f'the restore paced nothing past its name: all {len(added_at)} InterfacesAdded came '
                           f'before pcpd owned {BUS_NAME}, though the bus was stopped at the first of them (did '
                           f'pcpd tell them all before the test stopped it? HELD too small?)')
        props_first = 0
        for p, i in added_at.items():
            firsts = [j for j, (m, q, _) in enumerate(ev) if m == 'PropertiesChanged' and q == p]
            if firsts and firsts[0] < i:
                props_first += 1
        removed_at = {p: i for i, (m, p, _) in enumerate(ev) if m == 'InterfacesRemoved'}
        for p, i in removed_at.items():
            self.assertFalse(p in added_at and added_at[p] > i, f'{p}: InterfacesAdded after its InterfacesRemoved')
        never_added = sorted(p for p in removed if p not in added_at)
        # the manager's interface-added without object-added: an InterfacesAdded for a known object
        replaced = counts['interface-added']
        print(f'witness: {before_name} InterfacesAdded before pcpd owned its name, {after_name} after; '
              f'{props_first} mapping(s) had a PropertiesChanged before their InterfacesAdded; '
              f'{len(never_added)} of {REMOVED} removed before their turn (InterfacesRemoved, no InterfacesAdded), '
              f'{len(removed - set(counts["object-added"]))} before pcpd answered the client\'s GetManagedObjects; '
              f'the client got {sum(replaced.values())} InterfacesAdded for objects it knew', file=sys.stderr)

        # the client holds exactly the restored mappings left, once each, with pcpd's values
        held = self.om_mappings(om)
        self.assertEqual(set(managed), kept, 'GetManagedObjects has exactly the restored mappings left')
        self.assertEqual(set(held), kept, f'the client holds exactly those: {len(set(held) - kept)} extra, '
                         f'{len(kept - set(held))} missing')
        self.assertEqual(len(om.get_objects()), len(kept), 'and nothing else')
        self.assertEqual({p: n for p, n in counts['object-added'].items() if n != 1}, {},
                         'one object-added per restored mapping')
        # (a removed one that pcpd dropped before it answered the client's GetManagedObjects
        # never had one)
        self.assertEqual(kept - set(counts['object-added']), set(), 'object-added for each restored mapping kept')
        self.assertEqual(set(counts['object-added']) - set(by_id), set(), 'object-added for restored mappings only')
        self.assertEqual(set(counts['object-removed']), removed & set(counts['object-added']),
                         'object-removed for the removed ones only')
        stale = {}
        for p in kept:
            mine = self.cached(held[p][1])
            if mine != managed[p]:
                stale[p] = {k: (mine.get(k), v) for k, v in managed[p].items() if mine.get(k) != v}
        self.assertEqual(stale, {}, 'the client\'s properties (name: (client, GetManagedObjects)) differ')
        for p in kept:
            self.assertEqual(held[p][1].get_cached_property('State').unpack(), 'active')
            self.assertEqual(held[p][1].get_cached_property('ExternalPort').unpack(), managed[p]['ExternalPort'])
        # one warning is GLib's own race, not the restore's: an InterfacesRemoved that pcpd
        # sent after the bus took the client's AddMatch and before it answered the client's
        # GetManagedObjects reaches it after that answer, which lacked the object (GLib
        # warns "Processing InterfaceRemoved signal for path ... but no object proxy exists"
        # and ignores it); allowed for the removed paths only
        race = re.compile(r'Processing InterfaceRemoved signal for path (\S+) but no object proxy exists')
        warnings = [line for line in err.text.splitlines() if ('WARNING' in line or 'CRITICAL' in line)
                    and not (race.search(line) and race.search(line)[1] in removed)]
        self.assertEqual(warnings, [], 'GLib warned while the client followed the restart')

        # documents a defect of clients that keep the interface proxy of object-added (the
        # GNOME app's PfItem.proxy): a replayed InterfacesAdded replaces it, and the kept
        # one hears of no later change
        app = {paths[k] for k, (_, _, persistent) in enumerate(specs) if not persistent}
        again = sorted(p for p, n in counts['interface-added'].items() if n > 0 and p in kept & app)
        if not again:
            print('this run: the client got no InterfacesAdded for an object it knew (all came before its '
                  'AddMatch): the replacement was not exercised', file=sys.stderr)
            return
        p = again[0]
        self.assertIsNot(kept_proxy[p], held[p][1], f'{p}: the replayed InterfacesAdded replaced the interface proxy')
        port = env.get(p, MAPPING, 'InternalPort')
        proto = env.get(p, MAPPING, 'Protocol')
        me = env.conn.get_unique_name()
        before = kept_proxy[p].get_cached_property('Owner').unpack()
        self.assertNotEqual(before, me, f'{p}: an app mapping nobody claimed yet')
        # its app (the harness's connection) claims it: Owner changes, with a PropertiesChanged
        self.assertEqual(env.add_mapping(proto, port), p)
        self.assertEqual(env.get(p, MAPPING, 'Owner'), me)
        env.barrier(conn=om_conn)
        self.assertEqual(held[p][1].get_cached_property('Owner').unpack(), me,
                         'the proxy looked up through the manager follows the change')
        self.assertEqual(kept_proxy[p].get_cached_property('Owner').unpack(), before,
                         'the proxy kept from object-added no longer follows (GLib replaced it): if this fails, '
                         'GLib updates the existing proxy now and the docs can say so')


if __name__ == '__main__':
    main()
