//! The export file format, version 2: JSON Lines, one JSON object per line.
//! Version 1 (the same without streamed values) is still read.
//!
//! ```text
//! {"format":"cubby-export","version":1,"workspace":"a","source":"/data/cubby.redb",
//!  "exported_at_ms":1795000000000,"exported_at":"2026-11-24T10:00:00.000Z",
//!  "namespaces":null,"keys":2,"bytes":17}
//! {"ns":"","key":"greeting","value":"aGVsbG8="}
//! {"ns":"sessions","key":"s1","value":"e30=","expires_at_ms":1795000060000}
//! {"end":{"entries":2,"sha256":"…"}}
//! ```
//!
//! - The **header** (first line) says what the file is (`format`, `version`),
//!   where it came from (`workspace`, `source`: the database without any
//!   password), when (`exported_at_ms`, milliseconds since the Unix epoch,
//!   and the same as RFC 3339), which namespaces were selected (`null`: the
//!   whole workspace) and the totals of the entries that follow (`keys`,
//!   `bytes`: keys plus values, as usage counts them).
//! - One **entry** per line, in (namespace, key) byte order: `ns` (`""` is
//!   the default space), `key`, `value` (standard base64), and
//!   `expires_at_ms`, the absolute deadline, only when the entry expires.
//!   Versions are not exported: they belong to the database.
//! - A **streamed value** (version 2 on) is an entry line with `stream`
//!   instead of `value`: `{"ns":"","key":"big","stream":{"size":1048576,
//!   "stored":4210,"chunks":4,"compressed":true,"xxh3":"…"}}`, followed by
//!   `chunks` lines `{"chunk":"…"}`, each the base64 of the next piece of the
//!   value (as a reader gets it: never compressed in the file). `size` and
//!   `xxh3` (its XXH3-128, 32 lowercase hex digits) are the whole value's; `stored` is what it took in the source
//!   database, as usage counts it (and as the header's `bytes` adds it up).
//! - The **trailer** (last line) repeats the number of entries and holds the
//!   SHA-256 of every byte before it (lowercase hex).
//!
//! A reader refuses a file whose first line is not such a header, a version
//! it does not know, a line that does not parse, totals that do not add up,
//! a missing trailer (truncated) and a checksum that does not match.

use std::io::{BufRead, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::TransferError;
use crate::engine::Usage;

/// The `format` field of every export.
pub(crate) const FORMAT: &str = "cubby-export";
/// The format version this build writes; it reads this one and every
/// earlier one.
pub(crate) const VERSION: u64 = 2;

/// The first line.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Header {
    pub format: String,
    pub version: u64,
    pub workspace: String,
    pub source: String,
    pub exported_at_ms: u64,
    pub exported_at: String,
    pub namespaces: Option<Vec<String>>,
    pub keys: u64,
    pub bytes: u64,
}

/// An entry line as written.
#[derive(Serialize)]
struct EntryOut<'a> {
    ns: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'a Stream>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
}

/// What an entry line says of a streamed value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stream {
    /// The value's length.
    pub size: u64,
    /// What it took in the source database.
    pub stored: u64,
    /// How many chunk lines follow.
    pub chunks: u32,
    /// Whether it was stored compressed (so an import compresses it too).
    pub compressed: bool,
    /// XXH3-128 of the value, 32 lowercase hex digits.
    pub xxh3: String,
}

/// A chunk line as written.
#[derive(Serialize)]
struct ChunkOut<'a> {
    chunk: &'a str,
}

/// The last line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    end: End,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    entries: u64,
    sha256: String,
}

/// Any line after the header, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    ns: Option<String>,
    key: Option<String>,
    value: Option<String>,
    stream: Option<Stream>,
    chunk: Option<String>,
    expires_at_ms: Option<u64>,
    end: Option<End>,
}

/// Writes an export, hashing every byte.
pub(crate) struct Writer<W: Write> {
    out: W,
    hash: Sha256,
    line: Vec<u8>,
    b64: String,
    entries: u64,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            hash: Sha256::new(),
            line: Vec::new(),
            b64: String::new(),
            entries: 0,
            written: 0,
        }
    }

    pub fn header(&mut self, header: &Header) -> Result<(), TransferError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, header).map_err(to_io)?;
        self.emit(true)
    }

    pub fn entry(
        &mut self,
        ns: &str,
        key: &str,
        value: &[u8],
        expires_at_ms: Option<u64>,
    ) -> Result<(), TransferError> {
        self.b64.clear();
        BASE64.encode_string(value, &mut self.b64);
        self.line.clear();
        let line = EntryOut {
            ns,
            key,
            value: Some(&self.b64),
            stream: None,
            expires_at_ms,
        };
        serde_json::to_writer(&mut self.line, &line).map_err(to_io)?;
        self.entries += 1;
        self.emit(true)
    }

    /// A streamed value's entry line; its chunks follow ([`chunk`](Self::chunk)).
    pub fn stream_entry(
        &mut self,
        ns: &str,
        key: &str,
        stream: &Stream,
        expires_at_ms: Option<u64>,
    ) -> Result<(), TransferError> {
        self.line.clear();
        let line = EntryOut {
            ns,
            key,
            value: None,
            stream: Some(stream),
            expires_at_ms,
        };
        serde_json::to_writer(&mut self.line, &line).map_err(to_io)?;
        self.entries += 1;
        self.emit(true)
    }

    /// The next piece of a streamed value.
    pub fn chunk(&mut self, bytes: &[u8]) -> Result<(), TransferError> {
        self.b64.clear();
        BASE64.encode_string(bytes, &mut self.b64);
        self.line.clear();
        serde_json::to_writer(&mut self.line, &ChunkOut { chunk: &self.b64 }).map_err(to_io)?;
        self.emit(true)
    }

    /// Writes the trailer and flushes; returns the bytes written in all.
    pub fn finish(mut self) -> Result<u64, TransferError> {
        let trailer = Trailer {
            end: End {
                entries: self.entries,
                sha256: hex::encode(self.hash.finalize_reset()),
            },
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &trailer).map_err(to_io)?;
        self.emit(false)?;
        self.out.flush()?;
        Ok(self.written)
    }

    fn emit(&mut self, hashed: bool) -> Result<(), TransferError> {
        self.line.push(b'\n');
        if hashed {
            self.hash.update(&self.line);
        }
        self.out.write_all(&self.line)?;
        self.written += self.line.len() as u64;
        Ok(())
    }
}

fn to_io(e: serde_json::Error) -> TransferError {
    TransferError::Io(std::io::Error::other(e))
}

/// One entry read from an export.
#[derive(Debug)]
pub(crate) struct EntryIn {
    pub ns: String,
    pub key: String,
    /// The value; empty for a streamed one, whose pieces
    /// [`Reader::chunk`] reads next.
    pub value: Vec<u8>,
    pub expires_at_ms: Option<u64>,
    pub stream: Option<Stream>,
}

/// Reads an export line by line, checking it as it goes; the trailer's
/// checks (entry count, totals, checksum) are made when it is reached.
pub(crate) struct Reader<R: BufRead> {
    input: R,
    hash: Sha256,
    line: Vec<u8>,
    max_line: usize,
    header: Option<Header>,
    line_no: u64,
    entries: u64,
    bytes: u64,
    /// Chunk lines of the last streamed entry not read yet.
    chunks_left: u32,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    /// `max_line` bounds one line (so a corrupt file cannot make the reader
    /// buffer without end).
    pub fn new(input: R, max_line: usize) -> Self {
        Self {
            input,
            hash: Sha256::new(),
            line: Vec::new(),
            max_line,
            header: None,
            line_no: 0,
            entries: 0,
            bytes: 0,
            chunks_left: 0,
            done: false,
        }
    }

    /// Reads and checks the header.
    pub fn header(&mut self) -> Result<&Header, TransferError> {
        let not_export = |why: &str| TransferError::NotAnExport(why.to_owned());
        match self.next_line() {
            Ok(true) => {}
            Ok(false) => return Err(not_export("the file is empty")),
            // A first line cut short or without end: an export's header cut
            // short, or another kind of file.
            Err(e @ (TransferError::Truncated(_) | TransferError::Corrupt(_))) => {
                let ours = format!("{{\"format\":\"{FORMAT}\"");
                return Err(if self.line.starts_with(ours.as_bytes()) {
                    e
                } else {
                    not_export("it does not start with a Cubby export header")
                });
            }
            Err(e) => return Err(e),
        }
        let value: serde_json::Value = serde_json::from_slice(&self.line)
            .map_err(|_| not_export("its first line is not a Cubby export header"))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(not_export(
                "its first line does not say \"format\":\"cubby-export\"",
            ));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(1..=VERSION) => {}
            Some(found) => {
                return Err(TransferError::UnsupportedVersion {
                    found,
                    supported: VERSION,
                });
            }
            None => return Err(self.corrupt("the header has no version")),
        }
        let header: Header = serde_json::from_value(value)
            .map_err(|e| self.corrupt(&format!("the header does not parse: {e}")))?;
        self.hash.update(&self.line);
        Ok(self.header.insert(header))
    }

    /// The next entry, or `None` once the trailer has been read and every
    /// check passed.
    pub fn entry(&mut self) -> Result<Option<EntryIn>, TransferError> {
        if self.done {
            return Ok(None);
        }
        if self.chunks_left > 0 {
            return Err(self.corrupt("an entry where a chunk of the streamed value should be"));
        }
        if !self.next_line()? {
            return Err(TransferError::Truncated(format!(
                "it ends after {} entries without its trailer",
                self.entries
            )));
        }
        let line: LineIn = serde_json::from_slice(&self.line)
            .map_err(|e| self.corrupt(&format!("it does not parse: {e}")))?;
        if let Some(end) = line.end {
            return self.finish(end).map(|()| None);
        }
        let (Some(ns), Some(key)) = (line.ns, line.key) else {
            return Err(self.corrupt("an entry needs ns and key"));
        };
        let (value, stored) = match (line.value, &line.stream) {
            (Some(value), None) => {
                let value = BASE64
                    .decode(value.as_bytes())
                    .map_err(|e| self.corrupt(&format!("the value is not base64: {e}")))?;
                let len = value.len() as u64;
                (value, len)
            }
            (None, Some(stream)) => {
                self.chunks_left = stream.chunks;
                (Vec::new(), stream.stored)
            }
            _ => return Err(self.corrupt("an entry needs a value or a stream, not both")),
        };
        self.hash.update(&self.line);
        self.entries += 1;
        self.bytes += key.len() as u64 + stored;
        Ok(Some(EntryIn {
            ns,
            key,
            value,
            expires_at_ms: line.expires_at_ms,
            stream: line.stream,
        }))
    }

    /// The next piece of the last streamed entry's value; `None` once
    /// every one its entry announced has been read.
    pub fn chunk(&mut self) -> Result<Option<Vec<u8>>, TransferError> {
        if self.chunks_left == 0 {
            return Ok(None);
        }
        if !self.next_line()? {
            return Err(TransferError::Truncated(format!(
                "it ends inside a streamed value, after {} entries",
                self.entries
            )));
        }
        let line: LineIn = serde_json::from_slice(&self.line)
            .map_err(|e| self.corrupt(&format!("it does not parse: {e}")))?;
        let Some(chunk) = line.chunk else {
            return Err(self.corrupt("a chunk of a streamed value was expected"));
        };
        let bytes = BASE64
            .decode(chunk.as_bytes())
            .map_err(|e| self.corrupt(&format!("the chunk is not base64: {e}")))?;
        self.hash.update(&self.line);
        self.chunks_left -= 1;
        Ok(Some(bytes))
    }

    /// Entries read so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    fn finish(&mut self, end: End) -> Result<(), TransferError> {
        let sha = hex::encode(self.hash.finalize_reset());
        if end.sha256 != sha {
            return Err(TransferError::Corrupt(format!(
                "the checksum does not match (the file says {}, its contents hash to {sha})",
                short(&end.sha256)
            )));
        }
        let header = self.header.as_ref().map_or(Usage::default(), |h| Usage {
            keys: h.keys,
            bytes: h.bytes,
        });
        let read = Usage {
            keys: self.entries,
            bytes: self.bytes,
        };
        if end.entries != self.entries || header != read {
            return Err(TransferError::Corrupt(format!(
                "the header says {} keys and {} bytes, the trailer {} entries, but {} keys \
                 and {} bytes were read",
                header.keys, header.bytes, end.entries, read.keys, read.bytes
            )));
        }
        // Nothing may follow the trailer.
        if self.next_line()? {
            return Err(self.corrupt("more follows the trailer"));
        }
        self.done = true;
        Ok(())
    }

    fn corrupt(&self, why: &str) -> TransferError {
        TransferError::Corrupt(format!("line {}: {why}", self.line_no))
    }

    /// Reads the next line, with its newline (hashed as written); `false`
    /// at the end.
    fn next_line(&mut self) -> Result<bool, TransferError> {
        self.line.clear();
        let limit = self.max_line as u64 + 1;
        let n = std::io::Read::take(&mut self.input, limit).read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        if self.line.last() == Some(&b'\n') {
            return Ok(true);
        }
        if n as u64 == limit {
            return Err(self.corrupt(&format!("longer than {} bytes", self.max_line)));
        }
        // The last line of a file cut short.
        Err(TransferError::Truncated(format!(
            "line {} ends without a newline",
            self.line_no
        )))
    }
}

fn short(hash: &str) -> String {
    hash.chars().take(16).collect::<String>() + "…"
}
