//! The participant's side of accreditation: the application form (roles, questionnaire, contacts, documents sent
//! with the form as multipart), its status and the operator's reason, and the printable accreditation certificate.
//! Administrators apply and edit; every member of the organisation may look.

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::accreditation::{
    self, Accreditation, Application, ApplicationInput, Document, MAX_DOCUMENT_BYTES, MAX_DOCUMENTS, MAX_FORM_BYTES,
    NewDocument, SaveOutcome,
};
use super::{OrgStatus, Organisation};
use crate::docs::agreements;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render, render_status};
use crate::web::session::{Member, ParticipantAdmin, ParticipantMember};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/accreditation", get(page).post(save).layer(DefaultBodyLimit::max(MAX_FORM_BYTES)))
        .route("/org/accreditation/certificate", get(certificate))
        .route("/org/accreditation/documents/{id}", get(document))
}

#[derive(Template)]
#[template(path = "accreditation.html")]
struct ApplyPage<'a> {
    t: Texts,
    csrf: &'a str,
    org: &'a Organisation,
    app: Option<Application>,
    documents: Vec<Document>,
    form: ApplicationInput,
    can_edit: bool,
    is_admin: bool,
    errors: Vec<(&'static str, &'static str)>,
    notice: Option<&'static str>,
    max_mib: usize,
    max_files: usize,
    /// The accession agreements' current versions and whether the organisation accepted them.
    agreements: Vec<agreements::Standing>,
}

/// What the page shows for an organisation: its latest application and that application's documents.
async fn load(state: &AppState, org_id: i64) -> Result<Loaded, StoreError> {
    state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let app = accreditation::latest_application(c, org_id)?;
            let docs = match &app {
                Some(a) => accreditation::documents(c, a.id)?,
                None => Vec::new(),
            };
            let roles =
                app.as_ref().map(|a| agreements::Kind::for_roles(a.wants_provider, a.wants_user)).unwrap_or_default();
            let standing = agreements::standing(c, org_id, &roles)?;
            Ok(Loaded { app, docs, agreements: standing })
        })
        .await
}

/// What the page shows for an organisation.
struct Loaded {
    app: Option<Application>,
    docs: Vec<Document>,
    agreements: Vec<agreements::Standing>,
}

fn can_edit(org: &Organisation, app: Option<&Application>, is_admin: bool) -> bool {
    is_admin && org.status == OrgStatus::Registered && app.is_none_or(|a| !a.status.is_open() || a.status.editable())
}

#[allow(clippy::too_many_arguments)]
fn respond(
    who: &Member,
    loaded: Loaded,
    form: Option<ApplicationInput>,
    errors: Vec<(&'static str, &'static str)>,
    notice: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let org = &who.org;
    let Loaded { app, docs: documents, agreements } = loaded;
    let is_admin = matches!(who.user.role, crate::identity::Role::ParticipantAdmin);
    let form =
        form.or_else(|| app.as_ref().map(ApplicationInput::from_application)).unwrap_or_else(|| ApplicationInput {
            contact_email: org.contact_email.clone(),
            contact_phone: org.contact_phone.clone(),
            ..Default::default()
        });
    // A rejected or approved application is history: its documents belong to it, not to a new application.
    let documents = if app.as_ref().is_some_and(|a| a.status.is_open()) { documents } else { Vec::new() };
    let page = ApplyPage {
        t: Texts::current(),
        csrf: who.csrf(),
        org,
        can_edit: can_edit(org, app.as_ref(), is_admin),
        app,
        documents,
        form,
        is_admin,
        errors,
        notice,
        max_mib: MAX_DOCUMENT_BYTES / (1024 * 1024),
        max_files: MAX_DOCUMENTS,
        agreements,
    };
    render_status(status, &page)
}

/// Participant members: the application, its status and the operator's reason; the form for administrators.
async fn page(State(state): State<AppState>, ParticipantMember(who): ParticipantMember) -> Result<Response, PageError> {
    let loaded = load(&state, who.org.id).await?;
    Ok(respond(&who, loaded, None, vec![], None, StatusCode::OK))
}

/// Why an upload was refused.
#[derive(Debug, Clone, Copy)]
enum UploadProblem {
    TooLarge,
    /// The whole form is over the route's body limit.
    RequestTooLarge,
    WrongType,
    TooMany,
    Malformed,
}

impl UploadProblem {
    fn status(self) -> StatusCode {
        match self {
            UploadProblem::TooLarge | UploadProblem::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UploadProblem::WrongType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UploadProblem::TooMany => StatusCode::UNPROCESSABLE_ENTITY,
            UploadProblem::Malformed => StatusCode::BAD_REQUEST,
        }
    }

    fn text_key(self) -> &'static str {
        match self {
            UploadProblem::TooLarge => "apply.error.too_large",
            UploadProblem::RequestTooLarge => "apply.error.request_too_large",
            UploadProblem::WrongType => "apply.error.file_type",
            UploadProblem::TooMany => "apply.error.too_many",
            UploadProblem::Malformed => "apply.error.malformed",
        }
    }
}

/// The form as posted.
#[derive(Default)]
struct Posted {
    csrf: String,
    submit: bool,
    /// The administrator ticked "I accept the accession agreements".
    accept_agreements: bool,
    input: ApplicationInput,
    documents: Vec<NewDocument>,
    problem: Option<UploadProblem>,
}

const MAX_TEXT_FIELD: usize = 4096;

/// Reads the multipart form. Files are checked as they stream in: a file over the limit or of a type other than
/// PDF, PNG or JPEG (by its bytes, whatever it claims) marks the form refused; the rest of the body is still read
/// (and dropped) so the browser receives the answer instead of a reset connection.
async fn read_form(mut multipart: Multipart) -> Posted {
    let mut posted = Posted::default();
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                let problem = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    UploadProblem::RequestTooLarge
                } else {
                    UploadProblem::Malformed
                };
                posted.problem.get_or_insert(problem);
                break;
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let is_file = name == "documents";
        let filename = field.file_name().map(accreditation::clean_filename);
        let limit = if is_file { MAX_DOCUMENT_BYTES } else { MAX_TEXT_FIELD };
        let mut bytes = Vec::new();
        let mut over = false;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if over || bytes.len() + chunk.len() > limit {
                        over = true;
                        bytes.clear();
                    } else {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let problem = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        UploadProblem::RequestTooLarge
                    } else {
                        UploadProblem::Malformed
                    };
                    posted.problem.get_or_insert(problem);
                    return posted;
                }
            }
        }
        if over {
            posted.problem.get_or_insert(if is_file { UploadProblem::TooLarge } else { UploadProblem::Malformed });
            continue;
        }
        if is_file {
            // A file input left empty still sends a part, with no name and no bytes.
            if bytes.is_empty() && filename.as_deref().is_none_or(|f| f == "document") {
                continue;
            }
            match accreditation::sniff_type(&bytes) {
                Some(content_type) => {
                    if posted.documents.len() >= MAX_DOCUMENTS {
                        posted.problem.get_or_insert(UploadProblem::TooMany);
                        continue;
                    }
                    posted.documents.push(NewDocument {
                        filename: filename.unwrap_or_else(|| "document".into()),
                        content_type,
                        content: bytes,
                    });
                }
                None => {
                    posted.problem.get_or_insert(UploadProblem::WrongType);
                }
            }
            continue;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let yes = text == "yes" || text == "on";
        let q = &mut posted.input.questionnaire;
        match name.as_str() {
            "csrf" => posted.csrf = text,
            "action" => posted.submit = text == "submit",
            "accept_agreements" => posted.accept_agreements = yes,
            "wants_provider" => posted.input.wants_provider = yes,
            "wants_user" => posted.input.wants_user = yes,
            "isms" => q.isms = yes,
            "isms_detail" => q.isms_detail = text.trim().to_string(),
            "security_officer_name" => q.security_officer_name = text.trim().to_string(),
            "security_officer_email" => q.security_officer_email = text.trim().to_string(),
            "incident_phone" => q.incident_phone = text.trim().to_string(),
            "pentest" => q.pentest = yes,
            "pentest_date" => q.pentest_date = text.trim().to_string(),
            "data_in_kz" => q.data_in_kz = yes,
            "encryption_at_rest" => q.encryption_at_rest = yes,
            "contact_name" => posted.input.contact_name = text.trim().to_string(),
            "contact_email" => posted.input.contact_email = text.trim().to_string(),
            "contact_phone" => posted.input.contact_phone = text.trim().to_string(),
            _ => {}
        }
    }
    posted
}

/// Participant administrators: save a draft or submit the application (with its documents) to the operator.
async fn save(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    multipart: Multipart,
) -> Result<Response, PageError> {
    let org = who.org.clone();
    let mut posted = read_form(multipart).await;
    // A multipart form: its token is one of the parts, so it is checked here rather than by `CsrfForm`.
    who.check_form(&posted.csrf)?;
    let loaded = load(&state, org.id).await?;
    if !can_edit(&org, loaded.app.as_ref(), true) {
        return Err(PageError::new(StatusCode::CONFLICT, "apply.error.not_editable"));
    }
    let refuse = |loaded, input, errors, status| Ok(respond(&who, loaded, Some(input), errors, None, status));
    if let Some(problem) = posted.problem {
        tracing::warn!(organisation = %org.bin, ?problem, "accreditation upload refused");
        return refuse(loaded, posted.input, vec![("documents", problem.text_key())], problem.status());
    }
    let now = state.clock.now();
    let errors = posted.input.validate(now.date());
    if !errors.is_empty() {
        return refuse(loaded, posted.input, errors, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let actor = who.audit_actor();
    let input = posted.input.clone();
    let submit = posted.submit;
    let accept = submit && posted.accept_agreements;
    let lang = who.lang();
    let documents = std::mem::take(&mut posted.documents);
    let org_for_tx = org.clone();
    let written = state
        .db
        .write(move |tx| -> Result<SaveOutcome, Submission> {
            // The tick box accepts the current agreements of the roles asked for, in the submission's transaction:
            // a refused submission rolls the acceptance back with it.
            if accept {
                let kinds = agreements::Kind::for_roles(input.wants_provider, input.wants_user);
                agreements::accept_current(tx, org_for_tx.party(), &actor, &kinds, lang, now)
                    .map_err(StoreError::from)?;
            }
            match accreditation::save_application(tx, &org_for_tx, &input, &documents, submit, &actor, now)
                .map_err(StoreError::from)?
            {
                saved @ SaveOutcome::Saved { .. } => Ok(saved),
                refused => Err(Submission::Refused(refused)),
            }
        })
        .await;
    let result = match written {
        Ok(saved) => saved,
        Err(Submission::Refused(refused)) => refused,
        Err(Submission::Store(error)) => return Err(error.into()),
    };
    match result {
        SaveOutcome::Saved { status, .. } => {
            let notice = if status == accreditation::AppStatus::Submitted {
                "apply.notice.submitted"
            } else {
                "apply.notice.saved"
            };
            let loaded = load(&state, org.id).await?;
            Ok(respond(&who, loaded, None, vec![], Some(notice), StatusCode::OK))
        }
        SaveOutcome::NotAllowed => Err(PageError::new(StatusCode::CONFLICT, "apply.error.not_editable")),
        SaveOutcome::AgreementNotAccepted(_) => refuse(
            loaded,
            posted.input,
            vec![("accept_agreements", "apply.error.agreement")],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        SaveOutcome::TooManyDocuments => {
            refuse(loaded, posted.input, vec![("documents", "apply.error.too_many")], StatusCode::UNPROCESSABLE_ENTITY)
        }
        SaveOutcome::NoDocuments => refuse(
            loaded,
            posted.input,
            vec![("documents", "apply.error.no_documents")],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    }
}

/// Why the submission's transaction did not commit: the store failed, or the application was refused (and what
/// the tick box accepted is rolled back with it).
enum Submission {
    Store(StoreError),
    Refused(SaveOutcome),
}

impl From<StoreError> for Submission {
    fn from(error: StoreError) -> Submission {
        Submission::Store(error)
    }
}

#[derive(Template)]
#[template(path = "certificate.html")]
struct CertificatePage<'a> {
    t: Texts,
    org: &'a Organisation,
    accreditation: Accreditation,
}

/// Participant members: the accreditation certificate, printable.
async fn certificate(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
) -> Result<Response, PageError> {
    let id = who.org.id;
    let found = state.db.read(move |c| accreditation::current_accreditation(c, id).map_err(StoreError::from)).await?;
    let accreditation = found.ok_or(PageError::new(StatusCode::NOT_FOUND, "certificate.none"))?;
    Ok(render(&CertificatePage { t: Texts::current(), org: &who.org, accreditation }))
}

/// Participant members: one of their own organisation's documents, as a download. Another organisation's document
/// is "not found", the same as a missing one.
async fn document(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let org_id = who.org.id;
    let found = state.db.read(move |c| accreditation::document_content(c, id).map_err(StoreError::from)).await?;
    match found {
        Some(doc) if doc.organisation_id == org_id => Ok(super::console::attachment(doc)),
        _ => Err(PageError::not_found()),
    }
}
