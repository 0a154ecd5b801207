//! Just enough of a BTF reader to find where a struct member lives in the
//! running kernel, so that the kernel program can read the few fields that
//! have no helper (see `KernelOffsets`). aya parses BTF too, but does not
//! expose member offsets.
//!
//! Format: include/uapi/linux/btf.h and Documentation/bpf/btf.rst at v6.18.
use std::path::{Path, PathBuf};

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Environment variable naming another file with the running kernel's BTF,
/// for kernels that do not publish it (e.g. a file from BTFHub).
pub const BTF_ENV: &str = "SYSCENSUS_KERNEL_BTF";

/// The file to read the running kernel's BTF from: `$SYSCENSUS_KERNEL_BTF`,
/// else [`VMLINUX_BTF`].
pub fn kernel_btf_path() -> PathBuf {
    std::env::var_os(BTF_ENV).map_or_else(|| PathBuf::from(VMLINUX_BTF), PathBuf::from)
}

const BTF_MAGIC: u16 = 0xeb9f;

/// Members looked at in one search for a member through anonymous structs
/// and unions; a kernel's task_struct needs a few hundred.
const MEMBER_SEARCH_STEPS: u32 = 100_000;

/// BTF kinds (`BTF_KIND_*`).
mod kind {
    pub(super) const INT: u32 = 1;
    pub(super) const PTR: u32 = 2;
    pub(super) const ARRAY: u32 = 3;
    pub(super) const STRUCT: u32 = 4;
    pub(super) const UNION: u32 = 5;
    pub(super) const ENUM: u32 = 6;
    pub(super) const FWD: u32 = 7;
    pub(super) const TYPEDEF: u32 = 8;
    pub(super) const VOLATILE: u32 = 9;
    pub(super) const CONST: u32 = 10;
    pub(super) const RESTRICT: u32 = 11;
    pub(super) const FUNC: u32 = 12;
    pub(super) const FUNC_PROTO: u32 = 13;
    pub(super) const VAR: u32 = 14;
    pub(super) const DATASEC: u32 = 15;
    pub(super) const FLOAT: u32 = 16;
    pub(super) const DECL_TAG: u32 = 17;
    pub(super) const TYPE_TAG: u32 = 18;
    pub(super) const ENUM64: u32 = 19;
}

/// BTF that could not be read or lacks what is asked.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "cannot read kernel BTF at {}: {source}: syscensus needs a kernel built with CONFIG_DEBUG_INFO_BTF=y, or the kernel's BTF in a file named by SYSCENSUS_KERNEL_BTF",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel BTF at {} is malformed: {what}", path.display())]
    Malformed { path: PathBuf, what: String },
    #[error("kernel BTF has no struct {name}: this kernel is not supported")]
    NoStruct { name: String },
    #[error("kernel BTF has no member {path} in struct {name}: this kernel is not supported")]
    NoMember { name: String, path: String },
}

#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Offset in bits from the start of the containing struct.
    bit_offset: u32,
}

#[derive(Clone, Debug)]
struct Type {
    name_off: u32,
    kind: u32,
    /// `size` for structs, unions, ints; `type` for pointers, typedefs,
    /// modifiers.
    size_or_type: u32,
    members: Vec<Member>,
}

/// Parsed BTF: types and strings.
#[derive(Debug)]
pub struct Btf {
    path: PathBuf,
    /// Index 0 is `void`; type ids index directly.
    types: Vec<Type>,
    strings: Vec<u8>,
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// Reads the running kernel's BTF (see [`kernel_btf_path`]).
    pub fn from_kernel() -> Result<Btf, BtfError> {
        Btf::from_file(&kernel_btf_path())
    }

    /// Reads BTF from a file.
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Btf::parse(&data, path)
    }

    /// Parses raw BTF (native endianness). `path` is for messages only.
    pub fn parse(data: &[u8], path: &Path) -> Result<Btf, BtfError> {
        let bad = |what: &str| BtfError::Malformed {
            path: path.to_path_buf(),
            what: what.to_owned(),
        };
        if u16_at(data, 0) != Some(BTF_MAGIC) {
            return Err(bad("bad magic"));
        }
        let hdr_len = u32_at(data, 4).ok_or_else(|| bad("short header"))? as usize;
        let field = |i: usize| u32_at(data, 8 + 4 * i).map(|v| v as usize);
        let (type_off, type_len, str_off, str_len) = match (field(0), field(1), field(2), field(3))
        {
            (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
            _ => return Err(bad("short header")),
        };
        let type_data = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or_else(|| bad("type section out of bounds"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or_else(|| bad("string section out of bounds"))?
            .to_vec();

        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            size_or_type: 0,
            members: Vec::new(),
        }];
        let mut at = 0;
        while at < type_data.len() {
            let word =
                |i: usize| u32_at(type_data, at + 4 * i).ok_or_else(|| bad("truncated type"));
            let name_off = word(0)?;
            let info = word(1)?;
            let size_or_type = word(2)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            at += 12;
            let mut members = Vec::new();
            let extra = match kind {
                kind::INT | kind::VAR | kind::DECL_TAG => 4,
                kind::ARRAY => 12,
                kind::STRUCT | kind::UNION => {
                    for i in 0..vlen {
                        let m = |j: usize| {
                            u32_at(type_data, at + 12 * i + 4 * j)
                                .ok_or_else(|| bad("truncated member"))
                        };
                        let offset = m(2)?;
                        members.push(Member {
                            name_off: m(0)?,
                            type_id: m(1)?,
                            // With kind_flag, the top 8 bits hold a bitfield size.
                            bit_offset: if kind_flag {
                                offset & 0x00ff_ffff
                            } else {
                                offset
                            },
                        });
                    }
                    12 * vlen
                }
                kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
                kind::DATASEC | kind::ENUM64 => 12 * vlen,
                kind::PTR
                | kind::FWD
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::FUNC
                | kind::FLOAT
                | kind::TYPE_TAG => 0,
                other => return Err(bad(&format!("unknown type kind {other}"))),
            };
            at += extra;
            types.push(Type {
                name_off,
                kind,
                size_or_type,
                members,
            });
        }
        if at != type_data.len() {
            return Err(bad("type section overruns its length"));
        }
        Ok(Btf {
            path: path.to_path_buf(),
            types,
            strings,
        })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// Skips typedefs and const/volatile/restrict/type tags.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Some(t),
            }
        }
        None
    }

    fn find_struct(&self, name: &str) -> Option<&Type> {
        self.types.iter().find(|t| {
            t.kind == kind::STRUCT
                && self.name(t.name_off) == name.as_bytes()
                && !t.members.is_empty()
        })
    }

    /// Finds `member` in `t`, looking through anonymous struct and union
    /// members; returns its bit offset and type id.
    fn member_in(
        &self,
        t: &Type,
        member: &str,
        depth: u32,
        budget: &mut u32,
    ) -> Option<(u32, u32)> {
        if depth > 8 {
            return None;
        }
        for m in &t.members {
            // Hostile BTF can nest anonymous members into an exponential
            // search: give up after more steps than any kernel needs.
            *budget = budget.checked_sub(1)?;
            let name = self.name(m.name_off);
            if name == member.as_bytes() {
                return Some((m.bit_offset, m.type_id));
            }
            if name.is_empty()
                && let Some(inner) = self.resolve(m.type_id)
                && matches!(inner.kind, kind::STRUCT | kind::UNION)
                && let Some((off, id)) = self.member_in(inner, member, depth + 1, budget)
            {
                // Offsets come from the file: hostile BTF may overflow them.
                return Some((m.bit_offset.checked_add(off)?, id));
            }
        }
        None
    }

    /// The byte offset of `path` (members separated by dots, each nested in
    /// the previous one by value) from the start of `struct name`.
    pub fn member_offset(&self, name: &str, path: &str) -> Result<u32, BtfError> {
        let no_member = || BtfError::NoMember {
            name: name.to_owned(),
            path: path.to_owned(),
        };
        let mut t = self.find_struct(name).ok_or_else(|| BtfError::NoStruct {
            name: name.to_owned(),
        })?;
        let mut bits = 0;
        let mut budget = MEMBER_SEARCH_STEPS;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let (off, id) = self
                .member_in(t, part, 0, &mut budget)
                .ok_or_else(no_member)?;
            bits = off.checked_add(bits).ok_or_else(no_member)?;
            if parts.peek().is_some() {
                t = self
                    .resolve(id)
                    .filter(|t| matches!(t.kind, kind::STRUCT | kind::UNION))
                    .ok_or_else(no_member)?;
            }
        }
        if bits % 8 != 0 {
            return Err(no_member());
        }
        Ok(bits / 8)
    }

    /// The id of the typedef called `name` (such as `btf_trace_sys_enter`,
    /// which a BTF tracepoint program attaches by).
    pub fn typedef_id(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.kind == kind::TYPEDEF && self.name(t.name_off) == name.as_bytes())
            .map(|i| i as u32)
    }

    /// The file this BTF came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// Builds BTF with `struct outer { int a; struct { int b; }; struct
    /// inner in; }` and `struct inner { long x; int y; }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0inner\0in\0x\0y\0long\0".to_vec();
        let off = |s: &str| {
            let needle = format!("\0{s}\0");
            (strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap()
                + 1) as u32
        };
        let mut types: Vec<u32> = Vec::new();
        let mut push = |words: &[u32]| types.extend_from_slice(words);
        // 1: int
        push(&[off("int"), kind::INT << 24, 4, 32]);
        // 2: anonymous struct { int b; }
        push(&[0, kind::STRUCT << 24 | 1, 4, off("b"), 1, 0]);
        // 3: struct inner { long x; int y; }
        push(&[
            off("inner"),
            kind::STRUCT << 24 | 2,
            16,
            off("x"),
            4,
            0,
            off("y"),
            1,
            64,
        ]);
        // 4: long
        push(&[off("long"), kind::INT << 24, 8, 64]);
        // 5: struct outer { int a; <anon> ; struct inner in; }
        push(&[
            off("outer"),
            kind::STRUCT << 24 | 3,
            24,
            off("a"),
            1,
            0,
            0,
            2,
            32,
            off("in"),
            3,
            64,
        ]);
        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mut data = Vec::new();
        data.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
        data.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            type_bytes.len() as u32,
            type_bytes.len() as u32,
            strings.len() as u32,
        ] {
            data.extend_from_slice(&w.to_ne_bytes());
        }
        data.extend_from_slice(&type_bytes);
        data.extend_from_slice(&strings);
        data
    }

    #[test]
    fn finds_nested_and_anonymous_members() {
        let btf = Btf::parse(&sample(), Path::new("sample")).unwrap();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "b").unwrap(), 4);
        assert_eq!(btf.member_offset("outer", "in.y").unwrap(), 16);
        assert!(matches!(
            btf.member_offset("outer", "zz"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.member_offset("nope", "a"),
            Err(BtfError::NoStruct { .. })
        ));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for len in 0..sample().len() {
            let _ = Btf::parse(&sample()[..len], Path::new("cut"));
        }
        assert!(Btf::parse(b"not btf at all", Path::new("x")).is_err());
    }

    /// The running kernel's BTF: readable without privileges.
    #[test]
    fn reads_the_running_kernel() {
        let btf = Btf::from_kernel().unwrap();
        // thread_info is the first member of task_struct on x86_64 and arm64
        // (CONFIG_THREAD_INFO_IN_TASK).
        assert_eq!(btf.member_offset("task_struct", "thread_info").unwrap(), 0);
        #[cfg(target_arch = "x86_64")]
        assert!(btf.member_offset("thread_info", "status").unwrap() > 0);
        assert!(btf.typedef_id("btf_trace_sys_enter").is_some());
        assert!(btf.typedef_id("no_such_typedef").is_none());
    }
}
