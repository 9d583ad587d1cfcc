#!/usr/bin/python3
"""What the testbed's Open vSwitch host (host 6) needs from an hnvswitch policy:
the OpenFlow rules of its br-int and its VM's static neighbors.

    ovs_peer.py flows POLICY VSID PA VM_MAC VM_CA VM_OFPORT GRE_OFPORT
    ovs_peer.py neigh POLICY VSID PA

POLICY is one of the testbed's hnvswitch policies (every host carries the same
lookup records); VSID the tenant's virtual subnet, PA host 6's provider
address (records at that PA are the OVS host's own VM and are skipped).

br-int is an NVGRE host in OpenFlow, with the lookup records of VSID as its
policy (GRE port options:key=flow options:remote_ip=flow):
  table 0  from the VM port: only the VM's own MAC and CA, IPv4 (ARP from the VM
           is dropped: its neighbors are static, as policy would give them)
           -> table 1
           from the GRE port: key VSID<<8 in the upper 24 bits, any FlowID in
           the low 8 (tun_id=KEY/0xffffff00), outer source = the record's PA,
           inner source = the record's MAC and CA, inner destination = the VM's
           MAC -> the VM port (HNV's PA/CA check, done by OVS)
  table 1  (record MAC, record CA) -> tun_id = VSID<<8 (FlowID 0), tun_dst =
           the record's PA, out the GRE port
  anything else is dropped (table 0 and 1 priority 0).

`neigh` prints "CA MAC" per record of VSID that is not on PA.
Only /usr/bin/python3's standard library is used (tomllib, Python >= 3.11).
"""
import sys
import tomllib


def remote_records(path, vsid, pa):
    """The lookup records of VSID that live on other hosts, sorted by CA."""
    with open(path, "rb") as f:
        policy = tomllib.load(f)
    recs = [r for r in policy.get("lookup", []) if r["vsid"] == vsid and r["pa"] != pa and ":" not in r["ca"]]
    return sorted(recs, key=lambda r: tuple(int(x) for x in r["ca"].split(".")))


def flows(recs, vsid, mac, ca, vm, gre):
    key = vsid << 8
    out = [
        "table=0,priority=0,actions=drop",
        f"table=0,priority=100,in_port={vm},dl_src={mac},ip,nw_src={ca},actions=goto_table:1",
        "table=1,priority=0,actions=drop",
    ]
    for r in recs:
        rmac = r["mac"].lower()
        out.append(
            f"table=0,priority=100,in_port={gre},tun_id={key:#x}/0xffffff00,tun_src={r['pa']},"
            f"dl_src={rmac},dl_dst={mac},ip,nw_src={r['ca']},actions=output:{vm}"
        )
        out.append(
            f"table=1,priority=100,dl_dst={rmac},ip,nw_dst={r['ca']},"
            f"actions=set_field:{key:#x}->tun_id,set_field:{r['pa']}->tun_dst,output:{gre}"
        )
    return out


def main(argv):
    if len(argv) == 8 and argv[0] == "flows":
        _, path, vsid, pa, mac, ca, vm, gre = argv
        print("\n".join(flows(remote_records(path, int(vsid), pa), int(vsid), mac.lower(), ca, int(vm), int(gre))))
        return 0
    if len(argv) == 4 and argv[0] == "neigh":
        _, path, vsid, pa = argv
        for r in remote_records(path, int(vsid), pa):
            print(r["ca"], r["mac"].lower())
        return 0
    print("usage:\n" + __doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
