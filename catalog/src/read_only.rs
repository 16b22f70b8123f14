//! The read-only rule of SQL access: exactly one statement that reads.

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Statement as SqlStatement, visit_statements};

use crate::error::CatalogError;

/// Refuses SQL that is not exactly one read-only statement, naming what was found, and
/// returns the statement.
pub fn check_read_only(sql: &str) -> Result<DfStatement, CatalogError> {
    let mut statements =
        DFParser::parse_sql(sql).map_err(|e| CatalogError::SqlSyntax(e.strip_backtrace()))?;
    match statements.len() {
        0 => Err(CatalogError::SqlSyntax("the query is empty".into())),
        1 => {
            let statement = statements
                .pop_front()
                .ok_or_else(|| CatalogError::SqlSyntax("the query is empty".into()))?;
            check_statement(&statement)?;
            Ok(statement)
        }
        n => Err(CatalogError::SqlSyntax(format!(
            "send one statement at a time; found {n}"
        ))),
    }
}

/// Refuses a parsed statement that would change something.
pub fn check_read_only_statement(statement: &SqlStatement) -> Result<(), CatalogError> {
    match statement {
        SqlStatement::Explain { statement, .. } => check_read_only_statement(statement),
        other => check_statement(&DfStatement::Statement(Box::new(other.clone()))),
    }
}

fn check_statement(statement: &DfStatement) -> Result<(), CatalogError> {
    let refused = match statement {
        // Every statement inside counts, not only the outer one: `WITH t AS (…) INSERT …` is
        // a query whose body is an INSERT, and a CTE may hold one too.
        DfStatement::Statement(inner) => match visit_statements(inner.as_ref(), |nested| {
            if reads(nested) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(nested.to_string())
            }
        }) {
            ControlFlow::Break(writer) => Some(writer),
            ControlFlow::Continue(()) => None,
        },
        DfStatement::Explain(explain) => return check_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) | DfStatement::CopyTo(_) | DfStatement::Reset(_) => {
            Some(statement.to_string())
        }
    };
    match refused {
        None => Ok(()),
        Some(writer) => Err(CatalogError::ReadOnly(format!(
            "{} is not allowed: SQL access is read-only (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE). \
             Data enters the hub through ingest, pipelines or the bus.",
            statement_kind(&writer)
        ))),
    }
}

/// Whether a statement only reads.
fn reads(statement: &SqlStatement) -> bool {
    matches!(
        statement,
        SqlStatement::Query(_)
            | SqlStatement::ShowTables { .. }
            | SqlStatement::ShowColumns { .. }
            | SqlStatement::ShowVariable { .. }
            | SqlStatement::ShowFunctions { .. }
            | SqlStatement::ExplainTable { .. }
            | SqlStatement::Explain { .. }
    )
}

/// The statement's leading keywords (`CREATE TABLE`, `INSERT INTO`, `SET`), for messages.
fn statement_kind(sql: &str) -> String {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let kind = match words.first().map(String::as_str) {
        Some("CREATE" | "DROP" | "ALTER" | "INSERT" | "DELETE") => {
            words.iter().take(3).cloned().collect::<Vec<_>>()
        }
        _ => words.iter().take(1).cloned().collect(),
    };
    let kind = kind
        .into_iter()
        .filter(|w| {
            !matches!(
                w.as_str(),
                "OR" | "REPLACE" | "IF" | "TEMPORARY" | "TEMP" | "UNBOUNDED"
            )
        })
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    if kind.is_empty() {
        "This statement".into()
    } else {
        kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> String {
        match check_read_only(sql) {
            Err(CatalogError::ReadOnly(message)) => message,
            other => panic!("{sql}: expected a read-only refusal, got {other:?}"),
        }
    }

    #[test]
    fn allows_queries_explain_show_and_describe() {
        for sql in [
            "select 1",
            "with t as (select 1 as x) select * from t",
            "explain select 1",
            "show tables",
            "describe stats.x",
        ] {
            assert!(check_read_only(sql).is_ok(), "{sql}");
        }
    }

    #[test]
    fn refuses_every_kind_of_write_and_names_it() {
        assert!(refused("create table t (a int)").starts_with("CREATE TABLE"));
        assert!(refused("insert into stats.x values (1)").starts_with("INSERT INTO"));
        assert!(refused("update stats.x set a = 1").starts_with("UPDATE"));
        assert!(refused("delete from stats.x").starts_with("DELETE FROM"));
        assert!(refused("drop table stats.x").starts_with("DROP TABLE"));
        assert!(refused("copy (select 1) to '/tmp/x.csv'").starts_with("COPY"));
        assert!(
            refused("create external table t stored as csv location '/etc/passwd'")
                .starts_with("CREATE EXTERNAL")
        );
        assert!(refused("set datafusion.execution.batch_size = 1").starts_with("SET"));
        assert!(
            refused("explain analyze insert into stats.x values (1)").starts_with("INSERT INTO")
        );
        // A write inside a query: the body of a WITH, or one of its CTEs.
        assert!(
            refused("with t as (select 1) insert into stats.x values (1)")
                .starts_with("INSERT INTO")
        );
        assert!(
            refused("with t as (delete from stats.x returning *) select * from t")
                .starts_with("DELETE FROM")
        );
    }

    #[test]
    fn parsed_explain_is_checked_by_what_it_explains() {
        let parse = |sql: &str| {
            datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
                sql,
            )
            .unwrap()
            .remove(0)
        };
        assert!(check_read_only_statement(&parse("explain select 1")).is_ok());
        assert!(matches!(
            check_read_only_statement(&parse("explain analyze delete from stats.x")),
            Err(CatalogError::ReadOnly(_))
        ));
    }

    #[test]
    fn refuses_several_statements_and_bad_syntax() {
        assert!(matches!(
            check_read_only("select 1; drop table x"),
            Err(CatalogError::SqlSyntax(_))
        ));
        assert!(matches!(
            check_read_only("selec 1"),
            Err(CatalogError::SqlSyntax(_))
        ));
        assert!(matches!(
            check_read_only("  "),
            Err(CatalogError::SqlSyntax(_))
        ));
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        /// Writes in many disguises: any casing, comments and line breaks between words,
        /// behind a CTE, under EXPLAIN (ANALYZE), with a trailing semicolon.
        fn disguised_write() -> impl Strategy<Value = String> {
            let writes = prop::sample::select(vec![
                "insert into stats.x values (1)",
                "insert into stats.x select * from stats.y",
                "update stats.x set a = 1 where b = 2",
                "delete from stats.x where a = 1",
                "create table t as select 1",
                "create view v as select 1",
                "create external table t stored as csv location '/etc/passwd'",
                "drop table stats.x",
                "copy (select 1) to '/tmp/x.csv'",
                "copy stats.x to '/tmp/x.parquet'",
                "set datafusion.execution.batch_size = 1",
                "truncate stats.x",
                "alter table stats.x add column b int",
                "create schema s",
                "create function f() returns int return 1",
            ]);
            let separator =
                prop::sample::select(vec![" ", "  ", "\n", "\t", " /* c */ ", " -- c\n"]);
            (
                writes,
                prop::collection::vec(separator, 16),
                any::<u64>(),
                0..4u8,
                any::<bool>(),
            )
                .prop_map(|(write, separators, casing, wrap, semicolon)| {
                    let mut out = String::new();
                    for (i, word) in write.split(' ').enumerate() {
                        if i > 0 {
                            out.push_str(separators[i % separators.len()]);
                        }
                        for (j, c) in word.chars().enumerate() {
                            if casing >> (j % 64) & 1 == 1 {
                                out.extend(c.to_uppercase());
                            } else {
                                out.push(c);
                            }
                        }
                    }
                    let mut sql = match wrap {
                        1 => format!("explain {out}"),
                        2 => format!("explain analyze {out}"),
                        3 => format!("with t as (select 1) {out}"),
                        _ => out,
                    };
                    if semicolon {
                        sql.push(';');
                    }
                    sql
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn no_disguise_gets_a_write_past_the_check(sql in disguised_write()) {
                prop_assert!(check_read_only(&sql).is_err(), "{sql}");
            }

            #[test]
            fn any_text_is_answered_without_a_panic(sql in ".{0,200}") {
                let _ = check_read_only(&sql);
            }

            #[test]
            fn deep_nesting_is_an_error_not_a_stack_overflow(depth in 1usize..5000) {
                let sql = format!("select {}1{}", "(".repeat(depth), ")".repeat(depth));
                let _ = check_read_only(&sql);
            }
        }
    }
}
