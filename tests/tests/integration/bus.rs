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
