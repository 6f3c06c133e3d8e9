//! A test guest for embedders: a request/response plugin that uses Cubby's
//! storage (through `cubby-sdk`) and `example:app/clock`, an interface the
//! embedding application links itself. Request: a name; answer:
//! `{"who":NAME,"visits":N,"at":MS}`, with N counted per name in the
//! workspace and MS from the application's clock.

#![allow(missing_docs)]

wit_bindgen::generate!({ path: "wit", world: "app-plugin" });

struct Visits;

impl cubby_sdk::Plugin for Visits {
    fn handle(request: Vec<u8>) -> Result<Vec<u8>, String> {
        let who = String::from_utf8(request).map_err(|e| format!("the name is not UTF-8: {e}"))?;
        let visits = cubby_sdk::Counter::new(format!("visits/{who}"))
            .increment()
            .map_err(|e| format!("cannot count the visit: {e}"))?;
        let at = example::app::clock::now_ms();
        cubby_sdk::set_json("last-visit", &at)
            .map_err(|e| format!("cannot store the time: {e}"))?;
        Ok(format!(r#"{{"who":"{who}","visits":{visits},"at":{at}}}"#).into_bytes())
    }
}

cubby_sdk::export!(Visits);
