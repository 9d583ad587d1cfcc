//! Traffic files for the demo, the tests and the benchmark scripts.
//!
//! Frames are written to classic pcap (Ethernet link type, no FCS) so that
//! `net_pcap` can replay them with `infinite_rx=1` and tshark can read them.

use anyhow::{Context, Result};
use hnv_wire::frames;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

/// Write `frames` to a pcap file.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let header = PcapHeader { datalink: DataLink::ETHERNET, snaplen: 65535, ..Default::default() };
    let mut w = PcapWriter::with_header(std::io::BufWriter::new(f), header).context("writing pcap header")?;
    for (i, fr) in frames.iter().enumerate() {
        let ts = Duration::from_micros(i as u64);
        w.write_packet(&PcapPacket::new(ts, fr.len() as u32, fr)).context("writing pcap packet")?;
    }
    Ok(())
}

/// Read every frame of a pcap file.
pub fn read_pcap(path: &Path) -> Result<Vec<Vec<u8>>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = PcapReader::new(std::io::BufReader::new(f)).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.context("reading pcap packet")?.data.into_owned());
    }
    Ok(out)
}

/// `flows` distinct Blue1 → Blue2 UDP flows (source port varies) of `frame_len` bytes each.
pub fn udp_flows(flows: usize, frame_len: usize) -> Vec<Vec<u8>> {
    (0..flows)
        .map(|i| {
            frames::udp(
                frames::mac(BLUE1_MAC),
                frames::mac(BLUE2_MAC),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
                1024 + (i % 60000) as u16,
                5001 + (i / 60000) as u16,
                frame_len,
            )
        })
        .collect()
}

/// Blue1's MAC in the worked example.
pub const BLUE1_MAC: &str = "00:15:5d:01:00:05";
/// Blue2's MAC.
pub const BLUE2_MAC: &str = "00:15:5d:01:00:07";
/// Red1's MAC.
pub const RED1_MAC: &str = "00:15:5d:02:00:05";
/// Red2's MAC.
pub const RED2_MAC: &str = "00:15:5d:02:00:07";
/// Host 1's PA MAC.
pub const PA1_MAC: &str = "02:00:c0:a8:04:0b";
/// Host 2's PA MAC.
pub const PA2_MAC: &str = "02:00:c0:a8:04:16";

/// What a VM sends in the demo: `flows` UDP flows to its peer on host 2 plus,
/// once each, an ARP request for the peer, a packet routed via the gateway
/// (Blue only) and a spoofed packet the switch must drop.
pub fn vm_traffic(blue: bool, flows: usize, frame_len: usize) -> Vec<Vec<u8>> {
    let (me, peer) = if blue { (BLUE1_MAC, BLUE2_MAC) } else { (RED1_MAC, RED2_MAC) };
    let (ca, peer_ca) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 7));
    let mut v: Vec<Vec<u8>> = (0..flows).map(|i| frames::udp(frames::mac(me), frames::mac(peer), IpAddr::V4(ca), IpAddr::V4(peer_ca), 1024 + (i % 60000) as u16, 9, frame_len)).collect();
    v.push(frames::arp_request(frames::mac(me), ca, peer_ca));
    if blue {
        v.push(frames::udp(frames::mac(me), frames::mac("02:48:4e:00:13:89"), IpAddr::V4(ca), IpAddr::V4(Ipv4Addr::new(10, 0, 1, 9)), 4242, 9, frame_len));
    }
    v.push(frames::udp(frames::mac(me), frames::mac(peer), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 66)), IpAddr::V4(peer_ca), 666, 9, frame_len));
    v
}

/// What host 2 sends host 1 in the demo: NVGRE-encapsulated Blue2 → Blue1 and Red2 → Red1 UDP flows.
pub fn uplink_traffic(flows: usize, frame_len: usize) -> Vec<Vec<u8>> {
    uplink_traffic_in(flows, frame_len, false)
}

/// [`uplink_traffic`] in VXLAN (UDP 4789, VNI = VSID) when `vxlan`, else NVGRE.
pub fn uplink_traffic_in(flows: usize, frame_len: usize, vxlan: bool) -> Vec<Vec<u8>> {
    let (pa1, pa2) = (Ipv4Addr::new(192, 168, 4, 11), Ipv4Addr::new(192, 168, 4, 22));
    let mut v = Vec::new();
    for (vsid, src, dst) in [(5001, BLUE2_MAC, BLUE1_MAC), (6001, RED2_MAC, RED1_MAC)] {
        for i in 0..flows {
            let (s, d) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)));
            let inner = frames::udp(frames::mac(src), frames::mac(dst), s, d, 1024 + (i % 60000) as u16, 9, frame_len);
            let fid = frames::flow_id_of(s, d, 17, 1024 + (i % 60000) as u16, 9);
            v.push(if vxlan {
                frames::vxlan(frames::mac(PA1_MAC), frames::mac(PA2_MAC), pa2, pa1, vsid, fid, hnv_wire::vxlan::PORT, &inner)
            } else {
                frames::nvgre(frames::mac(PA1_MAC), frames::mac(PA2_MAC), pa2, pa1, vsid, fid, &inner)
            });
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_round_trip() {
        let dir = std::env::temp_dir().join(format!("hnv-traffic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.pcap");
        let frames = udp_flows(10, 60);
        write_pcap(&p, &frames).unwrap();
        assert_eq!(read_pcap(&p).unwrap(), frames);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn generated_frames_have_the_requested_size_and_valid_checksums() {
        for f in udp_flows(4, 60).iter().chain(&vm_traffic(true, 4, 60)) {
            assert!(f.len() >= 60);
            if f[12..14] == [8, 0] {
                assert_eq!(hnv_wire::checksum::data(&f[14..34]), 0xffff);
            }
        }
        assert_eq!(uplink_traffic(3, 60).len(), 6);
        assert!(uplink_traffic(3, 60).iter().all(|f| f.len() == 102));
    }
}
