// SPDX-License-Identifier: GPL-2.0

//! Per-device configuration through configfs, modelled on null_blk:
//!
//! ```text
//! /sys/kernel/config/rdif/features       supported attributes
//! /sys/kernel/config/rdif/<name>/        one device description (mkdir)
//!     size blocksize csum ref_tag metadata_size pi_offset interval
//!     pract read_check hw_queues queue_depth backing format power journal
//!     lower meta_device cache cache_size atomic_write_max
//! ```
//!
//! Writing 1 to `power` builds the disk `/dev/<name>`, 0 removes it; rmdir
//! removes a powered device first. Format attributes refuse changes while
//! powered (`-EBUSY`) and values the block layer cannot take (`-EINVAL`,
//! with the reason in the kernel log); a refused write changes nothing.

use crate::{
    settings::{parse_bool, parse_u32, parse_u64, Settings},
    store::Store,
    RdifDisk, Registry,
};
use kernel::{
    configfs::{self, AttributeOperations},
    configfs_attrs,
    fmt::Write as _,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::{CString, Formatter},
    sync::{Arc, Mutex},
};

use crate::pi::Csum;

/// The attributes of a device directory, in the order of their ids.
const ATTRIBUTES: &str = "size,blocksize,csum,ref_tag,metadata_size,pi_offset,interval,\
pract,read_check,hw_queues,queue_depth,backing,format,power,journal,lower,meta_device,cache,cache_size,atomic_write_max\n";

/// Builds the configfs subsystem `rdif`.
pub(crate) fn subsystem(registry: Arc<Registry>) -> impl PinInit<configfs::Subsystem<Root>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Root>,
        data: Root,
        child: DeviceGroup,
        attributes: [
            features: 0,
        ],
    };
    configfs::Subsystem::new(c"rdif", item_type, try_pin_init!(Root { registry }))
}

/// Data of the subsystem's root directory.
#[pin_data]
pub(crate) struct Root {
    registry: Arc<Registry>,
}

#[vtable]
impl AttributeOperations<0> for Root {
    type Data = Root;

    fn show(_this: &Root, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        w.write_str(ATTRIBUTES)?;
        Ok(w.bytes_written())
    }
}

#[vtable]
impl configfs::GroupOperations for Root {
    type Child = DeviceGroup;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<DeviceGroup>, Error>> {
        if name.to_bytes().len() >= kernel::bindings::DISK_NAME_LEN as usize {
            pr_err!(
                "configfs: device name '{}' is too long\n",
                name.to_str().unwrap_or("?")
            );
            return Err(ENAMETOOLONG);
        }
        let item_type = configfs_attrs! {
            container: configfs::Group<DeviceGroup>,
            data: DeviceGroup,
            attributes: [
                size: 0,
                blocksize: 1,
                csum: 2,
                ref_tag: 3,
                metadata_size: 4,
                pi_offset: 5,
                interval: 6,
                pract: 7,
                read_check: 8,
                hw_queues: 9,
                queue_depth: 10,
                backing: 11,
                format: 12,
                power: 13,
                journal: 14,
                lower: 15,
                meta_device: 16,
                cache: 17,
                cache_size: 18,
                atomic_write_max: 19,
            ],
        };
        let registry = self.registry.clone();
        let dev_name = CString::try_from(name)?;
        Ok(configfs::Group::new(
            name.try_into()?,
            item_type,
            try_pin_init!(DeviceGroup {
                inner <- new_mutex!(Inner {
                    settings: Settings::default(),
                    backing: None,
                    lower: None,
                    meta_device: None,
                    disk: None,
                }),
                registry,
                name: dev_name,
            }),
        ))
    }
}

/// A device directory.
#[pin_data]
pub(crate) struct DeviceGroup {
    #[pin]
    inner: Mutex<Inner>,
    registry: Arc<Registry>,
    name: CString,
}

struct Inner {
    settings: Settings,
    backing: Option<CString>,
    /// The block device a pass-through device forwards to.
    lower: Option<CString>,
    /// Where a backing store keeps its metadata and journal, if apart.
    meta_device: Option<CString>,
    /// The disk, while powered. Dropping it (power 0, rmdir) removes it.
    disk: Option<RdifDisk>,
}

impl DeviceGroup {
    fn name(&self) -> &str {
        self.name.to_str().unwrap_or("?")
    }

    /// Changes a format setting: refused while powered (`EBUSY`); `apply`
    /// returns the new value or why it is wrong, and the whole result must
    /// validate, else nothing changes (`EINVAL`).
    fn set(
        &self,
        page: &[u8],
        apply: impl FnOnce(&mut Settings, &[u8]) -> Result<(), &'static str>,
    ) -> Result {
        let mut inner = self.inner.lock();
        if inner.disk.is_some() {
            return Err(EBUSY);
        }
        let mut s = inner.settings;
        apply(&mut s, page)
            .and_then(|()| s.validate().map(|_| ()))
            .map_err(|msg| {
                pr_err!("configfs {}: {}\n", self.name(), msg);
                EINVAL
            })?;
        inner.settings = s;
        Ok(())
    }

    fn show(
        &self,
        page: &mut [u8; PAGE_SIZE],
        f: impl FnOnce(&Inner, &mut Formatter<'_>) -> Result,
    ) -> Result<usize> {
        let inner = self.inner.lock();
        let mut w = Formatter::new(page);
        f(&inner, &mut w)?;
        w.write_str("\n")?;
        Ok(w.bytes_written())
    }

    fn power(&self, on: bool) -> Result {
        let mut inner = self.inner.lock();
        match (on, inner.disk.is_some()) {
            (true, false) => {
                let v = inner.settings.validate().map_err(|msg| {
                    pr_err!("configfs {}: {}\n", self.name(), msg);
                    EINVAL
                })?;
                let meta = inner.meta_device.as_deref();
                let backend = match (inner.backing.as_deref(), inner.lower.as_deref()) {
                    (None, None) if meta.is_some() => {
                        pr_err!("configfs {}: meta_device needs backing\n", self.name());
                        return Err(EINVAL);
                    }
                    (None, None) => crate::Backend::Memory,
                    (Some(b), None) => crate::Backend::Backing(b, meta),
                    (None, Some(l)) if meta.is_none() => crate::Backend::Lower(l),
                    _ => {
                        pr_err!(
                            "configfs {}: lower excludes backing and meta_device: clear one\n",
                            self.name()
                        );
                        return Err(EINVAL);
                    }
                };
                let disk = crate::create_disk(&self.name, &v, backend, &self.registry)?;
                inner.disk = Some(disk);
            }
            (false, true) => drop(inner.disk.take()),
            _ => {}
        }
        Ok(())
    }

    fn format(&self) -> Result {
        let inner = self.inner.lock();
        if inner.disk.is_some() {
            return Err(EBUSY);
        }
        let Some(path) = inner.backing.as_deref() else {
            pr_err!("configfs {}: format needs a backing file\n", self.name());
            return Err(EINVAL);
        };
        let v = inner.settings.validate().map_err(|msg| {
            pr_err!("configfs {}: {}\n", self.name(), msg);
            EINVAL
        })?;
        let claim = |id| self.registry.claim_store(id);
        let meta = inner.meta_device.as_deref();
        Store::format(path, meta, v.dev.profile, v.dev.capacity, claim).map_err(|(e, msg)| {
            pr_err!("configfs {}: format: {}\n", self.name(), msg);
            e
        })?;
        pr_info!(
            "configfs {}: formatted {}\n",
            self.name(),
            path.to_str().unwrap_or("?")
        );
        Ok(())
    }
}

impl DeviceGroup {
    /// Parses a path attribute named `what`: `None` if empty.
    fn path(&self, page: &[u8], what: &str) -> Result<Option<CString>> {
        let path = page.strip_suffix(b"\n").unwrap_or(page);
        if path.contains(&0) || path.len() >= PAGE_SIZE - 1 {
            pr_err!("configfs {}: invalid {} path\n", self.name(), what);
            return Err(EINVAL);
        }
        if !path.is_empty() && path.first() != Some(&b'/') {
            pr_err!(
                "configfs {}: {} must be an absolute path (it is opened when power is written, by whoever writes it)\n",
                self.name(),
                what
            );
            return Err(EINVAL);
        }
        if path.is_empty() {
            return Ok(None);
        }
        let s = core::str::from_utf8(path).map_err(|_| EINVAL)?;
        Ok(Some(CString::try_from_fmt(fmt!("{}", s))?))
    }
}

fn num<T>(v: Option<T>) -> Result<T, &'static str> {
    v.ok_or("not a number")
}

fn flag(v: &[u8]) -> Result<bool, &'static str> {
    parse_bool(v).ok_or("not a boolean (0 or 1)")
}

/// Implements a format attribute of [`DeviceGroup`]: `$show` renders it
/// from the settings, `$store` parses it into them.
macro_rules! setting_attr {
    ($id:literal, $field:ident, |$s:ident, $v:ident| $store:expr) => {
        #[vtable]
        impl AttributeOperations<$id> for DeviceGroup {
            type Data = DeviceGroup;

            fn show(this: &DeviceGroup, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                this.show(page, |i, w| Ok(write!(w, "{}", i.settings.$field)?))
            }

            fn store(this: &DeviceGroup, page: &[u8]) -> Result {
                this.set(page, |$s, $v| {
                    $s.$field = $store;
                    Ok(())
                })
            }
        }
    };
}

setting_attr!(0, size_mib, |s, v| num(parse_u64(v))?);
setting_attr!(1, block_size, |s, v| num(parse_u32(v))?);
setting_attr!(4, metadata_size, |s, v| num(parse_u32(v))?);
setting_attr!(5, pi_offset, |s, v| num(parse_u32(v))?);
setting_attr!(6, interval, |s, v| num(parse_u32(v))?);
setting_attr!(9, hw_queues, |s, v| num(parse_u32(v))?);
setting_attr!(10, queue_depth, |s, v| num(parse_u32(v))?);
setting_attr!(18, cache_mib, |s, v| num(parse_u32(v))?);
setting_attr!(19, atomic_write_max, |s, v| num(parse_u32(v))?);

/// Booleans show as 0/1, like the module parameters take them.
macro_rules! bool_attr {
    ($id:literal, $field:ident) => {
        #[vtable]
        impl AttributeOperations<$id> for DeviceGroup {
            type Data = DeviceGroup;

            fn show(this: &DeviceGroup, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                this.show(page, |i, w| {
                    Ok(write!(w, "{}", u8::from(i.settings.$field))?)
                })
            }

            fn store(this: &DeviceGroup, page: &[u8]) -> Result {
                this.set(page, |s, v| {
                    s.$field = flag(v)?;
                    Ok(())
                })
            }
        }
    };
}

bool_attr!(3, ref_tag);
bool_attr!(7, pract);
bool_attr!(8, read_check);
bool_attr!(14, journal);
bool_attr!(17, cache);

#[vtable]
impl AttributeOperations<2> for DeviceGroup {
    type Data = DeviceGroup;

    fn show(this: &DeviceGroup, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        this.show(page, |i, w| Ok(w.write_str(i.settings.csum.name())?))
    }

    fn store(this: &DeviceGroup, page: &[u8]) -> Result {
        this.set(page, |s, v| {
            s.csum = Csum::parse(v).ok_or("csum must be crc16, ip, crc64 or none")?;
            Ok(())
        })
    }
}

/// Implements a path attribute of [`DeviceGroup`] (`backing`, `lower`,
/// `meta_device`):
/// an absolute path, opened when power is written; empty clears it.
macro_rules! path_attr {
    ($id:literal, $field:ident) => {
        #[vtable]
        impl AttributeOperations<$id> for DeviceGroup {
            type Data = DeviceGroup;

            fn show(this: &DeviceGroup, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                this.show(page, |i, w| {
                    if let Some(b) = &i.$field {
                        w.write_str(b.to_str().map_err(|_| EINVAL)?)?;
                    }
                    Ok(())
                })
            }

            fn store(this: &DeviceGroup, page: &[u8]) -> Result {
                let mut inner = this.inner.lock();
                if inner.disk.is_some() {
                    return Err(EBUSY);
                }
                inner.$field = this.path(page, stringify!($field))?;
                Ok(())
            }
        }
    };
}

path_attr!(11, backing);
path_attr!(15, lower);
path_attr!(16, meta_device);

#[vtable]
impl AttributeOperations<12> for DeviceGroup {
    type Data = DeviceGroup;

    fn show(_this: &DeviceGroup, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        w.write_str("0\n")?;
        Ok(w.bytes_written())
    }

    fn store(this: &DeviceGroup, page: &[u8]) -> Result {
        match parse_bool(page) {
            Some(true) => this.format(),
            Some(false) => Ok(()),
            None => Err(EINVAL),
        }
    }
}

#[vtable]
impl AttributeOperations<13> for DeviceGroup {
    type Data = DeviceGroup;

    fn show(this: &DeviceGroup, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        this.show(page, |i, w| {
            Ok(write!(w, "{}", u8::from(i.disk.is_some()))?)
        })
    }

    fn store(this: &DeviceGroup, page: &[u8]) -> Result {
        this.power(parse_bool(page).ok_or(EINVAL)?)
    }
}
