//! `plinth:database/sessions`.

use super::HostError;
use crate::bindings::Session;
use crate::bindings::database::plinth::database::sessions::Host;
use crate::grants::{Access, Interface};
use crate::state::CallState;

const I: Interface = Interface::Sessions;

impl Host for CallState {
    fn create_session(
        &mut self,
        id: String,
        user_uuid: String,
        ttl_seconds: u32,
    ) -> Result<Session, HostError> {
        let unit = self.unit_for(I, Access::Write)?;
        Ok(unit.create_session(&id, &user_uuid, ttl_seconds)?.into())
    }

    fn get_session(&mut self, id: String) -> Result<Session, HostError> {
        Ok(self.unit_for(I, Access::Read)?.get_session(&id)?.into())
    }

    fn extend_session(&mut self, id: String, ttl_seconds: u32) -> Result<Session, HostError> {
        Ok(self
            .unit_for(I, Access::Write)?
            .extend_session(&id, ttl_seconds)?
            .into())
    }

    fn delete_session(&mut self, id: String) -> Result<bool, HostError> {
        Ok(self.unit_for(I, Access::Write)?.delete_session(&id)?)
    }

    fn delete_user_sessions(&mut self, user_uuid: String) -> Result<u32, HostError> {
        Ok(self
            .unit_for(I, Access::Write)?
            .delete_user_sessions(&user_uuid)?)
    }

    fn cleanup_expired_sessions(&mut self) -> Result<u32, HostError> {
        Ok(self
            .unit_for(I, Access::Write)?
            .cleanup_expired_sessions()?)
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
