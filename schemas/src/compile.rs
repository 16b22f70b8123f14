//! Compiling a JSON Schema into an Arrow schema and a plan of vectorized checks.
//!
//! The checks that run column by column over Arrow arrays are listed in [`Check`]. Anything
//! else a schema says (`if`/`then`, `oneOf`, nested `items`, `$ref`, …) is left to the
//! `jsonschema` crate, which then sees only the rows that need it.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value};

use crate::formats::Format;
use crate::pattern::Pattern;

/// JSON Schema draft this engine implements.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// The JSON type of a property, which decides its Arrow storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `string` (dates and date-times are strings with a format).
    String,
    /// `integer`, stored as Int64.
    Integer,
    /// `number`, stored as Float64.
    Number,
    /// `boolean`.
    Boolean,
    /// `array`, stored as JSON text.
    Array,
    /// `object`, stored as JSON text.
    Object,
    /// No `type` at all: any JSON value, stored as JSON text and checked by `jsonschema`.
    Any,
}

impl JsonKind {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "array" => Self::Array,
            "object" => Self::Object,
            _ => return None,
        })
    }

    /// The name in plain words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::String => "text",
            Self::Integer => "whole number",
            Self::Number => "number",
            Self::Boolean => "boolean (true/false)",
            Self::Array => "JSON array",
            Self::Object => "JSON object",
            Self::Any => "JSON value",
        }
    }
}

/// A vectorized check on one property's present values.
#[derive(Debug, Clone)]
pub enum Check {
    /// `enum`: the value must equal one of these.
    Enum(Vec<Value>),
    /// `const`: the value must equal this.
    Const(Value),
    /// `pattern`: the text must contain a match (ECMA-262, translated as `jsonschema` does).
    Pattern(Arc<Pattern>, String),
    /// `minLength`, in Unicode characters.
    MinLength(u64),
    /// `maxLength`, in Unicode characters.
    MaxLength(u64),
    /// `minimum`.
    Minimum(f64),
    /// `maximum`.
    Maximum(f64),
    /// `exclusiveMinimum`.
    ExclusiveMinimum(f64),
    /// `exclusiveMaximum`.
    ExclusiveMaximum(f64),
    /// `multipleOf` with a whole-number divisor on a whole-number property.
    MultipleOf(i64),
    /// `format`.
    Format(Format),
}

/// How one property is read, stored and checked.
#[derive(Debug, Clone)]
pub struct PropertyPlan {
    /// The property (column) name.
    pub name: String,
    /// Its JSON type.
    pub kind: JsonKind,
    /// Whether `null` is an allowed value (`"type": ["string", "null"]`).
    pub nullable: bool,
    /// Whether the property must be present.
    pub required: bool,
    /// The vectorized checks.
    pub checks: Vec<Check>,
    /// Whether part of the property's schema is checked by `jsonschema` (rows where the
    /// property has a value go there).
    pub needs_fallback: bool,
    /// Whether the property holds personal data (`x-pii`).
    pub pii: bool,
    /// Whether a JSON number or boolean is taken as its text in a text property. True only
    /// for datasets typed by their table (no canonical schema): there the table's `Utf8`
    /// column is the contract, and `32` stored as `"32"` loses nothing. A canonical schema's
    /// `"type": "string"` refuses them, as JSON Schema does.
    pub text_from_scalars: bool,
}

impl PropertyPlan {
    /// The `format` check, if the property has one.
    pub fn format(&self) -> Option<Format> {
        self.checks.iter().find_map(|c| match c {
            Check::Format(f) => Some(*f),
            _ => None,
        })
    }

    /// The Arrow type the property is stored as.
    pub fn storage_type(&self) -> DataType {
        match (self.kind, self.format()) {
            (JsonKind::String, Some(Format::Date)) => DataType::Date32,
            (JsonKind::String, Some(Format::DateTime)) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            (JsonKind::Integer, _) => DataType::Int64,
            (JsonKind::Number, _) => DataType::Float64,
            (JsonKind::Boolean, _) => DataType::Boolean,
            _ => DataType::Utf8,
        }
    }
}

/// Why a schema could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// A schema ready to validate batches: its storage schema, its vectorized plan, and the
/// `jsonschema` validator for the rest.
#[derive(Clone)]
pub struct CompiledSchema {
    /// The schema's name (`penduduk`).
    pub name: String,
    /// Its version (`1.0.0`).
    pub version: String,
    /// The schema document as written.
    pub document: Value,
    /// How each property is stored, in declaration order.
    pub arrow: SchemaRef,
    /// How each property is read and checked, in declaration order.
    pub properties: Vec<PropertyPlan>,
    /// Whether columns the schema does not name are allowed.
    pub additional_properties: bool,
    /// `x-primary-key`: property indexes whose values are unique within a batch.
    pub primary_key: Vec<usize>,
    /// `x-koordinat`: the latitude and longitude properties, where `0,0` means "no location".
    pub coordinates: Option<(usize, usize)>,
    /// Schema-level `if`/`then`/`else` rules the engine evaluates itself.
    pub conditionals: Vec<Conditional>,
    /// What `jsonschema` checks after the vectorized engine, if anything.
    pub fallback: Option<Arc<Fallback>>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("properties", &self.properties)
            .finish_non_exhaustive()
    }
}

/// Annotation keywords: they describe, they never reject.
const ANNOTATIONS: [&str; 9] = [
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "$schema",
];

/// Schema-level keywords the vectorized engine understands itself.
const ROOT_VECTORIZED: [&str; 5] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "$id",
];

/// Property keywords the vectorized engine understands itself.
const PROPERTY_VECTORIZED: [&str; 13] = [
    "type",
    "enum",
    "const",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "format",
    "$id",
];

fn is_annotation(keyword: &str) -> bool {
    ANNOTATIONS.contains(&keyword) || keyword.starts_with("x-") || keyword == "$defs"
}

impl CompiledSchema {
    /// Compiles a schema document. `name` is the registry name; the version comes from
    /// `x-version`.
    pub fn compile(name: &str, document: Value) -> Result<Self, SchemaError> {
        // Building the full validator checks the document against the 2020-12 meta-schema.
        reference_validator(&document)?;
        let root = document
            .as_object()
            .ok_or_else(|| SchemaError("the schema must be a JSON object".into()))?;
        if root.get("type").and_then(Value::as_str) != Some("object") {
            return Err(SchemaError(
                "a dataset schema must describe records: \"type\": \"object\"".into(),
            ));
        }
        let version = root
            .get("x-version")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                SchemaError("the schema needs \"x-version\": \"MAJOR.MINOR.PATCH\"".into())
            })?;
        parse_version(version)?;
        let required: BTreeSet<&str> = root
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let properties_value = root
            .get("properties")
            .and_then(Value::as_object)
            .ok_or_else(|| SchemaError("the schema needs \"properties\"".into()))?;
        let mut properties = Vec::with_capacity(properties_value.len());
        for (prop_name, prop_schema) in properties_value {
            properties.push(compile_property(
                prop_name,
                prop_schema,
                required.contains(prop_name.as_str()),
            )?);
        }
        if let Some(missing) = required
            .iter()
            .find(|r| !properties_value.contains_key(**r))
        {
            return Err(SchemaError(format!(
                "\"required\" names '{missing}', which is not among the properties"
            )));
        }
        let index_of = |name: &str| properties.iter().position(|p| p.name == name);
        let primary_key = root
            .get("x-primary-key")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .map(|k| {
                        k.as_str().and_then(index_of).ok_or_else(|| {
                            SchemaError(format!("x-primary-key names {k}, which is not a property"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let coordinates = match root.get("x-koordinat") {
            None => None,
            Some(value) => Some(coordinate_properties(value, &properties)?),
        };
        let additional_properties = match root.get("additionalProperties") {
            None | Some(Value::Bool(true)) => true,
            Some(Value::Bool(false)) => false,
            Some(_) => true,
        };
        let conditionals: Vec<Conditional> = Conditional::compile(root, &properties)
            .into_iter()
            .collect();
        let fallback =
            Fallback::for_schema(&document, &properties, !conditionals.is_empty())?.map(Arc::new);
        let arrow = Arc::new(Schema::new(
            properties
                .iter()
                .map(|p| Field::new(&p.name, p.storage_type(), !p.required || p.nullable))
                .collect::<Vec<_>>(),
        ));
        Ok(Self {
            name: name.to_string(),
            version: version.to_string(),
            document,
            arrow,
            properties,
            additional_properties,
            primary_key,
            coordinates,
            conditionals,
            fallback,
        })
    }

    /// A schema with type checks only, for a dataset that has no canonical schema: every
    /// column of its table, none required, nulls allowed.
    pub fn from_arrow(name: &str, table: &Schema) -> Self {
        let properties: Vec<PropertyPlan> = table
            .fields()
            .iter()
            .map(|field| PropertyPlan {
                name: field.name().clone(),
                kind: kind_of_arrow(field.data_type()),
                nullable: true,
                required: false,
                checks: format_of_arrow(field.data_type())
                    .map(Check::Format)
                    .into_iter()
                    .collect(),
                needs_fallback: false,
                pii: false,
                text_from_scalars: true,
            })
            .collect();
        let document = serde_json::json!({
            "description": "types of the dataset's table; no canonical schema is bound",
        });
        Self {
            name: name.to_string(),
            version: "0.0.0".into(),
            document,
            arrow: Arc::new(table.clone()),
            properties,
            additional_properties: false,
            primary_key: Vec::new(),
            coordinates: None,
            conditionals: Vec::new(),
            fallback: None,
        }
    }

    /// This schema plus columns it does not name, checked for type only (a dataset's table
    /// may carry such columns after a contract `evolve` ingest).
    pub fn with_extra_columns(&self, extra: &Schema) -> Self {
        let mut extended = self.clone();
        let typed = Self::from_arrow(&self.name, extra);
        extended.properties.extend(typed.properties);
        let fields: Vec<Field> = self
            .arrow
            .fields()
            .iter()
            .chain(extra.fields().iter())
            .map(|f| f.as_ref().clone())
            .collect();
        extended.arrow = Arc::new(Schema::new(fields));
        extended
    }

    /// The major version, which a dataset binds to.
    pub fn major(&self) -> u64 {
        parse_version(&self.version).map_or(0, |v| v.0)
    }

    /// Columns marked `x-pii`.
    pub fn pii_columns(&self) -> impl Iterator<Item = &str> {
        self.properties
            .iter()
            .filter(|p| p.pii)
            .map(|p| p.name.as_str())
    }
}

/// Parses `MAJOR.MINOR.PATCH`.
pub fn parse_version(version: &str) -> Result<(u64, u64, u64), SchemaError> {
    let parts: Vec<u64> = version
        .split('.')
        .map(|p| p.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| SchemaError(format!("version '{version}' is not MAJOR.MINOR.PATCH")))?;
    match parts.as_slice() {
        [major, minor, patch] => Ok((*major, *minor, *patch)),
        _ => Err(SchemaError(format!(
            "version '{version}' is not MAJOR.MINOR.PATCH"
        ))),
    }
}

fn kind_of_arrow(data_type: &DataType) -> JsonKind {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => JsonKind::Integer,
        DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => JsonKind::Number,
        DataType::Boolean => JsonKind::Boolean,
        DataType::List(_) | DataType::LargeList(_) => JsonKind::Array,
        DataType::Struct(_) => JsonKind::Object,
        _ => JsonKind::String,
    }
}

fn format_of_arrow(data_type: &DataType) -> Option<Format> {
    match data_type {
        DataType::Date32 => Some(Format::Date),
        DataType::Timestamp(_, _) => Some(Format::DateTime),
        _ => None,
    }
}

fn compile_property(
    name: &str,
    schema: &Value,
    required: bool,
) -> Result<PropertyPlan, SchemaError> {
    let context = |message: String| SchemaError(format!("property '{name}': {message}"));
    let object = match schema {
        Value::Object(object) => object,
        Value::Bool(true) => &Map::new(),
        _ => return Err(context("its schema must be an object".into())),
    };
    let (kind, nullable) = property_type(object.get("type")).map_err(context)?;
    let mut checks = Vec::new();
    let mut needs_fallback = kind == JsonKind::Any;
    for (keyword, value) in object {
        if is_annotation(keyword) || keyword == "type" {
            continue;
        }
        if !PROPERTY_VECTORIZED.contains(&keyword.as_str()) {
            needs_fallback = true;
            continue;
        }
        match compile_check(keyword, value, kind).map_err(context)? {
            Some(check) => checks.push(check),
            None => needs_fallback = true,
        }
    }
    // Checks on nested values (enum over arrays, …) are left whole to jsonschema.
    if matches!(kind, JsonKind::Array | JsonKind::Object) && !checks.is_empty() {
        checks.clear();
        needs_fallback = true;
    }
    Ok(PropertyPlan {
        name: name.to_string(),
        kind,
        nullable,
        required,
        checks,
        needs_fallback,
        pii: object
            .get("x-pii")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        text_from_scalars: false,
    })
}

/// `"type"` as one kind, optionally with `"null"`.
fn property_type(value: Option<&Value>) -> Result<(JsonKind, bool), String> {
    let unknown = |t: &str| {
        format!("type '{t}' is not one of string, integer, number, boolean, array, object")
    };
    match value {
        None => Ok((JsonKind::Any, true)),
        Some(Value::String(t)) => JsonKind::from_name(t)
            .map(|k| (k, false))
            .ok_or_else(|| unknown(t)),
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            let nullable = names.contains(&"null");
            let non_null: Vec<&str> = names.into_iter().filter(|t| *t != "null").collect();
            match non_null.as_slice() {
                [one] => JsonKind::from_name(one)
                    .map(|k| (k, nullable))
                    .ok_or_else(|| unknown(one)),
                _ => Ok((JsonKind::Any, true)),
            }
        }
        Some(other) => Err(format!(
            "\"type\" must be a string or an array, not {other}"
        )),
    }
}

/// One vectorized check, or `None` when this engine leaves the keyword to jsonschema.
fn compile_check(keyword: &str, value: &Value, kind: JsonKind) -> Result<Option<Check>, String> {
    let number = || {
        value
            .as_f64()
            .ok_or_else(|| format!("\"{keyword}\" must be a number"))
    };
    let count = || {
        value
            .as_u64()
            .ok_or_else(|| format!("\"{keyword}\" must be a non-negative whole number"))
    };
    Ok(Some(match keyword {
        "enum" => Check::Enum(
            value
                .as_array()
                .cloned()
                .ok_or_else(|| "\"enum\" must be an array".to_string())?,
        ),
        "const" => Check::Const(value.clone()),
        "pattern" => {
            let pattern = value.as_str().ok_or("\"pattern\" must be a string")?;
            Check::Pattern(Arc::new(Pattern::new(pattern)?), pattern.to_string())
        }
        "minLength" => Check::MinLength(count()?),
        "maxLength" => Check::MaxLength(count()?),
        "minimum" => Check::Minimum(number()?),
        "maximum" => Check::Maximum(number()?),
        "exclusiveMinimum" => Check::ExclusiveMinimum(number()?),
        "exclusiveMaximum" => Check::ExclusiveMaximum(number()?),
        "multipleOf" => match (kind, value.as_i64()) {
            (JsonKind::Integer, Some(divisor)) if divisor > 0 => Check::MultipleOf(divisor),
            _ => return Ok(None),
        },
        "format" => {
            let name = value.as_str().ok_or("\"format\" must be a string")?;
            let format = Format::from_name(name).ok_or_else(|| {
                format!(
                    "format '{name}' is unknown; Simpul checks date, date-time, email, uri, nik, \
                     kode-wilayah, kode-wilayah-desa and telepon-id"
                )
            })?;
            if kind != JsonKind::String {
                return Ok(None);
            }
            Check::Format(format)
        }
        _ => return Ok(None),
    }))
}

fn coordinate_properties(
    value: &Value,
    properties: &[PropertyPlan],
) -> Result<(usize, usize), SchemaError> {
    let find = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .and_then(|name| properties.iter().position(|p| p.name == name))
            .filter(|&i| properties[i].kind == JsonKind::Number)
            .ok_or_else(|| {
                SchemaError(format!(
                    "x-koordinat.{key} must name a number property, e.g. {{\"lat\": \"lat\", \"lng\": \"lng\"}}"
                ))
            })
    };
    Ok((find("lat")?, find("lng")?))
}

/// The `jsonschema` validator for a document: draft 2020-12, formats asserted, Simpul's
/// domain formats and `x-koordinat` registered. It is the reference the vectorized engine
/// must agree with, and it checks what the engine leaves over.
pub fn reference_validator(document: &Value) -> Result<jsonschema::Validator, SchemaError> {
    let mut options = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_keyword("x-koordinat", crate::keywords::coordinates_factory);
    for format in Format::DOMAIN {
        options = options.with_format(format.name(), move |value: &str| {
            format.check(value).is_ok()
        });
    }
    options.build(document).map_err(|e| {
        let at = e.schema_path().as_str();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" at {at}")
        };
        SchemaError(format!("not a valid JSON Schema{at}: {e}"))
    })
}

/// The part of a schema that the vectorized engine leaves to `jsonschema`: the schema-level
/// keywords it does not implement (`if`/`then`, `oneOf`, …) and the properties it does not
/// fully check (arrays, objects, `$ref`). Keywords at one level of a schema combine with AND,
/// so a row is valid exactly when it passes the vectorized checks and this residual schema.
pub struct Fallback {
    /// Validator of the residual schema.
    pub validator: jsonschema::Validator,
    /// Whether every row must be checked (schema-level keywords), or only rows where a
    /// property in [`Fallback::columns`] has a value.
    pub all_rows: bool,
    /// Properties whose own schema needs `jsonschema`.
    pub columns: Vec<usize>,
    /// The properties the residual schema looks at; `None` when it may look at all of them.
    pub mentioned: Option<Vec<usize>>,
}

/// Schema-level keywords whose meaning depends on every property of the instance.
const WHOLE_OBJECT_KEYWORDS: [&str; 8] = [
    "minProperties",
    "maxProperties",
    "propertyNames",
    "patternProperties",
    "additionalProperties",
    "unevaluatedProperties",
    "$ref",
    "$dynamicRef",
];

impl Fallback {
    fn for_schema(
        document: &Value,
        properties: &[PropertyPlan],
        conditional_vectorized: bool,
    ) -> Result<Option<Self>, SchemaError> {
        let Some(root) = document.as_object() else {
            return Ok(None);
        };
        let mut residual = Map::new();
        let mut all_rows = false;
        for (keyword, value) in root {
            let vectorized = ROOT_VECTORIZED.contains(&keyword.as_str())
                && (keyword != "additionalProperties" || value.is_boolean());
            let conditional = matches!(keyword.as_str(), "if" | "then" | "else");
            if keyword == "$schema" || keyword == "$defs" || keyword == "$id" {
                residual.insert(keyword.clone(), value.clone());
            } else if conditional && conditional_vectorized {
                continue;
            } else if !vectorized && !is_annotation(keyword) {
                residual.insert(keyword.clone(), value.clone());
                all_rows = true;
            }
        }
        let columns: Vec<usize> = (0..properties.len())
            .filter(|&i| properties[i].needs_fallback)
            .collect();
        if !all_rows && columns.is_empty() {
            return Ok(None);
        }
        if !columns.is_empty() {
            let schemas = root.get("properties").and_then(Value::as_object);
            let fallback_properties: Map<String, Value> = columns
                .iter()
                .filter_map(|&i| {
                    let name = &properties[i].name;
                    schemas
                        .and_then(|s| s.get(name))
                        .map(|s| (name.clone(), s.clone()))
                })
                .collect();
            residual.insert("properties".into(), Value::Object(fallback_properties));
        }
        let residual = Value::Object(residual);
        let mentioned = mentioned_properties(&residual, properties);
        let validator = reference_validator(&residual)?;
        Ok(Some(Self {
            validator,
            all_rows,
            columns,
            mentioned,
        }))
    }
}

/// The properties a residual schema can see, or `None` when a keyword makes every property
/// relevant (so the whole record must be given to it).
fn mentioned_properties(residual: &Value, properties: &[PropertyPlan]) -> Option<Vec<usize>> {
    fn walk(value: &Value, names: &mut BTreeSet<String>) -> bool {
        match value {
            Value::Object(map) => {
                for (keyword, child) in map {
                    if WHOLE_OBJECT_KEYWORDS.contains(&keyword.as_str()) {
                        return false;
                    }
                    match keyword.as_str() {
                        "properties" | "dependentSchemas" => {
                            if let Some(props) = child.as_object() {
                                names.extend(props.keys().cloned());
                            }
                        }
                        "required" => {
                            if let Some(list) = child.as_array() {
                                names.extend(
                                    list.iter().filter_map(Value::as_str).map(String::from),
                                );
                            }
                        }
                        "dependentRequired" => {
                            if let Some(deps) = child.as_object() {
                                names.extend(deps.keys().cloned());
                                for list in deps.values().filter_map(Value::as_array) {
                                    names.extend(
                                        list.iter().filter_map(Value::as_str).map(String::from),
                                    );
                                }
                            }
                        }
                        _ => {}
                    }
                    if !walk(child, names) {
                        return false;
                    }
                }
                true
            }
            Value::Array(items) => items.iter().all(|item| walk(item, names)),
            _ => true,
        }
    }
    let mut names = BTreeSet::new();
    if !walk(residual, &mut names) {
        return None;
    }
    Some(
        properties
            .iter()
            .enumerate()
            .filter(|(_, p)| names.contains(&p.name))
            .map(|(i, _)| i)
            .collect(),
    )
}

/// A subschema of `if`, `then` or `else` that the engine evaluates itself: `required`, and
/// `properties` whose keywords it vectorizes (plus `type`).
#[derive(Debug, Clone)]
pub struct Condition {
    /// Properties that must be present.
    pub required: Vec<usize>,
    /// Per property: the allowed JSON types (if `type` is given) and the checks.
    pub properties: Vec<(usize, Option<Vec<String>>, Vec<Check>)>,
}

/// A schema-level `if`/`then`/`else`.
#[derive(Debug, Clone)]
pub struct Conditional {
    /// The condition.
    pub condition: Condition,
    /// Applied to records that meet the condition.
    pub then: Option<Condition>,
    /// Applied to records that do not.
    pub otherwise: Option<Condition>,
}

impl Conditional {
    /// The root's `if`/`then`/`else`, when every part is simple enough to vectorize.
    fn compile(root: &Map<String, Value>, properties: &[PropertyPlan]) -> Option<Self> {
        let condition = Condition::compile(root.get("if")?, properties)?;
        let branch = |key: &str| match root.get(key) {
            None => Some(None),
            Some(schema) => Condition::compile(schema, properties).map(Some),
        };
        Some(Self {
            condition,
            then: branch("then")?,
            otherwise: branch("else")?,
        })
    }
}

impl Condition {
    fn compile(schema: &Value, properties: &[PropertyPlan]) -> Option<Self> {
        let object = schema.as_object()?;
        if object
            .keys()
            .any(|k| !(k == "properties" || k == "required" || is_annotation(k)))
        {
            return None;
        }
        let index_of = |name: &str| properties.iter().position(|p| p.name == name);
        let required = match object.get("required") {
            None => Vec::new(),
            Some(list) => list
                .as_array()?
                .iter()
                .map(|n| n.as_str().and_then(index_of))
                .collect::<Option<Vec<_>>>()?,
        };
        let mut compiled = Vec::new();
        for (name, sub) in object
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let index = index_of(name)?;
            let sub = sub.as_object()?;
            let mut types = None;
            let mut checks = Vec::new();
            for (keyword, value) in sub {
                if is_annotation(keyword) {
                    continue;
                }
                if keyword == "type" {
                    types = Some(match value {
                        Value::String(t) => vec![t.clone()],
                        Value::Array(ts) => ts
                            .iter()
                            .map(|t| t.as_str().map(String::from))
                            .collect::<Option<Vec<_>>>()?,
                        _ => return None,
                    });
                    continue;
                }
                if !PROPERTY_VECTORIZED.contains(&keyword.as_str())
                    || keyword == "multipleOf"
                    || keyword == "format"
                {
                    return None;
                }
                checks.push(compile_check(keyword, value, properties[index].kind).ok()??);
            }
            compiled.push((index, types, checks));
        }
        Some(Self {
            required,
            properties: compiled,
        })
    }
}
