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

/// `text` indented by `indent` on every line, made printable: a body that
/// cannot be taken for the next entry's heading.
pub fn indented(text: &str, indent: &str) -> String {
    printable(text)
        .split('\n')
        .map(|line| format!("{indent}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
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
        assert_eq!(indented("a\n#99 fake", "    "), "    a\n    #99 fake");
        assert_eq!(
            printable("Señora Núñez, 120/80 ✓"),
            "Señora Núñez, 120/80 ✓"
        );
    }
}
