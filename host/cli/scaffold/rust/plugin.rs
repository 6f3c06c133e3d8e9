//! A request/response plugin: `cubby call` sends it a request, and the
//! bytes it returns are the answer. Its storage is the workspace the host
//! bound it to (`-w`): no call can reach another workspace's keys.

struct Greeter;

impl cubby_sdk::Plugin for Greeter {
    fn handle(request: Vec<u8>) -> Result<Vec<u8>, String> {
        let name = String::from_utf8(request).map_err(|_| "the request must be UTF-8 text")?;
        let name = match name.trim() {
            "" => "world",
            name => name,
        };
        // An atomic counter: concurrent calls never lose a count. A storage
        // error (a key over the length limit, a full workspace, ...) becomes
        // the call's error.
        let greetings = cubby_sdk::increment(format!("greeted/{name}"), 1)?;
        Ok(format!("Hello, {name}! (greeting {greetings})").into_bytes())
    }
}

cubby_sdk::export!(Greeter);
