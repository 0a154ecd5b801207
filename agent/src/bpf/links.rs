//! Loading, attaching and detaching the programs: links owned by this
//! process, or pinned so that they outlive it (a rolling update), and
//! releasing them at a graceful stop.
use aya::{
    Btf,
    programs::{
        BtfTracePoint,
        links::{FdLink, PinnedLink},
        tp_btf::BtfTracePointLinkId,
    },
};
use syscensus_common::program;

use super::{BpfError, Tracer};

/// How a hook is attached.
pub(super) enum Attached {
    /// The link lives as long as the program (this process).
    Owned(BtfTracePointLinkId),
    /// The link is pinned: it outlives this process.
    Pinned(PinnedLink),
}

impl Tracer {
    pub(super) fn program(&mut self, name: &'static str) -> Result<&mut BtfTracePoint, BpfError> {
        let program = self.ebpf.program_mut(name).ok_or(BpfError::Missing {
            what: "program",
            name,
        })?;
        program.try_into().map_err(|source| BpfError::Program {
            action: "find",
            name,
            source,
        })
    }

    pub(super) fn load_program(&mut self, name: &'static str, btf: &Btf) -> Result<(), BpfError> {
        // Each program is named after its tracepoint.
        self.program(name)?
            .load(name, btf)
            .map_err(|source| BpfError::Program {
                action: "load",
                name,
                source,
            })
    }

    pub(super) fn pin_path(&self, name: &str) -> Option<std::path::PathBuf> {
        self.pin_dir.as_ref().map(|d| d.join("links").join(name))
    }

    /// Attaches a hook. With a pin directory, the link is pinned, taking the
    /// place of the one a previous run left: the new one is attached first,
    /// so that no event is missed, then the old one is detached.
    pub(super) fn attach(&mut self, name: &'static str) -> Result<(), BpfError> {
        if self.links.contains_key(name) {
            return Ok(());
        }
        let id = self
            .program(name)?
            .attach()
            .map_err(|source| BpfError::Program {
                action: "attach",
                name,
                source,
            })?;
        let Some(path) = self.pin_path(name) else {
            self.links.insert(name, Attached::Owned(id));
            return Ok(());
        };
        let link = self
            .program(name)?
            .take_link(id)
            .map_err(|source| BpfError::Program {
                action: "take the link of",
                name,
                source,
            })?;
        let link: FdLink = link.into();
        if let Ok(old) = PinnedLink::from_pin(&path) {
            // Dropping the old link's last reference detaches it.
            let _ = old.unpin();
        }
        let pinned = link.pin(&path).map_err(|e| BpfError::Pin {
            name,
            path: path.clone(),
            message: e.to_string(),
        })?;
        self.links.insert(name, Attached::Pinned(pinned));
        Ok(())
    }

    pub(super) fn detach(&mut self, name: &'static str) -> Result<(), BpfError> {
        match self.links.remove(name) {
            None => Ok(()),
            Some(Attached::Owned(id)) => {
                self.program(name)?
                    .detach(id)
                    .map_err(|source| BpfError::Program {
                        action: "detach",
                        name,
                        source,
                    })
            }
            Some(Attached::Pinned(pinned)) => {
                // Unpinned and dropped: detached.
                let _ = pinned.unpin();
                Ok(())
            }
        }
    }

    /// Whether the maps and links are pinned (they outlive the process).
    pub fn is_pinned(&self) -> bool {
        self.pin_dir.is_some()
    }

    /// Detaches every hook and forgets the pinned links (the maps stay
    /// pinned): for a graceful stop, after which the node pays nothing per
    /// syscall until an agent runs again.
    pub fn release(&mut self) {
        let names: Vec<&'static str> = self.links.keys().copied().collect();
        for name in names {
            if let Err(error) = self.detach(name) {
                tracing::warn!(%error, "cannot detach");
            }
        }
    }

    /// Attaches `sys_enter`; from now on every syscall on the machine runs
    /// the program.
    pub fn attach_sys_enter(&mut self) -> Result<(), BpfError> {
        self.attach(program::SYS_ENTER)
    }

    /// Detaches `sys_enter`: syscalls cost nothing extra again.
    pub fn detach_sys_enter(&mut self) -> Result<(), BpfError> {
        self.detach(program::SYS_ENTER)
    }

    /// Whether `sys_enter` is attached.
    pub fn sys_enter_attached(&self) -> bool {
        self.links.contains_key(program::SYS_ENTER)
    }
}
