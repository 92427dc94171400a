//! MedCrypt messages inside pasted chat text: a copied chat adds names,
//! times, "Forwarded from …", quotes, a byte-order mark and zero-width
//! characters around (and sometimes inside) a message. This finds every
//! `MEDCRYPT:` token in order and says what it left out.
//!
//! Pure text in, tokens out; nothing here decides whether a token is
//! authentic (the AEAD does), only where it starts and ends. A v2 token may
//! be wrapped over several lines by the messenger; where it ends is decided
//! by its transit checksum, so words that follow it on the next line are not
//! taken for part of it.

use crate::protocol::legacy::V1_PREFIX;
use crate::protocol::wire::{V2_PREFIX, WireMessage};

/// The start every MedCrypt token shares.
const MARKER: &str = "MEDCRYPT:";

/// A character removed from inside a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// The character (zero-width, byte-order mark, bidi control, soft hyphen).
    pub ch: char,
    /// Its position in the token, counted in characters from 1 (the `M` of
    /// `MEDCRYPT:`).
    pub position: usize,
}

/// One token found in the pasted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The token, without the invisible characters that were inside it
    /// (line breaks a messenger inserted are kept; decryption skips them).
    pub token: String,
    /// Invisible characters that were inside it.
    pub removed: Vec<Removed>,
}

/// What [`find_messages`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Excerpt {
    /// Every token, in the order of the text.
    pub found: Vec<Found>,
    /// Visible characters outside every token (names, times, quotes).
    pub ignored: usize,
}

/// Invisible characters a messenger or a copy may insert: zero-width
/// spaces and joiners, bidi marks and controls, the byte-order mark, the
/// soft hyphen.
pub fn is_invisible(c: char) -> bool {
    crate::protocol::attachment::is_invisible_format(c) || c == '\u{00AD}'
}

/// A character of a v2 body (base64url) or of a version tag.
fn is_v2_body(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A character of a v1 body (standard base64 fields separated by `:`).
fn is_v1_body(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | ':')
}

/// Finds every MedCrypt token in `text`, in order.
pub fn find_messages(text: &str) -> Excerpt {
    let chars: Vec<char> = text.chars().collect();
    let marker: Vec<char> = MARKER.chars().collect();
    let mut excerpt = Excerpt::default();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i..].starts_with(&marker) {
            if !chars[i].is_whitespace() && !is_invisible(chars[i]) {
                excerpt.ignored += 1;
            }
            i += 1;
            continue;
        }
        // A v1 token keeps its opening bracket.
        let v1 = i > 0
            && chars[i - 1] == '['
            && chars[i - 1..].starts_with(&V1_PREFIX.chars().collect::<Vec<_>>());
        if v1 {
            excerpt.ignored = excerpt.ignored.saturating_sub(1); // the bracket
            let (found, end) = take_v1(&chars, i - 1);
            excerpt.found.push(found);
            i = end;
        } else {
            let (found, end) = take_v2(&chars, i);
            excerpt.found.push(found);
            i = end;
        }
    }
    excerpt
}

/// Segments of body characters from `start`, split where white space was,
/// with the invisible characters skipped; returns them and where they end.
fn segments(
    chars: &[char],
    start: usize,
    token_start: usize,
    allowed: fn(char) -> bool,
) -> (Vec<(String, Vec<Removed>, usize)>, usize) {
    let mut segments: Vec<(String, Vec<Removed>, usize)> = Vec::new();
    let mut current = String::new();
    let mut removed = Vec::new();
    let mut i = start;
    let mut last_end = start;
    let mut line_start = false;
    let marker: Vec<char> = MARKER.chars().collect();
    while i < chars.len() {
        let c = chars[i];
        // The next message starts here, even when this one is damaged.
        if chars[i..].starts_with(&marker) || (c == '[' && chars[i + 1..].starts_with(&marker)) {
            break;
        }
        if line_start && c == '>' {
            // A quoted message wrapped over lines: "> " starts each.
            i += 1;
            continue;
        }
        line_start = c == '\n' || (line_start && c.is_whitespace());
        if allowed(c) {
            current.push(c);
            i += 1;
            last_end = i;
        } else if is_invisible(c) {
            removed.push(Removed {
                ch: c,
                position: i - token_start + 1,
            });
            i += 1;
        } else if c.is_whitespace() {
            if !current.is_empty() {
                segments.push((
                    std::mem::take(&mut current),
                    std::mem::take(&mut removed),
                    i,
                ));
            }
            i += 1;
        } else {
            break;
        }
    }
    if !current.is_empty() {
        segments.push((current, removed, last_end));
    }
    let end = segments.last().map_or(start, |s| s.2);
    (segments, end)
}

fn take_v2(chars: &[char], start: usize) -> (Found, usize) {
    // The prefix: `MEDCRYPT:`, a version tag, `:`.
    let mut prefix: String = MARKER.to_owned();
    let mut i = start + MARKER.chars().count();
    while i < chars.len() && is_v2_body(chars[i]) && prefix.len() < MARKER.len() + 16 {
        prefix.push(chars[i]);
        i += 1;
    }
    if i < chars.len() && chars[i] == ':' {
        prefix.push(':');
        i += 1;
    } else {
        // No version tag: the token is what was found; decryption says why
        // it cannot be read.
        return (
            Found {
                token: prefix,
                removed: Vec::new(),
            },
            i,
        );
    }
    let (segments, greedy_end) = segments(chars, i, start, is_v2_body);
    // The longest run of segments whose transit checksum holds; a v2 token
    // that holds for none is taken whole, and fails as damaged.
    let join = |k: usize| {
        let mut token = prefix.clone();
        let mut removed = Vec::new();
        for (j, (text, gone, _)) in segments[..k].iter().enumerate() {
            if j > 0 {
                token.push('\n');
            }
            token.push_str(text);
            removed.extend_from_slice(gone);
        }
        Found { token, removed }
    };
    if prefix == V2_PREFIX {
        for k in (1..=segments.len()).rev() {
            let found = join(k);
            if WireMessage::parse(&found.token).is_ok() {
                return (found, segments[k - 1].2);
            }
        }
    }
    if prefix == V2_PREFIX || segments.is_empty() {
        return (join(segments.len()), greedy_end);
    }
    // Another version: its rules are unknown, so one line of it.
    (join(1), segments[0].2)
}

fn take_v1(chars: &[char], start: usize) -> (Found, usize) {
    let body_start = start + V1_PREFIX.chars().count();
    let (segments, mut end) = segments(chars, body_start, start, is_v1_body);
    let mut token: String = V1_PREFIX.to_owned();
    let mut removed = Vec::new();
    for (text, gone, _) in segments {
        token.push_str(&text);
        removed.extend(gone);
    }
    if chars.get(end) == Some(&']') {
        token.push(']');
        end += 1;
    }
    (Found { token, removed }, end)
}

/// The Unicode name of the invisible characters MedCrypt removes, for
/// messages that name them.
pub fn invisible_name(c: char) -> &'static str {
    match c {
        '\u{200B}' => "zero width space",
        '\u{200C}' => "zero width non-joiner",
        '\u{200D}' => "zero width joiner",
        '\u{200E}' => "left-to-right mark",
        '\u{200F}' => "right-to-left mark",
        '\u{2060}' => "word joiner",
        '\u{FEFF}' => "byte order mark",
        '\u{00AD}' => "soft hyphen",
        '\u{061C}' => "Arabic letter mark",
        _ => "invisible formatting character",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 token with a valid transit checksum.
    fn token() -> String {
        use crate::protocol::keys::{Direction, EpochChain, PairingSecret};
        use crate::protocol::wire::Payload;
        let secret = PairingSecret::from_bytes(&[9; 32]);
        let chain = EpochChain::new(secret.first_epoch_key("2026-11".parse().unwrap()));
        let key = chain.key_for("2026-11".parse().unwrap()).unwrap();
        WireMessage::seal(
            &key,
            Direction::PhysicianToPatient,
            1,
            &Payload::Text("hello".into()),
        )
        .unwrap()
        .to_text()
    }

    #[test]
    fn a_chat_line_around_a_message_is_ignored() {
        let t = token();
        let pasted =
            format!("\u{FEFF}[10:15, 24/11/2026] Dr. Ana Silva: {t}\n[10:16] Alice: thanks!");
        let excerpt = find_messages(&pasted);
        assert_eq!(excerpt.found.len(), 1);
        assert_eq!(excerpt.found[0].token, t);
        assert!(excerpt.ignored > 20);
    }

    #[test]
    fn words_on_the_next_line_are_not_taken_for_the_message() {
        let t = token();
        let pasted = format!("{t}\nThanks doctor");
        let excerpt = find_messages(&pasted);
        assert_eq!(excerpt.found[0].token, t);
        // A message wrapped by the messenger is one message.
        let wrapped = format!("> {}\n> {}\nok", &t[..40], &t[40..]);
        let excerpt = find_messages(&wrapped);
        assert_eq!(excerpt.found.len(), 1);
        assert!(WireMessage::parse(&excerpt.found[0].token).is_ok());
    }

    #[test]
    fn several_messages_come_out_in_order_and_invisible_characters_are_named() {
        let t = token();
        let mut broken = t.clone();
        broken.insert(30, '\u{200B}');
        let pasted = format!(
            "Forwarded from Dr. Silva\n{t}\n\n[MEDCRYPT:v2:{}]\n{broken}",
            &t[12..]
        );
        let excerpt = find_messages(&pasted);
        assert_eq!(excerpt.found.len(), 3);
        assert_eq!(
            excerpt.found[1].token, t,
            "brackets around v2 are not part of it"
        );
        assert_eq!(excerpt.found[2].token, t);
        assert_eq!(
            excerpt.found[2].removed,
            [Removed {
                ch: '\u{200B}',
                position: 31
            }]
        );
    }

    #[test]
    fn a_damaged_message_does_not_swallow_the_next_one() {
        let t = token();
        let mut damaged = t.clone();
        damaged.truncate(t.len() - 3);
        let pasted = format!("{damaged}\n{t}");
        let excerpt = find_messages(&pasted);
        assert_eq!(excerpt.found.len(), 2, "{excerpt:?}");
        assert_eq!(excerpt.found[0].token, damaged);
        assert_eq!(excerpt.found[1].token, t);
    }

    #[test]
    fn v1_and_unknown_versions_are_found_too() {
        let excerpt = find_messages("x [MEDCRYPT:v1:cA==:bm9uY2U=:Y3Q=:dGFn] y MEDCRYPT:v9:abc z");
        let tokens: Vec<&str> = excerpt.found.iter().map(|f| f.token.as_str()).collect();
        assert_eq!(
            tokens,
            ["[MEDCRYPT:v1:cA==:bm9uY2U=:Y3Q=:dGFn]", "MEDCRYPT:v9:abc"]
        );
        assert!(find_messages("no message here").found.is_empty());
    }
}
