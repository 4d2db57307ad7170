// SPDX-License-Identifier: GPL-2.0

//! Fault injection commands (see [`crate::inject`] and
//! Documentation/rdif.rst): arming rules, and one-shot corruption of what
//! is stored.

use super::Device;
use crate::{
    blk::{self, Status},
    inject::{Command, Field, ReadFault, ReadFaults, WriteClaim, WriteFault},
    pi::Csum,
    stats::Counter,
    store::StoreError,
};
use kernel::prelude::*;

/// Most intervals one `corrupt` command without `persistent` changes in
/// the store (each may need a block of memory).
const MAX_ONE_SHOT: u64 = 65536;

impl Device {
    /// The one-shot write fault of `claim` took effect: counts it (a
    /// corruption counts its intervals as it spoils them) and uses the rule
    /// up.
    pub(super) fn fault_took_effect(&self, claim: WriteClaim<'_>) {
        match claim.fault() {
            WriteFault::Lost => self.stats.inc(Counter::InjLost),
            WriteFault::Misdirect(_) => self.stats.inc(Counter::InjMisdirected),
            WriteFault::Corrupt(..) => {}
        }
        claim.spend();
    }

    /// Applies the persistent corruptions of `faults` to the metadata `md`
    /// of `interval`; returns whether any did.
    pub(super) fn corrupt_metadata(
        &self,
        interval: u64,
        md: &mut [u8],
        faults: &ReadFaults,
    ) -> bool {
        let mut corrupted = false;
        for f in faults.at(interval) {
            if let Field::Tuple(t) = f {
                corrupted |= self.cfg.profile.corrupt(md, t);
            }
        }
        corrupted
    }

    /// Copies the metadata of `interval` into `md` as a read would return
    /// it (persistent corruptions applied), for inspection. A pass-through
    /// device has none of its own (`IO_ERROR`).
    pub(crate) fn metadata(&self, interval: u64, md: &mut [u8]) -> Result<(), Status> {
        if self.lower.is_some()
            || interval >= self.nr_intervals()
            || md.len() != self.cfg.profile.metadata_size()
        {
            return Err(Status::IO_ERROR);
        }
        self.store.read(interval, 1, true, |_, _, m| {
            md.copy_from_slice(m);
            Ok::<(), Status>(())
        })?;
        self.corrupt_metadata(interval, md, &self.inject.read_faults(interval, 1));
        Ok(())
    }

    /// Carries out an injection command. On error nothing changed, and the
    /// message says why.
    pub(crate) fn inject(&self, cmd: Command) -> Result<(), (Error, &'static str)> {
        let inval = |msg| Err((EINVAL, msg));
        let nr = self.nr_intervals();
        let has_tuple = self.cfg.profile.csum() != Csum::None;
        match cmd {
            Command::Corrupt { range, .. } if range.end() > nr => {
                inval("range beyond the end of the device")
            }
            Command::Corrupt {
                field: Field::Tuple(_),
                ..
            }
            | Command::Write {
                fault: WriteFault::Corrupt(Field::Tuple(_), _),
                ..
            } if !has_tuple => inval("the format has no PI tuple"),
            Command::Corrupt {
                persistent: false,
                ..
            } if self.lower.is_some() => inval(
                "a pass-through device stores nothing: use 'persistent' (reads) or 'write' (in flight)",
            ),
            Command::Write {
                fault: WriteFault::Corrupt(..),
                ..
            } if self.lower.is_none() => {
                inval("'corrupt ... write' needs a pass-through device (lower)")
            }
            Command::Corrupt {
                field,
                range,
                persistent: true,
            } => self
                .inject
                .arm_read(ReadFault { range, field })
                .map_err(|e| (e, "too many persistent corruptions armed")),
            Command::Corrupt {
                range,
                persistent: false,
                ..
            } if range.count > MAX_ONE_SHOT => {
                inval("a one-shot corrupt takes at most 65536 intervals (persistent has no limit)")
            }
            Command::Corrupt {
                field,
                range,
                persistent: false,
            } => self
                .corrupt_stored(field, range.first, range.end())
                .map_err(|e| {
                    let why = if e == ENOMEM {
                        "out of memory"
                    } else if e == EINTR {
                        "interrupted (the intervals before were corrupted)"
                    } else {
                        "store I/O failed"
                    };
                    (e, why)
                }),
            Command::Write {
                fault: WriteFault::Misdirect(t),
                ..
            } if t >= nr => inval("target beyond the end of the device"),
            Command::Write { range: Some(r), .. } if r.end() > nr => {
                inval("range beyond the end of the device")
            }
            Command::Write { fault, range } => self
                .inject
                .arm_write(range, fault)
                .map_err(|e| (e, "too many write faults armed")),
            Command::Fail { dir, count, how } => {
                self.inject.arm_fail(dir, count, how);
                Ok(())
            }
            Command::Clear => {
                self.inject.clear();
                Ok(())
            }
        }
    }

    /// Spoils `field` of the stored intervals `first..end` now (a later
    /// write of an interval heals it). Takes the work item's lock (the I/O
    /// path of a backing store) for one interval at a time, with the
    /// flags of a backing store's I/O, and gives way to other tasks and to
    /// signals between intervals. A memory store changes the interval
    /// under its block's lock, so a racing write of the interval comes
    /// whole before or after the corruption.
    fn corrupt_stored(&self, field: Field, first: u64, end: u64) -> Result<(), Error> {
        let p = &self.cfg.profile;
        for i in first..end {
            if i != first {
                blk::cond_resched();
                if kernel::current!().signal_pending() {
                    return Err(EINTR);
                }
            }
            let _batch = self.batch.lock();
            let done = blk::with_backing_io(|| {
                self.store.modify(i, |data, md| match field {
                    Field::Data => {
                        if let Some(b) = data.first_mut() {
                            *b ^= 0xff;
                        }
                    }
                    Field::Tuple(t) => {
                        p.corrupt(md, t);
                    }
                })
            });
            match done {
                Ok(()) => self.stats.inc(Counter::InjCorrupt),
                Err(StoreError::NoMemory) => return Err(ENOMEM),
                Err(StoreError::Io) => return Err(EIO),
            }
        }
        Ok(())
    }
}
