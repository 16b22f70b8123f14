//! Arrow Flight SQL through arrow-flight's own client: handshake, prepared statements with
//! parameters, metadata calls, masking and the read-only rule.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::harness::Hub;

async fn client(hub: &Hub) -> FlightSqlServiceClient<Channel> {
    let channel = Endpoint::from_shared(hub.flight_url.clone())
        .unwrap()
        .connect()
        .await
        .expect("connect to Flight SQL");
    FlightSqlServiceClient::new(channel)
}

async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    batches
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b
                .column_by_name(column)
                .unwrap_or_else(|| panic!("no column {column}"))
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("text")
                .clone();
            (0..array.len()).map(move |i| array.value(i).to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prepared_statement_round_trip_with_parameters() {
    let hub = Hub::start();
    let mut client = client(&hub).await;
    client
        .handshake("admin", &hub.admin_key)
        .await
        .expect("handshake");

    let mut statement = client
        .prepare(
            "select kode, nama from ref.wilayah where parent_kode = $1 and lat < $2 order by kode"
                .into(),
            None,
        )
        .await
        .expect("prepare");
    assert_eq!(statement.dataset_schema().unwrap().field(0).name(), "kode");
    assert_eq!(statement.parameter_schema().unwrap().fields().len(), 2);
    let params = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Utf8, false),
            Field::new("$2", DataType::Float64, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["32.14.01"])),
            Arc::new(arrow::array::Float64Array::from(vec![0.0])),
        ],
    )
    .unwrap();
    statement.set_parameters(params).unwrap();
    let info = statement.execute().await.expect("execute");
    let batches = fetch(&mut client, info).await;
    let codes = strings(&batches, "kode");
    assert!(codes.len() > 5, "{codes:?}");
    assert!(
        codes.iter().all(|c| c.starts_with("32.14.01.")),
        "{codes:?}"
    );
    statement.close().await.expect("close");

    let info = client
        .execute("select count(*) as n from ref.wilayah".into(), None)
        .await
        .expect("execute");
    let batches = fetch(&mut client, info).await;
    let n = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 210);

    let refused = client
        .execute("drop table ref.wilayah".into(), None)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("read-only"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalogs_schemas_and_tables_are_listed_for_the_caller() {
    let hub = Hub::start();
    let analyst = hub.key("BAPPEDA", "ANALITIK", "analyst");
    let mut client = client(&hub).await;
    client.set_token(analyst);

    let info = client.get_catalogs().await.expect("catalogs");
    assert_eq!(
        strings(&fetch(&mut client, info).await, "catalog_name"),
        vec!["simpul"]
    );

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .expect("schemas");
    let schemas = strings(&fetch(&mut client, info).await, "db_schema_name");
    assert!(schemas.contains(&"ref".to_string()), "{schemas:?}");
    assert!(
        !schemas.contains(&"simpul".to_string()),
        "operational tables are for admins"
    );

    let info = client
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("ref".into()),
            table_name_filter_pattern: Some("wil%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .expect("tables");
    let batches = fetch(&mut client, info).await;
    assert_eq!(
        strings(&batches, "table_name"),
        vec!["wilayah", "wilayah__rejects"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keys_are_refused_and_personal_data_is_masked() {
    let hub = Hub::start();
    hub.ingest_residents();
    let mut client = client(&hub).await;
    let refused = client.handshake("admin", "simpul_wrong").await.unwrap_err();
    assert!(
        refused.to_string().contains("unknown or has been revoked"),
        "{refused}"
    );
    client.set_token("simpul_wrong".into());
    let refused = client.execute("select 1".into(), None).await.unwrap_err();
    assert!(
        refused.to_string().contains("unknown or has been revoked"),
        "{refused}"
    );

    // A new client: this one would keep sending its rejected token.
    let analyst = hub.key("BAPPEDA", "ANALITIK", "analyst");
    let mut client = self::client(&hub).await;
    client
        .handshake("bappeda-analitik", &analyst)
        .await
        .expect("handshake");
    let info = client
        .execute(
            "select nik from dukcapil.penduduk order by nik".into(),
            None,
        )
        .await
        .unwrap();
    let niks = strings(&fetch(&mut client, info).await, "nik");
    assert_eq!(niks[0], "3214**********01");
}
