//! Splits CSV bytes into records and fields without copying them.
//!
//! The rules are those of RFC 4180 as the `csv` crate reads it (which this module replaced
//! for speed; its tests hold it to the same answers): a field that starts with the quote is
//! quoted, a doubled quote inside it is one quote, and it may hold delimiters and line
//! breaks; text after a closing quote is kept as it is, up to the next delimiter; a quote
//! inside an unquoted field is an ordinary character; `\n`, `\r` and `\r\n` end a record;
//! lines with nothing on them are skipped; an unterminated quote runs to the end of the input.
//!
//! Fields are found by searching 16 bytes at a time for the few bytes that matter (the
//! delimiter, the quote and the line breaks) and are handed out as ranges of the read
//! buffer. Only a quoted field with a doubled quote, or with text after its closing quote,
//! is copied, into a scratch buffer, with its quotes resolved.

use std::io::{self, Read};
use std::ops::Range;

/// How many bytes are read from the input at a time. A record longer than this grows the
/// buffer until the record fits.
const READ_BYTES: usize = 1 << 20;

/// Where a field's bytes are: in the read buffer, or (quotes resolved) in the scratch one.
#[derive(Debug, Clone)]
enum Span {
    Input(Range<usize>),
    Scratch(Range<usize>),
}

/// Reads records one at a time from CSV bytes.
pub(super) struct Scanner<R> {
    input: R,
    delimiter: u8,
    quote: u8,
    buf: Vec<u8>,
    /// The bytes not yet consumed are `buf[pos..filled]`.
    pos: usize,
    filled: usize,
    eof: bool,
    /// The line of `buf[pos]`, counting from 1.
    line: u64,
    fields: Vec<Span>,
    scratch: Vec<u8>,
    /// Where the last record started (its first byte and that byte's line), for `unread`.
    last: Option<(usize, u64)>,
}

/// One record: its line, its raw bytes and its fields.
pub(super) struct Record<'s> {
    /// The line the record starts on, counting from 1.
    pub(super) line: u64,
    /// The record's bytes as they are in the input, without its line break.
    pub(super) raw: &'s [u8],
    /// Where `raw` starts in the read buffer.
    raw_start: usize,
    buf: &'s [u8],
    scratch: &'s [u8],
    fields: &'s [Span],
}

impl<'s> Record<'s> {
    /// How many fields the record has.
    pub(super) fn len(&self) -> usize {
        self.fields.len()
    }

    /// The fields' bytes, quotes resolved.
    pub(super) fn fields(&self) -> impl Iterator<Item = &'s [u8]> + '_ {
        self.fields.iter().map(|span| match span {
            Span::Input(range) => &self.buf[range.clone()],
            Span::Scratch(range) => &self.scratch[range.clone()],
        })
    }

    /// The fields as text, when the whole record is UTF-8. Every field is then UTF-8 too:
    /// fields are cut from the record at ASCII bytes (delimiters and quotes), which never
    /// fall inside a character.
    pub(super) fn text_fields<'t>(&'t self, raw: &'t str) -> impl Iterator<Item = &'t str> + 't {
        self.fields.iter().map(move |span| match span {
            Span::Input(range) => raw
                .get(range.start - self.raw_start..range.end - self.raw_start)
                .unwrap_or_default(),
            Span::Scratch(range) => {
                std::str::from_utf8(&self.scratch[range.clone()]).unwrap_or_default()
            }
        })
    }
}

/// How far a record scan got.
enum Scanned {
    /// The record ends before `next`, where the following one begins; `newlines` line breaks
    /// were inside or after it.
    Record {
        end: usize,
        next: usize,
        newlines: u64,
    },
    /// The buffer ends inside the record: more input is needed.
    Incomplete,
}

impl<R: Read> Scanner<R> {
    pub(super) fn new(input: R, delimiter: u8, quote: u8) -> Self {
        Self {
            input,
            delimiter,
            quote,
            buf: vec![0; READ_BYTES],
            pos: 0,
            filled: 0,
            eof: false,
            line: 1,
            fields: Vec::new(),
            scratch: Vec::new(),
            last: None,
        }
    }

    /// The next record, or `None` at the end of the input.
    pub(super) fn next_record(&mut self) -> io::Result<Option<Record<'_>>> {
        loop {
            self.skip_blank_lines();
            if self.pos == self.filled {
                if self.eof {
                    return Ok(None);
                }
                self.fill()?;
                continue;
            }
            match self.scan(self.pos) {
                Scanned::Incomplete if !self.eof => self.fill()?,
                Scanned::Incomplete => {
                    // A scan at the end of the input always completes; should that ever
                    // fail, the input is refused rather than the process stopped.
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the CSV splitter stopped inside a record at the end of the input",
                    ));
                }
                Scanned::Record {
                    end,
                    next,
                    newlines,
                } => {
                    let (start, line) = (self.pos, self.line);
                    self.last = Some((start, line));
                    self.pos = next;
                    self.line += newlines;
                    return Ok(Some(Record {
                        line,
                        raw: &self.buf[start..end],
                        raw_start: start,
                        buf: &self.buf,
                        scratch: &self.scratch,
                        fields: &self.fields,
                    }));
                }
            }
        }
    }

    /// Makes the record returned last the next one again.
    pub(super) fn unread(&mut self) {
        if let Some((start, line)) = self.last.take() {
            self.pos = start;
            self.line = line;
        }
    }

    fn skip_blank_lines(&mut self) {
        while self.pos < self.filled && matches!(self.buf[self.pos], b'\n' | b'\r') {
            self.line += u64::from(self.buf[self.pos] == b'\n');
            self.pos += 1;
        }
    }

    /// Keeps the unconsumed bytes, at the front, and reads more after them (growing the
    /// buffer when the unconsumed bytes fill it). Sets `eof` when the input has no more.
    fn fill(&mut self) -> io::Result<()> {
        self.last = None;
        self.buf.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.pos = 0;
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.filled += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Finds the fields of the record that starts at `start`, which is not a line break.
    fn scan(&mut self, start: usize) -> Scanned {
        self.fields.clear();
        self.scratch.clear();
        let (delimiter, quote) = (self.delimiter, self.quote);
        let end_of_input = self.filled;
        let mut newlines = 0;
        let mut at = start;
        loop {
            // `at` is where a field starts.
            let field_end = if self.buf[at] == quote {
                match self.scan_quoted(at, &mut newlines) {
                    Some(end) => end,
                    None => return Scanned::Incomplete,
                }
            } else {
                let stops = [delimiter, b'\n', b'\r'];
                match find(&self.buf[..end_of_input], at, stops) {
                    Some(stop) => {
                        self.fields.push(Span::Input(at..stop));
                        stop
                    }
                    None if self.eof => {
                        self.fields.push(Span::Input(at..end_of_input));
                        end_of_input
                    }
                    None => return Scanned::Incomplete,
                }
            };
            // The field ends at a delimiter, a line break or the end of the input.
            match self.buf[..end_of_input].get(field_end) {
                Some(&b) if b == delimiter => at = field_end + 1,
                Some(&b'\n') => {
                    return Scanned::Record {
                        end: field_end,
                        next: field_end + 1,
                        newlines: newlines + 1,
                    };
                }
                Some(_) => {
                    // `\r`, perhaps followed by `\n`, which the next record skips as a
                    // blank line.
                    return Scanned::Record {
                        end: field_end,
                        next: field_end + 1,
                        newlines,
                    };
                }
                None => {
                    return Scanned::Record {
                        end: field_end,
                        next: field_end,
                        newlines,
                    };
                }
            }
            if at == end_of_input {
                if !self.eof {
                    return Scanned::Incomplete;
                }
                // A delimiter just before the end of the input: one more, empty field.
                self.fields.push(Span::Input(at..at));
                return Scanned::Record {
                    end: at,
                    next: at,
                    newlines,
                };
            }
        }
    }

    /// Reads the quoted field whose opening quote is at `open`, pushes it, and returns where
    /// it ends (at a delimiter, a line break or the end of the input); `None` when the
    /// buffer ends first and more input may follow.
    fn scan_quoted(&mut self, open: usize, newlines: &mut u64) -> Option<usize> {
        let (delimiter, quote) = (self.delimiter, self.quote);
        let bytes = &self.buf[..self.filled];
        let mut at = open + 1;
        let mut plain = true;
        let mut lines = 0;
        let (close, end) = loop {
            match find(bytes, at, [quote, b'\n']) {
                Some(i) if bytes[i] == b'\n' => {
                    lines += 1;
                    at = i + 1;
                }
                Some(i) => match bytes.get(i + 1) {
                    None if !self.eof => return None,
                    Some(&b) if b == quote => {
                        plain = false;
                        at = i + 2;
                    }
                    None => break (i, i + 1),
                    Some(&b) if b == delimiter || b == b'\n' || b == b'\r' => break (i, i + 1),
                    Some(_) => {
                        // Text after the closing quote, kept up to the next delimiter.
                        plain = false;
                        match find(bytes, i + 1, [delimiter, b'\n', b'\r']) {
                            Some(stop) => break (i, stop),
                            None if self.eof => break (i, bytes.len()),
                            None => return None,
                        }
                    }
                },
                None if self.eof => break (bytes.len(), bytes.len()),
                None => return None,
            }
        };
        *newlines += lines;
        if plain {
            self.fields.push(Span::Input(open + 1..close));
        } else {
            let from = self.scratch.len();
            unquote(&bytes[open + 1..end], quote, &mut self.scratch);
            self.fields.push(Span::Scratch(from..self.scratch.len()));
        }
        Some(end)
    }
}

/// Appends a quoted field's value to `out`: `field` is what follows the opening quote, up
/// to the delimiter or line break after the field.
fn unquote(field: &[u8], quote: u8, out: &mut Vec<u8>) {
    let mut quoted = true;
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if quoted && b == quote {
            if field.get(i + 1) == Some(&quote) {
                out.push(quote);
                i += 2;
                continue;
            }
            quoted = false;
        } else {
            out.push(b);
        }
        i += 1;
    }
}

/// The first position at or after `from` holding one of `needles`.
fn find<const N: usize>(bytes: &[u8], from: usize, needles: [u8; N]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of every x86-64 CPU.
        unsafe { find_sse2(bytes, from, needles) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        find_scalar(bytes, from, needles)
    }
}

fn find_scalar<const N: usize>(bytes: &[u8], from: usize, needles: [u8; N]) -> Option<usize> {
    let rest = bytes.get(from..)?;
    rest.iter()
        .position(|b| needles.contains(b))
        .map(|i| from + i)
}

/// [`find`] 16 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn find_sse2<const N: usize>(bytes: &[u8], from: usize, needles: [u8; N]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    let splat: [__m128i; N] = needles.map(|n| _mm_set1_epi8(n as i8));
    let mut at = from;
    while at + 16 <= bytes.len() {
        // SAFETY: `at + 16 <= bytes.len()`, so the 16 bytes read are inside `bytes`; the
        // load has no alignment requirement.
        let block = unsafe { _mm_loadu_si128(bytes.as_ptr().add(at).cast::<__m128i>()) };
        let mut hits = _mm_setzero_si128();
        for needle in &splat {
            hits = _mm_or_si128(hits, _mm_cmpeq_epi8(block, *needle));
        }
        let mask = _mm_movemask_epi8(hits);
        if mask != 0 {
            return Some(at + mask.trailing_zeros() as usize);
        }
        at += 16;
    }
    find_scalar(bytes, at, needles)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every record as (line, fields), read `chunk` bytes at a time.
    fn scan_all(text: &[u8], chunk: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut scanner = Scanner::new(Chunked { text, chunk }, b',', b'"');
        scanner.buf = vec![0; 4];
        let mut records = Vec::new();
        while let Some(record) = scanner.next_record().unwrap() {
            records.push((record.line, record.fields().map(<[u8]>::to_vec).collect()));
        }
        records
    }

    /// Hands out at most `chunk` bytes per read, to split records at every place.
    struct Chunked<'a> {
        text: &'a [u8],
        chunk: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(out.len()).min(self.text.len());
            out[..n].copy_from_slice(&self.text[..n]);
            self.text = &self.text[n..];
            Ok(n)
        }
    }

    /// The `csv` crate's reading of `text`, with the settings the reader used to give it.
    fn csv_crate(text: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text);
        reader
            .byte_records()
            .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
            .collect()
    }

    fn fields(records: &[(u64, Vec<Vec<u8>>)]) -> Vec<Vec<Vec<u8>>> {
        records.iter().map(|(_, f)| f.clone()).collect()
    }

    #[test]
    fn reads_quotes_as_the_csv_crate_does() {
        let cases: &[&[u8]] = &[
            b"a,b\n1,2\n",
            b"a,b\r\n1,2\r\n",
            b"a,b\r1,2\r",
            b"a,\"b,c\"\n\"x\"\"y\",\"\"\n",
            b"\"ab\"cd,e\n\"a\"\"\"\n",
            b"a\"b,\"c\n",
            b"\"multi\nline\",2\n3,4",
            b"\n\n,\n\r\n, \n",
            b"last,",
            b"\"unterminated,x\ny",
            b"\"\"\"\",\"\"",
            b"\"a\" ,b\n",
        ];
        for text in cases {
            for chunk in [1, 2, 3, 7, 1 << 20] {
                assert_eq!(
                    fields(&scan_all(text, chunk)),
                    csv_crate(text),
                    "{:?} read {chunk} bytes at a time",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    #[test]
    fn lines_are_where_records_start() {
        let records = scan_all(b"h\n\n\"a\nb\",1\r\nc\n\nd", 3);
        let lines: Vec<u64> = records.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, vec![1, 3, 5, 7]);
    }

    #[test]
    fn a_record_longer_than_the_buffer_grows_it() {
        let cell = "x".repeat(10 << 20);
        let text = format!("a,b\n\"{cell}\",2\n");
        let records = scan_all(text.as_bytes(), 1 << 16);
        assert_eq!(records[1].1[0].len(), 10 << 20);
        assert_eq!(records[1].1[1], b"2");
    }

    #[test]
    fn the_record_can_be_read_again() {
        let mut scanner = Scanner::new(&b"a,b\nc\n"[..], b',', b'"');
        assert_eq!(scanner.next_record().unwrap().unwrap().len(), 2);
        scanner.unread();
        assert_eq!(scanner.next_record().unwrap().unwrap().len(), 2);
        assert_eq!(scanner.next_record().unwrap().unwrap().line, 2);
    }

    #[test]
    fn the_vector_search_finds_what_the_plain_one_finds() {
        let text: Vec<u8> = (0..200u32)
            .map(|i| b"ab,\"\n\rcd"[(i * 7 % 8) as usize])
            .collect();
        for from in 0..text.len() + 2 {
            assert_eq!(
                find(&text, from, [b',', b'\n', b'\r']),
                find_scalar(&text, from, [b',', b'\n', b'\r'])
            );
            assert_eq!(
                find(&text, from, [b'"', b'\n']),
                find_scalar(&text, from, [b'"', b'\n'])
            );
        }
    }

    proptest! {
        /// Any text made of the bytes that matter, read in any chunk size, splits into the
        /// same records and fields as the `csv` crate gives.
        #[test]
        fn splits_like_the_csv_crate(
            text in proptest::collection::vec(
                prop_oneof![Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'a'), Just(0xc3)],
                0..80,
            ),
            chunk in 1usize..20,
        ) {
            prop_assert_eq!(fields(&scan_all(&text, chunk)), csv_crate(&text));
        }
    }
}
