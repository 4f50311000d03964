//! Aligned text tables for the readable outputs (column widths computed by `tabwriter`).

use std::io::{self, Write};
use tabwriter::TabWriter;

/// Writes `header` and `rows` as left-aligned columns separated by two spaces, each line
/// prefixed with `indent`. Cells must not contain tabs or newlines (bus, group and role names
/// cannot).
pub fn write(
    out: &mut dyn Write,
    indent: &str,
    header: &[&str],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let mut tw = TabWriter::new(Vec::new()).padding(2);
    writeln!(tw, "{indent}{}", header.join("\t"))?;
    for row in rows {
        writeln!(tw, "{indent}{}", row.join("\t"))?;
    }
    tw.flush()?;
    let text = tw
        .into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?;
    // Trailing padding is noise in a terminal and in diffs.
    for line in String::from_utf8_lossy(&text).lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let mut out = Vec::new();
        super::write(
            &mut out,
            "  ",
            &["NAME", "N"],
            &[
                vec!["a".into(), "1".into()],
                vec!["longer".into(), "22".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "  NAME    N\n  a       1\n  longer  22\n"
        );
    }
}
