#!/usr/bin/env python3
"""A userspace stand-in for Linux gretap, for kernels built without GRE.

    gre.py LOCAL REMOTE KEY TAPNAME

Creates tap TAPNAME and bridges it, frame for frame, to GRE over a raw IPv4
socket (protocol 47) with the semantics of
`ip link add TAPNAME type gretap local LOCAL remote REMOTE key KEY`:
  - sends: IPv4 (built by the kernel, which also does ARP for REMOTE) +
    GRE C=0 K=1 S=0 Ver=0, protocol 0x6558, key KEY, then the Ethernet frame;
  - accepts only GRE from REMOTE to LOCAL with exactly flags K, protocol
    0x6558 and the whole 32-bit key equal to KEY (so an NVGRE sender must put
    FlowID 0 in the low byte), like gretap's ikey match; everything else is
    counted and dropped.
Prints its counters on SIGUSR1 and when it stops (SIGTERM/SIGINT).
"""
import fcntl
import os
import select
import signal
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def main():
    local, remote, key, name = sys.argv[1], sys.argv[2], int(sys.argv[3], 0), sys.argv[4]
    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
    raw.bind((local, 0))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    hdr = struct.pack("!HHI", 0x2000, 0x6558, key)
    remote_b = socket.inet_aton(remote)
    c = {"encap": 0, "decap": 0, "bad_key": 0, "bad_hdr": 0, "bad_src": 0}
    stop = []
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.append(1))
    report = lambda *_: print("gre.py: " + " ".join(f"{k} {v}" for k, v in c.items()), flush=True)
    signal.signal(signal.SIGUSR1, report)
    print(f"gre.py: {name} local {local} remote {remote} key {key:#x}", flush=True)
    while not stop:
        try:
            ready, _, _ = select.select([tap, raw], [], [], 0.5)
        except InterruptedError:
            continue
        if tap in ready:
            frame = os.read(tap, 65535)
            try:
                raw.sendto(hdr + frame, (remote, 0))
                c["encap"] += 1
            except OSError:
                pass
        if raw in ready:
            pkt = raw.recv(65535)
            ihl = (pkt[0] & 15) * 4
            if pkt[12:16] != remote_b:
                c["bad_src"] += 1
                continue
            g = pkt[ihl:]
            if len(g) < 8 + 14:
                c["bad_hdr"] += 1
                continue
            flags, proto, k = struct.unpack("!HHI", g[:8])
            if flags != 0x2000 or proto != 0x6558:
                c["bad_hdr"] += 1
                continue
            if k != key:
                c["bad_key"] += 1
                continue
            try:
                os.write(tap, g[8:])
                c["decap"] += 1
            except OSError:
                pass
    report()


if __name__ == "__main__":
    main()
