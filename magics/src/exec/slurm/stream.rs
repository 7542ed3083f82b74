//! Demultiplexing the output of one `tail -F -v -c +1 FILE...` into the
//! files' bytes, with exact per-file byte offsets.
//!
//! # tail's stream
//!
//! GNU tail prints a header `==> NAME <==\n` whenever the file it prints
//! from changes; every header but the first is preceded by one extra `\n`
//! (the *separator*), which is not part of any file. A file whose data ends
//! without a newline is therefore followed by `\n==> NEXT <==\n`.
//!
//! Stream lines are split at `\n`. The `\n` ending a line is held back until
//! the next line shows whether it was data or the separator (a header line
//! follows at once: tail writes separator and header with one `printf`).
//! After [`Demux::idle`] (nothing received for a moment) a held `\n` is
//! delivered as data; should a header still follow, the byte is taken back
//! from that file's offset ([`FileTrack::retract`]).
//!
//! # Offsets
//!
//! A file's *offset* is the number of its bytes already accounted for:
//! shown as output, or recognised as a protocol line. Resuming at offset
//! `N` means continuing with the file's byte `N + 1`, i.e. exactly what
//! `tail -c +(N+1) FILE` would print. Because a single `tail` cannot start
//! each of several files at a different byte, the watcher always runs
//! `tail -F -c +1` and every [`FileTrack`] drops the first `offset` bytes it
//! receives (they pass through the line assembler, so line boundaries and
//! protocol lines stay known, but nothing is emitted for them).
//!
//! A partial line is shown when the stream goes idle (progress bars); its
//! bytes then count as accounted. Bytes not shown yet (a held partial line,
//! a held newline) are never counted, so stopping at any point loses and
//! repeats nothing on resume.

use std::collections::HashMap;

use super::protocol::PROTOCOL_PREFIX;
use crate::events::Stream;

/// Longest partial line held back waiting for its newline.
const MAX_LINE: usize = 1 << 20;

/// What the demultiplexer found.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Output text of job `job` (whole lines with their `\n`, or a partial
    /// line when the stream went idle).
    Output {
        job: usize,
        stream: Stream,
        text: String,
    },
    /// A protocol line's JSON. `replay`: it lies before the saved offset,
    /// so it was reported before (record it, do not report it again).
    Protocol {
        job: usize,
        json: String,
        replay: bool,
    },
}

/// One followed file.
#[derive(Debug, Clone)]
pub struct FileTrack {
    pub job: usize,
    pub stream: Stream,
    pub path: String,
    /// Bytes of the file received in the current tail session.
    pos: u64,
    /// Bytes accounted for (the persisted offset).
    offset: u64,
    /// The current line's bytes not yet completed.
    line: Vec<u8>,
    /// File position of `line[0]`.
    line_start: u64,
    /// `line[0]` starts a line of the file.
    at_line_start: bool,
    /// Show whole lines only: a partial line waits for its newline (or
    /// the end of the watch), so that the lines of many files (an array's
    /// tasks) shown prefixed never interleave mid-line.
    whole_lines: bool,
}

impl FileTrack {
    fn new(job: usize, stream: Stream, path: String, offset: u64) -> FileTrack {
        FileTrack {
            job,
            stream,
            path,
            pos: 0,
            offset,
            line: Vec::new(),
            line_start: 0,
            at_line_start: true,
            whole_lines: false,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes received in this tail session (including held, unshown ones).
    pub fn received(&self) -> u64 {
        self.pos
    }

    fn push(&mut self, mut data: &[u8], out: &mut Vec<Piece>) {
        while !data.is_empty() {
            let (piece, rest, complete) = match data.iter().position(|b| *b == b'\n') {
                Some(i) => (&data[..=i], &data[i + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            self.line.extend_from_slice(piece);
            self.pos += piece.len() as u64;
            data = rest;
            if complete {
                self.complete_line(out);
            } else if self.line.len() > MAX_LINE {
                self.flush_partial(out, true);
            }
        }
    }

    /// Index into `line` of the first byte not accounted for yet.
    fn new_from(&self) -> usize {
        (self.offset.saturating_sub(self.line_start) as usize).min(self.line.len())
    }

    fn is_protocol(&self) -> bool {
        self.stream == Stream::Stdout
            && self.at_line_start
            && self.line.starts_with(PROTOCOL_PREFIX)
    }

    fn could_be_protocol(&self) -> bool {
        self.stream == Stream::Stdout
            && self.at_line_start
            && (self.line.starts_with(PROTOCOL_PREFIX) || PROTOCOL_PREFIX.starts_with(&self.line))
    }

    fn complete_line(&mut self, out: &mut Vec<Piece>) {
        let from = self.new_from();
        if self.is_protocol() {
            let body = &self.line[PROTOCOL_PREFIX.len()..];
            let json = String::from_utf8_lossy(body).trim_end().to_string();
            out.push(Piece::Protocol {
                job: self.job,
                json,
                replay: from >= self.line.len(),
            });
        } else if from < self.line.len() {
            out.push(Piece::Output {
                job: self.job,
                stream: self.stream,
                text: String::from_utf8_lossy(&self.line[from..]).into_owned(),
            });
        }
        self.offset = self.offset.max(self.pos);
        self.line.clear();
        self.line_start = self.pos;
        self.at_line_start = true;
    }

    /// Show a partial line (unless it may still become a protocol line).
    fn flush_partial(&mut self, out: &mut Vec<Piece>, force: bool) {
        if self.line.is_empty() || (!force && self.could_be_protocol()) {
            return;
        }
        let from = self.new_from();
        let tail = &self.line[from..];
        // Keep an incomplete UTF-8 sequence for the next piece.
        let end = match std::str::from_utf8(tail) {
            Ok(_) => tail.len(),
            Err(e) if e.error_len().is_none() && !force => e.valid_up_to(),
            Err(_) => tail.len(),
        };
        if end > 0 {
            out.push(Piece::Output {
                job: self.job,
                stream: self.stream,
                text: String::from_utf8_lossy(&tail[..end]).into_owned(),
            });
        }
        let cut = from + end;
        self.offset = self.offset.max(self.line_start + cut as u64);
        self.line.drain(..cut);
        self.line_start += cut as u64;
        self.at_line_start = false;
    }

    /// The last byte delivered (a `\n`) was tail's separator, not data.
    fn retract(&mut self) {
        if self.pos == 0 {
            return;
        }
        self.pos -= 1;
        if self.offset > self.pos {
            self.offset = self.pos;
        }
        self.line.clear();
        self.line_start = self.pos;
        self.at_line_start = false;
    }

    /// A new tail session starts reading the file from byte 1 again.
    fn restart(&mut self) {
        self.pos = 0;
        self.line.clear();
        self.line_start = 0;
        self.at_line_start = true;
    }
}

/// The demultiplexer of one run's tail.
#[derive(Debug)]
pub struct Demux {
    files: Vec<FileTrack>,
    /// Paths tail prints headers for; `None`: followed but ignored.
    by_path: HashMap<String, Option<usize>>,
    current: Option<usize>,
    seen_header: bool,
    /// Bytes at the start of a stream line that may still be a header.
    buf: Vec<u8>,
    at_line_start: bool,
    held_nl: bool,
    /// The last delivered byte was a held `\n` delivered by `idle`.
    idle_nl: bool,
}

impl Demux {
    /// `files`: (job index, stream, path as given to tail, saved offset).
    pub fn new(files: Vec<(usize, Stream, String, u64)>) -> Demux {
        let files: Vec<FileTrack> = files
            .into_iter()
            .map(|(j, s, p, o)| FileTrack::new(j, s, p, o))
            .collect();
        let by_path = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), Some(i)))
            .collect();
        Demux {
            files,
            by_path,
            current: None,
            seen_header: false,
            buf: Vec::new(),
            at_line_start: true,
            held_nl: false,
            idle_nl: false,
        }
    }

    /// Show only whole lines of the files of `jobs` (see
    /// [`FileTrack`]'s `whole_lines`): partial lines are not shown when the
    /// stream goes idle or breaks off, only when the tail ends.
    pub fn whole_lines(mut self, jobs: &std::collections::HashSet<usize>) -> Demux {
        for f in &mut self.files {
            f.whole_lines = jobs.contains(&f.job);
        }
        self
    }

    /// Also accept headers of `path`, whose content is ignored (the
    /// watcher's anchor file, see `follow.rs`).
    pub fn ignore(mut self, path: impl Into<String>) -> Demux {
        self.by_path.insert(path.into(), None);
        self
    }

    pub fn files(&self) -> &[FileTrack] {
        &self.files
    }

    /// Offsets of job `job`: (stdout, stderr).
    pub fn offsets(&self, job: usize) -> (u64, u64) {
        let mut o = (0, 0);
        for f in self.files.iter().filter(|f| f.job == job) {
            match f.stream {
                Stream::Stdout => o.0 = f.offset,
                Stream::Stderr => o.1 = f.offset,
            }
        }
        o
    }

    /// Feed bytes of tail's stdout.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Piece>) {
        while !data.is_empty() {
            if self.at_line_start {
                match data.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        self.buf.extend_from_slice(&data[..=i]);
                        data = &data[i + 1..];
                        let line = std::mem::take(&mut self.buf);
                        self.full_line(&line, out);
                    }
                    None => {
                        self.buf.extend_from_slice(data);
                        data = &data[data.len()..];
                        if !self.may_be_header(&self.buf) {
                            let b = std::mem::take(&mut self.buf);
                            self.deliver_held(out);
                            self.deliver(&b, out);
                            self.at_line_start = false;
                        }
                    }
                }
            } else {
                match data.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        self.deliver(&data[..i], out);
                        self.held_nl = true;
                        self.at_line_start = true;
                        data = &data[i + 1..];
                    }
                    None => {
                        self.deliver(data, out);
                        data = &data[data.len()..];
                    }
                }
            }
        }
    }

    fn may_be_header(&self, b: &[u8]) -> bool {
        b.len() < 8192 && (b"==> ".starts_with(b) || b.starts_with(b"==> "))
    }

    fn header_path<'a>(&self, line: &'a [u8]) -> Option<&'a str> {
        let l = line.strip_suffix(b"\n")?;
        let l = l.strip_prefix(b"==> ")?.strip_suffix(b" <==")?;
        std::str::from_utf8(l).ok()
    }

    fn full_line(&mut self, line: &[u8], out: &mut Vec<Piece>) {
        if let Some(path) = self.header_path(line) {
            if let Some(&target) = self.by_path.get(path) {
                if self.seen_header {
                    if self.held_nl {
                        self.held_nl = false;
                    } else if self.idle_nl {
                        if let Some(c) = self.current {
                            self.files[c].retract();
                        }
                    }
                }
                self.idle_nl = false;
                self.seen_header = true;
                self.current = target;
                return;
            }
        }
        self.deliver_held(out);
        self.deliver(&line[..line.len() - 1], out);
        self.held_nl = true;
    }

    fn deliver_held(&mut self, out: &mut Vec<Piece>) {
        if self.held_nl {
            self.held_nl = false;
            self.deliver(b"\n", out);
        }
    }

    fn deliver(&mut self, data: &[u8], out: &mut Vec<Piece>) {
        if data.is_empty() {
            return;
        }
        self.idle_nl = false;
        if let Some(c) = self.current {
            self.files[c].push(data, out);
        }
    }

    /// Whether a stream line's `\n` is held back (see the module docs).
    pub fn holds_newline(&self) -> bool {
        self.held_nl && self.buf.is_empty()
    }

    /// Nothing followed a held `\n` for a moment: it was data (tail writes
    /// separator and header at once). Should a header still come, the byte
    /// is taken back from the file's offset.
    pub fn release_newline(&mut self, out: &mut Vec<Piece>) {
        if self.holds_newline() {
            self.deliver_held(out);
            self.idle_nl = true;
        }
    }

    /// Nothing arrived for a while: show partial lines (progress bars),
    /// but of files showing whole lines only.
    pub fn flush_partials(&mut self, out: &mut Vec<Piece>) {
        for f in self.files.iter_mut().filter(|f| !f.whole_lines) {
            f.flush_partial(out, false);
        }
    }

    /// tail exited normally: everything held is data.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        if !self.buf.is_empty() {
            let b = std::mem::take(&mut self.buf);
            self.deliver_held(out);
            self.deliver(&b, out);
            self.at_line_start = false;
        }
        self.deliver_held(out);
        for f in &mut self.files {
            f.flush_partial(out, false);
        }
    }

    /// The stream broke off: show partial lines, but keep a held `\n`
    /// unaccounted (it may have been a separator); then [`Demux::restart`].
    pub fn broken(&mut self, out: &mut Vec<Piece>) {
        self.flush_partials(out);
    }

    /// Forget the current tail session (it ended); the next one starts every
    /// file at byte 1 again and skips what was accounted for.
    pub fn restart(&mut self) {
        for f in &mut self.files {
            f.restart();
        }
        self.current = None;
        self.seen_header = false;
        self.buf.clear();
        self.at_line_start = true;
        self.held_nl = false;
        self.idle_nl = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demux(offsets: [u64; 4]) -> Demux {
        Demux::new(vec![
            (0, Stream::Stdout, "/r/a.out".into(), offsets[0]),
            (0, Stream::Stderr, "/r/a.err".into(), offsets[1]),
            (1, Stream::Stdout, "/r/b.out".into(), offsets[2]),
            (1, Stream::Stderr, "/r/b.err".into(), offsets[3]),
        ])
    }

    fn text(pieces: &[Piece], job: usize, stream: Stream) -> String {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Output {
                    job: j,
                    stream: s,
                    text,
                } if *j == job && *s == stream => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// What GNU tail printed for a.out = "a1\na2x\n", b.out = "b1\nmore\n",
    /// with a.out's "a2" partial at first (measured on the test cluster).
    const STREAM: &[u8] = b"==> /r/a.out <==\na1\na2\n==> /r/b.out <==\nb1\n\n==> /r/a.out <==\nx\n\n==> /r/b.out <==\nmore\n";

    #[test]
    fn splits_files_and_counts_exact_offsets() {
        for chunk in [1, 2, 3, 5, 7, 64] {
            let mut d = demux([0; 4]);
            let mut out = Vec::new();
            for c in STREAM.chunks(chunk) {
                d.feed(c, &mut out);
            }
            d.finish(&mut out);
            assert_eq!(text(&out, 0, Stream::Stdout), "a1\na2x\n", "chunk {chunk}");
            assert_eq!(text(&out, 1, Stream::Stdout), "b1\nmore\n", "chunk {chunk}");
            assert_eq!(d.offsets(0), (7, 0));
            assert_eq!(d.offsets(1), (8, 0));
        }
    }

    #[test]
    fn ignored_files_are_dropped() {
        let mut d = demux([0; 4]).ignore("/r/.anchor");
        let mut out = Vec::new();
        d.feed(b"==> /r/.anchor <==\n\n==> /r/a.out <==\nx\n\n==> /r/.anchor <==\nnoise\n\n==> /r/a.out <==\ny\n", &mut out);
        d.finish(&mut out);
        assert_eq!(text(&out, 0, Stream::Stdout), "x\ny\n");
        assert_eq!(out.len(), 2);
        assert_eq!(d.offsets(0).0, 4);
    }

    #[test]
    fn idle_newline_is_taken_back_when_a_header_follows() {
        let mut d = demux([0; 4]);
        let mut out = Vec::new();
        d.feed(b"==> /r/a.out <==\nabc\n", &mut out);
        assert_eq!(d.offsets(0).0, 0, "held newline not counted yet");
        d.release_newline(&mut out);
        d.flush_partials(&mut out);
        assert_eq!(text(&out, 0, Stream::Stdout), "abc\n");
        assert_eq!(d.offsets(0).0, 4);
        // It was the separator after all: a.out is "abc" so far.
        d.feed(b"==> /r/b.out <==\nb\n", &mut out);
        assert_eq!(d.offsets(0).0, 3);
        d.feed(b"\n==> /r/a.out <==\ndef\n", &mut out);
        d.finish(&mut out);
        assert_eq!(d.offsets(0).0, 7, "abcdef\\n");
        assert_eq!(d.offsets(1).0, 2);
    }

    #[test]
    fn resume_skips_accounted_bytes_even_mid_line() {
        // First session: a.out "l1\npart" shown (partial flushed at idle).
        let mut d = demux([0; 4]);
        let mut out = Vec::new();
        d.feed(b"==> /r/a.out <==\nl1\npart", &mut out);
        d.release_newline(&mut out);
        d.flush_partials(&mut out);
        assert_eq!(text(&out, 0, Stream::Stdout), "l1\npart");
        let saved = d.offsets(0);
        assert_eq!(saved, (7, 0));
        // Resume: a new demux with the saved offset, tail from byte 1.
        let mut d = demux([saved.0, saved.1, 0, 0]);
        let mut out = Vec::new();
        d.feed(
            b"==> /r/a.out <==\nl1\npartial\nl3\n\n==> /r/b.out <==\nb\n",
            &mut out,
        );
        d.finish(&mut out);
        assert_eq!(text(&out, 0, Stream::Stdout), "ial\nl3\n");
        assert_eq!(text(&out, 1, Stream::Stdout), "b\n");
        assert_eq!(d.offsets(0).0, 14);
    }

    #[test]
    fn restart_within_a_watch_repeats_nothing() {
        let mut d = demux([0; 4]);
        let mut out = Vec::new();
        d.feed(b"==> /r/a.out <==\n1\n2\n", &mut out);
        // The connection breaks with the "\n" after 2 held: it stays
        // unaccounted (it might have been tail's separator).
        d.broken(&mut out);
        assert_eq!(text(&out, 0, Stream::Stdout), "1\n2");
        assert_eq!(d.offsets(0).0, 3);
        d.restart();
        d.feed(b"==> /r/a.out <==\n1\n2\n3", &mut out);
        d.broken(&mut out);
        assert_eq!(d.offsets(0).0, 5, "partial 3 shown and accounted");
        d.restart();
        d.feed(b"==> /r/a.out <==\n1\n2\n34\n", &mut out);
        d.finish(&mut out);
        assert_eq!(text(&out, 0, Stream::Stdout), "1\n2\n34\n");
        assert_eq!(d.offsets(0).0, 7);
    }

    #[test]
    fn protocol_lines_are_not_output() {
        let mut d = demux([0; 4]);
        let mut out = Vec::new();
        let mut s = b"==> /r/a.out <==\nhello\n".to_vec();
        s.extend_from_slice(PROTOCOL_PREFIX);
        s.extend_from_slice(b"{\"event\":\"materialized\",\"bytes\":3}\nbye\n");
        s.extend_from_slice(b"\n==> /r/a.err <==\n");
        s.extend_from_slice(PROTOCOL_PREFIX);
        s.extend_from_slice(b"not protocol on stderr\n");
        d.feed(&s, &mut out);
        d.finish(&mut out);
        assert_eq!(text(&out, 0, Stream::Stdout), "hello\nbye\n");
        assert!(text(&out, 0, Stream::Stderr).contains("not protocol"));
        assert!(out.contains(&Piece::Protocol {
            job: 0,
            json: "{\"event\":\"materialized\",\"bytes\":3}".into(),
            replay: false
        }));
        // A partial protocol line is held, not shown, at idle.
        let mut d = demux([0; 4]);
        let mut out = Vec::new();
        d.feed(b"==> /r/a.out <==\n\x1eSLURM", &mut out);
        d.release_newline(&mut out);
        d.flush_partials(&mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(d.offsets(0).0, 0);
    }

    #[test]
    fn blank_lines_and_utf8_survive() {
        let mut d = demux([0; 4]);
        let mut out = Vec::new();
        let s = "==> /r/b.err <==\n\n\nünï\n\n\n==> /r/a.out <==\nx\n".as_bytes();
        for c in s.chunks(1) {
            d.feed(c, &mut out);
            d.release_newline(&mut out);
            d.flush_partials(&mut out);
        }
        d.finish(&mut out);
        // Idle after every byte: the separator was shown before its header
        // arrived (one extra newline on screen), but the offset is exact.
        assert_eq!(text(&out, 1, Stream::Stderr), "\n\nünï\n\n\n");
        assert_eq!(d.offsets(1).1, "\n\nünï\n\n".len() as u64);
        assert_eq!(text(&out, 0, Stream::Stdout), "x\n");
        // The same stream in one piece shows exactly the data.
        let mut d = demux([0; 4]);
        let mut out = Vec::new();
        d.feed(s, &mut out);
        d.finish(&mut out);
        assert_eq!(text(&out, 1, Stream::Stderr), "\n\nünï\n\n");
    }
}
