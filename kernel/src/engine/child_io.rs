//! Runs inside evcxr's child process (our own binary started with
//! `EVCXR_IS_RUNTIME`), before evcxr's runtime loop takes over. It puts a pipe
//! behind fd 1 and fd 2 and forwards what user code writes, so that:
//! - a `print!` without a trailing newline cannot glue itself to evcxr's
//!   end-of-cell marker (which would hang evcxr) and still reaches the cell;
//! - partial lines appear after a short pause instead of waiting for a newline;
//! - each rich display (`EVCXR_BEGIN_CONTENT`) reaches the kernel as it
//!   happens and in order, while the cell's final value stays evcxr's result;
//! - the kernel learns about panics and when a cell's stderr is complete.

use super::lines;
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::time::{Duration, Instant};

const IDLE: Duration = Duration::from_millis(120);

/// Installs the forwarders. Must be called before any other thread starts.
pub fn install() {
    // Panics in user code are reported by the kernel; the short form is enough.
    // SAFETY: called first thing in main, before any thread exists.
    unsafe { std::env::set_var("RUST_BACKTRACE", "0") };
    if let (Some(out), Some(err)) = (redirect(1), redirect(2)) {
        std::thread::spawn(move || forward(out.0, out.1, Stream::Stdout));
        std::thread::spawn(move || forward(err.0, err.1, Stream::Stderr));
    }
}

/// Replaces `fd` with the write end of a new pipe. Returns (read end, original fd).
fn redirect(fd: RawFd) -> Option<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: plain POSIX calls on descriptors we own.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return None;
        }
        let original = libc::dup(fd);
        if original < 0 || libc::dup2(fds[1], fd) < 0 {
            return None;
        }
        libc::close(fds[1]);
        libc::fcntl(fds[0], libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(original, libc::F_SETFD, libc::FD_CLOEXEC);
        Some((fds[0], original))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Stream {
    Stdout,
    Stderr,
}

struct Forwarder {
    out: File,
    stream: Stream,
    /// Display blocks seen since the last other output: (mime, content).
    group: Vec<(String, String)>,
    /// The display block being read.
    block: Option<(String, Vec<String>)>,
    partial: Vec<u8>,
}

fn forward(read_fd: RawFd, out_fd: RawFd, stream: Stream) {
    // SAFETY: we own both descriptors from here on.
    let mut fw = Forwarder {
        out: unsafe { File::from_raw_fd(out_fd) },
        stream,
        group: Vec::new(),
        block: None,
        partial: Vec::new(),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_data = Instant::now();
    loop {
        let mut pfd = libc::pollfd {
            fd: read_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, IDLE.as_millis() as i32) };
        if ready == 0 {
            if last_data.elapsed() >= IDLE {
                fw.on_idle();
            }
            continue;
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(read_fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            break;
        }
        last_data = Instant::now();
        fw.feed(&buf[..n as usize]);
    }
    fw.on_idle();
}

impl Forwarder {
    fn feed(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.on_line(line);
        }
    }

    fn on_line(&mut self, line: String) {
        if self.stream == Stream::Stderr {
            if let Some(pos) = line.find(lines::STDERR_SYNC).filter(|&p| p > 0) {
                self.emit_partial(&line[..pos]);
                self.emit(&line[pos..]);
            } else {
                self.emit(&line);
            }
            return;
        }
        if let Some((mime, content)) = &mut self.block {
            if line == lines::EVCXR_END {
                let done = (std::mem::take(mime), content.join("\n"));
                self.block = None;
                self.group.push(done);
            } else {
                content.push(line);
            }
            return;
        }
        if let Some(pos) = lines::glued_marker(&line) {
            self.flush_group_as_display();
            self.emit_partial(&line[..pos]);
            return self.on_line(line[pos..].to_owned());
        }
        if let Some(mime) = line.strip_prefix(lines::EVCXR_BEGIN) {
            if self.group.iter().any(|(m, _)| m == mime) {
                self.flush_group_as_display();
            }
            self.block = Some((mime.trim().to_owned(), Vec::new()));
        } else if line == lines::EVCXR_COMPLETE {
            // Everything user code wrote to stderr is in the pipe before this.
            let _ = writeln!(std::io::stderr(), "{}", lines::STDERR_SYNC);
            // The displays right before the end are the cell's value: give them
            // back to evcxr unchanged. evcxr shows a value without a display
            // of its own as one text/plain block, so displays before such a
            // block are the cell's own.
            let mut value = std::mem::take(&mut self.group);
            if value.len() > 1 && value.last().is_some_and(|(mime, _)| mime == "text/plain") {
                let last = value.pop().expect("non-empty");
                self.group = value;
                self.flush_group_as_display();
                value = vec![last];
            }
            for (mime, content) in value {
                self.emit(&format!(
                    "{}{mime}\n{content}\n{}",
                    lines::EVCXR_BEGIN,
                    lines::EVCXR_END
                ));
            }
            self.emit(&line);
        } else if line == lines::EVCXR_PANIC {
            self.flush_group_as_display();
            self.emit(lines::PANIC);
            self.emit(&line);
        } else {
            self.flush_group_as_display();
            self.emit(&line);
        }
    }

    fn on_idle(&mut self) {
        if self.block.is_some() {
            return;
        }
        self.flush_group_as_display();
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
            self.emit_partial(&text);
        }
    }

    fn flush_group_as_display(&mut self) {
        if self.group.is_empty() {
            return;
        }
        let bundle: serde_json::Map<String, serde_json::Value> = std::mem::take(&mut self.group)
            .into_iter()
            .map(|(mime, content)| (mime, serde_json::Value::String(content)))
            .collect();
        let line = format!("{}{}", lines::DISPLAY, serde_json::Value::Object(bundle));
        self.emit(&line);
    }

    fn emit_partial(&mut self, text: &str) {
        if !text.is_empty() {
            self.emit(&format!("{text}{}", lines::NO_NEWLINE));
        }
    }

    fn emit(&mut self, line: &str) {
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.write_all(b"\n");
        let _ = self.out.flush();
    }
}
