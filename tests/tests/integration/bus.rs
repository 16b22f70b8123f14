//! The bus registry: members and subsystems with X-Road identifiers, and keys that belong to
//! registered subsystems.

use serde_json::json;

use crate::harness::Hub;

#[tokio::test(flavor = "multi_thread")]
async fn members_and_subsystems_are_registered_listed_and_audited() {
    let hub = Hub::start();
    let member = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/bus/members",
            &json!({"id": "ID-JABAR/GOV/PURWAKARTA-DINKES", "name": "Dinas Kesehatan"}),
        )
        .await;
    assert_eq!(member.status(), 201);
    let member: serde_json::Value = member.json().await.unwrap();
    assert_eq!(member["id"], "ID-JABAR/GOV/PURWAKARTA-DINKES");
    assert_eq!(member["created_by"], "admin");
    // Identifiers are case-insensitive and kept in upper case.
    let subsystem = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/bus/subsystems",
            &json!({"id": "ID-JABAR/GOV/purwakarta-dinkes/semar", "name": "SEMAR, ambulans"}),
        )
        .await;
    assert_eq!(subsystem.status(), 201);
    let subsystem: serde_json::Value = subsystem.json().await.unwrap();
    assert_eq!(subsystem["id"], "ID-JABAR/GOV/PURWAKARTA-DINKES/SEMAR");

    for (path, id) in [
        ("/api/v1/bus/members", "ID-JABAR/GOV/PURWAKARTA-DINKES"),
        (
            "/api/v1/bus/subsystems",
            "ID-JABAR/GOV/PURWAKARTA-DINKES/SEMAR",
        ),
    ] {
        let again = hub
            .post_json(&hub.admin_key, path, &json!({"id": id, "name": "lagi"}))
            .await;
        assert_eq!(again.status(), 409, "{id} twice");
        let problem: serde_json::Value = again.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("already registered"),
            "{problem}"
        );
    }

    // Any registered client discovers the members; only admins register.
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    let listed = hub.get(&analyst, "/api/v1/bus/members").await;
    assert_eq!(listed.status(), 200);
    let listed: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(listed["instance"], "ID-JABAR");
    let ids: Vec<String> = listed["members"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            std::iter::once(m["id"].as_str().unwrap().to_string()).chain(
                m["subsystems"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["id"].as_str().unwrap().to_string()),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            "ID-JABAR/GOV/BAPPEDA",
            "ID-JABAR/GOV/BAPPEDA/ANALISIS",
            "ID-JABAR/GOV/PURWAKARTA-DINKES",
            "ID-JABAR/GOV/PURWAKARTA-DINKES/SEMAR",
            "ID-JABAR/GOV/SIMPUL",
            "ID-JABAR/GOV/SIMPUL/ADMIN",
        ]
    );
    let refused = hub
        .post_json(
            &analyst,
            "/api/v1/bus/members",
            &json!({"id": "ID-JABAR/GOV/DISKOMINFO", "name": "Diskominfo"}),
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        hub.get("simpul_not-a-key", "/api/v1/bus/members")
            .await
            .status(),
        401
    );

    let audited = hub
        .rows(
            "select action, target, actor from simpul.audit where action like 'bus.%' order by at",
        )
        .await;
    let audited: Vec<(String, String)> = audited
        .iter()
        .filter(|r| r["actor"] == "admin")
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        audited,
        [
            (
                "bus.member.add".to_string(),
                "ID-JABAR/GOV/PURWAKARTA-DINKES".to_string()
            ),
            (
                "bus.subsystem.add".to_string(),
                "ID-JABAR/GOV/PURWAKARTA-DINKES/SEMAR".to_string()
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_identifiers_and_unknown_members_are_refused_with_the_reason() {
    let hub = Hub::start();
    for (path, id, status, says) in [
        (
            "/api/v1/bus/subsystems",
            "ID-JABAR/GOV/DINKES/SE;MAR",
            400,
            "subsystem 'SE;MAR' is not valid",
        ),
        (
            "/api/v1/bus/members",
            "ID-JABAR/GOV/DIN KES",
            400,
            "member 'DIN KES' is not valid",
        ),
        (
            "/api/v1/bus/members",
            "ID-JABAR/GOV/DINKES/SEMAR",
            400,
            "INSTANCE/CLASS/MEMBER",
        ),
        (
            "/api/v1/bus/members",
            "ID-JATENG/GOV/DINKES",
            400,
            "federation peers",
        ),
        (
            "/api/v1/bus/subsystems",
            "ID-JABAR/GOV/TIDAK-ADA/SEMAR",
            404,
            "member TIDAK-ADA is not registered",
        ),
    ] {
        let response = hub
            .post_json(&hub.admin_key, path, &json!({"id": id, "name": "x"}))
            .await;
        assert_eq!(response.status(), status, "{id}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{id}: {problem}"
        );
    }
    let unnamed = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/bus/members",
            &json!({"id": "ID-JABAR/GOV/DINKES", "name": "  "}),
        )
        .await;
    assert_eq!(unnamed.status(), 400);

    // A key belongs to a registered subsystem, over HTTP and on the command line.
    let key = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/keys",
            &json!({"member": "TIDAK-ADA", "subsystem": "SEMAR", "role": "analyst"}),
        )
        .await;
    assert_eq!(key.status(), 404);
    let problem: serde_json::Value = key.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("member TIDAK-ADA is not registered"),
        "{problem}"
    );
    hub.cli_ok(&[
        "bus",
        "members",
        "add",
        "ID-JABAR/GOV/DINKES",
        "--name",
        "Dinas Kesehatan",
    ]);
    let output = hub.cli(&[
        "keys",
        "create",
        "--member",
        "DINKES",
        "--subsystem",
        "SEMAR",
        "--role",
        "producer",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("subsystem DINKES/SEMAR is not registered"),
        "{stderr}"
    );
    hub.cli_ok(&[
        "bus",
        "subsystems",
        "add",
        "ID-JABAR/GOV/DINKES/SEMAR",
        "--name",
        "SEMAR",
    ]);
    let issued = hub.cli_ok(&[
        "keys",
        "create",
        "--member",
        "dinkes",
        "--subsystem",
        "semar",
        "--role",
        "producer",
    ]);
    assert!(issued.trim().starts_with("simpul_"), "{issued}");
    let listed = hub.cli_ok(&["bus", "members", "list"]);
    assert!(listed.contains("ID-JABAR/GOV/DINKES/SEMAR"), "{listed}");
}

/// `select nik from dukcapil.penduduk order by nik` over HTTP as `key`: the NIKs, or the
/// problem's detail when the query is refused.
async fn niks(hub: &Hub, key: &str) -> Result<Vec<String>, String> {
    let response = hub
        .sql(
            key,
            "select nik from dukcapil.penduduk order by nik",
            "application/json",
        )
        .await;
    let ok = response.status() == 200;
    let body: serde_json::Value = response.json().await.unwrap();
    if !ok {
        return Err(body["detail"].as_str().unwrap_or_default().to_string());
    }
    Ok(body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["nik"].as_str().unwrap().to_string())
        .collect())
}

/// The audit records whose action is `like`, oldest first, as (action, actor).
async fn audit(hub: &Hub, like: &str) -> Vec<(String, String)> {
    hub.rows(&format!(
        "select action, actor from simpul.audit where action like '{like}' order by at"
    ))
    .await
    .iter()
    .map(|r| {
        (
            r["action"].as_str().unwrap().to_string(),
            r["actor"].as_str().unwrap().to_string(),
        )
    })
    .collect()
}

/// The ids of `/api/v1/bus/datasets?allowed=true` as `key`.
async fn allowed(hub: &Hub, key: &str) -> Vec<String> {
    let listed: serde_json::Value = hub
        .get(key, "/api/v1/bus/datasets?allowed=true")
        .await
        .json()
        .await
        .unwrap();
    listed["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn restricted_datasets_exist_only_for_grantees_and_pii_shows_only_with_the_pii_grant() {
    let hub = Hub::start();
    hub.ingest_residents();
    let patched = hub
        .http
        .patch(format!("{}/api/v1/datasets/dukcapil.penduduk", hub.url))
        .bearer_auth(&hub.admin_key)
        .json(&json!({"owner": "DISDUKCAPIL", "classification": "restricted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let owner = hub.key("DISDUKCAPIL", "SIAK", "producer");
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    let other = hub.key("DINKES", "SIMPUS", "analyst");

    // No grant: the table does not exist for the analyst, over HTTP, records and pgwire.
    let refused = niks(&hub, &analyst).await.unwrap_err();
    assert!(refused.contains("dukcapil.penduduk"), "{refused}");
    assert_eq!(
        hub.get(&analyst, "/api/v1/datasets/dukcapil.penduduk/records")
            .await
            .status(),
        404
    );
    let address = hub.pg_url.trim_start_matches("postgresql://");
    let (pg, connection) = tokio_postgres::connect(
        &format!("postgresql://bappeda-analisis:{analyst}@{address}/simpul"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let error = pg
        .query("select nik from dukcapil.penduduk", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code().unwrap().code(), "42P01", "{error}");
    assert!(
        !allowed(&hub, &analyst)
            .await
            .contains(&"dukcapil.penduduk".to_string())
    );
    assert!(
        allowed(&hub, &analyst)
            .await
            .contains(&"ref.wilayah".to_string()),
        "internal data is readable by any member"
    );

    // Only the owner (or an admin) grants; the grantee must be registered and well formed.
    let grant = |key: String, body: serde_json::Value| {
        let hub = &hub;
        async move { hub.post_json(&key, "/api/v1/bus/grants", &body).await }
    };
    let by_other = grant(
        other.clone(),
        json!({"dataset": "dukcapil.penduduk", "grantee": "ID-JABAR/GOV/DINKES/SIMPUS", "rights": ["read"]}),
    )
    .await;
    assert_eq!(by_other.status(), 403);
    for (grantee, status) in [
        ("ID-JABAR/GOV/BAPPEDA/ANA LISIS", 400),
        ("ID-JABAR/GOV/BAPPEDA/TIDAK-ADA", 404),
        ("group:TIDAK-ADA", 404),
    ] {
        let response = grant(
            owner.clone(),
            json!({"dataset": "dukcapil.penduduk", "grantee": grantee, "rights": ["read"]}),
        )
        .await;
        assert_eq!(response.status(), status, "{grantee}");
    }
    let expired = grant(
        owner.clone(),
        json!({"dataset": "dukcapil.penduduk", "grantee": "ID-JABAR/GOV/BAPPEDA/ANALISIS", "rights": ["read"], "expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(expired.status(), 400, "a grant that ended before it starts");

    let read = grant(
        owner.clone(),
        json!({"dataset": "dukcapil.penduduk", "grantee": "ID-JABAR/GOV/BAPPEDA/ANALISIS", "rights": ["read"]}),
    )
    .await;
    assert_eq!(read.status(), 201);
    let read: serde_json::Value = read.json().await.unwrap();
    let read_id = read["grants"][0]["id"].as_str().unwrap().to_string();

    // With read: rows, personal columns masked, on both protocols.
    let masked = niks(&hub, &analyst).await.unwrap();
    assert_eq!(masked.len(), 3);
    assert!(
        masked.iter().all(|n| n.contains("**********")),
        "{masked:?}"
    );
    let row = pg
        .query_one(
            "select nik from dukcapil.penduduk order by nik limit 1",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, String>(0).contains("**********"));
    assert!(
        allowed(&hub, &analyst)
            .await
            .contains(&"dukcapil.penduduk".to_string())
    );
    assert!(
        niks(&hub, &other).await.is_err(),
        "another subsystem has no grant"
    );

    // pii through a group: unmasked for its members.
    hub.post_json(
        &hub.admin_key,
        "/api/v1/bus/groups",
        &json!({"code": "ANALIS", "description": "analis Bappeda"}),
    )
    .await
    .error_for_status()
    .unwrap();
    let joined = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/bus/groups/ANALIS/members",
            &json!({"id": "ID-JABAR/GOV/BAPPEDA/ANALISIS"}),
        )
        .await;
    assert_eq!(joined.status(), 204);
    let pii = grant(
        owner.clone(),
        json!({"dataset": "dukcapil.penduduk", "grantee": "group:ANALIS", "rights": ["pii"]}),
    )
    .await;
    assert_eq!(pii.status(), 201);
    let unmasked = niks(&hub, &analyst).await.unwrap();
    assert_eq!(unmasked[0], "3214011505900001");
    let row = pg
        .query_one(
            "select nik from dukcapil.penduduk order by nik limit 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "3214011505900001");

    // Revoking read makes the table vanish again at once.
    let revoked = hub
        .http
        .delete(format!("{}/api/v1/bus/grants/{read_id}", hub.url))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert!(niks(&hub, &analyst).await.is_err());
    let listed: serde_json::Value = hub
        .get(&analyst, "/api/v1/bus/grants")
        .await
        .json()
        .await
        .unwrap();
    let states: Vec<(String, bool)> = listed["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["right"].as_str().unwrap().to_string(),
                g["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("read".to_string(), false)],
        "the analyst sees the grants to its own subsystem"
    );

    let audited = audit(&hub, "bus.grant.%").await;
    assert_eq!(
        audited,
        ["bus.grant.add", "bus.grant.add", "bus.grant.revoke"]
            .map(|a| (a.to_string(), "disdukcapil-siak".to_string()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_request_is_approved_by_the_owner_into_grants_or_rejected_with_a_note() {
    let hub = Hub::start();
    hub.ingest_residents();
    hub.http
        .patch(format!("{}/api/v1/datasets/dukcapil.penduduk", hub.url))
        .bearer_auth(&hub.admin_key)
        .json(&json!({"owner": "DISDUKCAPIL", "classification": "restricted"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let owner = hub.key("DISDUKCAPIL", "SIAK", "producer");
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");

    for (body, status) in [
        (
            json!({"dataset": "dukcapil.tidak_ada", "rights": ["read"]}),
            404,
        ),
        (
            json!({"dataset": "dukcapil.penduduk", "rights": ["baca"]}),
            400,
        ),
        (json!({"dataset": "dukcapil.penduduk", "rights": []}), 400),
    ] {
        let response = hub.post_json(&analyst, "/api/v1/bus/requests", &body).await;
        assert_eq!(response.status(), status, "{body}");
    }
    let asked = hub
        .post_json(
            &analyst,
            "/api/v1/bus/requests",
            &json!({"dataset": "dukcapil.penduduk", "rights": ["read"], "reason": "analisis kemiskinan per desa"}),
        )
        .await;
    assert_eq!(asked.status(), 201);
    let asked: serde_json::Value = asked.json().await.unwrap();
    assert_eq!(asked["status"], "pending");
    assert_eq!(asked["subsystem"], "ID-JABAR/GOV/BAPPEDA/ANALISIS");
    let id = asked["id"].as_str().unwrap().to_string();

    // The requester cannot approve its own request; the owner sees it pending.
    let approve = format!("/api/v1/bus/requests/{id}/approve");
    assert_eq!(
        hub.post_json(&analyst, &approve, &json!({})).await.status(),
        403
    );
    let pending: serde_json::Value = hub
        .get(&owner, "/api/v1/bus/requests?status=pending")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["requests"][0]["id"], id.as_str());
    assert!(niks(&hub, &analyst).await.is_err(), "nothing granted yet");

    let approved = hub
        .post_json(&owner, &approve, &json!({"note": "disetujui"}))
        .await;
    assert_eq!(approved.status(), 200);
    let approved: serde_json::Value = approved.json().await.unwrap();
    assert_eq!(approved["request"]["status"], "approved");
    assert_eq!(approved["request"]["decided_by"], "disdukcapil-siak");
    assert_eq!(approved["grants"][0]["right"], "read");
    let rows = niks(&hub, &analyst).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].contains("**********"), "read, not pii");
    assert_eq!(
        hub.post_json(&owner, &approve, &json!({})).await.status(),
        409,
        "decided once"
    );

    // A rejected request grants nothing and says why.
    let pii: serde_json::Value = hub
        .post_json(
            &analyst,
            "/api/v1/bus/requests",
            &json!({"dataset": "dukcapil.penduduk", "rights": ["pii"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let rejected: serde_json::Value = hub
        .post_json(
            &owner,
            &format!(
                "/api/v1/bus/requests/{}/reject",
                pii["id"].as_str().unwrap()
            ),
            &json!({"note": "NIK tidak diperlukan untuk analisis agregat"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rejected["request"]["status"], "rejected");
    assert_eq!(
        rejected["request"]["note"],
        "NIK tidak diperlukan untuk analisis agregat"
    );
    assert!(niks(&hub, &analyst).await.unwrap()[0].contains("**********"));

    // The same workflow on the command line.
    let puskesmas = hub.key("DINKES", "SIMPUS", "analyst");
    let request_id = hub
        .cli_ok(&[
            "bus",
            "request",
            "dukcapil.penduduk",
            "--subsystem",
            "ID-JABAR/GOV/DINKES/SIMPUS",
            "--right",
            "read",
            "--reason",
            "sasaran imunisasi",
        ])
        .trim()
        .to_string();
    assert!(niks(&hub, &puskesmas).await.is_err());
    hub.cli_ok(&[
        "bus",
        "approve",
        &request_id,
        "--expires-at",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(niks(&hub, &puskesmas).await.unwrap().len(), 3);
    let listed = hub.cli_ok(&["bus", "requests", "--status", "approved"]);
    assert!(
        listed.contains(&request_id) && listed.contains(&id),
        "{listed}"
    );
    let actions: Vec<String> = audit(&hub, "bus.request.%")
        .await
        .into_iter()
        .map(|(action, _)| action)
        .collect();
    assert_eq!(
        actions,
        [
            "bus.request.add",
            "bus.request.approve",
            "bus.request.add",
            "bus.request.reject",
            "bus.request.add",
            "bus.request.approve"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_lists_every_route_for_a_registered_client() {
    let hub = Hub::start();
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    assert_eq!(
        hub.get("simpul_not-a-key", "/api/v1/openapi.json")
            .await
            .status(),
        401
    );
    let document: serde_json::Value = hub
        .get(&analyst, "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for (path, method) in [
        ("/api/v1/bus/members", "get"),
        ("/api/v1/bus/requests/{id}/{verb}", "post"),
        ("/api/v1/datasets/{id}/records", "get"),
        ("/api/v1/queries/{name}", "delete"),
        ("/health/ready", "get"),
    ] {
        assert!(
            document["paths"][path][method]["summary"].is_string(),
            "{method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_is_in_simpul_opmon_with_its_client_service_sizes_and_outcome() {
    let hub = Hub::start();
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    let listed = hub.get(&analyst, "/api/v1/datasets").await;
    assert_eq!(listed.status(), 200);
    let listed_bytes = listed.bytes().await.unwrap().len() as i64;
    assert_eq!(
        hub.get(&analyst, "/api/v1/datasets/tidak.ada")
            .await
            .status(),
        404
    );
    assert_eq!(
        hub.get("simpul_not-a-key", "/api/v1/datasets")
            .await
            .status(),
        401
    );
    let refused = hub
        .sql(&analyst, "select * from simpul.opmon", "application/json")
        .await;
    assert_eq!(refused.status(), 400, "op-monitoring is for admins");

    // Records are written in the background, in batches: wait for the four calls.
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = hub
            .rows(
                "select client_id, member, subsystem, service, method, path, request_size, \
                 response_size, succeeded, status, response_out_ts >= request_in_ts as ordered \
                 from simpul.opmon where path like '/api/v1/datasets%' or client_id = 'bappeda-analisis' \
                 order by request_in_ts",
            )
            .await;
        if rows.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 4, "{rows:?}");
    let list = &rows[0];
    assert_eq!(list["client_id"], "bappeda-analisis");
    assert_eq!(list["member"], "BAPPEDA");
    assert_eq!(list["subsystem"], "ANALISIS");
    assert_eq!(list["service"], "/api/v1/datasets");
    assert_eq!(list["method"], "GET");
    assert_eq!(list["status"], 200);
    assert_eq!(list["succeeded"], true);
    assert_eq!(list["response_size"], listed_bytes);
    assert_eq!(list["ordered"], true);
    let missing = &rows[1];
    assert_eq!(missing["service"], "/api/v1/datasets/{id}");
    assert_eq!(missing["path"], "/api/v1/datasets/tidak.ada");
    assert_eq!(
        (missing["status"].clone(), missing["succeeded"].clone()),
        (json!(404), json!(false))
    );
    let anonymous = &rows[2];
    assert_eq!(anonymous["client_id"], serde_json::Value::Null);
    assert_eq!(anonymous["status"], 401);
    let sql = &rows[3];
    assert_eq!(sql["service"], "/api/v1/sql");
    assert_eq!(sql["method"], "POST");
    assert!(sql["request_size"].as_i64().unwrap() > 20, "{sql}");
}
