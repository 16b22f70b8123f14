//! A SQL load client for the benchmarks: latency percentiles at a concurrency, and the
//! throughput of one streamed result, over HTTP or the PostgreSQL wire protocol.
//!
//! ```text
//! sql_client latency pg|http URL KEY CLIENTS SECONDS SQL   ($1 = a random id up to $ID_MAX)
//! sql_client stream pg|http-arrow|flight URL KEY SQL
//! ```
//! For `pg`, URL is `postgresql://user:key@host:port/simpul` and KEY is ignored; for
//! `flight`, URL is `http://host:port` (the `flight: grpc://…` line, as http).

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rand::Rng;

fn arg(args: &[String], i: usize, what: &str) -> String {
    args.get(i)
        .cloned()
        .unwrap_or_else(|| panic!("missing argument {i}: {what}"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match arg(&args, 1, "latency or stream").as_str() {
        "latency" => {
            let clients: usize = arg(&args, 5, "clients").parse().expect("clients");
            let seconds: u64 = arg(&args, 6, "seconds").parse().expect("seconds");
            latency(
                &arg(&args, 2, "protocol"),
                &arg(&args, 3, "url"),
                &arg(&args, 4, "key"),
                clients,
                Duration::from_secs(seconds),
                &arg(&args, 7, "sql"),
            )
            .await;
        }
        "stream" => {
            stream(
                &arg(&args, 2, "protocol"),
                &arg(&args, 3, "url"),
                &arg(&args, 4, "key"),
                &arg(&args, 5, "sql"),
            )
            .await
        }
        other => panic!("unknown mode {other}"),
    }
}

fn id_max() -> i64 {
    std::env::var("ID_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

async fn latency(protocol: &str, url: &str, key: &str, clients: usize, run: Duration, sql: &str) {
    let until = Instant::now() + run;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (protocol, url, key, sql) = (
            protocol.to_string(),
            url.to_string(),
            key.to_string(),
            sql.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            match protocol.as_str() {
                "pg" => {
                    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                        .await
                        .expect("connect");
                    tokio::spawn(connection);
                    let takes_id = sql.contains("$1");
                    let statement = client.prepare(&sql).await.expect("prepare");
                    while Instant::now() < until {
                        let id: i64 = rand::rng().random_range(1..=id_max());
                        let started = Instant::now();
                        let rows = if takes_id {
                            client.query(&statement, &[&id]).await
                        } else {
                            client.query(&statement, &[]).await
                        };
                        rows.expect("query");
                        samples.push(started.elapsed());
                    }
                }
                _ => {
                    let http = reqwest::Client::new();
                    while Instant::now() < until {
                        let id: i64 = rand::rng().random_range(1..=id_max());
                        let body = serde_json::json!({ "sql": sql.replace("$1", &id.to_string()) });
                        let started = Instant::now();
                        let response = http
                            .post(format!("{url}/api/v1/sql"))
                            .bearer_auth(&key)
                            .json(&body)
                            .send()
                            .await
                            .expect("send");
                        assert!(response.status().is_success(), "{}", response.status());
                        response.bytes().await.expect("body");
                        samples.push(started.elapsed());
                    }
                }
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client"));
    }
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    println!(
        "{protocol} clients={clients} queries={} qps={:.0} p50_ms={:.2} p99_ms={:.2}",
        all.len(),
        all.len() as f64 / run.as_secs_f64(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );
}

/// The bytes of an array's buffers (not their capacity), about its size on the wire.
fn buffer_bytes(data: &arrow::array::ArrayData) -> u64 {
    let own: usize = data.buffers().iter().map(|b| b.len()).sum::<usize>()
        + data.nulls().map_or(0, |n| n.buffer().len());
    own as u64 + data.child_data().iter().map(buffer_bytes).sum::<u64>()
}

/// The size of a value as it came over the wire, whatever its type.
struct WireBytes(u64);

impl<'a> tokio_postgres::types::FromSql<'a> for WireBytes {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(raw.len() as u64))
    }

    fn from_sql_null(
        _: &tokio_postgres::types::Type,
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(0))
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}

async fn stream(protocol: &str, url: &str, key: &str, sql: &str) {
    let started = Instant::now();
    let (rows, bytes) = match protocol {
        "pg" => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
            let stream = client.query_raw(sql, params).await.expect("query");
            futures::pin_mut!(stream);
            let (mut rows, mut bytes) = (0u64, 0u64);
            while let Some(row) = stream.try_next().await.expect("row") {
                rows += 1;
                bytes += (0..row.len())
                    .map(|i| row.get::<_, WireBytes>(i).0)
                    .sum::<u64>();
            }
            (rows, bytes)
        }
        "flight" => {
            let channel = tonic::transport::Endpoint::from_shared(url.to_string())
                .expect("url")
                .connect()
                .await
                .expect("connect");
            let mut client = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
            client.set_token(key.to_string());
            let info = client
                .execute(sql.to_string(), None)
                .await
                .expect("execute");
            let (mut rows, mut bytes) = (0u64, 0u64);
            for endpoint in info.endpoint {
                let ticket = endpoint.ticket.expect("ticket");
                let mut stream = client.do_get(ticket).await.expect("do_get");
                while let Some(batch) = stream.try_next().await.expect("batch") {
                    rows += batch.num_rows() as u64;
                    bytes += batch
                        .columns()
                        .iter()
                        .map(|c| buffer_bytes(&c.to_data()))
                        .sum::<u64>();
                }
            }
            (rows, bytes)
        }
        _ => {
            let response = reqwest::Client::new()
                .post(format!("{url}/api/v1/sql?format=arrow"))
                .bearer_auth(key)
                .json(&serde_json::json!({ "sql": sql }))
                .send()
                .await
                .expect("send");
            assert!(response.status().is_success(), "{}", response.status());
            let body = response.bytes().await.expect("body");
            let reader =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(&body), None)
                    .expect("arrow stream");
            let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
            (rows as u64, body.len() as u64)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{protocol} rows={rows} seconds={seconds:.2} rows_per_s={:.0} mb_per_s={:.0}",
        rows as f64 / seconds,
        bytes as f64 / 1e6 / seconds
    );
}
