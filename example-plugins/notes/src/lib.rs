//! `notes`: a request/response plugin that keeps notes as JSON in its
//! workspace.
//!
//! Requests and responses are JSON:
//! - `{"op":"add","text":"buy milk"}` → the new note, `{"id":1,"text":"buy milk"}`
//! - `{"op":"list"}` → every note in order of id
//! - `{"op":"remove","id":1}` → `{"removed":true}` (or `false` if there was none)
//!
//! Each note is stored under `note/<id>` (the id zero-padded, so that key order
//! is id order). Ids come from an atomic counter under `last-id`, so
//! concurrent `add`s never hand out the same id.

use serde::{Deserialize, Serialize};

/// A stored note.
#[derive(Debug, Serialize, Deserialize)]
struct Note {
    id: u64,
    text: String,
}

/// A request, tagged by `op`.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Add { text: String },
    List,
    Remove { id: u64 },
}

const LAST_ID: &str = "last-id";
const PREFIX: &str = "note/";

fn note_key(id: u64) -> String {
    format!("{PREFIX}{id:020}")
}

struct Notes;

impl cubby_sdk::JsonPlugin for Notes {
    const NAME: &str = "notes";
    const EXPECTED: &str = r#"{"op":"add","text":…}, {"op":"list"} or {"op":"remove","id":…}"#;
    type Request = Request;
    type Response = serde_json::Value;

    fn handle(request: Request) -> Result<serde_json::Value, String> {
        Ok(match request {
            Request::Add { text } => add(text)?,
            Request::List => list()?,
            Request::Remove { id } => {
                serde_json::json!({ "removed": cubby_sdk::delete(note_key(id))? })
            }
        })
    }
}

fn add(text: String) -> cubby_sdk::Result<serde_json::Value> {
    let id = cubby_sdk::Counter::new(LAST_ID).increment()?;
    let id = u64::try_from(id).map_err(|_| cubby_sdk::Error::NotACounter)?;
    let note = Note { id, text };
    // The id is new, so the key must be free; if it is not, fail rather
    // than overwrite a note.
    cubby_sdk::put_json(note_key(id), &note)?
        .if_absent()
        .apply()?;
    serde_json::to_value(note).map_err(|e| cubby_sdk::Error::Encode(e.to_string()))
}

fn list() -> cubby_sdk::Result<serde_json::Value> {
    let mut notes = Vec::new();
    for key in cubby_sdk::keys_with_prefix(PREFIX) {
        let key = key?;
        // A note deleted between listing and reading is simply skipped.
        if let Some(note) = cubby_sdk::get_json::<Note>(&key)? {
            notes.push(note);
        }
    }
    serde_json::to_value(notes).map_err(|e| cubby_sdk::Error::Encode(e.to_string()))
}

cubby_sdk::export!(Notes);
