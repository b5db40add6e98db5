//! Tables as diesel sees them; kept by hand in step with `sql/{sqlite,postgres}/`.
#![allow(missing_docs)]

diesel::table! {
    accounts (id) {
        id -> BigInt,
        kind -> Text,
        balance -> BigInt,
        reserved -> BigInt,
        created_ms -> BigInt,
    }
}

diesel::table! {
    members (id) {
        id -> BigInt,
        login -> Text,
        password_hash -> Text,
        name -> Text,
        address -> Text,
        job -> Text,
        phone -> Text,
        email -> Text,
        sip_user -> Text,
        sip_ha1 -> Text,
        account_id -> BigInt,
        created_ms -> BigInt,
    }
}

diesel::table! {
    products (id) {
        id -> BigInt,
        name -> Text,
        kind -> Text,
        spec -> Text,
        image_url -> Text,
        features -> Text,
        price -> BigInt,
        supplier -> Text,
        mileage_award -> BigInt,
        created_ms -> BigInt,
    }
}

diesel::table! {
    sales (id) {
        id -> BigInt,
        member_id -> BigInt,
        total_price -> BigInt,
        mileage -> BigInt,
        created_ms -> BigInt,
    }
}

diesel::table! {
    sale_items (id) {
        id -> BigInt,
        sale_id -> BigInt,
        product_id -> BigInt,
        quantity -> BigInt,
        unit_price -> BigInt,
        mileage -> BigInt,
    }
}

diesel::table! {
    issuers (id) {
        id -> BigInt,
        login -> Text,
        password_hash -> Text,
        name -> Text,
        company -> Text,
        account_id -> BigInt,
        created_ms -> BigInt,
    }
}

diesel::table! {
    cards (id) {
        id -> BigInt,
        issuer_id -> BigInt,
        language -> Text,
        name -> Text,
        title -> Text,
        company -> Text,
        text -> Text,
        image_url -> Text,
        video_url -> Text,
        design -> Text,
        phones -> Text,
        quota_total -> BigInt,
        quota_used -> BigInt,
        quota_reserved -> BigInt,
        created_ms -> BigInt,
        callback_countries -> Text,
        slug -> Nullable<Text>,
        photo -> Text,
        updated_ms -> BigInt,
        deleted_ms -> Nullable<BigInt>,
        record_calls -> Bool,
    }
}

diesel::table! {
    card_texts (id) {
        id -> BigInt,
        card_id -> BigInt,
        language -> Text,
        name -> Text,
        title -> Text,
        company -> Text,
        text -> Text,
    }
}

diesel::table! {
    bookings (id) {
        id -> BigInt,
        serial -> Text,
        token -> Text,
        card_id -> Nullable<BigInt>,
        member_id -> Nullable<BigInt>,
        number -> Text,
        due_ms -> BigInt,
        time_zone -> Text,
        state -> Text,
        attempts -> BigInt,
        max_attempts -> BigInt,
        retry_secs -> BigInt,
        claimed_by -> Nullable<Text>,
        lease_ms -> Nullable<BigInt>,
        call_id -> Nullable<Text>,
        cause -> Nullable<Text>,
        created_ms -> BigInt,
        updated_ms -> BigInt,
        record -> Bool,
    }
}

diesel::table! {
    card_greetings (card_id, event) {
        card_id -> BigInt,
        event -> Text,
        audio -> Nullable<Binary>,
        duration_ms -> BigInt,
        updated_ms -> BigInt,
    }
}

diesel::table! {
    issuer_whispers (issuer_id) {
        issuer_id -> BigInt,
        audio -> Binary,
        duration_ms -> BigInt,
        updated_ms -> BigInt,
    }
}

diesel::table! {
    recordings (call_id) {
        call_id -> Text,
        card_id -> Nullable<BigInt>,
        account_id -> Nullable<BigInt>,
        node -> Text,
        path -> Text,
        format -> Text,
        started_ms -> BigInt,
        duration_ms -> Nullable<BigInt>,
        bytes -> Nullable<BigInt>,
        state -> Text,
    }
}

diesel::table! {
    booking_attempts (id) {
        id -> BigInt,
        booking_id -> BigInt,
        attempt -> BigInt,
        call_id -> Text,
        cause -> Nullable<Text>,
        started_ms -> BigInt,
        ended_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    phonebook (id) {
        id -> BigInt,
        member_id -> BigInt,
        name -> Text,
        number -> Text,
        created_ms -> BigInt,
    }
}

diesel::table! {
    ledger (id) {
        id -> BigInt,
        account_id -> BigInt,
        card_id -> Nullable<BigInt>,
        kind -> Text,
        amount -> BigInt,
        calls -> BigInt,
        balance_after -> BigInt,
        reserved_after -> BigInt,
        cause -> Text,
        reference -> Nullable<Text>,
        created_ms -> BigInt,
    }
}

diesel::table! {
    reservations (id) {
        id -> BigInt,
        call_id -> Text,
        node -> Text,
        account_id -> BigInt,
        card_id -> Nullable<BigInt>,
        number -> Text,
        destination -> Text,
        amount -> BigInt,
        max_secs -> BigInt,
        per_minute -> BigInt,
        first_secs -> BigInt,
        increment_secs -> BigInt,
        minimum -> BigInt,
        connection -> BigInt,
        state -> Text,
        answered_ms -> Nullable<BigInt>,
        ended_ms -> Nullable<BigInt>,
        billed_secs -> Nullable<BigInt>,
        cost -> Nullable<BigInt>,
        cause -> Nullable<Text>,
        created_ms -> BigInt,
    }
}

diesel::table! {
    nodes (id) {
        id -> Text,
        heartbeat_ms -> BigInt,
        epoch -> BigInt,
        fenced_ms -> Nullable<BigInt>,
        taker -> Nullable<Text>,
        taker_until_ms -> Nullable<BigInt>,
        taken_calls -> BigInt,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        name -> Text,
        key_hash -> Text,
        scopes -> Text,
        created_ms -> BigInt,
    }
}

diesel::table! {
    idempotency (id) {
        id -> BigInt,
        scope -> Text,
        key -> Text,
        request_hash -> Text,
        status -> Integer,
        response -> Text,
        created_ms -> BigInt,
    }
}

diesel::table! {
    rate_decks (id) {
        id -> BigInt,
        loaded_ms -> BigInt,
        rates -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    rate_deck (deck_id, account, prefix) {
        deck_id -> BigInt,
        account -> Text,
        prefix -> Text,
        name -> Text,
        per_minute -> BigInt,
        first_secs -> BigInt,
        increment_secs -> BigInt,
        connection -> BigInt,
        minimum -> BigInt,
    }
}

diesel::joinable!(cards -> issuers (issuer_id));
diesel::joinable!(card_texts -> cards (card_id));
diesel::joinable!(phonebook -> members (member_id));
diesel::joinable!(issuers -> accounts (account_id));
diesel::joinable!(members -> accounts (account_id));
diesel::joinable!(ledger -> accounts (account_id));
diesel::joinable!(reservations -> accounts (account_id));
diesel::joinable!(recordings -> cards (card_id));
diesel::joinable!(card_greetings -> cards (card_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    members,
    products,
    sales,
    sale_items,
    issuers,
    cards,
    card_texts,
    phonebook,
    bookings,
    booking_attempts,
    ledger,
    reservations,
    nodes,
    cdrs,
    api_keys,
    registrations,
    idempotency,
    card_greetings,
    issuer_whispers,
    recordings,
    rate_decks,
    rate_deck,
);

diesel::table! {
    cdrs (id) {
        id -> BigInt,
        call_id -> Text,
        node -> Text,
        caller -> Text,
        callee -> Text,
        account_id -> Nullable<BigInt>,
        card_id -> Nullable<BigInt>,
        destination -> Text,
        trunks -> Text,
        trunk -> Nullable<Text>,
        setup_ms -> BigInt,
        answered_ms -> Nullable<BigInt>,
        ended_ms -> BigInt,
        billed_secs -> BigInt,
        cost -> BigInt,
        code -> Integer,
        cause -> Text,
        ended_by -> Text,
        codec_caller -> Text,
        codec_callee -> Text,
        media -> Nullable<Text>,
        legs -> Nullable<Text>,
        sent_callee -> Text,
        sent_caller -> Text,
    }
}

diesel::table! {
    registrations (id) {
        id -> BigInt,
        sip_user -> Text,
        contact -> Text,
        source -> Text,
        node -> Text,
        call_id -> Text,
        cseq -> BigInt,
        expires_ms -> BigInt,
        updated_ms -> BigInt,
    }
}
