//! `init`, `recover`, `passphrase change` and `config`: the store itself.

use std::path::Path;

use anyhow::Result;
use medcrypt::codes::RecoveryCode;
use medcrypt::session::Session;
use medcrypt::store::{Retention, StoreError};
use std::io::{IsTerminal, Write};

use super::Context;
use super::args::ConfigCommand;
use super::io::{self, out};
use super::report::{hinted, usage};

/// The settings `config` shows and changes: (shown name, stored key).
const SETTINGS: [(&str, &str); 5] = [
    ("name", "name"),
    ("telegram-bot", "telegram_bot"),
    ("whatsapp-number", "whatsapp_number"),
    ("whatsapp-template", "whatsapp_template"),
    ("retention", "retention"),
];

/// `medcrypt init`.
pub(super) fn init(
    ctx: &Context,
    name: Option<String>,
    retention: &str,
    schedule_shredder: bool,
) -> Result<()> {
    let retention: Retention = retention
        .parse()
        .map_err(|e: medcrypt::store::InvalidRetention| usage(e.to_string(), "see --help"))?;
    if medcrypt::store::probe(ctx.store_path()).map_err(medcrypt::session::Error::from)?
        == medcrypt::store::StoreFile::Present
    {
        return Err(medcrypt::session::Error::from(StoreError::AlreadyExists(
            ctx.store_path().to_owned(),
        ))
        .into());
    }
    let pass = if ctx.passphrase_file.is_some() {
        io::passphrase(ctx.passphrase_file.as_deref())?
    } else {
        io::new_passphrase_from(None, "MEDCRYPT_PASSPHRASE")?
    };
    io::check_passphrase_length(&pass)?;
    let name = name.unwrap_or_default();
    let (_session, credentials) =
        Session::create(ctx.store_path(), &pass, &name, retention, ctx.clock.clone())?;
    out(format_args!(
        "Created the MedCrypt store {}.\n\n\
         Recovery code (shown only now; write it down and keep it away from this computer):\n\n    {}\n\n\
         If the passphrase is ever lost, `medcrypt recover` opens the store with it.\n\n\
         Audit verification code (shown only now; give it to whoever audits this store):\n\n    {}\n\n\
         With it, `medcrypt audit verify --code CODE` proves that no audit entry of an earlier day was\n\
         altered or removed, even by someone who later holds this computer and its passphrase. Entries\n\
         of the current day, and a roll-back to an old copy, are proven only against a checkpoint kept\n\
         elsewhere (`medcrypt audit checkpoint`; the agent sends one daily to your notice chat).",
        ctx.store_path().display(),
        credentials.recovery.to_text().as_str(),
        credentials.verification_code().as_str()
    ))?;
    out(format_args!(
        "\nRetention: {retention}. Change it with `medcrypt config set retention key-lifetime|30d|forever`."
    ))?;
    offer_shredder(ctx, schedule_shredder)
}

/// Offers the daily shredder: month keys die on time only if something
/// runs when they are due.
fn offer_shredder(ctx: &Context, yes: bool) -> Result<()> {
    let question = "\nMonth keys must be destroyed on time even on days MedCrypt is not used. \
                    Install a daily timer that does it (no passphrase needed)? [Y/n] ";
    let wanted = yes
        || (std::io::stdin().is_terminal() && {
            print!("{question}");
            std::io::stdout().flush()?;
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            !answer.trim().to_lowercase().starts_with('n')
        });
    if wanted {
        super::keys::schedule(ctx, false)
    } else {
        out(format_args!(
            "\nTip: `medcrypt keys schedule` installs a daily timer that destroys month keys on time \
             even when no MedCrypt command runs."
        ))
    }
}

/// `medcrypt recover`.
pub(super) fn recover(ctx: &Context, code: &str, new_file: Option<&Path>) -> Result<()> {
    let code = io::secret_input(code, "Recovery code: ")?;
    let code = RecoveryCode::parse(code.trim()).map_err(medcrypt::session::Error::from)?;
    let session = Session::recover(ctx.store_path(), &code, ctx.clock.clone())?;
    let new = io::new_passphrase(new_file)?;
    session.change_passphrase(&new)?;
    out(format_args!(
        "Store opened with the recovery code; the new passphrase is set. The recovery code stays valid."
    ))
}

/// `medcrypt backup`.
pub(super) fn backup(session: &Session, file: &Path, force: bool) -> Result<()> {
    session.backup(file, force)?;
    out(format_args!(
        "Backup written to {}.\n\
         It opens with this store's passphrase and recovery code, and it keeps this month's and \
         last month's keys until the copy itself is destroyed: keep it as safe as this computer, \
         and delete old backups.\n\
         To restore: stop MedCrypt (and the agent), then copy it over {}.",
        file.display(),
        session.store().path().display()
    ))
}

/// `medcrypt passphrase change`.
pub(super) fn change_passphrase(session: &Session, new_file: Option<&Path>) -> Result<()> {
    let new = io::new_passphrase(new_file)?;
    match session.change_passphrase(&new)? {
        None => out(format_args!(
            "Passphrase changed. The recovery code is unchanged."
        )),
        Some(code) => out(format_args!(
            "Passphrase changed. This store had no working recovery code (it was retired when the \
             store's key was replaced); its new one (shown only now; write it down and keep it away \
             from this computer):\n\n    {}\n",
            code.to_text().as_str()
        )),
    }
}

/// `medcrypt config show|set`.
pub(super) fn config(session: &Session, action: ConfigCommand) -> Result<()> {
    match action {
        ConfigCommand::Show => {
            for (shown, key) in SETTINGS {
                let value = if key == "retention" {
                    session.retention()?.to_string()
                } else {
                    session.setting(key)?.unwrap_or_default()
                };
                out(format_args!("{shown:16} {value}"))?;
            }
            Ok(())
        }
        ConfigCommand::Set { key, value } if key == "retention" => {
            let retention: Retention =
                value
                    .parse()
                    .map_err(|e: medcrypt::store::InvalidRetention| {
                        usage(e.to_string(), "see `medcrypt config set --help`")
                    })?;
            session.set_retention(retention)?;
            out(format_args!(
                "retention = {retention}; the history already kept follows the new policy."
            ))
        }
        ConfigCommand::Set { key, value } => {
            let Some((_, stored)) = SETTINGS.iter().find(|(shown, _)| *shown == key) else {
                return Err(hinted(
                    format!("unknown setting {key:?}"),
                    "settings are: name, telegram-bot, whatsapp-number, whatsapp-template, retention",
                ));
            };
            let value = value.trim().trim_start_matches('@');
            session.set_setting(stored, value)?;
            out(format_args!("{key} = {value}"))
        }
    }
}
