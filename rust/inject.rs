// SPDX-License-Identifier: GPL-2.0

//! Error injection: what a device has been told to do wrong.
//!
//! Commands come as text through debugfs (`inject`, see [`Command`]). The
//! I/O path asks the [`Injector`] three questions: should this request
//! fail ([`Injector::fail`]), does this write go astray
//! ([`Injector::claim_write`]), and which intervals of this read come back
//! corrupted ([`Injector::read_faults`]). While nothing is armed each
//! question costs one relaxed load.
//!
//! Intervals are protection intervals: the interval of byte offset `o` is
//! `o / interval size` (the logical block number when the interval is the
//! block size, the default).

use crate::{pi::TupleField, settings::parse_u64};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    fmt, new_spinlock, new_spinlock_irq,
    prelude::*,
    sync::{SpinLock, SpinLockIrq},
};

/// Most rules armed at once (each kind of rule has its own budget).
pub(crate) const MAX_RULES: usize = 16;

/// What a `corrupt` command corrupts in each interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// A field of the PI tuple.
    Tuple(TupleField),
    /// The first data byte.
    Data,
}

impl Field {
    fn parse(s: &[u8]) -> Option<Self> {
        Some(match s {
            b"guard" => Field::Tuple(TupleField::Guard),
            b"ref" => Field::Tuple(TupleField::Ref),
            b"app" => Field::Tuple(TupleField::App),
            b"data" => Field::Data,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Field::Tuple(TupleField::Guard) => "guard",
            Field::Tuple(TupleField::Ref) => "ref",
            Field::Tuple(TupleField::App) => "app",
            Field::Data => "data",
        }
    }
}

/// A run of intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    /// First interval.
    pub(crate) first: u64,
    /// Number of intervals, at least one.
    pub(crate) count: u64,
}

impl Range {
    /// One past the last interval.
    pub(crate) fn end(&self) -> u64 {
        self.first.saturating_add(self.count)
    }

    /// Whether the range shares an interval with `count` intervals at
    /// `first`.
    pub(crate) fn overlaps(&self, first: u64, count: u64) -> bool {
        first < self.end() && self.first < first.saturating_add(count)
    }

    /// Whether the range holds interval `i`.
    pub(crate) fn contains(&self, i: u64) -> bool {
        self.first <= i && i < self.end()
    }
}

/// Which requests a `fail` command applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
    Any,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
            Direction::Any => "any",
        }
    }

    fn matches(self, is_write: bool) -> bool {
        match self {
            Direction::Read => !is_write,
            Direction::Write => is_write,
            Direction::Any => true,
        }
    }
}

/// How a `fail` command ends the requests it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `BLK_STS_PROTECTION` (`EILSEQ`).
    Protection,
    /// `BLK_STS_IOERR` (`EIO`).
    IoError,
    /// Handed back to blk-mq as busy (`BLK_STS_RESOURCE`) and retried.
    Resource,
}

impl Failure {
    fn parse(s: &[u8]) -> Option<Self> {
        Some(match s {
            b"protection" => Failure::Protection,
            b"ioerr" => Failure::IoError,
            b"resource" => Failure::Resource,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Failure::Protection => "protection",
            Failure::IoError => "ioerr",
            Failure::Resource => "resource",
        }
    }
}

/// What happens to a write hit by a write rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteFault {
    /// Stored with its PI unchanged at this interval instead of its own.
    Misdirect(u64),
    /// Acknowledged, not stored.
    Lost,
    /// Sent down to a lower device with this field of each interval in
    /// the range corrupted (pass-through only).
    Corrupt(Field, Range),
}

/// A command written to the `inject` file.
///
/// ```text
/// corrupt guard|ref|app|data FIRST [COUNT] [persistent|write]
/// misdirect TARGET [FIRST [COUNT]]
/// lost [FIRST [COUNT]]
/// fail read|write|any N protection|ioerr|resource
/// clear
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Spoil one field of each interval of `range`: in the store now, or
    /// (`persistent`) in everything read from it until cleared.
    Corrupt {
        field: Field,
        range: Range,
        persistent: bool,
    },
    /// The next write overlapping `range` (any write if `None`) gets
    /// `fault`.
    Write {
        fault: WriteFault,
        range: Option<Range>,
    },
    /// The next `count` requests of direction `dir` fail with `how`.
    Fail {
        dir: Direction,
        count: u32,
        how: Failure,
    },
    /// Disarm everything.
    Clear,
}

fn number(tok: Option<&[u8]>) -> Result<u64, &'static str> {
    tok.and_then(parse_u64).ok_or("expected a number")
}

/// `[FIRST [COUNT]]` at the end of a command; `COUNT` defaults to one.
fn opt_range<'a>(mut toks: impl Iterator<Item = &'a [u8]>) -> Result<Option<Range>, &'static str> {
    let Some(first) = toks.next() else {
        return Ok(None);
    };
    let first = number(Some(first))?;
    let count = match toks.next() {
        Some(c) => number(Some(c))?,
        None => 1,
    };
    if toks.next().is_some() {
        return Err("too many arguments");
    }
    if count == 0 {
        return Err("count must be at least 1");
    }
    Ok(Some(Range { first, count }))
}

impl Command {
    /// Parses one command (surrounding white space is ignored). The error
    /// says what is wrong, for the kernel log.
    pub(crate) fn parse(line: &[u8]) -> Result<Self, &'static str> {
        let mut toks = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty());
        let cmd = toks.next().ok_or("empty command")?;
        match cmd {
            b"corrupt" => {
                let field = toks
                    .next()
                    .and_then(Field::parse)
                    .ok_or("corrupt: field must be guard, ref, app or data")?;
                let first = number(toks.next())?;
                let mut count = 1;
                let mut persistent = false;
                let mut write = false;
                for t in toks {
                    if t == b"persistent" && !persistent && !write {
                        persistent = true;
                    } else if t == b"write" && !persistent && !write {
                        write = true;
                    } else if count == 1 && !persistent && !write {
                        count = number(Some(t))?;
                    } else {
                        return Err("corrupt: unexpected argument");
                    }
                }
                if count == 0 {
                    return Err("count must be at least 1");
                }
                let range = Range { first, count };
                if write {
                    return Ok(Command::Write {
                        fault: WriteFault::Corrupt(field, range),
                        range: Some(range),
                    });
                }
                Ok(Command::Corrupt {
                    field,
                    range,
                    persistent,
                })
            }
            b"misdirect" => {
                let target = number(toks.next())?;
                Ok(Command::Write {
                    fault: WriteFault::Misdirect(target),
                    range: opt_range(toks)?,
                })
            }
            b"lost" => Ok(Command::Write {
                fault: WriteFault::Lost,
                range: opt_range(toks)?,
            }),
            b"fail" => {
                let dir = match toks.next() {
                    Some(b"read") => Direction::Read,
                    Some(b"write") => Direction::Write,
                    Some(b"any") => Direction::Any,
                    _ => return Err("fail: direction must be read, write or any"),
                };
                let count = u32::try_from(number(toks.next())?)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("fail: N must be 1 to 4294967295")?;
                let how = toks
                    .next()
                    .and_then(Failure::parse)
                    .ok_or("fail: status must be protection, ioerr or resource")?;
                if toks.next().is_some() {
                    return Err("too many arguments");
                }
                Ok(Command::Fail { dir, count, how })
            }
            b"clear" => match toks.next() {
                None => Ok(Command::Clear),
                Some(_) => Err("too many arguments"),
            },
            _ => Err("unknown command: use corrupt, misdirect, lost, fail or clear"),
        }
    }
}

/// An armed `fail` command.
#[derive(Clone, Copy)]
struct Fail {
    dir: Direction,
    left: u32,
    how: Failure,
}

/// A `corrupt ... persistent` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadFault {
    /// Which intervals.
    pub(crate) range: Range,
    /// What is corrupted in them.
    pub(crate) field: Field,
}

/// The request rules of one device (persistent corruptions are apart).
struct Rules {
    fail: Option<Fail>,
    writes: KVec<(Option<Range>, WriteFault)>,
}

impl Rules {
    fn any(&self) -> bool {
        self.fail.is_some() || !self.writes.is_empty()
    }
}

/// The persistent corruptions that apply to one read, copied out of the
/// lock: at most [`MAX_RULES`].
pub(crate) struct ReadFaults {
    /// `None` while nothing is armed, so that the common case fills in no
    /// array on every read.
    rules: Option<[Option<ReadFault>; MAX_RULES]>,
}

impl ReadFaults {
    /// No corruption at all.
    pub(crate) const NONE: ReadFaults = ReadFaults { rules: None };

    /// Whether any rule applies.
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.as_ref().is_none_or(|r| r[0].is_none())
    }

    /// The fields to corrupt in interval `i`.
    pub(crate) fn at(&self, i: u64) -> impl Iterator<Item = Field> + '_ {
        self.rules
            .iter()
            .flatten()
            .map_while(|r| r.as_ref())
            .filter(move |r| r.range.contains(i))
            .map(|r| r.field)
    }
}

/// A device's injection state.
///
/// # Invariants
///
/// `armed` is true whenever `rules` holds a rule, and `armed_reads`
/// whenever `reads` does (each is updated under its lock after every
/// change), so a false flag means there is nothing to do.
#[pin_data]
pub(crate) struct Injector {
    armed: AtomicBool,
    armed_reads: AtomicBool,
    #[pin]
    rules: SpinLock<Rules>,
    /// The persistent corruptions. Taken with interrupts off, and no other
    /// lock is taken while it is held: a pass-through device's reads ask
    /// [`Injector::read_faults`] where the lower device completes them,
    /// which may be interrupt context.
    #[pin]
    reads: SpinLockIrq<KVec<ReadFault>>,
}

/// A one-shot write rule taken out of the armed rules for one write.
///
/// The one policy for every backend: a rule is used up exactly when its
/// effect happened, that is when the write it hit completes, or fails
/// because of it. The write calls [`WriteClaim::spend`] then. A write that
/// is retried instead (a shortage met on the way) drops its claim, which
/// arms the rule again, first in line, so that the retried write meets it
/// again; another write meanwhile does not (the claim is that write's).
pub(crate) struct WriteClaim<'a> {
    inj: &'a Injector,
    range: Option<Range>,
    fault: WriteFault,
    spent: bool,
}

impl WriteClaim<'_> {
    /// What happens to the write.
    pub(crate) fn fault(&self) -> WriteFault {
        self.fault
    }

    /// The fault took effect: the rule is used up.
    pub(crate) fn spend(mut self) {
        self.spent = true;
    }
}

impl Drop for WriteClaim<'_> {
    fn drop(&mut self) {
        if self.spent {
            return;
        }
        let rule = (self.range, self.fault);
        // There is room unless other rules were armed meanwhile; then the
        // rule is dropped, as the write that met it was retried.
        self.inj.update(|r| {
            let _ = r.writes.insert_within_capacity(0, rule);
        });
    }
}

impl Injector {
    /// Nothing armed; room for [`MAX_RULES`] rules of each kind is
    /// allocated now, so arming never allocates under the lock.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Injector {
            armed: AtomicBool::new(false),
            armed_reads: AtomicBool::new(false),
            rules <- new_spinlock!(Rules {
                fail: None,
                writes: KVec::with_capacity(MAX_RULES, GFP_KERNEL)?,
            }),
            reads <- new_spinlock_irq!(KVec::with_capacity(MAX_RULES, GFP_KERNEL)?),
        }? Error)
    }

    fn armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    fn update<R>(&self, f: impl FnOnce(&mut Rules) -> R) -> R {
        let mut rules = self.rules.lock();
        let r = f(&mut rules);
        self.armed.store(rules.any(), Ordering::Relaxed);
        r
    }

    /// Arms a `fail` command, replacing any earlier one.
    pub(crate) fn arm_fail(&self, dir: Direction, count: u32, how: Failure) {
        self.update(|r| {
            r.fail = Some(Fail {
                dir,
                left: count,
                how,
            })
        });
    }

    /// Arms a one-shot write rule; `ENOSPC` if [`MAX_RULES`] are armed.
    pub(crate) fn arm_write(&self, range: Option<Range>, fault: WriteFault) -> Result {
        self.update(|r| {
            r.writes
                .push_within_capacity((range, fault))
                .map_err(|_| ENOSPC)
        })
    }

    /// Arms a persistent read corruption; `ENOSPC` if [`MAX_RULES`] are
    /// armed.
    pub(crate) fn arm_read(&self, fault: ReadFault) -> Result {
        let mut reads = self.reads.lock();
        let r = reads.push_within_capacity(fault).map_err(|_| ENOSPC);
        self.armed_reads.store(!reads.is_empty(), Ordering::Relaxed);
        r
    }

    /// Disarms every rule.
    pub(crate) fn clear(&self) {
        self.update(|r| {
            r.fail = None;
            r.writes.clear();
        });
        let mut reads = self.reads.lock();
        reads.clear();
        self.armed_reads.store(false, Ordering::Relaxed);
    }

    /// Whether a request (a write if `is_write`) must fail, and how; counts
    /// it against the armed `fail` command.
    #[inline]
    pub(crate) fn fail(&self, is_write: bool) -> Option<Failure> {
        if !self.armed() {
            return None;
        }
        self.update(|r| {
            let f = r.fail.as_mut().filter(|f| f.dir.matches(is_write))?;
            let how = f.how;
            f.left -= 1;
            if f.left == 0 {
                r.fail = None;
            }
            Some(how)
        })
    }

    /// Takes the first armed write rule that a write of `count` intervals
    /// at `first` meets, if any, for that write alone (see [`WriteClaim`]).
    #[inline]
    pub(crate) fn claim_write(&self, first: u64, count: u64) -> Option<WriteClaim<'_>> {
        if !self.armed() {
            return None;
        }
        self.update(|r| {
            let i = r
                .writes
                .iter()
                .position(|(range, _)| range.is_none_or(|g| g.overlaps(first, count)))?;
            let (range, fault) = r.writes.remove(i).ok()?;
            Some(WriteClaim {
                inj: self,
                range,
                fault,
                spent: false,
            })
        })
    }

    /// The persistent corruptions that touch `count` intervals at `first`.
    #[inline]
    pub(crate) fn read_faults(&self, first: u64, count: u64) -> ReadFaults {
        if !self.armed_reads.load(Ordering::Relaxed) {
            return ReadFaults::NONE;
        }
        let mut out = [None; MAX_RULES];
        let reads = self.reads.lock();
        let hits = reads.iter().filter(|f| f.range.overlaps(first, count));
        for (slot, f) in out.iter_mut().zip(hits) {
            *slot = Some(*f);
        }
        ReadFaults { rules: Some(out) }
    }

    /// Lists the armed rules, one per line, in command syntax.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = self.rules.lock();
        if let Some(x) = &rules.fail {
            writeln!(f, "fail {} {} {}", x.dir.name(), x.left, x.how.name())?;
        }
        for (range, fault) in rules.writes.iter() {
            match fault {
                WriteFault::Misdirect(t) => write!(f, "misdirect {t}")?,
                WriteFault::Lost => write!(f, "lost")?,
                WriteFault::Corrupt(x, r) => {
                    writeln!(f, "corrupt {} {} {} write", x.name(), r.first, r.count)?;
                    continue;
                }
            }
            match range {
                Some(g) => writeln!(f, " {} {}", g.first, g.count)?,
                None => writeln!(f)?,
            }
        }
        drop(rules);
        for r in self.reads.lock().iter() {
            writeln!(
                f,
                "corrupt {} {} {} persistent",
                r.field.name(),
                r.range.first,
                r.range.count
            )?;
        }
        Ok(())
    }
}
