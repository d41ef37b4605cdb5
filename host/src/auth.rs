//! The typed face of the auth plugin.
//!
//! Every method has two error channels: the outer [`crate::Error`] is the
//! runtime's (trap, limit, commit), the inner [`AuthError`] is the plugin's
//! answer, which a UI branches on.

use crate::Result;
use crate::bindings::auth::exports::plinth::auth::auth::Guest as AuthExports;
use crate::bindings::auth::{AuthPlugin as AuthWorld, AuthPluginPre};
use crate::plugin::Plugin;
use crate::state::CallState;

pub use crate::bindings::auth::exports::plinth::auth::auth::{
    AuthError, ProfileUpdate, SessionInfo, SignedIn,
};

/// What an auth call returns: the runtime's result around the plugin's.
pub type AuthResult<T> = Result<Result<T, AuthError>>;

/// A plugin known to export `plinth:auth/auth`.
#[derive(Clone)]
pub struct AuthPlugin {
    plugin: Plugin,
    pre: AuthPluginPre<CallState>,
}

impl std::fmt::Debug for AuthPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AuthPlugin").field(&self.plugin).finish()
    }
}

impl AuthPlugin {
    /// Checks that `plugin` exports the auth interface.
    ///
    /// # Errors
    /// [`Error::WrongExports`](crate::Error::WrongExports) when it does not.
    pub fn new(plugin: Plugin) -> Result<Self> {
        let pre = plugin.typed("plinth:auth/auth-plugin", AuthPluginPre::new)?;
        Ok(Self { plugin, pre })
    }

    /// The underlying plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    fn call<R>(
        &self,
        function: &str,
        f: impl FnOnce(&AuthExports, &mut wasmtime::Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        self.plugin.call(function, |store| {
            let instance: AuthWorld = self.pre.instantiate(&mut *store)?;
            f(instance.plinth_auth_auth(), store)
        })
    }

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
        self.call("sign-up", |a, s| a.call_sign_up(s, name, email, password))
    }

    /// `sign-in`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_in(&self, email: &str, password: &str) -> AuthResult<SignedIn> {
        self.call("sign-in", |a, s| a.call_sign_in(s, email, password))
    }

    /// `validate-session`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn validate_session(&self, token: &str) -> AuthResult<SessionInfo> {
        self.call("validate-session", |a, s| a.call_validate_session(s, token))
    }

    /// `sign-out`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_out(&self, token: &str) -> AuthResult<()> {
        self.call("sign-out", |a, s| a.call_sign_out(s, token))
    }

    /// `sign-out-everywhere`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_out_everywhere(&self, token: &str) -> AuthResult<u32> {
        self.call("sign-out-everywhere", |a, s| {
            a.call_sign_out_everywhere(s, token)
        })
    }

    /// `verify-email`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn verify_email(&self, token: &str) -> AuthResult<crate::bindings::User> {
        self.call("verify-email", |a, s| a.call_verify_email(s, token))
    }

    /// `resend-verification`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn resend_verification(&self, email: &str) -> AuthResult<()> {
        self.call("resend-verification", |a, s| {
            a.call_resend_verification(s, email)
        })
    }

    /// `request-password-reset`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn request_password_reset(&self, email: &str) -> AuthResult<()> {
        self.call("request-password-reset", |a, s| {
            a.call_request_password_reset(s, email)
        })
    }

    /// `reset-password`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn reset_password(&self, token: &str, new_password: &str) -> AuthResult<()> {
        self.call("reset-password", |a, s| {
            a.call_reset_password(s, token, new_password)
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
            a.call_change_password(s, session_token, current, new)
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
            a.call_update_profile(s, session_token, changes)
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
