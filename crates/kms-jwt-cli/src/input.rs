//! Reading tokens, claims and batches: from arguments, files or standard input, with every
//! line bounded so that hostile input cannot exhaust memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use anyhow::{Context as _, Result};

/// The longest batch line kept in memory; longer lines are reported, not buffered.
pub(crate) const MAX_LINE: usize = 1024 * 1024;

/// The most a single token read from standard input may take: the verifier's bound and room
/// for surrounding whitespace. Anything longer cannot verify.
pub(crate) const MAX_TOKEN_INPUT: usize = kms_jwt::DEFAULT_MAX_TOKEN_LEN + 64;

/// Opens `path`, or standard input for `-`.
pub(crate) fn open(path: &str) -> Result<Box<dyn BufRead + Send>> {
    if path == "-" {
        Ok(Box::new(BufReader::with_capacity(64 * 1024, io::stdin())))
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {path}"))?;
        Ok(Box::new(BufReader::with_capacity(64 * 1024, file)))
    }
}

/// Reads a whole small file (or standard input) as UTF-8 text.
pub(crate) fn read_text(path: &str, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    open(path)?
        .take(MAX_LINE as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} from {path}"))?;
    anyhow::ensure!(bytes.len() <= MAX_LINE, "{what} in {path} is larger than {MAX_LINE} bytes");
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{what} in {path} is not UTF-8 text"))
}

/// One line of a batch, borrowed from the caller's buffer.
pub(crate) enum Line<'a> {
    /// The line, without its terminator.
    Text(&'a str),
    /// The line was longer than the limit; its length.
    TooLong(usize),
    /// The line is not UTF-8.
    NotUtf8,
}

/// Reads the next line (`\n` or `\r\n` terminated) into `buf`, keeping at most `max` bytes.
pub(crate) fn next_line<'a>(
    reader: &mut dyn BufRead,
    buf: &'a mut Vec<u8>,
    max: usize,
) -> io::Result<Option<Line<'a>>> {
    buf.clear();
    let mut len = 0usize;
    let mut seen = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        seen = true;
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if len + take <= max {
            buf.extend_from_slice(&chunk[..take]);
        }
        len += take;
        reader.consume(if done { take + 1 } else { take });
        if done {
            break;
        }
    }
    if !seen {
        return Ok(None);
    }
    if len > max {
        return Ok(Some(Line::TooLong(len)));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(match std::str::from_utf8(buf) {
        Ok(text) => Line::Text(text),
        Err(_) => Line::NotUtf8,
    }))
}

/// Whether an error is a write to a closed pipe.
#[must_use]
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut reader = io::Cursor::new(input.to_vec());
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(line) = next_line(&mut reader, &mut buf, max).unwrap() {
            out.push(match line {
                Line::Text(t) => t.to_owned(),
                Line::TooLong(n) => format!("<{n}>"),
                Line::NotUtf8 => "<utf8>".into(),
            });
        }
        out
    }

    #[test]
    fn bounded_lines() {
        assert_eq!(lines(b"a\nbb\r\n\nccc", 10), ["a", "bb", "", "ccc"]);
        assert_eq!(lines(b"short\nthis-is-long\nok\n", 5), ["short", "<12>", "ok"]);
        assert_eq!(lines(b"\xff\n", 5), ["<utf8>"]);
        assert!(lines(b"", 5).is_empty());
    }
}
