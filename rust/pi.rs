// SPDX-License-Identifier: GPL-2.0

//! Protection information formats: pure logic, no I/O.
//!
//! A [`Profile`] is validated once, when a device is configured; the I/O
//! path trusts it. Guards are computed with the kernel's own routines
//! (`crc_t10dif_update`, `crc64_nvme`, `csum_partial`), see [`guard`].
//!
//! Layout of one interval's metadata (`metadata_size` bytes):
//!
//! ```text
//!   [ opaque prefix (pi_offset) | PI tuple (8 or 16) | opaque suffix ]
//! ```
//!
//! The guard covers the interval's data followed by the opaque prefix, as
//! the block layer computes it (block/t10-pi.c).

pub(crate) mod guard;
pub(crate) mod tuple;

pub(crate) use guard::Guard;
pub(crate) use tuple::Tuple;

/// Guard checksum of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Csum {
    /// No PI tuple: metadata is opaque.
    None,
    /// IP checksum in an 8-byte T10 tuple.
    Ip,
    /// CRC16 T10-DIF in an 8-byte T10 tuple.
    Crc16,
    /// CRC64-NVMe in a 16-byte tuple with a 48-bit reference tag.
    Crc64,
}

impl Csum {
    /// Parses the user-visible name (`none`, `ip`, `crc16`, `crc64`).
    pub(crate) fn parse(s: &[u8]) -> Option<Self> {
        let s = s.strip_suffix(b"\n").unwrap_or(s);
        match s {
            b"none" | b"nop" => Some(Csum::None),
            b"ip" => Some(Csum::Ip),
            b"crc16" | b"crc" | b"t10dif" => Some(Csum::Crc16),
            b"crc64" => Some(Csum::Crc64),
            _ => None,
        }
    }

    /// The user-visible name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Csum::None => "none",
            Csum::Ip => "ip",
            Csum::Crc16 => "crc16",
            Csum::Crc64 => "crc64",
        }
    }

    /// Size of the PI tuple in bytes.
    pub(crate) fn tuple_size(self) -> u32 {
        match self {
            Csum::None => 0,
            Csum::Ip | Csum::Crc16 => 8,
            Csum::Crc64 => 16,
        }
    }
}

/// What a user asks for; [`Profile::new`] validates it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProfileConfig {
    /// Guard checksum.
    pub(crate) csum: Csum,
    /// Type 1 (reference tag checked) instead of Type 3. Ignored without a
    /// checksum.
    pub(crate) ref_tag: bool,
    /// Logical block size in bytes.
    pub(crate) block_size: u32,
    /// Metadata bytes per interval; 0 picks the tuple size, or, without a
    /// checksum, means no metadata at all (a plain disk).
    pub(crate) metadata_size: u32,
    /// Offset of the tuple in the metadata.
    pub(crate) pi_offset: u32,
    /// Protection interval in bytes; 0 picks the block size.
    pub(crate) interval: u32,
}

/// A validated protection format.
///
/// # Invariants
///
/// - `block_shift` is 9..=12 and `interval_shift` is 9..=`block_shift`.
/// - `metadata_size` is at most 255 and, with a checksum, at least
///   `pi_offset + csum.tuple_size()`; without one, `pi_offset` is 0, and a
///   `metadata_size` of 0 means the device has no integrity profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Profile {
    csum: Csum,
    ref_tag: bool,
    block_shift: u32,
    interval_shift: u32,
    metadata_size: u32,
    pi_offset: u32,
}

/// Largest metadata size the block layer can describe (`unsigned char`).
pub(crate) const MAX_METADATA: usize = 255;

/// The escape application tag: checks are skipped for such a tuple.
pub(crate) const APP_ESCAPE: u16 = 0xffff;

fn shift_of(v: u32) -> Option<u32> {
    if v.is_power_of_two() {
        Some(v.trailing_zeros())
    } else {
        None
    }
}

impl Profile {
    /// Validates a configuration. On error, the message says why in one
    /// line, for the kernel log.
    pub(crate) fn new(c: &ProfileConfig) -> Result<Self, &'static str> {
        let block_shift = match shift_of(c.block_size) {
            Some(s @ 9..=12) => s,
            _ => return Err("blocksize must be 512, 1024, 2048 or 4096"),
        };
        let interval_shift = match c.interval {
            0 => block_shift,
            i => match shift_of(i) {
                Some(s) if (9..=block_shift).contains(&s) => s,
                _ => return Err("interval must be a power of two from 512 to blocksize"),
            },
        };
        let tuple = c.csum.tuple_size();
        let metadata_size = match (c.csum, c.metadata_size) {
            (Csum::None, m) => m,
            (_, 0) => tuple,
            (_, m) => m,
        };
        if metadata_size as usize > MAX_METADATA {
            return Err("metadata_size must be at most 255");
        }
        if c.csum == Csum::None {
            if c.pi_offset != 0 {
                return Err("pi_offset needs a checksum (csum=none has no PI tuple)");
            }
        } else if c
            .pi_offset
            .checked_add(tuple)
            .is_none_or(|end| end > metadata_size)
        {
            return Err("pi_offset + PI tuple size (8, or 16 for crc64) exceeds metadata_size");
        }
        // INVARIANT: checked above.
        Ok(Self {
            csum: c.csum,
            ref_tag: c.ref_tag && c.csum != Csum::None,
            block_shift,
            interval_shift,
            metadata_size,
            pi_offset: c.pi_offset,
        })
    }

    /// Guard checksum.
    pub(crate) fn csum(&self) -> Csum {
        self.csum
    }

    /// Whether this is Type 1 (reference tag checked).
    pub(crate) fn ref_tag(&self) -> bool {
        self.ref_tag
    }

    /// Logical block size in bytes.
    pub(crate) fn block_size(&self) -> u32 {
        1 << self.block_shift
    }

    /// log2 of the protection interval.
    pub(crate) fn interval_shift(&self) -> u32 {
        self.interval_shift
    }

    /// Protection interval in bytes.
    pub(crate) fn interval(&self) -> usize {
        1 << self.interval_shift
    }

    /// Whether the device carries metadata (has an integrity profile).
    pub(crate) fn has_metadata(&self) -> bool {
        self.metadata_size > 0
    }

    /// Metadata bytes per interval.
    pub(crate) fn metadata_size(&self) -> usize {
        self.metadata_size as usize
    }

    /// Offset of the tuple in the metadata.
    pub(crate) fn pi_offset(&self) -> usize {
        self.pi_offset as usize
    }

    /// Size of the PI tuple (0 without checksum).
    pub(crate) fn tuple_size(&self) -> usize {
        self.csum.tuple_size() as usize
    }

    /// Bytes of the tuple usable as a tag, as the NVMe driver reports them:
    /// the app tag, plus the ref tag for Type 3.
    pub(crate) fn tag_size(&self) -> u32 {
        match (self.csum, self.ref_tag) {
            (Csum::None, _) => 0,
            (_, true) => 2,
            (Csum::Crc64, false) => 2 + 6,
            (_, false) => 2 + 4,
        }
    }

    /// Mask of the reference tag bits: 32, or 48 for CRC64.
    pub(crate) fn ref_mask(&self) -> u64 {
        match self.csum {
            Csum::Crc64 => (1 << 48) - 1,
            _ => u64::from(u32::MAX),
        }
    }

    /// The reference tag a Type 1 tuple of physical interval `interval`
    /// carries.
    pub(crate) fn expected_ref(&self, interval: u64) -> u64 {
        interval & self.ref_mask()
    }

    /// Interval number of a 512-byte sector (which must be interval
    /// aligned for the result to be the interval's start).
    pub(crate) fn sector_to_interval(&self, sector: u64) -> u64 {
        sector >> (self.interval_shift - 9)
    }

    /// Whether a tuple disables checking: Type 1 with the escape app tag,
    /// Type 3 with escape app and reference tags.
    pub(crate) fn is_escape(&self, t: &Tuple) -> bool {
        t.app == APP_ESCAPE && (self.ref_tag || t.reftag == self.ref_mask())
    }

    /// Fills `md` (one interval's metadata) with what a never-written
    /// interval reads as: zero opaque bytes and an all-ones (escape) tuple.
    pub(crate) fn fill_escape(&self, md: &mut [u8]) {
        md.fill(0);
        self.fill_escape_tuple(md);
    }

    /// Sets the tuple in `md` to escape values (all ones), keeping the
    /// opaque bytes.
    pub(crate) fn fill_escape_tuple(&self, md: &mut [u8]) {
        let (off, len) = (self.pi_offset(), self.tuple_size());
        if let Some(t) = md.get_mut(off..off + len) {
            t.fill(0xff);
        }
    }

    /// Starts a guard for one interval.
    pub(crate) fn guard(&self) -> Guard {
        Guard::new(self.csum)
    }

    /// Finishes `guard` over the opaque prefix of `md` and returns the value
    /// that belongs in the tuple.
    pub(crate) fn finish_guard(&self, mut guard: Guard, md: &[u8]) -> u64 {
        if let Some(prefix) = md.get(..self.pi_offset()) {
            guard.update(prefix);
        }
        guard.finish()
    }

    /// The tuple stored in `md` (one interval's metadata).
    pub(crate) fn read_tuple(&self, md: &[u8]) -> Option<Tuple> {
        let (off, len) = (self.pi_offset(), self.tuple_size());
        Tuple::decode(self.csum, md.get(off..off + len)?)
    }

    /// Writes `t` into `md` (one interval's metadata).
    pub(crate) fn write_tuple(&self, md: &mut [u8], t: &Tuple) {
        let (off, len) = (self.pi_offset(), self.tuple_size());
        if let Some(dst) = md.get_mut(off..off + len) {
            t.encode(self.csum, dst);
        }
    }

    /// Spoils `field` of the tuple in `md` (one interval's metadata) by
    /// flipping every bit of its least significant byte. Returns false,
    /// changing nothing, if the format has no tuple.
    pub(crate) fn corrupt(&self, md: &mut [u8], field: TupleField) -> bool {
        let Some(mut t) = self.read_tuple(md) else {
            return false;
        };
        match field {
            TupleField::Guard => t.guard ^= 0xff,
            TupleField::App => t.app ^= 0xff,
            TupleField::Ref => t.reftag ^= 0xff,
        }
        self.write_tuple(md, &t);
        true
    }

    /// Generates PI as a PRACT device does: the computed guard, app tag 0,
    /// and the interval as reference tag (also for Type 3, as Linux does).
    pub(crate) fn generate(&self, md: &mut [u8], guard: u64, interval: u64) {
        let t = Tuple {
            guard,
            app: 0,
            reftag: self.expected_ref(interval),
        };
        self.write_tuple(md, &t);
    }

    /// Checks a tuple against the computed guard and the physical interval
    /// it belongs to, honouring escapes and the requested checks.
    pub(crate) fn check(
        &self,
        t: &Tuple,
        guard: u64,
        interval: u64,
        checks: Checks,
    ) -> Result<(), PiError> {
        if self.csum == Csum::None || self.is_escape(t) {
            return Ok(());
        }
        if checks.reftag && self.ref_tag && t.reftag != self.expected_ref(interval) {
            return Err(PiError::Ref);
        }
        if let Some(app) = checks.apptag {
            if t.app != app {
                return Err(PiError::App);
            }
        }
        if checks.guard && t.guard != guard {
            return Err(PiError::Guard);
        }
        Ok(())
    }
}

/// Which parts of a tuple to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checks {
    /// Compare the guard.
    pub(crate) guard: bool,
    /// Compare the reference tag (Type 1 only).
    pub(crate) reftag: bool,
    /// Compare the application tag with this value.
    pub(crate) apptag: Option<u16>,
}

impl Checks {
    /// Guard and reference tag: what the device checks on its own.
    pub(crate) const DEVICE: Checks = Checks {
        guard: true,
        reftag: true,
        apptag: None,
    };

    /// No check at all.
    pub(crate) const NONE: Checks = Checks {
        guard: false,
        reftag: false,
        apptag: None,
    };

    /// Every check of `self` and of `other` (`other`'s app tag wins).
    pub(crate) fn union(self, other: Checks) -> Checks {
        Checks {
            guard: self.guard || other.guard,
            reftag: self.reftag || other.reftag,
            apptag: other.apptag.or(self.apptag),
        }
    }
}

/// A field of a PI tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TupleField {
    /// The guard tag.
    Guard,
    /// The reference tag.
    Ref,
    /// The application tag.
    App,
}

/// Which check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PiError {
    /// Guard mismatch.
    Guard,
    /// Reference tag mismatch.
    Ref,
    /// Application tag mismatch.
    App,
}
