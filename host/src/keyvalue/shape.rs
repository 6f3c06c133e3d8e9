//! Which `get-many` a component imports: `wasi:keyvalue@0.2.0-draft2` is in
//! use in two shapes under the one version, and a linker can hold only one
//! of them under that name.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentItem, Type};

/// The import whose shape differs.
pub(crate) const BATCH: &str = "wasi:keyvalue/batch@0.2.0-draft2";

/// The two shapes of `get-many` in `wasi:keyvalue/batch@0.2.0-draft2`.
///
/// A component is linked with the one it imports: [`Runtime`](crate::Runtime)
/// looks by itself; an embedder with its own linker asks
/// [`GetManyShape::of`] and passes the answer to
/// [`add_to_linker_for`](crate::add_to_linker_for) (a linker serves one
/// shape; keep one linker per shape).
///
/// ```
/// use cubby_host::GetManyShape;
/// # fn main() -> anyhow::Result<()> {
/// let engine = wasmtime::Engine::default();
/// // An empty component, in the binary format.
/// let component = wasmtime::component::Component::new(&engine, b"\0asm\x0d\0\x01\0")?;
/// // A component that imports no draft2 `batch` can use either.
/// assert_eq!(GetManyShape::of(&engine, &component)?, GetManyShape::Upstream);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GetManyShape {
    /// `result<list<option<tuple<string, list<u8>>>>, error>`, as in the
    /// standard's repository and wasmCloud's guests: `none` where a key
    /// holds nothing.
    #[default]
    Upstream,
    /// `result<list<tuple<string, option<list<u8>>>>, error>`, as in Spin's
    /// SDK (spin-sdk 7): a pair for every key asked for, its value `none`
    /// where the key holds nothing.
    Spin,
}

impl GetManyShape {
    /// The result type of `get-many` in this shape, as WIT writes it.
    pub fn wit(self) -> &'static str {
        match self {
            Self::Upstream => "result<list<option<tuple<string, list<u8>>>>, error>",
            Self::Spin => "result<list<tuple<string, option<list<u8>>>>, error>",
        }
    }

    /// The shape `component` imports; [`Upstream`](Self::Upstream) if it
    /// imports no `wasi:keyvalue/batch@0.2.0-draft2`. A `get-many` of
    /// another shape is an error that says what it is and what is served.
    pub fn of(engine: &Engine, component: &Component) -> Result<Self, UnservedShape> {
        let ty = component.component_type();
        let Some(batch) = ty.get_import(engine, BATCH) else {
            return Ok(Self::default());
        };
        let ComponentItem::ComponentInstance(instance) = batch.ty else {
            return Err(UnservedShape::found("not an instance".into()));
        };
        let Some(get_many) = instance.get_export(engine, "get-many") else {
            // Nothing to choose between: linking says what is missing.
            return Ok(Self::default());
        };
        let ComponentItem::ComponentFunc(func) = get_many.ty else {
            return Err(UnservedShape::found("not a function".into()));
        };
        let results: Vec<Type> = func.results().collect();
        if let [result] = &results[..]
            && let Some(shape) = Self::of_result(result)
        {
            return Ok(shape);
        }
        let found: Vec<String> = results.iter().map(wit).collect();
        Err(UnservedShape::found(format!(
            "a function returning {}",
            if found.is_empty() {
                "nothing".to_owned()
            } else {
                found.join(", ")
            }
        )))
    }

    fn of_result(result: &Type) -> Option<Self> {
        let Type::Result(result) = result else {
            return None;
        };
        let Some(Type::List(list)) = result.ok() else {
            return None;
        };
        let bytes = |t: &Type| matches!(t, Type::List(l) if l.ty() == Type::U8);
        match list.ty() {
            Type::Option(entry) => match entry.ty() {
                Type::Tuple(pair) => match pair.types().collect::<Vec<_>>()[..] {
                    [Type::String, ref value] if bytes(value) => Some(Self::Upstream),
                    _ => None,
                },
                _ => None,
            },
            Type::Tuple(pair) => match pair.types().collect::<Vec<_>>()[..] {
                [Type::String, Type::Option(ref value)] if bytes(&value.ty()) => Some(Self::Spin),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A component's `get-many` of `wasi:keyvalue/batch@0.2.0-draft2` in neither
/// shape Cubby serves ([`GetManyShape`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "its `get-many` of `{BATCH}` is {found}; Cubby serves one returning `{}` (the standard's) or `{}` (Spin's)",
    GetManyShape::Upstream.wit(),
    GetManyShape::Spin.wit()
)]
pub struct UnservedShape {
    /// What the component imports, in WIT's words.
    pub found: String,
}

impl UnservedShape {
    fn found(found: String) -> Self {
        Self { found }
    }
}

/// A component type in WIT's words, as far as messages need.
fn wit(t: &Type) -> String {
    let list = |items: Vec<String>| items.join(", ");
    match t {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", wit(&l.ty())),
        Type::Option(o) => format!("option<{}>", wit(&o.ty())),
        Type::Tuple(t) => format!("tuple<{}>", list(t.types().map(|t| wit(&t)).collect())),
        Type::Result(r) => {
            let side = |t: Option<Type>| t.map_or_else(|| "_".to_owned(), |t| wit(&t));
            format!("result<{}, {}>", side(r.ok()), side(r.err()))
        }
        Type::Variant(_) => "variant".into(),
        Type::Record(_) => "record".into(),
        Type::Enum(_) => "enum".into(),
        Type::Flags(_) => "flags".into(),
        Type::Own(_) | Type::Borrow(_) => "resource".into(),
        other => format!("{other:?}"),
    }
}
