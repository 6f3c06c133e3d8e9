//! A test guest that imports `wasi:keyvalue/batch@0.2.0-draft2` with a
//! `get-many` of a third, made-up shape (values only): it must fail to load
//! with an error naming the import and the shapes Cubby serves.

#![allow(missing_docs)]

wit_bindgen::generate!({
    inline: "
        package wasi:keyvalue@0.2.0-draft2;
        interface store {
            resource bucket {}
            variant error { no-such-store, access-denied, other(string) }
            open: func(identifier: string) -> result<bucket, error>;
        }
        interface batch {
            use store.{bucket, error};
            get-many: func(bucket: borrow<bucket>, keys: list<string>)
                -> result<list<list<u8>>, error>;
        }
        world imports { import store; import batch; }
    ",
});

fn main() {
    let opened = wasi::keyvalue::store::open("")
        .is_ok_and(|b| wasi::keyvalue::batch::get_many(&b, &["k".to_owned()]).is_ok());
    println!("{opened}");
}
