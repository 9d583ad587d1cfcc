#!/usr/bin/python3
"""Reads an hnvswitch scenario policy (TOML) and prints what the OVS-DPDK peer
needs: its ports, the provider ARP entries and the OpenFlow rules of br-int.

  policy.py ports POLICY   -> "name role ofport devargs" per policy port
                              (uplink -> br-phy ofport 1; VM ports -> br-int 1..n)
  policy.py pa POLICY      -> "address prefix_len mac" of the local PA
  policy.py arp POLICY     -> "address mac" per provider neighbor
  policy.py flows POLICY   -> br-int rules (ovs-ofctl -O OpenFlow13 replace-flows)
  policy.py tunnel POLICY  -> "gre" or "vxlan": the tunnel port br-int needs (vxlan
                              when the policy's subnets have encap = "vxlan")
  policy.py rewrite POLICY OUT PORT=DEVARGS...
                           -> copy of POLICY with those ports' devargs replaced
                              (the verification runs: finite source, net_pcap tx_pcap sink)

br-int pipeline (gre0 = ofport 100, options:key=flow remote_ip=flow):
  table 0  VM port + its MAC -> metadata = VSID, table 1;
           gre0 + tun_id/0xffffff00 = VSID<<8 -> metadata = VSID, table 2
  table 1  (VSID, local VM MAC) -> output to that VM port   (same-host delivery)
           (VSID, remote CA) -> tun_id = VSID<<8, tun_dst = PA, output gre0 (encap)
  table 2  (VSID, VM MAC) -> output to that VM port          (after decap)
  everything else is dropped.
With encap = "vxlan" the tunnel port is vxlan0 (ofport 101, type=vxlan, UDP 4789,
options:key=flow remote_ip=flow) and tun_id is the VSID itself (the VNI).
Only /usr/bin/python3's standard library is used (tomllib, Python >= 3.11).
"""
import sys
import tomllib

GRE_OFPORT = 100
VXLAN_OFPORT = 101


def load(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def ports(p):
    """(name, role, ofport, devargs, vsid, mac) for each policy port."""
    out, n = [], 0
    for port in p["ports"]:
        if port["role"] == "uplink":
            out.append((port["name"], "uplink", 1, port["devargs"], None, None))
        else:
            n += 1
            out.append((port["name"], "vm", n, port["devargs"], port["vsid"], port["mac"].lower()))
    return out


def local_pas(p):
    return {pa["address"] for pa in p["host"]["provider_addresses"]}


def tunnel(p):
    """gre, or vxlan when any subnet of the policy is on VXLAN (the scenarios set all or none)."""
    return "vxlan" if any(s.get("encap") == "vxlan" for s in p.get("subnets", [])) else "gre"


def flows(p):
    vms = [x for x in ports(p) if x[1] == "vm"]
    pas = local_pas(p)
    rules = []
    vx = tunnel(p) == "vxlan"
    tport = VXLAN_OFPORT if vx else GRE_OFPORT

    def tun_id(vsid):
        return vsid if vx else vsid << 8
    for name, _, ofp, _, vsid, mac in vms:
        rules.append(f"table=0,priority=100,in_port={ofp},dl_src={mac},actions=write_metadata:{vsid},goto_table:1")
    for vsid in sorted({x[4] for x in vms}):
        mask = "/0xffffff" if vx else "/0xffffff00"
        rules.append(f"table=0,priority=100,in_port={tport},tun_id={tun_id(vsid):#x}{mask},actions=write_metadata:{vsid},goto_table:2")
    rules.append("table=0,priority=0,actions=drop")
    for name, _, ofp, _, vsid, mac in vms:
        rules.append(f"table=1,priority=200,metadata={vsid},dl_dst={mac},actions=output:{ofp}")
    for rec in p.get("lookup", []):
        if rec["pa"] in pas:
            continue  # a local CA: delivered by the rules above
        rules.append(
            f"table=1,priority=100,metadata={rec['vsid']},ip,nw_dst={rec['ca']},"
            f"actions=set_field:{tun_id(rec['vsid']):#x}->tun_id,set_field:{rec['pa']}->tun_dst,output:{tport}")
    rules.append("table=1,priority=0,actions=drop")
    for name, _, ofp, _, vsid, mac in vms:
        rules.append(f"table=2,priority=100,metadata={vsid},dl_dst={mac},actions=output:{ofp}")
    rules.append("table=2,priority=0,actions=drop")
    return rules


def rewrite(src, out, changes):
    """Replace the devargs line of each named port (a text edit: the file stays as written)."""
    p = load(src)
    with open(src) as f:
        text = f.read()
    for change in changes:
        name, devargs = change.split("=", 1)
        old = next(x["devargs"] for x in p["ports"] if x["name"] == name)
        line = f'devargs = "{old}"'
        if text.count(line) != 1:
            sys.exit(f"{src}: devargs of port {name} not found exactly once")
        text = text.replace(line, f'devargs = "{devargs}"')
    with open(out, "w") as f:
        f.write(text)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "rewrite":
        rewrite(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cmd, p = sys.argv[1], load(sys.argv[2])
    if cmd == "ports":
        for name, role, ofp, devargs, _, _ in ports(p):
            print(name, role, ofp, devargs)
    elif cmd == "pa":
        pa = p["host"]["provider_addresses"][0]
        print(pa["address"], pa["prefix_len"], pa["mac"].lower())
    elif cmd == "arp":
        for n in p["host"].get("neighbors", []):
            print(n["address"], n["mac"].lower())
    elif cmd == "flows":
        print("\n".join(flows(p)))
    elif cmd == "tunnel":
        print(tunnel(p))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
