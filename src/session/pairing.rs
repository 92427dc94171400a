//! Pairing: the physician's new pairing (secret, QR payload, typed code,
//! safety number), the patient's acceptance from a QR image or the typed
//! code, legacy v1 imports, and removal.

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use chrono::{DateTime, Duration, Utc};

use crate::protocol::codes::{PairingInvite, pairing_code, read_pairing_code};
use crate::protocol::epoch::Epoch;
use crate::protocol::keys::{PairingSecret, Role, SafetyNumber};
use crate::qr;
use crate::store::{PairingInfo, PairingState};

use super::{Error, Result, Session};

/// A new pairing, to show to the patient once.
pub struct NewPairing {
    /// The physician's name for the patient.
    pub alias: String,
    /// The QR payload (holds the pairing secret).
    pub uri: Zeroizing<String>,
    /// The typed fallback code (holds the pairing secret).
    pub code: Zeroizing<String>,
    /// The number both screens show.
    pub safety: SafetyNumber,
    /// When the invitation stops being accepted.
    pub expires: DateTime<Utc>,
}

/// How long an invitation is valid unless `pair new --valid` says otherwise.
pub const DEFAULT_INVITE_VALIDITY: Duration = Duration::hours(24);
/// The longest an invitation may be valid: a QR code is a secret, and one
/// left in a drawer should not pair anyone months later.
pub const MAX_INVITE_VALIDITY: Duration = Duration::days(30);

impl std::fmt::Debug for NewPairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPairing")
            .field("alias", &self.alias)
            .finish_non_exhaustive()
    }
}

/// Where the patient's side takes an invitation from.
#[derive(Debug, Clone, Copy)]
pub enum InviteSource<'a> {
    /// A PNG or JPEG photo or screenshot of the QR code.
    QrImage(&'a [u8]),
    /// The QR payload itself (`medcrypt://pair/v2?…`), already decoded.
    Uri(&'a str),
    /// The typed code.
    Code(&'a str),
}

/// A pairing accepted on the patient's side.
#[derive(Debug)]
pub struct AcceptedPairing {
    /// The patient's name for the physician.
    pub alias: String,
    /// The number both screens show.
    pub safety: SafetyNumber,
    /// When the invitation expires (none for a code of the first release).
    pub expires: Option<DateTime<Utc>>,
    /// The Telegram deep link that binds the patient's chat, if the
    /// physician runs a bot.
    pub telegram_link: Option<String>,
    /// The practice's WhatsApp number, if any.
    pub whatsapp_number: Option<String>,
    /// The `https://wa.me/…?text=MEDCRYPT%20BIND%20…` link that opens the
    /// practice's WhatsApp chat with the binding text ready to send once.
    pub whatsapp_link: Option<String>,
}

/// Refuses an alias that cannot be shown or typed back.
///
/// # Errors
/// An empty alias or one with control characters.
pub fn check_alias(alias: &str) -> Result<()> {
    let invisible = alias
        .chars()
        .any(|c| c.is_control() || crate::protocol::attachment::is_invisible_format(c));
    if alias.trim().is_empty() || invisible || alias.chars().count() > 64 {
        return Err(Error::refused(
            format!("\"{}\" cannot be an alias", super::printable_line(alias)),
            "use a short name (at most 64 characters) without control or invisible characters, e.g. the patient's initials",
        ));
    }
    Ok(())
}

impl Session {
    /// (Physician) Creates a pairing with the patient `alias` and hands the
    /// invitation to `deliver` (which shows it or writes QR files). If
    /// `deliver` fails the pairing is removed again: without its QR code it
    /// cannot be completed.
    ///
    /// # Errors
    /// A bad or taken alias, the error of `deliver`, database errors.
    pub fn pair_new(
        &self,
        alias: &str,
        valid: Duration,
        deliver: impl FnOnce(&NewPairing) -> Result<()>,
    ) -> Result<NewPairing> {
        check_alias(alias)?;
        if valid <= Duration::zero() || valid > MAX_INVITE_VALIDITY {
            return Err(Error::usage(
                "an invitation is valid for between one minute and 30 days",
                "e.g. --valid 24h or --valid 3d",
            ));
        }
        let now = self.now();
        let start = Epoch::containing(now);
        // Whole minutes, as the typed code carries it.
        let minutes = u64::try_from((now + valid).timestamp())
            .unwrap_or(0)
            .div_ceil(60);
        let expires = i64::try_from(minutes * 60)
            .ok()
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .unwrap_or(now + valid);
        let invite = PairingInvite {
            secret: PairingSecret::generate(),
            start,
            physician_name: self.setting("name")?.unwrap_or_default(),
            telegram_bot: self.setting("telegram_bot")?,
            whatsapp_number: self.setting("whatsapp_number")?,
            expires: Some(expires),
        };
        let pairing = NewPairing {
            alias: alias.to_owned(),
            uri: invite.to_uri(),
            code: Zeroizing::new(pairing_code(&invite.secret, start, expires)),
            safety: invite.secret.safety_number(start),
            expires,
        };
        // Fail before anything is stored if the QR code cannot be made.
        qr::render_terminal(&pairing.uri)?;
        self.store.add_pairing(
            alias,
            Role::Physician,
            "",
            &invite.secret.first_epoch_key(start),
            &invite.secret.pairing_token(),
            &pairing.safety,
            Some(expires),
            now,
        )?;
        if let Err(err) = deliver(&pairing) {
            let _ = self.store.remove_pairing(alias, self.now());
            return Err(err);
        }
        Ok(pairing)
    }

    /// (Patient) Accepts an invitation and stores the pairing under `alias`
    /// (by default the physician's name from the QR code).
    ///
    /// # Errors
    /// An unreadable image or code, no name for the pairing, a taken alias,
    /// database errors.
    pub fn pair_accept(
        &self,
        source: InviteSource<'_>,
        alias: Option<String>,
    ) -> Result<AcceptedPairing> {
        let invite = match source {
            InviteSource::QrImage(bytes) => {
                let text = Zeroizing::new(qr::decode_image(bytes)?);
                PairingInvite::from_uri(&text)?
            }
            InviteSource::Uri(text) => PairingInvite::from_uri(text)?,
            InviteSource::Code(code) => {
                let typed = read_pairing_code(code)?;
                PairingInvite {
                    secret: typed.secret,
                    start: typed.start,
                    physician_name: String::new(),
                    telegram_bot: None,
                    whatsapp_number: None,
                    expires: typed.expires,
                }
            }
        };
        if let Some(expires) = invite.expires
            && self.now() > expires
        {
            return Err(Error::refused(
                format!("this invitation expired on {}", crate::format_utc(expires)),
                "nothing was stored; ask the physician for a new QR code (`medcrypt pair new`)",
            ));
        }
        let alias = match alias
            .or_else(|| Some(invite.physician_name.clone()).filter(|n| !n.is_empty()))
        {
            Some(alias) => alias,
            None => {
                return Err(Error::refused(
                    "no name for this pairing",
                    "pass --physician ALIAS (the typed code does not carry the physician's name)",
                ));
            }
        };
        check_alias(&alias)?;
        let safety = invite.secret.safety_number(invite.start);
        let token = invite.secret.pairing_token();
        self.store.add_pairing(
            &alias,
            Role::Patient,
            &invite.physician_name,
            &invite.secret.first_epoch_key(invite.start),
            &token,
            &safety,
            invite.expires,
            self.now(),
        )?;
        let telegram_link = invite
            .telegram_bot
            .as_ref()
            .map(|bot| format!("https://t.me/{bot}?start={token}"));
        let whatsapp_number = invite.whatsapp_number.clone();
        let whatsapp_link = whatsapp_number
            .as_deref()
            .map(|number| token.whatsapp_link(number));
        let expires = invite.expires;
        drop(invite);
        Ok(AcceptedPairing {
            alias,
            expires,
            safety,
            telegram_link,
            whatsapp_number,
            whatsapp_link,
        })
    }

    /// Imports a legacy v1 pairing so its messages still decrypt.
    ///
    /// # Errors
    /// A bad or taken alias, an empty secret, database errors.
    pub fn import_legacy(
        &self,
        alias: &str,
        secret: &SecretString,
        patient_id: &str,
    ) -> Result<()> {
        check_alias(alias)?;
        if secret.expose_secret().is_empty() {
            return Err(Error::refused(
                "the v1 shared secret is empty",
                "give the file holding the v1 shared secret",
            ));
        }
        self.store
            .add_legacy_pairing(alias, secret, patient_id, self.now())?;
        Ok(())
    }

    /// Every pairing, by alias.
    ///
    /// # Errors
    /// Database errors.
    pub fn pairings(&self) -> Result<Vec<PairingInfo>> {
        Ok(self.store.pairings()?)
    }

    /// Every pairing with its invitation, chat and last message.
    ///
    /// # Errors
    /// A store modified outside MedCrypt, database errors.
    pub fn pairings_with_state(&self) -> Result<Vec<(PairingInfo, PairingState)>> {
        self.store
            .pairings()?
            .into_iter()
            .map(|p| {
                let state = self.store.pairing_state(p.id)?;
                Ok((p, state))
            })
            .collect()
    }

    /// Removes a pairing and destroys all of its keys.
    ///
    /// # Errors
    /// Unknown pairing, database errors.
    pub fn pair_remove(&self, alias: &str) -> Result<()> {
        Ok(self.store.remove_pairing(alias, self.now())?)
    }
}
