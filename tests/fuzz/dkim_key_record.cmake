# Fuzz target: DKIM key record TXT parsing and public key decoding (src/auth/dkim*, crypto*).
tern_fuzz_target(dkim_key_record SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/dkim_key_record.cc DEPS tern_auth_dkim)
