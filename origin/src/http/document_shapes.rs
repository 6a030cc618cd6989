//! The last step of the OpenAPI document, on its JSON: two shapes utoipa writes that say
//! something other than the server does, or that tools misread.
//!
//! - A nullable string with a `format` (utoipa writes `Option<DateTime>` as
//!   `{"type": ["string", "null"], "format": "date-time"}`) becomes
//!   `{"oneOf": [{"type": "string", "format": ...}, {"type": "null"}]}`. Both say the same in
//!   JSON Schema, but tools that read `format` only on a single type, as generators and fuzzers
//!   do (schemathesis sends `""` as a valid `date-time` for the first shape), treat the union as
//!   any string. The second shape keeps the format where they look.
//! - An optional request body (`request_body(content = Option<T>)`, which utoipa writes as
//!   `oneOf: [T, null]`) is `T`, not required: the body may be left out, but a JSON `null` is not
//!   one the server takes.

use serde_json::{Map, Value};
use utoipa::openapi::OpenApi;

/// The keywords that describe the string itself and move into its branch; the rest
/// (`description`, `example`, `default`) stay on the whole.
const STRING_KEYWORDS: &[&str] = &["format", "pattern", "minLength", "maxLength"];

/// The document as JSON, every nullable formatted string rewritten, in schemas and parameters
/// alike. JSON, not the model: utoipa's model reads a `{"oneOf", "description"}` schema back as
/// an object schema and drops the `oneOf`.
pub(super) fn finish(openapi: &OpenApi) -> Value {
    // The model always serialises (string keys, no floats); were it not to, the empty document
    // would fail the drift test of `openapi.json`.
    let mut document = serde_json::to_value(openapi).unwrap_or(Value::Null);
    split(&mut document);
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        let operations = paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut());
        operations.for_each(optional_body_without_null);
    }
    document
}

/// `requestBody.content.*.schema` of `{"oneOf": [T, {"type": "null"}]}` becomes `T` when the
/// body is not required.
fn optional_body_without_null(operation: &mut Value) {
    let Some(body) = operation.get_mut("requestBody") else {
        return;
    };
    if body.get("required") == Some(&Value::Bool(true)) {
        return;
    }
    let media_types = body.get_mut("content").and_then(Value::as_object_mut);
    for media_type in media_types
        .into_iter()
        .flat_map(|content| content.values_mut())
    {
        let Some(schema) = media_type.get_mut("schema") else {
            continue;
        };
        let branches = schema.get("oneOf").and_then(Value::as_array);
        if let Some([only, null]) = branches.map(Vec::as_slice)
            && *null == serde_json::json!({"type": "null"})
        {
            *schema = only.clone();
        }
    }
}

fn split(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(one_of) = nullable_formatted_string(object) {
                for keyword in STRING_KEYWORDS.iter().chain(&["type"]) {
                    object.remove(*keyword);
                }
                object.insert("oneOf".to_owned(), one_of);
            }
            object.values_mut().for_each(split);
        }
        Value::Array(items) => items.iter_mut().for_each(split),
        _ => {}
    }
}

/// The `oneOf` for a `{"type": ["string", "null"], "format": ...}` schema, or `None`.
fn nullable_formatted_string(object: &Map<String, Value>) -> Option<Value> {
    let types = object.get("type")?.as_array()?;
    let is_nullable_string = types.len() == 2
        && types.contains(&Value::from("string"))
        && types.contains(&Value::from("null"));
    if !is_nullable_string || !object.contains_key("format") {
        return None;
    }
    let mut string = Map::new();
    string.insert("type".to_owned(), Value::from("string"));
    for keyword in STRING_KEYWORDS {
        if let Some(constraint) = object.get(*keyword) {
            string.insert((*keyword).to_owned(), constraint.clone());
        }
    }
    Some(Value::Array(vec![
        Value::Object(string),
        serde_json::json!({"type": "null"}),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nullable_formatted_string_becomes_a_one_of_with_its_constraints() {
        let mut schema = json!({"properties": {"expires_at": {
            "type": ["string", "null"], "format": "date-time", "description": "When",
            "maxLength": 40
        }}});
        split(&mut schema);
        assert_eq!(
            schema,
            json!({"properties": {"expires_at": {
                "description": "When",
                "oneOf": [
                    {"type": "string", "format": "date-time", "maxLength": 40},
                    {"type": "null"}
                ]
            }}})
        );
    }

    #[test]
    fn other_schemas_are_left_as_they_are() {
        let untouched = json!({"a": {"type": ["string", "null"]},
                               "b": {"type": "string", "format": "uuid"},
                               "c": {"type": ["integer", "null"], "format": "int32"}});
        let mut schema = untouched.clone();
        split(&mut schema);
        assert_eq!(schema, untouched);
    }

    #[test]
    fn an_optional_body_is_its_type_not_null() {
        let mut operation = json!({"requestBody": {"content": {"application/json": {"schema":
            {"oneOf": [{"$ref": "#/components/schemas/T"}, {"type": "null"}]}}}}});
        optional_body_without_null(&mut operation);
        assert_eq!(
            operation,
            json!({"requestBody": {"content": {"application/json": {"schema":
                {"$ref": "#/components/schemas/T"}}}}})
        );
    }

    #[test]
    fn the_served_document_has_no_nullable_formatted_string_left() {
        let document = super::super::openapi_document();
        let text = document.to_string();
        assert!(text.contains("\"oneOf\""));
        fn walk(value: &Value) {
            match value {
                Value::Object(object) => {
                    assert!(nullable_formatted_string(object).is_none(), "{value}");
                    object.values().for_each(walk);
                }
                Value::Array(items) => items.iter().for_each(walk),
                _ => {}
            }
        }
        walk(&document);
    }
}
