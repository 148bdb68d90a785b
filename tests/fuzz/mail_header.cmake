# Fuzz target: message/header parsing, From address lists and DKIM canonicalization (src/mail, src/auth).
tern_fuzz_target(mail_header SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/mail_header.cc DEPS tern_mail tern_auth_dkim)
