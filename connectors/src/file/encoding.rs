//! Text files in legacy encodings (Windows-1252, ISO-8859-1, …, which older Excel exports
//! still write) turned into UTF-8 as they are read, so the CSV reader sees one encoding.

use std::io::Read;

use encoding_rs::{CoderResult, Decoder, Encoding};

/// The encoding a name stands for (`utf-8`, `windows-1252`, `latin1`, … as the WHATWG
/// Encoding Standard labels them).
pub fn encoding_for(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes())
}

/// Reads `inner` in `encoding` and yields UTF-8. Bytes the encoding cannot map become U+FFFD.
pub(super) struct TranscodingRead<R> {
    inner: R,
    decoder: Decoder,
    input: Vec<u8>,
    start: usize,
    end: usize,
    output: Vec<u8>,
    out_start: usize,
    out_end: usize,
    finished: bool,
}

impl<R: Read> TranscodingRead<R> {
    pub(super) fn new(inner: R, encoding: &'static Encoding) -> Self {
        Self {
            inner,
            decoder: encoding.new_decoder(),
            input: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            output: vec![0; 3 * 64 * 1024 + 16],
            out_start: 0,
            out_end: 0,
            finished: false,
        }
    }

    /// Decodes more input into the output buffer; false when everything is decoded.
    fn fill(&mut self) -> std::io::Result<bool> {
        while self.out_start == self.out_end {
            if self.finished {
                return Ok(false);
            }
            if self.start == self.end {
                self.start = 0;
                self.end = self.inner.read(&mut self.input)?;
            }
            let last = self.end == 0;
            let (result, read, written, _) = self.decoder.decode_to_utf8(
                &self.input[self.start..self.end],
                &mut self.output,
                last,
            );
            self.start += read;
            self.out_start = 0;
            self.out_end = written;
            if last && result == CoderResult::InputEmpty {
                self.finished = true;
            }
        }
        Ok(true)
    }
}

impl<R: Read> Read for TranscodingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.fill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out_end - self.out_start);
        buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1252_text_reads_as_utf8() {
        // "Kabupaten Purwakarta – Café" in Windows-1252 (en dash 0x96, é 0xE9).
        let bytes = b"nama\nPurwakarta \x96 Caf\xe9\n".to_vec();
        let mut text = String::new();
        TranscodingRead::new(&bytes[..], encoding_for("windows-1252").unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "nama\nPurwakarta – Café\n");
        assert!(encoding_for("latin1").is_some() && encoding_for("klingon").is_none());
    }
}
