//! Why the switch drops a packet: one counter slot per reason (VPP's
//! `error.def`, OVS's drop coverage counters).
//!
//! A reason is a `Copy` enum indexing a counter array; its name is what
//! `hnvswitch` prints. Every packet the datapath does not hand to a tx queue
//! is counted under exactly one reason, so `rx + replicas == tx + Σ drops`.

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// A named drop reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// The reason's counter name.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            /// What the reason means.
            pub const fn description(self) -> &'static str {
                match self { $(DropReason::$variant => $doc,)* }
            }

            /// True for reasons decided at ingress, before the packet is
            /// counted as received in its VSID.
            pub const fn at_ingress(self) -> bool {
                matches!(
                    self,
                    DropReason::Malformed
                        | DropReason::MultiSegment
                        | DropReason::UnknownPort
                        | DropReason::VmVlanTagged
                        | DropReason::SpoofedMac
                        | DropReason::SpoofedIp
                        | DropReason::UplinkNotForUs
                        | DropReason::ProviderArpIgnored
                        | DropReason::GreFlags
                        | DropReason::GreVersion
                        | DropReason::GreProtocol
                        | DropReason::VsidReserved
                        | DropReason::VsidUnknown
                        | DropReason::InnerVlanTagged
                        | DropReason::NvgreControl
                        | DropReason::UnknownSourceCa
                        | DropReason::PaCaMismatch
                        | DropReason::OuterChecksum
                        | DropReason::OuterDstMac
                        | DropReason::OuterSrcLocal
                        | DropReason::VxlanFlags
                        | DropReason::UdpChecksum
                        | DropReason::Ipv6ExtHeaders
                )
            }

            /// Counter index.
            #[inline]
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        impl core::fmt::Display for DropReason {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

drop_reasons! {
    Malformed => "malformed", "frame too short or a header fails its checks";
    MultiSegment => "multi_segment", "frame spans several mbuf segments";
    UnknownPort => "unknown_port", "received on a port the policy does not know";
    VmVlanTagged => "vm_vlan_tagged", "802.1Q-tagged frame from a VM port (access ports drop tags)";
    SpoofedMac => "spoofed_mac", "source MAC is not the VM port's";
    SpoofedIp => "spoofed_ip", "source CA is not one of the VM port's addresses";
    ArpNoRecord => "arp_no_record", "ARP request for an address with no lookup record in the VSID";
    ArpNotRequest => "arp_not_request", "ARP reply or other ARP operation from a VM (the switch answers ARP itself)";
    NdNoRecord => "nd_no_record", "neighbor solicitation for an address with no lookup record in the VSID";
    NdUnhandled => "nd_unhandled", "ICMPv6 ND/MLD message the switch does not forward (RS, NA, redirects, MLD)";
    NoRecord => "no_record", "unicast destination with no lookup record in the VSID";
    DstMacMismatch => "dst_mac_mismatch", "destination MAC differs from the destination CA's record";
    NoLocalPort => "no_local_port", "record names this host but no local port owns its MAC";
    FloodNoMembers => "flood_no_members", "broadcast/multicast with no other local port in the VSID";
    NoRoute => "no_route", "routed destination with no customer route and no gateway wildcard";
    TtlExpired => "ttl_expired", "routed packet whose TTL or hop limit ran out";
    RoutedNonIp => "routed_non_ip", "frame to the gateway MAC that is not IPv4/IPv6";
    NextHopUnresolved => "nexthop_unresolved", "no MAC known for the provider next hop of the destination PA";
    EncapTooBig => "encap_too_big", "frame exceeds the uplink MTU once encapsulated and gets no ICMP error (IPv4 without DF, a non-first fragment, an ICMP error, no IPv4 gateway, or from the uplink)";
    TooBigRateLimited => "too_big_rate_limited", "frame exceeds the uplink MTU once encapsulated; its ICMP error was suppressed by the worker's rate limit";
    NoHeadroom => "no_headroom", "mbuf lacks headroom for the outer headers";
    UplinkNotForUs => "uplink_not_for_us", "uplink frame not addressed to a local PA (or not NVGRE, VXLAN on the policy's UDP port, or provider ARP)";
    ProviderArpIgnored => "provider_arp_ignored", "provider-side ARP not asking for a local PA (replies to the switch's own requests end here, after feeding the neighbor resolver)";
    ProviderNd => "provider_nd", "provider-side IPv6 neighbor advertisement (fed to the neighbor resolver), or a solicitation not for a local PA, or one failing RFC 4861 checks";
    GreFlags => "gre_flags", "GRE header with C or S set, K clear, or reserved bits set";
    GreVersion => "gre_version", "GRE version is not 0";
    GreProtocol => "gre_protocol", "GRE protocol is not 0x6558 (transparent Ethernet bridging)";
    VsidReserved => "vsid_reserved", "VSID outside 4096..16777214";
    VsidUnknown => "vsid_unknown", "VSID has no local port on this host";
    InnerVlanTagged => "inner_vlan_tagged", "decapsulated inner frame carries an 802.1Q tag (RFC 7637 forbids it)";
    NvgreControl => "nvgre_control", "an MS-NVGREE REDIRECT or UNREACHABLE message for this host, consumed by the switch (not a loss)";
    UnknownSourceCa => "unknown_source_ca", "decapsulated source CA/MAC has no lookup record in the VSID";
    PaCaMismatch => "pa_ca_mismatch", "decapsulated source CA's record names another PA than the outer source";
    OuterChecksum => "outer_checksum", "NVGRE or VXLAN whose outer IPv4 header checksum is wrong";
    OuterDstMac => "outer_dst_mac", "NVGRE or VXLAN whose outer destination MAC is not the MAC of the local PA it is addressed to";
    OuterSrcLocal => "outer_src_local", "NVGRE or VXLAN whose outer source is one of this host's own PAs";
    VxlanFlags => "vxlan_flags", "VXLAN header whose flags are not exactly I (I clear, or an R bit of an extension this switch does not implement)";
    UdpChecksum => "udp_checksum", "VXLAN over IPv6 with a zero or wrong UDP checksum (RFC 8200 §8.1; zero-checksum IPv6 is not accepted)";
    Ipv6ExtHeaders => "ipv6_ext_headers", "IPv6 extension header chain longer than the switch walks (8) or truncated";
    LinkLocalOffLink => "link_local_off_link", "IPv4/IPv6 unspecified or link-local source sent to be routed or encapsulated (it stays on the host)";
    DadOwnAddress => "dad_own_address", "ARP probe or IPv6 DAD solicitation for the asking VM's own address (not answered: an answer would be a conflict)";
    AclDeny => "acl_deny", "denied by the VSID ACL";
    ExtensionDrop => "extension_drop", "dropped by a filter extension";
    ReplicaAllocFailed => "replica_alloc_failed", "mbuf pool empty when copying a broadcast frame or building a gratuitous ARP (announce)";
    TxOverflow => "tx_overflow", "worker tx buffer full";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indices_dense() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
