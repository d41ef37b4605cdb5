//! The typed face of plinth's auth plugin (`guests/auth`), beside it in the
//! repository and apart from the runtime: it is written with
//! [`plinth_host::typed_plugin!`] as any embedder writes the face of their
//! own plugin.
//!
//! Every method has two error channels: the outer [`plinth_host::Error`] is
//! the runtime's (trap, limit, commit), the inner [`AuthError`] is the
//! plugin's answer, which a UI branches on.
//!
//! ```no_run
//! use plinth_auth::{AuthError, AuthPlugin};
//! use plinth_host::{Manifest, Runtime};
//! use plinth_store::Db;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new(Db::open("app.db")?)?;
//! let plugin = runtime.load_file("auth.wasm".as_ref(), Manifest::from_file("auth.toml".as_ref())?)?;
//! let auth = AuthPlugin::new(plugin)?;
//! match auth.sign_in("ada@example.com", "correct horse battery staple")? {
//!     Ok(session) => println!("token {}", session.token),
//!     Err(AuthError::InvalidCredentials) => println!("wrong email or password"),
//!     Err(other) => println!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

use plinth_host::Result;

/// The generated bindings of the `plinth:auth/auth-plugin` world: its
/// exports only; the imports are the runtime's.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/auth",
        world: "plinth:auth/auth-plugin",
        additional_derives: [PartialEq, Eq],
        with: {
            "plinth:database": plinth_host::bindings::plinth::database,
            "plinth:auth/mailer": plinth_host::bindings::plinth::auth::mailer,
            "plinth:auth/attempts": plinth_host::bindings::plinth::auth::attempts,
        },
    });
}

use bindings::AuthPluginPre;

pub use bindings::exports::plinth::auth::auth::{AuthError, ProfileUpdate, SessionInfo, SignedIn};
pub use plinth_host::User;

/// What an auth call returns: the runtime's result around the plugin's.
pub type AuthResult<T> = Result<Result<T, AuthError>>;

plinth_host::typed_plugin!(
    /// A plugin known to export `plinth:auth/auth`.
    AuthPlugin, AuthPluginPre<plinth_host::CallState>, "plinth:auth/auth-plugin", Some("plinth:auth/auth@0.1.0")
);

impl AuthPlugin {
    /// `sign-up`. See the WIT for the rules and error cases.
    ///
    /// # Errors
    /// The runtime's [`Error`](plinth_host::Error)s; the plugin's answer is the inner result.
    pub fn sign_up(&self, name: &str, email: &str, password: &str) -> AuthResult<User> {
        self.call_one("sign-up", (name, email, password))
    }

    /// `sign-in`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_in(&self, email: &str, password: &str) -> AuthResult<SignedIn> {
        self.call_one("sign-in", (email, password))
    }

    /// `validate-session`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn validate_session(&self, token: &str) -> AuthResult<SessionInfo> {
        self.call_one("validate-session", (token,))
    }

    /// `sign-out`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_out(&self, token: &str) -> AuthResult<()> {
        self.call_one("sign-out", (token,))
    }

    /// `sign-out-everywhere`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn sign_out_everywhere(&self, token: &str) -> AuthResult<u32> {
        self.call_one("sign-out-everywhere", (token,))
    }

    /// `verify-email`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn verify_email(&self, token: &str) -> AuthResult<User> {
        self.call_one("verify-email", (token,))
    }

    /// `resend-verification`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn resend_verification(&self, email: &str) -> AuthResult<()> {
        self.call_one("resend-verification", (email,))
    }

    /// `request-password-reset`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn request_password_reset(&self, email: &str) -> AuthResult<()> {
        self.call_one("request-password-reset", (email,))
    }

    /// `reset-password`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn reset_password(&self, token: &str, new_password: &str) -> AuthResult<()> {
        self.call_one("reset-password", (token, new_password))
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
        self.call_one("change-password", (session_token, current, new))
    }

    /// `update-profile`.
    ///
    /// # Errors
    /// As [`AuthPlugin::sign_up`].
    pub fn update_profile(&self, session_token: &str, changes: &ProfileUpdate) -> AuthResult<User> {
        self.call_one("update-profile", (session_token, changes))
    }

    /// Runs `f` with this plugin on tokio's blocking pool, for async callers:
    /// `auth.run_async(|a| a.sign_in(&email, &pw)).await`.
    ///
    /// # Errors
    /// What `f` returns, and [`Error::Join`](plinth_host::Error::Join) if the task panicked.
    pub async fn run_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AuthPlugin) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this)).await?
    }
}
