// SPDX-License-Identifier: GPL-2.0

//! Per-device debugfs files: `/sys/kernel/debug/rdif/<disk>/`.
//!
//! - `stats`: counters, `name value` per line; writing `reset` zeroes them.
//! - `inject`: error injection; write a command (see [`crate::inject`]),
//!   read the armed rules.
//! - `pi`: write `FIRST [COUNT]`, read that range's metadata as text.
//! - `metadata`: the whole metadata region as a read returns it, binary,
//!   `metadata_size` bytes per interval at offset `interval *
//!   metadata_size`.
//! - `powercut` (devices with `cache=1`): write `all`, `none`, `random
//!   SEED [PERCENT]` or `prefix N` to lose volatile writes as a power cut
//!   may (see [`crate::device::cache`]); one line in the log says what it
//!   did, and the `stats` file counts it.
//!
//! debugfs rather than configfs: injection and inspection are test hooks,
//! not configuration, they exist for every device (module-parameter
//! devices have no configfs directory), and they must not become ABI.

use crate::{
    blk::disk::QueueRef,
    device::{cache::plan::Policy, CutRefused, Device},
    inject::Command,
    pi::{Csum, MAX_METADATA},
};
use core::{
    num::NonZeroU64,
    sync::atomic::{AtomicU64, Ordering},
};
use kernel::{
    debugfs::{BinaryWriter, Dir, Scope, ScopedDir},
    fmt,
    fs::file,
    prelude::*,
    str::CString,
    sync::Arc,
    uaccess::{UserSliceReader, UserSliceWriter},
};

/// Most intervals one read of `pi` prints.
const MAX_PI_LINES: u64 = 4096;

/// Longest command accepted.
const MAX_LINE: usize = 128;

/// The `metadata` file.
pub(crate) struct MetadataFile(Arc<Device>);

/// What a device's debugfs files work on.
pub(crate) struct DebugData {
    dev: Arc<Device>,
    name: CString,
    /// The range the `pi` file shows.
    pi_first: AtomicU64,
    pi_count: AtomicU64,
    metadata: MetadataFile,
    /// The disk's queue, which a power cut freezes.
    queue: Option<QueueRef>,
}

/// The files of device `name`, in a directory of `root`; they go away when
/// the returned scope is dropped.
pub(crate) fn device_dir<'a>(
    root: &'a Dir,
    name: &'a CStr,
    dev: Arc<Device>,
    queue: Option<QueueRef>,
) -> Result<impl PinInit<Scope<DebugData>, Error> + 'a> {
    let data = DebugData {
        dev: dev.clone(),
        name: CString::try_from(name)?,
        pi_first: AtomicU64::new(0),
        pi_count: AtomicU64::new(16),
        metadata: MetadataFile(dev),
        queue,
    };
    Ok(root.scope(Ok::<_, Error>(data), name, populate))
}

fn populate<'d>(d: &'d DebugData, dir: &ScopedDir<'d, '_>) {
    dir.read_write_callback_file(c"stats", d, &stats_show, &stats_write);
    dir.read_write_callback_file(c"inject", d, &inject_show, &inject_write);
    dir.read_write_callback_file(c"powercut", d, &powercut_show, &powercut_write);
    if d.dev.profile().has_metadata() {
        dir.read_write_callback_file(c"pi", d, &pi_show, &pi_write);
        dir.read_binary_file(c"metadata", &d.metadata);
    }
}

/// Reads what user space wrote (one short line).
fn read_line<'b>(r: &mut UserSliceReader, buf: &'b mut [u8; MAX_LINE]) -> Result<&'b [u8]> {
    let len = r.len();
    let line = buf.get_mut(..len).ok_or(EINVAL)?;
    r.read_slice(line)?;
    Ok(line)
}

fn name(d: &DebugData) -> &str {
    d.name.to_str().unwrap_or("?")
}

fn stats_show(d: &DebugData, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    d.dev.stats.show(f)?;
    d.dev.show_cache(f)?;
    d.dev.show_file_io(f)
}

fn powercut_show(_d: &DebugData, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "all | none | random SEED [PERCENT] | prefix N")
}

fn powercut_write(d: &DebugData, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; MAX_LINE];
    let line = read_line(r, &mut buf)?.trim_ascii();
    let policy = Policy::parse(line).map_err(|msg| {
        pr_warn!("{}: powercut: {}\n", name(d), msg);
        EINVAL
    })?;
    let Some(queue) = &d.queue else {
        pr_warn!("{}: powercut: the disk has no queue\n", name(d));
        return Err(ENODEV);
    };
    let r = d.dev.power_cut(policy, queue).map_err(|e| {
        let (err, what) = match e {
            CutRefused::NoCache => (EINVAL, "the device has no write cache (cache=0)"),
            CutRefused::NoMemory => (ENOMEM, "out of memory"),
            CutRefused::Busy => (EBUSY, "writes keep coming: try again"),
            CutRefused::TooFew(n) => {
                pr_warn!(
                    "{}: powercut: prefix: the cache holds only {} volatile writes\n",
                    name(d),
                    n
                );
                return EINVAL;
            }
        };
        pr_warn!("{}: powercut: {}\n", name(d), what);
        err
    })?;
    pr_info!(
        "{}: power cut ({}): {} volatile writes: {} kept, {} lost, {} in part ({} blocks lost, {} intervals restored{})\n",
        name(d),
        core::str::from_utf8(line).unwrap_or("?"),
        r.epoch,
        r.kept,
        r.dropped,
        r.partial,
        r.blocks_dropped,
        r.restored,
        if r.failed > 0 { ", SOME NOT RESTORED" } else { "" }
    );
    Ok(())
}

fn stats_write(d: &DebugData, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; MAX_LINE];
    match read_line(r, &mut buf)?.trim_ascii() {
        b"reset" | b"0" => {
            d.dev.stats.reset();
            Ok(())
        }
        _ => {
            pr_warn!("{}: stats: write 'reset' to zero the counters\n", name(d));
            Err(EINVAL)
        }
    }
}

fn inject_show(d: &DebugData, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    d.dev.inject.show(f)
}

fn inject_write(d: &DebugData, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; MAX_LINE];
    let line = read_line(r, &mut buf)?;
    let res = Command::parse(line)
        .map_err(|msg| (EINVAL, msg))
        .and_then(|cmd| d.dev.inject(cmd));
    res.map_err(|(e, msg)| {
        pr_warn!("{}: inject: {}\n", name(d), msg);
        e
    })
}

fn pi_write(d: &DebugData, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; MAX_LINE];
    let line = read_line(r, &mut buf)?;
    let mut toks = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    let num = |t: Option<&[u8]>| t.and_then(crate::settings::parse_u64);
    let first = num(toks.next());
    let count = match toks.next() {
        None => Some(1),
        t => num(t),
    };
    let nr = d.dev.nr_intervals();
    match (first, count, toks.next()) {
        (Some(first), Some(count), None)
            if (1..=MAX_PI_LINES).contains(&count) && first.saturating_add(count) <= nr =>
        {
            d.pi_first.store(first, Ordering::Relaxed);
            d.pi_count.store(count, Ordering::Relaxed);
            Ok(())
        }
        _ => {
            pr_warn!(
                "{}: pi: write 'FIRST [COUNT]', COUNT 1 to {}, within the device's {} intervals\n",
                name(d),
                MAX_PI_LINES,
                nr
            );
            Err(EINVAL)
        }
    }
}

fn hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

fn pi_show(d: &DebugData, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let p = d.dev.profile();
    let first = d.pi_first.load(Ordering::Relaxed);
    let count = d.pi_count.load(Ordering::Relaxed);
    let end = first.saturating_add(count).min(d.dev.nr_intervals());
    let (ms, off, ts) = (p.metadata_size(), p.pi_offset(), p.tuple_size());
    let (gw, rw) = match p.csum() {
        Csum::Crc64 => (16, 12),
        _ => (4, 8),
    };
    if p.csum() == Csum::None {
        writeln!(f, "# interval opaque")?;
    } else {
        writeln!(f, "# interval guard app ref opaque")?;
    }
    let mut md_buf = [0u8; MAX_METADATA];
    let md = &mut md_buf[..ms];
    for i in first..end {
        if d.dev.metadata(i, md).is_err() {
            writeln!(f, "{i} <read error>")?;
            continue;
        }
        write!(f, "{i} ")?;
        if let Some(t) = p.read_tuple(md) {
            write!(
                f,
                "{:#0gw$x} {:#06x} {:#0rw$x} ",
                t.guard,
                t.app,
                t.reftag,
                gw = gw + 2,
                rw = rw + 2
            )?;
        }
        let (before, rest) = md.split_at(off.min(ms));
        let after = rest.get(ts..).unwrap_or(&[]);
        // The opaque bytes before the tuple, then (after a colon if there
        // are both) those after it.
        match (before.is_empty(), after.is_empty()) {
            (true, true) => write!(f, "-")?,
            (false, true) => hex(f, before)?,
            (true, false) => hex(f, after)?,
            (false, false) => {
                hex(f, before)?;
                write!(f, ":")?;
                hex(f, after)?;
            }
        }
        writeln!(f)?;
    }
    Ok(())
}

impl BinaryWriter for MetadataFile {
    fn write_to_slice(
        &self,
        writer: &mut UserSliceWriter,
        offset: &mut file::Offset,
    ) -> Result<usize> {
        let dev = &self.0;
        let Some(msz) = NonZeroU64::new(dev.profile().metadata_size() as u64) else {
            // No metadata: an empty file.
            return Ok(0);
        };
        let ms = msz.get() as usize;
        let total = dev.nr_intervals() * msz.get();
        let mut pos = u64::try_from(*offset).map_err(|_| EINVAL)?;
        let mut done = 0;
        let mut md_buf = [0u8; MAX_METADATA];
        let md = &mut md_buf[..ms];
        // One call returns at most 1 MiB.
        while pos < total && !writer.is_empty() && done < (1 << 20) {
            let (i, o) = (pos / msz, (pos % msz) as usize);
            dev.metadata(i, md).map_err(|_| EIO)?;
            let k = (ms - o).min(writer.len());
            writer.write_slice(&md[o..o + k])?;
            pos += k as u64;
            done += k;
        }
        *offset = pos as file::Offset;
        Ok(done)
    }
}
