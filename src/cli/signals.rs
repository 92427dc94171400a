//! Ctrl-C, SIGTERM and SIGHUP: the temporary files of the command are
//! removed before it exits, so an interrupted decryption leaves no
//! plaintext behind. (After `kill -9`, which nothing can catch, the next
//! command of the same store removes them: see `medcrypt::store`.)

use super::io::note;

/// Starts a thread that waits for those signals. The handlers are in place
/// when this returns.
pub(super) fn clean_up_on_signals() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        else {
            return;
        };
        let registered = {
            let _entered = runtime.enter();
            (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            )
        };
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = registered else {
            return;
        };
        std::thread::spawn(move || {
            runtime.block_on(async {
                let code = tokio::select! {
                    _ = int.recv() => 130,
                    _ = term.recv() => 143,
                    _ = hup.recv() => 129,
                };
                medcrypt::session::remove_live_temporaries();
                note(format_args!(
                    "interrupted: stopped, and nothing half-written was kept"
                ));
                std::process::exit(code);
            });
        });
    }
}
