//! The typed face of the auth plugin.
//!
//! Every method has two error channels: the outer [`crate::Error`] is the
//! runtime's (trap, limit, commit), the inner [`AuthError`] is the plugin's
//! answer, which a UI branches on.

use crate::Result;
use crate::bindings::auth::AuthPluginPre;

pub use crate::bindings::auth::exports::plinth::auth::auth::{
    AuthError, ProfileUpdate, SessionInfo, SignedIn,
};

/// What an auth call returns: the runtime's result around the plugin's.
pub type AuthResult<T> = Result<Result<T, AuthError>>;

crate::plugin::typed_plugin!(
    /// A plugin known to export `plinth:auth/auth`.
    AuthPlugin, AuthPluginPre, "plinth:auth/auth-plugin", Some("plinth:auth/auth@0.1.0")
);

impl AuthPlugin {
    /// `sign-up`. See the WIT for the rules and error cases.
    ///
    /// # Errors
    /// The runtime's [`Error`](crate::Error)s; the plugin's answer is the inner result.
    pub fn sign_up(
        &self,
        name: &str,
        email: &str,
        password: &str,
    ) -> AuthResult<crate::bindings::User> {
        self.call_export("sign-up", (name, email, password))
            .map(|(r,)| r)
    }

    /// `sign-in`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_in(&self, email: &str, password: &str) -> AuthResult<SignedIn> {
        self.call_export("sign-in", (email, password)).map(|(r,)| r)
    }

    /// `validate-session`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn validate_session(&self, token: &str) -> AuthResult<SessionInfo> {
        self.call_export("validate-session", (token,)).map(|(r,)| r)
    }

    /// `sign-out`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_out(&self, token: &str) -> AuthResult<()> {
        self.call_export("sign-out", (token,)).map(|(r,)| r)
    }

    /// `sign-out-everywhere`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_out_everywhere(&self, token: &str) -> AuthResult<u32> {
        self.call_export("sign-out-everywhere", (token,))
            .map(|(r,)| r)
    }

    /// `verify-email`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn verify_email(&self, token: &str) -> AuthResult<crate::bindings::User> {
        self.call_export("verify-email", (token,)).map(|(r,)| r)
    }

    /// `resend-verification`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn resend_verification(&self, email: &str) -> AuthResult<()> {
        self.call_export("resend-verification", (email,))
            .map(|(r,)| r)
    }

    /// `request-password-reset`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn request_password_reset(&self, email: &str) -> AuthResult<()> {
        self.call_export("request-password-reset", (email,))
            .map(|(r,)| r)
    }

    /// `reset-password`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn reset_password(&self, token: &str, new_password: &str) -> AuthResult<()> {
        self.call_export("reset-password", (token, new_password))
            .map(|(r,)| r)
    }

    /// `change-password`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn change_password(
        &self,
        session_token: &str,
        current: &str,
        new: &str,
    ) -> AuthResult<SignedIn> {
        self.call_export("change-password", (session_token, current, new))
            .map(|(r,)| r)
    }

    /// `update-profile`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn update_profile(
        &self,
        session_token: &str,
        changes: &ProfileUpdate,
    ) -> AuthResult<crate::bindings::User> {
        self.call_export("update-profile", (session_token, changes))
            .map(|(r,)| r)
    }

    /// Runs `f` with this plugin on tokio's blocking pool, for async callers:
    /// `auth.run_async(|a| a.sign_in(&email, &pw)).await`.
    ///
    /// # Errors
    /// What `f` returns, and [`Error::Join`](crate::Error::Join) if the task panicked.
    pub async fn run_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AuthPlugin) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this)).await?
    }
}
