//! The floor: an empty program attached to a tracepoint with the bpf(2)
//! syscall itself, so that the floor owes nothing to aya.
use std::os::fd::AsRawFd as _;

use anyhow::Context as _;

/// An empty program (`r0 = 0; exit`) loaded and attached to `sys_enter` with
/// raw bpf(2) calls: the cheapest program possible, as a raw tracepoint or as
/// a BTF tracepoint.
pub(crate) struct EmptyProgram {
    pub(crate) prog: std::os::fd::OwnedFd,
    pub(crate) link: Option<std::os::fd::OwnedFd>,
}

pub(crate) fn bpf(
    cmd: libc::c_long,
    attr: &mut [u8; 128],
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: `attr` is a zero-padded bpf_attr of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: bpf(2) returned a new file descriptor that we now own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

impl EmptyProgram {
    /// `btf_id`: the vmlinux BTF id of `btf_trace_sys_enter` for a BTF
    /// tracepoint; `None` for a raw tracepoint.
    pub(crate) fn load(btf_id: Option<u32>) -> anyhow::Result<EmptyProgram> {
        const BPF_PROG_LOAD: libc::c_long = 5;
        const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
        const BPF_PROG_TYPE_TRACING: u32 = 26;
        const BPF_TRACE_RAW_TP: u32 = 23;
        // mov r0, 0; exit
        let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
        let license = c"GPL";
        let mut attr = [0u8; 128];
        let prog_type = if btf_id.is_some() {
            BPF_PROG_TYPE_TRACING
        } else {
            BPF_PROG_TYPE_RAW_TRACEPOINT
        };
        attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
        attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
        if let Some(id) = btf_id {
            // expected_attach_type at 68, attach_btf_id at 108 (union bpf_attr).
            attr[68..72].copy_from_slice(&BPF_TRACE_RAW_TP.to_ne_bytes());
            attr[108..112].copy_from_slice(&id.to_ne_bytes());
        }
        attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        let prog = bpf(BPF_PROG_LOAD, &mut attr).context("loading the empty program")?;
        Ok(EmptyProgram { prog, link: None })
    }

    pub(crate) fn attach(&mut self, by_name: bool) -> anyhow::Result<()> {
        const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
        let name = c"sys_enter";
        let mut attr = [0u8; 128];
        // A BTF tracepoint attaches by its BTF id: no name.
        if by_name {
            attr[0..8].copy_from_slice(&(name.as_ptr() as u64).to_ne_bytes());
        }
        attr[8..12].copy_from_slice(&self.prog.as_raw_fd().to_ne_bytes());
        self.link =
            Some(bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr).context("attaching the empty program")?);
        Ok(())
    }

    pub(crate) fn detach(&mut self) {
        self.link = None;
    }
}
