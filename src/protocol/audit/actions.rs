//! Every action an audit record can name, with what it means: one list for
//! `audit show --action`, the help text and the spec.

/// (action, meaning), in the order of a store's life.
pub const ACTIONS: &[(&str, &str)] = &[
    ("init", "the store was created"),
    (
        "unlock_failed",
        "a wrong passphrase or recovery code was given",
    ),
    (
        "unlock_recovery",
        "the store was opened with the recovery code",
    ),
    ("passphrase_change", "the passphrase was changed"),
    ("master_key_rotated", "the store's master key was replaced"),
    ("config_set", "a setting was changed"),
    ("backup", "a backup copy of the store was made"),
    ("pair_new", "an invitation was made (physician)"),
    ("pair_accept", "an invitation was accepted (patient)"),
    ("pair_import_legacy", "a legacy v1 pairing was imported"),
    ("pair_remove", "a pairing and its keys were removed"),
    ("epoch_advance", "a month key was derived"),
    ("key_shred", "a month key was destroyed"),
    ("encrypt", "a message was encrypted"),
    ("decrypt", "a message was decrypted"),
    ("decrypt_again", "a message already read was shown again"),
    ("decrypt_failed", "a message failed to decrypt"),
    ("attach_encrypt", "a file was encrypted"),
    ("attach_decrypt", "a file was decrypted"),
    (
        "attach_decrypt_again",
        "a file already received was decrypted again",
    ),
    ("attach_decrypt_failed", "a file failed to decrypt"),
    ("inbox_export", "the history was exported"),
    (
        "history_export",
        "a received file was saved from the history",
    ),
    ("send_queued", "a message or file was queued for the agent"),
    ("send_sent", "the agent delivered a message or file"),
    (
        "send_accepted",
        "WhatsApp accepted a message or file for delivery (its statuses follow)",
    ),
    (
        "reengage_template",
        "outside WhatsApp's 24-hour window, the approved template invited a patient to reply",
    ),
    ("send_failed", "the agent gave up delivering"),
    (
        "send_uncertain",
        "a delivery was interrupted; it may or may not have arrived",
    ),
    ("agent_start", "the agent started"),
    ("agent_stop", "the agent stopped"),
    (
        "agent_token_refused",
        "the messenger refused the agent's access token; sending stopped",
    ),
    ("chat_bind", "a chat was bound to a pairing"),
    (
        "owner_bind",
        "the physician's own chat was bound for notices",
    ),
    ("owner_notice", "a notice for the physician was queued"),
    (
        "plaintext_rejected",
        "the agent refused a message that was not encrypted",
    ),
    ("escrow_split", "break-glass shares were made"),
    (
        "escrow_combine",
        "custodians combined shares to open the store",
    ),
    ("escrow_export", "records were exported under break-glass"),
    ("escrow_retire", "a break-glass share set was retired"),
    ("audit_verify", "the audit log was verified"),
    ("audit_checkpoint", "an audit checkpoint was taken"),
    ("audit_export", "the audit log was exported"),
    (
        "audit_repair",
        "a log altered outside MedCrypt was set right, keeping the evidence",
    ),
];

/// Whether `action` is one of [`ACTIONS`].
pub fn is_action(action: &str) -> bool {
    ACTIONS.iter().any(|(name, _)| *name == action)
}
