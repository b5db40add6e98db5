//! Sign-up, login, logout and password change, for issuers and members.

use super::{Page, WebState, Who, client_ip, csrf_ok, render, see_other};
use crate::store::StoreError;
use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    p: Page,
    member_signup: bool,
}

pub async fn home(state: web::Data<WebState>, req: HttpRequest, session: Session) -> HttpResponse {
    if let Some(w) = super::current(&session) {
        return see_other(&format!("/{}", w.role));
    }
    let p = Page::new(&req, &session, "tagline");
    render(
        200,
        &Home {
            p,
            member_signup: state.cfg.member_signup,
        },
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct Login {
    p: Page,
    role: String,
    login: String,
}

#[derive(Deserialize)]
pub struct RoleQuery {
    #[serde(rename = "as")]
    role: Option<String>,
}

fn role_of(r: Option<&str>) -> String {
    match r {
        Some("member") => "member".into(),
        _ => "issuer".into(),
    }
}

pub async fn login_form(
    req: HttpRequest,
    session: Session,
    q: web::Query<RoleQuery>,
) -> HttpResponse {
    let role = role_of(q.role.as_deref());
    if let Some(w) = super::current(&session).filter(|w| w.role == role) {
        // Logged in already: their own pages.
        return see_other(&format!("/{}", w.role));
    }
    let p = Page::new(&req, &session, "login");
    render(
        200,
        &Login {
            p,
            role,
            login: String::new(),
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    #[serde(rename = "as")]
    role: Option<String>,
    login: String,
    password: String,
}

pub async fn login(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let f = form.into_inner();
    let role = role_of(f.role.as_deref());
    let mut p = Page::new(&req, &session, "login");
    let again = |mut p: Page, status: u16, key: &str| {
        p.errors.push(p.t(key).to_string());
        render(
            status,
            &Login {
                p,
                role: role.clone(),
                login: f.login.clone(),
            },
        )
    };
    if !csrf_ok(&session, &f.csrf) {
        return again(p, 403, "bad_form");
    }
    let ip = client_ip(&req);
    let account = format!("{role}:{}", f.login.trim());
    let now = state.store.clock().unix_ms();
    if !state.limiter.allowed(&account, ip, now) {
        tracing::warn!(%ip, account = %account, "login refused: too many failures");
        return again(p, 429, "too_many_logins");
    }
    let login = f.login.trim().to_string();
    let found = if role == "member" {
        state
            .store
            .run(move |s| s.member_login(&login))
            .await
            .map(|m| m.map(|(m, h)| (m.id, m.name, h)))
    } else {
        state
            .store
            .run(move |s| s.issuer_login(&login))
            .await
            .map(|i| i.map(|(i, h)| (i.id, i.name, h)))
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => return super::store_failure(&req, &e),
    };
    // Hash even for an unknown login, so the answer's time does not tell which exist.
    let password = f.password.clone();
    let (ok, who) = match found {
        Some((id, name, hash)) => {
            let ok = web::block(move || crate::auth::verify_password(&password, &hash))
                .await
                .unwrap_or(false);
            (
                ok,
                Some(Who {
                    role: role.clone(),
                    id,
                    name,
                }),
            )
        }
        None => {
            let _ = web::block(move || crate::auth::hash_password(&password)).await;
            (false, None)
        }
    };
    match who.filter(|_| ok) {
        Some(who) => {
            state.limiter.succeeded(&account);
            // A new session id at login: a cookie planted before cannot ride along.
            session.renew();
            let _ = session.remove("csrf");
            if session.insert("who", &who).is_err() {
                p.errors.push(p.t("error").to_string());
                return render(
                    500,
                    &Login {
                        p,
                        role,
                        login: f.login,
                    },
                );
            }
            tracing::info!(role = %who.role, id = who.id, %ip, "web login");
            see_other(&format!("/{}", who.role))
        }
        None => {
            state.limiter.failed(&account, ip, now);
            again(p, 401, "bad_login")
        }
    }
}

pub async fn logout(req: HttpRequest, session: Session, form: web::Form<CsrfOnly>) -> HttpResponse {
    if !csrf_ok(&session, &form.csrf) {
        return super::message_page(
            &req,
            403,
            "error",
            super::i18n::Lang::of(&req).t("bad_form"),
        );
    }
    session.purge();
    see_other("/")
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct Signup {
    p: Page,
    role: String,
    login: String,
    name: String,
    company: String,
}

pub async fn signup_form(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    q: web::Query<RoleQuery>,
) -> HttpResponse {
    let role = role_of(q.role.as_deref());
    if role == "member" && !state.cfg.member_signup {
        return see_other("/login?as=member");
    }
    let p = Page::new(&req, &session, "signup");
    render(
        200,
        &Signup {
            p,
            role,
            login: String::new(),
            name: String::new(),
            company: String::new(),
        },
    )
}

#[derive(Deserialize)]
pub struct SignupForm {
    csrf: String,
    #[serde(rename = "as")]
    role: Option<String>,
    login: String,
    password: String,
    name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    phone: String,
}

/// Login names: what a SIP user can also be (members' logins are their SIP users).
pub fn login_name_ok(login: &str) -> bool {
    (3..=32).contains(&login.len())
        && login
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

pub async fn signup(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<SignupForm>,
) -> HttpResponse {
    let f = form.into_inner();
    let role = role_of(f.role.as_deref());
    if role == "member" && !state.cfg.member_signup {
        return see_other("/login?as=member");
    }
    let mut p = Page::new(&req, &session, "signup");
    if !csrf_ok(&session, &f.csrf) {
        p.errors.push(p.t("bad_form").into());
    }
    let login = f.login.trim().to_string();
    if !login_name_ok(&login) {
        p.errors.push(p.t("login_rule").into());
    }
    if f.password.chars().count() < 8 || f.password.len() > 200 {
        p.errors.push(p.t("password_rule").into());
    }
    let name = f.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        p.errors
            .push(format!("{} {}", p.t("your_name"), p.t("required")));
    }
    let company = f.company.trim().chars().take(200).collect::<String>();
    if !p.errors.is_empty() {
        let status = if p.errors.iter().any(|e| e == p.t("bad_form")) {
            403
        } else {
            422
        };
        return render(
            status,
            &Signup {
                p,
                role,
                login,
                name,
                company,
            },
        );
    }
    let password = f.password.clone();
    let Ok(Ok(hash)) = web::block(move || crate::auth::hash_password(&password)).await else {
        p.errors.push(p.t("error").into());
        return render(
            500,
            &Signup {
                p,
                role,
                login,
                name,
                company,
            },
        );
    };
    let result = if role == "member" {
        let new = crate::store::shop::NewMember {
            login: login.clone(),
            password_hash: hash,
            name: name.clone(),
            address: String::new(),
            job: String::new(),
            phone: f.phone.trim().chars().take(40).collect(),
            email: String::new(),
            sip_ha1: crate::auth::ha1(&login, &state.realm, &f.password),
        };
        let bonus = state.signup_bonus_mileage;
        state
            .store
            .run(move |s| s.create_member(&new, bonus))
            .await
            .map(|m| m.id)
    } else {
        let new = crate::store::cards::NewIssuer {
            login: login.clone(),
            password_hash: hash,
            name: name.clone(),
            company: company.clone(),
        };
        let bonus = state.signup_bonus_guild;
        state
            .store
            .run(move |s| s.create_issuer(&new, bonus))
            .await
            .map(|i| i.id)
    };
    match result {
        Ok(id) => {
            session.renew();
            let _ = session.remove("csrf");
            let _ = session.insert(
                "who",
                Who {
                    role: role.clone(),
                    id,
                    name,
                },
            );
            tracing::info!(%role, id, "web sign-up");
            see_other(&format!("/{role}"))
        }
        Err(StoreError::Conflict(_)) => {
            p.errors.push(p.t("login_taken").into());
            render(
                409,
                &Signup {
                    p,
                    role,
                    login,
                    name,
                    company,
                },
            )
        }
        Err(e) => super::store_failure(&req, &e),
    }
}

#[derive(Template)]
#[template(path = "password.html")]
struct Password {
    p: Page,
}

pub async fn password_form(req: HttpRequest, session: Session) -> HttpResponse {
    if super::current(&session).is_none() {
        return see_other("/login");
    }
    render(
        200,
        &Password {
            p: Page::new(&req, &session, "password_change"),
        },
    )
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
}

pub async fn password(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<PasswordForm>,
) -> HttpResponse {
    let Some(who) = super::current(&session) else {
        return see_other("/login");
    };
    let f = form.into_inner();
    let mut p = Page::new(&req, &session, "password_change");
    if !csrf_ok(&session, &f.csrf) {
        p.errors.push(p.t("bad_form").into());
        return render(403, &Password { p });
    }
    if f.new.chars().count() < 8 || f.new.len() > 200 {
        p.errors.push(p.t("password_rule").into());
        return render(422, &Password { p });
    }
    let ip = client_ip(&req);
    let now = state.store.clock().unix_ms();
    let account = format!("{}:#{}", who.role, who.id);
    if !state.limiter.allowed(&account, ip, now) {
        p.errors.push(p.t("too_many_logins").into());
        return render(429, &Password { p });
    }
    let id = who.id;
    let member = who.role == "member";
    let stored = state
        .store
        .run(move |s| {
            if member {
                let m = s.member(id)?;
                Ok(s.member_login(&m.login)?.map(|(m, h)| (m.login, h)))
            } else {
                let i = s.issuer(id)?;
                Ok(s.issuer_login(&i.login)?.map(|(i, h)| (i.login, h)))
            }
        })
        .await;
    let (login, hash) = match stored {
        Ok(Some(x)) => x,
        Ok(None) => return see_other("/login"),
        Err(e) => return super::store_failure(&req, &e),
    };
    let current = f.current.clone();
    let ok = web::block(move || crate::auth::verify_password(&current, &hash))
        .await
        .unwrap_or(false);
    if !ok {
        state.limiter.failed(&account, ip, now);
        p.errors.push(p.t("bad_login").into());
        return render(401, &Password { p });
    }
    let new = f.new.clone();
    let Ok(Ok(new_hash)) = web::block(move || crate::auth::hash_password(&new)).await else {
        p.errors.push(p.t("error").into());
        return render(500, &Password { p });
    };
    let ha1 = crate::auth::ha1(&login, &state.realm, &f.new);
    let saved = state
        .store
        .run(move |s| {
            if member {
                s.set_member_password(id, &new_hash, &ha1)
            } else {
                s.set_issuer_password(id, &new_hash)
            }
        })
        .await;
    if let Err(e) = saved {
        return super::store_failure(&req, &e);
    }
    session.renew();
    p.notices.push(p.t("password_changed").into());
    render(200, &Password { p })
}
