#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small fake of org.freedesktop.PCP1 for client tests (not the daemon's behaviour, only
its D-Bus contract). Runs on the bus at the address given, prints "ready" once it owns the
name, and appends one line per removal ("<reason> <path>") to the log file.

  fake-pcpd.py BUS_ADDRESS LOG_FILE

Scripted behaviour: internal port 9999 fails with NO_RESOURCES, port 1000 is refused with
NotAuthorized, external port 8600 is taken (prefer-failure fails with CANNOT_PROVIDE_EXTERNAL,
else another port is given); everything else becomes active 50 ms after it is requested, on
198.51.100.1. As pcpd, a request for a mapping that exists (same opcode, protocol, port,
family and remote end) shares it: the same path, no InterfacesAdded, persistent from then on
when asked; PID is the caller's that made it. DeclareMapping declares in the state directory
(never mapped: "/"; after org.freedesktop.PCP1.Test.MapDeclared(true) it makes the mapping as
pcpd does when it has a server: persistent, of uid 0, Declared NAME, "pending" at the reply,
then active, or failed with NOT_AUTHORIZED for a third-party one, as a server that refuses
THIRD_PARTY answers, 50 ms later or, after Test.HoldDeclared(true), at Test.SettleDeclared();
declared again, the same mapping; declared again with other settings, the old mapping is removed
("released") and a new one made; a declared mapping removed while its declaration stays is "/" in
DeclaredMappings until it is declared again), org.freedesktop.PCP1.Test.DeclareInEtc(s) as a file in
/etc/pcpd/mappings.d would, which RemoveDeclaredMapping refuses (Conflict); Test.DeclareIn(sssq) in
any file, with a mapping. GetExternalAddress("ipv6") fails with
NoServer, and a family with the error org.freedesktop.PCP1.Test.FailExternalAddress(ss) names. The manager has no
StateError property until org.freedesktop.PCP1.Test.SetStateError(s) adds it (a property
newer daemons have: clients must read it when present and do without it).
org.freedesktop.PCP1.Test.RefuseAdd(qss) makes AddMapping and AddPeer of a port fail with
an error and message. org.freedesktop.PCP1.Test.MappingReads(o) counts the GetAll calls a mapping answered.
org.freedesktop.PCP1.Test.RemoveOnRelease(ss) makes the next Release() lose a race with
a removal for another reason.
"""

import sys
import time

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

NAME = 'org.freedesktop.PCP1'
MANAGER_PATH = '/org/freedesktop/PCP1'
MANAGER = 'org.freedesktop.PCP1.Manager'
MAPPING = 'org.freedesktop.PCP1.Mapping'
PROPERTIES = 'org.freedesktop.DBus.Properties'
TEST = 'org.freedesktop.PCP1.Test'
OBJECT_MANAGER = 'org.freedesktop.DBus.ObjectManager'
EXTERNAL = '198.51.100.1'

# pcpd's answers to Release on a mapping it has removed: sd-bus's when the mapping was gone
# before the call arrived (no object at the path any more), pcpd's own when it went while
# the call waited (for the caller's credentials or polkit)
GONE_MESSAGES = {
    'org.freedesktop.DBus.Error.UnknownObject': "Unknown object '{path}'.",
    'org.freedesktop.PCP1.Error.NotFound': 'Mapping {path} does not exist (any more).',
}


class Error(dbus.DBusException):
    def __init__(self, name, message):
        super().__init__(message, name=f'org.freedesktop.PCP1.Error.{name}')


def now_usec():
    return int(time.time() * 1000000)


class Mapping(dbus.service.Object):
    def __init__(self, manager, mid, owner, props):
        self.path = f'{MANAGER_PATH}/mapping/{mid}'
        super().__init__(manager.bus, self.path)
        self.manager = manager
        self.owner = owner
        self.props = props

    @dbus.service.method(PROPERTIES, in_signature='s', out_signature='a{sv}')
    def GetAll(self, interface):
        self.reads = getattr(self, 'reads', 0) + 1
        error = getattr(self, 'getall_error', None)
        if error is not None:
            raise dbus.DBusException(f'Scripted failure for {self.path}.', name=error)
        if interface != MAPPING:
            raise dbus.DBusException('no such interface', name='org.freedesktop.DBus.Error.UnknownInterface')
        return self.props

    @dbus.service.method(PROPERTIES, in_signature='ss', out_signature='v')
    def Get(self, interface, name):
        return self.GetAll(interface)[name]

    @dbus.service.signal(PROPERTIES, signature='sa{sv}as')
    def PropertiesChanged(self, interface, changed, invalidated):
        pass

    @dbus.service.method(MAPPING, in_signature='', out_signature='')
    def Release(self):
        armed = self.manager.remove_on_release
        if armed is not None:
            # pcpd removed the mapping for another reason just before this Release: the
            # signal, then the error pcpd answers for a mapping that is gone
            self.manager.remove_on_release = None
            reason, error = armed
            self.manager.remove(self, reason)
            raise dbus.DBusException(GONE_MESSAGES[error].format(path=self.path), name=error)
        self.manager.remove(self, 'released')

    def update(self, **changed):
        values = {}
        for k, v in changed.items():
            self.props[k] = type(self.props[k])(v)
            values[k] = self.props[k]
        self.PropertiesChanged(MAPPING, dbus.Dictionary(values, signature='sv'), dbus.Array([], signature='s'))


class Manager(dbus.service.Object):
    def __init__(self, bus, log):
        super().__init__(bus, MANAGER_PATH)
        self.bus = bus
        self.log = log
        self.mappings = {}
        self.next_id = 1
        self.remove_on_release = None  # (reason, error name): Test.RemoveOnRelease
        self.props = {
            'Version': dbus.String('0.1.0-fake'),
            'Enabled': dbus.Boolean(True),
            'State': dbus.String('ready'),
            'Servers': dbus.Array([dbus.Struct(('eth0', '192.168.1.1', 'dhcpv4', 'pcp', dbus.UInt32(1234)),
                                               signature='ssssu')], signature='(ssssu)'),
            'ExternalAddresses': dbus.Array([EXTERNAL], signature='s'),
            'Prefix64': dbus.Array([], signature='s'),
            'DefaultLifetime': dbus.UInt32(3600),
            'MaxMappingsPerUser': dbus.UInt32(64),
            'MappingCount': dbus.UInt32(0),
            'DeclaredMappings': dbus.Array([], signature='(sso)'),
        }

    def scripted_failure(self, member):
        error = getattr(self, 'failing', {}).get(member)
        if error is not None:
            raise dbus.DBusException(f'Scripted failure of {member}.', name=error)

    @dbus.service.method(TEST, in_signature='ss', out_signature='')
    def FailManagerCall(self, member, error):
        """The manager's GetAll or GetManagedObjects (member) fails with error (a full error
        name) from now on; '' makes it answer again."""
        self.failing = getattr(self, 'failing', {})
        if error == '':
            self.failing.pop(str(member), None)
        else:
            self.failing[str(member)] = str(error)

    # Properties
    @dbus.service.method(PROPERTIES, in_signature='s', out_signature='a{sv}')
    def GetAll(self, interface):
        self.scripted_failure('GetAll')
        return self.props

    @dbus.service.method(PROPERTIES, in_signature='ss', out_signature='v')
    def Get(self, interface, name):
        return self.props[name]

    @dbus.service.signal(PROPERTIES, signature='sa{sv}as')
    def PropertiesChanged(self, interface, changed, invalidated):
        pass

    # ObjectManager
    @dbus.service.method(OBJECT_MANAGER, in_signature='', out_signature='a{oa{sa{sv}}}')
    def GetManagedObjects(self):
        self.scripted_failure('GetManagedObjects')
        return {m.path: {MAPPING: m.props} for m in self.mappings.values()}

    @dbus.service.signal(OBJECT_MANAGER, signature='oa{sa{sv}}')
    def InterfacesAdded(self, path, interfaces):
        pass

    @dbus.service.signal(OBJECT_MANAGER, signature='oas')
    def InterfacesRemoved(self, path, interfaces):
        pass

    # Manager
    @dbus.service.signal(MANAGER, signature='os')
    def MappingRemoved(self, path, reason):
        pass

    def set_prop(self, name, value):
        self.props[name] = type(self.props[name])(value)
        self.PropertiesChanged(MANAGER, dbus.Dictionary({name: self.props[name]}, signature='sv'),
                               dbus.Array([], signature='s'))

    def add(self, opcode, protocol, port, suggested, remote_address, remote_port, options, sender):
        if not self.props['Enabled']:
            raise Error('Disabled', 'Port mappings are switched off.')
        if port == 1000:
            raise Error('NotAuthorized', 'Not authorized to map port 1000.')
        refusal = getattr(self, 'refusals', {}).get(port)
        if refusal is not None:
            raise dbus.DBusException(refusal[1], name=refusal[0])
        for key in options:
            if key not in ('lifetime', 'description', 'family', 'interface', 'prefer-failure', 'persistent'):
                raise dbus.DBusException(f"Unknown option '{key}'.",
                                         name='org.freedesktop.DBus.Error.InvalidArgs')
        persistent = bool(options.get('persistent', False))
        family = str(options.get('family', 'ipv4'))
        for m in self.mappings.values():
            p = m.props
            if (p['Opcode'], p['Protocol'], p['InternalPort'], p['Family'], p['RemoteAddress'], p['RemotePort']) == \
                    (opcode, protocol, port, family, remote_address, remote_port):
                if persistent and not p['Persistent']:
                    m.update(Persistent=True)
                return m.path
        pid = self.bus.call_blocking('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                                     'GetConnectionUnixProcessID', 's', [sender])
        m = self.new_mapping(None if persistent else sender, protocol, port, suggested, options,
                             Opcode=dbus.String(opcode),
                             RemoteAddress=dbus.String(remote_address),
                             RemotePort=dbus.UInt16(remote_port),
                             Persistent=dbus.Boolean(persistent),
                             Owner=dbus.String('' if persistent else sender),
                             PID=dbus.UInt32(pid),
                             AppId=dbus.String('org.example.Test'),
                             AppIdSource=dbus.String('declared'))
        lifetime = int(options.get('lifetime', 0)) or int(self.props['DefaultLifetime'])

        def settle():
            if m.path not in self.mappings:
                return False
            if port == 9999:
                m.update(State='failed', Error='NO_RESOURCES')
            elif suggested == 8600 and options.get('prefer-failure', False):
                m.update(State='failed', Error='CANNOT_PROVIDE_EXTERNAL')
            else:
                m.update(State='active', ExternalAddress=EXTERNAL,
                         ExternalPort=8601 if suggested == 8600 else suggested or port, Lifetime=lifetime,
                         ExpiresAt=now_usec() + lifetime * 1000000)
            return False
        GLib.timeout_add(50, settle)

        if not persistent:
            def vanished(owner):
                if owner == '' and m.path in self.mappings and not m.props['Persistent']:
                    self.remove(m, 'owner-vanished')
            m.watch = self.bus.watch_name_owner(sender, vanished)
        return m.path

    def new_mapping(self, owner, protocol, port, suggested, options, **fields):
        """a new mapping object, pending, with fields over the defaults; published
        (InterfacesAdded, MappingCount)"""
        mid = self.next_id
        self.next_id += 1
        props = {
            'Opcode': dbus.String('map'),
            'Family': dbus.String(options.get('family', 'ipv4')),
            'Protocol': dbus.String(protocol),
            'ProtocolNumber': dbus.Byte({'tcp': 6, 'udp': 17}.get(protocol, 0)),
            'InternalAddress': dbus.String('192.168.1.20'),
            'InternalPort': dbus.UInt16(port),
            'SuggestedExternalPort': dbus.UInt16(suggested),
            'ExternalAddress': dbus.String(''),
            'ExternalPort': dbus.UInt16(0),
            'RemoteAddress': dbus.String(''),
            'RemotePort': dbus.UInt16(0),
            'Lifetime': dbus.UInt32(0),
            'ExpiresAt': dbus.UInt64(0),
            'State': dbus.String('pending'),
            'Error': dbus.String(''),
            'Server': dbus.String('192.168.1.1'),
            'Description': dbus.String(options.get('description', '')),
            'Persistent': dbus.Boolean(False),
            'Owner': dbus.String(''),
            'UID': dbus.UInt32(0),
            'PID': dbus.UInt32(0),
            'AppId': dbus.String(''),
            'AppIdSource': dbus.String('none'),
            'Created': dbus.UInt64(now_usec()),
        }
        props.update(fields)
        m = Mapping(self, mid, owner, props)
        self.mappings[m.path] = m
        self.InterfacesAdded(m.path, {MAPPING: dbus.Dictionary(props, signature='sv')})
        self.set_prop('MappingCount', len(self.mappings))
        return m

    def remove(self, m, reason):
        # logged before the signals: a holder may exit on MappingRemoved alone, and the
        # test reads the log as soon as it has
        with open(self.log, 'a', encoding='utf-8') as f:
            f.write(f'{reason} {m.path}\n')
        del self.mappings[m.path]
        m.remove_from_connection()
        # a declaration whose mapping went has none until it is made again (pcpd's
        # retry): DeclaredMappings says "/" for it, as pcpd's does
        name = str(m.props.get('Declared', ''))
        if name and self.declared_path(name) == m.path:
            file = next(str(d[1]) for d in self.props['DeclaredMappings'] if str(d[0]) == name)
            self.set_declared(name, file, '/')
        self.InterfacesRemoved(m.path, [MAPPING])
        self.MappingRemoved(m.path, reason)
        self.set_prop('MappingCount', len(self.mappings))

    @dbus.service.method(MANAGER, in_signature='sqqa{sv}', out_signature='o', sender_keyword='sender')
    def AddMapping(self, protocol, port, suggested, options, sender=None):
        return self.add('map', protocol, int(port), int(suggested), '', 0, options, sender)

    @dbus.service.method(MANAGER, in_signature='sqsqa{sv}', out_signature='o', sender_keyword='sender')
    def AddPeer(self, protocol, port, remote_address, remote_port, options, sender=None):
        return self.add('peer', protocol, int(port), 0, str(remote_address), int(remote_port), options, sender)

    @dbus.service.method(MANAGER, in_signature='o', out_signature='')
    def RemoveMapping(self, path):
        if path not in self.mappings:
            raise Error('NotFound', f'No mapping {path}.')
        self.remove(self.mappings[path], 'revoked')

    @dbus.service.method(MANAGER, in_signature='s', out_signature='')
    def RevokeApp(self, app_id):
        victims = [m for m in self.mappings.values() if m.props['AppId'] == app_id]
        if not victims:
            raise Error('NotFound', f"No mapping belongs to '{app_id}'.")
        for m in victims:
            self.remove(m, 'revoked')

    @dbus.service.method(TEST, in_signature='qss', out_signature='')
    def RefuseAdd(self, port, error, message):
        """AddMapping and AddPeer of internal port fail with error (a full error name) and
        message from now on, as pcpd refuses a port that is not the caller's; '' answers
        again."""
        self.refusals = getattr(self, 'refusals', {})
        if error == '':
            self.refusals.pop(int(port), None)
        else:
            self.refusals[int(port)] = (str(error), str(message))

    @dbus.service.method(TEST, in_signature='s', out_signature='')
    def SetStateError(self, text):
        self.props['StateError'] = dbus.String(text)
        self.set_prop('StateError', text)

    @dbus.service.method(TEST, in_signature='ss', out_signature='')
    def RemoveOnRelease(self, reason, error):
        """The next Release() loses a race: the mapping is removed with reason first
        (MappingRemoved), then the call fails with error (a name of GONE_MESSAGES), the
        order a holder sees when pcpd removes its mapping just before its Release."""
        if error not in GONE_MESSAGES:
            raise dbus.DBusException(f"Unknown error '{error}'.", name='org.freedesktop.DBus.Error.InvalidArgs')
        self.remove_on_release = (str(reason), str(error))

    @dbus.service.method(TEST, in_signature='s', out_signature='')
    def SetNetworkManager(self, state):
        """A pcpd with NetworkManager discovery: the NetworkManager property is state, and
        DhcpOptions lists eth0's two options; '' takes both properties away again."""
        if state == '':
            self.props.pop('NetworkManager', None)
            self.props.pop('DhcpOptions', None)
            return
        self.props['NetworkManager'] = dbus.String(state)
        self.props['DhcpOptions'] = dbus.Array([dbus.Struct(('eth0', 'ipv4', 'received'), signature='sss'),
                                                dbus.Struct(('eth0', 'ipv6', 'not-offered'), signature='sss')],
                                               signature='(sss)')

    @dbus.service.method(TEST, in_signature='os', out_signature='')
    def FailMappingGetAll(self, path, error):
        """The mapping's GetAll fails with error (a full error name) from now on."""
        self.mappings[path].getall_error = str(error)

    @dbus.service.method(TEST, in_signature='o', out_signature='u')
    def MappingReads(self, path):
        """How many times the mapping's GetAll was answered (0 when there is no such mapping):
        a client has the mapping's properties once this counts its call (the answer went
        out before this one)."""
        m = self.mappings.get(str(path))
        return dbus.UInt32(getattr(m, 'reads', 0) if m is not None else 0)

    @dbus.service.method(TEST, in_signature='s', out_signature='')
    def SetServerSource(self, source):
        """The source of the one server ("dhcpv4" at start; "gateway": a default router)."""
        server = self.props['Servers'][0]
        self.set_prop('Servers', dbus.Array([dbus.Struct((server[0], server[1], source, server[3], server[4]),
                                                         signature='ssssu')], signature='(ssssu)'))

    @dbus.service.method(TEST, in_signature='s', out_signature='')
    def SetWrongType(self, name):
        """The manager's property name as a string from now on (a daemon that breaks the
        contract): clients must skip it and read the others."""
        self.saved = getattr(self, 'saved', {})
        self.saved[name] = self.props[name]
        self.props[name] = dbus.String(str(self.props[name]))

    @dbus.service.method(TEST, in_signature='s', out_signature='')
    def RestoreType(self, name):
        self.props[name] = self.saved.pop(name)

    @dbus.service.method(MANAGER, in_signature='b', out_signature='')
    def SetEnabled(self, enabled):
        """Two signals, in pcpd's order when it holds mappings: switched off, State first
        (told as the first mapping goes), then Enabled; switched on, Enabled, then State."""
        if bool(enabled) == bool(self.props['Enabled']):
            return
        if enabled:
            self.set_prop('Enabled', True)
            self.set_prop('State', 'ready')
        else:
            self.set_prop('State', 'disabled')
            self.set_prop('Enabled', False)

    @dbus.service.method(TEST, in_signature='b', out_signature='')
    def SetEnabledAtOnce(self, enabled):
        """As SetEnabled, with Enabled and State in one PropertiesChanged."""
        self.props['Enabled'] = dbus.Boolean(enabled)
        self.props['State'] = dbus.String('ready' if enabled else 'disabled')
        self.PropertiesChanged(MANAGER, dbus.Dictionary({'Enabled': self.props['Enabled'],
                                                         'State': self.props['State']}, signature='sv'),
                               dbus.Array([], signature='s'))

    def set_declared(self, name, file, path='/'):
        """name declared in file (None: no more), on the mapping at path ("/": not mapped yet)."""
        items = [d for d in self.props['DeclaredMappings'] if str(d[0]) != name]
        if file is not None:
            items.append(dbus.Struct((name, file, dbus.ObjectPath(path)), signature='sso'))
        self.set_prop('DeclaredMappings', dbus.Array(sorted(items, key=lambda d: str(d[0])), signature='(sso)'))

    def declared_path(self, name):
        for d in self.props['DeclaredMappings']:
            if str(d[0]) == name:
                return str(d[2])
        return '/'

    @dbus.service.method(TEST, in_signature='b', out_signature='')
    def MapDeclared(self, on):
        """DeclareMapping makes the declaration's mapping from now on (false: "/" again)."""
        self.map_declared = bool(on)

    def declare_mapping(self, name, protocol, port, suggested, options):
        """The declaration's mapping, as pcpd makes it: announced before the reply, pending at
        it, settled 50 ms later (a third-party one is refused as by a server without
        THIRD_PARTY); the one it has when declared again."""
        path = self.declared_path(name)
        settings = (protocol, port, suggested, dict(options))
        if path in self.mappings:
            if self.mappings[path].declared_as == settings:
                return path
            # declared again with other settings: pcpd asks for it again, a new mapping
            self.remove(self.mappings[path], 'released')
        m = self.new_mapping(None, protocol, port, suggested, options,
                             InternalAddress=dbus.String(str(options.get('third-party', '192.168.1.20'))),
                             Persistent=dbus.Boolean(True),
                             Declared=dbus.String(name))
        m.declared_as = settings
        lifetime = int(options.get('lifetime', 0)) or int(self.props['DefaultLifetime'])

        def settle():
            if m.path not in self.mappings:
                return False
            if 'third-party' in options:
                m.update(State='failed', Error='NOT_AUTHORIZED')
            elif port == 9999:
                m.update(State='failed', Error='NO_RESOURCES')
            else:
                m.update(State='active', ExternalAddress=EXTERNAL, ExternalPort=suggested or port,
                         Lifetime=lifetime, ExpiresAt=now_usec() + lifetime * 1000000)
            return False
        if getattr(self, 'hold_declared', False):
            self.held.append(settle)
        else:
            GLib.timeout_add(50, settle)
        return m.path

    @dbus.service.method(TEST, in_signature='b', out_signature='')
    def HoldDeclared(self, on):
        """The declared mappings made from now on stay "pending" until Test.SettleDeclared()."""
        self.hold_declared = bool(on)
        self.held = getattr(self, 'held', [])

    @dbus.service.method(TEST, in_signature='', out_signature='')
    def SettleDeclared(self):
        """The held declared mappings get the server's answer now."""
        held, self.held = getattr(self, 'held', []), []
        for settle in held:
            settle()

    @dbus.service.method(MANAGER, in_signature='ssqqa{sv}', out_signature='o')
    def DeclareMapping(self, name, protocol, port, suggested, options):
        """Declared in the state directory; mapped after Test.MapDeclared(true), else never (the
        path is "/": it cannot be yet)."""
        name = str(name)
        path = '/'
        if getattr(self, 'map_declared', False) and self.props['Enabled']:
            path = self.declare_mapping(name, str(protocol), int(port), int(suggested), options)
        self.set_declared(name, f'/var/lib/pcpd/mappings.d/{name}.conf', path)
        return dbus.ObjectPath(path)

    @dbus.service.method(MANAGER, in_signature='s', out_signature='')
    def RemoveDeclaredMapping(self, name):
        for d in self.props['DeclaredMappings']:
            if str(d[0]) == name:
                if str(d[1]).startswith('/etc/'):
                    raise Error('Conflict', f'{name} is declared in {d[1]}: remove the file and reload.')
                # no longer declared, then its mapping removed: pcpd's order
                path = str(d[2])
                self.set_declared(str(name), None)
                if path in self.mappings:
                    self.remove(self.mappings[path], 'released')
                return
        raise Error('NotFound', f'Nothing is declared as {name}.')

    @dbus.service.method(TEST, in_signature='s', out_signature='')
    def DeclareInEtc(self, name):
        """name declared by the administrator's file in /etc/pcpd/mappings.d."""
        self.set_declared(str(name), f'/etc/pcpd/mappings.d/{name}.conf')

    @dbus.service.method(TEST, in_signature='sssq', out_signature='')
    def DeclareIn(self, name, file, protocol, port):
        """name declared in file, as an administrator's file is (one in /etc/pcpd/mappings.d,
        or in the mappings.d beside the configuration of a pcpd run with --config), with its
        mapping made as DeclareMapping makes it (after Test.MapDeclared(true)) unless protocol
        is ''; file '' removes the declaration and its mapping (the file removed, pcpd
        reloaded)."""
        name = str(name)
        if file == '':
            path = self.declared_path(name)
            self.set_declared(name, None)
            if path in self.mappings:
                self.remove(self.mappings[path], 'released')
            return
        path = '/'
        if protocol != '' and getattr(self, 'map_declared', False) and self.props['Enabled']:
            path = self.declare_mapping(name, str(protocol), int(port), 0, {})
        self.set_declared(name, str(file), path)

    @dbus.service.method(TEST, in_signature='ss', out_signature='')
    def FailExternalAddress(self, family, error):
        """GetExternalAddress(family) fails with error (a full error name) from now on; ''
        makes it answer as before."""
        self.external_errors = getattr(self, 'external_errors', {})
        if error == '':
            self.external_errors.pop(str(family), None)
        else:
            self.external_errors[str(family)] = str(error)

    @dbus.service.method(MANAGER, in_signature='s', out_signature='ss')
    def GetExternalAddress(self, family):
        error = getattr(self, 'external_errors', {}).get(family)
        if error is not None:
            raise dbus.DBusException(f'Scripted failure for {family}.', name=error)
        if family == 'ipv4':
            return (EXTERNAL, '192.168.1.1')
        raise Error('NoServer', f'No PCP server is known for {family}.')


def main():
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(sys.argv[1])
    Manager(bus, sys.argv[2])
    _name = dbus.service.BusName(NAME, bus, do_not_queue=True)  # noqa: F841 (kept alive)
    print('ready', flush=True)
    GLib.MainLoop().run()


if __name__ == '__main__':
    main()
