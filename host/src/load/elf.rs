//! A structural check of ELF shared objects, done before the dynamic loader sees them.
//!
//! The loader's own errors for bad files are terse, and a file cut short inside its
//! debug sections still loads. Hot reload reads files that may be mid-copy, so a file
//! whose headers promise more bytes than it has is refused as truncated.

/// Checks that `bytes` is a complete ELF shared object; says what is wrong otherwise.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(b"\x7fELF") {
        let text = bytes
            .iter()
            .take(512)
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
        return Err(if text {
            "it is a text file"
        } else {
            "no ELF header"
        }
        .to_owned());
    }
    let header = Header::parse(bytes).ok_or("malformed ELF header")?;
    if header.kind != ET_DYN {
        return Err(format!(
            "an ELF file of type {}, not a shared object",
            header.kind
        ));
    }
    let len = bytes.len() as u64;
    let tables = [
        (
            "program headers",
            header.phoff,
            header.phnum,
            header.phentsize,
        ),
        (
            "section headers",
            header.shoff,
            header.shnum,
            header.shentsize,
        ),
    ];
    for (what, offset, count, size) in tables {
        let end = offset.saturating_add(u64::from(count) * u64::from(size));
        if end > len {
            return Err(truncated(end, len, what));
        }
    }
    for i in 0..u64::from(header.phnum) {
        let at = (header.phoff + i * u64::from(header.phentsize)) as usize;
        let segment = header
            .segment(&bytes[at..])
            .ok_or("malformed program header")?;
        if segment.kind == PT_LOAD && segment.end > len {
            return Err(truncated(segment.end, len, "a loadable segment"));
        }
    }
    Ok(())
}

const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;

fn truncated(needed: u64, len: u64, what: &str) -> String {
    format!("truncated: {what} end at byte {needed}, the file has {len} bytes; wait for the copy to finish or rebuild it")
}

struct Header {
    wide: bool,
    little: bool,
    kind: u16,
    phoff: u64,
    phentsize: u16,
    phnum: u16,
    shoff: u64,
    shentsize: u16,
    shnum: u16,
}

struct Segment {
    kind: u32,
    end: u64,
}

impl Header {
    fn parse(b: &[u8]) -> Option<Header> {
        let wide = match b.get(4)? {
            1 => false,
            2 => true,
            _ => return None,
        };
        let little = match b.get(5)? {
            1 => true,
            2 => false,
            _ => return None,
        };
        let r = Reader { little };
        let header = if wide {
            Header {
                wide,
                little,
                kind: r.u16(b, 0x10)?,
                phoff: r.u64(b, 0x20)?,
                shoff: r.u64(b, 0x28)?,
                phentsize: r.u16(b, 0x36)?,
                phnum: r.u16(b, 0x38)?,
                shentsize: r.u16(b, 0x3A)?,
                shnum: r.u16(b, 0x3C)?,
            }
        } else {
            Header {
                wide,
                little,
                kind: r.u16(b, 0x10)?,
                phoff: u64::from(r.u32(b, 0x1C)?),
                shoff: u64::from(r.u32(b, 0x20)?),
                phentsize: r.u16(b, 0x2A)?,
                phnum: r.u16(b, 0x2C)?,
                shentsize: r.u16(b, 0x2E)?,
                shnum: r.u16(b, 0x30)?,
            }
        };
        let min_entry = if wide { 56 } else { 32 };
        (header.phnum == 0 || usize::from(header.phentsize) >= min_entry).then_some(header)
    }

    fn segment(&self, b: &[u8]) -> Option<Segment> {
        let r = Reader {
            little: self.little,
        };
        let (kind, offset, size) = if self.wide {
            (r.u32(b, 0)?, r.u64(b, 8)?, r.u64(b, 32)?)
        } else {
            (
                r.u32(b, 0)?,
                u64::from(r.u32(b, 4)?),
                u64::from(r.u32(b, 16)?),
            )
        };
        Some(Segment {
            kind,
            end: offset.saturating_add(size),
        })
    }
}

struct Reader {
    little: bool,
}

impl Reader {
    fn bytes<const N: usize>(&self, b: &[u8], at: usize) -> Option<[u8; N]> {
        let mut out: [u8; N] = b.get(at..at + N)?.try_into().ok()?;
        if !self.little {
            out.reverse();
        }
        Some(out)
    }

    fn u16(&self, b: &[u8], at: usize) -> Option<u16> {
        self.bytes(b, at).map(u16::from_le_bytes)
    }

    fn u32(&self, b: &[u8], at: usize) -> Option<u32> {
        self.bytes(b, at).map(u32::from_le_bytes)
    }

    fn u64(&self, b: &[u8], at: usize) -> Option<u64> {
        self.bytes(b, at).map(u64::from_le_bytes)
    }
}
