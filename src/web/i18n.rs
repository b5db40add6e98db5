//! The pages' words in Korean and English. A page's language comes from `?lang=` (which
//! is then remembered in a cookie), the cookie, or the browser's `Accept-Language`.

use actix_web::HttpRequest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Ko,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ko => "ko",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("ko") {
            Some(Lang::Ko)
        } else if s.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The first language of `Accept-Language` we speak (by q-value), else Korean.
    pub fn from_accept(header: &str) -> Lang {
        let mut best: Option<(u32, Lang)> = None;
        for part in header.split(',') {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .map(|q| (q.clamp(0.0, 1.0) * 1000.0) as u32)
                .unwrap_or(1000);
            if let Some(lang) = Lang::parse(tag)
                && q > 0
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::Ko)
    }

    /// The language a request asks for: `?lang=`, the `lang` cookie, `Accept-Language`.
    pub fn of(req: &HttpRequest) -> Lang {
        let query = req.query_string();
        if let Some(l) = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("lang="))
            .and_then(Lang::parse)
        {
            return l;
        }
        if let Some(l) = req.cookie("lang").and_then(|c| Lang::parse(c.value())) {
            return l;
        }
        let accept = req
            .headers()
            .get("Accept-Language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Lang::from_accept(accept)
    }

    /// The text for `key`; the key itself when the table lacks it (a test catches that).
    pub fn t(self, key: &str) -> &'static str {
        match WORDS.iter().find(|(k, _, _)| *k == key) {
            Some((_, ko, en)) => match self {
                Lang::Ko => ko,
                Lang::En => en,
            },
            None => "?",
        }
    }
}

/// (key, Korean, English)
pub const WORDS: &[(&str, &str, &str)] = &[
    ("brand", "프리콜", "freecall"),
    (
        "tagline",
        "누군가 이미 낸 무료 전화",
        "Free calls someone else has paid for",
    ),
    (
        "home_issuer",
        "명함을 만들고 방문자에게 무료 전화를 받으세요",
        "Make a business card and let visitors call you for free",
    ),
    (
        "home_member",
        "쇼핑 마일리지로 무료 전화를 거세요",
        "Call for free with the mileage you earned shopping",
    ),
    ("signup", "가입하기", "Sign up"),
    ("login", "로그인", "Log in"),
    ("logout", "로그아웃", "Log out"),
    ("login_as", "로그인 유형", "I am"),
    ("as_issuer", "명함 발행인", "a card issuer"),
    ("as_member", "쇼핑몰 회원", "a shop member"),
    ("username", "아이디", "Login name"),
    ("password", "비밀번호", "Password"),
    ("password_new", "새 비밀번호", "New password"),
    ("password_current", "현재 비밀번호", "Current password"),
    ("password_change", "비밀번호 변경", "Change password"),
    (
        "password_changed",
        "비밀번호를 바꿨습니다.",
        "Your password has been changed.",
    ),
    ("your_name", "이름", "Your name"),
    ("company", "회사", "Company"),
    ("title", "직함", "Title"),
    ("name", "이름", "Name"),
    ("text", "소개", "About"),
    ("save", "저장", "Save"),
    ("delete", "삭제", "Delete"),
    (
        "greetings",
        "부재 시 인사말",
        "Greetings when you cannot answer",
    ),
    (
        "greetings_hint",
        "전화를 받지 못하거나 거절하거나 통화 중일 때, 방문자에게 전화를 걸어 이 인사말을 들려 드립니다. 꺼 두면 방문자에게 전화하지 않습니다.",
        "When you do not answer, decline or are busy, the visitor is called to hear this greeting. Turned off, nobody calls the visitor.",
    ),
    ("greeting_no_answer", "받지 못할 때", "No answer"),
    ("greeting_declined", "거절할 때", "Declined"),
    ("greeting_busy", "통화 중일 때", "Busy"),
    ("greeting_off", "꺼짐", "Off"),
    ("greeting_shipped", "기본 음성", "Our voice"),
    ("greeting_uploaded", "직접 녹음", "Your recording"),
    (
        "audio_file",
        "음성 파일 (WAV, MP3, FLAC, Ogg)",
        "Audio file (WAV, MP3, FLAC, Ogg)",
    ),
    ("upload", "올리기", "Upload"),
    ("use_shipped", "기본 음성 사용", "Use our voice"),
    ("turn_off", "끄기", "Turn off"),
    ("remove", "지우기", "Remove"),
    ("whisper", "연결 전 안내", "Whisper"),
    (
        "whisper_hint",
        "요청 전화를 받으면 질문 전에 먼저 들리는 짧은 안내입니다 (5초 이내). 예: \"영업 명함으로 온 전화입니다\".",
        "A short message you hear when you answer a call-back, before the question (at most 5 s), such as \"a call from your sales card\".",
    ),
    (
        "whisper_none",
        "연결 전 안내가 없습니다.",
        "No whisper: you hear the question at once.",
    ),
    (
        "record_calls",
        "이 명함의 모든 통화 녹음 (양쪽 모두 녹음 안내를 듣습니다)",
        "Record every call of this card (both hear that it is recorded)",
    ),
    ("record_this_call", "이 통화 녹음", "Record this call"),
    ("recordings", "녹음", "Recordings"),
    ("no_recordings", "녹음이 없습니다.", "No recordings."),
    ("recording_ready", "재생 가능", "Ready"),
    ("recording_recording", "녹음 중", "Recording now"),
    (
        "recording_failed",
        "녹음 실패 (저장 공간 문제, 통화는 계속되었습니다)",
        "Failed (the disk was full or failed; the call went on)",
    ),
    ("cancel", "취소", "Cancel"),
    ("edit", "수정", "Edit"),
    ("add", "추가", "Add"),
    ("back", "돌아가기", "Back"),
    ("language", "언어", "Language"),
    ("lang_ko", "한국어", "Korean"),
    ("lang_en", "영어", "English"),
    (
        "bad_login",
        "아이디나 비밀번호가 맞지 않습니다.",
        "The login name or password is not right.",
    ),
    (
        "too_many_logins",
        "로그인 실패가 너무 많습니다. 15분 뒤에 다시 해 보세요.",
        "Too many failed logins. Try again in 15 minutes.",
    ),
    (
        "bad_form",
        "양식이 만료되었습니다. 페이지를 새로 고친 뒤 다시 보내 주세요.",
        "This form has expired. Reload the page and send it again.",
    ),
    (
        "login_taken",
        "이미 쓰이는 아이디입니다.",
        "That login name is taken.",
    ),
    (
        "password_rule",
        "비밀번호는 8자 이상이어야 합니다.",
        "The password needs at least 8 characters.",
    ),
    (
        "login_rule",
        "아이디는 영문 소문자, 숫자, . _ - 로 3-32자입니다.",
        "A login name is 3-32 lower-case letters, digits, '.', '_' or '-'.",
    ),
    ("required", "꼭 넣어야 합니다", "is required"),
    ("guild", "길드 잔액", "Guild balance"),
    ("mileage", "마일리지", "Mileage"),
    ("reserved", "통화 중 예약", "Held by calls in progress"),
    ("topups", "충전 내역", "Top-ups"),
    ("minutes_left", "남은 통화 시간", "Minutes left"),
    ("per_minute", "분당", "per minute"),
    ("minutes", "분", "min"),
    ("kind_landline", "일반전화", "Landline"),
    ("kind_mobile", "휴대전화", "Mobile"),
    ("kind_internet", "인터넷전화", "Internet phone"),
    ("kind_international", "국제전화", "International"),
    ("my_cards", "내 명함", "My cards"),
    ("new_card", "새 명함", "New card"),
    ("edit_card", "명함 수정", "Edit card"),
    ("no_cards", "아직 명함이 없습니다.", "No cards yet."),
    ("quota", "통화 횟수", "Call quota"),
    ("quota_left", "남은 통화", "Calls left"),
    ("quota_used", "쓴 통화", "Calls used"),
    ("public_link", "공개 주소", "Public link"),
    ("qr_code", "QR 코드", "QR code"),
    ("photo", "사진", "Photo"),
    ("photo_hint", "JPEG, PNG, WebP", "JPEG, PNG or WebP"),
    ("remove_photo", "사진 지우기", "Remove the photo"),
    ("video", "동영상 주소", "Video link"),
    ("design", "디자인", "Design"),
    ("design_classic", "클래식", "Classic"),
    ("design_ocean", "바다", "Ocean"),
    ("design_forest", "숲", "Forest"),
    ("design_night", "밤", "Night"),
    ("phones", "전화번호", "Phone numbers"),
    ("phone_kind", "종류", "Kind"),
    ("number", "번호", "Number"),
    ("callback_first", "먼저 걸기", "Ring first"),
    (
        "callback_countries",
        "해외 콜백 허용 국가",
        "Countries visitors may be called back in",
    ),
    (
        "callback_countries_hint",
        "예: JP, US (비우면 국내만)",
        "e.g. JP, US (empty: domestic only)",
    ),
    ("main_version", "기본 언어", "Main language"),
    ("other_version", "다른 언어판", "Another language version"),
    (
        "other_version_hint",
        "비우면 다른 언어판 없음",
        "Leave the name empty for none",
    ),
    ("calls", "통화 기록", "Calls"),
    ("no_calls", "통화 기록이 없습니다.", "No calls yet."),
    ("call_from", "건 번호", "From"),
    ("call_to", "받은 번호", "To"),
    ("started", "시작", "Start"),
    ("ended", "끝", "End"),
    ("duration", "통화 시간", "Duration"),
    ("cost", "요금", "Cost"),
    ("export_vcard", "vCard 내보내기", "Export vCard"),
    ("import_vcard", "vCard 가져오기", "Import a vCard"),
    (
        "import_vcard_hint",
        "휴대전화 연락처의 .vcf 파일로 새 명함을 만들거나 이 명함을 고칩니다",
        "A .vcf from a phone's contacts creates a new card, or updates this one",
    ),
    ("import", "가져오기", "Import"),
    (
        "import_skipped",
        "가져오지 않은 항목",
        "Left out of the card",
    ),
    ("saved", "저장했습니다.", "Saved."),
    ("card_gone", "없는 명함입니다.", "There is no such card."),
    ("call_free", "무료로 전화 받기", "Call for free"),
    (
        "call_free_hint",
        "연락받을 번호를 적으면 명함 주인이 먼저 받고 바로 전화를 드립니다. 요금은 무료입니다.",
        "Type where you can be reached: the card's owner is rung first, then your phone rings. It costs you nothing.",
    ),
    ("your_number", "내 전화번호", "Your phone number"),
    ("extension", "내선 (선택)", "Extension (optional)"),
    ("save_contact", "연락처 저장", "Save contact"),
    ("call_direct", "직접 전화", "Call directly"),
    ("progress", "전화 진행 상황", "Your call"),
    (
        "refresh_hint",
        "이 페이지는 저절로 바뀝니다.",
        "This page updates by itself.",
    ),
    ("state_requested", "요청을 받았습니다", "Request received"),
    (
        "state_calling_issuer",
        "명함 주인에게 전화하는 중",
        "Calling the card's owner",
    ),
    (
        "state_issuer_answered",
        "명함 주인이 받았습니다",
        "The card's owner answered",
    ),
    (
        "state_accepted",
        "명함 주인이 수락했습니다",
        "The card's owner accepted",
    ),
    (
        "state_declined",
        "명함 주인이 거절했습니다",
        "The card's owner declined",
    ),
    (
        "state_calling_visitor",
        "지금 전화가 갑니다",
        "Your phone is ringing now",
    ),
    ("state_connected", "연결되었습니다", "Connected"),
    ("state_ended", "통화가 끝났습니다", "The call has ended"),
    (
        "state_calling_member",
        "내 전화로 거는 중",
        "Calling your phone",
    ),
    ("state_member_answered", "전화를 받았습니다", "You answered"),
    (
        "state_calling_dialled",
        "상대에게 거는 중",
        "Calling the number you dialled",
    ),
    (
        "refused",
        "전화를 걸 수 없습니다",
        "The call cannot be placed",
    ),
    (
        "why_guild-exhausted",
        "이 명함의 통화 잔액이 다 떨어졌습니다.",
        "This card's call balance has run out.",
    ),
    (
        "why_quota-used-up",
        "이 명함의 무료 통화 횟수를 다 썼습니다.",
        "This card's free calls have all been used.",
    ),
    (
        "why_number-not-allowed",
        "이 번호로는 전화를 드릴 수 없습니다.",
        "We cannot call you back on this number.",
    ),
    (
        "why_destination-not-allowed",
        "이 번호로는 걸 수 없습니다.",
        "This number cannot be called.",
    ),
    (
        "why_bad-number",
        "전화번호가 올바르지 않습니다.",
        "That is not a phone number.",
    ),
    (
        "why_too-many-requests",
        "요청이 너무 많습니다. 잠시 뒤에 다시 해 보세요.",
        "Too many requests. Please try again in a minute.",
    ),
    (
        "why_number-daily-limit",
        "이 번호로는 오늘 더 전화를 드릴 수 없습니다.",
        "This number has had its calls for today.",
    ),
    (
        "why_card-daily-limit",
        "이 명함은 오늘 통화를 다 썼습니다.",
        "This card has had its calls for today.",
    ),
    (
        "why_issuer-daily-limit",
        "오늘은 더 전화를 드릴 수 없습니다.",
        "No more calls can be placed today.",
    ),
    (
        "why_card-busy",
        "명함 주인이 통화 중입니다. 잠시 뒤에 다시 해 보세요.",
        "The card's owner is on other calls. Please try again shortly.",
    ),
    (
        "why_mileage-exhausted",
        "마일리지가 부족합니다.",
        "There is not enough mileage for this call.",
    ),
    (
        "why_nothing-to-ring",
        "명함 주인에게 연결할 번호가 없습니다.",
        "The card's owner has no number to be reached on.",
    ),
    (
        "why_unavailable",
        "지금은 전화를 걸 수 없습니다. 잠시 뒤에 다시 해 보세요.",
        "Calls cannot be placed right now. Please try again shortly.",
    ),
    (
        "why_other",
        "전화를 걸 수 없습니다.",
        "The call could not be placed.",
    ),
    (
        "cause_hung-up",
        "통화를 마쳤습니다.",
        "The call was completed.",
    ),
    (
        "cause_declined",
        "명함 주인이 지금은 받을 수 없습니다.",
        "The card's owner cannot take the call now.",
    ),
    (
        "cause_no-answer",
        "전화를 받지 않았습니다.",
        "Nobody answered.",
    ),
    ("cause_busy", "통화 중입니다.", "The line was busy."),
    (
        "cause_cancelled",
        "요청이 취소되었습니다.",
        "The request was cancelled.",
    ),
    (
        "cause_no-key-pressed",
        "명함 주인이 수락하지 않았습니다.",
        "The card's owner did not accept the call.",
    ),
    (
        "cause_limit-reached",
        "통화 시간이 다 되었습니다.",
        "The call reached its time limit.",
    ),
    (
        "cause_unreachable",
        "지금은 연결할 수 없습니다.",
        "The phone could not be reached.",
    ),
    (
        "cause_not-registered",
        "인터넷전화가 켜져 있지 않습니다.",
        "The internet phone is not online.",
    ),
    (
        "cause_other",
        "전화가 연결되지 않았습니다.",
        "The call could not be connected.",
    ),
    ("book_call", "시간 예약하기", "Book a call"),
    ("upcoming", "예약된 통화", "Booked calls"),
    (
        "book_hint",
        "원하는 날짜와 시간을 고르면 그때 무료로 전화를 드립니다.",
        "Pick a day and time: you are called back for free then.",
    ),
    (
        "book_refused",
        "예약할 수 없습니다",
        "The call cannot be booked",
    ),
    (
        "bad_time",
        "예약할 수 있는 시간이 아닙니다",
        "That is not a time we can book",
    ),
    ("booking", "통화 예약", "Your booked call"),
    ("serial", "예약 번호", "Booking number"),
    (
        "serial_hint",
        "예약 번호와 전화번호로 예약을 다시 찾을 수 있습니다.",
        "Your booking number and phone number find this booking again.",
    ),
    ("date", "날짜", "Date"),
    ("time", "시간", "Time"),
    ("move_booking", "시간 바꾸기", "Change the time"),
    ("cancel_booking", "예약 취소", "Cancel the booking"),
    ("find_booking", "예약 찾기", "Find a booking"),
    (
        "booking_not_found",
        "그 예약 번호와 전화번호로 된 예약이 없습니다.",
        "No booking has that number and phone number.",
    ),
    (
        "booking_too_late",
        "이미 전화를 걸었거나 끝난 예약입니다.",
        "This booking has been placed or has ended already.",
    ),
    ("booking_scheduled", "예약되었습니다", "Booked"),
    ("booking_claimed", "곧 전화를 겁니다", "Calling shortly"),
    (
        "booking_dialling",
        "지금 전화를 거는 중입니다",
        "Calling now",
    ),
    ("booking_done", "통화를 마쳤습니다", "The call took place"),
    (
        "booking_failed",
        "연결되지 않았습니다",
        "The call could not be connected",
    ),
    (
        "booking_refused",
        "전화를 걸 수 없었습니다",
        "The call could not be placed",
    ),
    (
        "booking_missed",
        "예약 시간을 놓쳤습니다",
        "The booked time was missed",
    ),
    ("booking_cancelled", "취소되었습니다", "Cancelled"),
    (
        "booking_interrupted",
        "전화를 거는 중에 중단되었습니다",
        "Interrupted while calling",
    ),
    ("dial", "전화 걸기", "Dial"),
    (
        "dial_hint",
        "번호를 누르면 내 전화가 먼저 울리고, 받으면 상대에게 연결됩니다. 요금은 마일리지로 냅니다.",
        "Your own phone rings first; answer it and the number is dialled. Paid from your mileage.",
    ),
    ("phonebook", "전화번호부", "Phone book"),
    (
        "phonebook_empty",
        "전화번호부가 비어 있습니다.",
        "Your phone book is empty.",
    ),
    ("call", "걸기", "Call"),
    ("purchases", "구매 내역", "Purchases"),
    ("no_purchases", "구매 내역이 없습니다.", "No purchases yet."),
    ("ledger", "마일리지 내역", "Mileage history"),
    ("amount", "금액", "Amount"),
    ("when", "때", "When"),
    ("what", "내용", "What"),
    ("total", "합계", "Total"),
    ("error", "문제가 생겼습니다", "Something went wrong"),
    (
        "not_found",
        "찾을 수 없는 페이지입니다.",
        "There is no such page.",
    ),
    (
        "store_down",
        "지금은 데이터를 읽을 수 없습니다. 잠시 뒤에 다시 해 보세요. 아무것도 잃지 않았습니다.",
        "The data cannot be reached right now. Please try again shortly; nothing was lost.",
    ),
    (
        "need_login",
        "먼저 로그인해 주세요.",
        "Please log in first.",
    ),
    ("welcome", "환영합니다", "Welcome"),
    ("signup_bonus", "가입 보너스", "Sign-up bonus"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key a template or a page names (`t("…")`) is in the table, once, in both
    /// languages.
    #[test]
    fn every_word_a_page_uses_is_there_in_both_languages() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = Vec::new();
        for dir in ["templates", "src/web"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                texts.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
            }
        }
        let mut missing = Vec::new();
        for text in &texts {
            for part in text.split(".t(\"").skip(1) {
                let key = part.split('"').next().unwrap_or("");
                if !key.is_empty() && !key.contains('{') && !WORDS.iter().any(|(k, _, _)| *k == key)
                {
                    missing.push(key.to_string());
                }
            }
        }
        assert!(missing.is_empty(), "words missing: {missing:?}");
        for (i, (k, ko, en)) in WORDS.iter().enumerate() {
            assert!(!ko.is_empty() && !en.is_empty(), "{k}");
            assert!(!WORDS[..i].iter().any(|(o, _, _)| o == k), "{k} twice");
        }
        // The words the code builds from codes are there too.
        for kind in ["landline", "mobile", "internet"] {
            assert_ne!(Lang::En.t(&format!("kind_{kind}")), "?");
        }
        for d in crate::cards::DESIGNS {
            assert_ne!(Lang::Ko.t(&format!("design_{d}")), "?");
        }
    }

    #[test]
    fn accept_language_picks_the_best_language_we_speak() {
        assert_eq!(Lang::from_accept("en-US,en;q=0.9,ko;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept("fr-FR,ko;q=0.5,en;q=0.4"), Lang::Ko);
        assert_eq!(Lang::from_accept("de"), Lang::Ko);
        assert_eq!(Lang::from_accept("ko;q=0,en;q=0.1"), Lang::En);
    }
}
