//! `/api/v1/bus`: members, subsystems and groups of the bus, grants on datasets, and the
//! datasets a caller may use.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use simpul_catalog::{DatasetId, DatasetMeta, Principal, RequestStatus, Right, Role, may_read};

use super::{ApiError, ApiJson};
use crate::auth::Caller;
use crate::bus::{
    GrantRequest, ListedGrant, ListedRequest, Registration, decide, grant, list, register_member,
    register_subsystem, request_access, revoke,
};
use crate::server::AppState;

fn identity(app: &AppState) -> Result<simpul_catalog::BusIdentity, ApiError> {
    app.config.bus_identity().map_err(ApiError::internal)
}

/// Every member and its subsystems, for any registered client (X-Road's `listClients`).
pub(super) async fn members(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let identity = identity(&app)?;
    let members = list(&app.catalog.state, &identity).await?;
    Ok(Json(json!({
        "instance": identity.instance,
        "member_class": identity.member_class,
        "members": members,
    })))
}

pub(super) async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<Registration>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin], "registering members")?;
    let member =
        register_member(&app.catalog.state, &identity(&app)?, &request, caller.id()).await?;
    Ok((StatusCode::CREATED, Json(json!(member))))
}

pub(super) async fn add_subsystem(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<Registration>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin], "registering subsystems")?;
    let subsystem =
        register_subsystem(&app.catalog.state, &identity(&app)?, &request, caller.id()).await?;
    Ok((StatusCode::CREATED, Json(json!(subsystem))))
}

/// The query parameters of the bus listings: `allowed=true|false`, `dataset=ns.name`,
/// `status=pending|approved|rejected`, each listing accepting some of them.
#[derive(Debug, Default)]
struct ListingQuery {
    allowed: bool,
    dataset: Option<DatasetId>,
    status: Option<RequestStatus>,
}

impl ListingQuery {
    fn parse(raw: Option<&str>, accepted: &[&str]) -> Result<Self, ApiError> {
        let mut query = Self::default();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "allowed" if accepted.contains(&"allowed") => {
                    query.allowed = match value.as_ref() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "allowed must be true or false, not '{other}'"
                            )));
                        }
                    }
                }
                "dataset" if accepted.contains(&"dataset") => {
                    query.dataset = Some(value.parse().map_err(
                        |e: simpul_catalog::InvalidDatasetId| ApiError::bad_request(e.to_string()),
                    )?)
                }
                "status" if accepted.contains(&"status") => query.status = Some(value.parse()?),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter '{other}'; use {}",
                        accepted.join(" or ")
                    )));
                }
            }
        }
        Ok(query)
    }
}

/// The datasets `member` owns, read once for a listing.
async fn owned_by(app: &AppState, member: &str) -> Result<HashSet<DatasetId>, ApiError> {
    Ok(app
        .catalog
        .state
        .dataset_access_refs()
        .await?
        .into_iter()
        .filter(|d| d.owner == member)
        .map(|d| d.id)
        .collect())
}

/// The dataset a grant request names, for a caller that may manage its access (admins, and
/// producers of the owning member).
async fn managed_dataset(
    app: &AppState,
    caller: &Caller,
    dataset: &DatasetId,
) -> Result<DatasetMeta, ApiError> {
    let meta = app
        .catalog
        .state
        .dataset(dataset)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("dataset {dataset} does not exist")))?;
    if !caller.can_write(Some(&meta)) {
        return Err(ApiError::forbidden(format!(
            "access to {dataset} is granted by its owner {} or an admin, not by {}",
            meta.owner,
            caller.id()
        )));
    }
    Ok(meta)
}

/// `POST /api/v1/bus/grants`.
pub(super) async fn add_grant(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<GrantRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let dataset: DatasetId = request
        .dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| ApiError::bad_request(e.to_string()))?;
    let meta = managed_dataset(&app, &caller, &dataset).await?;
    let grants = grant(
        &app.catalog.state,
        &identity(&app)?,
        &meta,
        &request,
        caller.id(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "grants": grants }))))
}

/// `GET /api/v1/bus/grants`: admins see every grant; others the grants on their member's
/// datasets and the grants to their own subsystem.
pub(super) async fn grants(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = ListingQuery::parse(raw.as_deref(), &["allowed", "dataset"])?;
    let identity = identity(&app)?;
    let own = identity.subsystem_id(&caller.0.member, &caller.0.subsystem);
    let owned = owned_by(&app, &caller.0.member).await?;
    let mut listed = Vec::new();
    for grant in app.catalog.state.grants(query.dataset.as_ref()).await? {
        let shown = ListedGrant::new(&grant, &identity);
        let visible =
            caller.0.role == Role::Admin || shown.grantee == own || owned.contains(&grant.dataset);
        if visible && (!query.allowed || shown.active) {
            listed.push(shown);
        }
    }
    Ok(Json(json!({ "grants": listed })))
}

/// `DELETE /api/v1/bus/grants/{id}`.
pub(super) async fn revoke_grant(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::not_found(format!("there is no grant in force with id '{id}'"));
    let found = app.catalog.state.grant(&id).await?.ok_or_else(not_found)?;
    managed_dataset(&app, &caller, &found.dataset).await?;
    if revoke(&app.catalog.state, &found, caller.id()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// What is needed to register a group.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewGroup {
    code: String,
    #[serde(default)]
    description: String,
}

/// `POST /api/v1/bus/groups` (admins).
pub(super) async fn add_group(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewGroup>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin], "registering groups")?;
    let code = crate::bus::add_group(
        &app.catalog.state,
        &request.code,
        &request.description,
        caller.id(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": format!("group:{code}") })),
    ))
}

/// What is needed to add a subsystem to a group.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupMember {
    id: String,
}

/// `POST /api/v1/bus/groups/{code}/members` (admins).
pub(super) async fn add_group_member(
    State(app): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(request): ApiJson<GroupMember>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin], "changing groups")?;
    crate::bus::add_to_group(
        &app.catalog.state,
        &identity(&app)?,
        &code,
        &request.id,
        caller.id(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/bus/datasets`: every dataset with whether the caller may read it and the
/// rights it holds (X-Road's `allowedMethods` with `allowed=true`).
pub(super) async fn datasets(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = ListingQuery::parse(raw.as_deref(), &["allowed", "dataset"])?;
    let state = &app.catalog.state;
    let principal = Principal {
        member: caller.0.member.clone(),
        subsystem: caller.0.subsystem.clone(),
    };
    let rights = state.rights_of(&principal).await?;
    let admin = caller.0.role == Role::Admin;
    let mut listed = Vec::new();
    for dataset in state.dataset_access_refs().await? {
        let allowed = admin
            || may_read(
                &principal,
                &rights,
                &dataset.id,
                dataset.classification,
                &dataset.owner,
            );
        if query.allowed && !allowed {
            continue;
        }
        if query.dataset.as_ref().is_some_and(|d| *d != dataset.id) {
            continue;
        }
        listed.push(json!({
            "id": dataset.id,
            "classification": dataset.classification,
            "owner": dataset.owner,
            "allowed": allowed,
            "owned": dataset.owner == caller.0.member,
            "rights": rights.on(&dataset.id),
            "personal_data": if admin || rights.has(&dataset.id, Right::Pii) { "unmasked" } else { "masked" },
        }));
    }
    Ok(Json(json!({ "datasets": listed })))
}

/// What a subsystem asks for.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRequest {
    dataset: String,
    rights: Vec<String>,
    #[serde(default)]
    reason: String,
}

fn principal_of(caller: &Caller) -> Principal {
    Principal {
        member: caller.0.member.clone(),
        subsystem: caller.0.subsystem.clone(),
    }
}

/// `POST /api/v1/bus/requests`: the caller's subsystem asks for rights on a dataset.
pub(super) async fn add_request(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let dataset: DatasetId = request
        .dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| ApiError::bad_request(e.to_string()))?;
    let meta = app
        .catalog
        .state
        .dataset(&dataset)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("dataset {dataset} does not exist")))?;
    let listed = request_access(
        &app.catalog.state,
        &identity(&app)?,
        &meta,
        &principal_of(&caller),
        &request.rights,
        &request.reason,
        caller.id(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!(listed))))
}

/// `GET /api/v1/bus/requests?status=…`: admins see every request; others their own
/// subsystem's and those on their member's datasets.
pub(super) async fn requests(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = ListingQuery::parse(raw.as_deref(), &["status"])?;
    let identity = identity(&app)?;
    let own = principal_of(&caller);
    let owned = owned_by(&app, &caller.0.member).await?;
    let mut listed = Vec::new();
    for request in app.catalog.state.access_requests(query.status).await? {
        let visible = caller.0.role == Role::Admin
            || request.principal == own
            || owned.contains(&request.dataset);
        if visible {
            listed.push(ListedRequest::new(request, &identity));
        }
    }
    Ok(Json(json!({ "requests": listed })))
}

/// A decision on a request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/bus/requests/{id}/approve` and `…/reject`.
pub(super) async fn decide_request(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, verb)): Path<(String, String)>,
    ApiJson(decision): ApiJson<Decision>,
) -> Result<Json<Value>, ApiError> {
    let approve = match verb.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(ApiError::not_found(format!(
                "a request is approved or rejected, not '{other}'"
            )));
        }
    };
    if !approve && decision.expires_at.is_some() {
        return Err(ApiError::bad_request(
            "expires_at belongs to an approval, not to a rejection",
        ));
    }
    let request = app
        .catalog
        .state
        .access_request(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no access request with id '{id}'")))?;
    let meta = managed_dataset(&app, &caller, &request.dataset).await?;
    let (decided, grants) = decide(
        &app.catalog.state,
        &identity(&app)?,
        &meta,
        &request,
        approve,
        (decision.expires_at, &decision.note),
        caller.id(),
    )
    .await?;
    Ok(Json(json!({ "request": decided, "grants": grants })))
}
