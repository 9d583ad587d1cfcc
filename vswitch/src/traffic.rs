//! Traffic files for the demo, the tests and the benchmark scripts.
//!
//! Frames are written to classic pcap (Ethernet link type, no FCS) so that
//! `net_pcap` can replay them with `infinite_rx=1` and tshark can read them.

use anyhow::{Context, Result};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;
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

/// An Ethernet/IPv4/UDP frame of `frame_len` bytes (no FCS, at least 42).
pub fn udp_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src_ip: [u8; 4], dst_ip: [u8; 4], sport: u16, dport: u16, frame_len: usize) -> Vec<u8> {
    let frame_len = frame_len.max(42);
    let mut f = vec![0u8; frame_len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (frame_len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src_ip);
    ip[16..20].copy_from_slice(&dst_ip);
    let mut sum: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

/// `flows` distinct UDP flows (source port varies) of `frame_len` bytes each.
pub fn udp_flows(flows: usize, frame_len: usize) -> Vec<Vec<u8>> {
    (0..flows)
        .map(|i| {
            udp_frame(
                [0x00, 0x15, 0x5d, 0x01, 0x00, 0x05],
                [0x00, 0x15, 0x5d, 0x01, 0x00, 0x07],
                [10, 0, 0, 5],
                [10, 0, 0, 7],
                1024 + (i % 60000) as u16,
                5001 + (i / 60000) as u16,
                frame_len,
            )
        })
        .collect()
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
    fn udp_frame_has_valid_ipv4_checksum() {
        let f = udp_frame([1; 6], [2; 6], [10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 60);
        let mut sum: u32 = f[14..34].chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }
}
