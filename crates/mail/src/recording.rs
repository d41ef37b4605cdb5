//! A transport for development and tests: it sends nothing.

use std::path::PathBuf;

use plinth_store::Mail;

use crate::{DeliveryError, Transport};

/// Writes each delivered message to `DIR/<outbox id>.eml` (headers, a blank
/// line, the body) and sends nothing: no mail leaves the machine. For
/// development, demos and tests, where the directory is the inbox.
#[derive(Debug, Clone)]
pub struct RecordingTransport {
    dir: PathBuf,
}

impl RecordingTransport {
    /// Records into `dir` (created on the first message).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where the messages are written.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Transport for RecordingTransport {
    fn deliver(&mut self, id: i64, mail: &Mail) -> Result<(), DeliveryError> {
        let transient = |e: std::io::Error| DeliveryError::Transient(e.to_string());
        std::fs::create_dir_all(&self.dir).map_err(transient)?;
        let text = format!(
            "To: {}\nSubject: {}\n\n{}",
            mail.to, mail.subject, mail.body
        );
        let path = self.dir.join(format!("{id}.eml"));
        let tmp = self.dir.join(format!(".{id}.eml.tmp"));
        std::fs::write(&tmp, text).map_err(transient)?;
        std::fs::rename(&tmp, &path).map_err(transient)
    }
}
