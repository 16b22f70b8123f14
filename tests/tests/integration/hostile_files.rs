//! Hostile files and oversized bodies, sent to the real binary as an attacker with a
//! producer key (or none) would: each gets a 4xx with a reason, and the hub still answers.
//! The hub runs as its own process, so an abort fails these tests instead of the runner.

use std::io::Write;

use crate::harness::{Hub, fixture};

/// A zip archive of `entries`, deflated.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

/// The entries of a zip archive, to edit one and pack them again.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut data).unwrap();
            (file.name().unwrap().to_string(), data)
        })
        .collect()
}

fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    zip_of(&refs)
}

/// An xlsx with a header, one row, and a cell in the sheet's far corner, XFD1048576: a
/// dense reader would ask for 17 billion cells.
fn corner_cells_xlsx() -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "kode").unwrap();
    sheet.write_string(1, 0, "32.14").unwrap();
    sheet.write_string(1_048_575, 16_383, "sudut").unwrap();
    workbook.save_to_buffer().unwrap()
}

/// An xlsx whose shared-string table claims ten trillion strings.
fn shared_strings_claim_xlsx() -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "kode").unwrap();
    sheet.write_string(1, 0, "nilai").unwrap();
    let mut entries = unzip(&workbook.save_to_buffer().unwrap());
    let (_, strings) = entries
        .iter_mut()
        .find(|(name, _)| name == "xl/sharedStrings.xml")
        .expect("shared strings");
    let text = String::from_utf8(strings.clone()).unwrap();
    let start = text.find("uniqueCount=\"").unwrap() + "uniqueCount=\"".len();
    let end = start + text[start..].find('"').unwrap();
    *strings = format!("{}10000000000000{}", &text[..start], &text[end..]).into_bytes();
    rezip(&entries)
}

/// An xlsx of a few megabytes whose shared strings unpack to 680 MB: forty million of them.
fn zip_bomb_xlsx() -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    workbook.add_worksheet().write_string(0, 0, "kode").unwrap();
    let mut entries = unzip(&workbook.save_to_buffer().unwrap());
    entries.retain(|(name, _)| name != "xl/sharedStrings.xml");
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true);
    for (name, data) in &entries {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.start_file("xl/sharedStrings.xml", options).unwrap();
    let count = 40_000_000;
    write!(
        zip,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" count=\"{count}\" uniqueCount=\"{count}\">"
    )
    .unwrap();
    let chunk = "<si><t>x</t></si>".repeat(10_000);
    for _ in 0..count / 10_000 {
        zip.write_all(chunk.as_bytes()).unwrap();
    }
    zip.write_all(b"</sst>").unwrap();
    zip.finish().unwrap();
    out.into_inner()
}

/// The xls fixture with its DIMENSIONS record claiming 4 billion rows of 65,536 columns.
fn lying_dimensions_xls() -> Vec<u8> {
    let mut bytes = std::fs::read(fixture("spreadsheets/kecamatan.xls")).unwrap();
    // BIFF8 DIMENSIONS: type 0x0200, length 14, then rwMic u32, rwMac u32, colMic u16,
    // colMac u16, reserved u16.
    let at = bytes
        .windows(4)
        .position(|w| w == [0x00, 0x02, 0x0e, 0x00])
        .expect("a DIMENSIONS record");
    bytes[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    bytes[at + 14..at + 16].copy_from_slice(&u16::MAX.to_le_bytes());
    bytes
}

/// An ods whose one row repeats a row of 16,384 cells a million times.
fn repeated_rows_ods() -> Vec<u8> {
    let content = r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Data"><table:table-row><table:table-cell office:value-type="string"><text:p>kode</text:p></table:table-cell></table:table-row><table:table-row table:number-rows-repeated="1048575"><table:table-cell table:number-columns-repeated="16384" office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    zip.start_file("content.xml", stored).unwrap();
    zip.write_all(content.as_bytes()).unwrap();
    zip.finish().unwrap();
    out.into_inner()
}

/// A batch of one column, `tahun`, holding `years`.
fn years(years: &[i64]) -> arrow::record_batch::RecordBatch {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
        "tahun",
        DataType::Int64,
        false,
    )]));
    arrow::record_batch::RecordBatch::try_new(
        schema,
        vec![std::sync::Arc::new(Int64Array::from(years.to_vec()))],
    )
    .unwrap()
}

/// An Arrow IPC stream whose record batch claims a body of 512 GiB.
fn lying_arrow_ipc() -> Vec<u8> {
    let batch = years(&[2024]);
    let mut out = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    // The batch's body length (an i64) sits in its flatbuffer metadata, after the schema
    // message: find its bytes there.
    let schema_len = 8 + i32::from_le_bytes(out[4..8].try_into().unwrap()) as usize;
    let meta_len = i32::from_le_bytes(out[schema_len + 4..schema_len + 8].try_into().unwrap());
    let meta = schema_len + 8..schema_len + 8 + meta_len as usize;
    let body = arrow::ipc::root_as_message(&out[meta.clone()])
        .unwrap()
        .bodyLength();
    let at = out[meta.clone()]
        .iter()
        .enumerate()
        .position(|(i, _)| out[meta.start + i..].starts_with(&body.to_le_bytes()))
        .expect("the body length")
        + meta.start;
    out[at..at + 8].copy_from_slice(&(512i64 << 30).to_le_bytes());
    out
}

/// A Parquet file whose footer claims two billion row groups.
fn lying_parquet() -> Vec<u8> {
    let batch = years(&[2022, 2023, 2024]);
    let mut good = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut good, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let footer_len = u32::from_le_bytes(good[good.len() - 8..good.len() - 4].try_into().unwrap());
    let footer_start = good.len() - 8 - footer_len as usize;
    let mut footer = good[footer_start..good.len() - 8].to_vec();
    // num_rows (field 3, i64, zigzag 3 = 6), then row_groups (field 4, a list of one struct):
    // the list's size becomes a varint of 2^31 - 1.
    let at = footer
        .windows(4)
        .position(|w| w == [0x16, 0x06, 0x19, 0x1c])
        .expect("num_rows and the row group list");
    footer.splice(at + 3..at + 4, [0xfc, 0xff, 0xff, 0xff, 0xff, 0x07]);
    let mut lying = good[..footer_start].to_vec();
    lying.extend(&footer);
    lying.extend((footer.len() as u32).to_le_bytes());
    lying.extend(b"PAR1");
    lying
}

/// A JSON array nested a hundred thousand levels deep.
fn deep_json() -> Vec<u8> {
    let mut text = "[".repeat(100_000);
    text.push_str(&"]".repeat(100_000));
    text.into_bytes()
}

async fn upload(hub: &Hub, key: &str, dataset: &str, format: &str, body: Vec<u8>) -> (u16, String) {
    let response = hub
        .http
        .post(format!(
            "{}/api/v1/datasets/{dataset}/ingest?format={format}",
            hub.url
        ))
        .bearer_auth(key)
        .body(body)
        .send()
        .await
        .expect("send the upload");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn assert_alive(hub: &Hub, after: &str) {
    let live = hub
        .http
        .get(format!("{}/health/live", hub.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("the hub stopped answering after {after}: {e}"));
    assert_eq!(live.status(), 200, "after {after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_spreadsheets_are_refused_in_their_own_process_and_the_hub_keeps_serving() {
    let hub = Hub::start_with_env(&[
        ("SIMPUL_DEMO_DATA", "false"),
        ("SIMPUL_INGEST_SPREADSHEET_MEMORY_MIB", "1024"),
        ("SIMPUL_INGEST_SPREADSHEET_CPU_SECS", "20"),
    ]);
    let producer = hub.key("DINKES", "SIMPUS", "producer");

    let cases: [(&str, &str, Vec<u8>); 4] = [
        (
            "a shared-string table claiming 10^13 strings",
            "xlsx",
            shared_strings_claim_xlsx(),
        ),
        (
            "a zip bomb of 40 million shared strings",
            "xlsx",
            zip_bomb_xlsx(),
        ),
        (
            "an xls whose DIMENSIONS claim 4 billion rows",
            "xls",
            lying_dimensions_xls(),
        ),
        (
            "an ods repeating 16,384 cells a million times",
            "ods",
            repeated_rows_ods(),
        ),
    ];
    for (what, format, body) in cases {
        let (status, answer) = upload(&hub, &producer, "dinkes.lembar", format, body).await;
        assert!(
            (400..500).contains(&status),
            "{what}: expected a 4xx, got {status}: {answer}"
        );
        assert!(
            answer.contains("spreadsheet"),
            "{what}: the answer names the problem: {answer}"
        );
        assert_alive(&hub, what).await;
    }

    // A sheet that names its far corner is read by what it holds: one header, one row.
    let (status, answer) =
        upload(&hub, &producer, "dinkes.sudut", "xlsx", corner_cells_xlsx()).await;
    assert_eq!(status, 201, "{answer}");
    let rows = hub.rows("select kode from dinkes.sudut").await;
    assert_eq!(rows, vec![serde_json::json!({"kode": "32.14"})]);

    // And a plain legacy spreadsheet still lands, through the same child process.
    let xls = std::fs::read(fixture("spreadsheets/kecamatan.xls")).unwrap();
    let (status, answer) = upload(&hub, &producer, "dinkes.kecamatan", "xls", xls).await;
    assert_eq!(status, 201, "{answer}");
    let rows = hub
        .rows("select kode_wilayah, nama from dinkes.kecamatan")
        .await;
    assert_eq!(
        rows,
        vec![serde_json::json!({"kode_wilayah": "32.14.01", "nama": "Purwakarta"})]
    );

    // The CLI reads spreadsheets through the same child.
    let file = hub.dir.path().join("klaim.xlsx");
    std::fs::write(&file, shared_strings_claim_xlsx()).unwrap();
    let output = hub.cli(&["ingest", file.to_str().unwrap(), "--dataset", "dinkes.cli"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("spreadsheet"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lying_arrow_parquet_and_deep_json_get_a_reason_on_ingest_and_publish() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let producer = hub.key("DINKES", "SIMPUS", "producer");

    for (what, format, body) in [
        (
            "Arrow IPC claiming a 512 GiB body",
            "arrow",
            lying_arrow_ipc(),
        ),
        (
            "Parquet claiming 2^31 row groups",
            "parquet",
            lying_parquet(),
        ),
        ("JSON nested 100,000 deep", "json", deep_json()),
    ] {
        let (status, answer) = upload(&hub, &producer, "dinkes.data", format, body).await;
        assert!(
            (400..500).contains(&status),
            "{what}: expected a 4xx, got {status}: {answer}"
        );
        let problem: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: a reason is given: {answer}"
        );
        assert_alive(&hub, what).await;
    }

    // The bus reads Arrow IPC and JSON bodies the same way, on a dataset the producer owns.
    let (status, answer) = upload(
        &hub,
        &producer,
        "dinkes.kunjungan",
        "csv",
        b"tahun\n2024\n".to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    for (what, media, body) in [
        (
            "an Arrow IPC publish claiming a 512 GiB body",
            "application/vnd.apache.arrow.stream",
            lying_arrow_ipc(),
        ),
        (
            "a JSON publish nested 100,000 deep",
            "application/json",
            deep_json(),
        ),
    ] {
        let response = hub
            .http
            .post(format!(
                "{}/api/v1/bus/datasets/dinkes.kunjungan/records",
                hub.url
            ))
            .bearer_auth(&producer)
            .header("content-type", media)
            .header("idempotency-key", what)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer = response.text().await.unwrap();
        assert!(
            (400..500).contains(&status),
            "{what}: expected a 4xx, got {status}: {answer}"
        );
        assert_alive(&hub, what).await;
    }

    // Evidence attachments are kept as bytes, never parsed; a file that is not the type it
    // claims is refused by its first bytes, however it is dressed.
    let case = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/complaints",
            &serde_json::json!({"kind": "complaint", "channel": "web", "description": "Jalan rusak"}),
        )
        .await;
    assert_eq!(case.status(), 201);
    let case: serde_json::Value = case.json().await.unwrap();
    let path = format!(
        "{}/api/v1/complaints/{}/attachments",
        hub.url,
        case["id"].as_str().unwrap()
    );
    for (what, media, body) in [
        (
            "a Parquet file sent as a PDF",
            "application/pdf",
            lying_parquet(),
        ),
        (
            "an Arrow stream sent as a PNG",
            "image/png",
            lying_arrow_ipc(),
        ),
        (
            "a spreadsheet zip bomb sent as a JPEG",
            "image/jpeg",
            shared_strings_claim_xlsx(),
        ),
        (
            "a spreadsheet",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            corner_cells_xlsx(),
        ),
    ] {
        let response = hub
            .http
            .post(&path)
            .bearer_auth(&hub.admin_key)
            .header("content-type", media)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer = response.text().await.unwrap();
        assert!(
            (400..500).contains(&status),
            "{what}: expected a 4xx, got {status}: {answer}"
        );
        assert_alive(&hub, what).await;
    }
}

/// Sends a POST that declares `length` bytes over a raw connection, writing as much of the
/// body as the server takes, and returns the status line it answers with.
async fn post_declaring(hub: &Hub, path: &str, media: &str, length: usize) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let address = hub.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {media}\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    // The server may answer and close before the body is through; a failed write ends it.
    while sent < length {
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut reader = tokio::io::BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_routes_refuse_large_bodies_before_reading_them() {
    let hub = Hub::start_with_env(&[
        ("SIMPUL_DEMO_DATA", "false"),
        ("SIMPUL_SEMAR_SMS_SECRET", "rahasia-gateway"),
        ("SIMPUL_COMPLAINTS_SMS_SECRET", "rahasia-gateway"),
    ]);
    for (path, media) in [
        (
            "/open311/v2/requests.json",
            "application/x-www-form-urlencoded",
        ),
        ("/api/v1/semar/sms/inbound", "application/json"),
        ("/api/v1/complaints/sms/inbound", "application/json"),
        ("/login", "application/x-www-form-urlencoded"),
        ("/logout", "application/x-www-form-urlencoded"),
    ] {
        let status = post_declaring(&hub, path, media, 4 << 20).await;
        assert!(status.starts_with("HTTP/1.1 413"), "{path}: {status}");
        assert_alive(&hub, path).await;
    }
}
