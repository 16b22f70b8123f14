//! The read-only rule of SQL access: exactly one statement that reads.

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

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
    let allowed = match statement {
        DfStatement::Statement(inner) => matches!(
            inner.as_ref(),
            SqlStatement::Query(_)
                | SqlStatement::ShowTables { .. }
                | SqlStatement::ShowColumns { .. }
                | SqlStatement::ShowVariable { .. }
                | SqlStatement::ShowFunctions { .. }
                | SqlStatement::ExplainTable { .. }
        ),
        DfStatement::Explain(explain) => return check_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) | DfStatement::CopyTo(_) | DfStatement::Reset(_) => {
            false
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(CatalogError::ReadOnly(format!(
            "{} is not allowed: SQL access is read-only (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE). \
             Data enters the hub through ingest, pipelines or the bus.",
            statement_kind(&statement.to_string())
        )))
    }
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
}
