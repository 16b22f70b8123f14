//! Time travel in SQL: `version_of('stats.x', 3)` and `as_of('stats.x', '2026-01-01T00:00:00Z')`
//! read a table as it was at a Delta version or at a moment.
//!
//! DataFusion calls table functions while planning, synchronously, but loading a Delta
//! version is I/O. So the statement is searched for these calls first, the versions they
//! name are loaded, and the functions then only look up what was loaded.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, TableFactor, Value, Visit, Visitor,
};

use crate::dataset_id::{DatasetId, REJECTS_SUFFIX};
use crate::error::CatalogError;
use crate::lake::LakeTable;

const VERSION_OF: &str = "version_of";
const AS_OF: &str = "as_of";

/// Where in a table's history a reference points.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Point {
    /// A Delta version.
    Version(i64),
    /// The newest version committed at or before this moment.
    At(DateTime<Utc>),
}

/// One time-travel call found in a statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `namespace.name`, or `namespace.name__rejects`.
    pub table: String,
    /// The version or moment.
    pub point: Point,
}

impl Reference {
    /// The lake table the reference reads.
    pub fn lake_table(&self) -> Result<LakeTable, CatalogError> {
        Ok(match self.table.strip_suffix(REJECTS_SUFFIX) {
            Some(base) => LakeTable::Rejects(base.parse::<DatasetId>()?),
            None => LakeTable::Data(self.table.parse::<DatasetId>()?),
        })
    }
}

/// The table versions loaded for one statement.
pub type TimeTravelTables = HashMap<Reference, Arc<dyn TableProvider>>;

fn usage(function: &str) -> String {
    match function {
        VERSION_OF => "version_of takes a table name and a version number, both literal: \
                       version_of('stats.kemiskinan', 3)"
            .into(),
        _ => "as_of takes a table name and an RFC 3339 time, both literal: \
              as_of('stats.kemiskinan', '2026-01-01T00:00:00Z')"
            .into(),
    }
}

fn parse_moment(function: &str, text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "'{text}' is not an RFC 3339 time ({e}); {}",
                usage(function)
            )
        })
}

/// The time-travel calls in a statement, in order, each once.
pub fn references(statement: &DfStatement) -> Result<Vec<Reference>, CatalogError> {
    let inner = match statement {
        DfStatement::Statement(inner) => inner,
        DfStatement::Explain(explain) => return references(&explain.statement),
        _ => return Ok(Vec::new()),
    };
    let mut finder = Finder::default();
    if let ControlFlow::Break(message) = inner.visit(&mut finder) {
        return Err(CatalogError::SqlSyntax(message));
    }
    Ok(finder.found)
}

#[derive(Default)]
struct Finder {
    found: Vec<Reference>,
}

impl Visitor for Finder {
    type Break = String;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let function = name.to_string().to_ascii_lowercase();
        if function != VERSION_OF && function != AS_OF {
            return ControlFlow::Continue(());
        }
        match reference(&function, &args.args) {
            Ok(found) => {
                if !self.found.contains(&found) {
                    self.found.push(found);
                }
                ControlFlow::Continue(())
            }
            Err(message) => ControlFlow::Break(message),
        }
    }
}

fn literal(arg: &FunctionArg) -> Option<&Value> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Value(value))) => Some(&value.value),
        _ => None,
    }
}

fn reference(function: &str, args: &[FunctionArg]) -> Result<Reference, String> {
    let [table, point] = args else {
        return Err(usage(function));
    };
    let Some(Value::SingleQuotedString(table)) = literal(table) else {
        return Err(usage(function));
    };
    let point = match (function, literal(point)) {
        (VERSION_OF, Some(Value::Number(n, _))) => {
            Point::Version(n.parse().map_err(|_| usage(function))?)
        }
        (AS_OF, Some(Value::SingleQuotedString(at))) => Point::At(parse_moment(function, at)?),
        _ => return Err(usage(function)),
    };
    Ok(Reference {
        table: table.trim().to_ascii_lowercase(),
        point,
    })
}

/// Registers `version_of` and `as_of` over the versions loaded for this statement.
pub fn register(ctx: &SessionContext, loaded: TimeTravelTables) {
    let loaded = Arc::new(loaded);
    for function in [VERSION_OF, AS_OF] {
        ctx.register_udtf(
            function,
            Arc::new(TimeTravel {
                function,
                loaded: loaded.clone(),
            }),
        );
    }
}

#[derive(Debug)]
struct TimeTravel {
    function: &'static str,
    loaded: Arc<TimeTravelTables>,
}

impl TimeTravel {
    fn reference(&self, exprs: &[Expr]) -> Result<Reference, String> {
        let [Expr::Literal(table, _), Expr::Literal(point, _)] = exprs else {
            return Err(usage(self.function));
        };
        let ScalarValue::Utf8(Some(table)) = table else {
            return Err(usage(self.function));
        };
        let point = match (self.function, point) {
            (VERSION_OF, ScalarValue::Int64(Some(v))) => Point::Version(*v),
            (AS_OF, ScalarValue::Utf8(Some(at))) => Point::At(parse_moment(self.function, at)?),
            _ => return Err(usage(self.function)),
        };
        Ok(Reference {
            table: table.trim().to_ascii_lowercase(),
            point,
        })
    }
}

impl TableFunctionImpl for TimeTravel {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let reference = self
            .reference(args.exprs())
            .map_err(DataFusionError::Plan)?;
        self.loaded.get(&reference).cloned().ok_or_else(|| {
            DataFusionError::Plan(format!(
                "{} of {} was not loaded; {}",
                self.function,
                reference.table,
                usage(self.function)
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_only::check_read_only;

    fn found(sql: &str) -> Result<Vec<Reference>, CatalogError> {
        references(&check_read_only(sql)?)
    }

    #[test]
    fn finds_each_time_travel_call_once() {
        let refs = found(
            "select * from version_of('stats.x', 3) a \
             join as_of('Stats.X', '2026-01-01T07:00:00+07:00') b on true \
             union all select * from version_of('stats.x', 3)",
        )
        .unwrap();
        assert_eq!(
            refs,
            vec![
                Reference {
                    table: "stats.x".into(),
                    point: Point::Version(3)
                },
                Reference {
                    table: "stats.x".into(),
                    point: Point::At("2026-01-01T00:00:00Z".parse().unwrap())
                },
            ]
        );
    }

    #[test]
    fn explains_calls_that_are_not_literal() {
        let error = found("select * from version_of('stats.x', 1 + 1)").unwrap_err();
        assert!(error.to_string().contains("version_of takes"), "{error}");
        let error = found("select * from as_of('stats.x', 'yesterday')").unwrap_err();
        assert!(error.to_string().contains("RFC 3339"), "{error}");
    }
}
