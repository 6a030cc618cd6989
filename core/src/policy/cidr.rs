//! CIDR blocks, the entries of a policy's IP allowlist. Parsed strictly (no host bits past
//! the prefix, IPv4-mapped blocks read as IPv4) so that a typo cannot silently widen access.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

/// Why a text is not a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCidr {
    #[error(
        "ip_allowlist entries must be addresses or CIDR blocks such as 10.0.0.0/8 or 2001:db8::/32"
    )]
    Shape,
    #[error(
        "a CIDR block's address must have no bits set past its prefix length (10.0.0.0/8, not 10.1.2.3/8)"
    )]
    HostBitsSet,
}

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a network of
/// that one address. Bits past the prefix length must be zero, so a typo such as
/// `10.1.2.3/8` for `10.1.2.3/28` is refused rather than silently widened. IPv4-mapped IPv6
/// blocks (`::ffff:10.0.0.0/104`) are kept as the IPv4 block they denote. On the wire, the
/// text form `address/length`.
// No `ToSchema` derive: utoipa cannot show a struct with named fields as a string, so the
// fields that hold one say `value_type = String` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Parses `address/length` or a bare address.
    pub fn parse(text: &str) -> Result<Self, InvalidCidr> {
        let (address, length) = match text.split_once('/') {
            Some((address, length)) => (address, Some(length)),
            None => (text, None),
        };
        let network = IpAddr::from_str(address).map_err(|_| InvalidCidr::Shape)?;
        let max = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix_len = match length {
            None => max,
            // Digits only: `u8::from_str` would also take `+8`.
            Some(length)
                if (1..=3).contains(&length.len())
                    && length.bytes().all(|b| b.is_ascii_digit()) =>
            {
                length
                    .parse::<u8>()
                    .ok()
                    .filter(|&len| len <= max)
                    .ok_or(InvalidCidr::Shape)?
            }
            Some(_) => return Err(InvalidCidr::Shape),
        };
        let cidr = match network {
            // Clients are compared in canonical form (see `contains`), so blocks are too.
            IpAddr::V6(v6) if prefix_len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Self {
                    network: IpAddr::V4(v4),
                    prefix_len: prefix_len - 96,
                },
                None => Self {
                    network,
                    prefix_len,
                },
            },
            _ => Self {
                network,
                prefix_len,
            },
        };
        if cidr.masked(cidr.network) != Some(cidr.network) {
            return Err(InvalidCidr::HostBitsSet);
        }
        Ok(cidr)
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The number of leading bits that name the network.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, which a
    /// dual-stack listener reports for IPv4 clients) are compared as the IPv4 address they are.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.masked(ip.to_canonical()) == Some(self.network)
    }

    /// `ip` with the bits past the prefix cleared, when it is of this network's family.
    fn masked(&self, ip: IpAddr) -> Option<IpAddr> {
        let host_bits = |width: u32| width - u32::from(self.prefix_len);
        match ip {
            IpAddr::V4(v4) if self.network.is_ipv4() => {
                let mask = u32::MAX.checked_shl(host_bits(32)).unwrap_or(0);
                Some(IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & mask)))
            }
            IpAddr::V6(v6) if self.network.is_ipv6() => {
                let mask = u128::MAX.checked_shl(host_bits(128)).unwrap_or(0);
                Some(IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask)))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Cidr {
    type Error = InvalidCidr;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::fixtures::ip;

    #[test]
    fn an_ipv4_block_contains_exactly_its_addresses() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.0.0")));
        assert!(block.contains(ip("10.1.255.255")));
        assert!(!block.contains(ip("10.2.0.0")));
        assert!(!block.contains(ip("10.0.255.255")));
        assert!(!block.contains(ip("::1")));
        assert_eq!(block.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn an_ipv6_block_contains_exactly_its_addresses() {
        let block = Cidr::parse("2001:db8::/32").unwrap();
        assert!(block.contains(ip("2001:db8::1")));
        assert!(block.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!block.contains(ip("2001:db9::")));
        assert!(!block.contains(ip("10.0.0.1")));
        assert_eq!(block.prefix_len(), 32);
    }

    #[test]
    fn a_bare_address_is_a_block_of_one() {
        let v4 = Cidr::parse("192.0.2.10").unwrap();
        assert_eq!(v4.to_string(), "192.0.2.10/32");
        assert!(v4.contains(ip("192.0.2.10")));
        assert!(!v4.contains(ip("192.0.2.11")));
        let v6 = Cidr::parse("2001:db8::10").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::10/128");
        assert!(!v6.contains(ip("2001:db8::11")));
    }

    #[test]
    fn zero_length_prefixes_contain_their_whole_family() {
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.9"))
        );
        assert!(
            !Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("2001:db8::1"))
        );
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv4_mapped_clients_and_blocks_are_treated_as_ipv4() {
        let block = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("::ffff:10.9.8.7")));
        assert!(!block.contains(ip("::ffff:11.0.0.1")));
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped, block);
    }

    #[test]
    fn malformed_blocks_and_blocks_with_host_bits_are_refused() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/08x",
            "10.0.0/8",
            "010.0.0.0/8",
            "example.com",
            "10.0.0.0/8/8",
            "fe80::1%eth0/64",
            "10.0.0.0/0008",
        ] {
            assert_eq!(Cidr::parse(bad), Err(InvalidCidr::Shape), "{bad:?}");
        }
        assert_eq!(Cidr::parse("10.1.2.3/8"), Err(InvalidCidr::HostBitsSet));
        assert_eq!(Cidr::parse("2001:db8::1/32"), Err(InvalidCidr::HostBitsSet));
    }

    // Property tests of what a policy is read from, over any text a tenant can send.
    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        // Any text: no panic; what parses prints as a block that parses back to itself and
        // holds its own network address.
        #[test]
        fn an_accepted_cidr_round_trips_and_holds_its_network(
            text in prop_oneof![
                crate::any_text(),
                "[0-9a-f:.]{1,20}(/[0-9+]{0,4})?",
                "::ffff:[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,3}",
            ],
        ) {
            if let Ok(block) = Cidr::parse(&text) {
                let width = if block.network().is_ipv4() { 32 } else { 128 };
                prop_assert!(block.prefix_len() <= width);
                prop_assert!(block.contains(block.network()));
                prop_assert_eq!(Cidr::parse(&block.to_string()), Ok(block));
                let json = serde_json::to_string(&block).unwrap();
                prop_assert_eq!(serde_json::from_str::<Cidr>(&json).unwrap(), block);
            }
        }

        // An address with any length: accepted exactly when the length fits and no host bit
        // is set, and then the block holds the address.
        #[test]
        fn an_address_with_a_length_is_a_block_exactly_when_its_host_bits_are_clear(
            ip in any::<IpAddr>(),
            length in 0u8..=140,
            clear in any::<bool>(),
        ) {
            let width: u8 = if ip.is_ipv4() { 32 } else { 128 };
            // Half the time, clear the host bits, so that acceptance is tested too.
            let ip = match (clear, ip) {
                (true, IpAddr::V4(v4)) if length <= width => IpAddr::V4(Ipv4Addr::from_bits(
                    v4.to_bits() & u32::MAX.checked_shl(u32::from(width - length)).unwrap_or(0),
                )),
                (true, IpAddr::V6(v6)) if length <= width => IpAddr::V6(Ipv6Addr::from_bits(
                    v6.to_bits() & u128::MAX.checked_shl(u32::from(width - length)).unwrap_or(0),
                )),
                _ => ip,
            };
            let parsed = Cidr::parse(&format!("{ip}/{length}"));
            if length > width {
                prop_assert_eq!(parsed, Err(InvalidCidr::Shape));
            } else {
                let host_bits_clear = match ip {
                    IpAddr::V4(v4) => v4.to_bits().checked_shl(u32::from(length)).unwrap_or(0) == 0,
                    IpAddr::V6(v6) => v6.to_bits().checked_shl(u32::from(length)).unwrap_or(0) == 0,
                };
                prop_assert_eq!(parsed.is_ok(), host_bits_clear, "{}/{}", ip, length);
                if let Ok(block) = parsed {
                    prop_assert!(block.contains(ip));
                }
            }
            // A bare address is the block of that one address.
            let single = Cidr::parse(&ip.to_string());
            prop_assert!(single.is_ok_and(|block| block.contains(ip)));
        }
    }
}
