//! A test guest that imports a `wasi:keyvalue` version Cubby does not
//! provide (`0.2.0-draft9`, made up): it must fail to load with an error
//! naming that import.

#![allow(missing_docs)]

wit_bindgen::generate!({
    inline: "
        package wasi:keyvalue@0.2.0-draft9;
        interface store {
            resource bucket {}
            open: func(identifier: string) -> result<bucket, string>;
        }
        world imports { import store; }
    ",
});

fn main() {
    let opened = wasi::keyvalue::store::open("").is_ok();
    println!("{opened}");
}
