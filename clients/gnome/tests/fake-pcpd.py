# SPDX-License-Identifier: LGPL-2.1-or-later
'''python-dbusmock template: a stand-in for pcpd on the bus, for what the real one only does
by chance of timing

The app's GUI tests run against the real pcpd. One thing it does cannot be made to happen
on purpose: after a restart it tells the InterfacesAdded of many restored mappings after it
took its name (org.freedesktop.PCP1(5), AFTER A RESTART; daemon/pcpd-restore.c), so a client
may get the InterfacesAdded of a mapping it read already with GetManagedObjects, or not,
depending on how fast the bus and the client are. This template owns org.freedesktop.PCP1
with a Manager that says "ready" with one PCP router, the ObjectManager, and mapping objects
the test adds and changes through these methods (org.freedesktop.DBus.Mock, on the main
object):

  AddMapping(id, props)        a mapping object /org/freedesktop/PCP1/mapping/<id> with
                               every Mapping property (defaults, then props); no signal
  AnnounceMapping(id, props)   props set (no PropertiesChanged), then InterfacesAdded for
                               the object with every property as it is now
  UpdateMapping(id, props)     props set, then PropertiesChanged with them
  AddOtherInterface(id)        the object gets a second interface (org.example.Other)
  WithdrawMapping(id)          InterfacesRemoved for the Mapping interface only (the object
                               keeps the other one)

Every property has the type of dbus/org.freedesktop.PCP1.*.xml: GDBusProxy warns (fatal in
the app's tests) about a value of another type.
'''

import time

import dbus

from dbusmock import MOCK_IFACE, OBJECT_MANAGER_IFACE
from dbusmock.mockobject import objects

BUS_NAME = 'org.freedesktop.PCP1'
MAIN_OBJ = '/org/freedesktop/PCP1'
MAIN_IFACE = 'org.freedesktop.PCP1.Manager'
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

MAPPING = 'org.freedesktop.PCP1.Mapping'
OTHER = 'org.example.Other'
ROUTER = '192.0.2.1'
EXTERNAL = '198.51.100.7'

# name -> the D-Bus type of the Mapping interface's properties
MAPPING_TYPES = {
    'Opcode': 's', 'Family': 's', 'Protocol': 's', 'ProtocolNumber': 'y', 'InternalAddress': 's',
    'InternalPort': 'q', 'SuggestedExternalPort': 'q', 'ExternalAddress': 's', 'ExternalPort': 'q',
    'RemoteAddress': 's', 'RemotePort': 'q', 'Lifetime': 'u', 'ExpiresAt': 't', 'State': 's', 'Error': 's',
    'Server': 's', 'Description': 's', 'Persistent': 'b', 'Declared': 's', 'Owner': 's', 'UID': 'u',
    'PID': 'u', 'AppId': 's', 'AppIdSource': 's', 'Created': 't',
}
WRAP = {'s': dbus.String, 'y': dbus.Byte, 'q': dbus.UInt16, 'u': dbus.UInt32, 't': dbus.UInt64,
        'b': dbus.Boolean}


def _typed(props):
    '''props with each value of its property's D-Bus type (unknown names refused)'''
    out = {}
    for name, value in props.items():
        name = str(name)
        if name not in MAPPING_TYPES:
            raise dbus.exceptions.DBusException(f'no Mapping property {name}',
                                                name='org.freedesktop.DBus.Mock.NameError')
        out[name] = WRAP[MAPPING_TYPES[name]](value, variant_level=1)
    return dbus.Dictionary(out, signature='sv')


def _path(mapping_id):
    return f'{MAIN_OBJ}/mapping/{int(mapping_id)}'


def _object(mapping_id):
    path = _path(mapping_id)
    if path not in objects:
        raise dbus.exceptions.DBusException(f'no mapping {path}', name='org.freedesktop.DBus.Mock.NameError')
    return objects[path]


def load(mock, _parameters):
    mock.AddProperties(MAIN_IFACE, dbus.Dictionary({
        'Version': dbus.String('0.0-fake', variant_level=1),
        'Enabled': dbus.Boolean(True, variant_level=1),
        'State': dbus.String('ready', variant_level=1),
        'Servers': dbus.Array([dbus.Struct(('', ROUTER, 'config', 'pcp', dbus.UInt32(2)))], signature='(ssssu)',
                              variant_level=1),
        'ExternalAddresses': dbus.Array([EXTERNAL], signature='s', variant_level=1),
        'Prefix64': dbus.Array([], signature='s', variant_level=1),
        'DefaultLifetime': dbus.UInt32(600, variant_level=1),
        'MaxMappingsPerUser': dbus.UInt32(64, variant_level=1),
        'MappingCount': dbus.UInt32(0, variant_level=1),
        'StateError': dbus.String('', variant_level=1),
        'DeclaredMappings': dbus.Array([], signature='(sso)', variant_level=1),
        'DhcpOptions': dbus.Array([], signature='(sss)', variant_level=1),
        'NetworkManager': dbus.String('', variant_level=1),
    }, signature='sv'))


@dbus.service.method(MOCK_IFACE, in_signature='ua{sv}', out_signature='o')
def AddMapping(self, mapping_id, props):
    now_us = int(time.time() * 1e6)
    defaults = {
        'Opcode': 'map', 'Family': 'ipv4', 'Protocol': 'tcp', 'ProtocolNumber': 6, 'InternalAddress': '10.0.0.2',
        'InternalPort': 22000, 'SuggestedExternalPort': 0, 'ExternalAddress': EXTERNAL, 'ExternalPort': 40001,
        'RemoteAddress': '', 'RemotePort': 0, 'Lifetime': 600, 'ExpiresAt': now_us + 600 * 1000000,
        'State': 'active', 'Error': '', 'Server': f'{ROUTER}:5351', 'Description': '', 'Persistent': False,
        'Declared': '', 'Owner': ':1.999', 'UID': 0, 'PID': 0, 'AppId': '', 'AppIdSource': 'none',
        'Created': now_us,
    }
    defaults.update({str(k): v for k, v in props.items()})
    path = _path(mapping_id)
    self.AddObject(path, MAPPING, _typed(defaults), [])
    return dbus.ObjectPath(path)


@dbus.service.method(MOCK_IFACE, in_signature='ua{sv}', out_signature='')
def AnnounceMapping(self, mapping_id, props):
    obj = _object(mapping_id)
    obj.props[MAPPING].update(_typed(props))
    self.EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesAdded', 'oa{sa{sv}}',
                    [dbus.ObjectPath(obj.path), dbus.Dictionary(obj.props, signature='sa{sv}')])


@dbus.service.method(MOCK_IFACE, in_signature='ua{sv}', out_signature='')
def UpdateMapping(self, mapping_id, props):
    obj = _object(mapping_id)
    typed = _typed(props)
    obj.props[MAPPING].update(typed)
    obj.EmitSignal(dbus.PROPERTIES_IFACE, 'PropertiesChanged', 'sa{sv}as',
                   [MAPPING, typed, dbus.Array([], signature='s')])


@dbus.service.method(MOCK_IFACE, in_signature='u', out_signature='')
def AddOtherInterface(self, mapping_id):
    obj = _object(mapping_id)
    obj.props[OTHER] = dbus.Dictionary({'Something': dbus.String('there', variant_level=1)}, signature='sv')


@dbus.service.method(MOCK_IFACE, in_signature='u', out_signature='')
def WithdrawMapping(self, mapping_id):
    obj = _object(mapping_id)
    self.EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesRemoved', 'oas',
                    [dbus.ObjectPath(obj.path), dbus.Array([MAPPING], signature='s')])
