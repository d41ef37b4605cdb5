//! `plinth:database/sessions`.

use super::{Database, DbView, HostError};
use crate::bindings::Session;
use crate::bindings::plinth::database::sessions;
use crate::capability::{Capability, Function, Gate, Interface};
use crate::grants::Access;

/// `plinth:database/sessions`.
pub const SESSIONS: Interface = Interface {
    name: "plinth:database/sessions",
    version: "0.1.0",
    summary: "sessions by the SHA-256 of their token: create, read, extend, revoke",
    gate: Gate::Manifest,
    functions: &[
        Function::write("create-session"),
        Function::read("get-session"),
        Function::write("extend-session"),
        Function::write("delete-session"),
        Function::write("delete-user-sessions"),
        Function::write("cleanup-expired-sessions"),
    ],
};

/// The capability: links `plinth:database/sessions`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[SESSIONS],
    add_to_linker: |linker| {
        sessions::add_to_linker::<_, Database>(linker, |s| DbView::of(s, &SESSIONS))
    },
};

const CREATE: Access = SESSIONS.access("create-session");
const GET: Access = SESSIONS.access("get-session");
const EXTEND: Access = SESSIONS.access("extend-session");
const DELETE: Access = SESSIONS.access("delete-session");
const DELETE_USER: Access = SESSIONS.access("delete-user-sessions");
const CLEANUP: Access = SESSIONS.access("cleanup-expired-sessions");

impl sessions::Host for DbView<'_> {
    fn create_session(
        &mut self,
        id: String,
        user_uuid: String,
        ttl_seconds: u32,
    ) -> Result<Session, HostError> {
        let unit = self.unit(CREATE)?;
        Ok(unit.create_session(&id, &user_uuid, ttl_seconds)?.into())
    }

    fn get_session(&mut self, id: String) -> Result<Session, HostError> {
        Ok(self.unit(GET)?.get_session(&id)?.into())
    }

    fn extend_session(&mut self, id: String, ttl_seconds: u32) -> Result<Session, HostError> {
        Ok(self.unit(EXTEND)?.extend_session(&id, ttl_seconds)?.into())
    }

    fn delete_session(&mut self, id: String) -> Result<bool, HostError> {
        Ok(self.unit(DELETE)?.delete_session(&id)?)
    }

    fn delete_user_sessions(&mut self, user_uuid: String) -> Result<u32, HostError> {
        Ok(self.unit(DELETE_USER)?.delete_user_sessions(&user_uuid)?)
    }

    fn cleanup_expired_sessions(&mut self) -> Result<u32, HostError> {
        Ok(self.unit(CLEANUP)?.cleanup_expired_sessions()?)
    }
}

impl From<plinth_store::Session> for Session {
    fn from(s: plinth_store::Session) -> Self {
        Session {
            id: s.id,
            user_uuid: s.user_uuid,
            created_at: s.created_at,
            expires_at: s.expires_at,
        }
    }
}
