# Fuzz target: SPF record parsing and macro expansion (src/auth/spf_record.h), plus DNS rdata decoding.
tern_fuzz_target(spf_record SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/spf_record.cc DEPS tern_auth_spf tern_dns)
