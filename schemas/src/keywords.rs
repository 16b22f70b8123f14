//! Simpul's own schema keywords, registered with `jsonschema` so that the reference validator
//! knows them too.

use jsonschema::paths::Location;
use jsonschema::{Keyword, ValidationError};
use serde_json::{Map, Value};

/// The message for a record whose coordinates are both zero.
pub const MISSING_LOCATION: &str = "coordinates 0,0 mean 'no location', not a place; leave them empty when the location is unknown";

/// `x-koordinat: {"lat": "<property>", "lng": "<property>"}`: a record whose latitude and
/// longitude are both 0 has no location.
struct Coordinates {
    lat: String,
    lng: String,
}

impl Coordinates {
    fn at_null_island(&self, instance: &Value) -> bool {
        let zero = |key: &str| instance.get(key).and_then(Value::as_f64) == Some(0.0);
        zero(&self.lat) && zero(&self.lng)
    }
}

impl<'i> Keyword<'i> for Coordinates {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.at_null_island(instance) {
            Err(ValidationError::custom(MISSING_LOCATION))
        } else {
            Ok(())
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        !self.at_null_island(instance)
    }
}

/// Builds the `x-koordinat` keyword from its value in a schema.
pub(crate) fn coordinates_factory<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _path: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    let name = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    match (name("lat"), name("lng")) {
        (Some(lat), Some(lng)) => Ok(Box::new(Coordinates { lat, lng })),
        _ => Err(ValidationError::custom(
            "x-koordinat must name its properties: {\"lat\": \"lat\", \"lng\": \"lng\"}",
        )),
    }
}
