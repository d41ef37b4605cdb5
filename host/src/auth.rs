//! The typed face of the auth plugin.
//!
//! Every method has two error channels: the outer [`crate::Error`] is the
//! runtime's (trap, limit, commit), the inner [`AuthError`] is the plugin's
//! answer, which a UI branches on.

use crate::Result;
use crate::bindings::auth::{AuthPlugin as AuthWorld, AuthPluginPre};

pub use crate::bindings::auth::exports::plinth::auth::auth::{
    AuthError, ProfileUpdate, SessionInfo, SignedIn,
};

/// What an auth call returns: the runtime's result around the plugin's.
pub type AuthResult<T> = Result<Result<T, AuthError>>;

crate::plugin::typed_plugin!(
    /// A plugin known to export `plinth:auth/auth`.
    AuthPlugin, AuthPluginPre, AuthWorld, "plinth:auth/auth-plugin"
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
        self.call("sign-up", |a, s| {
            a.plinth_auth_auth().call_sign_up(s, name, email, password)
        })
    }

    /// `sign-in`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_in(&self, email: &str, password: &str) -> AuthResult<SignedIn> {
        self.call("sign-in", |a, s| {
            a.plinth_auth_auth().call_sign_in(s, email, password)
        })
    }

    /// `validate-session`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn validate_session(&self, token: &str) -> AuthResult<SessionInfo> {
        self.call("validate-session", |a, s| {
            a.plinth_auth_auth().call_validate_session(s, token)
        })
    }

    /// `sign-out`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_out(&self, token: &str) -> AuthResult<()> {
        self.call("sign-out", |a, s| {
            a.plinth_auth_auth().call_sign_out(s, token)
        })
    }

    /// `sign-out-everywhere`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_out_everywhere(&self, token: &str) -> AuthResult<u32> {
        self.call("sign-out-everywhere", |a, s| {
            a.plinth_auth_auth().call_sign_out_everywhere(s, token)
        })
    }

    /// `verify-email`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn verify_email(&self, token: &str) -> AuthResult<crate::bindings::User> {
        self.call("verify-email", |a, s| {
            a.plinth_auth_auth().call_verify_email(s, token)
        })
    }

    /// `resend-verification`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn resend_verification(&self, email: &str) -> AuthResult<()> {
        self.call("resend-verification", |a, s| {
            a.plinth_auth_auth().call_resend_verification(s, email)
        })
    }

    /// `request-password-reset`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn request_password_reset(&self, email: &str) -> AuthResult<()> {
        self.call("request-password-reset", |a, s| {
            a.plinth_auth_auth().call_request_password_reset(s, email)
        })
    }

    /// `reset-password`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn reset_password(&self, token: &str, new_password: &str) -> AuthResult<()> {
        self.call("reset-password", |a, s| {
            a.plinth_auth_auth()
                .call_reset_password(s, token, new_password)
        })
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
        self.call("change-password", |a, s| {
            a.plinth_auth_auth()
                .call_change_password(s, session_token, current, new)
        })
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
        self.call("update-profile", |a, s| {
            a.plinth_auth_auth()
                .call_update_profile(s, session_token, changes)
        })
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
