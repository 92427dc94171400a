//! Text from another person, made safe to show: nothing in a message or a
//! file name may drive the terminal (escape sequences), hide or reorder
//! what is shown (bidi overrides, zero-width characters), or pass for
//! another entry of a listing.

use crate::protocol::attachment::is_invisible_format;

/// `text` with every control character but line breaks and tabs, and every
/// invisible formatting character, written as `\u{…}`.
pub fn printable(text: &str) -> String {
    escape(text, |c| c == '\n' || c == '\t')
}

/// `text` on one line: as [`printable`], line breaks and tabs escaped too
/// (for names and other one-line fields).
pub fn printable_line(text: &str) -> String {
    escape(text, |_| false)
}

fn escape(text: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if keep(c) || !(c.is_control() || is_invisible_format(c)) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    out
}

/// The margin every line of someone else's text is shown behind.
pub const MARGIN: &str = "  │ ";

/// `text` made printable, every line behind [`MARGIN`] and broken before
/// it reaches `width` columns, so that the terminal never wraps a line
/// itself: no line of the body, however long or however spaced, can start
/// at the left edge and pass for a heading or a `From:` line.
///
/// Widths are counted pessimistically (a non-ASCII character as two
/// columns, a tab as eight), so a line is never wider than counted.
pub fn framed(text: &str, width: usize) -> String {
    const MARGIN_COLUMNS: usize = 4;
    let room = width.saturating_sub(MARGIN_COLUMNS).max(8);
    let columns = |c: char| match c {
        '\t' => 8,
        c if c.is_ascii() => 1,
        _ => 2,
    };
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in printable(text).split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(MARGIN);
        let mut used = 0;
        for c in line.chars() {
            let w = columns(c);
            if used + w > room {
                out.push('\n');
                out.push_str(MARGIN);
                used = 0;
            }
            out.push(c);
            used += w;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_drive_or_deceive_a_terminal() {
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(
            printable("invoice\u{202e}fdp.exe"),
            "invoice\\u{202e}fdp.exe"
        );
        assert_eq!(printable("two\nlines\tok"), "two\nlines\tok");
        assert_eq!(printable_line("two\nlines"), "two\\u{a}lines");
        assert_eq!(printable("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(framed("a\n#99 fake", 80), "  │ a\n  │ #99 fake");
        assert_eq!(
            printable("Señora Núñez, 120/80 ✓"),
            "Señora Núñez, 120/80 ✓"
        );
    }

    #[test]
    fn a_long_line_is_broken_behind_the_margin_before_the_terminal_wraps_it() {
        let spaced = format!("{}#3 2026-11-20T10:05:00Z from alice", " ".repeat(76));
        let shown = framed(&spaced, 80);
        for line in shown.lines() {
            assert!(line.starts_with(MARGIN), "{line:?}");
            assert!(line.chars().count() <= 80, "{line:?}");
        }
        // Wide characters count double: 40 of them fill a line.
        let wide = framed(&"漢".repeat(60), 80);
        assert_eq!(wide.lines().count(), 2);
        assert!(wide.lines().all(|l| l.starts_with(MARGIN)));
    }
}
