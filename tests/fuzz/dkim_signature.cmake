# Fuzz target: DKIM-Signature tag lists and signature parsing (src/auth/dkim*).
tern_fuzz_target(dkim_signature SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/dkim_signature.cc DEPS tern_auth_dkim)
