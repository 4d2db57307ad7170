// SPDX-License-Identifier: GPL-2.0

//! PI tuple encoding: the 8-byte T10 tuple (`struct t10_pi_tuple`) and the
//! 16-byte NVMe tuple with 64-bit guard and 48-bit reference tag
//! (`struct crc64_pi_tuple`). All fields are big endian, except the IP
//! checksum guard, which Linux stores in CPU byte order.

use super::Csum;

/// The fields of a PI tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tuple {
    /// Guard tag (16 or 64 bits).
    pub(crate) guard: u64,
    /// Application tag.
    pub(crate) app: u16,
    /// Reference tag (32 or 48 bits).
    pub(crate) reftag: u64,
}

fn be48(b: &[u8]) -> u64 {
    b.iter()
        .take(6)
        .fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

impl Tuple {
    /// Decodes a tuple of the given format from exactly its bytes.
    pub(crate) fn decode(csum: Csum, b: &[u8]) -> Option<Self> {
        match csum {
            Csum::None => None,
            Csum::Crc16 | Csum::Ip => {
                let b: &[u8; 8] = b.try_into().ok()?;
                let guard = [b[0], b[1]];
                Some(Tuple {
                    guard: u64::from(if csum == Csum::Ip {
                        u16::from_ne_bytes(guard)
                    } else {
                        u16::from_be_bytes(guard)
                    }),
                    app: u16::from_be_bytes([b[2], b[3]]),
                    reftag: u64::from(u32::from_be_bytes([b[4], b[5], b[6], b[7]])),
                })
            }
            Csum::Crc64 => {
                let b: &[u8; 16] = b.try_into().ok()?;
                let mut guard = [0u8; 8];
                guard.copy_from_slice(&b[..8]);
                Some(Tuple {
                    guard: u64::from_be_bytes(guard),
                    app: u16::from_be_bytes([b[8], b[9]]),
                    reftag: be48(&b[10..16]),
                })
            }
        }
    }

    /// Encodes the tuple into exactly its bytes.
    pub(crate) fn encode(&self, csum: Csum, out: &mut [u8]) {
        match csum {
            Csum::None => {}
            Csum::Crc16 | Csum::Ip => {
                if let Ok(o) = <&mut [u8; 8]>::try_from(out) {
                    let guard = self.guard as u16;
                    o[..2].copy_from_slice(&if csum == Csum::Ip {
                        guard.to_ne_bytes()
                    } else {
                        guard.to_be_bytes()
                    });
                    o[2..4].copy_from_slice(&self.app.to_be_bytes());
                    o[4..8].copy_from_slice(&(self.reftag as u32).to_be_bytes());
                }
            }
            Csum::Crc64 => {
                if let Ok(o) = <&mut [u8; 16]>::try_from(out) {
                    o[..8].copy_from_slice(&self.guard.to_be_bytes());
                    o[8..10].copy_from_slice(&self.app.to_be_bytes());
                    o[10..16].copy_from_slice(&self.reftag.to_be_bytes()[2..8]);
                }
            }
        }
    }
}
