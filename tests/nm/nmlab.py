#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""nmlab - Debian's real NetworkManager for pcpd's tests, in network namespaces.

    <id>-c  (client)  c0   <- NetworkManager (dhclient backend) + a private system bus
       | veth
    <id>-r  (router)  lan0 192.168.77.1/24  fd77:77:77::1/64   default gateway, dnsmasq
                           192.168.77.5     fd77:77:77::5      PCP server 1 (not the gateway)
                           192.168.77.6     fd77:77:77::6      PCP server 2
    dnsmasq: DHCPv4 (option 158), RAs with the M flag, DHCPv6 (option 86).

Every run has its own names (pcpnm-<pid>-<random>-{c,r}) and state directory
(/tmp/pcpnm/<id>, PCPNM_BASE to move it; not under /run, which NetworkManager gets as a
tmpfs). NetworkManager runs unmodified with no udev and no
systemd: `ip netns exec` gives it a private mount namespace where /sys is read-only (NM then
takes every link as initialised), /run is a tmpfs, and /etc/NetworkManager,
/var/lib/NetworkManager, /run/NetworkManager and /run/dbus are this run's directories. The
host's NetworkManager, /run/dbus and files are never touched. Everything is stopped by PID or
by the exact namespace (`ip netns pids`), also by a watchdog when the owner dies.

Use from Python (the wiring step's tests):

    import nmlab
    with nmlab.NMLab() as lab:              # up(); down() on exit
        lab.bus_address                     # DBUS_SYSTEM_BUS_ADDRESS for pcpd and libnm
        lab.client_popen([pcpd, ...])       # a process in the client namespace, on that bus
        lab.set_options(v4=[[nmlab.PCP1_V4], [nmlab.PCP2_V4]], v6=[[nmlab.PCP2_V6]])
        lab.renew(4); lab.renew(6)          # DHCP starts over now (see renew())
        lab.reconnect()                     # new DHCP4Config/DHCP6Config objects
        lab.stop_nm(); lab.start_nm()       # NetworkManager leaves the bus and comes back
        lab.router_popen([...])             # e.g. pcp-refserver --listen 192.168.77.5

or from a shell: `nmlab.py run [--knobs] -- CMD ARGS` (CMD gets PCPNM_* in its environment),
`nmlab.py up` / `nmlab.py down DIR` / `nmlab.py reap`.

A missing prerequisite (not root, a command not installed) is a skip (exit 77) on a
developer machine and a failure with CI=true.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SELF = os.path.abspath(__file__)
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "data", "networkmanager"))
PY = "/usr/bin/python3"
SKIP = 77
# not under /run: NetworkManager gets a tmpfs there, which would hide it
BASE = os.environ.get("PCPNM_BASE", "/tmp/pcpnm")
PREFIX = "pcpnm"

GW4, GW6 = "192.168.77.1", "fd77:77:77::1"
PCP1_V4, PCP1_V6 = "192.168.77.5", "fd77:77:77::5"
PCP2_V4, PCP2_V6 = "192.168.77.6", "fd77:77:77::6"
IFACE = "c0"
CONN = "pcpnm-c0"
CONN_UUID = "70636e6d-0000-4000-8000-000000000c00"
NM_BIN = "/usr/sbin/NetworkManager"
DHCLIENT = "/sbin/dhclient"


def unix_socket_listening(path):
    """True once the stream socket at path accepts connections: its file appears at
    bind(), before listen(), and a client that connects in between is refused."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def log(msg):
    print(f"[nmlab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Missing(Exception):
    """A prerequisite is missing: a skip on a developer machine, a failure in CI."""


def exit_missing(reason):
    if os.environ.get("CI") == "true":
        print(f"nmlab: FAIL: prerequisite missing in CI: {reason}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"nmlab: SKIP: {reason}", file=sys.stderr, flush=True)
    sys.exit(SKIP)


def check_prerequisites():
    if os.geteuid() != 0:
        raise Missing("NetworkManager in a namespace needs root")
    for cmd in ("ip", "dnsmasq", "nmcli", "dbus-daemon", "unshare", "mount", "setsid"):
        if shutil.which(cmd) is None:
            raise Missing(f"{cmd} is not installed (scripts/install-deps.sh)")
    for path in (NM_BIN, DHCLIENT):
        if not os.access(path, os.X_OK):
            raise Missing(f"{path} is not installed (scripts/install-deps.sh: network-manager, isc-dhcp-client)")


# ---- processes, by PID and start time ----------------------------------------------------

def pid_start(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_running(pid, start=None):
    """Alive and not a zombie (and the same process, when its start time is given)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and (start is None or fields[19] == start)


def wait_gone(pid, start, seconds):
    end = time.monotonic() + seconds
    while pid_running(pid, start):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def kill_pid(pid, start, sig=signal.SIGTERM, seconds=5.0):
    """Stops one process of ours: signal, wait, SIGKILL. Only if it is still that process."""
    if not pid or not pid_running(pid, start):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if not wait_gone(pid, start, seconds):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid, start, 2.0)


def ns_exists(name):
    return os.path.exists(f"/run/netns/{name}")


def ns_pids(name):
    r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []


def run(argv, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


# ---- teardown, shared by down(), the watchdog and reap ------------------------------------

def teardown_dir(run_dir, keep=False):
    """Stops everything a run started and deletes its namespaces. True if nothing is left."""
    try:
        with open(os.path.join(run_dir, "state.json")) as f:
            st = json.load(f)
    except (OSError, ValueError):
        st = {}
    # NetworkManager first, by PID: it stops its dhclients itself (else they are killed
    # below with the rest of the namespace)
    procs = st.get("procs", {})
    for name in sorted(procs, key=lambda n: n != "nm"):
        kill_pid(procs[name].get("pid"), procs[name].get("start"), signal.SIGTERM, 5.0)
    namespaces = [n for n in (st.get("ns_c"), st.get("ns_r")) if n]
    for attempt in range(3):
        pids = [p for n in namespaces if ns_exists(n) for p in ns_pids(n)]
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGTERM if attempt == 0 else signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3 if attempt == 0 else 0.1)
    left = []
    for n in namespaces:
        if ns_exists(n):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        if ns_exists(n):
            left.append(n)
    if left:
        log(f"TEARDOWN FAILED: namespaces still present: {' '.join(left)}")
        return False
    if keep or os.environ.get("PCPNM_KEEP"):
        log(f"logs kept in {run_dir} (PCPNM_KEEP)")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return True


def owner_alive(st):
    return pid_running(st.get("owner"), st.get("owner_start"))


def reap():
    """Tears down runs whose owner died, and namespaces of ours that no run owns."""
    os.makedirs(BASE, exist_ok=True)
    for d in sorted(os.listdir(BASE)):
        path = os.path.join(BASE, d)
        try:
            with open(os.path.join(path, "state.json")) as f:
                st = json.load(f)
        except (OSError, ValueError):
            continue
        if st.get("owner") and not owner_alive(st):
            log(f"reaping leftover run {path} (owner {st['owner']} gone)")
            teardown_dir(path)
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) != 4 or parts[0] != PREFIX or parts[3] not in ("c", "r") or not parts[1].isdigit():
            continue
        run_id = "-".join(parts[:3])
        if os.path.isdir(os.path.join(BASE, run_id)):
            continue  # a run being built writes its directory before its namespaces
        log(f"deleting orphan namespace {name}")
        for p in ns_pids(name):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def watch(run_dir):
    """The watchdog: tears the run down when its owner dies without doing so."""
    while True:
        try:
            with open(os.path.join(run_dir, "state.json")) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return  # torn down
        if not owner_alive(st):
            log(f"watchdog: owner {st.get('owner')} of {run_dir} died, tearing down")
            teardown_dir(run_dir)
            return
        time.sleep(0.5)


# ---- the lab ------------------------------------------------------------------------------

def dnsmasq_opts(v4, v6):
    """dnsmasq dhcp-option lines: v4 = servers, each a list of IPv4 addresses (RFC 7291 §4:
    List-Length then the addresses, one list per server, in one option); v6 = servers, each
    a list of IPv6 addresses (one option 86 per server)."""
    lines4, lines6 = [], []
    if v4:
        octets = []
        for server in v4:
            octets.append(4 * len(server))
            for a in server:
                octets += [int(x) for x in a.split(".")]
        lines4.append(":".join(f"{o:02x}" for o in octets))
    for server in v6 or []:
        lines6.append("option6:86," + ",".join(f"[{a}]" for a in server))
    return lines4, lines6


class NMLab:
    def __init__(self, v4=((PCP1_V4,),), v6=((PCP1_V6,),), ipv6_method="auto", define_options=True,
                 force158=False, backend="dhclient", t1=10, lease="2m", log_level="DEBUG", dhcp6="dnsmasq",
                 bus_policy=None):
        """v4, v6: the PCP servers served, each a list of addresses. dhcp6: "dnsmasq", or
        "mini" (tests/nm/dhcp6-server.py: one option 86 per server, which dnsmasq cannot
        send; no RAs, so the connection uses ipv6.method=dhcp)."""
        self.v4 = [list(s) for s in v4] if v4 else []
        self.v6 = [list(s) for s in v6] if v6 else []
        self.dhcp6 = dhcp6
        # a bus policy file to include (pcpd's, from the source tree: not installed)
        self.bus_policy = bus_policy
        self.ipv6_method = "dhcp" if dhcp6 == "mini" and ipv6_method != "disabled" else ipv6_method
        self.define_options = define_options
        self.force158 = force158
        self.backend = backend
        self.t1 = t1
        self.lease = lease
        self.log_level = log_level
        self.run_dir = None
        self.ns_c = self.ns_r = None
        self.state = {}
        self.popens = []
        self.timings = {}
        self._dhcp_timeout = 45

    # -- state --
    def _save(self):
        tmp = os.path.join(self.run_dir, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.replace(tmp, os.path.join(self.run_dir, "state.json"))

    def _track(self, name, popen):
        self.popens.append(popen)
        self.state.setdefault("procs", {})[name] = {"pid": popen.pid, "start": pid_start(popen.pid)}
        self._save()

    def _untrack(self, name):
        p = self.state.get("procs", {}).pop(name, None)
        self._save()
        return p

    @property
    def sock(self):
        return os.path.join(self.run_dir, "dbus", "system_bus_socket")

    @property
    def bus_address(self):
        return f"unix:path={self.sock}"

    def env(self):
        """What a test or pcpd needs to know about the lab (also exported by `run`)."""
        return {
            "PCPNM_RUN": self.run_dir, "PCPNM_NS_CLIENT": self.ns_c, "PCPNM_NS_ROUTER": self.ns_r,
            "PCPNM_BUS": self.bus_address, "PCPNM_IFACE": IFACE, "PCPNM_CONNECTION": CONN,
            "PCPNM_GATEWAY4": GW4, "PCPNM_GATEWAY6": GW6,
            "PCPNM_PCP1_V4": PCP1_V4, "PCPNM_PCP1_V6": PCP1_V6,
            "PCPNM_PCP2_V4": PCP2_V4, "PCPNM_PCP2_V6": PCP2_V6,
        }

    # -- building --
    def _write_configs(self):
        r = self.run_dir
        for d in ("dbus", "nm/etc/system-connections", "nm/lib", "nm/run", "nm/empty", "nm/conf.d"):
            os.makedirs(os.path.join(r, d), exist_ok=True)
        os.chmod(os.path.join(r, "nm/lib"), 0o700)
        # a system-like bus: the default policy of /usr/share/dbus-1/system.conf (with
        # <allow user="*"/>: unprivileged clients such as pcpd's own user may connect) and
        # the installed services' policies, NetworkManager's among them. No <servicedir>:
        # nothing is ever bus-activated.
        with open(os.path.join(r, "dbus/system.conf"), "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={self.sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  {f"<include>{self.bus_policy}</include>" if self.bus_policy else ""}
</busconfig>
""")
        # nothing that touches the host: no DNS, no hostname, only c0 managed;
        # root-only: everyone may read, only root may change (as on a host with polkit)
        with open(os.path.join(r, "nm/NetworkManager.conf"), "w") as f:
            f.write(f"""[main]
plugins=keyfile
dns=none
rc-manager=unmanaged
systemd-resolved=false
hostname-mode=none
no-auto-default=*
auth-polkit=root-only

[keyfile]
unmanaged-devices=except:interface-name:{IFACE}

[logging]
level={self.log_level}
domains=ALL

[connectivity]
enabled=false
""")
        # what data/networkmanager/ ships: the conf.d snippet that picks dhclient (else NM
        # runs its internal client), the option definitions NM reads from /etc/NetworkManager
        if self.backend == "dhclient":
            shutil.copy(os.path.join(DATA, "90-pcpd-dhcp.conf"), os.path.join(r, "nm/conf.d"))
        if self.define_options:
            for name in ("dhclient.conf", "dhclient6.conf"):
                shutil.copy(os.path.join(DATA, name), os.path.join(r, "nm/etc", name))
        path = os.path.join(r, f"nm/etc/system-connections/{CONN}.nmconnection")
        with open(path, "w") as f:
            f.write(f"""[connection]
id={CONN}
uuid={CONN_UUID}
type=ethernet
interface-name={IFACE}
autoconnect=true

[ethernet]

[ipv4]
method=auto

[ipv6]
method={self.ipv6_method}
addr-gen-mode=eui64
""")
        os.chmod(path, 0o600)
        with open(os.path.join(r, "nm/resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\n")
        with open(os.path.join(r, "nm/hostname"), "w") as f:
            f.write("pcpnm-client\n")
        # run inside `ip netns exec NS unshare --uts`: ip netns exec made a private, rslave
        # mount namespace; what is mounted here stays here
        with open(os.path.join(r, "nm-start.sh"), "w") as f:
            f.write(f"""#!/bin/sh
set -e
R={r}
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] || {{ echo "nmlab: not in a netns, refusing" >&2; exit 1; }}
# NM 1.42 uses udev only if /sys is writable (nm_linux_platform_new()): read-only, every
# link is initialised at once, as in a container
mount -o remount,bind,ro /sys
mount -t tmpfs -o mode=0755,size=16m pcpnm-run /run
mkdir -p /run/NetworkManager /run/dbus
mount --bind $R/nm/run /run/NetworkManager
mount --bind $R/dbus /run/dbus
mount --bind $R/nm/etc /etc/NetworkManager
mount --bind $R/nm/lib /var/lib/NetworkManager
[ -e /etc/resolv.conf ] && mount --bind $R/nm/resolv.conf /etc/resolv.conf
[ -e /etc/hostname ] && mount --bind $R/nm/hostname /etc/hostname
hostname pcpnm-client
# NM would hand DBUS_SYSTEM_BUS_ADDRESS to dhclient, which puts it in the lease as an option
unset DBUS_SYSTEM_BUS_ADDRESS
exec {NM_BIN} --debug --config=$R/nm/NetworkManager.conf --config-dir=$R/nm/conf.d \\
    --system-config-dir=$R/nm/empty --pid-file=/run/NetworkManager/NetworkManager.pid
""")
        os.chmod(os.path.join(r, "nm-start.sh"), 0o755)
        lines = [
            "port=0", "interface=lan0", "bind-interfaces", "log-facility=-", "log-dhcp",
            "dhcp-authoritative", f"dhcp-leasefile={r}/dnsmasq.leases",
            f"dhcp-range=192.168.77.100,192.168.77.150,{self.lease}",
            f"dhcp-option=option:router,{GW4}",
            # the PCP options live in the opts file: SIGHUP re-reads it (set_options())
            f"dhcp-optsfile={r}/dnsmasq.opts", "no-ping",
        ]
        if self.dhcp6 == "dnsmasq":
            # RAs with the M flag: ipv6.method=auto starts DHCPv6 only after one
            lines += ["enable-ra", "ra-param=lan0,10", f"dhcp-range=fd77:77:77::100,fd77:77:77::1ff,64,{self.lease}"]
        if self.t1:
            lines += [f"dhcp-option=option:T1,{self.t1}", f"dhcp-option=option:T2,{self.t1 * 3 // 2}"]
        with open(os.path.join(r, "dnsmasq.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self._write_opts()

    def _write_opts(self):
        lines4, lines6 = dnsmasq_opts(self.v4, self.v6)
        if self.dhcp6 == "mini":
            tmp = os.path.join(self.run_dir, "dhcp6.json.tmp")
            with open(tmp, "w") as f:
                json.dump({"pcp_servers": self.v6, "address": "fd77:77:77::100"}, f)
            os.replace(tmp, os.path.join(self.run_dir, "dhcp6.json"))
            lines6 = []
        conf = os.path.join(self.run_dir, "dnsmasq.conf")
        with open(conf) as f:
            main = [l for l in f.read().splitlines() if not l.startswith("dhcp-option-force=158,")]
        opts = []
        for l in lines4:
            # optsfile lines have no "force" form: a forced option lives in the main file
            if self.force158:
                main.append("dhcp-option-force=158," + l)
            else:
                opts.append("158," + l)
        opts += lines6
        with open(conf, "w") as f:
            f.write("\n".join(main) + "\n")
        with open(os.path.join(self.run_dir, "dnsmasq.opts"), "w") as f:
            f.write("\n".join(opts) + ("\n" if opts else ""))

    def _spawn(self, name, argv, logfile):
        out = open(os.path.join(self.run_dir, logfile), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        out.close()
        self._track(name, p)
        return p

    def _start_dnsmasq(self):
        r = run(["dnsmasq", "--test", "-C", os.path.join(self.run_dir, "dnsmasq.conf")], check=False)
        if r.returncode != 0:
            raise RuntimeError(f"dnsmasq refuses its configuration: {r.stderr.strip()}")
        self._spawn("dnsmasq", ["ip", "netns", "exec", self.ns_r, "dnsmasq", "--no-daemon", "-C",
                                os.path.join(self.run_dir, "dnsmasq.conf")], "dnsmasq.log")

    def _start_nm(self):
        self._spawn("nm", ["ip", "netns", "exec", self.ns_c, "unshare", "--uts",
                           os.path.join(self.run_dir, "nm-start.sh")], "nm.log")

    def up(self, timeout=40):
        check_prerequisites()
        t0 = time.monotonic()
        os.makedirs(BASE, exist_ok=True)
        reap()
        run_id = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
        self.run_dir = os.path.join(BASE, run_id)
        os.mkdir(self.run_dir, 0o755)
        self.ns_c, self.ns_r = f"{run_id}-c", f"{run_id}-r"
        me = os.getpid()
        self.state = {"id": run_id, "owner": me, "owner_start": pid_start(me),
                      "ns_c": self.ns_c, "ns_r": self.ns_r, "procs": {}}
        self._save()
        # before anything is created: an owner killed in the middle is covered too
        w = subprocess.Popen([PY, SELF, "_watch", self.run_dir], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(BASE, "watchdog.log"), "ab"),
                             start_new_session=True)
        self.state["watchdog"] = {"pid": w.pid, "start": pid_start(w.pid)}
        self._watchdog = w
        self._save()
        try:
            self._build(t0, timeout)
        except BaseException:
            self.dump_logs()
            self.down()
            raise
        return self

    def _build(self, t0, timeout):
        self._write_configs()
        for n in (self.ns_c, self.ns_r):
            run(["ip", "netns", "add", n])
            # no DAD: addresses usable at once (v6 options in ~1 s instead of ~4 s)
            run(["ip", "netns", "exec", n, "sh", "-c",
                 "echo 0 >/proc/sys/net/ipv6/conf/all/accept_dad; echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad"])
            run(["ip", "-n", n, "link", "set", "lo", "up"])
        # created directly inside the namespaces: no end ever exists in the host's
        run(["ip", "link", "add", IFACE, "netns", self.ns_c, "type", "veth", "peer", "name", "lan0",
             "netns", self.ns_r])
        for a in (f"{GW4}/24", f"{PCP1_V4}/24", f"{PCP2_V4}/24"):
            run(["ip", "-n", self.ns_r, "addr", "add", a, "dev", "lan0"])
        for a in (f"{GW6}/64", f"{PCP1_V6}/64", f"{PCP2_V6}/64"):
            run(["ip", "-n", self.ns_r, "addr", "add", a, "dev", "lan0", "nodad"])
        run(["ip", "-n", self.ns_r, "link", "set", "lan0", "up"])
        self.timings["namespaces"] = time.monotonic() - t0
        # the private system bus (its socket under the run directory)
        self._spawn("dbus", ["ip", "netns", "exec", self.ns_c, "dbus-daemon",
                             f"--config-file={self.run_dir}/dbus/system.conf", "--nofork", "--nopidfile",
                             "--nosyslog"], "dbus.log")
        self._wait(lambda: unix_socket_listening(self.sock), 60, "the private bus socket to accept connections")
        self.timings["bus"] = time.monotonic() - t0
        self._start_dnsmasq()
        if self.dhcp6 == "mini":
            self._spawn("dhcp6", ["ip", "netns", "exec", self.ns_r, PY, os.path.join(HERE, "dhcp6-server.py"),
                                  "lan0", os.path.join(self.run_dir, "dhcp6.json")], "dhcp6.log")
            self._wait(lambda: "ready" in open(os.path.join(self.run_dir, "dhcp6.log")).read(), 10,
                       "the DHCPv6 server to start")
        self._start_nm()
        self.wait_nm_running(30)
        self.timings["nm"] = time.monotonic() - t0
        want6 = self.ipv6_method != "disabled" and self.backend == "dhclient" and self.define_options and self.v6
        want4 = bool(self.v4) and self.backend == "dhclient" and (self.define_options or self.force158)
        if want4:
            self._wait(lambda: self.option(4) is not None, timeout, "the DHCPv4 PCP option in NetworkManager")
            self.timings["v4_option"] = time.monotonic() - t0
        if want6:
            self._wait(lambda: self.option(6) is not None, timeout, "the DHCPv6 PCP option in NetworkManager")
            self.timings["v6_option"] = time.monotonic() - t0
        if not want4 and not want6:
            self._wait(lambda: self.device_state() == "connected", timeout, f"{IFACE} connected")
        log("up in %.2fs (%s)" % (time.monotonic() - t0,
                                  ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())))

    def _wait(self, cond, seconds, what):
        """Waits for a state with a generous cap; the failure says what and how long."""
        end = time.monotonic() + seconds
        while True:
            try:
                if cond():
                    return
            except Exception:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"nmlab: waited {seconds}s for {what}")
            for name in ("nm", "dnsmasq", "dbus", "dhcp6"):
                p = self.state.get("procs", {}).get(name)
                if p and not pid_running(p["pid"], p["start"]):
                    raise RuntimeError(f"nmlab: {name} died while waiting for {what}")
            time.sleep(0.05)

    def down(self):
        if self.run_dir is None:
            return True
        ok = teardown_dir(self.run_dir)
        for p in self.popens:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        w = self.state.get("watchdog")
        if w:
            kill_pid(w["pid"], w["start"])
            try:
                self._watchdog.wait(timeout=5)
            except (subprocess.TimeoutExpired, AttributeError):
                pass
        self.run_dir = None
        return ok

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.dump_logs()
        self.down()

    def dump_logs(self, lines=25):
        if not self.run_dir:
            return
        for name in ("nm.log", "dnsmasq.log", "dhcp6.log", "dbus.log"):
            path = os.path.join(self.run_dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-lines:]
                log(f"---- last lines of {name}:\n" + "".join(tail))

    # -- NetworkManager through nmcli (the harness's own view; tests use libnm) --
    def nmcli(self, *args, check=True):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address)
        return run(["nmcli", *args], check=check, env=env)

    def option(self, family):
        """The PCP option's value as NetworkManager shows it (None: absent)."""
        keys = ("pcp_server", "unknown_158") if family == 4 else ("dhcp6_pcp_server",)
        r = self.nmcli("-t", "-f", f"DHCP{family}.OPTION", "device", "show", IFACE, check=False)
        for line in r.stdout.splitlines():
            _, _, kv = line.partition(":")
            k, _, v = kv.partition(" = ")
            if k in keys:
                return v.replace("\\:", ":")
        return None

    def device_state(self):
        r = self.nmcli("-t", "-f", "GENERAL.STATE", "device", "show", IFACE, check=False)
        return r.stdout.strip().split(":", 1)[-1].split(" ")[-1].strip("()") if r.returncode == 0 else None

    def wait_nm_running(self, seconds=30):
        self._wait(lambda: self.nmcli("-t", "-f", "RUNNING", "general", check=False).stdout.strip() == "running",
                   seconds, "NetworkManager on the private bus")

    def wait_option(self, family, value, seconds=30):
        self._wait(lambda: self.option(family) == value, seconds,
                   f"DHCPv{family} PCP option {value!r} (last seen {self.option(family)!r})")

    # -- changes --
    def set_options(self, v4=None, v6=None):
        """What dnsmasq serves from now on (None: unchanged; [] : no option). Clients see it
        at their next renewal (T1) or after renew()."""
        if v4 is not None:
            self.v4 = [list(s) for s in v4]
        if v6 is not None:
            self.v6 = [list(s) for s in v6]
        self._write_opts()
        p = self.state["procs"].get("dnsmasq")
        if self.force158:
            kill_pid(p["pid"], p["start"])
            self._untrack("dnsmasq")
            self._start_dnsmasq()
        elif p and pid_running(p["pid"], p["start"]):
            os.kill(p["pid"], signal.SIGHUP)  # re-reads dhcp-optsfile
        else:
            raise RuntimeError("nmlab: dnsmasq is not running")
        p = self.state["procs"].get("dhcp6")
        if p and pid_running(p["pid"], p["start"]):
            os.kill(p["pid"], signal.SIGHUP)  # re-reads dhcp6.json

    def _bump(self, prop):
        cur = self.nmcli("-g", prop, "connection", "show", CONN).stdout.strip()
        new = "46" if cur == "45" else "45"
        self.nmcli("device", "modify", IFACE, prop, new)

    def renew(self, family=4):
        """Makes NetworkManager start DHCP over now.
        4: reapply a changed ipv4.dhcp-timeout: dhclient restarts (REBOOT) and the SAME
           DHCP4Config object gets the new options (~0.2-0.4 s).
        6: dhclient -6 with its old lease only CONFIRMs and reports the OLD options until its
           RENEW at T1 (60 s): its lease file is removed first. With ipv6.method=auto a
           reapply stops DHCPv6 for good in NM 1.42, so it reconnects (new DHCP4Config and
           DHCP6Config objects); with method=dhcp it reapplies ipv6.dhcp-timeout."""
        if family in (4, "all"):
            self._bump("ipv4.dhcp-timeout")
        if family in (6, "all"):
            libdir = os.path.join(self.run_dir, "nm/lib")
            for f in os.listdir(libdir):
                if f.startswith("dhclient6-") and f.endswith(".lease"):
                    os.unlink(os.path.join(libdir, f))
            if self.ipv6_method == "auto":
                self.reconnect()
            else:
                self._bump("ipv6.dhcp-timeout")

    def reconnect(self):
        """`nmcli connection up`: the device's Dhcp4Config/Dhcp6Config go to "/", then to new
        objects whose Options are empty at first and filled in later."""
        self.nmcli("connection", "up", CONN)

    def link_down(self):
        run(["ip", "-n", self.ns_r, "link", "set", "lan0", "down"])

    def link_up(self):
        run(["ip", "-n", self.ns_r, "link", "set", "lan0", "up"])

    def stop_nm(self, sig=signal.SIGTERM):
        """NetworkManager leaves the bus (SIGTERM: a clean exit that leaves c0 configured;
        SIGKILL: a crash)."""
        p = self._untrack("nm")
        if p:
            kill_pid(p["pid"], p["start"], sig, 10.0)

    def start_nm(self, seconds=30):
        """NetworkManager comes back (same state directories) and takes c0 over again."""
        self._start_nm()
        self.wait_nm_running(seconds)

    # -- processes in the namespaces --
    def client_popen(self, argv, **kw):
        """A process in the client namespace with DBUS_SYSTEM_BUS_ADDRESS set to the private
        bus, which is also bind-mounted on /run/dbus (in that process's own mount namespace)
        for programs that ignore the variable. Stopped with the lab."""
        wrap = ["ip", "netns", "exec", self.ns_c, "env", f"DBUS_SYSTEM_BUS_ADDRESS={self.bus_address}",
                f"PCPNM_RUN={self.run_dir}", "sh", "-c",
                'if [ -d /run/dbus ]; then mount --bind "$PCPNM_RUN/dbus" /run/dbus; fi; exec "$@"', "pcpnm-exec"]
        p = subprocess.Popen(wrap + list(argv), **kw)
        self.popens.append(p)
        return p

    def router_popen(self, argv, **kw):
        """A process in the router namespace (e.g. a PCP server on PCP1_V4/PCP1_V6)."""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns_r] + list(argv), **kw)
        self.popens.append(p)
        return p


# ---- command line -------------------------------------------------------------------------

def parse_knobs(args):
    kw, rest = {}, list(args)
    while rest and rest[0] != "--":
        a = rest.pop(0)
        if a == "--ipv6-method":
            kw["ipv6_method"] = rest.pop(0)
        elif a == "--no-definitions":
            kw["define_options"] = False
        elif a == "--force158":
            kw["force158"] = True
        elif a == "--internal":
            kw["backend"] = "internal"
        else:
            raise SystemExit(f"nmlab: unknown option {a}")
    if rest and rest[0] == "--":
        rest.pop(0)
    return kw, rest


def main(argv):
    verb = argv[1] if len(argv) > 1 else ""
    if verb == "_watch":
        watch(argv[2])
        return 0
    if verb == "reap":
        reap()
        return 0
    if verb == "down":
        return 0 if teardown_dir(argv[2]) else 1
    if verb in ("run", "up"):
        kw, cmd = parse_knobs(argv[2:])
        lab = NMLab(**kw)
        try:
            lab.up()
        except Missing as e:
            exit_missing(str(e))
        if verb == "up":
            # a run that stays: nobody owns it (the watchdog must not end it)
            lab.state["owner"] = None
            lab._save()
            kill_pid(lab.state["watchdog"]["pid"], lab.state["watchdog"]["start"])
            for k, v in lab.env().items():
                print(f"{k}={v}")
            return 0
        try:
            rc = subprocess.call(cmd, env=dict(os.environ, **lab.env()))
        finally:
            lab.down()
        return rc
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
