//! `getter`: a test-only plugin that does one thing, as a small plugin
//! does: the request is a key, the answer its value (empty when there is
//! none). The benchmark's whole call runs it, so that the call's cost is
//! that of a plugin importing what one `get` needs (the `probe` imports every
//! storage operation, and instantiating a component costs more the more
//! functions it imports).

struct Getter;

impl cubby_sdk::Plugin for Getter {
    fn handle(request: Vec<u8>) -> Result<Vec<u8>, String> {
        let key = String::from_utf8(request).map_err(|_| "the key is not UTF-8".to_owned())?;
        Ok(cubby_sdk::get(&key)?.unwrap_or_default())
    }
}

cubby_sdk::export!(Getter);
