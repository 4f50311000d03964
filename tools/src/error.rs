//! How failures leave the command line: the exit status each kind of failure gets, and the one
//! line printed on stderr for it.
//!
//! Commands return `anyhow::Error`s whose chain carries the typed cause ([`shm_ring::BusError`],
//! [`UsageError`]); the status is chosen from the first typed cause found in the chain.

use shm_ring::BusError;

/// Exit status of a run that failed for a reason not listed below.
pub const EXIT_OTHER: i32 = 1;
/// Exit status for a command line that cannot be run as written (unknown option, bad argument).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when the named bus does not exist.
pub const EXIT_UNKNOWN_BUS: i32 = 3;
/// Exit status for a bus name that is not acceptable.
pub const EXIT_BAD_NAME: i32 = 4;
/// Exit status for a bus file that is corrupt, foreign, or of a layout version this build does not read.
pub const EXIT_BAD_REGION: i32 = 5;

/// An argument that is well-formed for the parser but cannot be used (a wildcard topic for
/// `publish`, JSON that does not parse...). Leads to [`EXIT_USAGE`].
#[derive(thiserror::Error, Debug)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A refusal to do something risky without being told to (e.g. removing a bus that live
/// processes use). Leads to [`EXIT_OTHER`]; the message says how to insist.
#[derive(thiserror::Error, Debug)]
#[error("{0}")]
pub struct Refused(pub String);

/// The exit status for `err`.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(bus) = cause.downcast_ref::<BusError>() {
            return match bus {
                BusError::NotFound { .. } => EXIT_UNKNOWN_BUS,
                BusError::BadName { .. } | BusError::BadGroup { .. } => EXIT_BAD_NAME,
                BusError::Corrupt { .. }
                | BusError::Mismatch { .. }
                | BusError::ForeignOwner { .. }
                | BusError::NotABusFile { .. } => EXIT_BAD_REGION,
                _ => EXIT_OTHER,
            };
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return EXIT_USAGE;
        }
    }
    EXIT_OTHER
}

/// The error as one line: each cause in the chain joined by `": "`, leaving out a cause whose
/// text its parent already shows (several error types print their source themselves).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the failure is only that whoever read our output went away (`event-engine tail | head`),
/// which is a normal way for a pipeline to end.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_follow_the_typed_cause() {
        let not_found = anyhow::Error::new(BusError::NotFound { name: "x".into() });
        assert_eq!(exit_code(&not_found), EXIT_UNKNOWN_BUS);
        let wrapped: anyhow::Result<()> = Err(BusError::BadName {
            name: "../x".into(),
            reason: "no",
        })
        .context("opening the bus");
        assert_eq!(exit_code(&wrapped.unwrap_err()), EXIT_BAD_NAME);
        let version = anyhow::Error::new(BusError::Mismatch {
            name: "x".into(),
            field: "layout version",
            expected: 1,
            found: 9,
        });
        assert_eq!(exit_code(&version), EXIT_BAD_REGION);
        assert_eq!(
            exit_code(&anyhow::Error::new(UsageError("bad".into()))),
            EXIT_USAGE
        );
        assert_eq!(exit_code(&anyhow::anyhow!("other")), EXIT_OTHER);
    }

    #[test]
    fn one_line_drops_repeated_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let err = anyhow::Error::new(BusError::Io {
            name: "x".into(),
            source: io,
        });
        assert_eq!(one_line(&err), "bus \"x\": denied");
        let ctx: anyhow::Result<()> = Err(anyhow::anyhow!("inner\nproblem")).context("outer");
        assert_eq!(one_line(&ctx.unwrap_err()), "outer: inner problem");
    }
}
