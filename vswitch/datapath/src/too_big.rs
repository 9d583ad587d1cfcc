//! Path MTU: a frame from a VM that would exceed the uplink MTU once
//! encapsulated becomes an ICMP error back to the VM, so that the VM's
//! path MTU discovery (RFC 1191, RFC 8201) adapts.
//!
//! [`crate::encap::encap`] compares the frame's length with the template's
//! `max_inner` (the uplink MTU less the outer IP and GRE or UDP + VXLAN
//! headers) for every packet, cached flow or not, and returns
//! [`DropReason::EncapTooBig`] for a frame that does not fit. Only then does
//! the caller call [`answer`] (cold, out of line: the encapsulation action
//! of the fast path pays one compare, no new stage). Checks, in order, with
//! the drop reason each returns:
//! 1. the frame came from a VM port whose VSID is known (traffic from the
//!    uplink, re-encapsulated for a VM that moved, is not answered)
//!    ([`DropReason::EncapTooBig`]);
//! 2. it is IPv4 or IPv6 and its subnet has a gateway to answer from: IPv4
//!    needs the VSID's IPv4 gateway; IPv6 uses the IPv6 gateway, else the
//!    link-local address of the gateway MAC ([`DropReason::EncapTooBig`]);
//! 3. the packet may be answered ([`hnv_wire::too_big`]: IPv4 DF set and
//!    not a non-first fragment, not itself an ICMP error, unicast source and
//!    not a multicast/broadcast destination) ([`DropReason::EncapTooBig`]:
//!    an IPv4 packet without DF is dropped, not fragmented: see the README's
//!    "Path MTU"), and its IP header is sound ([`DropReason::Malformed`]);
//! 4. the worker's token bucket has a token
//!    ([`DropReason::TooBigRateLimited`]);
//! 5. the buffer can grow to the error's length when the error is longer
//!    than the frame (a short packet under a small MTU) ([`DropReason::NoHeadroom`]).
//!
//! The error replaces the frame in its own buffer and goes back out of the
//! VM's port, from the gateway MAC the switch answers ARP/ND with: one
//! packet received, one sent, so `rx + replicas == tx + drops` holds as for
//! ARP/ND answers; it is counted in `too_big_sent`. The next-hop MTU is
//! `max_inner − 14` (the inner Ethernet header travels inside the tunnel):
//! uplink MTU − 42 for NVGRE over IPv4, − 50 for VXLAN over IPv4, − 62 / − 70
//! over IPv6. No allocation, lock, syscall or log line.

use crate::drop::DropReason;
use crate::tables::{Role, Tables};
use hnv_wire::too_big::{self, Macs};
use hnv_wire::Error;
use pmd::PacketBuf;

/// Default TSC cycles per token (~2,000 errors per second per worker at 2 GHz).
pub const DEFAULT_INTERVAL: u64 = 1_000_000;
/// Default bucket size (errors one worker may send at once).
pub const DEFAULT_BURST: u32 = 64;

/// A per-worker token bucket for ICMP errors (RFC 4443 §2.4 f, RFC 1812
/// §4.3.2.8): `burst` tokens, one more every `interval` TSC cycles. Plain
/// integers owned by one worker: no lock, no atomics.
#[derive(Debug, Clone)]
pub struct TooBigLimiter {
    tokens: u32,
    burst: u32,
    interval: u64,
    last: u64,
}

impl Default for TooBigLimiter {
    fn default() -> Self {
        TooBigLimiter::new(DEFAULT_INTERVAL, DEFAULT_BURST)
    }
}

impl TooBigLimiter {
    /// A full bucket of `burst` tokens refilled one per `interval` cycles
    /// (an interval of 0 is taken as 1).
    pub fn new(interval: u64, burst: u32) -> Self {
        TooBigLimiter { tokens: burst, burst, interval: interval.max(1), last: 0 }
    }

    /// Take a token at TSC `now`: false when the bucket is empty.
    #[inline]
    pub fn take(&mut self, now: u64) -> bool {
        let elapsed = now.wrapping_sub(self.last);
        if elapsed >= self.interval {
            let add = (elapsed / self.interval).min(u64::from(self.burst)) as u32;
            self.tokens = self.tokens.saturating_add(add).min(self.burst);
            self.last = if self.tokens == self.burst { now } else { self.last.wrapping_add(u64::from(add) * self.interval) };
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Turn `p`, received on `in_port` and too big for `max_inner` bytes of
/// inner frame, into the ICMP error for its sender; return the port to send
/// it out of (`in_port`), or why it is dropped instead (see the module
/// contract for the checks).
#[cold]
#[inline(never)]
pub fn answer<B: PacketBuf>(t: &Tables, in_port: u16, max_inner: u16, p: &mut B, limiter: &mut TooBigLimiter, now: u64) -> Result<u16, DropReason> {
    let port = t.port(in_port).filter(|e| e.role == Role::Vm).ok_or(DropReason::EncapTooBig)?;
    let vs = t.vsid(port.vsid).ok_or(DropReason::EncapTooBig)?;
    let mtu = max_inner.saturating_sub(14);
    let v6 = match p.data().get(12..14) {
        Some([0x08, 0x00]) => false,
        Some([0x86, 0xdd]) => true,
        _ => return Err(DropReason::EncapTooBig),
    };
    let refused = |e: Error| if e == Error::Unsupported { DropReason::EncapTooBig } else { DropReason::Malformed };
    let need = if v6 { too_big::too_big_len(p.data()) } else { too_big::frag_needed_len(p.data()) }.map_err(refused)?;
    let gw_v4 = if v6 { None } else { Some(vs.gw_v4.ok_or(DropReason::EncapTooBig)?) };
    if !limiter.take(now) {
        return Err(DropReason::TooBigRateLimited);
    }
    if need > p.len() && p.append(need - p.len()).is_none() {
        return Err(DropReason::NoHeadroom);
    }
    let macs = Macs { gateway: vs.gw_mac, vm: port.mac };
    let n = match gw_v4 {
        Some(gw) => too_big::frag_needed_in_place(p.data_mut(), macs, gw, mtu),
        None => too_big::too_big_in_place(p.data_mut(), macs, vs.gw_v6.unwrap_or_else(|| too_big::link_local_of(vs.gw_mac)), u32::from(mtu)),
    }
    .map_err(refused)?;
    let extra = p.len().saturating_sub(n);
    if !p.trim(extra) {
        return Err(DropReason::Malformed);
    }
    Ok(in_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_burst_tokens_and_refills_one_per_interval() {
        let mut b = TooBigLimiter::new(100, 3);
        assert!((0..3).all(|_| b.take(10)));
        assert!(!b.take(10), "empty after the burst");
        assert!(!b.take(99));
        assert!(b.take(100), "one token per interval");
        assert!(!b.take(150));
        assert!(b.take(1_000_000), "a long pause refills the bucket");
        assert!(b.take(1_000_000) && b.take(1_000_000));
        assert!(!b.take(1_000_000), "never more than the burst");
    }
}
