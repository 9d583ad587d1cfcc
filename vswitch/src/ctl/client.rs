//! The control socket's client, used by `hnvctl` and the tests.

use super::protocol::Framing;
use hnv_policy::api::{Request, Response};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long the client waits for one answer (a commit of many changes, or a
/// port change, may take a while on a large policy).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to a running switch's control socket.
#[derive(Debug)]
pub struct Client {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

fn line_of<T: serde::Serialize>(v: &T) -> std::io::Result<String> {
    let mut text = serde_json::to_string(v).map_err(std::io::Error::other)?;
    text.push('\n');
    Ok(text)
}

impl Client {
    /// Connect to `path`.
    ///
    /// # Errors
    /// When the socket cannot be opened (not running, or not root).
    pub fn connect(path: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(Client { w: s.try_clone()?, r: BufReader::new(s) })
    }

    fn read_response(&mut self) -> std::io::Result<Response> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the switch closed the connection"));
        }
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }

    /// Send a request and wait for its response.
    ///
    /// # Errors
    /// Socket errors, or a response that is not valid JSON.
    pub fn call(&mut self, req: &Request) -> std::io::Result<Response> {
        self.w.write_all(line_of(req)?.as_bytes())?;
        self.read_response()
    }

    /// Apply `changes` as one transaction (`begin`, the changes, `commit`),
    /// writing ahead while reading the answers. Returns the commit's answer,
    /// or the first refusal (the switch then ignores the rest and applies
    /// nothing).
    ///
    /// # Errors
    /// Socket errors, or a response that is not valid JSON.
    pub fn transaction(&mut self, changes: &[Request]) -> std::io::Result<Response> {
        let mut w = self.w.try_clone()?;
        let mut lines = Vec::with_capacity(changes.len() + 2);
        lines.push(line_of(&Framing::Begin)?);
        for c in changes {
            lines.push(line_of(c)?);
        }
        lines.push(line_of(&Framing::Commit)?);
        let n = lines.len();
        std::thread::scope(|s| {
            let writer = s.spawn(move || -> std::io::Result<()> {
                let mut out = std::io::BufWriter::new(&mut w);
                for l in &lines {
                    out.write_all(l.as_bytes())?;
                }
                out.flush()
            });
            let mut first_refusal = None;
            let mut last = Response::default();
            for _ in 0..n {
                match self.read_response() {
                    Ok(r) => {
                        if !r.ok && first_refusal.is_none() {
                            first_refusal = Some(r.clone());
                        }
                        last = r;
                    }
                    Err(e) => {
                        // Unblock the writer; the switch discards an unfinished transaction.
                        let _ = self.w.shutdown(std::net::Shutdown::Both);
                        let _ = writer.join();
                        return Err(e);
                    }
                }
            }
            writer.join().map_err(|_| std::io::Error::other("the writer thread panicked"))??;
            Ok(first_refusal.unwrap_or(last))
        })
    }

    /// Send a raw line (for tests of malformed input) and read the response line.
    ///
    /// # Errors
    /// Socket errors.
    pub fn call_raw(&mut self, line: &str) -> std::io::Result<String> {
        self.w.write_all(line.as_bytes())?;
        self.w.write_all(b"\n")?;
        let mut resp = String::new();
        self.r.read_line(&mut resp)?;
        Ok(resp)
    }
}
