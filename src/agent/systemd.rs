//! Tells systemd when the node's files are first in place (`Type=notify`): units ordered after
//! mirrorconf (CRI-O, the kubelet) then start with the mirrors already written, not merely after
//! mirrorconf's process exists. Without `NOTIFY_SOCKET` (not under systemd) it does nothing.

use super::Outcome;

#[derive(Default)]
pub(super) struct Readiness {
    sent: bool,
}

impl Readiness {
    /// Sends `READY=1` after the first complete apply (files written, runtime told); a refused
    /// input or a failed reload keeps the unit starting.
    pub(super) fn after(&mut self, outcome: &Outcome) {
        if self.sent || !matches!(outcome, Outcome::Applied { complete: true, .. }) {
            return;
        }
        self.sent = true;
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            tracing::warn!("cannot tell systemd that the first apply is done: {e}");
        }
    }
}
