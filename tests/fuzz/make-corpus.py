#!/usr/bin/env python3
"""Writes the seed corpora of the wire and engine targets in tests/fuzz/corpus/<target>/
(one small binary file per message; the other targets' seeds are captured or written by
hand: see README.md). The cap-* seeds are the miniupnpd 2.3.1 captures also used in
tests/unit/test-wire.c (see the comment there for how they were taken); the others are
the hand-written vectors of that file. Run from anywhere; rewrites the directories."""
import os
import pathlib
import shutil

Z12 = "00" * 12
C4 = "00000000000000000000ffffc0000221"
C6 = "20010db8000000000000000000000002"
ANY4 = "00000000000000000000ffff00000000"
EXT4 = "00000000000000000000ffffcb007107"
REM4 = "00000000000000000000ffffc6336409"
TP4 = "00000000000000000000ffffc0000242"
NA = "a1a2a3a4a5a6a7a8a9aaabac"
NB = "b1b2b3b4b5b6b7b8b9babbbc"
ANN_REQ = "02000000" "00000000" + C6
ANN_RSP = "02800000" "00000000" "0000002a" + Z12
MAP_REQ = "02010000" "00001c20" + C4 + NA + "06000000" "1f90" "0000" + ANY4
MAP_RSP = "02810000" "00001c20" "0000abcd" + Z12 + NA + "06000000" "1f90" "1f90" + EXT4
PEER_REQ = "02020000" "0000012c" + C4 + NB + "11000000" "13c4" "13c4" + ANY4 + "13c5" "0000" + REM4
PEER_RSP = "02820000" "0000012c" "00010000" + Z12 + NB + "11000000" "13c4" "9c40" + EXT4 + "13c5" "0000" + REM4
O_TP = "01000010" + TP4
O_PF = "02000000"
O_F4 = "03000014" "0078" "0000" "00000000000000000000ffffc6336400"
O_F6 = "03000014" "0030" "01bb" "20010db8000100000000000000000000"
O_DESC = "80000005" "636166c3a9" "000000"
O_P64Q = "8100000e" "000c" + "00" * 12 + "0000"
O_P64R = "81000016" "000c" "0064ff9b0000000000000000" "0001" "0018" "c6336400" "0000"
O_P64_40 = "8100000e" "0005" "20010db801" "00000000000000" "0000"
O_PS = "82000005" "0010" "1f90" "01" "000000"
O_UNK = "c8000003" "abcdef" "00"

CAP = {  # miniupnpd 2.3.1, 2026-11-24
    "announce-req": "020000000000000000000000000000000000ffffc0a84d02",
    "announce-rsp": "028000000000000000000004000000000000000000000000",
    "map-req": "020100000000025800000000000000000000ffffc0a84d020102030405060708090a0b0c060000001092109200000000000000000000ffff00000000",
    "map-rsp": "0281000000000258000000040000000000000000000000000102030405060708090a0b0c060000001092109200000000000000000000ffffc6144d01",
    "delete-badnonce-req": "020100000000000000000000000000000000ffffc0a84d02ffffffffffffffffffffffff060000001092000000000000000000000000ffff00000000",
    "delete-badnonce-rsp": "028100020000000000000005000000000000000000000000ffffffffffffffffffffffff060000001092000000000000000000000000ffffc6144d01",
    "delete-req": "020100000000000000000000000000000000ffffc0a84d020102030405060708090a0b0c060000001092000000000000000000000000ffff00000000",
    "delete-rsp": "0281000000000000000000050000000000000000000000000102030405060708090a0b0c060000001092000000000000000000000000ffffc6144d01",
    "delete-again-rsp": "028100080000001e000000060000000000000000000000000102030405060708090a0b0c060000001092000000000000000000000000ffffc6144d01",
    "v3-req": "0301000000000e1000000000000000000000ffffc0a84d020102030405060708090a0b0c060000001092000000000000000000000000ffff00000000",
    "v3-rsp": "0281000100000000000000060000000000000000000000000102030405060708090a0b0c060000000000000000000000000000000000ffff00000000",
    "peer-req": "0202000000000e1000000000000000000000ffffc0a84d022122232425262728292a2b2c060000000fa0000000000000000000000000ffff000000001388000000000000000000000000ffffc6144d02",
    "peer-rsp": "0282000000000e10000000060000000000000000000000002122232425262728292a2b2c060000000fa00fa000000000000000000000ffffc6144d011388000000000000000000000000ffffc6144d02",
    "unsupp-option-req": "0201000000000e1000000000000000000000ffffc0a84d020102030405060708090a0b0c060000001093000000000000000000000000ffff000000006300000400000000",
    "unsupp-option-rsp": "0281000500000000000000070000000000000000000000000102030405060708090a0b0c060000001093000000000000000000000000ffff000000006300000400000000",
    "third-party-req": "0201000000000e1000000000000000000000ffffc0a84d020102030405060708090a0b0c060000001094000000000000000000000000ffff000000000100001000000000000000000000ffffc0a84d32",
    "third-party-rsp": "0281000500000000000000070000000000000000000000000102030405060708090a0b0c060000001094000000000000000000000000ffff000000000100001000000000000000000000ffffc0a84d32",
    "filter-req": "0201000000000e1000000000000000000000ffffc0a84d020102030405060708090a0b0c060000001095000000000000000000000000ffff00000000030000140080000000000000000000000000ffffc6144d02",
    "filter-rsp": "0281000000000e10000000070000000000000000000000000102030405060708090a0b0c060000001095109500000000000000000000ffffc6144d01030000140080000000000000000000000000ffffc6144d02",
    "opcode5-rsp": "028500040000000000000008000000000000000000000000",
    "malformed-option-req": "020100000000025800000000000000000000ffffc0a84d021112131415161718191a1b1c1100000014e9000000000000000000000000ffff000000000200000080000009706370642d74657374000000",
    "malformed-option-rsp": "0281000600000000000000050000000000000000000000001112131415161718191a1b1c1100000014e9000000000000000000000000ffff000000000200000080000009706370642d74657374000000",
    "description-rsp": "02810000000002580000000e0000000000000000000000001112131415161718191a1b1c1100000014ea14ea00000000000000000000ffffc6144d018000000470637064",
    "optional-rsp": "02810000000002580000000f0000000000000000000000001112131415161718191a1b1c1100000014eb14eb00000000000000000000ffffc6144d01c8000004deadbeef",
    "cannot-provide-rsp": "0281000b000000000000000f0000000000000000000000001112131415161718191a1b1c0600000014ec14ec00000000000000000000ffffc6144d0902000000",
    "address-mismatch-rsp": "0281000c000000000000000f0000000000000000000000001112131415161718191a1b1c0600000014ed000000000000000000000000ffff00000000",
}
CAP_NATPMP = {
    "addr-req": "0000", "addr-rsp": "0080000000000010c6144d01",
    "udp-req": "000100000d050d050000012c", "udp-rsp": "00810000000000100d050d050000012c",
    "tcp-req": "000200000d060d0600000e10", "tcp-rsp": "00820000000000100d060d0600000e10",
    "udp-delete-req": "000100000d05000000000000", "udp-delete-rsp": "00810000000000150d05000000000000",
    "opcode5-req": "0005", "opcode5-rsp": "0085000500000015",
}

corpora = {
    "fuzz-pcp-response": {
        "announce": ANN_RSP, "map": MAP_RSP, "peer": PEER_RSP,
        "map-options": MAP_RSP + O_PF + O_F4 + O_F6 + O_DESC + O_P64R + O_PS + O_UNK,
        "peer-options": PEER_RSP + O_TP + O_DESC,
        "announce-prefix64": ANN_RSP + O_P64R + O_P64_40,
        "v1-unsupp-version": "01810001" "00000000" "00000007" + Z12,
        **{"cap-" + k: v for k, v in CAP.items() if k.endswith("-rsp")},
    },
    "fuzz-pcp-request": {
        "announce": ANN_REQ, "map": MAP_REQ, "peer": PEER_REQ,
        "map-options": MAP_REQ + O_TP + O_PF + O_F4 + O_F6 + O_DESC + O_P64Q + O_PS + O_UNK,
        "peer-options": PEER_REQ + O_TP + O_DESC,
        "announce-prefix64": ANN_REQ + O_P64Q,
        **{"cap-" + k: v for k, v in CAP.items() if k.endswith("-req")},
    },
    "fuzz-natpmp": {
        "unsupp-version": "0080000100000007",
        "unsupp-version-opcode0": "0000000100000007",
        "map-short-error": "0081000300000009",
        "map-error-full": "0082000400000009" "14e90000" "00000000",
        **{"cap-" + k: v for k, v in CAP_NATPMP.items()},
    },
}



# fuzz-engine: scripts of events (see tests/fuzz/fuzz-engine.c for the op codes)
def _add(flags=0, v6=False):
    # op 0: add a mapping (flags: bit0 PEER, bits1-2 protocol), internal port 8080,
    # suggested 0, lifetime 3600
    return bytes([0x80 if v6 else 0, flags, 0x1F, 0x90, 0, 0]) + (3600).to_bytes(4, "big")


def _echo(op=5, result=0, lifetime=3600, epoch=100, v6=False):
    # op 5: the last request as a response with this result, lifetime and epoch, an
    # assigned external 198.51.100.7:20000, no options
    return (bytes([op | (0x80 if v6 else 0), result]) + lifetime.to_bytes(4, "big") + epoch.to_bytes(4, "big")
            + bytes([1, 0x4E, 0x20]) + bytes.fromhex(EXT4[:-8] + "c6336407") + bytes([0]))


RUN_DUE, ICMP = bytes([3]), bytes([9, 0])
ENGINE = {
    "map-granted": _add() + _echo(),
    "map-renew": _add() + _echo() + RUN_DUE + _echo(epoch=2000) + RUN_DUE * 2,
    "map-error-then-ok": _add() + _echo(result=8, lifetime=30) + RUN_DUE + _echo(),
    "epoch-reset": _add() + _echo(epoch=5000) + bytes([2, 0, 0, 0x27, 0x10]) + _echo(epoch=1),
    "peer-v6": _add(1, v6=True) + bytes([9]) + _echo(v6=True),
    "announce": _add() + _echo() + bytes([8, 0]) + bytes(8) + bytes([0, 0]),
    "natpmp": _add() + bytes([4, 0, 0, 8]) + bytes.fromhex("0080000100000005") + RUN_DUE + _echo(),
    "delete": _add() + _echo() + bytes([1, 0]) + _echo(lifetime=0),
    "icmp": _add() + ICMP + RUN_DUE + bytes([9, 1]) + RUN_DUE * 2,
    # op 11: the server removed (its mappings with it) and added again
    "server-gone": _add() + _echo() + _add(v6=True) + bytes([11]) + RUN_DUE + _add() + RUN_DUE,
    # bit 6 of an op: the output is not pulled after it, only after a later op
    "late-drain": bytes([0x40]) + _add()[1:] + bytes([0x43]) + ICMP + bytes([0x49, 1]) + RUN_DUE + _echo(),
}
corpora["fuzz-engine"] = {k: v.hex() for k, v in ENGINE.items()}

root = pathlib.Path(__file__).resolve().parent / "corpus"
for target, seeds in corpora.items():
    d = root / target
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for name, hexdata in seeds.items():
        (d / name).write_bytes(bytes.fromhex(hexdata))
    print(f"{target}: {len(seeds)} seeds")
