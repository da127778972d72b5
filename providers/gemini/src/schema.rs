//! JSON Schema → the subset of OpenAPI 3.0 schema that Gemini's `Schema` accepts
//! (<https://ai.google.dev/api/caching#Schema>), for function `parameters` and
//! `responseSchema`.
//!
//! What changes on the way:
//! - `type` is upper-cased (`STRING`, `OBJECT`, ...); `["string", "null"]` becomes
//!   `STRING` with `nullable: true`; several non-null types become an `anyOf`;
//! - local `$ref`s (`#/$defs/...`, `#/definitions/...`, `#`) are inlined; a schema that
//!   refers to itself cannot be expressed and is refused;
//! - `oneOf` becomes `anyOf`, `allOf` is merged into one schema, `const` becomes a
//!   one-value `enum`;
//! - `enum` must list strings: other enums are dropped and listed in the description;
//! - `format` is kept only where Gemini supports it (`enum`/`date-time` on strings,
//!   `float`/`double` on numbers, `int32`/`int64` on integers);
//! - `required` keeps only names that are among `properties`;
//! - everything else is dropped: `additionalProperties`, `$schema`, `$id`, `strict`,
//!   `$defs`, `examples`, `patternProperties`, `not`, `if`/`then`/`else`, ...

use provider_sdk::{serde_json, ProviderError};
use serde_json::{Map, Value};

/// How deep a schema may nest (after inlining `$ref`s) before it is refused.
const MAX_DEPTH: usize = 32;

/// Converts a JSON schema to Gemini's schema subset.
pub(crate) fn convert(schema: &Value) -> Result<Value, ProviderError> {
    Converter { root: schema }.node(schema, 0)
}

/// Whether a converted schema is an object with no properties, which Gemini refuses
/// as function parameters (a function without arguments has no `parameters`).
pub(crate) fn is_empty_object(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("OBJECT")
        && schema
            .get("properties")
            .and_then(Value::as_object)
            .map_or(true, Map::is_empty)
}

struct Converter<'a> {
    root: &'a Value,
}

fn refuse(message: impl Into<String>) -> ProviderError {
    ProviderError::invalid_request(message)
}

impl Converter<'_> {
    fn node(&self, node: &Value, depth: usize) -> Result<Value, ProviderError> {
        if depth > MAX_DEPTH {
            return Err(refuse(format!(
                "the JSON schema nests more than {MAX_DEPTH} levels deep or refers to itself; \
                 Gemini's schema subset has no references, so recursive schemas cannot be sent"
            )));
        }
        let object = match node {
            Value::Object(object) => object,
            // `true` (anything goes) has no Gemini equivalent but an unconstrained schema.
            Value::Bool(true) => return Ok(Value::Object(Map::new())),
            other => {
                return Err(refuse(format!(
                    "a JSON schema must be an object, not `{other}`"
                )))
            }
        };
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            let target = self.resolve(reference)?;
            let mut converted = self.node(target, depth + 1)?;
            // Keywords next to a `$ref` (usually a description) refine the target.
            if let (Some(description), Value::Object(out)) =
                (object.get("description"), &mut converted)
            {
                out.insert("description".to_owned(), description.clone());
            }
            return Ok(converted);
        }

        let mut out = Map::new();
        let mut notes: Vec<String> = Vec::new();

        match object.get("type") {
            Some(Value::String(t)) => {
                out.insert("type".to_owned(), Value::String(t.to_ascii_uppercase()));
            }
            Some(Value::Array(types)) => {
                let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                let non_null: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
                if non_null.len() < names.len() {
                    out.insert("nullable".to_owned(), Value::Bool(true));
                }
                match non_null.as_slice() {
                    [] if !names.is_empty() => {
                        out.insert("type".to_owned(), Value::String("NULL".to_owned()));
                    }
                    [] => {}
                    [one] => {
                        out.insert("type".to_owned(), Value::String(one.to_ascii_uppercase()));
                    }
                    many => {
                        let any_of = many
                            .iter()
                            .map(|t| serde_json::json!({"type": t.to_ascii_uppercase()}))
                            .collect();
                        out.insert("anyOf".to_owned(), Value::Array(any_of));
                    }
                }
            }
            _ => {}
        }
        if object.get("nullable") == Some(&Value::Bool(true)) {
            out.insert("nullable".to_owned(), Value::Bool(true));
        }
        for key in ["title", "description", "pattern"] {
            if let Some(value @ Value::String(_)) = object.get(key) {
                out.insert(key.to_owned(), value.clone());
            }
        }
        for key in [
            "minItems",
            "maxItems",
            "minLength",
            "maxLength",
            "minProperties",
            "maxProperties",
            "minimum",
            "maximum",
        ] {
            if let Some(value @ Value::Number(_)) = object.get(key) {
                out.insert(key.to_owned(), value.clone());
            }
        }
        for key in ["default", "example"] {
            if let Some(value) = object.get(key) {
                out.insert(key.to_owned(), value.clone());
            }
        }
        if let Some(Value::Array(order)) = object.get("propertyOrdering") {
            out.insert("propertyOrdering".to_owned(), Value::Array(order.clone()));
        }

        let mut values: Option<Vec<Value>> = match object.get("enum") {
            Some(Value::Array(values)) => Some(values.clone()),
            _ => None,
        };
        if let Some(constant) = object.get("const") {
            values = Some(vec![constant.clone()]);
        }
        if let Some(values) = values {
            if values.iter().all(Value::is_string) {
                out.entry("type")
                    .or_insert_with(|| Value::String("STRING".to_owned()));
                out.insert("enum".to_owned(), Value::Array(values));
            } else {
                let listed: Vec<String> = values.iter().map(Value::to_string).collect();
                notes.push(format!("Allowed values: {}.", listed.join(", ")));
            }
        }

        if let Some(Value::String(format)) = object.get("format") {
            let supported = match out.get("type").and_then(Value::as_str) {
                Some("STRING") => matches!(format.as_str(), "enum" | "date-time"),
                Some("NUMBER") => matches!(format.as_str(), "float" | "double"),
                Some("INTEGER") => matches!(format.as_str(), "int32" | "int64"),
                _ => false,
            };
            if supported {
                out.insert("format".to_owned(), Value::String(format.clone()));
            }
        }

        if let Some(Value::Object(properties)) = object.get("properties") {
            let mut converted = Map::new();
            for (name, property) in properties {
                converted.insert(name.clone(), self.node(property, depth + 1)?);
            }
            if let Some(Value::Array(required)) = object.get("required") {
                let kept: Vec<Value> = required
                    .iter()
                    .filter(|r| r.as_str().is_some_and(|r| converted.contains_key(r)))
                    .cloned()
                    .collect();
                if !kept.is_empty() {
                    out.insert("required".to_owned(), Value::Array(kept));
                }
            }
            out.insert("properties".to_owned(), Value::Object(converted));
            out.entry("type")
                .or_insert_with(|| Value::String("OBJECT".to_owned()));
        }

        match object.get("items") {
            Some(items @ Value::Object(_)) => {
                out.insert("items".to_owned(), self.node(items, depth + 1)?);
            }
            // Tuple form (draft 4-7): Gemini has one item schema; the first is the best guess.
            Some(Value::Array(items)) if !items.is_empty() => {
                out.insert("items".to_owned(), self.node(&items[0], depth + 1)?);
            }
            _ => {}
        }
        if out.contains_key("items") {
            out.entry("type")
                .or_insert_with(|| Value::String("ARRAY".to_owned()));
        }

        let mut alternatives = Vec::new();
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = object.get(key) {
                for option in options {
                    alternatives.push(self.node(option, depth + 1)?);
                }
            }
        }
        if !alternatives.is_empty() {
            out.insert("anyOf".to_owned(), Value::Array(alternatives));
        }

        if let Some(Value::Array(parts)) = object.get("allOf") {
            for part in parts {
                if let Value::Object(part) = self.node(part, depth + 1)? {
                    merge(&mut out, part);
                }
            }
        }

        if !notes.is_empty() {
            let note = notes.join(" ");
            let description = match out.get("description").and_then(Value::as_str) {
                Some(text) if !text.is_empty() => format!("{text} {note}"),
                _ => note,
            };
            out.insert("description".to_owned(), Value::String(description));
        }
        Ok(Value::Object(out))
    }

    /// Resolves a local reference: `#`, `#/$defs/name`, `#/definitions/name`, or any
    /// JSON pointer into the root schema.
    fn resolve(&self, reference: &str) -> Result<&Value, ProviderError> {
        let pointer = reference.strip_prefix('#').ok_or_else(|| {
            refuse(format!(
                "the JSON schema refers to `{reference}`; only local references (`#/...`) can be \
                 inlined for Gemini"
            ))
        })?;
        self.root.pointer(pointer).ok_or_else(|| {
            refuse(format!(
                "the JSON schema refers to `{reference}`, which it does not define"
            ))
        })
    }
}

/// Merges an `allOf` member into a schema: properties and `required` are unions, other
/// keywords already set win.
fn merge(into: &mut Map<String, Value>, part: Map<String, Value>) {
    for (key, value) in part {
        match (key.as_str(), into.get_mut(&key), value) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (name, property) in theirs {
                    mine.entry(name).or_insert(property);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for name in theirs {
                    if !mine.contains(&name) {
                        mine.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                into.insert(key, value);
            }
        }
    }
}
