# Fuzz target: DMARC (RFC 7489) _dmarc TXT record parsing.
tern_fuzz_target(dmarc_record SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/dmarc_record.cc DEPS tern_auth_dmarc)
