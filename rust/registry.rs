// SPDX-License-Identifier: GPL-2.0

//! The registry of the module's disks: the names in use, so that two rdif
//! devices never collide, and the backing stores in use, so that no two
//! devices (nor a `format`) share one.

use kernel::{
    new_mutex,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
};

/// Names of the disks that exist and the backing stores in use. Also holds
/// the debugfs directory of the module.
#[pin_data]
pub(crate) struct Registry {
    #[pin]
    names: Mutex<KVec<CString>>,
    /// Identities of the backing files and devices of the stores in use
    /// (what [`crate::store::Store::open_backing`] claims).
    #[pin]
    stores: Mutex<KVec<usize>>,
    pub(crate) debugfs: kernel::debugfs::Dir,
}

impl Registry {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Registry {
            names <- new_mutex!(KVec::new()),
            stores <- new_mutex!(KVec::new()),
            debugfs: kernel::debugfs::Dir::new(c"rdif"),
        })
    }

    /// Takes the backing store with identity `id`; `EBUSY` if a device (or
    /// a `format`) has it.
    pub(crate) fn claim_store(self: &Arc<Self>, id: usize) -> Result<StoreClaim> {
        let mut stores = self.stores.lock();
        if stores.contains(&id) {
            return Err(EBUSY);
        }
        stores.push(id, GFP_KERNEL)?;
        Ok(StoreClaim {
            registry: self.clone(),
            id,
        })
    }

    /// Takes `name` for a new disk; `EEXIST` if an rdif disk has it.
    pub(crate) fn claim(self: &Arc<Self>, name: &CStr) -> Result<NameClaim> {
        let mut names = self.names.lock();
        if names.iter().any(|n| n.to_bytes() == name.to_bytes()) {
            pr_err!(
                "a device named {} exists already\n",
                name.to_str().unwrap_or("?")
            );
            return Err(EEXIST);
        }
        names.push(CString::try_from(name)?, GFP_KERNEL)?;
        Ok(NameClaim {
            registry: self.clone(),
            name: CString::try_from(name)?,
        })
    }
}

/// A name taken in the [`Registry`], given back on drop.
pub(crate) struct NameClaim {
    registry: Arc<Registry>,
    name: CString,
}

impl Drop for NameClaim {
    fn drop(&mut self) {
        let mut names = self.registry.names.lock();
        if let Some(i) = names
            .iter()
            .position(|n| n.to_bytes() == self.name.to_bytes())
        {
            // `i` comes from `position`, so it is in bounds.
            let _ = names.remove(i);
        }
    }
}

/// A backing store taken in the [`Registry`], given back on drop.
pub(crate) struct StoreClaim {
    registry: Arc<Registry>,
    id: usize,
}

impl Drop for StoreClaim {
    fn drop(&mut self) {
        self.registry.stores.lock().retain(|&mut s| s != self.id);
    }
}
