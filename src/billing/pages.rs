//! The billing pages and API. Who may call each route:
//!
//! - `GET /console/billing` — console readers (operator staff, administrators, the regulator): the caps and the
//!   platform fee in force today and their history; the regulator also gets the form to set a cap, the operator's
//!   administrators the form to set the platform fee.
//! - `POST /console/billing/caps` — the regulator only (`Regulator`): sets a cap (audited; clamps what it lowers).
//! - `POST /console/billing/fees` — the operator's administrators only (`OperatorAdmin`): sets the platform fee.
//! - `GET /org/billing` — any member of a participant (`ParticipantMember`): this month's charges so far as an API
//!   user (per bank, with the platform fee and a projection) and earnings as a provider (per API user), by day; its
//!   statements, and the credit notes on its lines (as the API user, or as the provider of a credited charge).
//! - `GET /org/billing/tariffs` and `POST /org/billing/tariffs` — a provider's administrators (`ParticipantAdmin` of
//!   an accredited API provider): their APIs' tariffs, clamps and history; sets one (audited). Another
//!   organisation's API is "not found".
//! - `GET /participant/v1/billing/running` — a participant's system over mTLS (`ApiClient`), its own organisation
//!   only: the same running totals as JSON (`?view=user|provider`).
//!
//! Other roles are refused with 403, anonymous visitors sent to sign in.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::charges::{self, Party, RunningTotals};
use super::{BillingError, Cap, CapRequest, Decided, Payee, Refusal, Service, Tariff, TariffRequest, day_text, tenge};
use crate::apps::client::ApiClient;
use crate::catalog::{self, Api};
use crate::identity::Role;
use crate::standard::error::{ApiError, ObErrorCode};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, redisplay, render_status};
use crate::web::session::{ConsoleReader, CsrfForm, OperatorAdmin, ParticipantAdmin, ParticipantMember, Regulator};

pub const RUNNING_PATH: &str = "/participant/v1/billing/running";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/billing", get(console_page))
        .route("/console/billing/caps", post(set_cap))
        .route("/console/billing/fees", post(set_fee))
        .route("/org/billing", get(org_page))
        .route("/org/billing/tariffs", get(tariffs_page).post(set_tariff))
        .route(RUNNING_PATH, get(running_api))
}

impl From<BillingError> for PageError {
    fn from(error: BillingError) -> PageError {
        match error {
            BillingError::NotFound => PageError::not_found(),
            BillingError::Sqlite(e) => PageError::internal(&e),
            BillingError::Store(e) => PageError::internal(&e),
            BillingError::Requests(e) => PageError::internal(&e),
        }
    }
}

/// A refusal as the page says it: the reason, and the cap it would break.
fn refusal_text(t: &Texts, refusal: &Refusal) -> String {
    match &refusal.cap {
        Some(cap) => format!(
            "{} {} {} ({} {})",
            t.get(refusal.key),
            tenge(cap.max_tiyn),
            t.get("billing.per_unit"),
            t.get("billing.effective_from"),
            cap.effective_from
        ),
        None => t.get(refusal.key).to_string(),
    }
}

fn today(state: &AppState) -> Result<time::Date, PageError> {
    super::today(state.config.time_zone.zone(), state.clock.now())
        .ok_or_else(|| PageError::internal(&"the operator's day could not be read"))
}

/// A form's amount in tenge (`12`, `12.5`, `12.50`) as tiyn; never through floating point.
pub fn parse_tenge(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once(['.', ',']).unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 12 {
        return None;
    }
    if fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cents = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().ok()? * 10,
        _ => fraction.parse::<i64>().ok()?,
    };
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(cents)
}

/// A cap or fee row as the console lists it.
struct PlanRow {
    kind_key: &'static str,
    service_key: &'static str,
    effective_from: String,
    amount: String,
    set_by: String,
    in_force: bool,
    clamp: bool,
}

#[derive(Template)]
#[template(path = "billing_console.html")]
struct ConsolePage<'a> {
    t: Texts,
    csrf: &'a str,
    today: String,
    first_day: String,
    services: &'static [Service],
    caps: Vec<PlanRow>,
    fees: Vec<PlanRow>,
    may_set_caps: bool,
    may_set_fees: bool,
    errors: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct CapForm {
    #[serde(default)]
    payee: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    effective_from: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    free_units: String,
}

fn in_force_ids<T>(rows: &[T], today: &str, key: impl Fn(&T) -> (String, &str, i64)) -> Vec<i64> {
    // Rows come latest effective day (then id) first: the first on or before today of each kind is in force.
    let mut seen = std::collections::HashSet::new();
    let mut ids = Vec::new();
    for r in rows {
        let (kind, from, id) = key(r);
        if from <= today && seen.insert(kind) {
            ids.push(id);
        }
    }
    ids
}

async fn console_view(
    state: &AppState,
    who: &crate::web::session::SignedIn,
    errors: Vec<String>,
) -> Result<Response, PageError> {
    let today = today(state)?;
    let (caps, fees) = state
        .db
        .read(|c| -> Result<(Vec<Cap>, Vec<Tariff>), StoreError> { Ok((super::caps(c)?, super::tariffs(c, None)?)) })
        .await?;
    let today_text = day_text(today);
    let caps_in_force =
        in_force_ids(&caps, &today_text, |c| (format!("{}{}", c.payee, c.service), &c.effective_from, c.id));
    let fees_in_force = in_force_ids(&fees, &today_text, |f| (f.service.to_string(), &f.effective_from, f.id));
    let page = ConsolePage {
        t: Texts::current(),
        csrf: who.csrf(),
        first_day: day_text(today + time::Duration::days(1)),
        today: today_text,
        services: Service::ALL,
        caps: caps
            .iter()
            .map(|c| PlanRow {
                kind_key: match c.payee {
                    Payee::Provider => "billing.payee.provider",
                    Payee::Platform => "billing.payee.platform",
                },
                service_key: c.service.text_key(),
                effective_from: c.effective_from.clone(),
                amount: tenge(c.max_tiyn),
                set_by: c.set_by.clone(),
                in_force: caps_in_force.contains(&c.id),
                clamp: false,
            })
            .collect(),
        fees: fees
            .iter()
            .map(|f| PlanRow {
                kind_key: "billing.payee.platform",
                service_key: f.service.text_key(),
                effective_from: f.effective_from.clone(),
                amount: tenge(f.price_tiyn),
                set_by: f.set_by.clone(),
                in_force: fees_in_force.contains(&f.id),
                clamp: f.clamped_by_cap.is_some(),
            })
            .collect(),
        may_set_caps: who.user.role == Role::Regulator,
        may_set_fees: who.user.role == Role::OperatorAdmin,
        errors,
    };
    let status = if page.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(render_status(status, &page))
}

/// Console readers: caps and platform fees.
async fn console_page(State(state): State<AppState>, ConsoleReader(who): ConsoleReader) -> Result<Response, PageError> {
    console_view(&state, &who, vec![]).await
}

/// The regulator: sets a cap.
async fn set_cap(
    State(state): State<AppState>,
    Regulator(who): Regulator,
    CsrfForm(form): CsrfForm<CapForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let (Ok(payee), Ok(service), Some(max_tiyn)) =
        (form.payee.parse::<Payee>(), form.service.parse::<Service>(), parse_tenge(&form.amount))
    else {
        return console_view(&state, &who, vec![t.get("billing.error.form").to_string()]).await;
    };
    let request = CapRequest { payee, service, effective_from: form.effective_from.clone(), max_tiyn };
    let (actor, now, today) = (who.audit_actor(), state.clock.now(), today(&state)?);
    match state.db.write(move |tx| super::set_cap(tx, &request, &actor, today, now)).await? {
        Decided::Done(_) => Ok(Redirect::to("/console/billing").into_response()),
        Decided::Refused(refusal) => console_view(&state, &who, vec![refusal_text(&t, &refusal)]).await,
    }
}

/// The operator's administrators: set the platform fee.
async fn set_fee(
    State(state): State<AppState>,
    OperatorAdmin(who): OperatorAdmin,
    CsrfForm(form): CsrfForm<CapForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let (Ok(service), Some(price_tiyn)) = (form.service.parse::<Service>(), parse_tenge(&form.amount)) else {
        return console_view(&state, &who, vec![t.get("billing.error.form").to_string()]).await;
    };
    let request = TariffRequest { service, effective_from: form.effective_from.clone(), price_tiyn, free_units: 0 };
    let (actor, now, today) = (who.audit_actor(), state.clock.now(), today(&state)?);
    match state.db.write(move |tx| super::set_fee(tx, &request, &actor, today, now)).await? {
        Decided::Done(_) => Ok(Redirect::to("/console/billing").into_response()),
        Decided::Refused(refusal) => console_view(&state, &who, vec![refusal_text(&t, &refusal)]).await,
    }
}

/// Running totals as a page shows them: amounts in tenge, the per-day chart.
struct TotalsView {
    totals: RunningTotals,
    chart: String,
}

impl TotalsView {
    fn new(t: &Texts, id: &str, totals: RunningTotals) -> TotalsView {
        let chart = crate::web::chart::bars_chart(
            t,
            id,
            t.get("billing.chart_title"),
            "₸",
            &totals.days.iter().map(|d| (d.day.clone(), Some(d.total_tiyn as f64 / 100.0), None)).collect::<Vec<_>>(),
        );
        TotalsView { totals, chart }
    }

    fn money(&self, tiyn: &i64) -> String {
        tenge(*tiyn)
    }
}

#[derive(Template)]
#[template(path = "billing_org.html")]
struct OrgPage {
    t: Texts,
    as_user: Option<TotalsView>,
    as_provider: Option<TotalsView>,
    provider_admin: bool,
    statements: Vec<super::close::Statement>,
    credit_notes: Vec<super::statements::CreditRow>,
}

impl OrgPage {
    fn money(&self, tiyn: &i64) -> String {
        tenge(*tiyn)
    }
}

/// Any member of a participant: this month's charges (API user) and earnings (provider) so far.
async fn org_page(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let today = today(&state)?;
    let org = who.org.clone();
    let (user, provider, statements, notes) = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let user = if org.is_user { Some(charges::running(c, Party::User(org.id), today)?) } else { None };
            let provider =
                if org.is_provider { Some(charges::running(c, Party::Provider(org.id), today)?) } else { None };
            let notes = super::credit::listed(c, super::credit::Concerning::Organisation(org.id), None, 120)?;
            Ok((user, provider, super::close::listed(c, Some(org.id), 120)?, notes))
        })
        .await?;
    let page = OrgPage {
        as_user: user.map(|u| TotalsView::new(&t, "billing-user-days", u)),
        as_provider: provider.map(|p| TotalsView::new(&t, "billing-provider-days", p)),
        provider_admin: who.user.role == Role::ParticipantAdmin && who.org.is_provider,
        statements,
        credit_notes: notes.iter().map(super::statements::CreditRow::new).collect(),
        t,
    };
    Ok(render_status(StatusCode::OK, &page))
}

/// One API's service on the tariffs page.
struct ServiceRow {
    api_id: i64,
    service: Service,
    in_force: Option<String>,
    free_units: i64,
    cap: Option<String>,
}

#[derive(Clone)]
struct HistoryRow {
    api: String,
    service_key: &'static str,
    effective_from: String,
    price: String,
    free_units: i64,
    set_by: String,
    clamped: bool,
}

#[derive(Template)]
#[template(path = "billing_tariffs.html")]
struct TariffsPage<'a> {
    t: Texts,
    csrf: &'a str,
    first_day: String,
    all_services: &'static [Service],
    apis: Vec<Api>,
    services: Vec<ServiceRow>,
    history: Vec<HistoryRow>,
    clamps: Vec<HistoryRow>,
    form: CapForm,
    api_choice: String,
    errors: Vec<String>,
}

impl TariffsPage<'_> {
    fn api_name(&self, id: &i64) -> String {
        self.apis.iter().find(|a| a.id == *id).map(|a| format!("{} {}", a.name, a.version)).unwrap_or_default()
    }
}

#[derive(Debug, Default, Deserialize)]
struct TariffForm {
    #[serde(default)]
    api: String,
    #[serde(flatten)]
    rest: CapForm,
}

async fn tariffs_view(
    state: &AppState,
    who: &crate::web::session::Member,
    form: TariffForm,
    errors: Vec<String>,
) -> Result<Response, PageError> {
    if catalog::provider_refusal(&who.org).is_some() {
        return Err(PageError::forbidden());
    }
    let today = today(state)?;
    let today_text = day_text(today);
    let org_id = who.org.id;
    let (apis, services, history) = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let apis: Vec<Api> = catalog::list_for_organisation(c, org_id)?
                .into_iter()
                .filter(|a| !super::services_of_standard(&a.standard).is_empty())
                .collect();
            let mut services = Vec::new();
            let mut history = Vec::new();
            for api in &apis {
                for &service in super::services_of_standard(&api.standard) {
                    let tariff = super::tariff_in_force(c, Some(api.id), service, &today_text)?;
                    let cap = super::cap_in_force(c, Payee::Provider, service, &today_text)?;
                    services.push(ServiceRow {
                        api_id: api.id,
                        service,
                        in_force: tariff
                            .as_ref()
                            .map(|t| tenge(t.price_tiyn.min(cap.as_ref().map_or(i64::MAX, |c| c.max_tiyn)))),
                        free_units: tariff.as_ref().map_or(0, |t| t.free_units),
                        cap: cap.map(|c| tenge(c.max_tiyn)),
                    });
                }
                history.extend(super::tariffs(c, Some(api.id))?);
            }
            Ok((apis, services, history))
        })
        .await?;
    let name = |id: Option<i64>| {
        apis.iter().find(|a| Some(a.id) == id).map(|a| format!("{} {}", a.name, a.version)).unwrap_or_default()
    };
    let history: Vec<HistoryRow> = history
        .iter()
        .map(|h| HistoryRow {
            api: name(h.api_id),
            service_key: h.service.text_key(),
            effective_from: h.effective_from.clone(),
            price: tenge(h.price_tiyn),
            free_units: h.free_units,
            set_by: h.set_by.clone(),
            clamped: h.clamped_by_cap.is_some(),
        })
        .collect();
    let first_day = day_text(today + time::Duration::days(1));
    // Clamps that are in force or still to come: the notice at the top of the page.
    let clamps = history
        .iter()
        .filter(|h| h.clamped)
        .filter(|h| h.effective_from.as_str() >= day_text(today - time::Duration::days(31)).as_str())
        .cloned()
        .collect();
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = TariffsPage {
        t: Texts::current(),
        csrf: who.csrf(),
        first_day,
        all_services: Service::ALL,
        apis,
        services,
        history,
        clamps,
        api_choice: form.api,
        form: CapForm {
            effective_from: redisplay(&form.rest.effective_from),
            amount: redisplay(&form.rest.amount),
            free_units: redisplay(&form.rest.free_units),
            ..form.rest
        },
        errors,
    };
    Ok(render_status(status, &page))
}

/// A provider's administrators: their APIs' tariffs.
async fn tariffs_page(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
) -> Result<Response, PageError> {
    tariffs_view(&state, &who, TariffForm::default(), vec![]).await
}

/// A provider's administrators: set a tariff of one of their APIs.
async fn set_tariff(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    CsrfForm(form): CsrfForm<TariffForm>,
) -> Result<Response, PageError> {
    if catalog::provider_refusal(&who.org).is_some() {
        return Err(PageError::forbidden());
    }
    let t = Texts::current();
    let free = match form.rest.free_units.trim() {
        "" => Some(0),
        n => n.parse::<i64>().ok(),
    };
    let (Ok(api_id), Ok(service), Some(price_tiyn), Some(free_units)) =
        (form.api.trim().parse::<i64>(), form.rest.service.parse::<Service>(), parse_tenge(&form.rest.amount), free)
    else {
        return tariffs_view(&state, &who, form, vec![t.get("billing.error.form").to_string()]).await;
    };
    let request = TariffRequest { service, effective_from: form.rest.effective_from.clone(), price_tiyn, free_units };
    let (org, actor, now, today) = (who.org.clone(), who.audit_actor(), state.clock.now(), today(&state)?);
    match state.db.write(move |tx| super::set_tariff(tx, &org, api_id, &request, &actor, today, now)).await? {
        Decided::Done(_) => Ok(Redirect::to("/org/billing/tariffs").into_response()),
        Decided::Refused(refusal) => tariffs_view(&state, &who, form, vec![refusal_text(&t, &refusal)]).await,
    }
}

#[derive(Debug, Deserialize)]
struct RunningParams {
    view: Option<String>,
}

fn running_json(totals: &RunningTotals, view: &str) -> Value {
    json!({
        "view": view,
        "currency": "KZT",
        "month": totals.month,
        "from": totals.from,
        "to": totals.to,
        "days_in_month": totals.days_in_month,
        "days_elapsed": totals.days_elapsed,
        "units": totals.units,
        "charge_tiyn": totals.charge_tiyn,
        "fee_tiyn": totals.fee_tiyn,
        "total_tiyn": totals.total_tiyn,
        "projected_tiyn": totals.projected_tiyn,
        "counterparties": totals.counterparties.iter().map(|c| json!({
            "bin": c.bin, "name": c.name, "exchanges": c.exchanges, "units": c.units, "free_units": c.free_units,
            "charge_tiyn": c.charge_tiyn, "fee_tiyn": c.fee_tiyn, "total_tiyn": c.total_tiyn,
        })).collect::<Vec<_>>(),
        "days": totals.days.iter().map(|d| json!({ "day": d.day, "units": d.units, "total_tiyn": d.total_tiyn }))
            .collect::<Vec<_>>(),
    })
}

/// A participant's system: its organisation's running totals, as an API user (default for one) or a provider.
async fn running_api(
    State(state): State<AppState>,
    client: ApiClient,
    params: Result<Query<RunningParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let bad = |message: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, ObErrorCode::FieldInvalid, format!("view: {message}")).at("view")
    };
    let Query(params) = params.map_err(|_| bad("each parameter may be given once"))?;
    let org = (*client.organisation).clone();
    // Absent: the organisation's own side; given, exactly one of the document's values (an empty one is not).
    let view = match params.view.as_deref() {
        None => {
            if org.is_user {
                "user"
            } else {
                "provider"
            }
        }
        Some("user") if org.is_user => "user",
        Some("provider") if org.is_provider => "provider",
        Some("user" | "provider") => return Err(bad("the organisation has no such role")),
        Some(_) => return Err(bad("must be user or provider")),
    };
    let party = if view == "user" { Party::User(org.id) } else { Party::Provider(org.id) };
    let today = super::today(state.config.time_zone.zone(), state.clock.now())
        .ok_or_else(|| ApiError::internal(&"the operator's day could not be read"))?;
    let totals = state
        .db
        .read(move |c| charges::running(c, party, today).map_err(StoreError::from))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(running_json(&totals, view)))
}

/// One service's tariff as the marketplace shows it.
#[derive(Debug, Clone)]
pub struct ListedTariff {
    pub service_key: &'static str,
    /// In tenge per unit, never above the cap in force; `None`: no tariff (free).
    pub price: Option<String>,
    pub free_units: i64,
}

/// The tariffs of an API in force on `today` (the operator's day), for the marketplace: per service of its standard.
pub fn listed_tariffs(conn: &rusqlite::Connection, api: &Api, today: &str) -> rusqlite::Result<Vec<ListedTariff>> {
    let mut out = Vec::new();
    for &service in super::services_of_standard(&api.standard) {
        let tariff = super::tariff_in_force(conn, Some(api.id), service, today)?;
        let cap = super::cap_in_force(conn, Payee::Provider, service, today)?;
        out.push(ListedTariff {
            service_key: service.text_key(),
            price: tariff.as_ref().map(|t| tenge(cap.as_ref().map_or(t.price_tiyn, |c| t.price_tiyn.min(c.max_tiyn)))),
            free_units: tariff.map_or(0, |t| t.free_units),
        });
    }
    Ok(out)
}

/// The operator's day at `now`, as the marketplace asks for tariffs (`YYYY-MM-DD`).
pub fn today_text(state: &AppState) -> String {
    super::today(state.config.time_zone.zone(), state.clock.now()).map(day_text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_tenge_become_tiyn_without_floating_point() {
        assert_eq!(parse_tenge("12"), Some(1200));
        assert_eq!(parse_tenge("12.5"), Some(1250));
        assert_eq!(parse_tenge("0,05"), Some(5));
        assert_eq!(parse_tenge(" 3.10 "), Some(310));
        assert_eq!(parse_tenge("1.234"), None);
        assert_eq!(parse_tenge("-1"), None);
        assert_eq!(parse_tenge(""), None);
        assert_eq!(parse_tenge("1e3"), None);
    }
}
