//! [`JsonPlugin`]: a request/response plugin whose requests and responses
//! are JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A request/response plugin that takes and answers JSON: implement it and
/// pass the type to [`export!`](crate::export) as for a [`Plugin`](crate::Plugin).
///
/// The SDK decodes each request as [`Request`](Self::Request), calls
/// [`handle`](Self::handle), and encodes what it returns as compact JSON
/// (the bytes `serde_json::to_vec` gives). Its answers to failures:
/// - a request that does not decode: `bad request (<serde's words>);
///   expected <EXPECTED>`;
/// - an error of `handle`: `<NAME>: <error>`, so a storage error reads
///   `notes: quota exceeded: …` (storage errors convert with `?`).
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// #[serde(tag = "op", rename_all = "lowercase")]
/// enum Request { Get { key: String }, Put { key: String, text: String } }
///
/// #[derive(Serialize)]
/// struct Answer { text: Option<String> }
///
/// struct Texts;
///
/// impl cubby_sdk::JsonPlugin for Texts {
///     const NAME: &str = "texts";
///     const EXPECTED: &str = r#"{"op":"get","key":…} or {"op":"put","key":…,"text":…}"#;
///     type Request = Request;
///     type Response = Answer;
///
///     fn handle(request: Request) -> Result<Answer, String> {
///         Ok(match request {
///             Request::Get { key } => Answer { text: cubby_sdk::get_string(key)? },
///             Request::Put { key, text } => {
///                 cubby_sdk::set_string(key, &text)?;
///                 Answer { text: Some(text) }
///             }
///         })
///     }
/// }
///
/// cubby_sdk::export!(Texts);
/// # fn main() {}
/// ```
pub trait JsonPlugin {
    /// The plugin's name, put before the errors of [`handle`](Self::handle)
    /// in its answers.
    const NAME: &'static str;
    /// What requests look like, for the answer to one that does not decode.
    const EXPECTED: &'static str;
    /// A request, decoded from the JSON the caller sends.
    type Request: DeserializeOwned;
    /// A response, sent encoded as JSON.
    type Response: Serialize;

    /// Handles one decoded request; an error is answered as
    /// `<NAME>: <error>`.
    fn handle(request: Self::Request) -> Result<Self::Response, String>;
}

impl<T: JsonPlugin> crate::Plugin for T {
    fn handle(request: Vec<u8>) -> Result<Vec<u8>, String> {
        let request: T::Request = serde_json::from_slice(&request)
            .map_err(|e| format!("bad request ({e}); expected {}", T::EXPECTED))?;
        let response = T::handle(request).map_err(|e| format!("{}: {e}", T::NAME))?;
        serde_json::to_vec(&response)
            .map_err(|e| format!("{}: cannot encode the response: {e}", T::NAME))
    }
}
