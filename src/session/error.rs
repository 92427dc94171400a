//! The errors of the use cases, each with its kind (which the command line
//! turns into an exit code) and a hint saying what to do next, in plain
//! words, so that every front end explains a failure the same way.

use std::borrow::Cow;

use crate::protocol::attachment::AttachmentError;
use crate::protocol::audit::AuditFault;
use crate::protocol::codes::CodeError;
use crate::protocol::shares::ShareError;
use crate::protocol::wire::{DecryptError, SealError};
use crate::qr::QrError;
use crate::store::StoreError;

/// What kind of failure an error is. The command line maps each kind to its
/// documented exit code ([`ErrorKind::exit_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Anything else: missing store or file, disk, bad code, text too long…
    Other,
    /// The request itself is invalid (a usage error).
    Usage,
    /// The message or file was altered, or encrypted with another key.
    Authentication,
    /// The month's key was destroyed, or the message is not yet valid.
    Expired,
    /// Already decrypted once.
    Replayed,
    /// A message this side sent, fed back to it.
    Reflected,
    /// Damaged in transit, not a MedCrypt message, or a newer version.
    Damaged,
    /// Encrypted for another pairing or store.
    UnknownPairing,
    /// Wrong passphrase, recovery code or escrow shares: nothing was opened.
    Locked,
    /// The audit log failed verification.
    AuditFailed,
    /// Break-glass refused: shares damaged, too few, of another store or a
    /// retired set; nothing was opened.
    Escrow,
}

impl ErrorKind {
    /// The documented exit code of the `medcrypt` command for this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Other => 1,
            Self::Usage => 2,
            Self::Authentication => 3,
            Self::Expired => 4,
            Self::Replayed => 5,
            Self::Reflected => 6,
            Self::Damaged => 7,
            Self::UnknownPairing => 8,
            Self::Locked => 9,
            Self::AuditFailed => 10,
            Self::Escrow => 11,
        }
    }
}

/// Why a use case failed. Never carries a secret or medical content.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message could not be decrypted.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// A message could not be encrypted.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// An attachment could not be made or opened.
    #[error(transparent)]
    Attachment(AttachmentError),
    /// A typed code or QR payload is unusable.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// Escrow shares that cannot be combined.
    #[error(transparent)]
    Share(#[from] ShareError),
    /// A QR code could not be made or read.
    #[error(transparent)]
    Qr(#[from] QrError),
    /// The audit log failed verification.
    #[error("audit log verification failed: {fault}")]
    AuditFailed {
        /// The first bad record, named.
        fault: AuditFault,
        /// Whether the failed verification itself could be audited (a
        /// tampered log may refuse appends).
        logged: bool,
    },
    /// The use case refuses the request, with what to do instead.
    #[error("{message}")]
    Refused {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Cow<'static, str>,
        /// Its kind.
        kind: ErrorKind,
    },
    /// Reading or writing a file failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The result of a use case.
pub type Result<T> = std::result::Result<T, Error>;

impl From<AttachmentError> for Error {
    fn from(err: AttachmentError) -> Self {
        match err {
            // A header that cannot be opened is told like a message.
            AttachmentError::Header(inner) => Self::Decrypt(inner),
            // A damaged ASCII armour surfaces as a read error: named.
            AttachmentError::Io(io) => match crate::protocol::attachment::armor_error(io) {
                AttachmentError::Io(io) => Self::Attachment(AttachmentError::Io(io)),
                named => Self::Attachment(named),
            },
            other => Self::Attachment(other),
        }
    }
}

impl Error {
    /// A refusal of kind [`ErrorKind::Other`].
    pub fn refused(message: impl Into<String>, hint: impl Into<Cow<'static, str>>) -> Self {
        Self::Refused {
            message: message.into(),
            hint: hint.into(),
            kind: ErrorKind::Other,
        }
    }

    /// A refusal of kind [`ErrorKind::Usage`].
    pub fn usage(message: impl Into<String>, hint: impl Into<Cow<'static, str>>) -> Self {
        Self::Refused {
            message: message.into(),
            hint: hint.into(),
            kind: ErrorKind::Usage,
        }
    }

    /// A refusal of a given kind.
    pub fn of_kind(
        kind: ErrorKind,
        message: impl Into<String>,
        hint: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Refused {
            message: message.into(),
            hint: hint.into(),
            kind,
        }
    }

    /// An I/O failure while doing `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.classify().0
    }

    /// What to do next, in plain words.
    pub fn hint(&self) -> Option<Cow<'static, str>> {
        self.classify().1
    }

    fn classify(&self) -> (ErrorKind, Option<Cow<'static, str>>) {
        let (kind, hint): (ErrorKind, &'static str) = match self {
            Self::Store(e) => return classify_store(e),
            Self::Decrypt(e) => classify_decrypt(e),
            Self::Seal(SealError::TooLong { .. }) => (
                ErrorKind::Other,
                "add --as-attachment to send it as an encrypted file instead (nothing is written in plaintext), or shorten it",
            ),
            Self::Seal(SealError::NoKeyForEpoch(_)) => return (ErrorKind::Other, None),
            Self::Attachment(e) => classify_attachment(e),
            Self::Code(e) => match e {
                CodeError::Checksum
                | CodeError::BadCharacter(_)
                | CodeError::WrongLength { .. } => (
                    ErrorKind::Other,
                    "compare the code group by group with the one on the other screen; nothing was stored",
                ),
                CodeError::NotPairing(_) => (
                    ErrorKind::Other,
                    "scan the QR code shown by `medcrypt pair new`; nothing was stored",
                ),
            },
            Self::Share(_) => (
                ErrorKind::Escrow,
                "check the share page; the typed text must match it exactly; nothing was opened",
            ),
            Self::Qr(_) => (
                ErrorKind::Other,
                "take a sharper, well-lit picture of the whole QR code, or type the code instead",
            ),
            Self::AuditFailed { .. } => (
                ErrorKind::AuditFailed,
                "the audit log was tampered with: keep this store as evidence and tell whoever audits it",
            ),
            Self::Refused { kind, hint, .. } => return (*kind, Some(hint.clone())),
            Self::Io { source, context } => {
                use std::io::ErrorKind as Io;
                let writing =
                    context.starts_with("cannot create") || context.starts_with("cannot write");
                let hint = match source.kind() {
                    Io::NotFound if writing => {
                        "that directory does not exist: create it first (mkdir -p), or choose another path; nothing was written"
                    }
                    Io::NotFound => "no such file: check the name and the directory (`ls`)",
                    Io::PermissionDenied => {
                        "you lack permission there: check the owner and mode (`ls -l`), or choose another path"
                    }
                    Io::IsADirectory => "that is a directory: give a file",
                    Io::NotADirectory => "a part of that path is a file, not a directory",
                    Io::StorageFull | Io::QuotaExceeded => {
                        "the disk is full: free some space and try again; nothing was written"
                    }
                    Io::ReadOnlyFilesystem => "that file system is read-only: choose another path",
                    _ => "check the path, the disk space and the permissions",
                };
                (ErrorKind::Other, hint)
            }
        };
        (kind, Some(Cow::Borrowed(hint)))
    }
}

fn classify_decrypt(e: &DecryptError) -> (ErrorKind, &'static str) {
    match e {
        DecryptError::Malformed(_) => (
            ErrorKind::Damaged,
            "copy the whole message, from MEDCRYPT: to its last character, and try again",
        ),
        DecryptError::Damaged(_) => (
            ErrorKind::Damaged,
            "the text changed on its way (often in copy and paste): copy the whole message again, or ask the sender to send it again",
        ),
        DecryptError::UnsupportedVersion(_) | DecryptError::UnsupportedPayload(_) => (
            ErrorKind::Damaged,
            "the sender uses a newer MedCrypt: update this one",
        ),
        DecryptError::UnknownKeyHint => (
            ErrorKind::UnknownPairing,
            "it was encrypted for another pairing or another store: check --from and --store (`medcrypt pair list`)",
        ),
        DecryptError::Expired { .. } => (
            ErrorKind::Expired,
            "keys are destroyed 7 days after their month ends, so this message can no longer be read: ask the sender to send it again",
        ),
        DecryptError::NotYetValid { .. } => (
            ErrorKind::Expired,
            "check the clock of this computer and of the sender (and MEDCRYPT_NOW, if set)",
        ),
        DecryptError::AuthenticationFailed => (
            ErrorKind::Authentication,
            "the message was altered, or encrypted with a key this store does not hold: do not trust it; ask the sender to send it again",
        ),
        DecryptError::Reflected => (
            ErrorKind::Reflected,
            "this is a message you sent; only the other side can decrypt it",
        ),
    }
}

fn classify_attachment(e: &AttachmentError) -> (ErrorKind, &'static str) {
    match e {
        AttachmentError::Header(inner) => classify_decrypt(inner),
        AttachmentError::Truncated { .. } | AttachmentError::EmptyFinalChunk => (
            ErrorKind::Damaged,
            "the file is incomplete (an interrupted download?): download it again; for a split attachment give every part",
        ),
        AttachmentError::AppendedData { .. }
        | AttachmentError::Reordered { .. }
        | AttachmentError::Duplicated { .. }
        | AttachmentError::ChunkModified { .. } => (
            ErrorKind::Authentication,
            "the file was altered after it was encrypted: do not trust it; ask the sender to send it again",
        ),
        AttachmentError::NotAttachment => (
            ErrorKind::Damaged,
            "give the .medcrypt file received in the chat (or all of its parts)",
        ),
        AttachmentError::UnsupportedVersion(_) => (
            ErrorKind::Damaged,
            "the sender uses a newer MedCrypt: update this one",
        ),
        AttachmentError::Malformed(_) => (
            ErrorKind::Damaged,
            "the file is damaged: ask the sender to send it again",
        ),
        AttachmentError::SenderUnverified => (
            ErrorKind::Authentication,
            "this file was not made by the one you paired with: another recipient of the same file may have altered it; do not trust it and ask the sender to send it again",
        ),
        AttachmentError::SenderUnprovable => (
            ErrorKind::Authentication,
            "ask the sender to send it again: a current MedCrypt sends files in a format that proves who made them",
        ),
        AttachmentError::InputChanged => (
            ErrorKind::Other,
            "the file changed while it was read: wait until it is complete and try again",
        ),
        AttachmentError::Recipients => (ErrorKind::Other, "give between 1 and 16 --to pairings"),
        AttachmentError::Io(_) => (
            ErrorKind::Other,
            "check the disk space and the permissions of the output directory",
        ),
    }
}

fn classify_store(e: &StoreError) -> (ErrorKind, Option<Cow<'static, str>>) {
    let (kind, hint) = match e {
        StoreError::NotFound(_) => (
            ErrorKind::Other,
            "create one with `medcrypt init`, or point to yours with --store PATH",
        ),
        StoreError::AlreadyExists(_) => (
            ErrorKind::Other,
            "use another --store path; nothing was changed",
        ),
        StoreError::WrongPassphrase => (
            ErrorKind::Locked,
            "nothing was changed; try again, or if the passphrase is lost use `medcrypt recover`",
        ),
        StoreError::AuditAltered => (
            ErrorKind::AuditFailed,
            "nothing was done. Keep a copy as evidence (`medcrypt backup FILE`), run `medcrypt audit verify --code CODE` for the diagnosis, then `medcrypt audit repair` to set the log right (the repair is recorded)",
        ),
        StoreError::KeyReplaced => (
            ErrorKind::Other,
            "nothing was written; run the command again (an agent: start it again; the passphrase still opens the store)",
        ),
        StoreError::NoRecoveryCode => (
            ErrorKind::Other,
            "open the store with the passphrase; `medcrypt passphrase change` then makes a new recovery code",
        ),
        StoreError::WrongRecoveryCode => (
            ErrorKind::Locked,
            "nothing was changed; use the recovery code shown when this store was created",
        ),
        StoreError::UnknownPairing(_) => (
            ErrorKind::UnknownPairing,
            "`medcrypt pair list` shows the pairings of this store",
        ),
        StoreError::DuplicateAlias(_) => (
            ErrorKind::Other,
            "choose another alias (`medcrypt pair list` shows the taken ones), or remove the old \
             pairing first with `medcrypt pair remove ALIAS` (its keys are destroyed)",
        ),
        StoreError::DuplicatePairing(_) => (
            ErrorKind::Other,
            "one invitation makes one pairing; nothing was changed. For a new pairing, ask for a new QR code",
        ),
        StoreError::Replayed { .. } => (
            ErrorKind::Replayed,
            "this message was already decrypted once; a message sent again must be encrypted anew",
        ),
        StoreError::NewerSchema(_) => (ErrorKind::Other, "update MedCrypt"),
        StoreError::Corrupt(_) => (
            ErrorKind::Other,
            "restore the store from a backup, or use `medcrypt recover`",
        ),
        StoreError::Modified(_) => (
            ErrorKind::AuditFailed,
            "someone or something edited the store file directly: nothing was acted on. Keep this copy as evidence, restore the store from a backup, and tell whoever is responsible for this computer",
        ),
        StoreError::Escrow(_) => (
            ErrorKind::Escrow,
            "nothing was opened; use shares of this store's current split (each page names its set) from enough different custodians",
        ),
        StoreError::NotAStore(_) => (
            ErrorKind::Other,
            "give the path of a MedCrypt store with --store (or MEDCRYPT_STORE), or create one at a new path with `medcrypt init`",
        ),
        StoreError::IsDirectory(_) => (
            ErrorKind::Other,
            "--store names the store file itself, e.g. --store ~/medcrypt/store.sqlite",
        ),
        StoreError::Locked => (
            ErrorKind::Other,
            "another MedCrypt command (or the agent in the middle of its work) holds the store: try again in a moment",
        ),
        StoreError::DiskFull => (
            ErrorKind::Other,
            "free some space on the disk of the store, then try again; nothing was half-written",
        ),
        StoreError::ReadOnly => (
            ErrorKind::Other,
            "MedCrypt records every use in the store's audit log, so it must write: make the store file and its directory writable by you",
        ),
        StoreError::CannotOpen => (
            ErrorKind::Other,
            "check that the store's directory exists and that you may read and write it",
        ),
        StoreError::Malformed => (
            ErrorKind::Other,
            "restore the store from a backup (`medcrypt backup` makes one); keep the damaged file for inspection",
        ),
        StoreError::Sqlite(_) | StoreError::Io { .. } => (
            ErrorKind::Other,
            "check the disk and the store's permissions",
        ),
    };
    (kind, Some(Cow::Borrowed(hint)))
}
