//! `posix-rename@openssh.com`, which the ssh2 crate does not expose: a second SFTP channel opened
//! through libssh2 directly.

use libssh2_sys as raw;
use ssh2::{ErrorCode, Session};
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

// libssh2 1.11 (bundled by libssh2-sys 0.3.4) has this, but neither libssh2-sys nor ssh2 bind it.
extern "C" {
    fn libssh2_sftp_posix_rename_ex(
        sftp: *mut raw::LIBSSH2_SFTP,
        source: *const c_char,
        source_len: usize,
        dest: *const c_char,
        dest_len: usize,
    ) -> c_int;
}

/// A second SFTP channel opened through libssh2 directly, only for `posix-rename@openssh.com`,
/// which the ssh2 crate does not expose.
pub(super) struct RawSftp<'s> {
    session: &'s Session,
    ptr: *mut raw::LIBSSH2_SFTP,
}

impl<'s> RawSftp<'s> {
    pub(super) fn open(session: &'s Session) -> Result<Self, ssh2::Error> {
        let mut sess = session.raw();
        // SAFETY: the session pointer is valid while `sess` (the session's lock) is held, and the
        // session is in blocking mode, so init either returns a channel or null with an error set.
        let ptr = unsafe { raw::libssh2_sftp_init(&mut *sess) };
        if ptr.is_null() {
            // SAFETY: as above.
            let rc = unsafe { raw::libssh2_session_last_errno(&mut *sess) };
            return Err(ssh2::Error::from_errno(ErrorCode::Session(rc)));
        }
        Ok(RawSftp { session, ptr })
    }

    pub(super) fn posix_rename(&self, from: &str, to: &str) -> Result<(), ssh2::Error> {
        let from =
            CString::new(from).map_err(|_| ssh2::Error::from_errno(ErrorCode::Session(raw::LIBSSH2_ERROR_INVAL)))?;
        let to = CString::new(to).map_err(|_| ssh2::Error::from_errno(ErrorCode::Session(raw::LIBSSH2_ERROR_INVAL)))?;
        let _sess = self.session.raw();
        // SAFETY: `ptr` came from libssh2_sftp_init on this session and is freed only in Drop; the
        // strings outlive the call; the session lock is held.
        let rc = unsafe {
            libssh2_sftp_posix_rename_ex(
                self.ptr,
                from.as_ptr(),
                from.as_bytes().len(),
                to.as_ptr(),
                to.as_bytes().len(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        if rc == raw::LIBSSH2_ERROR_SFTP_PROTOCOL {
            // SAFETY: as above.
            let code = unsafe { raw::libssh2_sftp_last_error(self.ptr) };
            return Err(ssh2::Error::from_errno(ErrorCode::SFTP(code as i32)));
        }
        Err(ssh2::Error::from_errno(ErrorCode::Session(rc)))
    }
}

impl Drop for RawSftp<'_> {
    fn drop(&mut self) {
        let _sess = self.session.raw();
        // SAFETY: `ptr` is a live channel of this session, shut down once.
        unsafe {
            raw::libssh2_sftp_shutdown(self.ptr);
        }
    }
}
