//! Provider next-hop resolution, sans-I/O: which MAC each provider next hop
//! the compiled policy needs has, found by ARP (IPv4) and neighbor
//! solicitation (IPv6) from this host's PA, with time passed in.
//!
//! Contract:
//! - [`Resolver::set_wanted`] is told every next hop the policy needs (a
//!   remote PA on a provider subnet, or the provider route's next hop toward
//!   it: [`next_hop`], the same choice the encapsulation templates make) and
//!   the policy's static neighbors. A static neighbor always wins: it is
//!   `reachable` for ever, never probed, and ARP for it is refused. At most
//!   [`MAX_NEIGHBORS`] dynamic entries exist; next hops beyond that are not
//!   resolved and counted ([`Counts::over_limit`]). An entry whose next hop
//!   the policy no longer needs is forgotten.
//! - [`Resolver::poll`] runs the timers. A new entry is `incomplete` and is
//!   asked for at once (broadcast ARP request or NS to the solicited-node
//!   multicast address), then again after [`RETRY_FIRST`], doubling up to
//!   [`RETRY_MAX`]; after [`FAIL_AFTER`] unanswered tries it is `failed` and
//!   keeps being asked at [`RETRY_MAX`]. A `reachable` entry (a MAC
//!   confirmed within [`REACHABLE`]) becomes `stale` when that time runs
//!   out: its MAC stays in use while unicast probes to it go out with the
//!   same backoff; when [`STALE`] more passes without an answer the MAC is
//!   withdrawn (`failed`, broadcast again). [`Resolver::poll`] returns
//!   whether the MAC map ([`Resolver::macs`]) changed: the caller then
//!   recompiles the tables.
//! - [`Resolver::heard`] takes a (sender IP, sender MAC) pair seen in ARP
//!   or a neighbor advertisement on an uplink (ingress checked that the
//!   Ethernet source is the sender's hardware address and that the MAC is
//!   unicast). Checks, in order: the address has a static neighbor
//!   ([`Refused::Static`]); the policy does not need it
//!   ([`Refused::NotWanted`]); otherwise it is accepted: `resolved` when a
//!   request of ours for it is outstanding, `learned` otherwise (ARP from an
//!   address the policy needs, as a host announcing itself). So a hostile
//!   fabric host can neither add entries (only needed next hops have one)
//!   nor grow the table; what it can do, answer for a needed address, ARP
//!   allows to anyone on the segment. Refusals are counted.
//! - [`request_frame`] builds the request as a ready-to-send Ethernet frame
//!   ([`Frame`], fixed size, no allocation) from the PA and PA MAC of the
//!   provider address the next hop is reached through, on its VLAN.

use hnv_policy::{Host, ProviderAddress};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Most dynamic (resolved or learned) entries at once.
pub const MAX_NEIGHBORS: usize = 4096;
/// Wait before the first retry; each further retry waits twice as long.
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between two requests.
pub const RETRY_MAX: Duration = Duration::from_secs(8);
/// Unanswered requests after which an incomplete entry is `failed`.
pub const FAIL_AFTER: u32 = 5;
/// A confirmed MAC is used without probing for this long.
pub const REACHABLE: Duration = Duration::from_secs(60);
/// A stale MAC stays in use this long while it is probed, then is withdrawn.
pub const STALE: Duration = Duration::from_secs(30);
/// An answer counts as `resolved` when it comes this soon after our last request.
pub const ANSWER_WINDOW: Duration = Duration::from_secs(10);

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Asked for, no MAC yet.
    Incomplete,
    /// MAC confirmed recently (static entries are always reachable).
    Reachable,
    /// MAC in use, being re-confirmed by unicast probes.
    Stale,
    /// Unanswered: no MAC; still asked for, at the longest backoff.
    Failed,
}

impl State {
    /// Every state, in display order.
    pub const ALL: [State; 4] = [State::Incomplete, State::Reachable, State::Stale, State::Failed];

    /// The name shown and exported.
    pub fn name(self) -> &'static str {
        match self {
            State::Incomplete => "incomplete",
            State::Reachable => "reachable",
            State::Stale => "stale",
            State::Failed => "failed",
        }
    }
}

/// Where an entry's MAC came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `[[host.neighbors]]` in the policy.
    Static,
    /// ARP seen from the address without a request of ours outstanding.
    Learned,
    /// An answer to our request (or not known yet).
    Resolved,
}

impl Source {
    /// The name shown and exported.
    pub fn name(self) -> &'static str {
        match self {
            Source::Static => "static",
            Source::Learned => "learned",
            Source::Resolved => "resolved",
        }
    }
}

/// How a next hop is reached: the uplink and the provider address asked from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via {
    /// Switch port of the uplink.
    pub port: u16,
    /// The PA the request comes from.
    pub pa: IpAddr,
    /// The PA's MAC.
    pub mac: [u8; 6],
    /// The provider VLAN, if tagged.
    pub vlan: Option<u16>,
}

/// A next hop the policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// The next hop's address.
    pub ip: IpAddr,
    /// How it is reached.
    pub via: Via,
}

/// A request to send: ask for `target` through `via`, to `unicast` (a probe) or broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The address asked for.
    pub target: IpAddr,
    /// From where.
    pub via: Via,
    /// The known MAC for a unicast probe; `None`: broadcast (ARP) or solicited-node multicast (NS).
    pub unicast: Option<[u8; 6]>,
}

/// Why an ARP or advertisement was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address has a static neighbor: static wins.
    Static,
    /// The policy needs no next hop at that address.
    NotWanted,
}

/// What happened so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests handed out by [`Resolver::poll`] (broadcast and unicast).
    pub requests: u64,
    /// ARP/NA accepted.
    pub accepted: u64,
    /// ARP/NA refused (not needed, or static).
    pub refused: u64,
    /// Needed next hops left unresolved because the table was full.
    pub over_limit: u64,
}

/// One entry, as shown by `hnvctl show neighbors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The next hop.
    pub ip: IpAddr,
    /// Its MAC, when known.
    pub mac: Option<[u8; 6]>,
    /// State.
    pub state: State,
    /// Source of the MAC.
    pub source: Source,
    /// How it is reached (`None` for a static entry no record needs).
    pub via: Option<Via>,
    /// When the MAC was last confirmed (or the entry made).
    pub confirmed: Instant,
    /// Requests sent for it so far.
    pub probes: u64,
    /// Requests sent since the last answer.
    pub unanswered: u32,
    /// When the next request goes out (dynamic entries).
    pub next: Instant,
    /// When our last request went out.
    pub asked: Option<Instant>,
}

impl Entry {
    fn new(ip: IpAddr, via: Option<Via>, now: Instant) -> Self {
        Entry { ip, mac: None, state: State::Incomplete, source: Source::Resolved, via, confirmed: now, probes: 0, unanswered: 0, next: now, asked: None }
    }

    fn backoff(unanswered: u32) -> Duration {
        RETRY_FIRST.saturating_mul(1u32 << unanswered.saturating_sub(1).min(16)).min(RETRY_MAX)
    }
}

/// The neighbor table and its timers (control thread only).
#[derive(Debug, Default)]
pub struct Resolver {
    entries: HashMap<IpAddr, Entry>,
    counts: Counts,
}

impl Resolver {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The policy needs `wants` and lists `statics`: add entries for new next
    /// hops (asked for at the next [`Resolver::poll`]), forget those no longer
    /// needed, and make statics override. Returns whether [`Resolver::macs`] changed.
    pub fn set_wanted(&mut self, wants: &[Want], statics: &[(IpAddr, [u8; 6])], now: Instant) -> bool {
        let before = self.macs();
        let wanted: HashMap<IpAddr, Via> = wants.iter().map(|w| (w.ip, w.via)).collect();
        self.entries.retain(|ip, e| e.source == Source::Static || wanted.contains_key(ip));
        // Statics: exactly the policy's.
        self.entries.retain(|ip, e| e.source != Source::Static || statics.iter().any(|(a, _)| a == ip));
        for &(ip, mac) in statics {
            let e = self.entries.entry(ip).or_insert_with(|| Entry::new(ip, None, now));
            *e = Entry { mac: Some(mac), state: State::Reachable, source: Source::Static, via: wanted.get(&ip).copied(), confirmed: e.confirmed, ..Entry::new(ip, None, now) };
        }
        let mut dynamic = self.entries.values().filter(|e| e.source != Source::Static).count();
        for w in wants {
            if let Some(e) = self.entries.get_mut(&w.ip) {
                e.via = Some(w.via);
                continue;
            }
            if dynamic >= MAX_NEIGHBORS {
                self.counts.over_limit += 1;
                continue;
            }
            self.entries.insert(w.ip, Entry::new(w.ip, Some(w.via), now));
            dynamic += 1;
        }
        self.macs() != before
    }

    /// Run the timers at `now`: every request due goes to `send`. Returns
    /// whether [`Resolver::macs`] changed (a stale MAC withdrawn).
    pub fn poll(&mut self, now: Instant, send: &mut dyn FnMut(Request)) -> bool {
        let mut changed = false;
        for e in self.entries.values_mut().filter(|e| e.source != Source::Static) {
            let Some(via) = e.via else { continue };
            let age = now.saturating_duration_since(e.confirmed);
            if e.state == State::Reachable && age >= REACHABLE {
                // Refresh before the MAC is withdrawn: unicast probes from now on.
                e.state = State::Stale;
                e.unanswered = 0;
                e.next = now;
            }
            if e.state == State::Stale && age >= REACHABLE + STALE {
                e.state = State::Failed;
                e.mac = None;
                e.source = Source::Resolved;
                e.unanswered = FAIL_AFTER;
                e.next = now;
                changed = true;
            }
            if e.state == State::Reachable || now < e.next {
                continue;
            }
            let unicast = if e.state == State::Stale { e.mac } else { None };
            send(Request { target: e.ip, via, unicast });
            self.counts.requests += 1;
            e.probes += 1;
            e.unanswered = e.unanswered.saturating_add(1);
            e.asked = Some(now);
            e.next = now + Entry::backoff(e.unanswered);
            if e.state == State::Incomplete && e.unanswered >= FAIL_AFTER {
                e.state = State::Failed;
            }
        }
        changed
    }

    /// `ip` was seen at `mac` (ARP or NA on an uplink, at `now`). Returns
    /// whether [`Resolver::macs`] changed.
    ///
    /// # Errors
    /// [`Refused`], in the order of the module contract (counted).
    pub fn heard(&mut self, ip: IpAddr, mac: [u8; 6], now: Instant) -> Result<bool, Refused> {
        let Some(e) = self.entries.get_mut(&ip) else {
            self.counts.refused += 1;
            return Err(Refused::NotWanted);
        };
        if e.source == Source::Static {
            self.counts.refused += 1;
            return Err(Refused::Static);
        }
        self.counts.accepted += 1;
        let changed = e.mac != Some(mac);
        let answer = e.asked.is_some_and(|a| now.saturating_duration_since(a) <= ANSWER_WINDOW) && e.unanswered > 0;
        if changed || answer || e.state != State::Reachable {
            e.source = if answer { Source::Resolved } else { Source::Learned };
        }
        e.mac = Some(mac);
        e.state = State::Reachable;
        e.confirmed = now;
        e.unanswered = 0;
        e.next = now + REACHABLE;
        Ok(changed)
    }

    /// The dynamic (ip, MAC) pairs in use (reachable or stale), sorted: what the tables compile with.
    pub fn macs(&self) -> Vec<(IpAddr, [u8; 6])> {
        let mut v: Vec<(IpAddr, [u8; 6])> = self.entries.values().filter(|e| e.source != Source::Static).filter_map(|e| Some((e.ip, e.mac?))).collect();
        v.sort_unstable();
        v
    }

    /// Every entry, sorted by address.
    pub fn entries(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self.entries.values().copied().collect();
        v.sort_unstable_by_key(|e| e.ip);
        v
    }

    /// The entry of `ip`.
    pub fn get(&self, ip: IpAddr) -> Option<&Entry> {
        self.entries.get(&ip)
    }

    /// Counts so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

/// The next hop toward remote PA `pa` and the provider address it is
/// reached from: `pa` itself when on a provider subnet, else the longest
/// matching provider route's next hop (`pa` for an on-link route). `None`
/// without a provider address of `pa`'s family or a route.
pub fn next_hop(host: &Host, pa: IpAddr) -> Option<(IpAddr, &ProviderAddress)> {
    let local = host.provider_addresses.iter().find(|l| l.address.is_ipv4() == pa.is_ipv4())?;
    if local.subnet().contains(pa) {
        return Some((pa, local));
    }
    let r = host.provider_routes.iter().filter(|r| r.destination.contains(pa)).max_by(|a, b| a.destination.len().cmp(&b.destination.len()).then(b.metric.cmp(&a.metric)))?;
    Some((if r.is_on_link() { pa } else { r.next_hop }, local))
}

/// The next hops remote PAs `pas` need, each once; `uplink(name)` is the switch port of an uplink.
pub fn wanted(host: &Host, pas: impl IntoIterator<Item = IpAddr>, uplink: &dyn Fn(&str) -> Option<u16>) -> Vec<Want> {
    let mut out: Vec<Want> = Vec::new();
    for pa in pas {
        if host.is_local_pa(pa) {
            continue;
        }
        let Some((ip, local)) = next_hop(host, pa) else { continue };
        let Some(port) = uplink(&local.uplink) else { continue };
        if !out.iter().any(|w| w.ip == ip) {
            out.push(Want { ip, via: Via { port, pa: local.address, mac: local.mac.0, vlan: local.vlan } });
        }
    }
    out
}

/// Longest request frame: Ethernet + 802.1Q + IPv6 + NS with a source link-layer option.
pub const FRAME_MAX: usize = 14 + 4 + 40 + 24 + 8;

/// A ready-to-send frame for an uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Switch port to send it on.
    pub port: u16,
    /// Bytes used in `bytes`.
    pub len: u8,
    /// The frame.
    pub bytes: [u8; FRAME_MAX],
}

impl Frame {
    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// The solicited-node multicast address of `ip` (RFC 4291 §2.7.1).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

/// `r` as an Ethernet frame: an ARP request (broadcast, or unicast to a
/// stale MAC) for an IPv4 target, a neighbor solicitation (to the
/// solicited-node multicast group, or unicast) with a source link-layer
/// address option for an IPv6 one; `None` when the target's family differs
/// from the provider address's. Short frames are padded to 60 bytes.
pub fn request_frame(r: &Request) -> Option<Frame> {
    let mut b = [0u8; FRAME_MAX];
    let src = r.via.mac;
    let mut off = 12;
    b[6..12].copy_from_slice(&src);
    if let Some(vlan) = r.via.vlan {
        b[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        b[14..16].copy_from_slice(&(vlan & 0x0fff).to_be_bytes());
        off = 16;
    }
    let len = match (r.target, r.via.pa) {
        (IpAddr::V4(target), IpAddr::V4(pa)) => {
            b[0..6].copy_from_slice(&r.unicast.unwrap_or([0xff; 6]));
            b[off..off + 2].copy_from_slice(&0x0806u16.to_be_bytes());
            let a = &mut b[off + 2..off + 30];
            a[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
            a[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
            a[4] = 6;
            a[5] = 4;
            a[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
            a[8..14].copy_from_slice(&src);
            a[14..18].copy_from_slice(&pa.octets());
            a[24..28].copy_from_slice(&target.octets());
            (off + 30).max(60)
        }
        (IpAddr::V6(target), IpAddr::V6(pa)) => {
            let dst_ip = if r.unicast.is_some() { target } else { solicited_node(target) };
            let dst_mac = r.unicast.unwrap_or_else(|| {
                let o = dst_ip.octets();
                [0x33, 0x33, o[12], o[13], o[14], o[15]]
            });
            b[0..6].copy_from_slice(&dst_mac);
            b[off..off + 2].copy_from_slice(&0x86ddu16.to_be_bytes());
            let ip = off + 2;
            let h = &mut b[ip..ip + 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&32u16.to_be_bytes());
            h[6] = 58;
            h[7] = 255;
            h[8..24].copy_from_slice(&pa.octets());
            h[24..40].copy_from_slice(&dst_ip.octets());
            let icmp = &mut b[ip + 40..ip + 72];
            icmp[0] = 135;
            icmp[8..24].copy_from_slice(&target.octets());
            icmp[24] = 1; // source link-layer address
            icmp[25] = 1;
            icmp[26..32].copy_from_slice(&src);
            let sum = icmpv6_checksum(&pa, &dst_ip, icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            ip + 72
        }
        _ => return None,
    };
    Some(Frame { port: r.via.port, len: len as u8, bytes: b })
}

fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, body: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |d: &[u8]| {
        for c in d.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(body.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(body);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const OURS: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    fn v4(d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 168, 4, d))
    }

    fn via() -> Via {
        Via { port: 0, pa: v4(1), mac: OURS, vlan: None }
    }

    fn want(ip: IpAddr) -> Want {
        Want { ip, via: via() }
    }

    /// Poll at `now`, returning what was sent.
    fn poll(r: &mut Resolver, now: Instant) -> (Vec<Request>, bool) {
        let mut sent = Vec::new();
        let changed = r.poll(now, &mut |q| sent.push(q));
        (sent, changed)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_new_next_hop_is_asked_for_at_once_then_with_doubling_backoff_up_to_the_cap_and_fails() {
        let t0 = Instant::now();
        let mut r = Resolver::new();
        assert!(!r.set_wanted(&[want(v4(2))], &[], t0));
        let (sent, _) = poll(&mut r, t0);
        assert_eq!(sent, vec![Request { target: v4(2), via: via(), unicast: None }]);
        assert_eq!(r.get(v4(2)).map(|e| e.state), Some(State::Incomplete));
        // Nothing more until the first retry is due.
        assert!(poll(&mut r, t0 + ms(249)).0.is_empty());
        // Send times with polls every 10 ms: 0, 250, 750, 1750, 3750, 7750, 15750, 23750...
        let mut at = Vec::new();
        for i in 0..=2500u64 {
            let now = t0 + ms(i * 10);
            if !poll(&mut r, now).0.is_empty() {
                at.push(i * 10);
            }
        }
        assert_eq!(at, vec![250, 750, 1750, 3750, 7750, 15750, 23750]);
        let e = r.get(v4(2)).copied().unwrap();
        assert_eq!(e.state, State::Failed);
        assert_eq!(e.probes, 8);
        assert_eq!(r.counts().requests, 8);
        assert!(r.macs().is_empty());
    }

    #[test]
    fn an_answer_resolves_and_the_entry_is_refreshed_by_unicast_probes_before_it_expires() {
        let t0 = Instant::now();
        let mut r = Resolver::new();
        r.set_wanted(&[want(v4(2))], &[], t0);
        poll(&mut r, t0);
        assert_eq!(r.heard(v4(2), MAC_A, t0 + ms(1)), Ok(true));
        let e = r.get(v4(2)).copied().unwrap();
        assert_eq!((e.state, e.source, e.mac), (State::Reachable, Source::Resolved, Some(MAC_A)));
        assert_eq!(r.macs(), vec![(v4(2), MAC_A)]);
        // Quiet while reachable.
        assert!(poll(&mut r, t0 + REACHABLE - ms(10)).0.is_empty());
        // Then stale: MAC still in use, a unicast probe to it.
        let (sent, changed) = poll(&mut r, t0 + ms(1) + REACHABLE);
        assert!(!changed);
        assert_eq!(sent, vec![Request { target: v4(2), via: via(), unicast: Some(MAC_A) }]);
        assert_eq!(r.get(v4(2)).map(|e| e.state), Some(State::Stale));
        assert_eq!(r.macs(), vec![(v4(2), MAC_A)]);
        // The answer makes it reachable again, and quiet.
        assert_eq!(r.heard(v4(2), MAC_A, t0 + REACHABLE + ms(5)), Ok(false));
        assert_eq!(r.get(v4(2)).map(|e| (e.state, e.source)), Some((State::Reachable, Source::Resolved)));
        assert!(poll(&mut r, t0 + REACHABLE + ms(500)).0.is_empty());
    }

    #[test]
    fn an_unanswered_refresh_ages_the_mac_out_and_goes_back_to_broadcast() {
        let t0 = Instant::now();
        let mut r = Resolver::new();
        r.set_wanted(&[want(v4(2))], &[], t0);
        r.heard(v4(2), MAC_A, t0).unwrap();
        let mut probes = 0;
        let mut withdrawn = None;
        for i in 0..=((REACHABLE + STALE).as_millis() as u64 / 10 + 1) {
            let now = t0 + ms(i * 10);
            let (sent, changed) = poll(&mut r, now);
            probes += sent.iter().filter(|q| q.unicast == Some(MAC_A)).count();
            if changed {
                withdrawn = Some(i * 10);
                assert_eq!(sent.iter().map(|q| q.unicast).collect::<Vec<_>>(), vec![None], "back to broadcast");
            }
        }
        assert!(probes >= 4, "{probes} unicast probes");
        assert_eq!(withdrawn, Some((REACHABLE + STALE).as_millis() as u64));
        assert_eq!(r.get(v4(2)).map(|e| (e.state, e.mac)), Some((State::Failed, None)));
        assert!(r.macs().is_empty());
    }

    #[test]
    fn static_neighbors_override_are_never_probed_and_refuse_arp() {
        let t0 = Instant::now();
        let mut r = Resolver::new();
        // Learned first, then the policy names it statically.
        r.set_wanted(&[want(v4(2)), want(v4(3))], &[], t0);
        r.heard(v4(2), MAC_A, t0).unwrap();
        assert!(r.set_wanted(&[want(v4(2)), want(v4(3))], &[(v4(2), MAC_B)], t0), "the learned MAC leaves the dynamic map");
        assert_eq!(r.macs(), vec![]);
        let e = r.get(v4(2)).copied().unwrap();
        assert_eq!((e.state, e.source, e.mac), (State::Reachable, Source::Static, Some(MAC_B)));
        assert_eq!(r.heard(v4(2), MAC_A, t0), Err(Refused::Static));
        for i in 0..200u64 {
            let (sent, _) = poll(&mut r, t0 + Duration::from_secs(i));
            assert!(sent.iter().all(|q| q.target != v4(2)), "a static neighbor is never asked for");
        }
        assert_eq!(r.get(v4(2)).map(|e| e.state), Some(State::Reachable));
        // The static entry goes; the next hop is asked for again.
        r.set_wanted(&[want(v4(2))], &[], t0 + Duration::from_secs(300));
        let (sent, _) = poll(&mut r, t0 + Duration::from_secs(300));
        assert_eq!(sent.iter().map(|q| q.target).collect::<Vec<_>>(), vec![v4(2)]);
    }

    #[test]
    fn hostile_arp_cannot_add_entries_or_fill_the_table() {
        let t0 = Instant::now();
        let mut r = Resolver::new();
        r.set_wanted(&[want(v4(2))], &[], t0);
        for d in 3..=254u8 {
            for k in 0..100u16 {
                let ip = IpAddr::V4(Ipv4Addr::new(192, 168, (k >> 8) as u8 + 4, d));
                if ip != v4(2) {
                    assert_eq!(r.heard(ip, MAC_B, t0), Err(Refused::NotWanted));
                }
            }
        }
        assert_eq!(r.entries().len(), 1);
        assert!(r.macs().is_empty());
        assert_eq!(r.counts().refused, 252 * 100);
        assert_eq!(r.counts().accepted, 0);
        // An ARP from the needed address itself is learned (as a host announcing itself).
        assert_eq!(r.heard(v4(2), MAC_A, t0), Ok(true));
        assert_eq!(r.get(v4(2)).map(|e| e.source), Some(Source::Learned));
    }

    #[test]
    fn the_table_is_bounded_and_next_hops_no_longer_needed_are_forgotten() {
        let t0 = Instant::now();
        let mut r = Resolver::new();
        let many: Vec<Want> = (0..MAX_NEIGHBORS as u32 + 10).map(|i| want(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))).collect();
        r.set_wanted(&many, &[], t0);
        assert_eq!(r.entries().len(), MAX_NEIGHBORS);
        assert_eq!(r.counts().over_limit, 10);
        r.set_wanted(&many[..2], &[], t0);
        assert_eq!(r.entries().len(), 2);
        r.heard(many[0].ip, MAC_A, t0).unwrap();
        assert!(r.set_wanted(&many[1..2], &[], t0), "forgetting a resolved next hop changes the map");
        assert!(r.macs().is_empty());
        assert_eq!(r.heard(many[0].ip, MAC_A, t0), Err(Refused::NotWanted));
    }

    #[test]
    fn a_changed_mac_is_reported_and_used() {
        let t0 = Instant::now();
        let mut r = Resolver::new();
        r.set_wanted(&[want(v4(2))], &[], t0);
        assert_eq!(r.heard(v4(2), MAC_A, t0), Ok(true));
        assert_eq!(r.heard(v4(2), MAC_A, t0 + ms(10)), Ok(false));
        assert_eq!(r.heard(v4(2), MAC_B, t0 + ms(20)), Ok(true));
        assert_eq!(r.macs(), vec![(v4(2), MAC_B)]);
    }

    #[test]
    fn arp_request_frames_are_well_formed() {
        let r = Request { target: v4(2), via: Via { port: 3, pa: v4(1), mac: OURS, vlan: None }, unicast: None };
        let f = request_frame(&r).unwrap();
        assert_eq!(f.port, 3);
        let d = f.data();
        assert_eq!(d.len(), 60);
        let eth = hnv_wire::EthernetFrame::new_checked(d).unwrap();
        assert_eq!(eth.dst_addr().0, [0xff; 6]);
        assert_eq!(eth.src_addr().0, OURS);
        assert_eq!(eth.ethertype(), hnv_wire::EtherType::Arp);
        let arp = hnv_wire::ArpPacket::new_checked(eth.payload()).unwrap();
        assert_eq!(arp.operation(), hnv_wire::ArpOperation::Request);
        assert_eq!(arp.source_hardware_addr().0, OURS);
        assert_eq!(IpAddr::V4(arp.source_protocol_addr()), v4(1));
        assert_eq!(IpAddr::V4(arp.target_protocol_addr()), v4(2));
        assert_eq!(arp.target_hardware_addr().0, [0; 6]);
        // Unicast probe on a VLAN.
        let p = Request { unicast: Some(MAC_A), via: Via { vlan: Some(100), ..r.via }, ..r };
        let d = request_frame(&p).unwrap();
        assert_eq!(&d.data()[0..6], &MAC_A);
        assert_eq!(&d.data()[12..18], &[0x81, 0x00, 0x00, 100, 0x08, 0x06]);
    }

    #[test]
    fn neighbor_solicitations_go_to_the_solicited_node_group_with_a_valid_checksum() {
        let pa: Ipv6Addr = "fd00:4::1".parse().unwrap();
        let target: Ipv6Addr = "fd00:4::12:3456".parse().unwrap();
        let r = Request { target: IpAddr::V6(target), via: Via { port: 1, pa: IpAddr::V6(pa), mac: OURS, vlan: None }, unicast: None };
        let f = request_frame(&r).unwrap();
        let eth = hnv_wire::EthernetFrame::new_checked(f.data()).unwrap();
        assert_eq!(eth.dst_addr().0, [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]);
        let ip = hnv_wire::Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(ip.dst_addr(), "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap());
        let icmp = hnv_wire::Icmpv6Packet::new_checked(ip.payload()).unwrap();
        let ns = hnv_wire::ndisc::Repr::parse(&icmp).unwrap();
        assert!(matches!(ns, hnv_wire::ndisc::Repr::NeighborSolicit { target_addr, lladdr: Some(l) } if target_addr == target && l.0 == OURS), "{ns:?}");
        assert!(icmp.verify_checksum(&pa, &ip.dst_addr()));
    }

    #[test]
    fn next_hops_follow_the_template_choice() {
        let p = hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "host1").unwrap();
        let host = &p.host;
        let pas: Vec<IpAddr> = p.lookup.iter().map(|r| r.pa).collect();
        let w = wanted(host, pas.iter().copied(), &|_| Some(0));
        assert!(!w.is_empty());
        for x in &w {
            assert!(!host.is_local_pa(x.ip));
            assert!(host.provider_addresses.iter().any(|a| a.address == x.via.pa && a.subnet().contains(x.ip)) || host.provider_routes.iter().any(|r| r.next_hop == x.ip));
        }
    }
}
