//! `medcrypt attach encrypt|decrypt`: files through the attachment format,
//! with a progress bar for large files on a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use medcrypt::session::{Destination, Session, printable_line};

use super::args::AttachCommand;
use super::io::note;
use super::report::usage;

/// Files above this size get a progress bar on a terminal.
const PROGRESS_THRESHOLD: u64 = 4 * 1024 * 1024;

/// Runs an `attach` subcommand.
pub(super) fn run(session: &Session, action: AttachCommand) -> Result<()> {
    match action {
        AttachCommand::Encrypt {
            to,
            file,
            name,
            output,
            part_size,
            armor,
        } => {
            let part_size = part_size.as_deref().map(parse_size).transpose()?;
            let layout = match (part_size, armor) {
                (Some(_), true) => {
                    return Err(usage(
                        "--armor and --part-size cannot be combined",
                        "armour is for messengers that take text documents of up to 100 MB \
                         (WhatsApp): send the file whole",
                    ));
                }
                (Some(limit), false) => medcrypt::session::Layout::Parts(limit),
                (None, true) => medcrypt::session::Layout::Armored,
                (None, false) => medcrypt::session::Layout::Whole,
            };
            let mut bar = Bar::new("encrypting");
            let written = if file.as_os_str() == "-" {
                super::io::paste_prompt("Type or paste the content, then press Ctrl-D");
                let mut bytes = zeroize::Zeroizing::new(Vec::new());
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
                session.encrypt_bytes(
                    &to,
                    name.as_deref().unwrap_or("note.txt"),
                    &bytes,
                    output.as_deref(),
                    layout,
                    &mut |done, total| bar.update(done, total),
                )?
            } else {
                if name.is_some() {
                    return Err(usage(
                        "--name is only for standard input (`-`)",
                        "a file keeps its own name; rename it first to send it under another",
                    ));
                }
                session.encrypt_file(
                    &to,
                    &file,
                    output.as_deref(),
                    layout,
                    &mut |done, total| bar.update(done, total),
                )?
            };
            bar.finish();
            let mut stdout = std::io::stdout().lock();
            for path in &written {
                writeln!(stdout, "{}", path.display())?;
            }
            Ok(())
        }
        AttachCommand::Decrypt {
            files,
            output,
            out_dir,
            force,
        } => {
            let current = PathBuf::from(".");
            let destination = match (&output, &out_dir) {
                (Some(path), _) => Destination::File(path),
                (None, Some(dir)) => Destination::Dir(dir),
                (None, None) => Destination::Dir(&current),
            };
            let mut bar = Bar::new("decrypting");
            let decrypted =
                session.decrypt_file(&files, destination, force, &mut |done, total| {
                    bar.update(done, total)
                })?;
            bar.finish();
            let role = match session
                .pairings()?
                .iter()
                .find(|p| p.alias == decrypted.alias)
            {
                Some(p) if p.role == medcrypt::Role::Patient => medcrypt::Role::Physician,
                _ => medcrypt::Role::Patient,
            };
            note(format_args!(
                "{}",
                super::message::sender_line(&decrypted.alias, &decrypted.peer_name, role)
            ));
            if let Some(at) = &decrypted.received_before {
                note(format_args!("note: already received on {at}"));
            }
            writeln!(
                std::io::stdout().lock(),
                "{} ({} bytes, {})\nSHA-256 {}",
                printable_line(&decrypted.path.display().to_string()),
                decrypted.metadata.size,
                printable_line(&decrypted.metadata.mime),
                hex::encode(decrypted.sha256)
            )?;
            Ok(())
        }
    }
}

/// A progress bar on standard error, shown only for large files on a terminal.
struct Bar {
    what: &'static str,
    bar: Option<indicatif::ProgressBar>,
    decided: bool,
}

impl Bar {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            bar: None,
            decided: false,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if !self.decided {
            self.decided = true;
            if total >= PROGRESS_THRESHOLD && std::io::stderr().is_terminal() {
                let bar = indicatif::ProgressBar::new(total);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(self.what.to_owned());
                self.bar = Some(bar);
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Parses a size such as `19M`, `19MB`, `19MiB`, `500K`, `2G` or `1000000`.
pub(super) fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits.parse().map_err(|_| {
        usage(
            format!("{text:?} is not a size"),
            "use a size such as 19M (megabytes) or 19MiB",
        )
    })?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => {
            return Err(usage(
                format!("unknown size unit in {text:?}"),
                "use K, M or G (or KiB, MiB, GiB)",
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| usage(format!("{text:?} is too large"), "use a smaller size"))
}
