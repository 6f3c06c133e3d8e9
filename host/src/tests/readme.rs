//! The crate documentation against the README.

/// The crate's first example is the README's "Embedding the host".
#[test]
fn the_crate_docs_first_example_is_the_readmes() {
    let docs: String = include_str!("../lib.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
        .collect();
    let start = docs.find("```\n").map(|i| i + 4).unwrap_or(0);
    let example = &docs[start..start + docs[start..].find("```").unwrap_or(0)];
    assert!(example.contains("Runtime::builder()"), "{example}");
    assert!(
        include_str!("../../../README.md").contains(example),
        "the README's embedding example differs from the crate docs'"
    );
}
