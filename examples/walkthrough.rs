//! A walkthrough of the MedCrypt protocol core, no messenger needed:
//! pairing, safety numbers, messages both ways, a month boundary, shredding.
//!
//! `cargo run --example walkthrough`

use medcrypt::{
    Direction, Epoch, EpochChain, PairingSecret, Payload, Role, WireMessage, format_utc,
};
use time::macros::datetime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let visit = datetime!(2026-11-22 10:00 UTC);
    let start = Epoch::containing(visit);

    println!("1. Pairing at the visit ({})", format_utc(visit));
    let secret = PairingSecret::generate();
    println!(
        "   physician and patient both see safety number {}",
        secret.safety_number(start)
    );
    println!("   deep-link token for the bot: {}", secret.pairing_token());
    let mut physician = EpochChain::new(secret.first_epoch_key(start));
    let mut patient = EpochChain::new(secret.first_epoch_key(start));
    drop(secret); // erased once the first epoch key exists
    println!("   pairing secret erased; both sides hold only the {start} key\n");

    println!("2. Messages both ways");
    let note = "Your HbA1c is 6.1%. Keep the current dose.";
    let key = physician.key_for(start).ok_or("no key")?;
    let wire = WireMessage::seal(
        &key,
        Direction::PhysicianToPatient,
        1,
        &Payload::Text(note.into()),
    )?
    .to_text();
    println!("   physician sends: {wire}");
    let opened = WireMessage::parse(&wire)?.open(&patient, Role::Patient, visit)?;
    let Payload::Text(text) = &opened.payload;
    println!("   patient reads:   {text}");
    if let Err(err) = WireMessage::parse(&wire)?.open(&physician, Role::Physician, visit) {
        println!("   fed back to the physician: {err}\n");
    }

    println!("3. A month boundary");
    for (label, at) in [
        ("5 December", datetime!(2026-12-05 9:00 UTC)),
        ("9 December", datetime!(2026-12-09 9:00 UTC)),
    ] {
        let report = patient.advance(at);
        physician.advance(at);
        for epoch in &report.derived {
            println!("   {label}: patient ratcheted forward to {epoch}");
        }
        for epoch in &report.destroyed {
            println!("   {label}: patient destroyed the key of {epoch}");
        }
        match WireMessage::parse(&wire)?.open(&patient, Role::Patient, at) {
            Ok(_) => println!("   {label}: the November note still decrypts (grace period)"),
            Err(err) => println!("   {label}: the November note fails: {err}"),
        }
    }
    Ok(())
}
