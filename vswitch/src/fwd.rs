//! The I/O validation modes: port cross-connect (`io`, like testpmd's io
//! forwarding) and its MAC-swapping variant (`macswap`). They exist to
//! validate and benchmark the PMD layer, not to switch tenants.

use pmd::{Batch, PacketBuf, Processor, TxStage};

/// Forward every packet from port `i` to `peer[i]`, swapping MACs if asked.
#[derive(Debug, Clone)]
pub struct CrossConnect {
    peer: Vec<u16>,
    macswap: bool,
}

impl CrossConnect {
    /// `peer[i]` is the output port of input port `i`.
    pub fn new(peer: Vec<u16>, macswap: bool) -> Self {
        CrossConnect { peer, macswap }
    }
}

impl<B: PacketBuf> Processor<B> for CrossConnect {
    #[inline]
    fn process(&mut self, in_port: u16, pkts: &mut Batch<B>, out: &mut TxStage<B>, _now: u64) {
        let to = self.peer.get(usize::from(in_port)).copied().unwrap_or(in_port);
        if self.macswap {
            for p in pkts.iter_mut() {
                if let Some(h) = p.data_mut().get_mut(..12) {
                    let (dst, src) = h.split_at_mut(6);
                    dst.swap_with_slice(src);
                }
            }
        }
        out.send_batch(to, pkts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmd::HeapBuf;

    #[test]
    fn macswap_swaps_and_forwards_to_peer() {
        let mut f = CrossConnect::new(vec![1, 0], true);
        let mut b: Batch<HeapBuf> = Batch::new();
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[1; 6]);
        frame[6..12].copy_from_slice(&[2; 6]);
        b.push(HeapBuf::from_slice(&frame));
        b.push(HeapBuf::from_slice(&[7u8; 5]));
        let mut out = TxStage::new(2);
        f.process(0, &mut b, &mut out, 0);
        let q = out.pending_mut(1).unwrap();
        assert_eq!(&q[0].data()[..12], &[[2u8; 6], [1u8; 6]].concat()[..]);
        assert_eq!(q[1].data(), &[7u8; 5], "a runt frame passes unchanged");
    }
}
