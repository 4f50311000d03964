//! Running a measured role in a child process and talking to it over its stdin and stdout.
//!
//! The coordinator starts this same executable with `--role ...`; the child announces readiness
//! with lines such as `ready`, waits for words such as `go` on stdin, and ends with a
//! [`crate::report`] line. Every read has a deadline, so a child that hangs or dies becomes a
//! clear error instead of a stuck benchmark; a child still running when its handle drops is
//! killed and reaped.

use crate::report::{SideReport, PREFIX};
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

/// How long the coordinator waits for any single line from a child.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(120);

/// Prints one line to stdout and flushes it (the coordinator reads line by line).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Blocks until the coordinator writes `word` on our stdin.
pub fn wait_word(word: &str) -> Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if std::io::stdin().read_line(&mut line)? == 0 {
            bail!("the coordinator closed stdin while we waited for {word:?}");
        }
        if line.trim() == word {
            return Ok(());
        }
    }
}

/// A child process running one role.
pub struct RoleChild {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl RoleChild {
    /// Starts this executable with `args`, labelled `label` in error messages.
    pub fn spawn(label: &str, args: &[String]) -> Result<RoleChild> {
        let exe = std::env::current_exe().context("finding the benchmark executable")?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the {label} process"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(RoleChild {
            label: label.to_string(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
        })
    }

    fn next_line(&mut self) -> Result<String> {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => bail!(
                "the {} process said nothing for {} s",
                self.label,
                LINE_TIMEOUT.as_secs()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait()?;
                bail!(
                    "the {} process ended ({status}) before reporting (see its stderr above)",
                    self.label
                )
            }
        }
    }

    /// Waits for the line `word`.
    pub fn expect(&mut self, word: &str) -> Result<()> {
        loop {
            let line = self.next_line()?;
            if line.trim() == word {
                return Ok(());
            }
        }
    }

    /// Writes `word` to the child's stdin.
    pub fn send(&mut self, word: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{word}")
            .and_then(|_| stdin.flush())
            .with_context(|| format!("telling the {} process {word:?}", self.label))
    }

    /// Waits for the child's result line, then for its successful exit.
    pub fn result(mut self) -> Result<SideReport> {
        let report = loop {
            let line = self.next_line()?;
            if let Some(json) = line.strip_prefix(PREFIX) {
                break serde_json::from_str(json)
                    .map_err(|e| anyhow!("bad result from the {} process: {e}", self.label))?;
            }
        };
        self.stdin = None;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the {} process exited with {status}", self.label);
        }
        Ok(report)
    }
}

impl Drop for RoleChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
