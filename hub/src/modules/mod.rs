//! The public modules built on the hub's canonical layer (state store, catalog, validation,
//! audit), each under `/api/v1/<module>`.

pub mod semar;
